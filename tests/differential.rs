//! The same requests decided natively (`sbd-policy`) and through the component (wasmtime)
//! give identical verdicts, field for field, for every configuration.
#![allow(clippy::expect_used, clippy::panic, reason = "test and benchmark set-up fails loudly")]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use sbd_e2e::{configs, request, sample_requests};
use sbd_policy::{Policy, Reason, Request, Verdict};
use sbd_runtime::{CallPath, LoadedPolicy, PolicyRuntime, RuntimeLimits};

struct Pair {
    native: Policy,
    component: LoadedPolicy,
}

/// One native policy and one component instance per configuration, loaded once.
fn pairs() -> &'static [Pair] {
    static PAIRS: OnceLock<(PolicyRuntime, Vec<Pair>)> = OnceLock::new();
    let (_, pairs) = PAIRS.get_or_init(|| {
        let runtime = PolicyRuntime::new(RuntimeLimits::default()).expect("engine");
        let component = runtime.load_component(sbd_runtime::DEFAULT_COMPONENT).expect("default component");
        let pairs = configs()
            .into_iter()
            .map(|config| Pair {
                component: runtime
                    .instantiate(&component, &config.to_bytes().expect("encode"))
                    .expect("instantiate"),
                native: Policy::new(config).expect("valid config"),
            })
            .collect();
        (runtime, pairs)
    });
    pairs
}

fn label(verdict: &Verdict) -> &'static str {
    verdict.reason().map_or("allow", Reason::name)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn component_and_native_verdicts_are_identical(request in request()) {
        for pair in pairs() {
            let native = pair.native.evaluate(&request);
            for path in [CallPath::Typed, CallPath::Encoded, CallPath::Json] {
                let through_component = pair.component.evaluate_via(path, &request);
                prop_assert_eq!(&native, &through_component, "config `{}`, {:?} path", pair.native.info().name, path);
            }
        }
    }
}

#[test]
fn batches_match_single_calls_and_native() {
    let requests: Vec<Request> = sample_requests(500, 7);
    for pair in pairs() {
        let native = pair.native.evaluate_batch(&requests);
        for path in [CallPath::Typed, CallPath::Encoded, CallPath::Json] {
            let batch = pair.component.evaluate_batch_via(path, &requests);
            assert_eq!(batch, native, "config `{}`, {path:?} path", pair.native.info().name);
        }
    }
}

/// The generator must reach every rule, or the differential test proves little.
#[test]
fn random_requests_reach_every_rule() {
    let requests = sample_requests(3_000, 11);
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for pair in pairs() {
        for verdict in pair.native.evaluate_batch(&requests) {
            *seen.entry(label(&verdict)).or_default() += 1;
            if let Verdict::Allow(grant) = &verdict {
                for warning in &grant.warnings {
                    *seen.entry(warning.reason.name()).or_default() += 1;
                }
            }
        }
    }
    let never: Vec<&str> = Reason::ALL
        .iter()
        .map(|r| r.name())
        .chain(["allow"])
        .filter(|name| Reason::ALL.iter().all(|r| r.name() != *name || !r.decided_by_host()) && !seen.contains_key(name))
        .collect();
    assert!(never.is_empty(), "never produced: {never:?}; seen: {seen:?}");
}

#[test]
fn policy_info_matches_native_and_selects_the_encoded_path() {
    for pair in pairs() {
        assert_eq!(pair.component.info(), &pair.native.info());
        assert_eq!(pair.component.call_path(), CallPath::Encoded);
    }
}

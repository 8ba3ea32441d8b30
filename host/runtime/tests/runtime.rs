//! Integration tests of sbd-runtime's public API on the default component: the precompile
//! cache, concurrent evaluation, `info`, `narrow` and `trust_deltas` against the native rules,
//! the host's own chain-length limit, and the documented default limits.
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use sbd_e2e::{NOW, ScratchDir, allowed_request, configs, sample_requests};
use sbd_policy::{
    Budget, BudgetUnit, Link, Mandate, Outcome, Policy, PolicyConfig, Reason, Request, Verdict, attenuation,
};
use sbd_runtime::{ComponentCache, DEFAULT_COMPONENT, LoadedPolicy, PolicyRuntime, RuntimeLimits};
use sha2::{Digest, Sha256};

fn runtime() -> PolicyRuntime {
    PolicyRuntime::new(RuntimeLimits::default()).expect("engine")
}

fn config_bytes(config: &PolicyConfig) -> Vec<u8> {
    config.to_bytes().expect("configuration encodes")
}

fn load(runtime: &PolicyRuntime, config: &PolicyConfig) -> LoadedPolicy {
    let component = runtime.load_component(DEFAULT_COMPONENT).expect("default component compiles");
    runtime.instantiate(&component, &config_bytes(config)).expect("configuration accepted")
}

fn native(config: &PolicyConfig) -> Policy {
    Policy::new(config.clone()).expect("valid configuration")
}

fn is_lower_hex_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("cache directory exists")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    files
}

/// A mix of requests that reaches allows, denials and escalations.
fn request_variants() -> Vec<Request> {
    let mut variants = vec![allowed_request()];
    let mut cycle = allowed_request();
    cycle.to.id = "orchestrator".into();
    variants.push(cycle);
    let mut low_trust = allowed_request();
    low_trust.to.trust = 100;
    variants.push(low_trust);
    let mut widened = allowed_request();
    widened.requested_mandate.budgets[0].amount *= 10;
    variants.push(widened);
    variants.extend(sample_requests(4, 7));
    variants
}

#[test]
fn precompile_cache_writes_one_entry_then_reuses_it() {
    let scratch = ScratchDir::new("cache-reuse");
    let cache_dir = scratch.path().join("cache");
    let cache = ComponentCache::new(&cache_dir);
    assert_eq!(cache.dir(), cache_dir.as_path());
    let runtime = runtime();
    let config = PolicyConfig::named("cached", "1");

    let first = runtime.load_cached(DEFAULT_COMPONENT, &cache).expect("first cached load compiles");
    let entry = cache.entry_path(runtime.engine(), first.digest());
    assert_eq!(files_in(&cache_dir), vec![entry.clone()], "exactly one file, at entry_path");
    assert_eq!(entry.extension().and_then(|e| e.to_str()), Some("cwasm"));
    let written = std::fs::read(&entry).expect("entry readable");
    assert!(!written.is_empty());
    let before = std::fs::metadata(&entry).expect("entry metadata");

    let second = runtime.load_cached(DEFAULT_COMPONENT, &cache).expect("second cached load");
    assert_eq!(second.digest(), first.digest());
    let after = std::fs::metadata(&entry).expect("entry metadata");
    assert_eq!(after.len(), before.len(), "the entry was rewritten");
    assert_eq!(after.modified().ok(), before.modified().ok(), "the entry was rewritten");
    assert_eq!(std::fs::read(&entry).expect("entry readable"), written);
    assert_eq!(files_in(&cache_dir), vec![entry], "no new files on reuse");

    let compiled = runtime.load_component(DEFAULT_COMPONENT).expect("compiles");
    assert_eq!(compiled.digest(), second.digest());
    let from_cache = runtime.instantiate(&second, &config_bytes(&config)).expect("instantiates");
    let from_bytes = runtime.instantiate(&compiled, &config_bytes(&config)).expect("instantiates");
    let mut requests = request_variants();
    requests.extend(sample_requests(60, 3));
    for request in &requests {
        assert_eq!(from_cache.evaluate(request), from_bytes.evaluate(request), "{request:?}");
    }
    assert_eq!(from_cache.evaluate_batch(&requests), from_bytes.evaluate_batch(&requests));
    assert_eq!(from_cache.info(), from_bytes.info());
    assert_eq!(from_cache.stats().faults, 0);
}

#[test]
fn a_corrupt_cache_entry_is_recompiled_and_rewritten() {
    let scratch = ScratchDir::new("cache-corrupt");
    let cache = ComponentCache::new(scratch.path());
    let runtime = runtime();
    let first = runtime.load_cached(DEFAULT_COMPONENT, &cache).expect("first cached load");
    let entry = cache.entry_path(runtime.engine(), first.digest());
    let good = std::fs::read(&entry).expect("entry readable");

    let garbage: Vec<u8> =
        b"this is not a precompiled component ".iter().copied().cycle().take(4096).collect();
    std::fs::write(&entry, &garbage).expect("overwrite the entry");

    let recovered = runtime.load_cached(DEFAULT_COMPONENT, &cache).expect("a corrupt entry is recompiled");
    assert_eq!(recovered.digest(), first.digest());
    let rewritten = std::fs::read(&entry).expect("entry readable");
    assert_ne!(rewritten, garbage, "the corrupt entry was not replaced");
    assert_eq!(rewritten.len(), good.len(), "the rewritten entry differs in size from a fresh compile");
    assert_eq!(files_in(scratch.path()), vec![entry], "no temporary file left behind");

    let config = PolicyConfig::named("recovered", "1");
    let policy = runtime.instantiate(&recovered, &config_bytes(&config)).expect("instantiates");
    let reference = native(&config);
    for request in request_variants() {
        assert_eq!(policy.evaluate(&request), reference.evaluate(&request), "{request:?}");
    }
    // And the rewritten entry is itself usable.
    let again = runtime.load_cached(DEFAULT_COMPONENT, &cache).expect("reuses the rewritten entry");
    let policy = runtime.instantiate(&again, &config_bytes(&config)).expect("instantiates");
    assert_eq!(policy.evaluate(&allowed_request()), reference.evaluate(&allowed_request()));
}

#[test]
fn concurrent_evaluation_matches_sequential() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 200;
    let runtime = runtime();
    let config = PolicyConfig::named("default", "1");
    let policy = load(&runtime, &config);
    let reference = native(&config);
    let variants = request_variants();
    let sequential: Vec<Verdict> = variants.iter().map(|r| reference.evaluate(r)).collect();
    // The variants really differ in outcome, so a mixed-up verdict would show.
    assert!(sequential.iter().any(Verdict::is_allow));
    assert!(sequential.iter().any(|v| matches!(v, Verdict::Deny(_))));
    assert!(sequential.iter().any(|v| matches!(v, Verdict::Escalate(_))));

    let results: Vec<Vec<(usize, Verdict)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (policy, variants) = (&policy, &variants);
                scope.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let which = (i + t) % variants.len();
                            (which, policy.evaluate(&variants[which]))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("evaluating thread panicked")).collect()
    });

    assert_eq!(results.len(), THREADS);
    for (t, verdicts) in results.iter().enumerate() {
        assert_eq!(verdicts.len(), PER_THREAD);
        for (which, verdict) in verdicts {
            assert_eq!(verdict, &sequential[*which], "thread {t}, variant {which}");
        }
    }
    let stats = policy.stats();
    assert_eq!(stats.decisions, (THREADS * PER_THREAD) as u64);
    assert_eq!(stats.faults, 0);
    assert!(stats.instances_created >= 1);
    // After the threads, sequential evaluation through the same pool still agrees.
    for (request, expected) in variants.iter().zip(&sequential) {
        assert_eq!(&policy.evaluate(request), expected);
    }
}

#[test]
fn info_reports_configuration_and_digests() {
    let runtime = runtime();
    let component = runtime.load_component(DEFAULT_COMPONENT).expect("compiles");
    let expected_component_digest: String =
        Sha256::digest(DEFAULT_COMPONENT).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(component.digest(), expected_component_digest);

    let mut custom = PolicyConfig::named("custom-name", "7.3.1");
    custom.depth.max_depth = 9;
    let mut all = configs();
    all.push(custom);
    let mut digests = Vec::new();
    for config in all {
        let policy = runtime.instantiate(&component, &config_bytes(&config)).expect("instantiates");
        let info = policy.info();
        let native_info = native(&config).info();
        assert_eq!(info.name, config.name);
        assert_eq!(info.version, config.version);
        assert!(is_lower_hex_digest(&info.config_digest), "config digest {:?}", info.config_digest);
        assert_eq!(info.config_digest, native_info.config_digest, "{}", config.name);
        assert_eq!(info.max_depth, config.depth.max_depth);
        assert_eq!(info, &native_info);
        assert!(is_lower_hex_digest(policy.component_digest()));
        assert_eq!(policy.component_digest(), expected_component_digest);
        digests.push(info.config_digest.clone());
    }
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 4, "different configurations share a digest");
}

fn mandate(
    value: u64,
    actions: &[&str],
    parties: &[&str],
    budgets: &[(BudgetUnit, u64)],
    depth: u8,
) -> Mandate {
    Mandate {
        value_ceiling: value,
        action_kinds: actions.iter().map(|s| s.to_string()).collect(),
        counterparties: parties.iter().map(|s| s.to_string()).collect(),
        budgets: budgets.iter().map(|&(unit, amount)| Budget { unit, amount }).collect(),
        remaining_depth: depth,
        expires_at: NOW + 60_000,
    }
}

#[test]
fn narrow_through_the_component_equals_native() {
    let runtime = runtime();
    let policy = load(&runtime, &PolicyConfig::named("default", "1"));
    let request = allowed_request();
    let mut later = mandate(10, &["crm.read"], &["acme"], &[], 9);
    later.expires_at = NOW + 999_999_999;
    let cases = vec![
        (request.parent_mandate.clone(), request.requested_mandate.clone()),
        // A wider request is cut down to the parent.
        (request.requested_mandate.clone(), request.parent_mandate.clone()),
        (
            mandate(1_000, &["*"], &["*"], &[(BudgetUnit::Tokens, 500), (BudgetUnit::Credits, 7)], 4),
            mandate(
                5_000,
                &["payment.refund", "crm.*"],
                &["acme", "initech"],
                &[(BudgetUnit::Tokens, 900), (BudgetUnit::RiskPoints, 3)],
                4,
            ),
        ),
        (
            mandate(100, &["crm.*", "email.send"], &["acme"], &[(BudgetUnit::UsdMicrocents, 50)], 1),
            mandate(50, &["crm.write", "payment.*"], &["*"], &[(BudgetUnit::UsdMicrocents, 10)], 1),
        ),
        (mandate(0, &[], &[], &[], 0), later),
    ];
    let mut changed = 0;
    for (parent, requested) in &cases {
        let expected = attenuation::narrow(parent, requested);
        let got = policy.narrow(parent, requested).expect("narrow through the component");
        assert_eq!(got, expected, "parent {parent:?}, requested {requested:?}");
        if &got != requested {
            changed += 1;
        }
    }
    assert!(changed >= 3, "the cases should mostly narrow something");
    assert_eq!(policy.stats().faults, 0);
}

#[test]
fn trust_deltas_through_the_component_equal_native() {
    let runtime = runtime();
    let chains: Vec<Vec<String>> = vec![
        vec!["orchestrator".into(), "refund-agent".into(), "ledger-agent".into()],
        vec!["a".into(), "b".into(), "a".into(), "c".into()],
        vec!["solo".into()],
        Vec::new(),
    ];
    let outcomes = [Outcome::Success(3.5), Outcome::Failure(8.57), Outcome::Failure(-2.0)];
    for propagation in [true, false] {
        let mut config = PolicyConfig::named("trust", "1");
        config.trust.penalty_propagation = propagation;
        let policy = load(&runtime, &config);
        let reference = native(&config);
        for chain in &chains {
            for outcome in outcomes {
                let expected = reference.trust_deltas(chain, outcome);
                let got = policy.trust_deltas(chain, outcome).expect("trust deltas through the component");
                assert_eq!(got, expected, "propagation {propagation}, chain {chain:?}, {outcome:?}");
            }
        }
        // The setting is really carried into the component.
        let failure = policy.trust_deltas(&chains[0], Outcome::Failure(1.0)).expect("trust deltas");
        assert_eq!(failure.len(), if propagation { 3 } else { 1 });
        assert!(failure.iter().all(|d| d.delta == -1.0));
        assert_eq!(failure.last().map(|d| d.agent.as_str()), Some("ledger-agent"));
    }
}

/// A hop whose chain is `links` continuous links long, ending at `ledger-agent`.
fn chain_request(links: usize) -> Request {
    let mut request = allowed_request();
    let agents: Vec<String> =
        (0..links).map(|i| format!("agent-{i}")).chain(["ledger-agent".into()]).collect();
    request.chain = (0..links)
        .map(|i| Link {
            from: agents[i].clone(),
            to: agents[i + 1].clone(),
            depth: u8::try_from(i + 1).expect("small"),
            alpha: 0.8,
            at: NOW - 10_000 + 1_000 * i as u64,
            reason: String::new(),
        })
        .collect();
    request
}

#[test]
fn chains_over_the_host_limit_are_refused_without_failing_the_batch() {
    let limits = RuntimeLimits { max_chain_len: 3, ..RuntimeLimits::default() };
    let limited = PolicyRuntime::new(limits).expect("engine");
    assert_eq!(limited.limits().max_chain_len, 3);
    let config = PolicyConfig::named("default", "1");
    let policy = load(&limited, &config);
    let reference = native(&config);

    let long = chain_request(4);
    let at_limit = chain_request(3);
    // Natively neither is malformed: the refusal is the host's own.
    assert!(reference.evaluate(&long).is_allow(), "{:?}", reference.evaluate(&long));
    assert!(reference.evaluate(&at_limit).is_allow());

    let mut cycle = allowed_request();
    cycle.to.id = "refund-agent".into();
    let batch = vec![allowed_request(), long.clone(), at_limit.clone(), cycle, long.clone()];
    let verdicts = policy.evaluate_batch(&batch);
    assert_eq!(verdicts.len(), batch.len());
    for i in [0, 2, 3] {
        assert_eq!(verdicts[i], reference.evaluate(&batch[i]), "request {i}");
    }
    assert_eq!(verdicts[3].reason(), Some(Reason::DelegationCycle));
    for i in [1, 4] {
        let Verdict::Deny(denial) = &verdicts[i] else {
            panic!("request {i} was not denied: {:?}", verdicts[i])
        };
        assert_eq!(denial.reason, Reason::RequestMalformed, "request {i}");
        assert!(denial.message.contains('4') && denial.message.contains('3'), "{}", denial.message);
    }
    // One at a time, too.
    assert_eq!(policy.evaluate(&long).reason(), Some(Reason::RequestMalformed));
    assert_eq!(policy.evaluate(&at_limit), reference.evaluate(&at_limit));
    let stats = policy.stats();
    assert_eq!(stats.decisions, batch.len() as u64 + 2);
    assert_eq!(stats.faults, 0, "a host-limit refusal is not a fault");

    // Under the default limit the same request goes through to the rules.
    let unlimited = load(&runtime(), &config);
    assert_eq!(unlimited.evaluate(&long), reference.evaluate(&long));
}

#[test]
fn default_limits_are_the_documented_values() {
    let limits = RuntimeLimits::default();
    assert_eq!(limits.memory_bytes, 16 * 1024 * 1024);
    assert_eq!(limits.call_timeout, Duration::from_millis(50));
    assert_eq!(limits.epoch_tick, Duration::from_millis(1));
    assert_eq!(limits.max_chain_len, 64);
    assert_eq!(limits.max_batch, 1024);
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
    assert_eq!(limits.max_idle_instances, parallelism);
    assert_eq!(runtime().limits(), &limits);
}

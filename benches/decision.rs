//! Nanoseconds per decision, natively (`sbd-policy` in the host) and through the component
//! (wasmtime), on the same requests in the same run, so the ratio is meaningful on a noisy
//! machine.
//!
//! Run with `cargo bench -p sbd-benches --bench decision`, then `python3 benches/report.py`.
//! With `--features peers` the same run also decides the same requests with Cedar
//! (`cedar-policy` 4, an equivalent policy; see [`cedar`]); `docs/performance.md` gives the
//! command that produced its tables.
#![allow(clippy::expect_used, clippy::panic, reason = "test and benchmark set-up fails loudly")]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sbd_e2e::{allowed_request, sample_requests};
use sbd_policy::{Policy, PolicyConfig, Request};
use sbd_runtime::{CallPath, PolicyRuntime, RuntimeLimits};

/// The requests each case decides: the typical allow (every rule runs), an early structural
/// denial (a cycle), and a batch of mixed random requests.
fn cases() -> Vec<(&'static str, Request)> {
    let allow = allowed_request();
    let mut cycle = allowed_request();
    cycle.to.id = "orchestrator".into();
    vec![("allow", allow), ("deny-cycle", cycle)]
}

fn decisions(c: &mut Criterion) {
    let config = PolicyConfig::named("bench", "1");
    let native = Policy::new(config.clone()).expect("valid config");
    let runtime = PolicyRuntime::new(RuntimeLimits::default()).expect("engine");
    let component = runtime.load_component(sbd_runtime::DEFAULT_COMPONENT).expect("component");
    let wasm = runtime.instantiate(&component, &config.to_bytes().expect("encode")).expect("instantiate");

    let mut group = c.benchmark_group("decision");
    for (name, request) in cases() {
        assert_eq!(native.evaluate(&request), wasm.evaluate(&request), "native and component must agree");
        group.bench_with_input(BenchmarkId::new("native", name), &request, |b, r| {
            b.iter(|| native.evaluate(black_box(r)))
        });
        // The work the guest does on the encoded path, natively.
        let encoded = sbd_policy::wire::encode_requests(std::slice::from_ref(&request)).expect("encodes");
        group.bench_with_input(BenchmarkId::new("native-encoded", name), &encoded, |b, bytes| {
            b.iter(|| native.evaluate_encoded(black_box(bytes)))
        });
        group.bench_with_input(BenchmarkId::new("component", name), &request, |b, r| {
            b.iter(|| wasm.evaluate_via(CallPath::Encoded, black_box(r)))
        });
        group.bench_with_input(BenchmarkId::new("component-typed", name), &request, |b, r| {
            b.iter(|| wasm.evaluate_via(CallPath::Typed, black_box(r)))
        });
    }
    // References for where a call's time goes: the fixed cost of one call through the pool,
    // and the guest's own work (decode, decide, encode) run natively.
    group.bench_function("component-empty-call", |b| {
        b.iter(|| wasm.trust_deltas(black_box(&[]), sbd_policy::Outcome::Success(1.0)))
    });
    #[cfg(feature = "peers")]
    for (name, request) in cases() {
        let peer = cedar::Peer::new(&config);
        assert_eq!(peer.decide(&request), native.evaluate(&request).is_allow(), "Cedar and sbd must agree");
        group.bench_with_input(BenchmarkId::new("cedar", name), &request, |b, r| {
            b.iter(|| peer.decide(black_box(r)))
        });
    }
    group.finish();

    learned(c, &runtime, &component);

    // Per-decision cost in batches of 100 mixed requests (most are refused by some rule).
    let batch = sample_requests(100, 3);
    let mut group = c.benchmark_group("batch100");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("native", |b| b.iter(|| native.evaluate_batch(black_box(&batch))));
    group.bench_function("component", |b| {
        b.iter(|| wasm.evaluate_batch_via(CallPath::Encoded, black_box(&batch)))
    });
    group.bench_function("component-typed", |b| {
        b.iter(|| wasm.evaluate_batch_via(CallPath::Typed, black_box(&batch)))
    });
    group.bench_function("component-one-by-one", |b| {
        b.iter(|| {
            batch.iter().map(|r| wasm.evaluate_via(CallPath::Encoded, black_box(r))).collect::<Vec<_>>()
        })
    });
    group.finish();
}

/// The trained finance policy of `policies/finance` (phi and pi at width 256) deciding an
/// allow natively and through the component.
fn learned(c: &mut Criterion, runtime: &PolicyRuntime, component: &sbd_runtime::PolicyComponent) {
    let (native, wasm, request) = sbd_benches::learned_case(runtime, component).expect("the learned case");
    let mut group = c.benchmark_group("learned");
    group.bench_function("native", |b| b.iter(|| native.evaluate(black_box(&request))));
    group.bench_function("component", |b| {
        b.iter(|| wasm.evaluate_via(CallPath::Encoded, black_box(&request)))
    });
    group.finish();
}

/// Cedar deciding the same delegations: an equivalent policy (depth at most the maximum,
/// budget within the parent's, action, counterparty and value within the parent's mandate,
/// trust at or above the tier the risk requires, and a `forbid` when the target already
/// appears in the chain), parsed once; each decision builds Cedar's request and context from
/// the sbd request, as a host deciding with Cedar would, and calls `is_authorized`.
#[cfg(feature = "peers")]
mod cedar {
    use cedar_policy::{
        Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request as CedarRequest,
        RestrictedExpression as Expr,
    };
    use sbd_policy::{BudgetUnit, PolicyConfig, Request};

    const POLICY: &str = r#"
        permit(principal, action == Action::"delegate", resource)
        when {
            context.depth <= context.max_depth &&
            context.budget.usd <= context.parent_budget.usd &&
            context.budget.tokens <= context.parent_budget.tokens &&
            (context.parent_actions.contains(context.action) ||
             context.parent_actions.contains(context.action_family) ||
             context.parent_actions.contains("*")) &&
            (context.parent_counterparties.contains(context.counterparty) ||
             context.parent_counterparties.contains("*")) &&
            context.value <= context.value_ceiling &&
            context.trust >= context.required_trust
        };
        forbid(principal, action, resource)
        when { context.chain.contains(context.target) };
    "#;

    /// The parsed policy set, the (empty) entities and the configuration's limits.
    pub struct Peer {
        policies: PolicySet,
        entities: Entities,
        authorizer: Authorizer,
        action: EntityUid,
        config: PolicyConfig,
    }

    fn long(x: u64) -> Expr {
        Expr::new_long(i64::try_from(x).unwrap_or(i64::MAX))
    }

    fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Expr {
        Expr::new_set(items.into_iter().map(|s| Expr::new_string(s.clone())))
    }

    fn budgets(mandate: &sbd_policy::Mandate) -> Expr {
        let amount = |unit| long(mandate.budget(unit).unwrap_or(0));
        Expr::new_record([
            ("usd".to_string(), amount(BudgetUnit::UsdMicrocents)),
            ("tokens".to_string(), amount(BudgetUnit::Tokens)),
        ])
        .expect("a record")
    }

    fn agent(id: &str) -> EntityUid {
        format!("Agent::{id:?}").parse().expect("an entity uid")
    }

    impl Peer {
        pub fn new(config: &PolicyConfig) -> Peer {
            Peer {
                policies: POLICY.parse().expect("the Cedar policy parses"),
                entities: Entities::empty(),
                authorizer: Authorizer::new(),
                action: r#"Action::"delegate""#.parse().expect("an action uid"),
                config: config.clone(),
            }
        }

        /// Whether Cedar allows the delegation `r`.
        pub fn decide(&self, r: &Request) -> bool {
            let task = &r.task;
            let family = task.action_kind.split_once('.').map_or("*".to_string(), |(f, _)| format!("{f}.*"));
            let required = self.config.trust.required_tier.get(task.risk);
            let required_trust = [0u64, 200, 350, 500, 650, 800, 876, 951][required as usize];
            let max_depth =
                self.config.depth.max_depth.min(self.config.depth.max_depth_by_risk.get(task.risk));
            let chain = std::iter::once(r.originator()).chain(r.chain.iter().map(|l| l.to.as_str()));
            let context = Context::from_pairs([
                ("depth".to_string(), long(r.hop_depth() as u64)),
                ("max_depth".to_string(), long(u64::from(max_depth))),
                ("budget".to_string(), budgets(&r.requested_mandate)),
                ("parent_budget".to_string(), budgets(&r.parent_mandate)),
                ("action".to_string(), Expr::new_string(task.action_kind.clone())),
                ("action_family".to_string(), Expr::new_string(family)),
                ("parent_actions".to_string(), strings(&r.parent_mandate.action_kinds)),
                ("counterparty".to_string(), Expr::new_string(task.counterparty.clone().unwrap_or_default())),
                ("parent_counterparties".to_string(), strings(&r.parent_mandate.counterparties)),
                ("value".to_string(), long(task.value)),
                ("value_ceiling".to_string(), long(r.parent_mandate.value_ceiling)),
                ("trust".to_string(), long(u64::from(r.to.trust))),
                ("required_trust".to_string(), long(required_trust)),
                ("target".to_string(), Expr::new_string(r.to.id.clone())),
                ("chain".to_string(), Expr::new_set(chain.map(|a| Expr::new_string(a.to_string())))),
            ])
            .expect("a context");
            let request =
                CedarRequest::new(agent(&r.from.id), self.action.clone(), agent(&r.to.id), context, None)
                    .expect("a request");
            self.authorizer.is_authorized(&request, &self.policies, &self.entities).decision()
                == Decision::Allow
        }
    }
}

criterion_group!(benches, decisions);
criterion_main!(benches);

//! Nanoseconds per decision, natively (`sbd-policy` in the host) and through the component
//! (wasmtime), on the same requests in the same run, so the ratio is meaningful on a noisy
//! machine.
//!
//! Run with `cargo bench -p sbd-benches --bench decision`, then `python3 benches/report.py`.
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
    group.finish();

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

criterion_group!(benches, decisions);
criterion_main!(benches);

//! Per-decision time in Rust over the cross-language corpus (`bindings/shared/requests.json`):
//! natively, and through wasmtime on the typed path (the WIT records every other language
//! host uses), the encoded path (one postcard buffer each way, what `sbd` uses) and the JSON
//! path (`evaluate-json`, one string each way, what the Python binding uses).
//!
//! ```sh
//! cargo run --release -p sbd-e2e --example cross_language_bench [-- MIN_SECONDS]
//! ```
//!
//! Prints one JSON object per line, `{"language", "path", "ns_per_decision", "decisions",
//! "rounds"}`, the same shape as `bindings/python/benchmarks/bench.py` and
//! `bindings/js/bench/bench.mjs` print; `bindings/bench.sh` runs all of them and tabulates.
//! Each measurement decides the whole corpus once per round, in file order, after 0.5 s of
//! warm-up, and reports the median round: one call per decision, or one batch call per
//! configuration.
#![allow(clippy::expect_used, clippy::panic, reason = "benchmark set-up fails loudly")]

#[path = "cross_language_corpus.rs"]
#[allow(dead_code, reason = "the corpus module also serves the test, which uses more of it")]
mod corpus;

use std::hint::black_box;
use std::time::{Duration, Instant};

use sbd_policy::Request;
use sbd_runtime::{CallPath, PolicyRuntime, RuntimeLimits};

/// Rounds measured at least, whatever the time.
const MIN_ROUNDS: usize = 5;
/// Time spent deciding before measuring (the same in the Python and Node benchmarks).
const WARM_UP: Duration = Duration::from_millis(500);

fn main() {
    let min_seconds: f64 =
        std::env::args().nth(1).map_or(2.0, |s| s.parse().expect("MIN_SECONDS is a number"));
    // The in-memory corpus: `cargo test --test cross_language` proves the committed
    // requests.json is exactly this.
    let cases = corpus::build_cases();
    let groups = corpus::by_config(&cases);
    let runtime = PolicyRuntime::new(RuntimeLimits::default()).expect("engine");
    let component = runtime.load_component(sbd_runtime::DEFAULT_COMPONENT).expect("default component");
    let loaded: Vec<_> = groups
        .iter()
        .map(|group| runtime.instantiate(&component, &group.bytes).expect("instantiate"))
        .collect();
    // Each case with the index of its configuration, in file order.
    let slot = |name: &str| groups.iter().position(|g| g.name == name).expect("a known configuration");
    let ordered: Vec<(usize, &Request)> = cases.iter().map(|(name, request)| (slot(name), request)).collect();
    let batches: Vec<Vec<Request>> =
        groups.iter().map(|g| g.cases.iter().map(|(_, r)| r.clone()).collect()).collect();

    let limit = Duration::from_secs_f64(min_seconds);
    let n = cases.len();
    let report = |path: &str, (ns, rounds): (f64, usize)| {
        println!(
            "{}",
            serde_json::json!({"language": "rust", "path": path, "ns_per_decision": ns, "decisions": n, "rounds": rounds})
        );
    };
    report(
        "native evaluate",
        measure(limit, n, || {
            for (k, request) in &ordered {
                black_box(groups[*k].native.evaluate(request));
            }
        }),
    );
    for (path, label) in [(CallPath::Typed, "typed"), (CallPath::Encoded, "encoded"), (CallPath::Json, "JSON")] {
        report(
            &format!("wasmtime {label} evaluate"),
            measure(limit, n, || {
                for (k, request) in &ordered {
                    black_box(loaded[*k].evaluate_via(path, request));
                }
            }),
        );
        report(
            &format!("wasmtime {label} evaluate-batch"),
            measure(limit, n, || {
                for (policy, requests) in loaded.iter().zip(&batches) {
                    black_box(policy.evaluate_batch_via(path, requests));
                }
            }),
        );
    }
}

/// Runs `round` for [`WARM_UP`] (at least once) to warm up, then until `limit` has passed and
/// at least [`MIN_ROUNDS`] rounds ran; returns the median round's nanoseconds per decision and
/// the round count.
fn measure(limit: Duration, decisions: usize, mut round: impl FnMut()) -> (f64, usize) {
    let warm_up = Instant::now();
    round();
    while warm_up.elapsed() < WARM_UP {
        round();
    }
    let start = Instant::now();
    let mut rounds = Vec::new();
    while rounds.len() < MIN_ROUNDS || start.elapsed() < limit {
        let t = Instant::now();
        round();
        rounds.push(t.elapsed().as_nanos() as f64 / decisions as f64);
    }
    rounds.sort_by(f64::total_cmp);
    (rounds[rounds.len() / 2], rounds.len())
}

//! The component's cost as a ratio to native, measured in alternating rounds.
//!
//! Criterion measures one function for seconds, then the next; on a shared machine whose speed
//! drifts by tens of percent within a minute, the ratio of two such medians moves with the
//! drift. Here each round times a block of native calls and a block of component calls back to
//! back (the order alternating by round), so both see the same machine, and the ratio is taken
//! per round; the table gives the median of the per-round ratios and its interquartile range.
//!
//! Run with `cargo bench -p sbd-benches --bench interleaved`; options after `--`:
//! `--rounds N` (default 41), `--block-ms M` (default 10, the native block's length) and case
//! names to run a subset (`allow`, `deny-cycle`, `learned`).
#![allow(clippy::expect_used, clippy::print_stdout, reason = "a benchmark's set-up fails loudly and prints its table")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use sbd_benches::{SetupError, learned_case};
use sbd_policy::{Policy, PolicyConfig};
use sbd_runtime::{CallPath, PolicyRuntime, RuntimeLimits};

/// What the command line asked for.
struct Options {
    rounds: usize,
    block: Duration,
    cases: Vec<String>,
}

fn options() -> Result<Options, SetupError> {
    let mut o = Options { rounds: 41, block: Duration::from_millis(10), cases: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => o.rounds = args.next().ok_or("--rounds needs a number")?.parse()?,
            "--block-ms" => o.block = Duration::from_millis(args.next().ok_or("--block-ms needs a number")?.parse()?),
            // Cargo passes `--bench` to every bench target.
            "--bench" => {}
            name if !name.starts_with('-') => o.cases.push(name.to_string()),
            other => return Err(format!("unknown option `{other}`").into()),
        }
    }
    if o.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    Ok(o)
}

/// Nanoseconds per call of `f` over `calls` calls.
fn block(calls: u64, f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

/// The value at quantile `q` of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    let at = ((v.len() - 1) as f64 * q).round() as usize;
    v[at.min(v.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Times `native` and `component` in `o.rounds` alternating rounds; prints one table row.
fn measure(name: &str, o: &Options, native: &mut dyn FnMut(), component: &mut dyn FnMut()) {
    // Warm both, then size a block so the native side takes about `o.block`.
    block(1_000, native);
    block(1_000, component);
    let per_call = block(2_000, native).max(1.0);
    let calls = ((o.block.as_nanos() as f64 / per_call) as u64).max(10);
    let (mut n, mut c, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..o.rounds {
        let (tn, tc) = if round % 2 == 0 {
            let tn = block(calls, native);
            (tn, block(calls, component))
        } else {
            let tc = block(calls, component);
            (block(calls, native), tc)
        };
        n.push(tn);
        c.push(tc);
        ratios.push(tc / tn);
    }
    let (n, c, r) = (sorted(n), sorted(c), sorted(ratios));
    println!(
        "| {name} | {:.0} ns | {:.0} ns | {:.3}x | {:.3}-{:.3} |",
        quantile(&n, 0.5),
        quantile(&c, 0.5),
        quantile(&r, 0.5),
        quantile(&r, 0.25),
        quantile(&r, 0.75)
    );
}

fn main() -> Result<(), SetupError> {
    let o = options()?;
    let wanted = |name: &str| o.cases.is_empty() || o.cases.iter().any(|c| c == name);
    let runtime = PolicyRuntime::new(RuntimeLimits::default())?;
    let component = runtime.load_component(sbd_runtime::DEFAULT_COMPONENT)?;
    let config = PolicyConfig::named("bench", "1");
    let native = Policy::new(config.clone())?;
    let wasm = runtime.instantiate(&component, &config.to_bytes()?)?;
    let allow = sbd_e2e::allowed_request();
    let mut cycle = sbd_e2e::allowed_request();
    cycle.to.id = "orchestrator".into();

    println!("{} rounds, native blocks of about {} ms, order alternating by round\n", o.rounds, o.block.as_millis());
    println!("| case | native (median) | component (median) | ratio (median of rounds) | ratio IQR |");
    println!("|---|---|---|---|---|");
    for (name, request) in [("allow", &allow), ("deny-cycle", &cycle)] {
        if wanted(name) {
            if native.evaluate(request) != wasm.evaluate(request) {
                return Err(format!("native and component disagree on `{name}`").into());
            }
            measure(
                name,
                &o,
                &mut || {
                    black_box(native.evaluate(black_box(request)));
                },
                &mut || {
                    black_box(wasm.evaluate_via(CallPath::Encoded, black_box(request)));
                },
            );
        }
    }
    if wanted("learned") {
        let (native, wasm, request) = learned_case(&runtime, &component)?;
        measure(
            "learned",
            &o,
            &mut || {
                black_box(native.evaluate(black_box(&request)));
            },
            &mut || {
                black_box(wasm.evaluate_via(CallPath::Encoded, black_box(&request)));
            },
        );
    }
    Ok(())
}

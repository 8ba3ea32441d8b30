//! Hot swap under load: threads decide continuously while bundles alternating between two
//! behaviours are activated one after another; no decision fails and every verdict is the one
//! the bundle it ran on gives. Then the directory watcher, by a scanner pass and by its thread.
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{build_signed, key, sources};
use sbd_bundle::{BundleError, DirectoryScanner, HotOptions, HotPolicy, TrustStore};
use sbd_e2e::ScratchDir;
use sbd_policy::{Reason, Verdict};
use sbd_runtime::{ComponentCache, PolicyRuntime, RuntimeLimits};

const THREADS: usize = 4;
const SWAPS: u64 = 16;

/// The default limits, except a call deadline of 5 s instead of 50 ms: the deadline is wall
/// time, and on this shared 2-core machine a worker thread (one of four, next to the swapping
/// thread and other jobs) can be descheduled mid-call for longer than 50 ms, which fails the
/// call closed (`policy-fault`) for reasons that have nothing to do with swapping.
fn runtime() -> PolicyRuntime {
    let limits = RuntimeLimits { call_timeout: Duration::from_secs(5), ..RuntimeLimits::default() };
    PolicyRuntime::new(limits).expect("runtime")
}

/// Odd minor versions use the default rules (the request is allowed); even ones the strict
/// rules (it goes to human review).
fn strict(minor: u64) -> bool {
    minor.is_multiple_of(2)
}

#[test]
fn decisions_never_fail_and_match_their_bundle_while_swapping() {
    let scratch = ScratchDir::new("swap-load");
    let signer = key(1);
    let trust = TrustStore::with_keys([&signer.public()]);
    let bundles: Vec<_> = (1..=SWAPS + 1)
        .map(|minor| {
            let version = format!("1.{minor}.0");
            build_signed(scratch.path(), &version, &sources(&version, strict(minor), &signer), &[&signer])
        })
        .collect();
    let options = HotOptions {
        state_dir: Some(scratch.path().join("state")),
        cache: Some(ComponentCache::new(scratch.path().join("cache"))),
    };
    let (hot, _) = HotPolicy::start_with(runtime(), trust, options, &bundles[0]).expect("starts");
    let hot = Arc::new(hot);
    let stop = Arc::new(AtomicBool::new(false));
    let request = sbd_e2e::allowed_request();
    let seen_generations = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let decisions = Arc::new(AtomicU64::new(0));

    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (hot, stop, request) = (Arc::clone(&hot), Arc::clone(&stop), request.clone());
            let (seen, decisions) = (Arc::clone(&seen_generations), Arc::clone(&decisions));
            std::thread::spawn(move || {
                let mut local = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let active = hot.current();
                    let verdict = active.evaluate(&request);
                    let minor: u64 = active
                        .manifest()
                        .version
                        .split('.')
                        .nth(1)
                        .and_then(|m| m.parse().ok())
                        .expect("minor");
                    assert_ne!(verdict.reason(), Some(Reason::PolicyFault), "a decision failed: {verdict:?}");
                    match (&verdict, strict(minor)) {
                        (Verdict::Allow(_), false) => {}
                        (Verdict::Escalate(e), true) if e.reason == Reason::LowAlphaReview => {}
                        _ => panic!("version {} gave {verdict:?}", active.manifest().version),
                    }
                    if local.is_multiple_of(64) {
                        seen.lock().expect("lock").insert(active.generation());
                    }
                    local += 1;
                }
                decisions.fetch_add(local, Ordering::Relaxed);
            })
        })
        .collect();

    let mut swap_times = Vec::new();
    for (i, bundle) in bundles.iter().enumerate().skip(1) {
        std::thread::sleep(Duration::from_millis(30));
        let started = Instant::now();
        let activation = hot.activate(bundle).expect("activates");
        swap_times.push(started.elapsed());
        assert_eq!(activation.generation, i as u64 + 1);
    }
    std::thread::sleep(Duration::from_millis(30));
    stop.store(true, Ordering::Release);
    for worker in workers {
        worker.join().expect("a worker panicked");
    }
    let total = decisions.load(Ordering::Relaxed);
    let generations = seen_generations.lock().expect("lock").len();
    assert!(total > 1_000, "only {total} decisions");
    assert!(generations > (SWAPS as usize) / 2, "decisions saw only {generations} generations");
    assert_eq!(hot.current().generation(), SWAPS + 1);
    assert_eq!(hot.current().policy().stats().faults, 0);
    swap_times.sort();
    println!(
        "{total} decisions on {THREADS} threads across {SWAPS} swaps; activation median {:?}",
        swap_times[swap_times.len() / 2]
    );
}

#[test]
fn the_watcher_activates_new_bundles_and_reports_refusals() {
    let scratch = ScratchDir::new("swap-watch");
    let signer = key(1);
    let trust = TrustStore::with_keys([&signer.public()]);
    let watched = scratch.path().join("incoming");
    std::fs::create_dir_all(&watched).expect("mkdir");
    let first = build_signed(scratch.path(), "first", &sources("2.0.0", false, &signer), &[&signer]);
    let options =
        HotOptions { state_dir: None, cache: Some(ComponentCache::new(scratch.path().join("cache"))) };
    let (hot, _) = HotPolicy::start_with(runtime(), trust, options, &first).expect("starts");
    let hot = Arc::new(hot);

    // One pass: two new bundles, the lower version first; an unsigned one refused.
    build_signed(&watched, "b", &sources("2.2.0", true, &signer), &[&signer]);
    build_signed(&watched, "a", &sources("2.1.0", false, &signer), &[&signer]);
    build_signed(&watched, "c-unsigned", &sources("2.3.0", false, &signer), &[]);
    let mut scanner = DirectoryScanner::new(watched.clone());
    let events = scanner.scan(&hot);
    let summary: Vec<(String, bool)> = events
        .iter()
        .map(|e| {
            (
                e.bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                e.outcome.is_ok(),
            )
        })
        .collect();
    assert_eq!(summary, [("a".into(), true), ("b".into(), true), ("c-unsigned".into(), false)]);
    assert!(matches!(events[2].outcome, Err(BundleError::Unsigned)));
    assert_eq!(hot.current().manifest().version, "2.2.0");
    // Nothing changed: nothing tried again.
    assert!(scanner.scan(&hot).is_empty());

    // The thread: a bundle dropped in later is picked up within a few intervals.
    let (sender, receiver) = std::sync::mpsc::channel();
    let watcher = hot.watch(watched.clone(), Duration::from_millis(20), move |event| {
        let _ = sender.send(event);
    });
    // Skip the first pass's reports on the bundles already there.
    std::thread::sleep(Duration::from_millis(100));
    while receiver.try_recv().is_ok() {}
    build_signed(&watched, "d", &sources("2.4.0", false, &signer), &[&signer]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let event = receiver.recv_timeout(Duration::from_secs(20)).expect("the watcher reported nothing");
        if event.bundle.ends_with("d") && event.outcome.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the new bundle was not activated");
    }
    assert_eq!(hot.current().manifest().version, "2.4.0");
    watcher.stop();
}

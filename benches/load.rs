//! How long a policy takes to become ready: compiling the component from its bytes, loading it
//! from the precompile cache, and starting one more pooled instance.
//!
//! Run with `cargo bench -p sbd-benches --bench load`, then `python3 benches/report.py`.
#![allow(clippy::expect_used, clippy::panic, reason = "test and benchmark set-up fails loudly")]

use criterion::{Criterion, criterion_group, criterion_main};
use sbd_policy::PolicyConfig;
use sbd_runtime::{ComponentCache, PolicyRuntime, RuntimeLimits};

fn load(c: &mut Criterion) {
    let runtime = PolicyRuntime::new(RuntimeLimits::default()).expect("engine");
    let bytes = sbd_runtime::DEFAULT_COMPONENT;
    let dir = std::env::temp_dir().join(format!("sbd-bench-cache-{}", std::process::id()));
    let cache = ComponentCache::new(&dir);
    runtime.load_cached(bytes, &cache).expect("fills the cache");
    let config = PolicyConfig::named("bench", "1").to_bytes().expect("encode");
    let component = runtime.load_component(bytes).expect("component");

    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    group.bench_function("compile", |b| b.iter(|| runtime.load_component(bytes).expect("compiles")));
    group.bench_function("precompiled", |b| b.iter(|| runtime.load_cached(bytes, &cache).expect("cached")));
    group.bench_function("instantiate", |b| {
        b.iter(|| runtime.instantiate(&component, &config).expect("instantiates"))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, load);
criterion_main!(benches);

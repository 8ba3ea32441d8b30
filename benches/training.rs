//! One SBD outer step at the paper's sizes (T_in = 50, B = 256, width 256) on the CPU backend,
//! next to the GEMM kernel's own rate on the trainer's dominant product shape, in the same run.
//! Throughput is in FLOP/s (criterion's "elements" are floating-point operations).
#![allow(clippy::expect_used, reason = "benchmark set-up fails loudly")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sbd_train::CpuBackend;
use sbd_train::finance::{self, FinanceOptions};
use sbd_train::linalg::{MatRef, matmul};
use sbd_train::trainer::{TrainConfig, Trainer, outer_step_flops};

fn outer_step(c: &mut Criterion) {
    let data = finance::load_embedded(&FinanceOptions::default()).expect("embedded finance data");
    let mut trainer = Trainer::new(&data.dataset, TrainConfig::default(), CpuBackend).expect("trainer");
    let (phi, pi) = trainer.shapes();
    let flops =
        outer_step_flops(phi, pi, trainer.config(), data.dataset.train.len, data.dataset.validation.len);
    eprintln!("outer step: {:.3} GFLOP ({})", flops / 1e9, trainer.backend());

    let mut group = c.benchmark_group("training");
    group.sample_size(20);
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function("outer-step/cpu/paper-sizes", |b| b.iter(|| trainer.step().expect("outer step")));

    // the reference: the same kernels on the product that dominates an inner step, a half
    // batch (128 rows, one thread's share) through a 256 x 256 layer, single-threaded
    for (name, m, k, n) in [("gemm/128x256x256", 128, 256, 256), ("gemm/256x256x256", 256, 256, 256)] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
        let w: Vec<f32> = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| matmul(MatRef::new(&a, m, k), MatRef::new(&w, k, n), &mut out, false))
        });
    }
    group.finish();
}

criterion_group!(benches, outer_step);
criterion_main!(benches);

//! SBD training at the paper's sizes (T_in = 50, B = 256, width 256) on both backends in the
//! same run: one inner step (as the backend API exposes it, transfers included), a whole inner
//! loop of 50 steps, and one outer step; next to the CPU GEMM kernel's own rate on the
//! trainer's dominant product shape. Throughput is in FLOP/s (criterion's "elements" are
//! floating-point operations). The GPU rows need a Vulkan adapter; without one they are skipped
//! with a message.
#![allow(clippy::expect_used, reason = "benchmark set-up fails loudly")]

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use sbd_train::engine::backend::Backend;
use sbd_train::engine::bilevel::Problem;
use sbd_train::domains::data::{Dataset, sample_indices};
use sbd_train::domains::finance::{self, FinanceOptions};
use sbd_train::engine::linalg::{MatRef, matmul};
use sbd_train::engine::trainer::{TrainConfig, Trainer, outer_step_flops};
use sbd_train::CpuBackend;
use sbd_train::engine::mlp;
use sbd_train_gpu::{AdapterChoice, GpuBackend, cost};

fn backend_rows<B: Backend>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    data: &Dataset,
    mut backend: B,
) {
    let config = TrainConfig::default();
    let (phi_shape, pi_shape) = sbd_train::engine::trainer::shapes(data.state_dim, data.sub_agents.len(), &config);
    let problem =
        Problem { phi: &phi_shape, pi: &pi_shape, objective: &config.objective, split: &data.train };
    let mut rng = <rand::rngs::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut pi: Vec<f32> = mlp::init(&pi_shape, &mut rng, 0.1);
    let lambdas = vec![0.5f32; data.train.len];
    let batches: Vec<Vec<usize>> =
        (0..config.inner_steps).map(|_| sample_indices(&mut rng, data.train.len, config.batch)).collect();
    let step_flops = cost::inner_step(&pi_shape, config.batch).flops;

    group.throughput(Throughput::Elements(step_flops as u64));
    group.bench_function(format!("inner-step/{name}"), |b| {
        b.iter(|| {
            backend.inner_loop(&problem, &mut pi, &batches[..1], &lambdas, config.eta_in).expect("inner step")
        })
    });
    group.throughput(Throughput::Elements((step_flops * config.inner_steps as f64) as u64));
    group.bench_function(format!("inner-loop-50/{name}"), |b| {
        b.iter(|| {
            backend.inner_loop(&problem, &mut pi, &batches, &lambdas, config.eta_in).expect("inner loop")
        })
    });

    let mut trainer = Trainer::new(data, config, backend).expect("trainer");
    let (phi, pi) = trainer.shapes();
    let flops = outer_step_flops(phi, pi, trainer.config(), data.train.len, data.validation.len);
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function(format!("outer-step/{name}/paper-sizes"), |b| {
        b.iter(|| trainer.step().expect("outer step"))
    });
}

fn training(c: &mut Criterion) {
    let data = finance::load_embedded(&FinanceOptions::default()).expect("embedded finance data").dataset;
    let mut group = c.benchmark_group("training");
    group.sample_size(10);

    // the reference: the CPU kernels on the product that dominates an inner step, a half batch
    // (128 rows, one thread's share) through a 256 x 256 layer, single-threaded
    for (name, m, k, n) in [("gemm/128x256x256", 128, 256, 256), ("gemm/256x256x256", 256, 256, 256)] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
        let w: Vec<f32> = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| matmul(MatRef::new(&a, m, k), MatRef::new(&w, k, n), &mut out, false))
        });
    }

    backend_rows(&mut group, "cpu", &data, CpuBackend);
    match GpuBackend::new(AdapterChoice::Any) {
        Ok(gpu) => {
            eprintln!("GPU rows on {}", gpu.gpu().adapter);
            let config = TrainConfig::default();
            let (_, pi) = sbd_train::engine::trainer::shapes(data.state_dim, data.sub_agents.len(), &config);
            let step = cost::inner_step(&pi, config.batch);
            eprintln!(
                "one inner step: {:.1} MFLOP, {:.2} MB compulsory traffic, {} dispatches; floor on an {}: {:.2} us",
                step.flops / 1e6,
                step.bytes / 1e6,
                step.dispatches,
                cost::H100_SXM.name,
                step.floor(&cost::H100_SXM) * 1e6
            );
            backend_rows(&mut group, "gpu", &data, gpu);
        }
        Err(e) => eprintln!("GPU rows skipped: {e}"),
    }
    group.finish();
}

criterion_group!(benches, training);
criterion_main!(benches);

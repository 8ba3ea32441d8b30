//! Where an inner step's time goes on the GPU: each of the step's dispatches at the paper's
//! sizes (B = 256, width 256), launched 100 times in one compute pass, for every way the
//! kernels can be built (`KernelOptions::all`: the matrix product looped or in vec4 registers,
//! wgpu's loop bounding on or off), with the whole inner loop of 50 steps for each and, as the
//! reference in the same run, the CPU backend's inner loop on the same batches. Criterion's
//! "elements" are launches, so its throughput line reads as launches per second; the time of
//! one launch is the median divided by 100. Without a Vulkan adapter it prints why and exits.
#![allow(clippy::expect_used, reason = "benchmark set-up fails loudly")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sbd_train::domains::data::sample_indices;
use sbd_train::domains::finance::{self, FinanceOptions};
use sbd_train::engine::backend::Backend;
use sbd_train::engine::bilevel::Problem;
use sbd_train::engine::mlp;
use sbd_train::engine::trainer::{TrainConfig, shapes};
use sbd_train::CpuBackend;
use sbd_train_gpu::kernels::KernelOptions;
use sbd_train_gpu::{AdapterChoice, GpuBackend};

/// Launches of one dispatch per measured iteration.
const LAUNCHES: usize = 100;

fn gpu_kernels(c: &mut Criterion) {
    let data = finance::load_embedded(&FinanceOptions::default()).expect("embedded finance data").dataset;
    let config = TrainConfig::default();
    let (phi_shape, pi_shape) = shapes(data.state_dim, data.sub_agents.len(), &config);
    let problem = Problem { phi: &phi_shape, pi: &pi_shape, objective: &config.objective, split: &data.train };
    let mut rng = <rand::rngs::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let pi0: Vec<f32> = mlp::init(&pi_shape, &mut rng, 0.1);
    let lambdas = vec![0.5f32; data.train.len];
    let batches: Vec<Vec<usize>> =
        (0..config.inner_steps).map(|_| sample_indices(&mut rng, data.train.len, config.batch)).collect();

    let mut group = c.benchmark_group("gpu-kernels");
    group.sample_size(10);
    group.warm_up_time(std::time::Duration::from_millis(300));
    group.measurement_time(std::time::Duration::from_secs(1));
    let mut pi = pi0.clone();
    group.throughput(Throughput::Elements(config.inner_steps as u64));
    group.bench_function("cpu/inner-loop-50", |b| {
        b.iter(|| CpuBackend.inner_loop(&problem, &mut pi, &batches, &lambdas, config.eta_in).expect("inner loop"))
    });
    for options in KernelOptions::all() {
        let mut backend = match GpuBackend::with_options(AdapterChoice::Any, options) {
            Ok(backend) => backend,
            Err(e) => {
                eprintln!("GPU kernel rows skipped: {e}");
                return;
            }
        };
        eprintln!("kernels {options} on {}", backend.gpu().adapter);
        let labels =
            backend.profile(&problem, &pi0, &batches, &lambdas, config.eta_in).expect("prepare a step profile");
        group.throughput(Throughput::Elements(LAUNCHES as u64));
        for (index, label) in labels.iter().enumerate() {
            group.bench_function(format!("{options}/{index:02} {label}"), |b| {
                b.iter(|| backend.repeat_dispatch(index, LAUNCHES).expect("launches"))
            });
        }
        let mut pi = pi0.clone();
        group.throughput(Throughput::Elements(config.inner_steps as u64));
        group.bench_function(format!("{options}/inner-loop-50"), |b| {
            b.iter(|| backend.inner_loop(&problem, &mut pi, &batches, &lambdas, config.eta_in).expect("inner loop"))
        });
    }
    group.finish();
}

criterion_group!(benches, gpu_kernels);
criterion_main!(benches);

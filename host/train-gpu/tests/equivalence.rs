//! The GPU trainer against the CPU trainer: same seed, same data, same mini-batches; the
//! parameters after N inner steps and after a few outer steps agree within float tolerance.
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

use sbd_train::engine::backend::Backend;
use sbd_train::engine::bilevel::Problem;
use sbd_train::domains::data::sample_indices;
use sbd_train::domains::finance::{self, FinanceOptions};
use sbd_train::engine::trainer::{TrainConfig, Trainer, shapes};
use sbd_train::CpuBackend;
use sbd_train::engine::mlp;
use sbd_train_gpu::kernels::KernelOptions;
use sbd_train_gpu::{AdapterChoice, GpuBackend};

/// Largest |gpu - cpu| / (1 + |cpu|) over a parameter vector.
fn worst(gpu: &[f32], cpu: &[f32]) -> f64 {
    gpu.iter()
        .zip(cpu)
        .map(|(g, c)| f64::from((g - c).abs()) / (1.0 + f64::from(c.abs())))
        .fold(0.0, f64::max)
}

fn gpu() -> GpuBackend {
    GpuBackend::new(AdapterChoice::Any).unwrap_or_else(|e| panic!("GPU tests need a Vulkan adapter: {e}"))
}

/// Widths, batch and step size chosen so nothing divides the tile and the parameters move.
fn config() -> TrainConfig {
    TrainConfig {
        seed: 11,
        inner_steps: 7,
        batch: 37,
        width: 40,
        eta_in: 0.05,
        eta_out: 0.01,
        ..TrainConfig::default()
    }
}

#[test]
fn the_inner_loop_gives_the_cpu_parameters_and_losses() {
    if !sbd_train_gpu::testing::gpu_or_skip("the_inner_loop_gives_the_cpu_parameters_and_losses") {
        return;
    }
    let data = finance::load_embedded(&FinanceOptions::default()).expect("data");
    let config = config();
    let (phi_shape, pi_shape) = shapes(data.dataset.state_dim, data.dataset.sub_agents.len(), &config);
    let mut rng = <rand::rngs::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
    let pi0: Vec<f32> = mlp::init(&pi_shape, &mut rng, 0.1);
    let lambdas: Vec<f32> =
        (0..data.dataset.train.len).map(|i| 0.2 + 0.6 * ((i % 17) as f32 / 17.0)).collect();
    let batches: Vec<Vec<usize>> = (0..config.inner_steps)
        .map(|_| sample_indices(&mut rng, data.dataset.train.len, config.batch))
        .collect();
    let problem =
        Problem { phi: &phi_shape, pi: &pi_shape, objective: &config.objective, split: &data.dataset.train };

    let mut cpu_pi = pi0.clone();
    let cpu = CpuBackend.inner_loop(&problem, &mut cpu_pi, &batches, &lambdas, config.eta_in).expect("cpu");
    let cpu_pi_first = cpu_pi.clone();
    let moved = worst(&cpu_pi, &pi0);
    assert!(moved > 1e-3, "the inner loop barely moved pi ({moved}): the comparison would prove little");
    // a second call from there: the GPU's must reuse its resident buffers and still agree
    let cpu2 = CpuBackend.inner_loop(&problem, &mut cpu_pi, &batches, &lambdas, config.eta_in).expect("cpu");

    // every way of building the kernels gives the CPU's parameters
    for options in KernelOptions::all() {
        let mut gpu_backend = GpuBackend::with_options(AdapterChoice::Any, options)
            .unwrap_or_else(|e| panic!("GPU tests need a Vulkan adapter: {e}"));
        let mut gpu_pi = pi0.clone();
        let gpu = gpu_backend.inner_loop(&problem, &mut gpu_pi, &batches, &lambdas, config.eta_in).expect("gpu");
        let gap = worst(&gpu_pi, &cpu_pi_first);
        eprintln!("inner loop ({options}): pi moved {moved:.3e}, GPU vs CPU {gap:.3e}");
        assert!(gap < 1e-5, "{options}: pi after {} steps: {gap}", config.inner_steps);
        assert!(worst(&gpu.before_last_step, &cpu.before_last_step) < 1e-5, "{options}: pi before the last step");
        for (g, c, what) in [(gpu.first, cpu.first, "first"), (gpu.last, cpu.last, "last")] {
            assert!(
                (g.loss - c.loss).abs() < 1e-4 * (1.0 + c.loss.abs()),
                "{options}: {what} loss {} vs {}",
                g.loss,
                c.loss
            );
            assert!((g.safety - c.safety).abs() < 1e-4, "{options}: {what} safety");
            assert!((g.efficiency - c.efficiency).abs() < 1e-4, "{options}: {what} efficiency");
        }

        let gpu2 =
            gpu_backend.inner_loop(&problem, &mut gpu_pi, &batches, &lambdas, config.eta_in).expect("gpu");
        let gap = worst(&gpu_pi, &cpu_pi);
        assert!(gap < 1e-5, "{options}: pi after a second inner loop: {gap}");
        assert!((gpu2.last.loss - cpu2.last.loss).abs() < 1e-4 * (1.0 + cpu2.last.loss.abs()));
    }
}

#[test]
fn a_step_profile_lists_every_dispatch_in_order_and_refuses_one_past_the_end() {
    if !sbd_train_gpu::testing::gpu_or_skip("a_step_profile_lists_every_dispatch_in_order_and_refuses_one_past_the_end") {
        return;
    }
    let data = finance::load_embedded(&FinanceOptions::default()).expect("data");
    let config = config();
    let (phi_shape, pi_shape) = shapes(data.dataset.state_dim, data.dataset.sub_agents.len(), &config);
    let mut rng = <rand::rngs::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
    let pi0: Vec<f32> = mlp::init(&pi_shape, &mut rng, 0.1);
    let lambdas = vec![0.5f32; data.dataset.train.len];
    let batches: Vec<Vec<usize>> = (0..config.inner_steps)
        .map(|_| sample_indices(&mut rng, data.dataset.train.len, config.batch))
        .collect();
    let problem =
        Problem { phi: &phi_shape, pi: &pi_shape, objective: &config.objective, split: &data.dataset.train };
    let mut backend = gpu();
    assert!(backend.repeat_dispatch(0, 1).is_err(), "nothing was prepared yet");
    let labels = backend.profile(&problem, &pi0, &batches, &lambdas, config.eta_in).expect("profile");
    let layers = pi_shape.layers();
    let mut want = vec!["gather".to_string()];
    want.extend((0..layers).map(|l| format!("forward {l}")));
    want.extend(["head", "penalty", "combine"].map(String::from));
    for l in (0..layers).rev() {
        want.push(format!("weight gradient {l}"));
        want.push(format!("bias gradient {l}"));
        if l > 0 {
            want.push(format!("input gradient {l}"));
        }
    }
    want.extend(["sgd", "advance"].map(String::from));
    assert_eq!(labels, want);
    for index in 0..labels.len() {
        backend.repeat_dispatch(index, 3).unwrap_or_else(|e| panic!("dispatch {index}: {e}"));
    }
    let past = backend.repeat_dispatch(labels.len(), 1).expect_err("one past the end");
    assert!(past.to_string().contains(&format!("there is no {}", labels.len())), "{past}");
}

#[test]
fn whole_outer_steps_match_the_cpu_trainer() {
    if !sbd_train_gpu::testing::gpu_or_skip("whole_outer_steps_match_the_cpu_trainer") {
        return;
    }
    let data = finance::load_embedded(&FinanceOptions::default()).expect("data");
    let mut cpu = Trainer::new(&data.dataset, config(), CpuBackend).expect("cpu trainer");
    let mut gpu = Trainer::new(&data.dataset, config(), gpu()).expect("gpu trainer");
    for step in 1..=3 {
        let (c, g) = (cpu.step().expect("cpu step"), gpu.step().expect("gpu step"));
        let (cpu_phi, cpu_pi) = cpu.parameters();
        let (gpu_phi, gpu_pi) = gpu.parameters();
        eprintln!("outer step {step}: pi {:.3e}, phi {:.3e}", worst(gpu_pi, cpu_pi), worst(gpu_phi, cpu_phi));
        assert!(worst(gpu_pi, cpu_pi) < 1e-5, "outer step {step}: pi differs by {}", worst(gpu_pi, cpu_pi));
        assert!(
            worst(gpu_phi, cpu_phi) < 1e-5,
            "outer step {step}: phi differs by {}",
            worst(gpu_phi, cpu_phi)
        );
        assert!((g.l_meta - c.l_meta).abs() < 1e-3 * (1.0 + c.l_meta.abs()), "outer step {step}: L_meta");
        assert_eq!(g.safety_rate, c.safety_rate, "outer step {step}: validation Safety Rate");
    }
}

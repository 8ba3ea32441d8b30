//! Every kernel against a CPU reference on random, non-zero inputs whose sizes do not divide
//! the tile (16) or the workgroup (64).
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use sbd_train::domains::data::Split;
use sbd_train::engine::objective::Objective;
use sbd_train_gpu::context::Gpu;
use sbd_train_gpu::kernels::{self, Dispatch, KernelOptions, Kernels, MatmulParams};
use sbd_train_gpu::{AdapterChoice, GpuBackend};

fn backend() -> GpuBackend {
    GpuBackend::new(AdapterChoice::Any).unwrap_or_else(|e| panic!("GPU tests need a Vulkan adapter: {e}"))
}

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn run(gpu: &Gpu, dispatches: &[&Dispatch]) {
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    {
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
        for d in dispatches {
            d.record(&mut pass);
        }
    }
    gpu.queue.submit([encoder.finish()]);
    gpu.wait().expect("wait");
}

fn read(gpu: &Gpu, buffer: &wgpu::Buffer, n: usize) -> Vec<f32> {
    gpu.read(&[(buffer, n)]).expect("read").remove(0)
}

fn close(got: &[f32], want: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(*g) - w).abs() <= tolerance * (1.0 + w.abs()), "{what}[{i}]: gpu {g} vs cpu {w}");
    }
}

/// A(i,k) and B(k,j) from strided storage, as the shader reads them.
fn reference(a: &[f32], b: &[f32], p: &MatmulParams) -> Vec<f64> {
    let mut c = vec![0.0; (p.m * p.n) as usize];
    for i in 0..p.m {
        for j in 0..p.n {
            let mut acc = 0.0f64;
            for k in 0..p.k {
                let av = a[(p.a_offset + i * p.a_row + k * p.a_col) as usize];
                let bv = b[(p.b_offset + k * p.b_row + j * p.b_col) as usize];
                acc += f64::from(av) * f64::from(bv);
            }
            c[(i * p.n + j) as usize] = acc;
        }
    }
    c
}

#[test]
fn matmul_matches_the_cpu_for_every_layout_and_option() {
    if !sbd_train_gpu::testing::gpu_or_skip("matmul_matches_the_cpu_for_every_layout_and_option") {
        return;
    }
    // every form of the kernel and both compilations give the same products
    for options in KernelOptions::all() {
        let backend = GpuBackend::with_options(AdapterChoice::Any, options)
            .unwrap_or_else(|e| panic!("GPU tests need a Vulkan adapter: {e}"));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // one partial block, then several blocks in each direction with ragged edges
        for (m, kk, n) in [(37u32, 45u32, 29u32), (131, 83, 97)] {
            matmul_case(&backend, &mut rng, m, kk, n, options);
        }
    }
}

fn matmul_case(backend: &GpuBackend, rng: &mut ChaCha8Rng, m: u32, kk: u32, n: u32, options: KernelOptions) {
    let (gpu, k) = (backend.gpu(), backend.kernels());
    let a = random(rng, 3 + (m * kk) as usize);
    let b = random(rng, 5 + (kk * n) as usize);
    let bias = random(rng, 7 + n as usize);
    let mask = random(rng, (m * n) as usize);
    let c0 = random(rng, (m * n) as usize);
    let (ga, gb, gbias, gmask) = (
        gpu.storage("a", &a).expect("a"),
        gpu.storage("b", &b).expect("b"),
        gpu.storage("bias", &bias).expect("bias"),
        gpu.storage("mask", &mask).expect("mask"),
    );
    let layouts = [
        // row-major A and B, with offsets
        (3, kk, 1, 5, n, 1),
        // A transposed (stored k x m), B transposed (stored n x k)
        (3, 1, m, 5, 1, kk),
    ];
    for (a_offset, a_row, a_col, b_offset, b_row, b_col) in layouts {
        for flags in [0, kernels::ADD_BIAS | kernels::RELU, kernels::ACCUMULATE, kernels::MASK] {
            let p = MatmulParams {
                m,
                k: kk,
                n,
                a_offset,
                a_row,
                a_col,
                b_offset,
                b_row,
                b_col,
                bias_offset: 7,
                flags,
                ..Default::default()
            };
            let gc = gpu.storage("c", &c0).expect("c");
            let d = k.matmul(gpu, &ga, &gb, &gc, Some(&gbias), Some(&gmask), p).expect("dispatch");
            run(gpu, &[&d]);
            let mut want = reference(&a, &b, &p);
            for (idx, w) in want.iter_mut().enumerate() {
                let j = idx % n as usize;
                if flags & kernels::ADD_BIAS != 0 {
                    *w += f64::from(bias[7 + j]);
                }
                if flags & kernels::ACCUMULATE != 0 {
                    *w += f64::from(c0[idx]);
                }
                if flags & kernels::RELU != 0 {
                    *w = w.max(0.0);
                }
                if flags & kernels::MASK != 0 && mask[idx] <= 0.0 {
                    *w = 0.0;
                }
            }
            close(
                &read(gpu, &gc, (m * n) as usize),
                &want,
                1e-5,
                &format!("matmul ({options}) {m}x{kk}x{n} flags {flags} layout {a_row}/{b_row}"),
            );
        }
    }
}

fn split(rng: &mut ChaCha8Rng, len: usize, dim: usize, agents: usize) -> Split {
    Split {
        len,
        states: random(rng, len * dim),
        unsafe_above: (0..len * agents).map(|_| rng.random_range(0.1f32..0.9)).collect(),
        cost_at_zero: (0..len * agents).map(|_| rng.random_range(0.1f32..0.9)).collect(),
        cost_at_one: (0..len * agents).map(|_| rng.random_range(0.0f32..1.0)).collect(),
        alpha_max: (0..len).map(|i| if i % 3 == 0 { 0.6 } else { 1.0 }).collect(),
        risk: vec![0.0; len],
        labels: vec![String::new(); len],
    }
}

fn packed(s: &Split, agents: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for i in 0..s.len {
        let r = i * agents..(i + 1) * agents;
        out.extend_from_slice(&s.unsafe_above[r.clone()]);
        out.extend_from_slice(&s.cost_at_zero[r.clone()]);
        out.extend_from_slice(&s.cost_at_one[r]);
        out.push(s.alpha_max[i]);
    }
    out
}

#[test]
fn gather_head_penalty_and_combine_match_the_objective() {
    if !sbd_train_gpu::testing::gpu_or_skip("gather_head_penalty_and_combine_match_the_objective") {
        return;
    }
    let backend = backend();
    let (gpu, k): (&Gpu, &Kernels) = (backend.gpu(), backend.kernels());
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (len, dim, agents, batch, steps) = (53, 7, 3, 13, 3);
    let data = split(&mut rng, len, dim, agents);
    let indices: Vec<u32> = (0..steps * batch).map(|_| rng.random_range(0..len as u32)).collect();
    let step = 2usize;
    let current: Vec<usize> = indices[step * batch..(step + 1) * batch].iter().map(|&i| i as usize).collect();
    let lambdas: Vec<f32> = (0..len).map(|_| rng.random_range(0.05f32..0.95)).collect();
    // logits large enough that some alphas exceed their cap
    let out: Vec<f32> = (0..batch * (agents + 1)).map(|_| rng.random_range(-3.0f32..3.0)).collect();
    let objective = Objective { temperature: 0.2, project: true, delta: 0.05, penalty: 4.0, ..Objective::default() };

    let states = gpu.storage("states", &data.states).expect("states");
    let samples = gpu.storage("samples", &packed(&data, agents)).expect("samples");
    let gi = gpu.storage("indices", &indices).expect("indices");
    let counter = gpu.storage("counter", &[step as u32]).expect("counter");
    let gl = gpu.storage("lambdas", &lambdas).expect("lambdas");
    let go = gpu.storage("out", &out).expect("out");
    let x = gpu.zeros("x", batch * dim).expect("x");
    let head_out = gpu.zeros("head", batch * kernels::head_stride(agents)).expect("head");
    let scalars = gpu.zeros("scalars", 1).expect("scalars");
    let d_out = gpu.zeros("d_out", batch * (agents + 1)).expect("d_out");
    let b32 = batch as u32;
    let gather = k.gather(
        gpu,
        &states,
        &gi,
        &counter,
        &x,
        kernels::GatherParams { batch: b32, dim: dim as u32, pad: [0; 2] },
    );
    let head = k.head(
        gpu,
        &go,
        &gi,
        &counter,
        &samples,
        &head_out,
        kernels::HeadParams {
            batch: b32,
            agents: agents as u32,
            project: 1,
            temperature: 0.2,
            margin: objective.margin as f32,
            ..Default::default()
        },
    );
    let penalty = k.penalty(
        gpu,
        &head_out,
        &scalars,
        kernels::PenaltyParams {
            batch: b32,
            stride: kernels::head_stride(agents) as u32,
            delta: 0.05,
            penalty: 4.0,
            ..Default::default()
        },
    );
    let combine = k.combine(
        gpu,
        &head_out,
        &gl,
        &gi,
        &counter,
        &scalars,
        &d_out,
        kernels::CombineParams { batch: b32, agents: agents as u32, pad: [0; 2] },
    );
    let (gather, head, penalty, combine) =
        (gather.expect("gather"), head.expect("head"), penalty.expect("penalty"), combine.expect("combine"));
    run(gpu, &[&gather, &head, &penalty, &combine]);

    let want_x: Vec<f64> =
        current.iter().flat_map(|&i| data.state(i, dim).iter().map(|&v| f64::from(v))).collect();
    close(&read(gpu, &x, batch * dim), &want_x, 0.0, "gather");

    let stride = kernels::head_stride(agents);
    let head_values = read(gpu, &head_out, batch * stride);
    let mut mean_safety = 0.0;
    let losses: Vec<_> = current
        .iter()
        .enumerate()
        .map(|(b, &i)| {
            let row: Vec<f64> =
                out[b * (agents + 1)..(b + 1) * (agents + 1)].iter().map(|&v| f64::from(v)).collect();
            objective.sample::<f64>(&row, &data, i)
        })
        .collect();
    for (b, l) in losses.iter().enumerate() {
        let mut want = vec![l.safety, l.efficiency];
        want.extend(&l.grad_safety);
        want.extend(&l.grad_efficiency);
        close(&head_values[b * stride..(b + 1) * stride], &want, 1e-5, &format!("head sample {b}"));
        mean_safety += l.safety / batch as f64;
    }
    let weight = 2.0 * 4.0 * (mean_safety - 0.05).max(0.0);
    close(&read(gpu, &scalars, 1), &[weight], 1e-5, "penalty");
    let want_d: Vec<f64> = losses
        .iter()
        .zip(&current)
        .flat_map(|(l, &i)| {
            let lambda = f64::from(lambdas[i]);
            l.grad_safety
                .iter()
                .zip(&l.grad_efficiency)
                .map(move |(gs, ge)| ((lambda + weight) * gs + (1.0 - lambda) * ge) / batch as f64)
                .collect::<Vec<_>>()
        })
        .collect();
    close(&read(gpu, &d_out, batch * (agents + 1)), &want_d, 1e-5, "combine");
}

#[test]
fn bias_gradient_sgd_and_the_step_counter() {
    if !sbd_train_gpu::testing::gpu_or_skip("bias_gradient_sgd_and_the_step_counter") {
        return;
    }
    let backend = backend();
    let (gpu, k) = (backend.gpu(), backend.kernels());
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (rows, cols, offset) = (19usize, 71usize, 5usize);
    let delta = random(&mut rng, rows * cols);
    let params = random(&mut rng, 131);
    let grad_start = random(&mut rng, 131);
    let gd = gpu.storage("delta", &delta).expect("delta");
    let gg = gpu.storage("grad", &grad_start).expect("grad");
    let gp = gpu.storage("params", &params).expect("params");
    let counter = gpu.storage("counter", &[41u32]).expect("counter");
    let bias = k
        .bias_grad(
            gpu,
            &gd,
            &gg,
            kernels::UpdateParams {
                rows: rows as u32,
                cols: cols as u32,
                offset: offset as u32,
                ..Default::default()
            },
        )
        .expect("bias");
    run(gpu, &[&bias]);
    let mut want: Vec<f64> = grad_start.iter().map(|&v| f64::from(v)).collect();
    for j in 0..cols {
        want[offset + j] = (0..rows).map(|r| f64::from(delta[r * cols + j])).sum();
    }
    let grad = read(gpu, &gg, 131);
    close(&grad, &want, 1e-5, "bias_grad");

    let sgd = k
        .sgd(gpu, &gg, &gp, kernels::UpdateParams { cols: 131, eta: 0.3, ..Default::default() })
        .expect("sgd");
    let advance = k.advance(gpu, &counter);
    run(gpu, &[&sgd, &advance, &advance]);
    let want: Vec<f64> = params.iter().zip(&grad).map(|(p, g)| f64::from(*p) - 0.3 * f64::from(*g)).collect();
    close(&read(gpu, &gp, 131), &want, 1e-6, "sgd");
    let count = gpu.read(&[(&counter, 1)]).expect("read").remove(0);
    assert_eq!(count[0].to_bits(), 43, "the counter advanced twice");
}

#[test]
fn sgd_covers_more_values_than_one_dispatch_has_invocations() {
    if !sbd_train_gpu::testing::gpu_or_skip("sgd_covers_more_values_than_one_dispatch_has_invocations") {
        return;
    }
    // 65,535 workgroups x 64 invocations = 4,194,240: the kernel must stride past that
    let backend = backend();
    let (gpu, k) = (backend.gpu(), backend.kernels());
    let count = 4_194_240 + 1_001;
    let params: Vec<f32> = (0..count).map(|i| (i % 101) as f32 * 0.01).collect();
    let grad: Vec<f32> = (0..count).map(|i| (i % 7) as f32 - 3.0).collect();
    let gp = gpu.storage("params", &params).expect("params");
    let gg = gpu.storage("grad", &grad).expect("grad");
    let sgd = k
        .sgd(gpu, &gg, &gp, kernels::UpdateParams { cols: count as u32, eta: 0.5, ..Default::default() })
        .expect("sgd");
    run(gpu, &[&sgd]);
    let got = read(gpu, &gp, count);
    for i in [0, 4_194_239, 4_194_240, count - 1] {
        let want = params[i] - 0.5 * grad[i];
        assert!((got[i] - want).abs() < 1e-6, "value {i}: {} vs {want}", got[i]);
    }
}

#[test]
fn a_grid_whose_item_count_passes_u32_is_refused_not_wrapped() {
    if !sbd_train_gpu::testing::gpu_or_skip("a_grid_whose_item_count_passes_u32_is_refused_not_wrapped") {
        return;
    }
    let backend = backend();
    let (gpu, k) = (backend.gpu(), backend.kernels());
    let one = gpu.zeros("one", 1).expect("buffer");
    // 70,000 x 70,000 = 4.9e9 items: the kernel's 32-bit product would wrap to 605 million
    let error = k
        .gather(gpu, &one, &one, &one, &one, kernels::GatherParams { batch: 70_000, dim: 70_000, pad: [0; 2] })
        .err()
        .expect("refused");
    assert!(error.to_string().contains("the mini-batch gather has 4900000000 items"), "{error}");
}

//! [`GpuBackend`]: the inner loop of Algorithm 1 on the device.
//!
//! Per outer step the host uploads pi, lambda for every training sample and the indices of
//! all T_in mini-batches in bulk, then records T_in inner steps (21 dispatches each for a
//! 4-layer pi: gather, forward, losses, penalty, cotangent, backward, SGD, step counter) into
//! one command buffer and submits it once. Parameters, gradients, activations and the split
//! stay on the device; nothing is read back until the loop ends, when pi, pi before the last
//! step and the first and last steps' losses come back in one copy.
//!
//! The outer step's hypergradient is handed to the CPU ([`sbd_train::engine::bilevel`]): it is one
//! forward-backward pass against the inner loop's fifty, and it needs pi_{T-1} and pi_T,
//! which the read-back already brings.

use sbd_train::TrainError;
use sbd_train::engine::backend::{Backend, InnerLoop};
use sbd_train::engine::bilevel::{BatchStats, Hypergradient, Problem};
use sbd_train::domains::data::Split;
use sbd_train::engine::mlp::Shape;
use sbd_train::engine::objective::{AlphaMode, Objective};

use crate::context::{AdapterChoice, Gpu, GpuError};
use crate::kernels::{self, Dispatch, KernelOptions, Kernels, MatmulParams, UpdateParams};

/// What the resident buffers were built for; a change rebuilds them.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    split: u64,
    len: usize,
    sizes: Vec<usize>,
    batch: usize,
    steps: usize,
    objective: [u64; 5],
    eta: u64,
}

struct Resident {
    key: Key,
    lambdas: wgpu::Buffer,
    indices: wgpu::Buffer,
    counter: wgpu::Buffer,
    params: wgpu::Buffer,
    params_prev: wgpu::Buffer,
    head_out: wgpu::Buffer,
    head_first: wgpu::Buffer,
    head_last: wgpu::Buffer,
    step: Vec<Dispatch>,
    // held so the bind groups' buffers outlive them explicitly
    _buffers: Vec<wgpu::Buffer>,
}

/// A hash of a split's contents (FNV-1a over the bits of every value the kernels read), so
/// resident buffers are rebuilt for different data even at the same address and length.
fn fingerprint(split: &Split) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let parts =
        [&split.states, &split.unsafe_above, &split.cost_at_zero, &split.cost_at_one, &split.alpha_max];
    for value in parts.into_iter().flatten() {
        hash = (hash ^ u64::from(value.to_bits())).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The GPU backend.
pub struct GpuBackend {
    gpu: Gpu,
    kernels: Kernels,
    resident: Option<Resident>,
}

fn u32_of(value: usize, what: &str) -> Result<u32, GpuError> {
    u32::try_from(value).map_err(|_| GpuError::Operation(format!("{what} ({value}) does not fit in 32 bits")))
}

impl GpuBackend {
    /// Opens a device and compiles the kernels.
    pub fn new(choice: AdapterChoice) -> Result<GpuBackend, GpuError> {
        GpuBackend::with_options(choice, KernelOptions::default())
    }

    /// Opens a device and compiles the kernels as `options` say (for benchmarks).
    pub fn with_options(choice: AdapterChoice, options: KernelOptions) -> Result<GpuBackend, GpuError> {
        let gpu = Gpu::open(choice)?;
        let kernels = Kernels::with_options(&gpu, options)?;
        Ok(GpuBackend { gpu, kernels, resident: None })
    }

    /// The device the kernels run on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The compiled kernels.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    fn key(problem: &Problem<'_>, batches: &[Vec<usize>], eta_in: f64) -> Key {
        let o: &Objective = problem.objective;
        Key {
            split: fingerprint(problem.split),
            len: problem.split.len,
            sizes: problem.pi.sizes().to_vec(),
            batch: batches.first().map_or(0, Vec::len),
            steps: batches.len(),
            objective: [
                o.temperature.to_bits(),
                o.margin.to_bits(),
                u64::from(o.project),
                o.delta.to_bits(),
                o.penalty.to_bits(),
            ],
            eta: eta_in.to_bits(),
        }
    }

    fn build(&self, problem: &Problem<'_>, key: Key) -> Result<Resident, GpuError> {
        let gpu = &self.gpu;
        let k = &self.kernels;
        let split: &Split = problem.split;
        let shape: &Shape = problem.pi;
        let agents = shape.outputs() - 1;
        let batch = key.batch;
        let dim = shape.inputs();

        let mut packed = Vec::with_capacity(split.len * kernels::sample_stride(agents));
        for i in 0..split.len {
            let row = i * agents..(i + 1) * agents;
            packed.extend_from_slice(&split.unsafe_above[row.clone()]);
            packed.extend_from_slice(&split.cost_at_zero[row.clone()]);
            packed.extend_from_slice(&split.cost_at_one[row]);
            packed.push(split.alpha_max[i]);
        }
        let states = gpu.storage("training states", &split.states)?;
        let samples = gpu.storage("training samples", &packed)?;
        let lambdas = gpu.zeros("lambdas", split.len)?;
        let indices = gpu.storage("mini-batch indices", &vec![0u32; key.steps * batch])?;
        let counter = gpu.storage("step counter", &[0u32])?;
        let scalars = gpu.zeros("penalty weight", 1)?;
        let params = gpu.zeros("pi parameters", shape.parameters())?;
        let params_prev = gpu.zeros("pi before the last step", shape.parameters())?;
        let grad = gpu.zeros("pi gradient", shape.parameters())?;
        let widest = shape.sizes().iter().copied().max().unwrap_or(1);
        let acts: Vec<wgpu::Buffer> = (0..shape.layers())
            .map(|l| gpu.zeros("activations", batch * shape.sizes()[l]))
            .collect::<Result<_, _>>()?;
        let out = gpu.zeros("pi output", batch * shape.outputs())?;
        let deltas = [gpu.zeros("delta", batch * widest)?, gpu.zeros("delta", batch * widest)?];
        let head_len = batch * kernels::head_stride(agents);
        let head_out = gpu.zeros("per-sample losses", head_len)?;
        let head_first = gpu.zeros("first step's losses", head_len)?;
        let head_last = gpu.zeros("last step's losses", head_len)?;

        let b32 = u32_of(batch, "batch")?;
        let mut step = Vec::new();
        step.push(k.gather(
            gpu,
            &states,
            &indices,
            &counter,
            &acts[0],
            kernels::GatherParams { batch: b32, dim: u32_of(dim, "state length")?, pad: [0; 2] },
        )?);
        let layers = shape.layers();
        for l in 0..layers {
            let (i, o) = shape.layer(l);
            let (w, b) = shape.offsets(l);
            let last = l + 1 == layers;
            let c = if last { &out } else { &acts[l + 1] };
            step.push(k.matmul(
                gpu,
                &acts[l],
                &params,
                c,
                Some(&params),
                None,
                MatmulParams {
                    m: b32,
                    k: u32_of(i, "width")?,
                    n: u32_of(o, "width")?,
                    a_row: u32_of(i, "width")?,
                    a_col: 1,
                    b_offset: u32_of(w, "offset")?,
                    b_row: u32_of(o, "width")?,
                    b_col: 1,
                    bias_offset: u32_of(b, "offset")?,
                    flags: kernels::ADD_BIAS | if last { 0 } else { kernels::RELU },
                    ..MatmulParams::default()
                },
            )?
            .labelled(format!("forward {l}")));
        }
        let o = problem.objective;
        step.push(k.head(
            gpu,
            &out,
            &indices,
            &counter,
            &samples,
            &head_out,
            kernels::HeadParams {
                batch: b32,
                agents: u32_of(agents, "agents")?,
                project: u32::from(o.project),
                temperature: o.temperature as f32,
                margin: o.margin as f32,
                ..Default::default()
            },
        )?);
        step.push(k.penalty(
            gpu,
            &head_out,
            &scalars,
            kernels::PenaltyParams {
                batch: b32,
                stride: u32_of(kernels::head_stride(agents), "stride")?,
                delta: o.delta as f32,
                penalty: o.penalty as f32,
                ..Default::default()
            },
        )?);
        step.push(k.combine(
            gpu,
            &head_out,
            &lambdas,
            &indices,
            &counter,
            &scalars,
            &deltas[0],
            kernels::CombineParams { batch: b32, agents: u32_of(agents, "agents")?, pad: [0; 2] },
        )?);
        let mut current = 0;
        for l in (0..layers).rev() {
            let (i, o) = shape.layer(l);
            let (w, b) = shape.offsets(l);
            // dW = h_l^T delta
            step.push(k.matmul(
                gpu,
                &acts[l],
                &deltas[current],
                &grad,
                None,
                None,
                MatmulParams {
                    m: u32_of(i, "width")?,
                    k: b32,
                    n: u32_of(o, "width")?,
                    a_row: 1,
                    a_col: u32_of(i, "width")?,
                    b_row: u32_of(o, "width")?,
                    b_col: 1,
                    c_offset: u32_of(w, "offset")?,
                    ..MatmulParams::default()
                },
            )?
            .labelled(format!("weight gradient {l}")));
            step.push(k.bias_grad(
                gpu,
                &deltas[current],
                &grad,
                UpdateParams {
                    rows: b32,
                    cols: u32_of(o, "width")?,
                    offset: u32_of(b, "offset")?,
                    ..Default::default()
                },
            )?
            .labelled(format!("bias gradient {l}")));
            if l > 0 {
                // delta_prev = (delta W^T) masked by ReLU'(h_l)
                step.push(k.matmul(
                    gpu,
                    &deltas[current],
                    &params,
                    &deltas[1 - current],
                    None,
                    Some(&acts[l]),
                    MatmulParams {
                        m: b32,
                        k: u32_of(o, "width")?,
                        n: u32_of(i, "width")?,
                        a_row: u32_of(o, "width")?,
                        a_col: 1,
                        b_offset: u32_of(w, "offset")?,
                        b_row: 1,
                        b_col: u32_of(o, "width")?,
                        flags: kernels::MASK,
                        ..MatmulParams::default()
                    },
                )?
                .labelled(format!("input gradient {l}")));
                current = 1 - current;
            }
        }
        step.push(k.sgd(
            gpu,
            &grad,
            &params,
            UpdateParams {
                cols: u32_of(shape.parameters(), "parameter count")?,
                eta: f64::from_bits(key.eta) as f32,
                ..Default::default()
            },
        )?);
        step.push(k.advance(gpu, &counter));

        let mut buffers = vec![states, samples, scalars, grad, out];
        buffers.extend(acts);
        buffers.extend(deltas);
        Ok(Resident {
            key,
            lambdas,
            indices,
            counter,
            params,
            params_prev,
            head_out,
            head_first,
            head_last,
            step,
            _buffers: buffers,
        })
    }

    /// Builds the resident buffers for `problem` unless they already fit it, and uploads pi,
    /// lambda and the indices of every mini-batch: all an inner loop needs before it is recorded.
    fn load(
        &mut self,
        problem: &Problem<'_>,
        pi: &[f32],
        batches: &[Vec<usize>],
        lambdas: &[f32],
        eta_in: f64,
    ) -> Result<(), TrainError> {
        let batch = batches.first().map_or(0, Vec::len);
        if batch == 0 || batches.iter().any(|b| b.len() != batch) {
            return Err(TrainError::Config("the GPU backend needs mini-batches of one non-zero size".into()));
        }
        if problem.objective.alpha != AlphaMode::Continuous {
            // the head kernel implements SBD's continuous alpha only; the discrete and fixed
            // alphas of the section 6 baselines run on the CPU backend
            return Err(TrainError::Config("the GPU backend supports continuous alpha only".into()));
        }
        if problem.objective.weight_decay != 0.0 {
            // the SGD kernel has no ridge term: SBD-AL (which sets one) runs on the CPU backend
            return Err(TrainError::Config("the GPU backend does not support a weight decay on pi".into()));
        }
        let key = Self::key(problem, batches, eta_in);
        if self.resident.as_ref().is_none_or(|r| r.key != key) {
            self.resident = None;
            self.resident = Some(self.build(problem, key)?);
        }
        let Some(r) = &self.resident else {
            return Err(TrainError::Device("GPU buffers were not built".into()));
        };
        let gpu = &self.gpu;
        let mut flat = Vec::with_capacity(batches.len() * batch);
        for b in batches {
            for &i in b {
                flat.push(u32_of(i, "sample index")?);
            }
        }
        gpu.write(&r.params, pi);
        gpu.write(&r.lambdas, lambdas);
        gpu.write(&r.indices, &flat);
        gpu.write(&r.counter, &[0u32]);
        Ok(())
    }

    /// Prepares a profile of one inner step: loads `problem` as [`Backend::inner_loop`] would
    /// and returns the labels of the step's dispatches, in the order they run.
    pub fn profile(
        &mut self,
        problem: &Problem<'_>,
        pi: &[f32],
        batches: &[Vec<usize>],
        lambdas: &[f32],
        eta_in: f64,
    ) -> Result<Vec<String>, TrainError> {
        self.load(problem, pi, batches, lambdas, eta_in)?;
        Ok(self.resident.iter().flat_map(|r| r.step.iter().map(|d| d.label.clone())).collect())
    }

    /// Runs dispatch `index` of the step [`GpuBackend::profile`] prepared `times` times in one
    /// compute pass, and waits until the device is done. The step counter is reset first, so
    /// every launch reads the first mini-batch and stays inside the index buffer. Afterwards
    /// the resident parameters, gradient and activations hold whatever the launches wrote (and
    /// the counter is at `times` after the step-counter kernel): profile on a backend whose
    /// next [`Backend::inner_loop`] uploads its own inputs again, as it always does.
    pub fn repeat_dispatch(&self, index: usize, times: usize) -> Result<(), GpuError> {
        let r = self.resident.as_ref().ok_or_else(|| GpuError::Operation("no step was prepared".into()))?;
        let dispatch = r.step.get(index).ok_or_else(|| {
            GpuError::Operation(format!("the step has {} dispatches; there is no {index}", r.step.len()))
        })?;
        self.gpu.write(&r.counter, &[0u32]);
        let validation = self.gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(dispatch.label.as_str()),
                timestamp_writes: None,
            });
            for _ in 0..times {
                dispatch.record(&mut pass);
            }
        }
        self.gpu.queue.submit([encoder.finish()]);
        if let Some(e) = pollster::block_on(validation.pop()) {
            return Err(GpuError::Operation(format!("`{}` was rejected: {e}", dispatch.label)));
        }
        self.gpu.wait()
    }

    /// Losses of one step as [`sbd_train::engine::bilevel::Problem::inner_gradient`] reports them.
    fn stats(
        head: &[f32],
        batch: &[usize],
        lambdas: &[f32],
        agents: usize,
        objective: &Objective,
    ) -> BatchStats {
        let stride = kernels::head_stride(agents);
        let n = batch.len().max(1) as f64;
        let mut stats = BatchStats::default();
        let mut weighted = 0.0;
        for (b, &i) in batch.iter().enumerate() {
            let (safety, efficiency) = (f64::from(head[b * stride]), f64::from(head[b * stride + 1]));
            let lambda = f64::from(lambdas[i]);
            stats.safety += safety / n;
            stats.efficiency += efficiency / n;
            weighted += (lambda * safety + (1.0 - lambda) * efficiency) / n;
        }
        let excess = (stats.safety - objective.delta).max(0.0);
        stats.loss = weighted + objective.penalty * excess * excess;
        stats
    }
}

impl Backend for GpuBackend {
    fn description(&self) -> String {
        format!("gpu: {}", self.gpu.adapter)
    }

    fn inner_loop(
        &mut self,
        problem: &Problem<'_>,
        pi: &mut [f32],
        batches: &[Vec<usize>],
        lambdas: &[f32],
        eta_in: f64,
    ) -> Result<InnerLoop, TrainError> {
        let batch = batches.first().map_or(0, Vec::len);
        self.load(problem, pi, batches, lambdas, eta_in)?;
        let Some(r) = &self.resident else {
            return Err(TrainError::Device("GPU buffers were not built".into()));
        };
        let gpu = &self.gpu;

        // any validation or memory error while recording or submitting becomes an error here
        // instead of wgpu's default handler (a panic)
        let memory = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let parameter_bytes = (pi.len() * 4) as u64;
        let head_bytes = r.head_out.size();
        let mut encoder =
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("inner loop") });
        let steps = batches.len();
        for k in 0..steps {
            if k + 1 == steps {
                encoder.copy_buffer_to_buffer(&r.params, 0, &r.params_prev, 0, parameter_bytes);
            }
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("inner step"),
                    timestamp_writes: None,
                });
                for dispatch in &r.step {
                    dispatch.record(&mut pass);
                }
            }
            if k == 0 {
                encoder.copy_buffer_to_buffer(&r.head_out, 0, &r.head_first, 0, head_bytes);
            }
            if k + 1 == steps {
                encoder.copy_buffer_to_buffer(&r.head_out, 0, &r.head_last, 0, head_bytes);
            }
        }
        gpu.queue.submit([encoder.finish()]);
        if let Some(e) = pollster::block_on(validation.pop()) {
            return Err(GpuError::Operation(format!("the inner loop was rejected: {e}")).into());
        }
        if pollster::block_on(memory.pop()).is_some() {
            return Err(GpuError::Operation("out of GPU memory while running the inner loop".into()).into());
        }

        let agents = problem.pi.outputs() - 1;
        let head_len = batch * kernels::head_stride(agents);
        let mut back = gpu
            .read(&[
                (&r.params, pi.len()),
                (&r.params_prev, pi.len()),
                (&r.head_first, head_len),
                (&r.head_last, head_len),
            ])?
            .into_iter();
        let (Some(after), Some(before_last_step), Some(first), Some(last)) =
            (back.next(), back.next(), back.next(), back.next())
        else {
            return Err(TrainError::Device("a read-back returned too few buffers".into()));
        };
        if after.iter().any(|p| !p.is_finite()) {
            return Err(TrainError::Diverged("pi has a non-finite parameter after the inner loop".into()));
        }
        pi.copy_from_slice(&after);
        let first_batch = batches.first().map(Vec::as_slice).unwrap_or_default();
        let last_batch = batches.last().map(Vec::as_slice).unwrap_or_default();
        Ok(InnerLoop {
            before_last_step,
            first: Self::stats(&first, first_batch, lambdas, agents, problem.objective),
            last: Self::stats(&last, last_batch, lambdas, agents, problem.objective),
        })
    }

    fn hypergradient(
        &mut self,
        problem: &Problem<'_>,
        phi: &[f32],
        pi_prev: &[f32],
        pi_last: &[f32],
        last_batch: &[usize],
        meta_batch: &[usize],
        eta_in: f64,
    ) -> Result<Hypergradient<f32>, TrainError> {
        // the documented hand-off: the outer step's pieces run on the CPU (module docs)
        Ok(problem.hypergradient(phi, pi_prev, pi_last, last_batch, meta_batch, eta_in))
    }
}

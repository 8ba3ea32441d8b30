//! The WGSL kernels (`src/shaders/`), their parameter blocks, and recorded dispatches.
//!
//! Every kernel is a compute pipeline with its default bind-group layout. A [`Dispatch`] is a
//! pipeline, a bind group and a workgroup count, built once and recorded as often as needed:
//! the inner loop records the same dispatches T_in times into one compute pass.

use bytemuck::{Pod, Zeroable};

use crate::context::{Gpu, GpuError};

/// Edge of the block of C one matrix-product workgroup computes (`matmul_common.wgsl`).
pub const BLOCK: u32 = 64;
/// Workgroup size of the one-dimensional kernels.
pub const GROUP: u32 = 64;

/// `matmul_common.wgsl` flag: add the bias row.
pub const ADD_BIAS: u32 = 1;
/// `matmul_common.wgsl` flag: add into C.
pub const ACCUMULATE: u32 = 2;
/// `matmul_common.wgsl` flag: ReLU the result.
pub const RELU: u32 = 4;
/// `matmul_common.wgsl` flag: zero entries where the mask is not positive.
pub const MASK: u32 = 8;

/// Parameters of the matrix product (`matmul_common.wgsl` says what they mean).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct MatmulParams {
    pub m: u32,
    pub k: u32,
    pub n: u32,
    pub a_offset: u32,
    pub a_row: u32,
    pub a_col: u32,
    pub b_offset: u32,
    pub b_row: u32,
    pub b_col: u32,
    pub c_offset: u32,
    pub bias_offset: u32,
    pub flags: u32,
    pub mask_offset: u32,
    pub pad: [u32; 3],
}

/// Parameters of `gather.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct GatherParams {
    pub batch: u32,
    pub dim: u32,
    pub pad: [u32; 2],
}

/// Parameters of `head.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct HeadParams {
    pub batch: u32,
    pub agents: u32,
    pub project: u32,
    pub pad: u32,
    pub temperature: f32,
    /// The surrogate's margin (`Objective::margin`).
    pub margin: f32,
    pub pad2: [f32; 2],
}

/// Parameters of `penalty.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct PenaltyParams {
    pub batch: u32,
    pub stride: u32,
    pub pad: [u32; 2],
    pub delta: f32,
    pub penalty: f32,
    pub pad2: [f32; 2],
}

/// Parameters of `combine.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct CombineParams {
    pub batch: u32,
    pub agents: u32,
    pub pad: [u32; 2],
}

/// Parameters of `update.wgsl` (`bias_grad` and `sgd`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct UpdateParams {
    pub rows: u32,
    pub cols: u32,
    pub offset: u32,
    pub pad: u32,
    pub eta: f32,
    pub pad2: [f32; 3],
}

/// Stride of one sample in the head's output buffer: l_safe, l_eff, two gradient rows.
pub fn head_stride(agents: usize) -> usize {
    2 * agents + 4
}

/// Stride of one sample in the packed sample buffer: unsafe_above, costs at 0 and 1, alpha_max.
pub fn sample_stride(agents: usize) -> usize {
    3 * agents + 1
}

/// The form of the matrix-product kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulForm {
    /// `matmul.wgsl` (after `matmul_common.wgsl`): each invocation's 4 x 4 block of C in an
    /// indexed array, filled by loops.
    Looped,
    /// `matmul_vec4.wgsl` (after `matmul_common.wgsl`): the same block in four vec4
    /// registers, no per-element loops.
    Vector,
}

/// How the kernels are built. [`KernelOptions::default`] is what training uses;
/// `benches/gpu_kernels.rs` measures each choice against it on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelOptions {
    /// wgpu's loop bounding (`ShaderRuntimeChecks::force_loop_bounding`): Naga gives every loop
    /// an extra counter that forces it to end, because a driver may treat a loop that never
    /// ends as undefined behaviour. Every loop in `src/shaders/` ends by construction (see the
    /// `unsafe` block in [`Kernels::with_options`]), so turning it off is sound for these
    /// kernels; bounds checks on buffer accesses stay on either way.
    pub loop_bounding: bool,
    /// The matrix-product kernel.
    pub matmul: MatmulForm,
}

impl Default for KernelOptions {
    /// The fastest choice measured on an NVIDIA H200 (docs/performance.md): the vec4 product
    /// without loop bounding, 25x faster per inner step than the looped product with it.
    fn default() -> Self {
        KernelOptions { loop_bounding: false, matmul: MatmulForm::Vector }
    }
}

impl KernelOptions {
    /// Every combination.
    pub fn all() -> [KernelOptions; 4] {
        let form = |matmul, loop_bounding| KernelOptions { loop_bounding, matmul };
        [
            form(MatmulForm::Looped, true),
            form(MatmulForm::Looped, false),
            form(MatmulForm::Vector, true),
            form(MatmulForm::Vector, false),
        ]
    }
}

impl std::fmt::Display for KernelOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let matmul = match self.matmul {
            MatmulForm::Looped => "looped",
            MatmulForm::Vector => "vec4",
        };
        let bounding = if self.loop_bounding { "bounded" } else { "unbounded" };
        write!(f, "{matmul}-{bounding}")
    }
}

/// The compiled kernels.
pub struct Kernels {
    matmul: wgpu::ComputePipeline,
    gather: wgpu::ComputePipeline,
    head: wgpu::ComputePipeline,
    penalty: wgpu::ComputePipeline,
    combine: wgpu::ComputePipeline,
    bias_grad: wgpu::ComputePipeline,
    sgd: wgpu::ComputePipeline,
    advance: wgpu::ComputePipeline,
    /// Bound where a kernel's optional input (bias, mask) is unused.
    unused: wgpu::Buffer,
}

/// One recorded kernel launch.
pub struct Dispatch {
    /// What it computes, e.g. `forward 2` (for profiles and errors).
    pub label: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

impl Dispatch {
    /// The same launch under another label.
    pub fn labelled(mut self, label: impl Into<String>) -> Dispatch {
        self.label = label.into();
        self
    }

    /// Records the launch into a compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }
}

/// WebGPU's default limit on workgroups per dispatch dimension.
pub const MAX_GROUPS: u32 = 65_535;

/// Workgroups for a kernel that strides over the grid: enough for one item each, capped at
/// the limit (the kernel's loop covers the rest).
fn groups(items: usize, size: u32) -> u32 {
    u32::try_from(items).unwrap_or(u32::MAX).div_ceil(size).clamp(1, MAX_GROUPS)
}

/// The item count of a grid-stride kernel, which the kernel computes in 32 bits: an error
/// past `u32::MAX` instead of a product that wraps there.
fn grid_items(items: usize, what: &str) -> Result<usize, GpuError> {
    if u32::try_from(items).is_err() {
        return Err(GpuError::Operation(format!("{what} has {items} items; a kernel covers at most {}", u32::MAX)));
    }
    Ok(items)
}

/// Workgroups for a kernel with one invocation per item: an error past the limit.
fn exact_groups(items: usize, size: u32, what: &str) -> Result<u32, GpuError> {
    let needed = u32::try_from(items).unwrap_or(u32::MAX).div_ceil(size).max(1);
    if needed > MAX_GROUPS {
        return Err(GpuError::Operation(format!(
            "{what} needs {needed} workgroups in one dimension; the limit is {MAX_GROUPS}"
        )));
    }
    Ok(needed)
}

impl Kernels {
    /// Compiles every kernel on `gpu` with the default options.
    pub fn new(gpu: &Gpu) -> Result<Kernels, GpuError> {
        Kernels::with_options(gpu, KernelOptions::default())
    }

    /// Compiles every kernel on `gpu` as `options` say.
    pub fn with_options(gpu: &Gpu, options: KernelOptions) -> Result<Kernels, GpuError> {
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = |name: &str, source: &str, entry: &str| {
            let descriptor = wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            };
            let module = if options.loop_bounding {
                gpu.device.create_shader_module(descriptor)
            } else {
                let checks =
                    wgpu::ShaderRuntimeChecks { force_loop_bounding: false, ..wgpu::ShaderRuntimeChecks::checked() };
                // SAFETY: the one check dropped is loop bounding, whose contract is that no
                // shader loops forever. Every loop in src/shaders/ ends for every parameter a
                // caller can pass: the counted loops step by 1 (or halve) towards a bound
                // they cannot step over, and each grid-stride loop breaks before an increment
                // that could wrap around u32::MAX (`if (total - i <= stride) { break; }`).
                #[allow(unsafe_code)]
                unsafe {
                    gpu.device.create_shader_module_trusted(descriptor, checks)
                }
            };
            gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let update = include_str!("shaders/update.wgsl");
        let kernels = Kernels {
            // each form is the shared contract (parameters, bindings, store) and its main
            matmul: match options.matmul {
                MatmulForm::Looped => pipeline(
                    "matmul",
                    concat!(include_str!("shaders/matmul_common.wgsl"), include_str!("shaders/matmul.wgsl")),
                    "main",
                ),
                MatmulForm::Vector => pipeline(
                    "matmul",
                    concat!(include_str!("shaders/matmul_common.wgsl"), include_str!("shaders/matmul_vec4.wgsl")),
                    "main",
                ),
            },
            gather: pipeline("gather", include_str!("shaders/gather.wgsl"), "main"),
            head: pipeline("head", include_str!("shaders/head.wgsl"), "main"),
            penalty: pipeline("penalty", include_str!("shaders/penalty.wgsl"), "main"),
            combine: pipeline("combine", include_str!("shaders/combine.wgsl"), "main"),
            bias_grad: pipeline("bias_grad", update, "bias_grad"),
            sgd: pipeline("sgd", update, "sgd"),
            advance: pipeline("advance", include_str!("shaders/advance.wgsl"), "main"),
            unused: gpu.zeros("unused binding", 1)?,
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Operation(format!("a kernel failed to compile: {e}")));
        }
        Ok(kernels)
    }

    fn dispatch(
        &self,
        gpu: &Gpu,
        (name, pipeline): (&str, &wgpu::ComputePipeline),
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Dispatch {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch { label: name.to_string(), pipeline: pipeline.clone(), bind_group, workgroups }
    }

    /// `c = op(a) op(b)` with the options in `params` (see `matmul_common.wgsl`).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        gpu: &Gpu,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        c: &wgpu::Buffer,
        bias: Option<&wgpu::Buffer>,
        mask: Option<&wgpu::Buffer>,
        params: MatmulParams,
    ) -> Result<Dispatch, GpuError> {
        let uniform = gpu.uniform("matmul parameters", &params)?;
        let bias = bias.unwrap_or(&self.unused);
        let mask = mask.unwrap_or(&self.unused);
        let workgroups = [
            exact_groups(params.n as usize, BLOCK, "a matrix product's columns")?,
            exact_groups(params.m as usize, BLOCK, "a matrix product's rows")?,
            1,
        ];
        Ok(self.dispatch(gpu, ("matmul", &self.matmul), &[a, b, c, bias, mask, &uniform], workgroups))
    }

    /// Gathers the current step's mini-batch of states.
    pub fn gather(
        &self,
        gpu: &Gpu,
        states: &wgpu::Buffer,
        indices: &wgpu::Buffer,
        counter: &wgpu::Buffer,
        x: &wgpu::Buffer,
        params: GatherParams,
    ) -> Result<Dispatch, GpuError> {
        let uniform = gpu.uniform("gather parameters", &params)?;
        let items = grid_items(params.batch as usize * params.dim as usize, "the mini-batch gather")?;
        Ok(self.dispatch(
            gpu,
            ("gather", &self.gather),
            &[states, indices, counter, x, &uniform],
            [groups(items, GROUP), 1, 1],
        ))
    }

    /// Per-sample losses and output gradients.
    #[allow(clippy::too_many_arguments)]
    pub fn head(
        &self,
        gpu: &Gpu,
        out: &wgpu::Buffer,
        indices: &wgpu::Buffer,
        counter: &wgpu::Buffer,
        samples: &wgpu::Buffer,
        head_out: &wgpu::Buffer,
        params: HeadParams,
    ) -> Result<Dispatch, GpuError> {
        let uniform = gpu.uniform("head parameters", &params)?;
        let buffers = [out, indices, counter, samples, head_out, &uniform];
        let workgroups = exact_groups(params.batch as usize, GROUP, "the per-sample head")?;
        Ok(self.dispatch(gpu, ("head", &self.head), &buffers, [workgroups, 1, 1]))
    }

    /// The penalty weight from the batch's mean safety loss.
    pub fn penalty(
        &self,
        gpu: &Gpu,
        head_out: &wgpu::Buffer,
        scalars: &wgpu::Buffer,
        params: PenaltyParams,
    ) -> Result<Dispatch, GpuError> {
        let uniform = gpu.uniform("penalty parameters", &params)?;
        Ok(self.dispatch(gpu, ("penalty", &self.penalty), &[head_out, scalars, &uniform], [1, 1, 1]))
    }

    /// The output cotangent of the inner loss.
    #[allow(clippy::too_many_arguments)]
    pub fn combine(
        &self,
        gpu: &Gpu,
        head_out: &wgpu::Buffer,
        lambdas: &wgpu::Buffer,
        indices: &wgpu::Buffer,
        counter: &wgpu::Buffer,
        scalars: &wgpu::Buffer,
        d_out: &wgpu::Buffer,
        params: CombineParams,
    ) -> Result<Dispatch, GpuError> {
        let uniform = gpu.uniform("combine parameters", &params)?;
        let items = grid_items(params.batch as usize * (params.agents as usize + 1), "the output cotangent")?;
        let buffers = [head_out, lambdas, indices, counter, scalars, d_out, &uniform];
        Ok(self.dispatch(gpu, ("combine", &self.combine), &buffers, [groups(items, GROUP), 1, 1]))
    }

    /// Column sums of `delta` into `grad[offset..]`.
    pub fn bias_grad(
        &self,
        gpu: &Gpu,
        delta: &wgpu::Buffer,
        grad: &wgpu::Buffer,
        params: UpdateParams,
    ) -> Result<Dispatch, GpuError> {
        let uniform = gpu.uniform("bias-gradient parameters", &params)?;
        Ok(self.dispatch(
            gpu,
            ("bias_grad", &self.bias_grad),
            &[delta, grad, &uniform],
            [groups(params.cols as usize, GROUP), 1, 1],
        ))
    }

    /// `params -= eta grad` over `cols` values.
    pub fn sgd(
        &self,
        gpu: &Gpu,
        grad: &wgpu::Buffer,
        parameters: &wgpu::Buffer,
        params: UpdateParams,
    ) -> Result<Dispatch, GpuError> {
        let uniform = gpu.uniform("sgd parameters", &params)?;
        Ok(self.dispatch(
            gpu,
            ("sgd", &self.sgd),
            &[grad, parameters, &uniform],
            [groups(params.cols as usize, GROUP), 1, 1],
        ))
    }

    /// `counter += 1`.
    pub fn advance(&self, gpu: &Gpu, counter: &wgpu::Buffer) -> Dispatch {
        self.dispatch(gpu, ("advance", &self.advance), &[counter], [1, 1, 1])
    }
}

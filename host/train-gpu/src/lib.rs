//! The SBD inner loop on the GPU: WGSL compute kernels (wgpu, Vulkan) behind
//! [`sbd_train::Backend`], so `sbd train --backend gpu` runs Algorithm 1 with the same
//! mini-batches as the CPU trainer and produces the same parameters within float tolerance.
//!
//! - [`context`]: adapter choice, device, buffers, read-back, and the errors they raise;
//! - [`kernels`]: the kernels of `src/shaders/` (tiled matrix product with bias, ReLU and ReLU
//!   mask, in vec4 registers by default; compiled without wgpu's loop bounding, see
//!   [`kernels::KernelOptions`]; mini-batch gather; per-sample losses and output gradients; the penalty reduction;
//!   the output cotangent; bias gradients; SGD; the step counter) and their parameters;
//! - [`cost`]: FLOPs, bytes and the floor time of one inner step on a given device;
//! - [`backend`]: [`GpuBackend`], which keeps parameters, gradients, activations and the split
//!   on the device across the T_in inner steps and submits them as one command buffer.

pub mod backend;
pub mod context;
pub mod cost;
pub mod kernels;
pub mod testing;

pub use backend::GpuBackend;
pub use context::{AdapterChoice, AdapterSummary, GpuError};

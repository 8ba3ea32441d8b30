//! Safe Bilevel Delegation training (arXiv 2604.27358, sections 3, 5 and 6) on the CPU.
//!
//! - [`mlp`] and [`linalg`]: the networks over flat parameter vectors, with reverse- and
//!   forward-mode derivatives on packed GEMM kernels;
//! - [`objective`]: the per-sample safety surrogate and efficiency cost, and the decision;
//! - [`bilevel`]: the inner-loss gradient and the truncated hypergradient (SBD 5.2);
//! - [`backend`]: the boundary a GPU implementation fills; [`backend::CpuBackend`];
//! - [`trainer`]: Algorithm 1 and export to the policy component's model;
//! - [`data`] and [`finance`]: domains in one sample format, the S&P 500 domain on real prices;
//! - [`theory`]: the section 6.6 validations; [`report`]: logs and plots.

pub mod augmented;
pub mod backend;
pub mod bilevel;
pub mod data;
pub mod education;
pub mod error;
pub mod experiment;
pub mod experiment_report;
pub mod finance;
pub mod lbfgs;
pub mod linalg;
pub mod medical;
pub mod mlp;
pub mod objective;
pub mod oracle;
pub mod report;
pub mod stats;
pub mod summary;
pub mod theory;
pub mod trainer;

pub use backend::{Backend, CpuBackend};
pub use error::TrainError;
pub use trainer::{LambdaMode, OuterOptimizer, TrainConfig, Trainer};

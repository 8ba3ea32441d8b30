//! Safe Bilevel Delegation training (arXiv 2604.27358, sections 3, 5 and 6) on the CPU, in
//! three layers:
//!
//! - [`domains`]: the data. One sample format ([`domains::data`]: per sample, a state and
//!   each sub-agent's threshold and costs) and the three domains that fill it: finance on real
//!   S&P 500 prices, medical on SUPPORT2 and the MIMIC-IV demo, education (synthetic).
//! - [`engine`]: training. The networks over flat parameter vectors ([`engine::mlp`],
//!   [`engine::linalg`]), the per-sample losses ([`engine::objective`]), the hypergradients
//!   ([`engine::bilevel`], and SBD-AL's implicit one in [`engine::augmented`]), the backend
//!   boundary a GPU fills ([`engine::backend`]), and Algorithm 1 with its export to the policy
//!   component's model ([`engine::trainer`]).
//! - [`eval`]: the evaluation. The pre-registered experiment ([`eval::experiment`]) and its
//!   verdicts ([`eval::analysis`]), the section 6.6 checks ([`eval::theory`]), statistics
//!   ([`eval::stats`]), the oracle frontier ([`eval::oracle`]), reports and plots.

pub mod domains;
pub mod engine;
pub mod error;
pub mod numeric;
pub mod eval;

pub use engine::backend::{Backend, CpuBackend};
pub use engine::trainer::{LambdaMode, OuterOptimizer, TrainConfig, Trainer};
pub use error::TrainError;

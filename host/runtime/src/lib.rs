//! Runs the delegation policy component under wasmtime and never lets a policy fault become
//! an allow.
//!
//! ```text
//! PolicyRuntime::new(limits)                 engine, epoch ticker, linker
//!   .load_component(bytes) / load_cached     compile, or reuse a precompiled .cwasm
//!   .instantiate(&component, config_bytes)   -> LoadedPolicy: a pool of ready instances
//!       .evaluate(&request)                  -> Verdict; traps, timeouts, memory exhaustion and
//!                                               malformed verdicts become `policy-fault` denials
//! ```
//!
//! The default component, built from `guest/component` by this crate's build script, is
//! [`DEFAULT_COMPONENT`].

mod cache;
mod convert;
mod error;
mod limits;
mod policy;
mod runtime;
mod verify;

pub use cache::ComponentCache;
pub use error::RuntimeError;
pub use limits::RuntimeLimits;
pub use policy::{CallPath, LoadedPolicy, PolicyStats};
pub use runtime::{PolicyComponent, PolicyRuntime};
pub use verify::check_verdict;

/// The policy component built from `guest/component` (the rules of `sbd-policy`), embedded so
/// the host runs with no file to prepare.
pub const DEFAULT_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sbd_policy.wasm"));

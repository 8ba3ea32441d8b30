//! Errors from loading and instantiating components. Decisions never return these: a fault
//! during a decision is a `policy-fault` denial instead.

use std::path::PathBuf;

/// What went wrong while setting up a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A limit in [`crate::RuntimeLimits`] is out of its range.
    #[error("invalid runtime limits: {0}")]
    InvalidLimits(String),
    /// The wasmtime engine could not be configured.
    #[error("cannot configure the wasmtime engine: {0}")]
    Engine(#[source] wasmtime::Error),
    /// The bytes are not a valid component.
    #[error("not a valid policy component: {0}")]
    InvalidComponent(#[source] wasmtime::Error),
    /// The component does not export the `sbd:delegation/policy` interface.
    #[error("component does not implement `sbd:delegation/policy@0.1.0`: {0}")]
    WrongInterface(#[source] wasmtime::Error),
    /// The component rejected the configuration bytes.
    #[error("the policy rejected its configuration: {0}")]
    ConfigRejected(String),
    /// The component failed while being set up.
    #[error("the policy failed while starting: {0}")]
    Startup(#[source] wasmtime::Error),
    /// The policy failed during a call that has no verdict to fail closed with.
    #[error("policy fault: {0}")]
    Fault(String),
    /// The precompile cache could not be read or written.
    #[error("component cache at `{path}`: {source}")]
    Cache {
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

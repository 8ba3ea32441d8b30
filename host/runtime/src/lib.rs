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
//!
//! ```
//! use sbd_policy::{PolicyConfig, Reason, Verdict};
//! use sbd_runtime::{PolicyRuntime, RuntimeLimits, DEFAULT_COMPONENT};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = PolicyRuntime::new(RuntimeLimits::default())?;
//! let component = runtime.load_component(DEFAULT_COMPONENT)?;
//! let policy = runtime.instantiate(&component, &PolicyConfig::named("example", "1").to_bytes()?)?;
//!
//! // An agent trying to delegate to itself is refused before anyone is contacted.
//! let request: sbd_policy::Request = serde_json::from_str(r#"{
//!     "from": {"id": "planner", "trust": 700},
//!     "to": {"id": "planner", "trust": 700},
//!     "task": {"id": "t1", "action_kind": "crm.read", "risk": "low"},
//!     "parent_mandate": {"value_ceiling": 100, "action_kinds": ["crm.*"], "counterparties": ["*"],
//!                        "budgets": [], "remaining_depth": 2, "expires_at": 2000},
//!     "requested_mandate": {"value_ceiling": 10, "action_kinds": ["crm.read"], "counterparties": ["*"],
//!                           "budgets": [], "remaining_depth": 1, "expires_at": 1500},
//!     "now": 1000
//! }"#)?;
//! let verdict = policy.evaluate(&request);
//! assert_eq!(verdict.reason(), Some(Reason::SelfDelegation));
//! assert!(matches!(verdict, Verdict::Deny(_)));
//! # Ok(())
//! # }
//! ```

mod cache;
mod convert;
mod error;
pub mod json;
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

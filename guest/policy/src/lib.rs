//! The delegation rules as a pure library: every decision the policy component makes, with no
//! I/O, no clock and no allocation beyond the request's own data.
//!
//! The same crate compiles natively (the host uses it as a reference, for differential tests
//! and to re-check what a component returns) and into the WebAssembly component
//! (`guest/component`). It is `no_std` so the component imports nothing.
//!
//! A decision runs the rules cheapest first and stops at the first refusal:
//!
//! 1. [`structural`]: request shape, canonical agent ids ([`identity`]), the tenant's agent
//!    registry when the host gives its facts ([`registry`]), self-delegation, cycles, depth
//!    metadata, depth limit, expiry and chain deadline (AG-396 4.1-4.5, 4.9, 4.10, 4.12);
//! 2. [`attenuation`]: the requested child mandate lies within the parent's (AG-001,
//!    AG-396 4.7) and admits the task;
//! 3. [`trust`]: the executor's own tier covers the task's risk (Vorion upward escalation);
//! 4. [`sbd`]: delegation degree and safety weight, projected onto the safe set (SBD 5.3),
//!    then, when the policy lists `sbd.risk_bands`, risk-tightened authority: the state's risk
//!    signal lowers the depth limit (a deeper hop escalates with `risk-depth-escalation`) and
//!    raises the review threshold ([`sbd::tighten`]);
//! 5. routing: a degree under the review threshold goes to a human.
//!
//! [`Policy::evaluate`] is the entry point.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod action;
pub mod attenuation;
pub mod config;
mod evaluate;
pub mod identity;
pub mod json;
pub mod learned;
pub mod model;
pub mod reasons;
pub mod registry;
pub mod sbd;
pub mod structural;
pub mod trust;
pub mod verify;
pub mod view;
pub mod wit;
pub mod wire;

pub use config::{ConfigError, ConfigFormat, PolicyConfig};
pub use evaluate::Policy;
pub use model::*;
pub use reasons::{Reason, ReasonKind};

//! The policy component: thin glue that exports [`sbd_policy`] through the
//! `sbd:delegation/policy` WIT interface. Build it with
//! `cargo build -p sbd-component --target wasm32-wasip2 --profile guest`.
//!
//! It is `no_std` so that it imports nothing: no clock, no I/O, no WASI. A panic aborts,
//! which the host sees as a trap and turns into a fail-closed `policy-fault` deny.
#![cfg_attr(target_arch = "wasm32", no_std)]

#[cfg(target_arch = "wasm32")]
extern crate alloc;

#[cfg(target_arch = "wasm32")]
mod arena;
#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(all(target_arch = "wasm32", feature = "fault-injection"))]
mod fault;

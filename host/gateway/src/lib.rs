//! `sbd-gateway`: the edge gateway users deploy between agents.
//!
//! - [`delegations`] and [`delegations_api`]: `POST /v1/delegations`, the decision point
//!   (verified facts in, policy component, escrowed sub-budget, child token, trace,
//!   idempotency), outcome reports and trust; the gateway's side, and its endpoints;
//! - [`authority`], [`registry`], [`escrow`]: the anchored authority: agent registry, root
//!   grants, the escrowed grant tree with cascade revocation, depth exceptions;
//! - [`ledger`] and [`cycles_api`]: the Cycles runtime protocol (reserve, commit, release,
//!   extend, decide, balances, events) on the embedded [`store`];
//! - [`admin_api`]: tenants, budgets and API keys (the governance admin shapes);
//! - [`events`], [`webhooks`], [`dispatch`] and [`events_api`]: the Cycles event stream, webhook
//!   subscriptions, signed delivery with retries, auto-disable and replay;
//! - [`escalations`] and [`escalations_api`]: the human review queue and agent escalation
//!   targets (the rules, and their endpoints);
//! - [`traces`], [`metrics`], [`openapi`], [`bundles`];
//! - [`principal`]: who is calling and what they may do (principals, roles, permissions);
//!   [`auth`]: API keys authenticated and the permission of every endpoint;
//! - [`error`]: the domain's error type, [`error::GatewayError`], and the table of error
//!   codes; [`api_error`]: the HTTP answer it becomes;
//! - [`server`] (router, ids, auth) and [`serve`] (`sbd serve`); [`context`], the request's
//!   correlation ids as the domain reads them.

pub mod admin_api;
pub mod api_error;
pub mod auth;
pub mod backend;
pub mod authority;
pub mod bundles;
pub mod config;
pub mod context;
pub mod cycles;
pub mod cycles_api;
pub mod delegations;
pub mod delegations_api;
pub mod dispatch;
pub mod error;
pub mod escalations;
pub mod escalations_api;
pub mod escrow;
pub mod events;
pub mod events_api;
pub mod hot;
pub mod ledger;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod policy;
pub mod principal;
pub mod registry;
pub mod repo;
pub mod serve;
pub mod server;
pub mod store;
pub mod tenancy;
#[cfg(test)]
mod several_gateways;
#[cfg(test)]
mod test_redis;
// `src/test_redis.rs` names the library `sbd_gateway` so that `tests/common` can include it too.
#[cfg(test)]
extern crate self as sbd_gateway;
mod strict_json;
pub mod tokens;
pub mod traces;
pub mod util;
pub mod webhooks;

pub use config::Config;
pub use error::{GatewayError, ErrorCode};
pub use server::app;

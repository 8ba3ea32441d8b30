//! Every bound the gateway enforces, in one documented struct that the configuration sets
//! (`[limits]` in the TOML file; every field has a default).
//!
//! How the chain-length bounds relate: a delegation's chain comes from its token, which holds
//! at most [`sbd_bundle::token::MAX_BLOCKS`] (32) blocks; the gateway refuses a request whose
//! chain has more than [`RequestLimits::max_list_entries`] links; the runtime refuses one over
//! [`RuntimeSettings::max_chain_len`] before the component; the component's own ceiling is
//! 254 (a depth is a `u8`). The smallest applies.

use std::time::Duration;

use serde::Deserialize;

/// Bounds on what a caller may send, checked before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestLimits {
    /// Longest task id, reason, action-kind pattern, capability or reviewer name, bytes.
    pub max_text_bytes: usize,
    /// Most entries in a mandate's action kinds, counterparties or budgets, an agent's
    /// capabilities or delegates, and links in a request's chain.
    pub max_list_entries: usize,
    /// Longest SBD state vector.
    pub max_state_len: usize,
}

impl RequestLimits {
    /// The defaults: 256 bytes, 64 entries, 4,096 state features.
    pub const DEFAULT: RequestLimits = RequestLimits { max_text_bytes: 256, max_list_entries: 64, max_state_len: 4096 };
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits::DEFAULT
    }
}

/// The policy runtime's limits as the configuration spells them (milliseconds and
/// microseconds instead of durations); see [`sbd_runtime::RuntimeLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Largest linear memory of one policy instance, bytes (default 16 MiB).
    pub memory_bytes: usize,
    /// Wall-clock budget of one policy call, milliseconds (default 50).
    pub call_timeout_ms: u64,
    /// Epoch tick, microseconds: the timeout's granularity (default 1,000).
    pub epoch_tick_us: u64,
    /// Idle instances kept per loaded policy (default: twice the available parallelism).
    pub max_idle_instances: usize,
    /// Longest chain passed to the component (default 64).
    pub max_chain_len: usize,
    /// Most requests in one batch call (default 1,024).
    pub max_batch: usize,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        let d = sbd_runtime::RuntimeLimits::default();
        RuntimeSettings {
            memory_bytes: d.memory_bytes,
            call_timeout_ms: u64::try_from(d.call_timeout.as_millis()).unwrap_or(u64::MAX),
            epoch_tick_us: u64::try_from(d.epoch_tick.as_micros()).unwrap_or(u64::MAX),
            max_idle_instances: d.max_idle_instances,
            max_chain_len: d.max_chain_len,
            max_batch: d.max_batch,
        }
    }
}

impl RuntimeSettings {
    /// The runtime's form.
    pub fn to_runtime(self) -> sbd_runtime::RuntimeLimits {
        sbd_runtime::RuntimeLimits {
            memory_bytes: self.memory_bytes,
            call_timeout: Duration::from_millis(self.call_timeout_ms),
            epoch_tick: Duration::from_micros(self.epoch_tick_us),
            max_idle_instances: self.max_idle_instances,
            max_chain_len: self.max_chain_len,
            max_batch: self.max_batch,
        }
    }
}

/// Every bound of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body, bytes (default 256 KiB).
    pub max_body_bytes: usize,
    /// The longest a root grant may last, milliseconds. Its budget is held by a Cycles
    /// reservation, whose TTL the protocol bounds to 24 hours, so at most (and by default)
    /// 86,400,000.
    pub max_root_grant_ms: u64,
    /// Bounds on request contents.
    pub request: RequestLimits,
    /// The policy runtime's limits.
    pub runtime: RuntimeSettings,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 * 1024,
            max_root_grant_ms: 86_400_000,
            request: RequestLimits::DEFAULT,
            runtime: RuntimeSettings::default(),
        }
    }
}

impl Limits {
    /// Checks every bound against its range; the error names the field (`limits.…`).
    pub fn validate(&self) -> Result<(), String> {
        let range = |field: &str, value: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(format!("`limits.{field}` is {value}; it must be {lo}-{hi}"))
            }
        };
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        range("max_body_bytes", n(self.max_body_bytes), 1024, 64 << 20)?;
        range("max_root_grant_ms", self.max_root_grant_ms, 1000, 86_400_000)?;
        range("request.max_text_bytes", n(self.request.max_text_bytes), 16, 64 * 1024)?;
        range("request.max_list_entries", n(self.request.max_list_entries), 1, 4096)?;
        range("request.max_state_len", n(self.request.max_state_len), 1, 1 << 20)?;
        range("runtime.max_chain_len", n(self.runtime.max_chain_len), 1, 254)?;
        self.runtime.to_runtime().validate().map_err(|e| format!("`limits.runtime`: {e}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_match_the_runtime() {
        let l = Limits::default();
        l.validate().unwrap();
        assert_eq!(l.runtime.to_runtime(), sbd_runtime::RuntimeLimits::default());
    }

    #[test]
    fn an_out_of_range_bound_names_its_field() {
        let mut l = Limits::default();
        l.max_root_grant_ms = 2 * 86_400_000;
        assert!(l.validate().unwrap_err().contains("`limits.max_root_grant_ms`"));
        let mut l = Limits::default();
        l.runtime.epoch_tick_us = 0;
        assert!(l.validate().unwrap_err().contains("`limits.runtime`"));
        let mut l = Limits::default();
        l.request.max_list_entries = 0;
        assert!(l.validate().unwrap_err().contains("`limits.request.max_list_entries`"));
    }
}

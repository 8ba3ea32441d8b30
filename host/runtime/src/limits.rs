//! Every resource limit a policy call runs under, in one documented struct.

use std::time::Duration;

/// Limits on each policy instance and call. A call that exceeds one is a policy fault: the host
/// answers `policy-fault` (deny) and discards the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeLimits {
    /// Largest linear memory one instance may grow to. Default 16 MiB; the rules use well
    /// under 1 MiB.
    pub memory_bytes: usize,
    /// Wall-clock budget for one call (one request, or one whole batch). Default 50 ms;
    /// a rules-only decision takes about a microsecond.
    pub call_timeout: Duration,
    /// How often the epoch ticker advances; the timeout is enforced to this granularity.
    /// Default 1 ms.
    pub epoch_tick: Duration,
    /// Idle instances kept per loaded policy. Default: twice the available parallelism.
    pub max_idle_instances: usize,
    /// Longest chain accepted in a request before it reaches the component. Default 64.
    pub max_chain_len: usize,
    /// Most requests accepted in one batch call. Default 1,024.
    pub max_batch: usize,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        RuntimeLimits {
            memory_bytes: 16 << 20,
            call_timeout: Duration::from_millis(50),
            epoch_tick: Duration::from_millis(1),
            max_idle_instances: std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            max_chain_len: 64,
            max_batch: 1024,
        }
    }
}

impl RuntimeLimits {
    /// The call timeout in epoch ticks (at least one).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        u64::try_from(self.call_timeout.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX).max(1)
    }
}

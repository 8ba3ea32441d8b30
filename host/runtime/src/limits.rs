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
    /// Checks every limit against its range: memory of at least 1 MiB, a positive timeout, a
    /// tick between 100 us and the timeout (a zero tick would spin the ticker thread), and
    /// non-zero chain, batch and pool sizes.
    pub fn validate(&self) -> Result<(), String> {
        if self.memory_bytes < 1 << 20 {
            return Err(format!("`memory_bytes` is {}, below 1 MiB", self.memory_bytes));
        }
        if self.call_timeout.is_zero() {
            return Err("`call_timeout` must be positive".into());
        }
        if self.epoch_tick < Duration::from_micros(100) || self.epoch_tick > self.call_timeout {
            return Err(format!(
                "`epoch_tick` is {:?}; it must be between 100us and `call_timeout` ({:?})",
                self.epoch_tick, self.call_timeout
            ));
        }
        if self.max_chain_len == 0 || self.max_batch == 0 || self.max_idle_instances == 0 {
            return Err("`max_chain_len`, `max_batch` and `max_idle_instances` must be positive".into());
        }
        Ok(())
    }

    /// The call timeout in epoch ticks (at least one).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        u64::try_from(self.call_timeout.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_out_of_range_limits_are_named() {
        assert_eq!(RuntimeLimits::default().validate(), Ok(()));
        let broken = [
            RuntimeLimits { memory_bytes: 4096, ..RuntimeLimits::default() },
            RuntimeLimits { call_timeout: Duration::ZERO, ..RuntimeLimits::default() },
            RuntimeLimits { epoch_tick: Duration::ZERO, ..RuntimeLimits::default() },
            RuntimeLimits { epoch_tick: Duration::from_secs(1), ..RuntimeLimits::default() },
            RuntimeLimits { max_batch: 0, ..RuntimeLimits::default() },
        ];
        for (limits, field) in
            broken.iter().zip(["memory_bytes", "call_timeout", "epoch_tick", "epoch_tick", "max_batch"])
        {
            let error = limits.validate().err().unwrap_or_default();
            assert!(error.contains(field), "{error} should name {field}");
        }
    }

    #[test]
    fn the_deadline_is_the_timeout_in_ticks() {
        assert_eq!(RuntimeLimits::default().deadline_ticks(), 50);
    }
}

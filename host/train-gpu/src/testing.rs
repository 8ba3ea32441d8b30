//! For the GPU tests: whether a Vulkan adapter exists, and a visible skip when none does.
//!
//! A fresh machine without a Vulkan driver (Mesa's `mesa-vulkan-drivers` gives one on the CPU)
//! runs `cargo test --release` to green: each GPU test prints
//! `skipped: no GPU adapter (...)` to stderr and returns. CI sets `SBD_REQUIRE_GPU=1` after
//! installing the driver, and then a missing adapter fails the test instead of skipping it.

use std::io::Write;

use crate::context::adapters;

/// The environment variable that turns a missing adapter from a skip into a failure.
pub const REQUIRE_GPU_VAR: &str = "SBD_REQUIRE_GPU";

/// What a GPU test should do on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuTestPlan {
    /// An adapter exists: run the test.
    Run,
    /// No adapter and none required: skip with this notice.
    Skip(String),
    /// No adapter but `SBD_REQUIRE_GPU=1`: fail with this message.
    Fail(String),
}

/// Decides from whether an adapter exists and the value of `SBD_REQUIRE_GPU`.
pub fn plan(test: &str, have_adapter: bool, require: Option<&str>) -> GpuTestPlan {
    if have_adapter {
        return GpuTestPlan::Run;
    }
    if require.is_some_and(|v| v.trim() == "1") {
        return GpuTestPlan::Fail(format!(
            "{test}: no GPU adapter, and {REQUIRE_GPU_VAR}=1 requires one (install mesa-vulkan-drivers)"
        ));
    }
    GpuTestPlan::Skip(format!(
        "skipped: no GPU adapter (no Vulkan driver; install mesa-vulkan-drivers, or set \
         {REQUIRE_GPU_VAR}=1 to fail instead): {test}"
    ))
}

/// Call first in a GPU test: `if !sbd_train_gpu::testing::gpu_or_skip("name") { return; }`.
/// Returns true when an adapter exists; prints the skip notice (visible even when the test
/// harness captures output) and returns false when none does; panics (fails the test) when none does and `SBD_REQUIRE_GPU=1`.
#[allow(clippy::panic, reason = "a test helper: the panic is the test failure")]
pub fn gpu_or_skip(test: &str) -> bool {
    let require = std::env::var(REQUIRE_GPU_VAR).ok();
    match plan(test, !adapters().is_empty(), require.as_deref()) {
        GpuTestPlan::Run => true,
        GpuTestPlan::Skip(notice) => {
            // Straight to the stderr handle, not `eprintln!`: the test harness captures the
            // macros' output of a passing test, and this notice must be seen.
            let _ = writeln!(std::io::stderr(), "{notice}");
            false
        }
        GpuTestPlan::Fail(message) => panic!("{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adapter_runs_whatever_the_variable_says() {
        for require in [None, Some("1"), Some("0")] {
            assert_eq!(plan("t", true, require), GpuTestPlan::Run);
        }
    }

    #[test]
    fn no_adapter_skips_visibly_unless_required() {
        for require in [None, Some("0"), Some("")] {
            let GpuTestPlan::Skip(notice) = plan("t", false, require) else {
                unreachable!("expected a skip for {require:?}")
            };
            assert!(notice.starts_with("skipped: no GPU adapter"), "{notice}");
        }
        assert!(matches!(plan("t", false, Some("1")), GpuTestPlan::Fail(m) if m.contains("SBD_REQUIRE_GPU=1")));
    }
}

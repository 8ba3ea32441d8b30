//! Fault injection for host tests (feature `fault-injection`, never in a shipped build).
//!
//! A configuration of the form `fault:<kind>` builds a policy with default rules that
//! misbehaves in the chosen way on every request whose task id is [`TRIGGER`], and decides
//! every other request normally, so a test can check both that the host fails closed and that
//! it goes on serving.

use alloc::string::String;
use alloc::vec::Vec;

use crate::component::wit;

/// The task id that triggers the configured fault.
pub(crate) const TRIGGER: &str = "inject-fault";

/// The ways this component can be told to misbehave.
pub(crate) enum Fault {
    /// Spin forever (the host's epoch deadline must stop it).
    EndlessLoop,
    /// Execute `unreachable`.
    Trap,
    /// Panic (the panic handler traps).
    Panic,
    /// Allocate far beyond any sane memory limit.
    HugeAllocation,
    /// Recurse until the stack overflows.
    StackOverflow,
    /// Allow with alpha 1.5.
    AlphaOutOfRange,
    /// Allow with a child budget ten times the parent's.
    WidenedMandate,
    /// Deny with a code no reason table has.
    UnknownCode,
    /// Answer a batch with one verdict too few.
    ShortBatch,
}

impl Fault {
    /// `Some` when `config` asks for fault injection: the fault, or why the kind is unknown.
    pub(crate) fn from_config(config: &[u8]) -> Option<Result<Fault, String>> {
        let kind = config.strip_prefix(b"fault:")?;
        Some(match kind {
            b"endless-loop" => Ok(Fault::EndlessLoop),
            b"trap" => Ok(Fault::Trap),
            b"panic" => Ok(Fault::Panic),
            b"huge-allocation" => Ok(Fault::HugeAllocation),
            b"stack-overflow" => Ok(Fault::StackOverflow),
            b"alpha-out-of-range" => Ok(Fault::AlphaOutOfRange),
            b"widened-mandate" => Ok(Fault::WidenedMandate),
            b"unknown-code" => Ok(Fault::UnknownCode),
            b"short-batch" => Ok(Fault::ShortBatch),
            _ => Err(String::from("unknown fault kind")),
        })
    }

    /// Misbehaves, or returns a corrupted form of the correct verdict.
    pub(crate) fn corrupt(&self, correct: wit::Verdict) -> wit::Verdict {
        match (self, correct) {
            (Fault::EndlessLoop, _) => {
                let mut counter = 0u64;
                loop {
                    counter = core::hint::black_box(counter.wrapping_add(1));
                }
            }
            (Fault::Trap, _) => core::arch::wasm32::unreachable(),
            #[allow(clippy::panic, reason = "the point of this fault")]
            (Fault::Panic, _) => panic!("injected panic"),
            (Fault::HugeAllocation, correct) => {
                let mut hog: Vec<u8> = Vec::new();
                hog.resize(1 << 30, 1);
                core::hint::black_box(&hog);
                correct
            }
            (Fault::StackOverflow, correct) => {
                core::hint::black_box(recurse(core::hint::black_box(1)));
                correct
            }
            (Fault::AlphaOutOfRange, wit::Verdict::Allow(mut grant)) => {
                grant.alpha = 1.5;
                wit::Verdict::Allow(grant)
            }
            (Fault::WidenedMandate, wit::Verdict::Allow(mut grant)) => {
                for budget in &mut grant.child_mandate.budgets {
                    budget.amount = budget.amount.saturating_mul(10).saturating_add(1);
                }
                wit::Verdict::Allow(grant)
            }
            (Fault::UnknownCode, _) => wit::Verdict::Deny(wit::Denial {
                code: 4242,
                name: String::from("made-up"),
                message: String::from("a code from nowhere"),
            }),
            (_, correct) => correct,
        }
    }
}

/// Whether `request` is one the fault applies to.
pub(crate) fn is_triggered(request: &sbd_policy::Request) -> bool {
    request.task.id == TRIGGER
}

#[allow(unconditional_recursion, reason = "the point of this fault")]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 64]);
    recurse(frame[0].wrapping_add(1)).wrapping_add(frame[63])
}

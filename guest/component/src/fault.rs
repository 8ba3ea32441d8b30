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

/// The encoded path with the fault applied to triggered requests; the short-batch fault drops
/// the last verdict.
pub(crate) fn corrupt_encoded(fault: &Fault, policy: &sbd_policy::Policy, requests: &[u8]) -> Vec<u8> {
    use sbd_policy::wire;
    let Ok(requests) = wire::decode_requests(requests) else {
        return policy.evaluate_encoded(requests);
    };
    match corrupt_all(fault, policy, &requests) {
        Some(verdicts) => wire::encode_verdicts(Ok(&verdicts)).unwrap_or_default(),
        None => unknown_code_answer(),
    }
}

/// [`corrupt_encoded`] for `evaluate-json`: the same faults on the JSON path the Python and JS
/// bindings take.
pub(crate) fn corrupt_json(fault: &Fault, policy: &sbd_policy::Policy, text: &str) -> String {
    let batch = sbd_policy::json::is_array_text(text);
    let requests: Vec<sbd_policy::Request> = if batch {
        sbd_policy::json::from_str(text).unwrap_or_default()
    } else {
        sbd_policy::json::from_str(text).map(|one| alloc::vec![one]).unwrap_or_default()
    };
    if requests.is_empty() {
        return policy.evaluate_json(text);
    }
    let Some(verdicts) = corrupt_all(fault, policy, &requests) else {
        let made_up = r#"{"deny":{"code":4242,"reason":"made-up","message":"a code from nowhere"}}"#;
        return if batch { alloc::format!("[{made_up}]") } else { String::from(made_up) };
    };
    let written = match (batch, verdicts.first()) {
        (true, _) => serde_json::to_string(&verdicts),
        (false, Some(one)) => serde_json::to_string(one),
        // A single request is no batch to shorten: answered correctly, as the typed path does.
        (false, None) => return policy.evaluate_json(text),
    };
    written.unwrap_or_default()
}

/// Decides `requests` and corrupts the verdicts of triggered ones; `None` for the fault whose
/// answer the domain types cannot express (an unknown code).
fn corrupt_all(fault: &Fault, policy: &sbd_policy::Policy, requests: &[sbd_policy::Request]) -> Option<Vec<sbd_policy::Verdict>> {
    use sbd_policy::Verdict;
    let mut verdicts = Vec::with_capacity(requests.len());
    for request in requests {
        let mut verdict = policy.evaluate(request);
        if is_triggered(request) {
            match (fault, &mut verdict) {
                (Fault::AlphaOutOfRange, Verdict::Allow(grant)) => grant.alpha = 1.5,
                (Fault::WidenedMandate, Verdict::Allow(grant)) => {
                    for budget in &mut grant.child_mandate.budgets {
                        budget.amount = budget.amount.saturating_mul(10).saturating_add(1);
                    }
                }
                (Fault::UnknownCode, _) => return None,
                (Fault::ShortBatch, _) => {}
                // The remaining kinds never return.
                (_, _) => {
                    fault.corrupt(crate::component::verdict_to(verdict.clone()));
                }
            }
        }
        verdicts.push(verdict);
    }
    if matches!(fault, Fault::ShortBatch) {
        verdicts.pop();
    }
    Some(verdicts)
}

/// A well-formed wire answer whose one verdict denies with a code no reason table has; the
/// domain types cannot express it, so it is written through a mirror of their shape.
fn unknown_code_answer() -> Vec<u8> {
    #[derive(serde::Serialize)]
    enum MirrorVerdict {
        #[allow(dead_code, reason = "only the variant index matters")]
        Allow(()),
        #[allow(dead_code, reason = "only the variant index matters")]
        Escalate(()),
        Deny {
            code: u16,
            reason: &'static str,
            message: &'static str,
        },
    }
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        version: u32,
        body: Result<&'a [MirrorVerdict], &'a str>,
    }
    let verdicts = [MirrorVerdict::Deny { code: 4242, reason: "made-up", message: "a code from nowhere" }];
    postcard::to_allocvec(&Answer { version: sbd_policy::wire::WIRE_VERSION, body: Ok(&verdicts) })
        .unwrap_or_default()
}

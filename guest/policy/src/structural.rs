//! Structural rules, decided from the chain's shape alone and run first because they are the
//! cheapest: request shape, self-delegation, chain continuity, depth metadata (AG-396 4.2),
//! cycles (4.5), expiry, chain deadline (4.10), risk-tiered depth limits (4.1, 4.3, 4.8) with
//! human escalation at the limit (4.4), depth warnings (4.9) and depth exceptions (4.12).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::PolicyConfig;
use crate::model::{EscalationTarget, Refusal, Warning};
use crate::reasons::Reason;
use crate::view::{ChainLink, Delegation, ExceptionRef};

/// The depth facts of an admitted hop.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthDecision {
    /// This hop's depth (1 for the originator's delegation).
    pub depth: u8,
    /// The limit that applied, after risk tiering and any exception.
    pub max_depth: u8,
    /// Depth notices to carry into the grant.
    pub warnings: Vec<Warning>,
}

fn warning(reason: Reason, message: String) -> Warning {
    Warning { reason, message }
}

/// The longest chain a request may carry; beyond it depths no longer fit the metadata.
const MAX_CHAIN_LEN: usize = 254;

/// Runs every structural rule in order; the first failure decides. `req` is an owned
/// [`crate::Request`] or a borrowed [`crate::view::RequestView`]: the same rules, the same
/// verdicts.
pub fn check<R: Delegation>(config: &PolicyConfig, req: &R) -> Result<DepthDecision, Refusal> {
    check_shape(req)?;
    if req.from_id() == req.to_id() {
        return Err(Refusal::deny(
            Reason::SelfDelegation,
            format!("`{}` cannot delegate to itself", req.from_id()),
        ));
    }
    check_continuity(req)?;
    check_cycle(req)?;
    if req.parent_expires_at() <= req.now() {
        return Err(Refusal::deny(
            Reason::MandateExpired,
            format!(
                "`parent_mandate.expires_at` {} is not after now ({})",
                req.parent_expires_at(),
                req.now()
            ),
        ));
    }
    if let Some(first) = req.links().first() {
        let elapsed = req.now().saturating_sub(first.at());
        if elapsed > config.depth.chain_deadline_ms {
            return Err(Refusal::deny(
                Reason::ChainDeadlineExceeded,
                format!(
                    "the chain started {elapsed} ms ago; its deadline is {} ms",
                    config.depth.chain_deadline_ms
                ),
            ));
        }
    }
    check_depth(config, req)
}

fn check_shape<R: Delegation>(req: &R) -> Result<(), Refusal> {
    let malformed = |what: String| Err(Refusal::deny(Reason::RequestMalformed, what));
    if req.from_id().is_empty() || req.to_id().is_empty() {
        return malformed(String::from("agent ids must not be empty"));
    }
    for (id, trust) in [(req.from_id(), req.from_trust()), (req.to_id(), req.to_trust())] {
        if trust > 1000 {
            return malformed(format!("`{id}` has trust {trust}, outside 0-1000"));
        }
    }
    if req.links().len() > MAX_CHAIN_LEN {
        return malformed(format!("the chain has {} links; at most {MAX_CHAIN_LEN} fit", req.links().len()));
    }
    let mut previous_at = 0;
    for (i, link) in req.links().iter().enumerate() {
        if link.from().is_empty() || link.to().is_empty() {
            return malformed(format!("`chain[{i}]` has an empty agent id"));
        }
        if !(0.0..=1.0).contains(&link.alpha()) {
            return malformed(format!("`chain[{i}].alpha` is {}, outside [0, 1]", link.alpha()));
        }
        // Link times are the trace's clock: they may not run backwards or into the future,
        // or the chain deadline (4.10) could be dodged.
        if link.at() < previous_at || link.at() > req.now() {
            return malformed(format!(
                "`chain[{i}].at` ({}) is before the previous link or after now ({})",
                link.at(),
                req.now()
            ));
        }
        previous_at = link.at();
    }
    if let Some(i) = req.state().iter().position(|x| !x.is_finite()) {
        return malformed(format!("`state[{i}]` is not a finite number"));
    }
    Ok(())
}

/// Each link starts where the previous ended, the delegator is where the chain ends, and each
/// link's depth is its position (immutable depth metadata, AG-396 4.2).
fn check_continuity<R: Delegation>(req: &R) -> Result<(), Refusal> {
    let mut expected_from = req.links().first().map(ChainLink::from);
    for (i, link) in req.links().iter().enumerate() {
        if Some(link.from()) != expected_from {
            return Err(Refusal::deny(
                Reason::ChainDiscontinuous,
                format!(
                    "`chain[{i}].from` is `{}` but the previous link ended at `{}`",
                    link.from(),
                    expected_from.unwrap_or_default()
                ),
            ));
        }
        if usize::from(link.depth()) != i + 1 {
            return Err(Refusal::deny(
                Reason::DepthMetadataInvalid,
                format!("`chain[{i}].depth` is {} but the link is hop {}", link.depth(), i + 1),
            ));
        }
        expected_from = Some(link.to());
    }
    if let Some(last) = req.links().last()
        && last.to() != req.from_id()
    {
        return Err(Refusal::deny(
            Reason::ChainDiscontinuous,
            format!("`{}` delegates but the chain ends at `{}`", req.from_id(), last.to()),
        ));
    }
    Ok(())
}

/// The target may not appear anywhere in the chain, originator included (AG-396 4.5).
fn check_cycle<R: Delegation>(req: &R) -> Result<(), Refusal> {
    let target = req.to_id();
    let position = if req.originator() == target {
        Some(0)
    } else {
        req.links().iter().position(|l| l.to() == target).map(|i| i + 1)
    };
    match position {
        Some(hop) => Err(Refusal::deny(
            Reason::DelegationCycle,
            format!("`{target}` already appears in the chain at depth {hop}"),
        )),
        None => Ok(()),
    }
}

fn check_depth<R: Delegation>(config: &PolicyConfig, req: &R) -> Result<DepthDecision, Refusal> {
    let mut warnings = Vec::new();
    let risk = req.risk();
    let mut max_depth = config.depth.max_depth.min(config.depth.max_depth_by_risk.get(risk));
    if let Some(exception) = req.depth_exception() {
        match exception_refusal(config, req, &exception) {
            None => {
                let extra = exception.extra_depth.min(config.depth.max_exception_extra);
                max_depth = max_depth.saturating_add(extra);
                warnings.push(warning(
                    Reason::DepthExceptionApplied,
                    format!(
                        "limit raised by {extra} to {max_depth} until {}, approved by `{}`",
                        exception.expires_at, exception.approved_by
                    ),
                ));
            }
            Some(why) => warnings
                .push(warning(Reason::DepthExceptionIgnored, format!("depth exception ignored: {why}"))),
        }
    }
    // The chain length is bounded by MAX_CHAIN_LEN, so the hop depth fits in a u8.
    let depth = u8::try_from(req.hop_depth()).unwrap_or(u8::MAX);
    let at_limit = if depth > max_depth {
        Some((
            Reason::DepthExceeded,
            format!("hop {depth} would exceed the maximum depth {max_depth} for {risk:?}-risk tasks"),
        ))
    } else if req.parent_remaining_depth() == 0 {
        Some((
            Reason::DelegatorTerminal,
            format!("`{}` holds a terminal mandate (remaining depth 0)", req.from_id()),
        ))
    } else {
        None
    };
    if let Some((reason, message)) = at_limit {
        return Err(if req.completable_locally() {
            Refusal::deny(reason, format!("{message}; complete the task at the current level"))
        } else {
            // AG-396 4.4: escalate rather than drop the task or return an uninformative error.
            Refusal::escalate(
                EscalationTarget::Human(config.escalation.human.clone()),
                Reason::DepthLimitEscalation,
                format!("{message}, and `{}` cannot complete the task itself", req.from_id()),
            )
        });
    }
    // The small tolerance keeps e.g. 0.28 * 25 = 7.000000000000001 from missing hop 7.
    if f64::from(depth) + 1e-9 >= config.depth.warning_ratio * f64::from(max_depth) {
        warnings.push(warning(
            Reason::DepthWarning,
            format!(
                "hop {depth} of at most {max_depth} reaches the {:.0}% warning threshold",
                config.depth.warning_ratio * 100.0
            ),
        ));
    }
    Ok(DepthDecision { depth, max_depth, warnings })
}

/// Why a depth exception does not apply, or `None` when it does (AG-396 4.12: human approval,
/// documented justification, automatic reversion at expiry).
fn exception_refusal<R: Delegation>(
    config: &PolicyConfig,
    req: &R,
    exception: &ExceptionRef<'_>,
) -> Option<String> {
    let approver = exception.approved_by;
    let authorised =
        approver == config.escalation.human || config.depth.exception_approvers.iter().any(|a| a == approver);
    let in_chain =
        approver == req.from_id() || req.links().iter().any(|l| l.from() == approver || l.to() == approver);
    if approver.is_empty() {
        Some(String::from("it lacks a human approval record"))
    } else if !authorised || in_chain {
        Some(format!("`{approver}` is not an authorised human approver"))
    } else if exception.justification.is_empty() {
        Some(String::from("it has no documented justification"))
    } else if exception.expires_at <= req.now() {
        Some(format!("it lapsed at {}", exception.expires_at))
    } else if exception.extra_depth == 0 || config.depth.max_exception_extra == 0 {
        Some(String::from("it adds no depth under this policy"))
    } else {
        None
    }
}

//! Structural rules, decided from the chain's shape alone and run first because they are the
//! cheapest: request shape, canonical agent ids ([`crate::identity`]), self-delegation, chain
//! continuity, depth metadata (AG-396 4.2), cycles (4.5), expiry, chain deadline (4.10),
//! risk-tiered depth limits (4.1, 4.3, 4.8) with human escalation at the limit (4.4), depth
//! warnings (4.9) and depth exceptions (4.12).
//!
//! Every agent id is compared in its canonical form, so `Agent-A`, fullwidth `ＡＧＥＮＴ-Ａ`
//! and `agent-a` are one agent to the self-delegation, continuity and cycle checks; an id
//! without a canonical form is refused with its `agent-id-*` reason before any of them.
//!
//! A cycle is treated as exceeding the maximum depth (4.5): when the delegator can complete the
//! task itself it is denied (`delegation-cycle`), otherwise it escalates to the designated human
//! like the depth limit (`depth-limit-escalation`, 4.4), once expiry and the chain deadline
//! have been checked.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::PolicyConfig;
use crate::identity;
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
    /// The chain's agents in canonical form, originator first and this hop's target last.
    pub agents: Vec<String>,
}

/// The agent ids of a request in canonical form ([`identity::canonicalise`]), borrowed from
/// the request where they already are.
struct Ids<'a> {
    from: Cow<'a, str>,
    to: Cow<'a, str>,
    /// `(from, to)` of each link.
    links: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl Ids<'_> {
    fn originator(&self) -> &str {
        self.links.first().map_or(&*self.from, |(from, _)| &**from)
    }

    /// The chain's agents, originator first, this hop's target last.
    fn into_agents(self) -> Vec<String> {
        let mut agents = Vec::with_capacity(self.links.len() + 2);
        let mut links = self.links.into_iter();
        match links.next() {
            Some((from, to)) => {
                agents.push(from.into_owned());
                agents.push(to.into_owned());
            }
            None => agents.push(self.from.into_owned()),
        }
        agents.extend(links.map(|(_, to)| to.into_owned()));
        agents.push(self.to.into_owned());
        agents
    }
}

/// Canonicalises every agent id of the request, refusing the first that has no canonical form
/// with its `agent-id-*` reason and the field it came from.
fn canonical_ids<R: Delegation>(req: &R) -> Result<Ids<'_>, Refusal> {
    fn canon<'a>(id: &'a str, field: &dyn Fn() -> String) -> Result<Cow<'a, str>, Refusal> {
        identity::canonicalise_borrowed(id).map_err(|why| Refusal::Deny(why.into_denial(&field(), id)))
    }
    let from = canon(req.from_id(), &|| String::from("from.id"))?;
    let to = canon(req.to_id(), &|| String::from("to.id"))?;
    let mut links = Vec::with_capacity(req.links().len());
    for (i, link) in req.links().iter().enumerate() {
        let link_from = canon(link.from(), &|| format!("chain[{i}].from"))?;
        let link_to = canon(link.to(), &|| format!("chain[{i}].to"))?;
        links.push((link_from, link_to));
    }
    Ok(Ids { from, to, links })
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
    let ids = canonical_ids(req)?;
    crate::registry::check(req.registry(), &ids.from, &ids.to)?;
    if ids.from == ids.to {
        let same = if req.from_id() == req.to_id() {
            String::new()
        } else {
            format!(" (`{}` is the same agent)", req.to_id())
        };
        return Err(Refusal::deny(
            Reason::SelfDelegation,
            format!("`{}` cannot delegate to itself{same}", req.from_id()),
        ));
    }
    check_continuity(req, &ids)?;
    let cycle = find_cycle(req, &ids);
    if let Some(message) = &cycle
        && req.completable_locally()
    {
        return Err(Refusal::deny(Reason::DelegationCycle, message.clone()));
    }
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
    if let Some(message) = cycle {
        // AG-396 4.5 treats a cycle as exceeding the maximum depth, so it takes the depth
        // limit's path (4.4): the task cannot be completed here, a human decides.
        return Err(Refusal::escalate(
            EscalationTarget::Human(config.escalation.human.clone()),
            Reason::DepthLimitEscalation,
            format!(
                "{message}: a cycle counts as exceeding the maximum depth, and `{}` cannot complete the task itself",
                req.from_id()
            ),
        ));
    }
    check_depth(config, req, ids)
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
/// link's depth is its position (immutable depth metadata, AG-396 4.2). Agents are compared in
/// canonical form.
fn check_continuity<R: Delegation>(req: &R, ids: &Ids) -> Result<(), Refusal> {
    let mut expected_from = ids.links.first().map(|(from, _)| &**from);
    for (i, (link, (from, to))) in req.links().iter().zip(&ids.links).enumerate() {
        if Some(&**from) != expected_from {
            let previous = i.checked_sub(1).and_then(|p| req.links().get(p)).map(ChainLink::to);
            return Err(Refusal::deny(
                Reason::ChainDiscontinuous,
                format!(
                    "`chain[{i}].from` is `{}` but the previous link ended at `{}`",
                    link.from(),
                    previous.unwrap_or_default()
                ),
            ));
        }
        if usize::from(link.depth()) != i + 1 {
            return Err(Refusal::deny(
                Reason::DepthMetadataInvalid,
                format!("`chain[{i}].depth` is {} but the link is hop {}", link.depth(), i + 1),
            ));
        }
        expected_from = Some(&**to);
    }
    if let (Some(last), Some((_, last_to))) = (req.links().last(), ids.links.last())
        && *last_to != ids.from
    {
        return Err(Refusal::deny(
            Reason::ChainDiscontinuous,
            format!("`{}` delegates but the chain ends at `{}`", req.from_id(), last.to()),
        ));
    }
    Ok(())
}

/// Where the target already appears in the chain, originator included (AG-396 4.5), compared
/// in canonical form: the cycle's description, or `None`.
fn find_cycle<R: Delegation>(req: &R, ids: &Ids) -> Option<String> {
    let target = &*ids.to;
    let hop =
        if ids.originator() == target { 0 } else { ids.links.iter().position(|(_, to)| to == target)? + 1 };
    let listed = match hop.checked_sub(1).and_then(|i| req.links().get(i)) {
        Some(link) => link.to(),
        None => req.originator(),
    };
    let alias = if listed == req.to_id() { String::new() } else { format!(" as `{listed}`") };
    Some(format!("`{}` already appears in the chain at depth {hop}{alias}", req.to_id()))
}

fn check_depth<R: Delegation>(
    config: &PolicyConfig,
    req: &R,
    ids: Ids<'_>,
) -> Result<DepthDecision, Refusal> {
    let agents = ids.into_agents();
    let mut warnings = Vec::new();
    let risk = req.risk();
    let mut max_depth = config.depth.max_depth.min(config.depth.max_depth_by_risk.get(risk));
    if let Some(exception) = req.depth_exception() {
        match exception_refusal(config, req, &agents, &exception) {
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
    Ok(DepthDecision { depth, max_depth, warnings, agents })
}

/// Why a depth exception does not apply, or `None` when it does (AG-396 4.12: human approval,
/// documented justification, automatic reversion at expiry).
/// An approver who is one of the chain's agents (`agents`, canonical) under any spelling of its
/// id is not independent of the chain and does not count.
fn exception_refusal<R: Delegation>(
    config: &PolicyConfig,
    req: &R,
    agents: &[String],
    exception: &ExceptionRef<'_>,
) -> Option<String> {
    let approver = exception.approved_by;
    let authorised =
        approver == config.escalation.human || config.depth.exception_approvers.iter().any(|a| a == approver);
    let in_chain = approver == req.from_id()
        || req.links().iter().any(|l| l.from() == approver || l.to() == approver)
        || identity::canonicalise(approver).is_ok_and(|canonical| agents.contains(&canonical));
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

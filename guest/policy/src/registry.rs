//! The tenant's agent registry (Vorion: only registered agents take part; AG-396's
//! `requireExplicitDelegation`): who may take part in a hop, decided on the host's facts
//! ([`crate::RegistryFacts`], looked up in its own registry) right after the request's shape
//! and ids are checked and before any other rule.

use alloc::format;
use alloc::string::String;

use crate::model::{EscalationTarget, Refusal, UnregisteredRule};
use crate::reasons::Reason;
use crate::view::RegistryView;

/// The registry's verdict on a hop from `from` to `to` (canonical ids): `Ok` when both agents
/// may take part, or when no registry applies (`facts` is `None`).
///
/// An unregistered agent (the delegator named first) is refused with `unregistered-agent` or
/// escalated to the registry's reviewer with `unregistered-agent-review`, as the tenant chose
/// (`request-malformed` when the facts name no reviewer); a registered pair is refused with
/// `delegation-not-registered` under explicit delegation unless the delegator lists the delegate.
pub fn check(facts: Option<RegistryView<'_>>, from: &str, to: &str) -> Result<(), Refusal> {
    let Some(facts) = facts else { return Ok(()) };
    let missing = if !facts.delegator_registered {
        Some(from)
    } else if !facts.delegate_registered {
        Some(to)
    } else {
        None
    };
    if let Some(agent) = missing {
        let message = format!("`{agent}` is not in this tenant's agent registry");
        return Err(match facts.unregistered {
            UnregisteredRule::Deny => Refusal::deny(Reason::UnregisteredAgent, message),
            // An escalation needs someone to escalate to: without a reviewer it fails closed.
            UnregisteredRule::Escalate if facts.reviewer.trim().is_empty() => Refusal::deny(
                Reason::RequestMalformed,
                format!("{message}, and `registry.reviewer` names no human to review the hop"),
            ),
            UnregisteredRule::Escalate => Refusal::escalate(
                EscalationTarget::Human(String::from(facts.reviewer)),
                Reason::UnregisteredAgentReview,
                message,
            ),
        });
    }
    if facts.explicit_delegation && !facts.delegate_listed {
        return Err(Refusal::deny(
            Reason::DelegationNotRegistered,
            format!("`{from}` is not registered to delegate to `{to}` (explicit delegation is required)"),
        ));
    }
    Ok(())
}

//! Trust (Vorion delegation docs): the chain's effective trust is the executing agent's own
//! score (upward escalation, never borrowed from the delegator); penalties propagate along the
//! chain on failure, gains go to the executor only.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::{InsufficientTrust, PolicyConfig};
use crate::identity;
use crate::model::{EscalationTarget, Outcome, Refusal, TrustDelta, TrustTier};
use crate::reasons::Reason;
use crate::view::{ChainLink, Delegation};

/// The effective tier of the chain: the executor's own (Vorion "upward escalation").
pub fn effective_tier<R: Delegation>(req: &R) -> TrustTier {
    TrustTier::of_score(req.to_trust())
}

/// Refuses or escalates when the executor's own tier is below what the task's risk requires.
pub fn check<R: Delegation>(config: &PolicyConfig, req: &R) -> Result<(), Refusal> {
    let required = config.trust.required_tier.get(req.risk());
    let actual = effective_tier(req);
    if actual >= required {
        return Ok(());
    }
    let shortfall = format!(
        "`{}` is {actual:?} (trust {}) but {:?}-risk tasks require {required:?} or above",
        req.to_id(),
        req.to_trust(),
        req.risk()
    );
    Err(match config.trust.on_insufficient {
        InsufficientTrust::Deny => Refusal::deny(Reason::TrustInsufficient, shortfall),
        InsufficientTrust::Escalate => {
            let target = escalation_target(config, req, required);
            Refusal::escalate(target, Reason::TrustEscalation, shortfall)
        }
    })
}

/// The most trusted registered escalation agent that qualifies and is not already part of the
/// chain under any spelling of its id ([`identity::same_agent`]); the human authority when none
/// does. An agent target is named by its canonical id.
fn escalation_target<R: Delegation>(config: &PolicyConfig, req: &R, required: TrustTier) -> EscalationTarget {
    let in_chain = |id: &str| {
        identity::same_agent(id, req.from_id())
            || identity::same_agent(id, req.to_id())
            || req
                .links()
                .iter()
                .any(|l| identity::same_agent(id, l.from()) || identity::same_agent(id, l.to()))
    };
    config
        .escalation
        .agents
        .iter()
        .filter(|a| TrustTier::of_score(a.trust) >= required && !in_chain(&a.id))
        // `rev` makes the first-listed agent win ties: `max_by_key` keeps the last maximum.
        .rev()
        .max_by_key(|a| a.trust)
        .map_or_else(
            || EscalationTarget::Human(config.escalation.human.clone()),
            |a| EscalationTarget::Agent(identity::canonicalise(&a.id).unwrap_or_else(|_| a.id.clone())),
        )
}

/// Trust changes once a delegated task ends. `chain` lists the agents originator first,
/// executor last. On failure every agent is penalised (only the executor when propagation is
/// off); on success only the executor gains. Duplicate ids are reported once.
pub fn trust_deltas(penalty_propagation: bool, chain: &[String], outcome: Outcome) -> Vec<TrustDelta> {
    let Some(executor) = chain.last() else {
        return Vec::new();
    };
    let single = |agent: &String, delta: f64| alloc::vec![TrustDelta { agent: agent.clone(), delta }];
    match outcome {
        Outcome::Success(gain) => single(executor, gain.abs()),
        Outcome::Failure(penalty) if penalty_propagation => {
            let mut deltas: Vec<TrustDelta> = Vec::with_capacity(chain.len());
            for agent in chain {
                if !deltas.iter().any(|d| &d.agent == agent) {
                    deltas.push(TrustDelta { agent: agent.clone(), delta: -penalty.abs() });
                }
            }
            deltas
        }
        Outcome::Failure(penalty) => single(executor, -penalty.abs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn chain() -> Vec<String> {
        ["agent-a", "agent-b", "agent-c"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn failure_penalises_every_agent_when_propagation_is_on() {
        let deltas = trust_deltas(true, &chain(), Outcome::Failure(8.57));
        let expected: Vec<TrustDelta> =
            chain().into_iter().map(|agent| TrustDelta { agent, delta: -8.57 }).collect();
        assert_eq!(deltas, expected);
    }

    #[test]
    fn failure_penalises_only_the_executor_when_propagation_is_off() {
        let deltas = trust_deltas(false, &chain(), Outcome::Failure(8.57));
        assert_eq!(deltas, alloc::vec![TrustDelta { agent: "agent-c".into(), delta: -8.57 }]);
    }

    #[test]
    fn success_rewards_only_the_executor() {
        for propagation in [true, false] {
            let deltas = trust_deltas(propagation, &chain(), Outcome::Success(3.0));
            assert_eq!(deltas, alloc::vec![TrustDelta { agent: "agent-c".into(), delta: 3.0 }]);
        }
    }

    #[test]
    fn an_empty_chain_changes_nothing() {
        assert!(trust_deltas(true, &[], Outcome::Failure(1.0)).is_empty());
    }
}

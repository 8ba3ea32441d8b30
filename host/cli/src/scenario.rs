//! Multi-hop scenarios: a file of proposed delegations replayed in order through a policy,
//! threading each allowed hop's grant into the next (chain, depth, child mandate), and
//! recording the delegation trace (AG-396 4.6).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use sbd_policy::{Agent, DepthException, Link, Mandate, Request, Task, TimestampMs, Verdict};
use serde::{Deserialize, Serialize};

/// A scenario file.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Unix time in ms that hop offsets count from.
    pub start: TimestampMs,
    /// Replay against the current clock: every instant in the file (`start` and each
    /// `expires_at`) moves by the same amount so that `start` is the moment of the replay. For
    /// scenarios whose point is not a fixed date (the demo); mandates then expire as far after
    /// the replay as the file says they expire after `start`.
    #[serde(default)]
    pub rebase_to_now: bool,
    /// The agent that starts the chain.
    pub originator: Agent,
    /// The originator's mandate.
    pub mandate: Mandate,
    /// Trust scores of every other agent.
    pub trust: BTreeMap<String, u16>,
    /// Proposed delegations, in time order.
    pub hops: Vec<Hop>,
}

/// One proposed delegation.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hop {
    /// What this hop is meant to show.
    #[serde(default)]
    pub note: String,
    /// Delegating agent; must already hold a mandate in the scenario.
    pub from: String,
    /// Proposed receiving agent.
    pub to: String,
    /// Milliseconds after `start`.
    pub at: u64,
    /// The task handed over.
    pub task: Task,
    /// The mandate asked for the child.
    pub requested: Mandate,
    /// SBD state vector.
    #[serde(default)]
    pub state: Vec<f64>,
    /// A human-approved depth exception, if any.
    #[serde(default)]
    pub depth_exception: Option<DepthException>,
    /// What the hop must decide; `sbd test` turns it into an assertion (`replay` ignores it).
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// The decision kinds an expectation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The delegation goes ahead.
    Allow,
    /// The delegation is held for a human or a more trusted agent.
    Escalate,
    /// The delegation is refused.
    Deny,
}

impl Decision {
    /// The kind of `verdict`.
    pub fn of(verdict: &Verdict) -> Decision {
        match verdict {
            Verdict::Allow(_) => Decision::Allow,
            Verdict::Escalate(_) => Decision::Escalate,
            Verdict::Deny(_) => Decision::Deny,
        }
    }
}

/// An assertion on one hop's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The decision.
    pub decision: Decision,
    /// The reason name of an escalation or denial (`delegation-cycle`); any when absent.
    #[serde(default)]
    pub reason: Option<String>,
    /// Reason names of warnings an allow must carry (`depth-warning`); others may occur too.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Expect {
    /// `None` when `verdict` meets the expectation, else what differs.
    pub fn mismatch(&self, verdict: &Verdict) -> Option<String> {
        let got = Decision::of(verdict);
        let reason = verdict.reason().map(|r| r.name());
        let describe = |d: Decision, r: Option<&str>| match r {
            Some(r) => format!("{d:?} {r}").to_lowercase(),
            None => format!("{d:?}").to_lowercase(),
        };
        if got != self.decision || self.reason.as_deref().is_some_and(|want| Some(want) != reason) {
            return Some(format!(
                "expected {}, got {}",
                describe(self.decision, self.reason.as_deref()),
                describe(got, reason)
            ));
        }
        if let Verdict::Allow(grant) = verdict {
            let have: Vec<&str> = grant.warnings.iter().map(|w| w.reason.name()).collect();
            let missing: Vec<&str> =
                self.warnings.iter().map(String::as_str).filter(|w| !have.contains(w)).collect();
            if !missing.is_empty() {
                return Some(format!("expected warnings {missing:?}, got {have:?}"));
            }
        }
        None
    }
}

/// One entry of the delegation trace: who asked whom, when, at what depth, with what result.
#[derive(Debug, Clone, Serialize)]
pub struct TraceEvent {
    /// Position in the scenario, from 1.
    pub hop: usize,
    /// Decision instant.
    pub at: TimestampMs,
    /// Delegating agent.
    pub from: String,
    /// Proposed receiving agent.
    pub to: String,
    /// The depth the hop would have.
    pub depth: usize,
    /// Task identifier (the task context).
    pub task: String,
    /// The full request as decided.
    pub request: Request,
    /// The verdict.
    pub verdict: Verdict,
}

/// The chain and mandate an agent holds after an allowed hop.
struct Holding {
    chain: Vec<Link>,
    mandate: Mandate,
}

impl Scenario {
    /// Parses a scenario from JSON text.
    pub fn from_json(text: &str) -> anyhow::Result<Scenario> {
        let scenario: Scenario = sbd_runtime::json::from_str(text).context("not a valid scenario")?;
        if scenario.hops.is_empty() {
            bail!("the scenario has no hops");
        }
        Ok(scenario)
    }

    /// This scenario with every instant moved so that `start` becomes `now` (`rebase_to_now`).
    /// An instant that would leave the u64 range is an error, not a wrap.
    pub fn rebased(&self, now: TimestampMs) -> anyhow::Result<Scenario> {
        let shift = |t: TimestampMs| -> anyhow::Result<TimestampMs> {
            // t - start + now, without leaving u64: instants before `start` stay before `now`.
            let moved = if t >= self.start {
                now.checked_add(t - self.start)
            } else {
                now.checked_sub(self.start - t)
            };
            moved.with_context(|| format!("instant {t} leaves the clock's range when the scenario is moved to {now}"))
        };
        let mut out = self.clone();
        out.start = now;
        out.mandate.expires_at = shift(self.mandate.expires_at)?;
        for hop in &mut out.hops {
            hop.requested.expires_at = shift(hop.requested.expires_at)?;
            if let Some(exception) = &mut hop.depth_exception {
                exception.expires_at = shift(exception.expires_at)?;
            }
        }
        Ok(out)
    }

    /// Replays every hop through `decide`, returning the trace. A hop from an agent that holds
    /// no mandate yet (it never received an allowed delegation) is an error in the file.
    pub fn replay(&self, mut decide: impl FnMut(&Request) -> Verdict) -> anyhow::Result<Vec<TraceEvent>> {
        let mut holdings: BTreeMap<String, Holding> = BTreeMap::new();
        holdings
            .insert(self.originator.id.clone(), Holding { chain: Vec::new(), mandate: self.mandate.clone() });
        let mut trace = Vec::with_capacity(self.hops.len());
        for (i, hop) in self.hops.iter().enumerate() {
            let number = i + 1;
            let holding = holdings.get(&hop.from).with_context(|| {
                format!("hop {number}: `{}` holds no mandate at this point of the scenario", hop.from)
            })?;
            let request = Request {
                from: self.agent(&hop.from).with_context(|| format!("hop {number}"))?,
                to: self.agent(&hop.to).with_context(|| format!("hop {number}"))?,
                task: hop.task.clone(),
                parent_mandate: holding.mandate.clone(),
                requested_mandate: hop.requested.clone(),
                chain: holding.chain.clone(),
                state: hop.state.clone(),
                depth_exception: hop.depth_exception.clone(),
                action_mask: None,
                registry: None,
                now: self.start.saturating_add(hop.at),
            };
            let verdict = decide(&request);
            if let Verdict::Allow(grant) = &verdict {
                let mut chain = request.chain.clone();
                chain.push(Link {
                    from: hop.from.clone(),
                    to: hop.to.clone(),
                    depth: grant.depth,
                    alpha: grant.alpha,
                    at: request.now,
                    reason: hop.task.id.clone(),
                });
                holdings.insert(hop.to.clone(), Holding { chain, mandate: grant.child_mandate.clone() });
            }
            trace.push(TraceEvent {
                hop: number,
                at: request.now,
                from: hop.from.clone(),
                to: hop.to.clone(),
                depth: request.hop_depth(),
                task: hop.task.id.clone(),
                request,
                verdict,
            });
        }
        Ok(trace)
    }

    fn agent(&self, id: &str) -> anyhow::Result<Agent> {
        if id == self.originator.id {
            return Ok(self.originator.clone());
        }
        let trust = self.trust.get(id).with_context(|| format!("`{id}` has no trust score in `trust`"))?;
        Ok(Agent { id: id.to_string(), trust: *trust })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = include_str!("../../../policies/scenarios/demo.json");

    #[test]
    fn rebasing_moves_every_instant_by_the_same_amount() {
        let scenario = Scenario::from_json(DEMO).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(scenario.rebase_to_now, "the demo runs on the current clock");
        let now = scenario.start + 86_400_000 * 400;
        let moved = scenario.rebased(now).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(moved.start, now);
        assert_eq!(moved.mandate.expires_at - moved.start, scenario.mandate.expires_at - scenario.start);
        for (a, b) in moved.hops.iter().zip(&scenario.hops) {
            assert_eq!(a.requested.expires_at - now, b.requested.expires_at - scenario.start);
            assert_eq!(a.at, b.at);
        }
        // Earlier: instants before start stay before it.
        let earlier = scenario.rebased(scenario.start - 5).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(earlier.mandate.expires_at, scenario.mandate.expires_at - 5);
    }

    #[test]
    fn rebasing_past_the_clock_range_is_an_error() {
        let scenario = Scenario::from_json(DEMO).unwrap_or_else(|e| unreachable!("{e}"));
        let error = scenario.rebased(u64::MAX - 10).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("leaves the clock's range"), "{error}");
    }
}

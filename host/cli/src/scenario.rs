//! Multi-hop scenarios: a file of proposed delegations replayed in order through a policy,
//! threading each allowed hop's grant into the next (chain, depth, child mandate), and
//! recording the delegation trace (AG-396 4.6).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use sbd_policy::{Agent, DepthException, Link, Mandate, Request, Task, TimestampMs, Verdict};
use serde::{Deserialize, Serialize};

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Unix time in ms that hop offsets count from.
    pub start: TimestampMs,
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
#[derive(Debug, Clone, Deserialize)]
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
        let scenario: Scenario = serde_json::from_str(text).context("not a valid scenario")?;
        if scenario.hops.is_empty() {
            bail!("the scenario has no hops");
        }
        Ok(scenario)
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

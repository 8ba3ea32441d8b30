//! Shared fixtures for the end-to-end tests and benchmarks: policy configurations, a known-good
//! request, a generator of random requests that reaches every rule, and scratch directories.
#![allow(clippy::panic, reason = "fixtures fail loudly")]

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use sbd_policy::config::{AlphaCap, EscalationAgent, InsufficientTrust, RiskBand};
use sbd_policy::{
    ActionMask, Agent, Budget, BudgetUnit, DepthException, Link, Mandate, PolicyConfig, RegistryFacts, Request,
    RiskLevel, Task, ToolsetBudget, UnregisteredRule,
};

/// A scratch directory under the system temp dir, unique to this process and test, removed
/// when dropped (also when the test panics).
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates an empty `sbd-<test>-<pid>` directory.
    pub fn new(test: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("sbd-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create scratch directory {}: {e}", dir.display());
        }
        ScratchDir(dir)
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Err(e) = std::fs::write(&path, contents) {
            panic!("cannot write {}: {e}", path.display());
        }
        path
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fault-injection build of the policy component (see `guest/component/src/fault.rs`).
pub const FAULTY_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sbd_faulty.wasm"));

/// The instant every fixture is decided at.
pub const NOW: u64 = 1_790_000_000_000;

/// Configurations that between them switch every option: defaults, and a strict one with a
/// safe set, risk bands, a fixed state dimension, trust denials, escalation agents and no
/// propagation.
pub fn configs() -> Vec<PolicyConfig> {
    let default = PolicyConfig::named("default", "1");
    let mut strict = PolicyConfig::named("strict", "1");
    strict.depth.max_depth = 4;
    strict.depth.max_depth_by_risk.low = 4;
    strict.depth.max_depth_by_risk.medium = 3;
    strict.depth.chain_deadline_ms = 60_000;
    strict.trust.on_insufficient = InsufficientTrust::Deny;
    strict.trust.penalty_propagation = false;
    strict.escalation.agents = vec![
        EscalationAgent { id: "e".into(), trust: 990 },
        EscalationAgent { id: "supervisor".into(), trust: 700 },
    ];
    strict.sbd.state_dim = Some(2);
    strict.sbd.alpha_caps = vec![
        AlphaCap { feature: 0, above: 0.25, alpha_max: 0.2 },
        AlphaCap { feature: 1, above: 0.5, alpha_max: 0.6 },
    ];
    // Risk-tightened authority: from rho = max(lambda, 1 - alpha_max) 0.65 (high-risk tasks) at
    // most 3 hops; from 0.8 (critical tasks, or feature 0 above 0.25) at most 2 hops and review
    // below alpha 0.3.
    strict.sbd.risk_bands = vec![
        RiskBand { at_least: 0.65, max_depth: Some(3), review_threshold: None },
        RiskBand { at_least: 0.8, max_depth: Some(2), review_threshold: Some(0.3) },
    ];
    let mut escalating = strict.clone();
    escalating.name = "escalating".into();
    escalating.trust.on_insufficient = InsufficientTrust::Escalate;
    vec![default, strict, escalating]
}

fn usd(dollars: u64) -> Budget {
    Budget { unit: BudgetUnit::UsdMicrocents, amount: dollars * 100_000_000 }
}

/// A two-hop chain's third hop that the default policy allows: the typical decision.
pub fn allowed_request() -> Request {
    let mandate = |dollars, depth, actions: &[&str]| Mandate {
        value_ceiling: 500 * 100_000_000,
        action_kinds: actions.iter().map(|a| a.to_string()).collect(),
        counterparties: vec!["acme".into(), "globex".into()],
        budgets: vec![usd(dollars), Budget { unit: BudgetUnit::Tokens, amount: 100_000 }],
        remaining_depth: depth,
        expires_at: NOW + 3_600_000,
    };
    let link = |from: &str, to: &str, depth| Link {
        from: from.into(),
        to: to.into(),
        depth,
        alpha: 0.7,
        at: NOW - 10_000 + u64::from(depth) * 1_000,
        reason: "refund-4821".into(),
    };
    Request {
        from: Agent { id: "ledger-agent".into(), trust: 680 },
        to: Agent { id: "fx-agent".into(), trust: 660 },
        task: Task {
            id: "fx-4821".into(),
            action_kind: "payment.refund".into(),
            risk: RiskLevel::Low,
            value: 87 * 100_000_000,
            counterparty: Some("acme".into()),
            completable_locally: true,
        },
        parent_mandate: mandate(5, 3, &["crm.*", "payment.*"]),
        requested_mandate: mandate(2, 2, &["payment.refund"]),
        chain: vec![link("orchestrator", "refund-agent", 1), link("refund-agent", "ledger-agent", 2)],
        state: vec![0.12, 0.3],
        depth_exception: None,
        action_mask: None,
        registry: None,
        now: NOW,
    }
}

const AGENTS: [&str; 7] = ["a", "b", "c", "d", "e", "f", "g"];
const ACTIONS: [&str; 7] =
    ["*", "crm.*", "crm.read", "crm.write", "payment.*", "payment.refund", "email.send"];
const PARTIES: [&str; 4] = ["*", "acme", "globex", "initech"];

fn mandate() -> impl Strategy<Value = Mandate> {
    (
        0u64..2_000,
        proptest::collection::vec(proptest::sample::select(&ACTIONS[..]), 0..4),
        proptest::collection::vec(proptest::sample::select(&PARTIES[..]), 0..3),
        proptest::collection::vec((0usize..4, 0u64..1_000), 0..3),
        0u8..6,
        (NOW - 1_000)..(NOW + 10_000),
    )
        .prop_map(|(value_ceiling, actions, parties, budgets, remaining_depth, expires_at)| {
            let units =
                [BudgetUnit::UsdMicrocents, BudgetUnit::Tokens, BudgetUnit::Credits, BudgetUnit::RiskPoints];
            Mandate {
                value_ceiling,
                action_kinds: actions.into_iter().map(String::from).collect(),
                counterparties: parties.into_iter().map(String::from).collect(),
                // One budget per unit: a unit listed twice is its own refusal (mischief 14).
                budgets: budgets.into_iter().fold(Vec::new(), |mut kept: Vec<Budget>, (u, amount)| {
                    let unit = units[u % units.len()];
                    if !kept.iter().any(|b| b.unit == unit) {
                        kept.push(Budget { unit, amount });
                    }
                    kept
                }),
                remaining_depth,
                expires_at,
            }
        })
}

fn risk() -> impl Strategy<Value = RiskLevel> {
    prop_oneof![
        Just(RiskLevel::Low),
        Just(RiskLevel::Medium),
        Just(RiskLevel::High),
        Just(RiskLevel::Critical)
    ]
}

/// Random requests over six agents: chains that are mostly consistent, with tasks that mostly
/// fit the requested mandate (so the later rules are reached), but sometimes broken, cyclic,
/// self-delegating, stale, tampered or widened, with agent ids respelled (case, fullwidth) or
/// refused (whitespace, control, invisible, mixed-script, unassigned, oversized), or a budget
/// unit listed twice.
pub fn request() -> impl Strategy<Value = Request> {
    let agents = Just(AGENTS.to_vec())
        .prop_shuffle()
        .prop_map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
    let links = proptest::collection::vec((0.0f64..=1.0, 0u64..15_000), 0..5);
    (
        (agents, links, 0u8..30, any::<Index>()),
        (0u16..=1000, 0u16..=1000),
        (mandate(), mandate(), any::<bool>()),
        (any::<bool>(), any::<Index>(), risk(), 0.0f64..1.2, any::<Index>(), any::<bool>()),
        proptest::collection::vec(-0.5f64..1.0, 0..3),
        proptest::option::of((any::<bool>(), 0u8..4, (NOW - 1_000)..(NOW + 1_000))),
    )
        .prop_map(|(path, trust, mandates, task, state, exception)| {
            let (agents, links, mischief, pick) = path;
            let (from_trust, to_trust) = trust;
            let (parent, wanted, narrow_it) = mandates;
            let (task_fits, action_pick, risk, value_share, party_pick, completable_locally) = task;

            // The chain walks the shuffled agents in order: agents[0] -> agents[1] -> ...
            let mut chain = Vec::new();
            // Chains start 55-70 s ago: the strict policy's 60 s deadline is exceeded about a third of
            // the time, the default 15 minutes never.
            let mut at = NOW - 70_000;
            for (i, (alpha, step)) in links.iter().enumerate() {
                at += step;
                let depth = u8::try_from(i + 1).unwrap_or(u8::MAX);
                chain.push(Link {
                    from: agents[i].clone(),
                    to: agents[i + 1].clone(),
                    depth,
                    alpha: *alpha,
                    at,
                    reason: String::new(),
                });
            }
            let mut from = agents[links.len()].clone();
            let mut to = agents[links.len() + 1].clone();
            let mut to_trust = to_trust;
            match mischief {
                0 => to = pick.get(&agents[..=links.len()]).clone(), // a cycle, or self-delegation
                1 if !chain.is_empty() => chain[0].depth += 1,
                2 if chain.len() > 1 => chain[1].from = "z".into(),
                3 => from = "z".into(),
                4 => to_trust = 1001,
                // Agent ids (sbd_policy::identity): another spelling of a chain agent is that
                // agent (a cycle or self-delegation); refused characters are refused.
                6 => to = pick.get(&agents[..=links.len()]).to_uppercase(),
                7 => to.push(' '),
                8 => to.insert(0, '\u{200b}'),
                9 => to.push('\u{0}'),
                10 => to.insert(0, '\u{430}'),
                11 => to.push('\u{e000}'),
                12 => to = to.repeat(129),
                13 if !chain.is_empty() => {
                    let last = chain.len() - 1;
                    chain[last].to = from.chars().map(fullwidth).collect();
                }
                _ => {}
            }

            let mut requested =
                if narrow_it { sbd_policy::attenuation::narrow(&parent, &wanted) } else { wanted };
            if mischief == 14
                && let Some(first) = requested.budgets.first().copied()
            {
                requested.budgets.push(first);
            }
            let action_kind = if task_fits && !requested.action_kinds.is_empty() {
                action_pick.get(&requested.action_kinds).replace('*', "any")
            } else {
                action_pick.get(&ACTIONS[1..]).replace('*', "any")
            };
            // `value_share` above 1 puts the task over the ceiling.
            let value = (requested.value_ceiling as f64 * value_share) as u64;
            let counterparty = match requested.counterparties.as_slice() {
                _ if mischief == 5 => Some("nobody".to_string()),
                [] => None,
                parties => Some(party_pick.get(parties).replace('*', "acme")),
            };
            // The action mask (mischief 15-17): the task's toolset missing from the mask,
            // holding less than the cost, or enough.
            let toolset = sbd_policy::attenuation::toolset_of(&action_kind).to_string();
            let action_mask = match mischief {
                15 => Some(ActionMask { toolsets: vec![ToolsetBudget { toolset: "other".into(), remaining: 99 }], cost: 2 }),
                16 => Some(ActionMask { toolsets: vec![ToolsetBudget { toolset, remaining: 4 }], cost: 5 }),
                17 => Some(ActionMask { toolsets: vec![ToolsetBudget { toolset, remaining: 5 }], cost: 5 }),
                _ => None,
            };
            // The tenant's registry (mischief 18-22): an unregistered delegator (refused) or
            // delegate (escalated), explicit delegation without and with the delegate listed,
            // and an escalation without a reviewer (malformed).
            let registry = |delegator_registered, delegate_registered, unregistered, reviewer: &str, listed| {
                Some(RegistryFacts {
                    delegator_registered,
                    delegate_registered,
                    unregistered,
                    reviewer: reviewer.into(),
                    explicit_delegation: mischief == 20 || mischief == 21,
                    delegate_listed: listed,
                })
            };
            let registry = match mischief {
                18 => registry(false, true, UnregisteredRule::Deny, "registry-review", false),
                19 => registry(true, false, UnregisteredRule::Escalate, "registry-review", false),
                20 => registry(true, true, UnregisteredRule::Deny, "registry-review", false),
                21 => registry(true, true, UnregisteredRule::Escalate, "registry-review", true),
                22 => registry(true, false, UnregisteredRule::Escalate, " ", true),
                _ => None,
            };
            Request {
                from: Agent { id: from, trust: from_trust },
                to: Agent { id: to, trust: to_trust },
                task: Task { id: "t".into(), action_kind, risk, value, counterparty, completable_locally },
                parent_mandate: parent,
                requested_mandate: requested,
                chain,
                state,
                depth_exception: exception.map(|(approved, extra_depth, expires_at)| DepthException {
                    approved_by: if approved { "human-oversight".into() } else { String::new() },
                    justification: "quarter close".into(),
                    extra_depth,
                    expires_at,
                }),
                action_mask,
                registry,
                now: NOW,
            }
        })
}

/// The fullwidth form of an ASCII letter or digit (`a` -> `ａ`); other characters unchanged.
fn fullwidth(c: char) -> char {
    if c.is_ascii_alphanumeric() { char::from_u32(u32::from(c) - 0x21 + 0xFF01).unwrap_or(c) } else { c }
}

/// `n` requests from [`request`], the same for the same `seed` on every machine.
pub fn sample_requests(n: usize, seed: u8) -> Vec<Request> {
    let mut runner =
        TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]));
    let strategy = request();
    (0..n).filter_map(|_| strategy.new_tree(&mut runner).ok().map(|tree| tree.current())).collect()
}

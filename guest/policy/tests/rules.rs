//! Every rule of the delegation pipeline, exercised through the public entry point
//! [`Policy::evaluate`] only, positive and negative, one behaviour per test.
//!
//! Each test starts from [`base`], a request that the default configuration
//! (`PolicyConfig::named("test", "1")`) allows, and changes one thing.
#![allow(clippy::panic, reason = "a failing test panics with the verdict it got")]

use sbd_policy::config::{AlphaCap, EscalationAgent, InsufficientTrust};
use sbd_policy::{
    ActionMask, Agent, Budget, BudgetUnit, DepthException, Escalation, EscalationTarget, Grant, Link, Mandate, Outcome,
    Policy, PolicyConfig, Reason, RegistryFacts, Request, RiskLevel, Task, ToolsetBudget, TrustDelta,
    UnregisteredRule, Verdict,
};

// ---- helpers ------------------------------------------------------------------------------

const NOW: u64 = 1_700_000_000_000;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
/// The default chain deadline, 15 minutes.
const DEADLINE: u64 = 15 * MINUTE;
const EPS: f64 = 1e-12;

fn config() -> PolicyConfig {
    PolicyConfig::named("test", "1")
}

fn policy_with(config: PolicyConfig) -> Policy {
    match Policy::new(config) {
        Ok(policy) => policy,
        Err(e) => panic!("invalid test configuration: {e}"),
    }
}

fn evaluate(req: &Request) -> Verdict {
    policy_with(config()).evaluate(req)
}

fn evaluate_with(config: PolicyConfig, req: &Request) -> Verdict {
    policy_with(config).evaluate(req)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn usd(amount: u64) -> Budget {
    Budget { unit: BudgetUnit::UsdMicrocents, amount }
}

/// `agent-a` (trust 800) hands a low-risk refund of 5,000 to `acme` to `agent-b` (trust 700,
/// T4), asking for a mandate strictly inside its own. Allowed at hop 1 of at most 5.
fn base() -> Request {
    Request {
        from: Agent { id: "agent-a".into(), trust: 800 },
        to: Agent { id: "agent-b".into(), trust: 700 },
        task: Task {
            id: "task-1".into(),
            action_kind: "payment.refund".into(),
            risk: RiskLevel::Low,
            value: 5_000,
            counterparty: Some("acme".into()),
            completable_locally: true,
        },
        parent_mandate: Mandate {
            value_ceiling: 100_000,
            action_kinds: strings(&["payment.*", "crm.read"]),
            counterparties: strings(&["acme", "globex"]),
            budgets: vec![usd(50_000_000), Budget { unit: BudgetUnit::Tokens, amount: 10_000 }],
            remaining_depth: 4,
            expires_at: NOW + 2 * HOUR,
        },
        requested_mandate: Mandate {
            value_ceiling: 10_000,
            action_kinds: strings(&["payment.refund"]),
            counterparties: strings(&["acme"]),
            budgets: vec![usd(5_000_000)],
            remaining_depth: 3,
            expires_at: NOW + HOUR,
        },
        chain: Vec::new(),
        state: Vec::new(),
        depth_exception: None,
        action_mask: None,
        registry: None,
        now: NOW,
    }
}

fn link(from: &str, to: &str, depth: u8, alpha: f64) -> Link {
    Link { from: from.into(), to: to.into(), depth, alpha, at: NOW - MINUTE, reason: String::new() }
}

/// The name of agent `i` of a chain of `links` hops ending at the delegator `agent-a`.
fn hop_name(i: usize, links: usize) -> String {
    match i {
        0 => "origin".into(),
        i if i == links => "agent-a".into(),
        i => format!("hop-{i}"),
    }
}

/// [`base`] with `links` completed hops before it: `origin -> hop-1 -> ... -> agent-a`, each
/// with alpha 0.9, started a minute ago. The new hop is hop `links + 1`.
fn deep(links: usize) -> Request {
    let mut req = base();
    req.chain = (0..links)
        .map(|i| {
            let depth = u8::try_from(i + 1).unwrap_or(u8::MAX);
            link(&hop_name(i, links), &hop_name(i + 1, links), depth, 0.9)
        })
        .collect();
    req
}

fn allowed(verdict: Verdict) -> Grant {
    match verdict {
        Verdict::Allow(grant) => grant,
        other => panic!("expected an allow, got {other:?}"),
    }
}

/// Asserts a denial with `reason` and returns its message.
fn denied(verdict: Verdict, reason: Reason) -> String {
    match verdict {
        Verdict::Deny(denial) => {
            assert_eq!(denial.reason, reason, "wrong reason: {}", denial.message);
            denial.message
        }
        other => panic!("expected a {reason} denial, got {other:?}"),
    }
}

/// Asserts a denial with `reason` whose message names `field`.
fn denied_naming(verdict: Verdict, reason: Reason, field: &str) {
    let message = denied(verdict, reason);
    assert!(message.contains(field), "`{message}` should name {field}");
}

fn escalated(verdict: Verdict, reason: Reason) -> Escalation {
    match verdict {
        Verdict::Escalate(escalation) => {
            assert_eq!(escalation.reason, reason, "wrong reason: {}", escalation.message);
            escalation
        }
        other => panic!("expected a {reason} escalation, got {other:?}"),
    }
}

fn human(name: &str) -> EscalationTarget {
    EscalationTarget::Human(name.into())
}

fn warning_reasons(grant: &Grant) -> Vec<Reason> {
    grant.warnings.iter().map(|w| w.reason).collect()
}

fn assert_close(got: f64, want: f64) {
    assert!((got - want).abs() < EPS, "got {got}, want {want}");
}

fn exception(approved_by: &str, extra_depth: u8, expires_at: u64) -> DepthException {
    DepthException {
        approved_by: approved_by.into(),
        justification: "incident INC-42 needs one more specialist".into(),
        extra_depth,
        expires_at,
    }
}

fn alpha_cap(feature: u32, above: f64, alpha_max: f64) -> AlphaCap {
    AlphaCap { feature, above, alpha_max }
}

// ---- baseline -----------------------------------------------------------------------------

#[test]
fn the_baseline_request_is_allowed_without_warnings() {
    let grant = allowed(evaluate(&base()));
    assert!(grant.warnings.is_empty(), "{:?}", grant.warnings);
}

// ---- structural: shape --------------------------------------------------------------------

#[test]
fn an_empty_delegator_id_is_malformed() {
    let mut req = base();
    req.from.id = String::new();
    denied(evaluate(&req), Reason::RequestMalformed);
}

#[test]
fn an_empty_target_id_is_malformed() {
    let mut req = base();
    req.to.id = String::new();
    denied(evaluate(&req), Reason::RequestMalformed);
}

#[test]
fn target_trust_over_1000_is_malformed() {
    let mut req = base();
    req.to.trust = 1001;
    denied_naming(evaluate(&req), Reason::RequestMalformed, "agent-b");
}

#[test]
fn delegator_trust_over_1000_is_malformed() {
    let mut req = base();
    req.from.trust = 1001;
    denied_naming(evaluate(&req), Reason::RequestMalformed, "agent-a");
}

#[test]
fn trust_of_exactly_1000_is_well_formed() {
    let mut req = base();
    req.from.trust = 1000;
    req.to.trust = 1000;
    allowed(evaluate(&req));
}

#[test]
fn a_link_alpha_above_one_is_malformed() {
    let mut req = deep(1);
    req.chain[0].alpha = 1.5;
    denied_naming(evaluate(&req), Reason::RequestMalformed, "chain[0].alpha");
}

#[test]
fn a_negative_link_alpha_is_malformed() {
    let mut req = deep(2);
    req.chain[1].alpha = -0.1;
    denied_naming(evaluate(&req), Reason::RequestMalformed, "chain[1].alpha");
}

#[test]
fn a_nan_link_alpha_is_malformed() {
    let mut req = deep(1);
    req.chain[0].alpha = f64::NAN;
    denied_naming(evaluate(&req), Reason::RequestMalformed, "chain[0].alpha");
}

#[test]
fn link_alphas_of_exactly_zero_and_one_are_well_formed() {
    let mut req = deep(2);
    req.chain[0].alpha = 1.0;
    req.chain[1].alpha = 0.0;
    allowed(evaluate(&req));
}

#[test]
fn a_nan_state_feature_is_malformed() {
    let mut req = base();
    req.state = vec![0.1, f64::NAN];
    denied_naming(evaluate(&req), Reason::RequestMalformed, "state[1]");
}

#[test]
fn an_infinite_state_feature_is_malformed() {
    let mut req = base();
    req.state = vec![f64::INFINITY];
    denied_naming(evaluate(&req), Reason::RequestMalformed, "state[0]");
}

#[test]
fn a_chain_of_more_than_254_links_is_malformed() {
    let mut req = base();
    req.chain = (0..255).map(|i| link(&format!("x-{i}"), &format!("x-{}", i + 1), 1, 0.5)).collect();
    denied_naming(evaluate(&req), Reason::RequestMalformed, "255 links");
}

// ---- structural: self-delegation, continuity, depth metadata, cycles -----------------------

#[test]
fn self_delegation_is_denied() {
    let mut req = base();
    req.to.id = "agent-a".into();
    denied_naming(evaluate(&req), Reason::SelfDelegation, "agent-a");
}

#[test]
fn self_delegation_deep_in_a_chain_is_denied_as_self_delegation() {
    let mut req = deep(2);
    req.to.id = "agent-a".into();
    denied(evaluate(&req), Reason::SelfDelegation);
}

#[test]
fn a_continuous_chain_is_allowed() {
    let grant = allowed(evaluate(&deep(2)));
    assert_eq!(grant.depth, 3);
}

#[test]
fn a_chain_with_a_gap_between_links_is_discontinuous() {
    let mut req = deep(2);
    req.chain[1].from = "stranger".into();
    denied_naming(evaluate(&req), Reason::ChainDiscontinuous, "chain[1].from");
}

#[test]
fn a_chain_not_ending_at_the_delegator_is_discontinuous() {
    let mut req = deep(2);
    req.chain[1].to = "stranger".into();
    let message = denied(evaluate(&req), Reason::ChainDiscontinuous);
    assert!(message.contains("stranger") && message.contains("agent-a"), "{message}");
}

#[test]
fn tampered_link_depth_is_denied() {
    let mut req = deep(3);
    req.chain[1].depth = 3;
    denied_naming(evaluate(&req), Reason::DepthMetadataInvalid, "chain[1].depth");
}

#[test]
fn a_first_link_at_depth_zero_is_denied() {
    let mut req = deep(1);
    req.chain[0].depth = 0;
    denied_naming(evaluate(&req), Reason::DepthMetadataInvalid, "chain[0].depth");
}

#[test]
fn understated_link_depths_hiding_hops_are_denied() {
    // Links renumbered to look shallower than they are.
    let mut req = deep(3);
    req.chain[2].depth = 2;
    denied(evaluate(&req), Reason::DepthMetadataInvalid);
}

#[test]
fn a_cycle_back_to_the_originator_is_denied() {
    let mut req = deep(2);
    req.to.id = "origin".into();
    denied_naming(evaluate(&req), Reason::DelegationCycle, "origin");
}

#[test]
fn a_cycle_to_a_middle_agent_is_denied() {
    let mut req = deep(2);
    req.to.id = "hop-1".into();
    let message = denied(evaluate(&req), Reason::DelegationCycle);
    assert!(message.contains("hop-1") && message.contains("depth 1"), "{message}");
}

#[test]
fn a_cycle_one_hop_back_is_denied() {
    let mut req = deep(1);
    req.to.id = "origin".into();
    denied(evaluate(&req), Reason::DelegationCycle);
}

// ---- structural: expiry and chain deadline -------------------------------------------------

#[test]
fn expired_parent_mandate_is_denied() {
    let mut req = base();
    req.parent_mandate.expires_at = NOW - 1;
    req.requested_mandate.expires_at = NOW - 1;
    denied_naming(evaluate(&req), Reason::MandateExpired, "parent_mandate.expires_at");
}

#[test]
fn a_parent_mandate_expiring_exactly_now_is_expired() {
    let mut req = base();
    req.parent_mandate.expires_at = NOW;
    req.requested_mandate.expires_at = NOW;
    denied(evaluate(&req), Reason::MandateExpired);
}

#[test]
fn a_parent_mandate_expiring_just_after_now_is_valid() {
    let mut req = base();
    req.parent_mandate.expires_at = NOW + 1;
    req.requested_mandate.expires_at = NOW + 1;
    allowed(evaluate(&req));
}

#[test]
fn chain_deadline_exceeded_is_denied() {
    let mut req = deep(2);
    req.chain[0].at = NOW - DEADLINE - 1;
    denied_naming(evaluate(&req), Reason::ChainDeadlineExceeded, "deadline");
}

#[test]
fn a_chain_just_under_its_deadline_is_allowed() {
    let mut req = deep(2);
    req.chain[0].at = NOW - DEADLINE + 1;
    allowed(evaluate(&req));
}

#[test]
fn the_chain_deadline_counts_from_the_first_link() {
    // Only the first link's time matters; a recent last link does not reset the clock.
    let mut req = deep(2);
    req.chain[0].at = NOW - DEADLINE - 1;
    req.chain[1].at = NOW;
    denied(evaluate(&req), Reason::ChainDeadlineExceeded);
}

#[test]
fn the_chain_deadline_comes_from_the_configuration() {
    let mut config = config();
    config.depth.chain_deadline_ms = 1_000;
    let mut req = deep(1);
    req.chain[0].at = NOW - 1_001;
    denied(evaluate_with(config.clone(), &req), Reason::ChainDeadlineExceeded);
    req.chain[0].at = NOW - 999;
    allowed(evaluate_with(config, &req));
}

// ---- structural: depth limits (AG-396 4.1, 4.3, 4.4, 4.8) -----------------------------------

#[test]
fn depth_at_the_risk_tier_limit_is_allowed() {
    let mut req = deep(2);
    req.task.risk = RiskLevel::High;
    let grant = allowed(evaluate(&req));
    assert_eq!((grant.depth, grant.max_depth), (3, 3));
}

#[test]
fn depth_over_the_risk_tier_limit_is_denied_when_completable_locally() {
    let mut req = deep(3);
    req.task.risk = RiskLevel::High;
    let message = denied(evaluate(&req), Reason::DepthExceeded);
    assert!(message.contains("hop 4") && message.contains("maximum depth 3"), "{message}");
}

#[test]
fn depth_over_the_limit_escalates_to_the_human_when_not_completable_locally() {
    let mut req = deep(3);
    req.task.risk = RiskLevel::High;
    req.task.completable_locally = false;
    let escalation = escalated(evaluate(&req), Reason::DepthLimitEscalation);
    assert_eq!(escalation.target, human("human-oversight"));
    assert!(escalation.message.contains("agent-a"), "{}", escalation.message);
}

#[test]
fn depth_limit_escalation_goes_to_the_configured_human() {
    let mut config = config();
    config.escalation.human = "duty-officer".into();
    let mut req = deep(3);
    req.task.risk = RiskLevel::High;
    req.task.completable_locally = false;
    let escalation = escalated(evaluate_with(config, &req), Reason::DepthLimitEscalation);
    assert_eq!(escalation.target, human("duty-officer"));
}

#[test]
fn a_task_not_completable_locally_is_allowed_below_the_limit() {
    let mut req = base();
    req.task.completable_locally = false;
    allowed(evaluate(&req));
}

#[test]
fn low_risk_chains_reach_the_configured_maximum_of_5() {
    let grant = allowed(evaluate(&deep(4)));
    assert_eq!((grant.depth, grant.max_depth), (5, 5));
    denied(evaluate(&deep(5)), Reason::DepthExceeded);
}

#[test]
fn medium_risk_chains_stop_at_4() {
    let mut req = deep(3);
    req.task.risk = RiskLevel::Medium;
    let grant = allowed(evaluate(&req));
    assert_eq!((grant.depth, grant.max_depth), (4, 4));
    let mut req = deep(4);
    req.task.risk = RiskLevel::Medium;
    denied(evaluate(&req), Reason::DepthExceeded);
}

#[test]
fn critical_risk_chains_stop_at_2() {
    let mut req = deep(1);
    req.task.risk = RiskLevel::Critical;
    req.to.trust = 850;
    let grant = allowed(evaluate(&req));
    assert_eq!((grant.depth, grant.max_depth), (2, 2));
    let mut req = deep(2);
    req.task.risk = RiskLevel::Critical;
    req.to.trust = 850;
    denied(evaluate(&req), Reason::DepthExceeded);
}

#[test]
fn the_configured_max_depth_caps_every_risk_tier() {
    let mut config = config();
    config.depth.max_depth = 2;
    config.depth.max_depth_by_risk.low = 2;
    config.depth.max_depth_by_risk.medium = 2;
    config.depth.max_depth_by_risk.high = 2;
    denied(evaluate_with(config.clone(), &deep(2)), Reason::DepthExceeded);
    assert_eq!(allowed(evaluate_with(config, &deep(1))).max_depth, 2);
}

#[test]
fn delegator_with_terminal_mandate_is_denied_when_completable_locally() {
    let mut req = base();
    req.parent_mandate.remaining_depth = 0;
    req.requested_mandate.remaining_depth = 0;
    denied_naming(evaluate(&req), Reason::DelegatorTerminal, "agent-a");
}

#[test]
fn delegator_with_terminal_mandate_escalates_to_the_human_when_not_completable_locally() {
    let mut req = base();
    req.parent_mandate.remaining_depth = 0;
    req.requested_mandate.remaining_depth = 0;
    req.task.completable_locally = false;
    let escalation = escalated(evaluate(&req), Reason::DepthLimitEscalation);
    assert_eq!(escalation.target, human("human-oversight"));
}

#[test]
fn delegator_with_one_remaining_hop_may_delegate_a_terminal_mandate() {
    let mut req = base();
    req.parent_mandate.remaining_depth = 1;
    req.requested_mandate.remaining_depth = 0;
    assert_eq!(allowed(evaluate(&req)).remaining_depth, 0);
}

// ---- structural: depth warning (4.9) ------------------------------------------------------

#[test]
fn depth_warning_at_75_percent() {
    // Hop 4 of at most 5: 4 >= 0.75 * 5.
    let grant = allowed(evaluate(&deep(3)));
    assert_eq!(warning_reasons(&grant), [Reason::DepthWarning]);
    assert!(grant.warnings[0].message.contains("hop 4"), "{}", grant.warnings[0].message);
}

#[test]
fn depth_warning_absent_below_75_percent() {
    // Hop 3 of at most 5: 3 < 3.75.
    let grant = allowed(evaluate(&deep(2)));
    assert!(grant.warnings.is_empty(), "{:?}", grant.warnings);
}

#[test]
fn depth_warning_at_the_limit_itself() {
    let grant = allowed(evaluate(&deep(4)));
    assert_eq!(warning_reasons(&grant), [Reason::DepthWarning]);
}

#[test]
fn depth_warning_follows_the_risk_tier_limit() {
    // High risk, limit 3: hop 3 >= 2.25 warns, hop 2 >= 2.25 does not.
    let mut req = deep(2);
    req.task.risk = RiskLevel::High;
    assert_eq!(warning_reasons(&allowed(evaluate(&req))), [Reason::DepthWarning]);
    let mut req = deep(1);
    req.task.risk = RiskLevel::High;
    assert!(allowed(evaluate(&req)).warnings.is_empty());
}

#[test]
fn depth_warning_ratio_comes_from_the_configuration() {
    let mut config = config();
    config.depth.warning_ratio = 0.2;
    // Hop 1 of at most 5: 1 >= 0.2 * 5.
    assert_eq!(warning_reasons(&allowed(evaluate_with(config, &base()))), [Reason::DepthWarning]);
}

// ---- structural: depth exceptions (4.12) --------------------------------------------------

#[test]
fn approved_depth_exception_raises_the_limit() {
    let mut req = deep(3);
    req.task.risk = RiskLevel::High;
    req.depth_exception = Some(exception("human-oversight", 1, NOW + HOUR));
    let grant = allowed(evaluate(&req));
    assert_eq!((grant.depth, grant.max_depth, grant.remaining_depth), (4, 4, 0));
    assert_eq!(warning_reasons(&grant), [Reason::DepthExceptionApplied, Reason::DepthWarning]);
    assert!(grant.warnings[0].message.contains("human-oversight"), "{}", grant.warnings[0].message);
}

#[test]
fn an_approved_exception_still_has_a_limit() {
    let mut req = deep(4);
    req.task.risk = RiskLevel::High;
    req.depth_exception = Some(exception("human-oversight", 1, NOW + HOUR));
    let message = denied(evaluate(&req), Reason::DepthExceeded);
    assert!(message.contains("maximum depth 4"), "{message}");
}

#[test]
fn lapsed_exception_is_ignored_with_a_warning() {
    let mut req = base();
    req.depth_exception = Some(exception("human-oversight", 1, NOW));
    let grant = allowed(evaluate(&req));
    assert_eq!(grant.max_depth, 5);
    assert_eq!(warning_reasons(&grant), [Reason::DepthExceptionIgnored]);
    assert!(grant.warnings[0].message.contains("lapsed"), "{}", grant.warnings[0].message);
}

#[test]
fn lapsed_exception_does_not_raise_the_limit() {
    let mut req = deep(3);
    req.task.risk = RiskLevel::High;
    req.depth_exception = Some(exception("human-oversight", 1, NOW - 1));
    denied(evaluate(&req), Reason::DepthExceeded);
}

#[test]
fn exception_without_approver_is_ignored() {
    let mut req = base();
    req.depth_exception = Some(exception("", 1, NOW + HOUR));
    let grant = allowed(evaluate(&req));
    assert_eq!(grant.max_depth, 5);
    assert_eq!(warning_reasons(&grant), [Reason::DepthExceptionIgnored]);
    assert!(grant.warnings[0].message.contains("approval"), "{}", grant.warnings[0].message);
}

#[test]
fn exception_without_approver_does_not_raise_the_limit() {
    let mut req = deep(3);
    req.task.risk = RiskLevel::High;
    req.depth_exception = Some(exception("", 1, NOW + HOUR));
    denied(evaluate(&req), Reason::DepthExceeded);
}

#[test]
fn exception_without_justification_is_ignored() {
    let mut req = deep(3);
    req.task.risk = RiskLevel::High;
    let mut unjustified = exception("human-oversight", 1, NOW + HOUR);
    unjustified.justification = String::new();
    req.depth_exception = Some(unjustified);
    denied(evaluate(&req), Reason::DepthExceeded);
}

#[test]
fn exception_adding_no_depth_is_ignored() {
    let mut req = base();
    req.depth_exception = Some(exception("human-oversight", 0, NOW + HOUR));
    let grant = allowed(evaluate(&req));
    assert_eq!(grant.max_depth, 5);
    assert_eq!(warning_reasons(&grant), [Reason::DepthExceptionIgnored]);
}

#[test]
fn exception_extra_is_capped_by_max_exception_extra() {
    // High risk 3 + min(10, default cap 2) = 5.
    let mut req = deep(4);
    req.task.risk = RiskLevel::High;
    req.depth_exception = Some(exception("human-oversight", 10, NOW + HOUR));
    assert_eq!(allowed(evaluate(&req)).max_depth, 5);
    let mut req = deep(5);
    req.task.risk = RiskLevel::High;
    req.depth_exception = Some(exception("human-oversight", 10, NOW + HOUR));
    let message = denied(evaluate(&req), Reason::DepthExceeded);
    assert!(message.contains("maximum depth 5"), "{message}");
}

#[test]
fn exception_extra_cap_comes_from_the_configuration() {
    let mut config = config();
    config.depth.max_exception_extra = 1;
    let mut req = deep(4);
    req.task.risk = RiskLevel::High;
    req.depth_exception = Some(exception("human-oversight", 2, NOW + HOUR));
    let message = denied(evaluate_with(config, &req), Reason::DepthExceeded);
    assert!(message.contains("maximum depth 4"), "{message}");
}

// ---- attenuation: widened dimensions ------------------------------------------------------

#[test]
fn a_requested_mandate_equal_to_the_parent_but_one_hop_shorter_is_allowed() {
    let mut req = base();
    req.requested_mandate = req.parent_mandate.clone();
    req.requested_mandate.remaining_depth = 3;
    allowed(evaluate(&req));
}

#[test]
fn widened_budget_is_denied() {
    let mut req = base();
    req.requested_mandate.budgets = vec![usd(50_000_001)];
    denied_naming(evaluate(&req), Reason::BudgetWidened, "`budgets`");
}

#[test]
fn budget_in_a_unit_the_parent_lacks_is_denied() {
    let mut req = base();
    req.requested_mandate.budgets.push(Budget { unit: BudgetUnit::Credits, amount: 1 });
    let message = denied(evaluate(&req), Reason::BudgetWidened);
    assert!(message.contains("`budgets`") && message.contains("Credits"), "{message}");
}

#[test]
fn budget_equal_to_the_parent_is_allowed() {
    let mut req = base();
    req.requested_mandate.budgets = vec![usd(50_000_000)];
    allowed(evaluate(&req));
}

#[test]
fn widened_action_kinds_are_denied() {
    let mut req = base();
    req.requested_mandate.action_kinds.push("email.send".into());
    let message = denied(evaluate(&req), Reason::ActionKindsWidened);
    assert!(message.contains("`action_kinds`") && message.contains("email.send"), "{message}");
}

#[test]
fn an_action_family_wider_than_the_parent_is_denied() {
    let mut req = base();
    req.parent_mandate.action_kinds = strings(&["payment.refund"]);
    req.requested_mandate.action_kinds = strings(&["payment.*"]);
    denied_naming(evaluate(&req), Reason::ActionKindsWidened, "`action_kinds`");
}

#[test]
fn widened_counterparties_are_denied() {
    let mut req = base();
    req.requested_mandate.counterparties.push("initech".into());
    let message = denied(evaluate(&req), Reason::CounterpartiesWidened);
    assert!(message.contains("`counterparties`") && message.contains("initech"), "{message}");
}

#[test]
fn a_wildcard_counterparty_under_a_listed_parent_is_denied() {
    let mut req = base();
    req.requested_mandate.counterparties = strings(&["*"]);
    denied_naming(evaluate(&req), Reason::CounterpartiesWidened, "`counterparties`");
}

#[test]
fn widened_value_ceiling_is_denied() {
    let mut req = base();
    req.requested_mandate.value_ceiling = 100_001;
    denied_naming(evaluate(&req), Reason::ValueCeilingWidened, "`value_ceiling`");
}

#[test]
fn widened_expiry_is_denied() {
    let mut req = base();
    req.requested_mandate.expires_at = req.parent_mandate.expires_at + 1;
    denied_naming(evaluate(&req), Reason::ExpiryWidened, "`expires_at`");
}

#[test]
fn remaining_depth_equal_to_the_parent_is_denied() {
    let mut req = base();
    req.requested_mandate.remaining_depth = 4;
    denied_naming(evaluate(&req), Reason::DepthNotNarrowed, "`remaining_depth`");
}

#[test]
fn remaining_depth_above_the_parent_is_denied() {
    let mut req = base();
    req.requested_mandate.remaining_depth = 9;
    denied_naming(evaluate(&req), Reason::DepthNotNarrowed, "`remaining_depth`");
}

// ---- attenuation: the task fits the child mandate -----------------------------------------

#[test]
fn task_action_outside_the_child_mandate_is_denied() {
    let mut req = base();
    req.task.action_kind = "payment.charge".into();
    let message = denied(evaluate(&req), Reason::ActionNotPermitted);
    assert!(message.contains("`task.action_kind`") && message.contains("payment.charge"), "{message}");
}

#[test]
fn task_action_under_a_family_in_the_child_mandate_is_allowed() {
    let mut req = base();
    req.requested_mandate.action_kinds = strings(&["payment.*"]);
    req.task.action_kind = "payment.charge".into();
    allowed(evaluate(&req));
}

#[test]
fn task_value_over_the_child_ceiling_is_denied() {
    let mut req = base();
    req.task.value = 10_001;
    denied_naming(evaluate(&req), Reason::ValueOverCeiling, "`task.value`");
}

#[test]
fn task_value_at_the_child_ceiling_is_allowed() {
    let mut req = base();
    req.task.value = 10_000;
    allowed(evaluate(&req));
}

#[test]
fn task_counterparty_outside_the_child_mandate_is_denied() {
    // `globex` is within the parent's mandate but not the child's.
    let mut req = base();
    req.task.counterparty = Some("globex".into());
    let message = denied(evaluate(&req), Reason::CounterpartyNotPermitted);
    assert!(message.contains("`task.counterparty`") && message.contains("globex"), "{message}");
}

#[test]
fn task_without_a_counterparty_is_allowed() {
    let mut req = base();
    req.task.counterparty = None;
    allowed(evaluate(&req));
}

// ---- trust (Vorion upward escalation) -----------------------------------------------------

fn medium_risk_to(trust: u16) -> Request {
    let mut req = base();
    req.task.risk = RiskLevel::Medium;
    req.to.trust = trust;
    req
}

fn escalation_agents() -> Vec<EscalationAgent> {
    [("sup-low", 450), ("sup-mid", 600), ("sup-high", 900)]
        .iter()
        .map(|&(id, trust)| EscalationAgent { id: id.into(), trust })
        .collect()
}

#[test]
fn executor_at_the_required_tier_is_allowed() {
    // Medium requires T3, which starts at 500.
    allowed(evaluate(&medium_risk_to(500)));
}

#[test]
fn trust_below_the_required_tier_escalates_to_the_human_when_no_agent_is_registered() {
    let escalation = escalated(evaluate(&medium_risk_to(499)), Reason::TrustEscalation);
    assert_eq!(escalation.target, human("human-oversight"));
    assert!(
        escalation.message.contains("agent-b") && escalation.message.contains("T3"),
        "{}",
        escalation.message
    );
}

#[test]
fn trust_below_the_required_tier_escalates_to_the_most_trusted_qualifying_agent() {
    let mut config = config();
    config.escalation.agents = escalation_agents();
    let escalation = escalated(evaluate_with(config, &medium_risk_to(499)), Reason::TrustEscalation);
    assert_eq!(escalation.target, EscalationTarget::Agent("sup-high".into()));
}

#[test]
fn trust_escalation_skips_agents_already_in_the_chain() {
    let mut config = config();
    config.escalation.agents = escalation_agents();
    let mut req = medium_risk_to(499);
    req.chain = vec![link("sup-high", "agent-a", 1, 0.9)];
    let escalation = escalated(evaluate_with(config, &req), Reason::TrustEscalation);
    assert_eq!(escalation.target, EscalationTarget::Agent("sup-mid".into()));
}

#[test]
fn trust_escalation_skips_the_delegator_itself() {
    let mut config = config();
    config.escalation.agents = escalation_agents();
    let mut req = medium_risk_to(499);
    req.from.id = "sup-high".into();
    let escalation = escalated(evaluate_with(config, &req), Reason::TrustEscalation);
    assert_eq!(escalation.target, EscalationTarget::Agent("sup-mid".into()));
}

#[test]
fn trust_escalation_goes_to_the_human_when_no_registered_agent_qualifies() {
    // High risk requires T4 (650); sup-low and sup-mid fall short, sup-high is in the chain.
    let mut config = config();
    config.escalation.agents = escalation_agents();
    let mut req = base();
    req.task.risk = RiskLevel::High;
    req.to.trust = 600;
    req.chain = vec![link("sup-high", "agent-a", 1, 0.9)];
    let escalation = escalated(evaluate_with(config, &req), Reason::TrustEscalation);
    assert_eq!(escalation.target, human("human-oversight"));
}

#[test]
fn trust_below_the_required_tier_is_denied_when_configured_to_deny() {
    let mut config = config();
    config.trust.on_insufficient = InsufficientTrust::Deny;
    config.escalation.agents = escalation_agents();
    let message = denied(evaluate_with(config, &medium_risk_to(499)), Reason::TrustInsufficient);
    assert!(message.contains("agent-b"), "{message}");
}

#[test]
fn a_high_trust_delegator_does_not_lend_trust_to_a_low_trust_executor() {
    let mut req = base();
    req.from.trust = 1000;
    req.to.trust = 100; // T0; low risk requires T1.
    escalated(evaluate(&req), Reason::TrustEscalation);
}

#[test]
fn a_low_trust_delegator_does_not_hold_back_a_trusted_executor() {
    let mut req = base();
    req.task.risk = RiskLevel::High;
    req.from.trust = 0;
    req.to.trust = 650; // T4, exactly what high risk requires.
    allowed(evaluate(&req));
}

#[test]
fn high_trust_earlier_in_the_chain_does_not_count_for_the_executor() {
    let mut req = deep(1);
    req.chain[0].from = "sup-high".into();
    req.to.trust = 499;
    req.task.risk = RiskLevel::Medium;
    escalated(evaluate(&req), Reason::TrustEscalation);
}

#[test]
fn required_tiers_come_from_the_configuration() {
    let mut config = config();
    config.trust.required_tier.low = sbd_policy::TrustTier::T5;
    escalated(evaluate_with(config, &base()), Reason::TrustEscalation);
}

// ---- SBD ----------------------------------------------------------------------------------

#[test]
fn alpha_and_lambda_follow_the_risk_level() {
    let cases = [
        (RiskLevel::Low, 0.9, 0.2),
        (RiskLevel::Medium, 0.7, 0.4),
        (RiskLevel::High, 0.5, 0.7),
        (RiskLevel::Critical, 0.3, 0.9),
    ];
    for (risk, alpha, lambda) in cases {
        let mut req = base();
        req.task.risk = risk;
        req.to.trust = 850; // T5 covers every risk level.
        let grant = allowed(evaluate(&req));
        assert_eq!((grant.alpha, grant.lambda), (alpha, lambda), "{risk:?}");
    }
}

#[test]
fn alpha_and_lambda_come_from_the_configuration() {
    let mut config = config();
    config.sbd.alpha.medium = 0.55;
    config.sbd.lambda.medium = 0.33;
    let grant = allowed(evaluate_with(config, &medium_risk_to(700)));
    assert_eq!((grant.alpha, grant.lambda), (0.55, 0.33));
}

#[test]
fn alpha_is_capped_in_the_high_risk_state_region() {
    let mut config = config();
    config.sbd.alpha_caps = vec![alpha_cap(0, 0.5, 0.4)];
    let mut req = base();
    req.state = vec![0.6];
    assert_eq!(allowed(evaluate_with(config, &req)).alpha, 0.4);
}

#[test]
fn alpha_is_not_capped_outside_the_high_risk_state_region() {
    let mut config = config();
    config.sbd.alpha_caps = vec![alpha_cap(0, 0.5, 0.4)];
    let mut req = base();
    req.state = vec![0.5]; // The region is strictly above 0.5.
    assert_eq!(allowed(evaluate_with(config, &req)).alpha, 0.9);
}

#[test]
fn the_smallest_applicable_cap_wins() {
    let mut config = config();
    config.sbd.alpha_caps = vec![alpha_cap(0, 0.5, 0.6), alpha_cap(1, 10.0, 0.35), alpha_cap(1, 100.0, 0.1)];
    let mut req = base();
    req.state = vec![0.9, 20.0];
    assert_eq!(allowed(evaluate_with(config, &req)).alpha, 0.35);
}

#[test]
fn a_cap_above_the_proposed_alpha_changes_nothing() {
    let mut config = config();
    config.sbd.alpha_caps = vec![alpha_cap(0, 0.0, 0.95)];
    let mut req = base();
    req.state = vec![1.0];
    assert_eq!(allowed(evaluate_with(config, &req)).alpha, 0.9);
}

#[test]
fn a_state_missing_a_feature_the_safe_set_reads_is_state_invalid() {
    // The state rule: an absent feature is refused, not guessed (neither calm nor high risk).
    let mut config = config();
    config.sbd.alpha_caps = vec![alpha_cap(2, 0.5, 0.4)];
    let mut req = base();
    for state in [vec![], vec![0.0], vec![0.0, 0.0]] {
        req.state = state;
        let message = denied(evaluate_with(config.clone(), &req), Reason::StateInvalid);
        assert!(message.contains("reads feature 2") && message.contains("at least 3"), "{message}");
    }
    req.state = vec![0.0, 0.0, 0.6];
    assert_eq!(allowed(evaluate_with(config, &req)).alpha, 0.4);
}

#[test]
fn state_dim_mismatch_is_state_invalid() {
    let mut config = config();
    config.sbd.state_dim = Some(2);
    let mut req = base();
    req.state = vec![0.1];
    let message = denied(evaluate_with(config, &req), Reason::StateInvalid);
    assert!(message.contains("`state`") && message.contains('2'), "{message}");
}

#[test]
fn an_empty_state_under_a_fixed_state_dim_is_state_invalid() {
    let mut config = config();
    config.sbd.state_dim = Some(1);
    denied(evaluate_with(config, &base()), Reason::StateInvalid);
}

#[test]
fn state_of_the_configured_dim_is_allowed() {
    let mut config = config();
    config.sbd.state_dim = Some(2);
    let mut req = base();
    req.state = vec![0.1, 0.2];
    allowed(evaluate_with(config, &req));
}

// ---- routing -------------------------------------------------------------------------------

#[test]
fn projected_alpha_below_the_review_threshold_escalates_to_the_human() {
    let mut config = config();
    config.sbd.alpha_caps = vec![alpha_cap(0, 0.5, 0.2)];
    let mut req = base();
    req.state = vec![0.9];
    let escalation = escalated(evaluate_with(config, &req), Reason::LowAlphaReview);
    assert_eq!(escalation.target, human("human-oversight"));
    assert!(
        escalation.message.contains("0.200") && escalation.message.contains("0.250"),
        "{}",
        escalation.message
    );
}

#[test]
fn proposed_alpha_below_the_review_threshold_escalates_to_the_human() {
    let mut config = config();
    config.sbd.alpha.low = 0.1;
    let escalation = escalated(evaluate_with(config, &base()), Reason::LowAlphaReview);
    assert_eq!(escalation.target, human("human-oversight"));
}

#[test]
fn alpha_exactly_at_the_review_threshold_is_allowed() {
    let mut config = config();
    config.sbd.alpha_caps = vec![alpha_cap(0, 0.5, 0.25)];
    let mut req = base();
    req.state = vec![0.9];
    assert_eq!(allowed(evaluate_with(config, &req)).alpha, 0.25);
}

#[test]
fn the_review_threshold_comes_from_the_configuration() {
    let mut config = config();
    config.sbd.review_threshold = 0.95;
    escalated(evaluate_with(config, &base()), Reason::LowAlphaReview);
}

#[test]
fn low_alpha_review_goes_to_the_configured_human() {
    let mut config = config();
    config.escalation.human = "duty-officer".into();
    config.sbd.alpha.low = 0.1;
    let escalation = escalated(evaluate_with(config, &base()), Reason::LowAlphaReview);
    assert_eq!(escalation.target, human("duty-officer"));
}

// ---- the grant ----------------------------------------------------------------------------

#[test]
fn an_allowed_grant_names_the_sub_agent_and_carries_the_requested_mandate() {
    let req = base();
    let grant = allowed(evaluate(&req));
    assert_eq!(grant.sub_agent, "agent-b");
    assert_eq!(grant.child_mandate, req.requested_mandate);
    assert_eq!((grant.depth, grant.max_depth, grant.remaining_depth), (1, 5, 3));
    assert_eq!((grant.alpha, grant.lambda), (0.9, 0.2));
}

#[test]
fn child_remaining_depth_is_clamped_to_the_hops_left_under_the_limit() {
    // High risk, limit 3, hop 2: the child may delegate once more, not the 3 times it asked.
    let mut req = deep(1);
    req.task.risk = RiskLevel::High;
    let grant = allowed(evaluate(&req));
    assert_eq!((grant.depth, grant.max_depth), (2, 3));
    assert_eq!(grant.remaining_depth, 1);
    assert_eq!(grant.child_mandate.remaining_depth, 1);
    let mut expected = req.requested_mandate.clone();
    expected.remaining_depth = 1;
    assert_eq!(grant.child_mandate, expected);
}

#[test]
fn child_remaining_depth_below_the_limit_is_kept() {
    let mut req = base();
    req.requested_mandate.remaining_depth = 1;
    let grant = allowed(evaluate(&req));
    assert_eq!((grant.remaining_depth, grant.child_mandate.remaining_depth), (1, 1));
}

#[test]
fn a_hop_at_the_limit_grants_a_terminal_child_mandate() {
    let grant = allowed(evaluate(&deep(4)));
    assert_eq!((grant.remaining_depth, grant.child_mandate.remaining_depth), (0, 0));
}

#[test]
fn accountability_for_a_single_hop_is_split_between_originator_and_executor() {
    let grant = allowed(evaluate(&base()));
    let agents: Vec<&str> = grant.accountability.iter().map(|s| s.agent.as_str()).collect();
    assert_eq!(agents, ["agent-a", "agent-b"]);
    assert_close(grant.accountability[0].weight, 0.1);
    assert_close(grant.accountability[1].weight, 0.9);
    assert_close(grant.accountability_ceiling, 0.9);
}

#[test]
fn accountability_for_a_two_link_chain_matches_definition_3_5() {
    // origin -(0.8)-> agent-a -(0.9, low risk)-> agent-b.
    // Originator keeps 1 - a1 = 0.2; w1 = a1 (1 - a2) = 0.08; w2 = a1 a2 = 0.72.
    // Proposition 4.8 ceiling: 1 - (1 - 0.9)^2 = 0.99.
    let mut req = deep(1);
    req.chain[0].alpha = 0.8;
    let grant = allowed(evaluate(&req));
    let agents: Vec<&str> = grant.accountability.iter().map(|s| s.agent.as_str()).collect();
    assert_eq!(agents, ["origin", "agent-a", "agent-b"]);
    let weights: Vec<f64> = grant.accountability.iter().map(|s| s.weight).collect();
    for (got, want) in weights.iter().zip([0.2, 0.08, 0.72]) {
        assert_close(*got, want);
    }
    assert_close(weights.iter().sum(), 1.0);
    assert_close(grant.accountability_ceiling, 0.99);
}

#[test]
fn accountability_for_a_three_link_chain_matches_definition_3_5() {
    // origin -(0.8)-> hop-1 -(0.6)-> agent-a -(0.9)-> agent-b.
    // 0.2, 0.8 * 0.4 = 0.32, 0.8 * 0.6 * 0.1 = 0.048, 0.8 * 0.6 * 0.9 = 0.432.
    // Ceiling: 1 - 0.1^3 = 0.999.
    let mut req = deep(2);
    req.chain[0].alpha = 0.8;
    req.chain[1].alpha = 0.6;
    let grant = allowed(evaluate(&req));
    let agents: Vec<&str> = grant.accountability.iter().map(|s| s.agent.as_str()).collect();
    assert_eq!(agents, ["origin", "hop-1", "agent-a", "agent-b"]);
    let weights: Vec<f64> = grant.accountability.iter().map(|s| s.weight).collect();
    for (got, want) in weights.iter().zip([0.2, 0.32, 0.048, 0.432]) {
        assert_close(*got, want);
    }
    assert_close(weights.iter().sum(), 1.0);
    assert_close(grant.accountability_ceiling, 0.999);
}

#[test]
fn accountability_uses_the_projected_alpha_of_this_hop() {
    let mut config = config();
    config.sbd.alpha_caps = vec![alpha_cap(0, 0.5, 0.4)];
    let mut req = base();
    req.state = vec![0.9];
    let grant = allowed(evaluate_with(config, &req));
    assert_close(grant.accountability[0].weight, 0.6);
    assert_close(grant.accountability[1].weight, 0.4);
    assert_close(grant.accountability_ceiling, 0.4);
}

#[test]
fn no_delegate_exceeds_the_accountability_ceiling() {
    let mut req = deep(3);
    for (link, alpha) in req.chain.iter_mut().zip([0.3, 1.0, 0.7]) {
        link.alpha = alpha;
    }
    let grant = allowed(evaluate(&req));
    assert_eq!(grant.accountability.len(), 5);
    for share in grant.accountability.iter().skip(1) {
        assert!(share.weight <= grant.accountability_ceiling + EPS, "{share:?}");
    }
    assert_close(grant.accountability.iter().map(|s| s.weight).sum(), 1.0);
}

// ---- rule order ---------------------------------------------------------------------------

#[test]
fn malformed_is_reported_before_self_delegation() {
    let mut req = base();
    req.to.id = "agent-a".into();
    req.to.trust = 1001;
    denied(evaluate(&req), Reason::RequestMalformed);
}

#[test]
fn self_delegation_is_reported_before_a_widened_budget() {
    let mut req = base();
    req.to.id = "agent-a".into();
    req.requested_mandate.budgets = vec![usd(u64::MAX)];
    denied(evaluate(&req), Reason::SelfDelegation);
}

#[test]
fn self_delegation_is_reported_before_a_discontinuous_chain() {
    let mut req = deep(1);
    req.chain[0].to = "stranger".into();
    req.to.id = "agent-a".into();
    denied(evaluate(&req), Reason::SelfDelegation);
}

#[test]
fn discontinuity_is_reported_before_a_cycle() {
    let mut req = deep(2);
    req.chain[1].from = "stranger".into();
    req.to.id = "origin".into();
    denied(evaluate(&req), Reason::ChainDiscontinuous);
}

#[test]
fn a_cycle_is_reported_before_an_expired_mandate() {
    let mut req = deep(1);
    req.to.id = "origin".into();
    req.parent_mandate.expires_at = NOW;
    req.requested_mandate.expires_at = NOW;
    denied(evaluate(&req), Reason::DelegationCycle);
}

#[test]
fn an_expired_mandate_is_reported_before_the_chain_deadline() {
    let mut req = deep(1);
    req.chain[0].at = NOW - DEADLINE - 1;
    req.parent_mandate.expires_at = NOW;
    req.requested_mandate.expires_at = NOW;
    denied(evaluate(&req), Reason::MandateExpired);
}

#[test]
fn the_chain_deadline_is_reported_before_the_depth_limit() {
    let mut req = deep(5);
    req.chain[0].at = NOW - DEADLINE - 1;
    denied(evaluate(&req), Reason::ChainDeadlineExceeded);
}

#[test]
fn the_depth_limit_is_reported_before_a_terminal_mandate() {
    let mut req = deep(5);
    req.parent_mandate.remaining_depth = 0;
    req.requested_mandate.remaining_depth = 0;
    denied(evaluate(&req), Reason::DepthExceeded);
}

#[test]
fn a_terminal_mandate_is_reported_before_depth_not_narrowed() {
    let mut req = base();
    req.parent_mandate.remaining_depth = 0;
    req.requested_mandate.remaining_depth = 5;
    denied(evaluate(&req), Reason::DelegatorTerminal);
}

#[test]
fn structural_rules_run_before_attenuation() {
    let mut req = deep(5);
    req.requested_mandate.budgets = vec![usd(u64::MAX)];
    denied(evaluate(&req), Reason::DepthExceeded);
}

#[test]
fn depth_escalation_happens_before_attenuation() {
    let mut req = deep(5);
    req.task.completable_locally = false;
    req.requested_mandate.value_ceiling = u64::MAX;
    escalated(evaluate(&req), Reason::DepthLimitEscalation);
}

#[test]
fn mandate_widening_is_reported_before_the_task_fit() {
    let mut req = base();
    req.requested_mandate.counterparties.push("initech".into());
    req.task.action_kind = "crm.read".into();
    denied(evaluate(&req), Reason::CounterpartiesWidened);
}

#[test]
fn the_budget_is_checked_before_the_other_dimensions() {
    let mut req = base();
    req.requested_mandate.budgets = vec![usd(u64::MAX)];
    req.requested_mandate.action_kinds.push("email.send".into());
    req.requested_mandate.value_ceiling = u64::MAX;
    req.requested_mandate.remaining_depth = 9;
    denied(evaluate(&req), Reason::BudgetWidened);
}

#[test]
fn attenuation_runs_before_trust() {
    let mut req = medium_risk_to(0);
    req.requested_mandate.value_ceiling = 100_001;
    denied(evaluate(&req), Reason::ValueCeilingWidened);
}

#[test]
fn task_fit_runs_before_trust() {
    let mut req = medium_risk_to(0);
    req.task.value = 10_001;
    denied(evaluate(&req), Reason::ValueOverCeiling);
}

#[test]
fn trust_runs_before_sbd() {
    let mut config = config();
    config.sbd.state_dim = Some(3);
    escalated(evaluate_with(config, &medium_risk_to(0)), Reason::TrustEscalation);
}

#[test]
fn trust_denial_runs_before_low_alpha_review() {
    let mut config = config();
    config.trust.on_insufficient = InsufficientTrust::Deny;
    config.sbd.alpha.medium = 0.1;
    denied(evaluate_with(config, &medium_risk_to(0)), Reason::TrustInsufficient);
}

#[test]
fn an_invalid_state_is_reported_before_low_alpha_review() {
    let mut config = config();
    config.sbd.state_dim = Some(1);
    config.sbd.alpha.low = 0.1;
    denied(evaluate_with(config, &base()), Reason::StateInvalid);
}

// ---- batch and trust deltas ---------------------------------------------------------------

#[test]
fn evaluate_batch_returns_verdicts_in_request_order() {
    let policy = policy_with(config());
    let mut selfish = base();
    selfish.to.id = "agent-a".into();
    let untrusted = medium_risk_to(100);
    let requests = [selfish, base(), untrusted];
    let verdicts = policy.evaluate_batch(&requests);
    assert_eq!(verdicts.len(), 3);
    assert_eq!(verdicts[0].reason(), Some(Reason::SelfDelegation));
    assert!(verdicts[1].is_allow());
    assert_eq!(verdicts[2].reason(), Some(Reason::TrustEscalation));
    for (req, verdict) in requests.iter().zip(&verdicts) {
        assert_eq!(&policy.evaluate(req), verdict);
    }
}

#[test]
fn evaluate_batch_of_nothing_is_empty() {
    assert!(policy_with(config()).evaluate_batch(&[]).is_empty());
}

fn agents_of_chain() -> Vec<String> {
    strings(&["origin", "agent-a", "agent-b"])
}

#[test]
fn failure_penalises_the_whole_chain_with_penalty_propagation() {
    let deltas = policy_with(config()).trust_deltas(&agents_of_chain(), Outcome::Failure(8.0));
    let expected: Vec<TrustDelta> =
        agents_of_chain().into_iter().map(|agent| TrustDelta { agent, delta: -8.0 }).collect();
    assert_eq!(deltas, expected);
}

#[test]
fn failure_penalises_only_the_executor_without_penalty_propagation() {
    let mut config = config();
    config.trust.penalty_propagation = false;
    let deltas = policy_with(config).trust_deltas(&agents_of_chain(), Outcome::Failure(8.0));
    assert_eq!(deltas, [TrustDelta { agent: "agent-b".into(), delta: -8.0 }]);
}

#[test]
fn success_rewards_only_the_executor() {
    for propagation in [true, false] {
        let mut config = config();
        config.trust.penalty_propagation = propagation;
        let deltas = policy_with(config).trust_deltas(&agents_of_chain(), Outcome::Success(3.0));
        assert_eq!(deltas, [TrustDelta { agent: "agent-b".into(), delta: 3.0 }]);
    }
}

#[test]
fn an_agent_appearing_twice_is_penalised_once() {
    let chain = strings(&["origin", "agent-a", "origin", "agent-b"]);
    let deltas = policy_with(config()).trust_deltas(&chain, Outcome::Failure(2.0));
    let agents: Vec<&str> = deltas.iter().map(|d| d.agent.as_str()).collect();
    assert_eq!(agents, ["origin", "agent-a", "agent-b"]);
}

// ---- gaps closed after review -------------------------------------------------------------

#[test]
fn an_exception_approved_by_an_unlisted_party_is_ignored() {
    let mut req = deep(5);
    req.depth_exception = Some(exception("agent-x", 1, NOW + HOUR));
    denied(evaluate(&req), Reason::DepthExceeded);
}

#[test]
fn an_exception_approved_by_an_agent_in_the_chain_is_ignored_even_if_listed() {
    let mut cfg = config();
    cfg.depth.exception_approvers = strings(&["hop-2"]);
    let mut req = deep(5);
    req.depth_exception = Some(exception("hop-2", 1, NOW + HOUR));
    denied(evaluate_with(cfg, &req), Reason::DepthExceeded);
}

#[test]
fn an_exception_approved_by_a_listed_approver_applies() {
    let mut cfg = config();
    cfg.depth.exception_approvers = strings(&["cro@example.com"]);
    let mut req = deep(5);
    req.depth_exception = Some(exception("cro@example.com", 1, NOW + HOUR));
    let grant = allowed(evaluate_with(cfg, &req));
    assert!(grant.warnings.iter().any(|w| w.reason == Reason::DepthExceptionApplied));
}

#[test]
fn an_exception_under_a_zero_cap_is_ignored_not_applied() {
    let mut cfg = config();
    cfg.depth.max_exception_extra = 0;
    let mut req = base();
    req.depth_exception = Some(exception("human-oversight", 1, NOW + HOUR));
    let grant = allowed(evaluate_with(cfg, &req));
    let reasons: Vec<Reason> = grant.warnings.iter().map(|w| w.reason).collect();
    assert_eq!(reasons, [Reason::DepthExceptionIgnored]);
}

#[test]
fn a_link_timestamped_in_the_future_is_malformed() {
    let mut req = deep(2);
    req.chain[0].at = NOW + 1;
    denied_naming(evaluate(&req), Reason::RequestMalformed, "chain[0].at");
}

#[test]
fn link_timestamps_running_backwards_are_malformed() {
    let mut req = deep(2);
    req.chain[0].at = NOW - MINUTE;
    req.chain[1].at = NOW - 2 * MINUTE;
    denied_naming(evaluate(&req), Reason::RequestMalformed, "chain[1].at");
}

#[test]
fn an_empty_agent_id_inside_the_chain_is_malformed() {
    let mut req = deep(2);
    req.chain[0].from = String::new();
    denied_naming(evaluate(&req), Reason::RequestMalformed, "chain[0]");
}

#[test]
fn a_requested_mandate_that_is_already_expired_is_denied() {
    let mut req = base();
    req.requested_mandate.expires_at = NOW;
    denied_naming(evaluate(&req), Reason::ChildMandateExpired, "requested_mandate.expires_at");
}

#[test]
fn equally_trusted_escalation_agents_resolve_to_the_first_listed() {
    let mut cfg = config();
    cfg.escalation.agents = vec![
        EscalationAgent { id: "first".into(), trust: 900 },
        EscalationAgent { id: "second".into(), trust: 900 },
    ];
    let mut req = base();
    req.task.risk = RiskLevel::High;
    req.to.trust = 300;
    let escalation = escalated(evaluate_with(cfg, &req), Reason::TrustEscalation);
    assert_eq!(escalation.target, EscalationTarget::Agent("first".into()));
}

#[test]
fn the_depth_warning_survives_float_rounding_at_the_threshold() {
    // 0.28 * 25 = 7.000000000000001 in binary floating point; hop 7 is at the threshold.
    let mut cfg = config();
    cfg.depth.max_depth = 25;
    cfg.depth.max_depth_by_risk.low = 25;
    cfg.depth.warning_ratio = 0.28;
    let mut req = deep(6);
    req.parent_mandate.remaining_depth = 20;
    req.requested_mandate.remaining_depth = 19;
    let grant = allowed(evaluate_with(cfg, &req));
    assert!(grant.warnings.iter().any(|w| w.reason == Reason::DepthWarning), "{:?}", grant.warnings);
}

#[test]
fn the_grant_carries_the_executors_own_trust_as_the_effective_trust() {
    let mut req = base();
    req.from.trust = 990;
    req.to.trust = 660;
    let grant = allowed(evaluate(&req));
    assert_eq!(grant.effective_trust, 660);
    assert_eq!(grant.effective_tier, sbd_policy::TrustTier::T4);
}

// ---- learned networks (SBD 3.3) ------------------------------------------------------------

/// A 2-input model: phi 2 -> 3 -> 1, pi 2 -> 3 -> 3 (two sub-agents and alpha).
fn learned_model(hidden_weight: f32, output_weight: f32) -> sbd_policy::learned::LearnedModel {
    use sbd_policy::learned::{Dense, LearnedModel, Mlp, Provenance};
    let dense = |inputs: u32, outputs: u32, w: f32| Dense {
        inputs,
        outputs,
        weights: (0..inputs * outputs).map(|i| w * (1.0 + (i % 3) as f32)).collect(),
        bias: vec![0.1; outputs as usize],
    };
    LearnedModel {
        state_dim: 2,
        state_shift: vec![0.0, 0.0],
        state_scale: vec![1.0, 1.0],
        sub_agents: strings(&["momentum", "risk-parity"]),
        meta_weight: Mlp { layers: vec![dense(2, 3, 0.3), dense(3, 1, 0.2)] },
        delegation: Mlp { layers: vec![dense(2, 3, hidden_weight), dense(3, 3, output_weight)] },
        provenance: Provenance::default(),
    }
}

#[test]
fn a_learned_model_gives_the_grant_its_lambda_sub_agent_and_projected_alpha() {
    let mut config = config();
    config.sbd.review_threshold = 0.0;
    config.sbd.alpha_caps = vec![alpha_cap(1, 0.5, 0.3)];
    config.sbd.model = Some(learned_model(0.4, 0.5));
    let mut req = base();
    req.state = vec![1.0, 0.9];
    let grant = allowed(evaluate_with(config, &req));
    assert!(["momentum", "risk-parity"].contains(&grant.sub_agent.as_str()), "{}", grant.sub_agent);
    assert!(grant.lambda > 0.0 && grant.lambda < 1.0);
    assert!(grant.alpha <= 0.3, "alpha {} not projected onto the cap", grant.alpha);
}

#[test]
fn a_learned_model_that_overflows_fails_closed() {
    // every weight is finite, so the model validates, but two of them summed overflow to inf,
    // and inf * 0 is NaN
    let mut config = config();
    config.sbd.review_threshold = 0.0;
    config.sbd.model = Some(learned_model(f32::MAX / 3.0, 0.0));
    let mut req = base();
    req.state = vec![1.0, 1.0];
    let message = denied(evaluate_with(config.clone(), &req), Reason::StateInvalid);
    assert!(message.contains("finite"), "{message}");
    // and a finite state beyond f32's range, with a sound model
    config.sbd.model = Some(learned_model(0.4, 0.5));
    req.state = vec![1e300, 0.0];
    denied(evaluate_with(config, &req), Reason::StateInvalid);
}

// ---- identity: one canonical agent id (issue 14) ---------------------------------------------

/// [`base`] one hop further: `agent-a -> agent-b` done, `agent-b` now delegates to `to`.
fn second_hop_to(to: &str) -> Request {
    let mut req = base();
    req.chain = vec![link("agent-a", "agent-b", 1, 0.9)];
    req.from.id = "agent-b".into();
    req.to.id = to.into();
    req
}

#[test]
fn a_cycle_back_under_another_case_is_a_cycle() {
    // A -> B -> Agent-A
    let message = denied(evaluate(&second_hop_to("Agent-A")), Reason::DelegationCycle);
    assert!(message.contains("Agent-A") && message.contains("depth 0"), "{message}");
}

#[test]
fn a_cycle_back_in_fullwidth_letters_is_a_cycle() {
    denied(evaluate(&second_hop_to("ＡＧＥＮＴ－Ａ")), Reason::DelegationCycle);
    denied(evaluate(&second_hop_to("ａｇｅｎｔ-ａ")), Reason::DelegationCycle);
}

#[test]
fn a_cycle_back_in_decomposed_accents_is_a_cycle() {
    let mut req = second_hop_to("age\u{301}nt-a"); // NFD
    req.chain[0].from = "ag\u{e9}nt-a".into(); // NFC
    denied(evaluate(&req), Reason::DelegationCycle);
}

#[test]
fn a_trailing_space_is_refused_not_a_new_agent() {
    denied_naming(evaluate(&second_hop_to("agent-a ")), Reason::AgentIdWhitespace, "to.id");
}

#[test]
fn a_zero_width_space_is_refused() {
    denied_naming(evaluate(&second_hop_to("agent\u{200b}-a")), Reason::AgentIdInvisible, "U+200B");
    denied(evaluate(&second_hop_to("agent-a\u{feff}")), Reason::AgentIdInvisible);
    denied(evaluate(&second_hop_to("agent-a\u{202e}")), Reason::AgentIdInvisible);
    denied(evaluate(&second_hop_to("agent\u{200d}-a")), Reason::AgentIdInvisible);
}

#[test]
fn a_cyrillic_letter_in_a_latin_id_is_refused() {
    // U+0430 CYRILLIC SMALL LETTER A
    denied(evaluate(&second_hop_to("\u{430}gent-a")), Reason::AgentIdMixedScript);
}

#[test]
fn a_nul_in_an_id_is_refused() {
    denied_naming(evaluate(&second_hop_to("ag\u{e9}nt\u{0}")), Reason::AgentIdControl, "to.id");
}

#[test]
fn an_oversized_id_is_refused() {
    denied(evaluate(&second_hop_to(&"x".repeat(100_000))), Reason::AgentIdLength);
    denied(evaluate(&second_hop_to(&"x".repeat(129))), Reason::AgentIdLength);
    allowed(evaluate(&second_hop_to(&"x".repeat(128))));
}

#[test]
fn refused_ids_in_the_chain_and_the_delegator_name_their_field() {
    let mut req = second_hop_to("agent-c");
    req.chain[0].from = "agent\u{200b}-a".into();
    denied_naming(evaluate(&req), Reason::AgentIdInvisible, "chain[0].from");
    let mut req = base();
    req.from.id = "agent a".into();
    denied_naming(evaluate(&req), Reason::AgentIdWhitespace, "from.id");
}

#[test]
fn self_delegation_under_another_spelling_is_self_delegation() {
    let mut req = base();
    req.to.id = "AGENT-A".into();
    denied_naming(evaluate(&req), Reason::SelfDelegation, "same agent");
    req.to.id = "ＡＧＥＮＴ－Ａ".into();
    denied(evaluate(&req), Reason::SelfDelegation);
}

#[test]
fn a_chain_continues_through_another_spelling_of_the_same_agent() {
    let mut req = second_hop_to("agent-c");
    req.from.id = "Agent-B".into();
    allowed(evaluate(&req));
    req.chain[0].to = "ＡＧＥＮＴ-Ｂ".into();
    allowed(evaluate(&req));
}

#[test]
fn grants_carry_canonical_ids() {
    let mut req = second_hop_to("Agent-C");
    req.chain[0].from = "ＡＧＥＮＴ-Ａ".into();
    req.from.id = "AGENT-B".into();
    let grant = allowed(evaluate(&req));
    assert_eq!(grant.sub_agent, "agent-c");
    let agents: Vec<&str> = grant.accountability.iter().map(|s| s.agent.as_str()).collect();
    assert_eq!(agents, ["agent-a", "agent-b", "agent-c"]);
}

#[test]
fn a_depth_exception_approved_by_a_chain_agent_under_another_spelling_is_ignored() {
    let mut config = config();
    config.depth.exception_approvers = vec!["Agent-B".into()];
    let mut req = second_hop_to("agent-c");
    req.depth_exception = Some(exception("Agent-B", 1, NOW + HOUR));
    let grant = allowed(evaluate_with(config, &req));
    assert!(warning_reasons(&grant).contains(&Reason::DepthExceptionIgnored), "{:?}", grant.warnings);
}

#[test]
fn trust_escalation_skips_chain_agents_under_another_spelling_and_names_agents_canonically() {
    let mut config = config();
    config.escalation.agents = escalation_agents();
    config.escalation.agents.push(EscalationAgent { id: "Sup-Top".into(), trust: 950 });
    let mut req = medium_risk_to(499);
    req.chain = vec![link("SUP-HIGH", "agent-a", 1, 0.9)];
    let escalation = escalated(evaluate_with(config.clone(), &req), Reason::TrustEscalation);
    assert_eq!(escalation.target, EscalationTarget::Agent("sup-top".into()));
    req.chain = vec![link("ＳＵＰ-ＴＯＰ", "agent-a", 1, 0.9)];
    let escalation = escalated(evaluate_with(config, &req), Reason::TrustEscalation);
    assert_eq!(escalation.target, EscalationTarget::Agent("sup-high".into()));
}

// ---- cycles a delegator cannot finish (AG-396 4.5 as 4.4) ----------------------------------

#[test]
fn a_cycle_whose_task_cannot_be_completed_locally_escalates_to_the_human() {
    let mut req = deep(2);
    req.to.id = "hop-1".into();
    req.task.completable_locally = false;
    let escalation = escalated(evaluate(&req), Reason::DepthLimitEscalation);
    assert_eq!(escalation.target, human("human-oversight"));
    assert!(
        escalation.message.contains("cycle") && escalation.message.contains("hop-1"),
        "{}",
        escalation.message
    );
}

#[test]
fn a_cycle_escalation_goes_to_the_configured_human_and_sees_spellings() {
    let mut config = config();
    config.escalation.human = "risk-officer".into();
    let mut req = second_hop_to("Agent-A");
    req.task.completable_locally = false;
    let escalation = escalated(evaluate_with(config, &req), Reason::DepthLimitEscalation);
    assert_eq!(escalation.target, human("risk-officer"));
}

#[test]
fn a_cycle_with_a_locally_completable_task_stays_denied() {
    let mut req = deep(2);
    req.to.id = "origin".into();
    req.task.completable_locally = true;
    denied(evaluate(&req), Reason::DelegationCycle);
}

#[test]
fn a_cycle_on_an_expired_mandate_is_denied_not_escalated() {
    let mut req = deep(2);
    req.to.id = "origin".into();
    req.task.completable_locally = false;
    req.parent_mandate.expires_at = NOW;
    denied(evaluate(&req), Reason::MandateExpired);
}

#[test]
fn self_delegation_stays_denied_when_the_task_cannot_be_completed_locally() {
    let mut req = base();
    req.to.id = "agent-a".into();
    req.task.completable_locally = false;
    denied(evaluate(&req), Reason::SelfDelegation);
}

// ---- duplicate budget units -----------------------------------------------------------------

#[test]
fn a_requested_mandate_listing_a_unit_twice_is_refused() {
    let mut req = base();
    req.requested_mandate.budgets = vec![usd(1_000_000), usd(1_000_000)];
    denied_naming(evaluate(&req), Reason::BudgetUnitDuplicated, "requested_mandate.budgets[1]");
}

#[test]
fn a_parent_mandate_listing_a_unit_twice_is_refused() {
    let mut req = base();
    req.parent_mandate.budgets.push(usd(90_000_000));
    denied_naming(evaluate(&req), Reason::BudgetUnitDuplicated, "parent_mandate.budgets[2]");
}

#[test]
fn distinct_units_are_not_duplicates() {
    let mut req = base();
    req.requested_mandate.budgets = vec![usd(1), Budget { unit: BudgetUnit::Tokens, amount: 1 }];
    allowed(evaluate(&req));
}

mod identity_properties {
    use super::*;
    use proptest::prelude::*;

    /// Another spelling of an ASCII id: case changed per letter, some letters fullwidth.
    fn respell(id: &str, upper: &[bool], wide: &[bool]) -> String {
        id.chars()
            .enumerate()
            .map(|(i, c)| {
                let c = if upper.get(i).copied().unwrap_or(false) { c.to_ascii_uppercase() } else { c };
                if wide.get(i).copied().unwrap_or(false) && c.is_ascii_alphanumeric() {
                    char::from_u32(u32::from(c) - 0x21 + 0xFF01).unwrap_or(c)
                } else {
                    c
                }
            })
            .collect()
    }

    proptest! {
        /// Ids equal after canonicalisation are one agent to the cycle check: a target that
        /// respells any agent of the chain closes a cycle.
        #[test]
        fn respelled_chain_agents_close_a_cycle(
            links in 1usize..5,
            pick in 0usize..5,
            upper in proptest::collection::vec(any::<bool>(), 8),
            wide in proptest::collection::vec(any::<bool>(), 8),
        ) {
            let mut req = deep(links);
            let pick = pick % links; // an agent before the delegator
            req.to.id = respell(&hop_name(pick, links), &upper, &wide);
            let verdict = evaluate(&req);
            prop_assert_eq!(verdict.reason(), Some(Reason::DelegationCycle), "{:?}", verdict);
        }

        /// ... and to the self-delegation check.
        #[test]
        fn a_respelled_delegator_is_self_delegation(
            upper in proptest::collection::vec(any::<bool>(), 8),
            wide in proptest::collection::vec(any::<bool>(), 8),
        ) {
            let mut req = base();
            req.to.id = respell("agent-a", &upper, &wide);
            prop_assert_eq!(evaluate(&req).reason(), Some(Reason::SelfDelegation));
        }

        /// Respelling every id of an allowed request changes nothing but spelling: still
        /// allowed, with the same canonical grant.
        #[test]
        fn respelling_keeps_the_verdict(
            links in 0usize..4,
            upper in proptest::collection::vec(any::<bool>(), 8),
            wide in proptest::collection::vec(any::<bool>(), 8),
        ) {
            let req = deep(links);
            let mut respelled = req.clone();
            respelled.from.id = respell(&req.from.id, &upper, &wide);
            respelled.to.id = respell(&req.to.id, &wide, &upper);
            for link in &mut respelled.chain {
                link.from = respell(&link.from, &upper, &upper);
                link.to = respell(&link.to, &wide, &wide);
            }
            prop_assert_eq!(evaluate(&respelled), evaluate(&req));
        }

        /// An id with whitespace, a control or an invisible character anywhere is never
        /// accepted.
        #[test]
        fn ids_with_refused_characters_never_pass(
            at in 0usize..8,
            bad in prop_oneof![
                Just(' '), Just('\t'), Just('\u{a0}'), Just('\u{3000}'), Just('\u{0}'), Just('\u{7f}'),
                Just('\u{200b}'), Just('\u{200d}'), Just('\u{feff}'), Just('\u{202e}'), Just('\u{ad}'),
            ],
        ) {
            let mut id: Vec<char> = "agent-b".chars().collect();
            id.insert(at.min(id.len()), bad);
            let mut req = base();
            req.to.id = id.into_iter().collect();
            let reason = evaluate(&req).reason();
            prop_assert!(
                matches!(
                    reason,
                    Some(Reason::AgentIdWhitespace | Reason::AgentIdControl | Reason::AgentIdInvisible)
                ),
                "{:?}",
                reason
            );
        }
    }
}

/// The action mask: a tenant that permits actions only through toolset budgets. The task's
/// toolset (its action kind's family) needs a budget with its risk cost left; no mask, no check.
#[test]
fn the_action_mask_admits_only_toolsets_with_their_cost_left() {
    let policy = policy_with(config());
    let with = |toolset: &str, remaining: u64, cost: u64| {
        let mut req = base();
        req.action_mask =
            Some(ActionMask { toolsets: vec![ToolsetBudget { toolset: toolset.into(), remaining }], cost });
        req
    };
    allowed(policy.evaluate(&base()));
    allowed(policy.evaluate(&with("payment", 5, 5)));
    let message = denied(policy.evaluate(&with("crm", 99, 1)), Reason::ActionMaskMissing);
    assert!(message.contains("toolset `payment`"), "{message}");
    let message = denied(policy.evaluate(&with("payment", 4, 5)), Reason::ActionMaskExhausted);
    assert!(message.contains("4 risk points left") && message.contains("costs 5"), "{message}");
    // The rule runs after the mandate's own: an action outside the mandate is refused as such.
    let mut outside = with("crm", 99, 1);
    outside.task.action_kind = "crm.delete".into();
    denied(policy.evaluate(&outside), Reason::ActionNotPermitted);
}

fn registered(delegator: bool, delegate: bool, unregistered: UnregisteredRule) -> RegistryFacts {
    RegistryFacts {
        delegator_registered: delegator,
        delegate_registered: delegate,
        unregistered,
        reviewer: "registry-review".into(),
        explicit_delegation: false,
        delegate_listed: false,
    }
}

/// The tenant's agent registry, on the host's facts: an unregistered agent is refused or goes
/// to the registry's reviewer, as the tenant chose; explicit delegation needs the delegate
/// listed; no facts, no check.
#[test]
fn the_registry_admits_only_registered_agents_and_listed_delegates() {
    let policy = policy_with(config());
    let with = |facts: RegistryFacts| Request { registry: Some(facts), ..base() };
    allowed(policy.evaluate(&base()));
    allowed(policy.evaluate(&with(registered(true, true, UnregisteredRule::Deny))));
    // The delegator is named first when both are missing.
    let message = denied(policy.evaluate(&with(registered(false, false, UnregisteredRule::Deny))), Reason::UnregisteredAgent);
    assert!(message.contains("`agent-a` is not in this tenant's agent registry"), "{message}");
    let message = denied(policy.evaluate(&with(registered(true, false, UnregisteredRule::Deny))), Reason::UnregisteredAgent);
    assert!(message.contains("`agent-b`"), "{message}");
    let review = escalated(
        policy.evaluate(&with(registered(true, false, UnregisteredRule::Escalate))),
        Reason::UnregisteredAgentReview,
    );
    assert_eq!(review.target, human("registry-review"));
    // Explicit delegation: the delegator's entry must list the delegate.
    let explicit = |listed| RegistryFacts {
        explicit_delegation: true,
        delegate_listed: listed,
        ..registered(true, true, UnregisteredRule::Escalate)
    };
    let message = denied(policy.evaluate(&with(explicit(false))), Reason::DelegationNotRegistered);
    assert!(message.contains("`agent-a` is not registered to delegate to `agent-b`"), "{message}");
    allowed(policy.evaluate(&with(explicit(true))));
    // A blank reviewer matters only to an escalation, which then fails closed.
    let nobody = |delegate| RegistryFacts { reviewer: "  ".into(), ..registered(true, delegate, UnregisteredRule::Escalate) };
    allowed(policy.evaluate(&with(nobody(true))));
    denied_naming(policy.evaluate(&with(nobody(false))), Reason::RequestMalformed, "registry.reviewer");
}

/// The registry runs after the request's shape and ids and before every other rule: the ids
/// it names are canonical, and an unregistered agent is refused before its hop's cycle or
/// mandate is looked at.
#[test]
fn the_registry_runs_on_canonical_ids_before_the_other_rules() {
    let policy = policy_with(config());
    let mut req = Request { registry: Some(registered(true, false, UnregisteredRule::Deny)), ..base() };
    req.to.id = "Agent-B".into();
    let message = denied(policy.evaluate(&req), Reason::UnregisteredAgent);
    assert!(message.contains("`agent-b`"), "{message}");
    req.to.id = "agent-a".into();
    denied(policy.evaluate(&req), Reason::UnregisteredAgent);
    req.to.id = String::new();
    denied(policy.evaluate(&req), Reason::RequestMalformed);
}

/// A host re-checks every allow against the facts it gave (`verify::check_verdict`): an allow
/// for a hop its registry or its action mask refuses is a faulty component's, not a grant.
#[test]
fn an_allow_against_the_hosts_registry_or_mask_facts_is_refused_by_the_check() {
    let verdict = evaluate(&base());
    allowed(verdict.clone());
    assert_eq!(sbd_policy::verify::check_verdict(&base(), &verdict), Ok(()));
    let unregistered = Request { registry: Some(registered(true, false, UnregisteredRule::Escalate)), ..base() };
    let Err(why) = sbd_policy::verify::check_verdict(&unregistered, &verdict) else { panic!("the registry refuses") };
    assert!(why.contains("registry"), "{why}");
    let registered_pair = Request { registry: Some(registered(true, true, UnregisteredRule::Deny)), ..base() };
    assert_eq!(sbd_policy::verify::check_verdict(&registered_pair, &verdict), Ok(()));
    let spent = Request {
        action_mask: Some(ActionMask { toolsets: vec![ToolsetBudget { toolset: "payment".into(), remaining: 1 }], cost: 5 }),
        ..base()
    };
    let Err(why) = sbd_policy::verify::check_verdict(&spent, &verdict) else { panic!("the mask refuses") };
    assert!(why.contains("action mask"), "{why}");
}

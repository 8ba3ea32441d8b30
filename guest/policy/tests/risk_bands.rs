//! Risk-tightened authority (`sbd.risk_bands`, AG-396 Advanced "dynamic depth adjustment based
//! on risk signals"): the state's risk signal `rho(s) = max(lambda(s), 1 - alpha_max(s))` lowers
//! the maximum depth and raises the review threshold, decided inside the policy.
//!
//! The same delegation at the same depth is allowed in a calm state and escalated in a stress
//! state, with the safety weight from the per-risk table and the safe set, and with lambda from a
//! trained phi network; a higher risk never allows a deeper chain or a lower review threshold
//! (property tests, on the band arithmetic alone and through `Policy::evaluate`).
#![allow(clippy::panic, reason = "a failing test panics with the verdict it got")]

use proptest::prelude::*;
use sbd_policy::config::{AlphaCap, RiskBand};
use sbd_policy::learned::{Dense, LearnedModel, Mlp, Provenance};
use sbd_policy::sbd::tighten;
use sbd_policy::{
    Agent, Budget, BudgetUnit, DepthException, Escalation, EscalationTarget, Grant, Link, Mandate, Policy,
    PolicyConfig, Reason, Request, RiskLevel, Task, Verdict,
};

const NOW: u64 = 1_700_000_000_000;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

const CALM: f64 = 0.10;
/// Volatility in the first cap's region: alpha_max 0.5, so rho = 0.5.
const ELEVATED: f64 = 0.30;
/// Volatility in the second cap's region: alpha_max 0.3, so rho = 0.7.
const STRESS: f64 = 0.50;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A low-risk refund from `agent-a` to `agent-b` after `links` completed hops, with a
/// one-feature state (30-day volatility): hop `links + 1`, allowed by the default policy.
fn hop(links: usize, volatility: f64) -> Request {
    let name = |i: usize| match i {
        0 => "origin".to_string(),
        i if i == links => "agent-a".to_string(),
        i => format!("hop-{i}"),
    };
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
            action_kinds: strings(&["payment.*"]),
            counterparties: strings(&["acme"]),
            budgets: vec![Budget { unit: BudgetUnit::UsdMicrocents, amount: 50_000_000 }],
            remaining_depth: 4,
            expires_at: NOW + 2 * HOUR,
        },
        requested_mandate: Mandate {
            value_ceiling: 10_000,
            action_kinds: strings(&["payment.refund"]),
            counterparties: strings(&["acme"]),
            budgets: vec![Budget { unit: BudgetUnit::UsdMicrocents, amount: 5_000_000 }],
            remaining_depth: 3,
            expires_at: NOW + HOUR,
        },
        chain: (0..links)
            .map(|i| Link {
                from: name(i),
                to: name(i + 1),
                depth: u8::try_from(i + 1).unwrap_or(u8::MAX),
                alpha: 0.9,
                at: NOW - MINUTE,
                reason: String::new(),
            })
            .collect(),
        state: vec![volatility],
        depth_exception: None,
        action_mask: None,
        registry: None,
        now: NOW,
    }
}

/// The default policy with a two-region safe set on volatility and no risk bands.
fn capped() -> PolicyConfig {
    let mut config = PolicyConfig::named("risk", "1");
    config.sbd.alpha_caps = vec![
        AlphaCap { feature: 0, above: 0.25, alpha_max: 0.5 },
        AlphaCap { feature: 0, above: 0.45, alpha_max: 0.3 },
    ];
    config
}

fn band(at_least: f64, max_depth: Option<u8>, review_threshold: Option<f64>) -> RiskBand {
    RiskBand { at_least, max_depth, review_threshold }
}

/// [`capped`] with two bands: from rho 0.5 at most 3 hops; from rho 0.7 at most 2 hops and a
/// review threshold of 0.35 (up from 0.25).
fn banded() -> PolicyConfig {
    let mut config = capped();
    config.sbd.risk_bands = vec![band(0.5, Some(3), None), band(0.7, Some(2), Some(0.35))];
    config
}

fn evaluate(config: &PolicyConfig, request: &Request) -> Verdict {
    match Policy::new(config.clone()) {
        Ok(policy) => policy.evaluate(request),
        Err(e) => panic!("invalid test configuration: {e}"),
    }
}

fn allowed(verdict: Verdict) -> Grant {
    match verdict {
        Verdict::Allow(grant) => grant,
        other => panic!("expected an allow, got {other:?}"),
    }
}

fn escalated(verdict: Verdict, reason: Reason) -> Escalation {
    match verdict {
        Verdict::Escalate(escalation) if escalation.reason == reason => escalation,
        other => panic!("expected a {reason} escalation, got {other:?}"),
    }
}

#[test]
fn a_stress_state_shortens_the_chain_the_calm_state_allows() {
    let config = banded();
    // Hop 3, calm: the task's own limit (5 for low risk) applies.
    let calm = allowed(evaluate(&config, &hop(2, CALM)));
    assert_eq!((calm.depth, calm.max_depth, calm.remaining_depth), (3, 5, 2));
    // The same hop under stress: rho 0.7 allows 2 hops; the human decides.
    let stress = escalated(evaluate(&config, &hop(2, STRESS)), Reason::RiskDepthEscalation);
    assert_eq!(stress.target, EscalationTarget::Human("human-oversight".into()));
    for part in ["hop 3", "maximum depth 2", "risk signal 0.700", "lambda 0.200", "alpha cap 0.300", "down from 5"] {
        assert!(stress.message.contains(part), "`{}` should say {part}", stress.message);
    }
    // Without the bands the same stressed hop is allowed: the escalation is the bands' doing.
    let unbanded = allowed(evaluate(&capped(), &hop(2, STRESS)));
    assert_eq!((unbanded.depth, unbanded.max_depth), (3, 5));
}

#[test]
fn an_elevated_state_tightens_the_grant_it_allows() {
    // rho 0.5: at most 3 hops. Hop 3 is allowed at the tightened limit, the child may delegate
    // no further, and the depth warning speaks of the tightened limit.
    let grant = allowed(evaluate(&banded(), &hop(2, ELEVATED)));
    assert_eq!((grant.depth, grant.max_depth, grant.remaining_depth), (3, 3, 0));
    assert_eq!(grant.child_mandate.remaining_depth, 0);
    assert!(grant.warnings.iter().any(|w| w.reason == Reason::DepthWarning), "{:?}", grant.warnings);
    // Hop 4 is over it.
    escalated(evaluate(&banded(), &hop(3, ELEVATED)), Reason::RiskDepthEscalation);
    // Calm, hop 4 is allowed.
    allowed(evaluate(&banded(), &hop(3, CALM)));
}

#[test]
fn a_stress_state_raises_the_review_threshold() {
    // Hop 1 under stress: alpha is capped at 0.3, above the base threshold 0.25 (allowed
    // without bands) but below the band's 0.35.
    let unbanded = allowed(evaluate(&capped(), &hop(0, STRESS)));
    assert!((unbanded.alpha - 0.3).abs() < 1e-12);
    let review = escalated(evaluate(&banded(), &hop(0, STRESS)), Reason::LowAlphaReview);
    assert!(
        review.message.contains("review threshold 0.350") && review.message.contains("raised from 0.250"),
        "{}",
        review.message
    );
}

#[test]
fn a_depth_exception_does_not_lift_the_risk_limit() {
    let mut request = hop(2, STRESS);
    request.depth_exception = Some(DepthException {
        approved_by: "human-oversight".into(),
        justification: "quarter close".into(),
        extra_depth: 2,
        expires_at: NOW + MINUTE,
    });
    // The exception raises the task's limit from 5 to 7; the stress band still allows 2.
    let escalation = escalated(evaluate(&banded(), &request), Reason::RiskDepthEscalation);
    assert!(escalation.message.contains("down from 7"), "{}", escalation.message);
}

#[test]
fn bands_above_the_risk_change_nothing() {
    // Bands that do not apply leave every verdict as without them: the grant is the same.
    let mut config = capped();
    config.sbd.risk_bands = vec![band(0.9, Some(1), Some(0.9))];
    for links in 0..5 {
        for volatility in [CALM, ELEVATED, STRESS] {
            let request = hop(links, volatility);
            assert_eq!(evaluate(&config, &request), evaluate(&capped(), &request), "hop {}", links + 1);
        }
    }
}

/// A trained model over a one-feature state: phi gives lambda = sigmoid(8 s - 4) (0.04 at
/// s = 0.1, 0.96 at s = 0.9), pi a single sub-agent with alpha = sigmoid(2) = 0.88.
fn learned() -> LearnedModel {
    LearnedModel {
        state_dim: 1,
        state_shift: vec![0.0],
        state_scale: vec![1.0],
        sub_agents: vec!["solo".into()],
        meta_weight: Mlp { layers: vec![Dense { inputs: 1, outputs: 1, weights: vec![8.0], bias: vec![-4.0] }] },
        delegation: Mlp { layers: vec![Dense { inputs: 1, outputs: 2, weights: vec![0.0, 0.0], bias: vec![0.0, 2.0] }] },
        provenance: Provenance::default(),
    }
}

#[test]
fn the_learned_lambda_shortens_the_chain_in_a_stress_state() {
    let mut config = PolicyConfig::named("learned", "1");
    config.sbd.model = Some(learned());
    config.sbd.risk_bands = vec![band(0.8, Some(2), None)];
    let calm = allowed(evaluate(&config, &hop(2, 0.1)));
    assert!(calm.lambda < 0.05, "lambda {}", calm.lambda);
    assert_eq!((calm.depth, calm.max_depth), (3, 5));
    let stress = escalated(evaluate(&config, &hop(2, 0.9)), Reason::RiskDepthEscalation);
    assert!(stress.message.contains("lambda 0.961"), "{}", stress.message);
    // Hop 2 fits the tightened limit.
    let shallow = allowed(evaluate(&config, &hop(1, 0.9)));
    assert_eq!((shallow.max_depth, shallow.remaining_depth), (2, 0));
}

fn bands() -> impl Strategy<Value = Vec<RiskBand>> {
    proptest::collection::vec(
        (0.0f64..=1.0, proptest::option::of(1u8..=8), proptest::option::of(0.0f64..=1.0)),
        0..6,
    )
    .prop_map(|raw| raw.into_iter().map(|(at_least, depth, threshold)| band(at_least, depth, threshold)).collect())
}

/// Bands that pass validation under the default depth and review settings: rising bounds,
/// falling depths, rising thresholds, each band tightening something.
fn valid_bands() -> impl Strategy<Value = Vec<RiskBand>> {
    proptest::collection::vec(
        (0.01f64..0.3, proptest::option::of(0u8..=2), proptest::option::of(0.0f64..0.2)),
        1..5,
    )
    .prop_map(|steps| {
        let (mut at_least, mut depth, mut threshold) = (0.0, 5u8, 0.25);
        let mut out = Vec::new();
        for (rise, drop, raise) in steps {
            at_least += rise;
            if at_least > 1.0 {
                break;
            }
            let max_depth = drop.map(|d| {
                depth = depth.saturating_sub(d).max(1);
                depth
            });
            let review_threshold = raise.map(|r| {
                threshold = f64::min(threshold + r, 1.0);
                threshold
            });
            // A band must tighten something: without either, it keeps the current depth.
            let max_depth = if max_depth.is_none() && review_threshold.is_none() { Some(depth) } else { max_depth };
            out.push(band(at_least, max_depth, review_threshold));
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The band arithmetic: for any bands (in any order, valid or not), a higher risk gives a
    /// maximum depth no larger and a review threshold no lower.
    #[test]
    fn higher_risk_never_loosens_the_bands(bands in bands(), a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let (calm, stressed) = (tighten(&bands, low), tighten(&bands, high));
        prop_assert!(stressed.max_depth.unwrap_or(u8::MAX) <= calm.max_depth.unwrap_or(u8::MAX));
        prop_assert!(stressed.review_threshold.unwrap_or(0.0) >= calm.review_threshold.unwrap_or(0.0));
        // Not a number counts as the highest risk.
        let nan = tighten(&bands, f64::NAN);
        prop_assert!(nan.max_depth.unwrap_or(u8::MAX) <= stressed.max_depth.unwrap_or(u8::MAX));
        prop_assert!(nan.review_threshold.unwrap_or(0.0) >= stressed.review_threshold.unwrap_or(0.0));
    }

    /// Through the whole policy, with lambda from the trained phi network and a safe set on
    /// the same feature (both rise with it): whatever is allowed in the more stressed state is
    /// allowed in the calmer one, with a maximum and remaining depth no larger.
    #[test]
    fn higher_risk_never_allows_a_deeper_chain(
        bands in valid_bands(),
        a in 0.0f64..=1.0,
        b in 0.0f64..=1.0,
        links in 0usize..6,
    ) {
        let (calm_state, stress_state) = if a <= b { (a, b) } else { (b, a) };
        let mut config = PolicyConfig::named("learned", "1");
        config.sbd.model = Some(learned());
        config.sbd.alpha_caps = vec![
            AlphaCap { feature: 0, above: 0.3, alpha_max: 0.6 },
            AlphaCap { feature: 0, above: 0.6, alpha_max: 0.3 },
        ];
        config.sbd.risk_bands = bands;
        let policy = Policy::new(config);
        prop_assert!(policy.is_ok(), "{:?}", policy.err());
        let Ok(policy) = policy else { return Ok(()) };
        let calm = policy.evaluate(&hop(links, calm_state));
        let stressed = policy.evaluate(&hop(links, stress_state));
        if let Verdict::Allow(tight) = &stressed {
            let Verdict::Allow(loose) = &calm else {
                return Err(TestCaseError::fail(format!("allowed at {stress_state} but not at {calm_state}: {calm:?}")));
            };
            prop_assert!(tight.max_depth <= loose.max_depth);
            prop_assert!(tight.remaining_depth <= loose.remaining_depth);
        }
    }
}

//! The Safe Bilevel Delegation runtime pieces (arXiv 2604.27358): the delegation degree alpha
//! and safety weight lambda, projection onto the safe set (section 5.3), accountability
//! weights (Definition 3.5) and the Proposition 4.8 ceiling.
//!
//! With a trained model in the configuration ([`crate::learned`]), lambda, the sub-agent and
//! alpha come from the networks; without one, alpha and lambda come from the per-risk tables.
//!
//! ## A correction to Lemma 3.6
//! Definition 3.5 gives agent j of a k-hop chain the weight
//! `w_j = (prod_{l<=j} alpha_l)(1 - alpha_{j+1})`, `w_k = prod alpha_l`. Lemma 3.6 claims these
//! sum to 1, but the telescoping sum is `alpha_1 - prod alpha + prod alpha = alpha_1`: the term
//! `1 - alpha_1` is missing. It is the share the principal (the chain's originator) keeps when
//! it hands over only `alpha_1` of the decision. We therefore report the originator's share
//! `w_0 = 1 - alpha_1` alongside `w_1..w_k`, which makes the weights a true partition. Appendix
//! A.2's k = 1 convention (`w_1 = 1`) is the case `alpha_1 = 1` of this; with a partial first
//! hop the originator keeps the rest. Proposition 4.8 bounds the delegates `w_1..w_k`, exactly
//! as the paper states it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::{RiskTable, SbdConfig};
use crate::model::{Refusal, RiskLevel};
use crate::reasons::Reason;

/// The SBD decision for one hop.
#[derive(Debug, Clone, PartialEq)]
pub struct SbdDecision {
    /// Delegation degree after projection onto the safe set.
    pub alpha: f64,
    /// Safety weight lambda(s).
    pub lambda: f64,
    /// The cap alpha_max(s) that applied (1.0 outside every high-risk region).
    pub alpha_max: f64,
    /// The sub-agent the learned policy chose; `None` without a model.
    pub sub_agent: Option<String>,
}

/// alpha_max(s): the smallest cap whose region contains `state` (SBD 5.3); 1.0 when none does.
///
/// A cap whose feature lies beyond the state vector is treated as applying: an unknown state
/// is taken as high-risk (fail closed).
pub fn alpha_max(caps: &[crate::config::AlphaCap], state: &[f64]) -> f64 {
    caps.iter()
        .filter(|cap| {
            usize::try_from(cap.feature).ok().and_then(|i| state.get(i)).is_none_or(|&x| x > cap.above)
        })
        .map(|cap| cap.alpha_max)
        .fold(1.0, f64::min)
}

/// The shortest state vector the safe set can read: one past its highest `alpha_caps`
/// feature; `None` without caps (or for a feature index beyond `usize`, which no state can
/// reach and `alpha_max` then treats as applying).
pub fn required_state_len(config: &SbdConfig) -> Option<usize> {
    config
        .alpha_caps
        .iter()
        .filter_map(|cap| usize::try_from(cap.feature).ok().and_then(|f| f.checked_add(1)))
        .max()
}

/// Projection onto the safe set: alpha <- min(alpha, alpha_max(s)) (SBD 5.3). A NaN alpha
/// projects to 0 (no delegation): `f64::min` would otherwise return the cap.
pub fn project(alpha: f64, alpha_max: f64) -> f64 {
    if alpha.is_nan() {
        return 0.0;
    }
    alpha.min(alpha_max).clamp(0.0, 1.0)
}

/// The degree and weight for a request, projected: from the learned networks when the
/// configuration has them, otherwise from the per-risk tables.
pub fn decide(config: &SbdConfig, state: &[f64], risk: RiskLevel) -> Result<SbdDecision, Refusal> {
    let expected = config.state_dim.or(config.model.as_ref().map(|m| m.state_dim));
    if let Some(dim) = expected
        && usize::try_from(dim).ok() != Some(state.len())
    {
        return Err(Refusal::deny(
            Reason::StateInvalid,
            format!("`state` has {} features; the policy expects {dim}", state.len()),
        ));
    }
    // The state rule: a state vector must hold every feature the policy reads. With a fixed
    // `state_dim` (or a learned model) that is checked above; otherwise the safe set's highest
    // `alpha_caps` feature sets the minimum length. A missing or short state is refused with
    // `state-invalid` naming what is needed, never guessed (an absent feature is not taken as
    // calm, nor silently as high risk). A policy without alpha caps reads no feature, so any
    // state, the empty one included, is accepted.
    if let Some(needed) = required_state_len(config)
        && state.len() < needed
    {
        return Err(Refusal::deny(
            Reason::StateInvalid,
            format!(
                "`state` has {} features; this policy's safe set (`sbd.alpha_caps`) reads feature {}, so it needs at least {needed}",
                state.len(),
                needed - 1
            ),
        ));
    }
    if state.iter().any(|x| !x.is_finite()) {
        return Err(Refusal::deny(Reason::StateInvalid, "`state` has a non-finite feature"));
    }
    let cap = alpha_max(&config.alpha_caps, state);
    if let Some(model) = &config.model {
        let Some(inference) = model.infer(state) else {
            return Err(Refusal::deny(
                Reason::StateInvalid,
                "the learned model gives no finite lambda and alpha for this state",
            ));
        };
        return Ok(SbdDecision {
            alpha: project(inference.alpha, cap),
            lambda: inference.lambda,
            alpha_max: cap,
            sub_agent: model.sub_agents.get(inference.sub_agent).cloned(),
        });
    }
    Ok(SbdDecision {
        alpha: project(RiskTable::get(&config.alpha, risk), cap),
        lambda: config.lambda.get(risk),
        alpha_max: cap,
        sub_agent: None,
    })
}

/// The risk signal of a decided hop, in [0, 1]: `rho(s) = max(lambda(s), 1 - alpha_max(s))`, the
/// safety weight the policy (or the trained phi network) gives this state, or the share of the
/// decision the safe set withholds here, whichever is larger. Without a safe set region around
/// the state (`alpha_max = 1`) it is lambda alone. A value that is not a number counts as the
/// highest risk (fail closed).
pub fn risk_signal(decision: &SbdDecision) -> f64 {
    let rho = decision.lambda.max(1.0 - decision.alpha_max);
    if rho.is_nan() { 1.0 } else { rho.clamp(0.0, 1.0) }
}

/// What the risk bands ([`crate::config::RiskBand`]) make of one risk signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tightening {
    /// The risk signal rho(s) the bands were read at.
    pub risk: f64,
    /// The tightest `max_depth` among the bands that apply; `None` when none sets one.
    pub max_depth: Option<u8>,
    /// The highest `review_threshold` among the bands that apply; `None` when none sets one.
    pub review_threshold: Option<f64>,
}

/// Risk-tightened authority: every band with `at_least <= risk` applies, and the result is the
/// smallest depth and the largest review threshold among them:
///
/// ```text
/// D_eff(s)   = min( D(task risk, exception), min { d_k : rho(s) >= l_k } )
/// tau_eff(s) = max( tau,                     max { t_k : rho(s) >= l_k } )
/// ```
///
/// A higher risk applies a superset of the bands, so it can never allow a deeper chain or a
/// lower review threshold, whatever the order of the bands (the validation in
/// [`crate::PolicyConfig::validate`] further refuses tables written as if it could).
pub fn tighten(bands: &[crate::config::RiskBand], risk: f64) -> Tightening {
    // NaN is not >= any bound; count it as the highest risk instead (fail closed).
    let risk = if risk.is_nan() { 1.0 } else { risk };
    let applying = || bands.iter().filter(move |band| risk >= band.at_least);
    Tightening {
        risk,
        max_depth: applying().filter_map(|band| band.max_depth).min(),
        review_threshold: applying().filter_map(|band| band.review_threshold).reduce(f64::max),
    }
}

/// Accountability weights for a chain whose hops have delegation degrees `alphas` (originator's
/// hop first). Returns `k + 1` weights: the originator's retained share `1 - alpha_1`, then
/// `w_1..w_k` of Definition 3.5. They sum to 1 (see the module docs). An empty chain leaves all
/// accountability with the originator.
pub fn accountability_weights(alphas: &[f64]) -> Vec<f64> {
    let mut weights = Vec::with_capacity(alphas.len() + 1);
    let Some(&first) = alphas.first() else {
        weights.push(1.0);
        return weights;
    };
    weights.push(1.0 - first);
    // `reached` is prod_{l<=j} alpha_l: the share of the decision that reaches agent j.
    let mut reached = 1.0;
    for (j, &alpha) in alphas.iter().enumerate() {
        reached *= alpha;
        let passed_on = alphas.get(j + 1).copied().unwrap_or(0.0);
        weights.push(reached * (1.0 - passed_on));
    }
    weights
}

/// Proposition 4.8: no delegate's weight exceeds `1 - (1 - max alpha)^k`.
pub fn accountability_ceiling(alphas: &[f64]) -> f64 {
    let max_alpha = alphas.iter().copied().fold(0.0, f64::max);
    let k = u32::try_from(alphas.len()).unwrap_or(u32::MAX);
    1.0 - integer_power(1.0 - max_alpha, k)
}

/// `base^k` by repeated squaring: at most 16 multiplications for a chain's length, where a
/// general `pow` costs a logarithm and an exponential (it was an eighth of an allow's time).
fn integer_power(base: f64, mut k: u32) -> f64 {
    let (mut result, mut square) = (1.0, base);
    while k > 0 {
        if k & 1 == 1 {
            result *= square;
        }
        square *= square;
        k >>= 1;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlphaCap;
    use proptest::prelude::*;

    const EPS: f64 = 1e-12;

    #[test]
    fn integer_power_agrees_with_pow() {
        for k in 0..=254u32 {
            for base in [0.0, 1e-3, 0.1, 0.25, 0.5, 0.9, 0.999, 1.0] {
                let (got, want) = (integer_power(base, k), libm::pow(base, f64::from(k)));
                // relative error grows with the number of products: at most about k ulps
                assert!((got - want).abs() <= 1e-13 * want.abs(), "{base}^{k}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn weights_match_definition_3_5() {
        let w = accountability_weights(&[0.5, 0.8, 0.25]);
        let expected = [0.5, 0.5 * 0.2, 0.5 * 0.8 * 0.75, 0.5 * 0.8 * 0.25];
        assert_eq!(w.len(), expected.len());
        for (got, want) in w.iter().zip(expected) {
            assert!((got - want).abs() < EPS, "{w:?}");
        }
    }

    #[test]
    fn full_first_hop_gives_the_appendix_a2_convention() {
        assert_eq!(accountability_weights(&[1.0]), [0.0, 1.0]);
        assert_eq!(accountability_weights(&[]), [1.0]);
    }

    #[test]
    fn a_state_shorter_than_the_safe_set_reads_is_refused_not_guessed() {
        let mut config = SbdConfig::default();
        config.alpha_caps = alloc::vec![
            AlphaCap { feature: 0, above: 0.25, alpha_max: 0.2 },
            AlphaCap { feature: 2, above: 0.5, alpha_max: 0.5 },
        ];
        assert_eq!(required_state_len(&config), Some(3));
        for state in [&[][..], &[0.1], &[0.1, 0.2]] {
            let Err(Refusal::Deny(denial)) = decide(&config, state, RiskLevel::Low) else {
                unreachable!("a state of {} features was not refused", state.len())
            };
            assert_eq!(denial.reason, Reason::StateInvalid);
            assert!(
                denial.message.contains(&format!("has {} features", state.len()))
                    && denial.message.contains("at least 3"),
                "{}",
                denial.message
            );
        }
        let calm = decide(&config, &[0.1, 9.0, 0.1], RiskLevel::Low);
        assert!(calm.is_ok_and(|d| d.alpha_max == 1.0), "a full, calm state is not capped");
        // Without caps nothing is read: no state is needed.
        let free = SbdConfig::default();
        assert_eq!(required_state_len(&free), None);
        assert!(decide(&free, &[], RiskLevel::Low).is_ok());
    }

    #[test]
    fn caps_apply_inside_their_region_only() {
        let caps = [
            AlphaCap { feature: 0, above: 20.0, alpha_max: 0.4 },
            AlphaCap { feature: 1, above: 0.25, alpha_max: 0.8 },
        ];
        assert_eq!(alpha_max(&caps, &[10.0, 0.1]), 1.0);
        assert_eq!(alpha_max(&caps, &[25.0, 0.1]), 0.4);
        assert_eq!(alpha_max(&caps, &[10.0, 0.3]), 0.8);
        assert_eq!(alpha_max(&caps, &[25.0, 0.3]), 0.4);
        // A missing feature counts as high risk.
        assert_eq!(alpha_max(&caps, &[]), 0.4);
        assert_eq!(project(0.9, 0.4), 0.4);
        assert_eq!(project(0.3, 0.4), 0.3);
    }

    fn chain_alphas() -> impl Strategy<Value = Vec<f64>> {
        (2usize..=5).prop_flat_map(|k| proptest::collection::vec(0.0f64..=1.0, k))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// Accountability weights are a partition: non-negative and summing to 1.
        #[test]
        fn accountability_weights_sum_to_one(alphas in chain_alphas()) {
            let w = accountability_weights(&alphas);
            prop_assert_eq!(w.len(), alphas.len() + 1);
            prop_assert!(w.iter().all(|&x| x >= 0.0));
            prop_assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }

        /// Proposition 4.8: 10,000 random chains, k in 2..5, alpha uniform: no delegate's
        /// weight exceeds 1 - (1 - max alpha)^k.
        #[test]
        fn proposition_4_8_ceiling_holds(alphas in chain_alphas()) {
            let w = accountability_weights(&alphas);
            let ceiling = accountability_ceiling(&alphas);
            let max_delegate = w.iter().skip(1).copied().fold(0.0, f64::max);
            prop_assert!(max_delegate <= ceiling + EPS, "{} > {}", max_delegate, ceiling);
        }
    }
}

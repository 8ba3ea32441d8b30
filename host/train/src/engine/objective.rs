//! The per-sample SBD losses on pi's outputs, their gradients, and the decision they score.
//!
//! pi's output row is `n` sub-agent logits then one alpha logit. With `p = softmax(logits)`
//! and `alpha = min(sigmoid(alpha logit), alpha_max(s))` (the projection of SBD 5.3, which
//! [`Objective::project`] can switch off for the delta = 1 ablation):
//!
//! - safety (SBD eq. 1): the true indicator `1[alpha > u_a]` is a step, so training uses the
//!   smooth surrogate `sigmoid((alpha - u_a - m) / temperature)`, averaged over the sub-agent
//!   distribution: `l_safe = sum_a p_a sigmoid((alpha - u_a - m) / T)`. The margin `m`
//!   ([`Objective::margin`]) centres the step on the unsafe side of the threshold, so that the
//!   safe side (`alpha <= u_a`, which the true indicator counts as safe) costs less than 1/2:
//!   without it a contraindicated specialist (`u = 0`) costs 1/2 even at alpha = 0, and the
//!   policy can never make it safe (issue 16). As `T, m -> 0` it becomes the expected true
//!   indicator. Safety Rate is always reported with the true indicator;
//! - efficiency (SBD eq. 2): `l_eff = sum_a p_a ((1 - alpha) c0_a + alpha c1_a)`.
//!
//! Both are functions of the output row only, so a directional derivative along a parameter
//! tangent is `grad_output . jvp` (used by the hypergradient).
//!
//! [`AlphaMode`] realises the methods of section 6 that do not choose a continuous alpha:
//! - `Discrete`: alpha is 0 (the principal acts alone) or 1 (full delegation), drawn with
//!   probability `q = sigmoid(alpha logit)`; the losses are their expectations over that draw,
//!   `(1 - q) l(0) + q l(1)`, which are exact and differentiable in q. With the projection on,
//!   full delegation is only allowed where `alpha_max(s) >= 1` (else it becomes alpha = 0). The
//!   deployed decision delegates when `q > 0.5`;
//! - `Fixed(c)`: alpha is the constant c (projected when the projection is on); the alpha logit
//!   gets no gradient.

use crate::domains::data::Split;
use crate::engine::linalg::Scalar;
use crate::numeric::sigmoid;

/// How pi's alpha output becomes the delegation degree.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub enum AlphaMode {
    /// alpha = sigmoid(alpha logit) in [0, 1] (SBD).
    #[default]
    Continuous,
    /// alpha in {0, 1}, delegating with probability sigmoid(alpha logit) (discrete agent
    /// selection: keep the task, or hand it wholly to one sub-agent).
    Discrete,
    /// alpha is this constant whatever the state (Fixed-alpha baseline).
    Fixed(f64),
}

/// Knobs of the inner objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// Temperature T of the safety surrogate.
    pub temperature: f64,
    /// Margin m of the safety surrogate: its step is centred at `u_a + m`, so alpha at the
    /// threshold costs `sigmoid(-m / T)` (0.12 at the defaults) rather than 1/2.
    pub margin: f64,
    /// Apply alpha <- min(alpha, alpha_max(s)) (SBD 5.3).
    pub project: bool,
    /// Risk tolerance delta of the constraint P(safe) >= 1 - delta (SBD eq. 4).
    pub delta: f64,
    /// Weight rho of the penalty `rho * max(0, mean l_safe - delta)^2` that enforces the
    /// probabilistic constraint on each mini-batch; 0 turns it off.
    pub penalty: f64,
    /// Continuous, discrete or fixed alpha (see the module docs).
    pub alpha: AlphaMode,
    /// Coefficient kappa of a ridge `kappa / 2 ||pi||^2` on pi's parameters in the inner loss
    /// (0: none, the paper's). SBD-AL sets it: the efficiency and safety losses are bounded, so
    /// without it the inner minimiser runs off to infinite logits and `pi*(phi)`, which the
    /// implicit hypergradient differentiates, does not exist.
    pub weight_decay: f64,
}

impl Default for Objective {
    fn default() -> Self {
        Objective {
            temperature: 0.02,
            margin: 0.04,
            project: true,
            delta: 0.05,
            penalty: 10.0,
            alpha: AlphaMode::Continuous,
            weight_decay: 0.0,
        }
    }
}

/// pi's losses on one sample with their gradients with respect to the output row.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLoss<T> {
    /// Surrogate safety loss.
    pub safety: T,
    /// Efficiency loss.
    pub efficiency: T,
    /// d safety / d output row.
    pub grad_safety: Vec<T>,
    /// d efficiency / d output row.
    pub grad_efficiency: Vec<T>,
}

/// A deployed decision: the most probable sub-agent (first on ties) and the projected alpha.
pub fn decide(objective: &Objective, row: &[f32], alpha_max: f32) -> (usize, f64) {
    let agents = row.len() - 1;
    let mut best = 0;
    for (i, &v) in row[..agents].iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    let cap = f64::from(alpha_max);
    let project = |alpha: f64| if objective.project { alpha.min(cap) } else { alpha };
    let alpha = match objective.alpha {
        AlphaMode::Continuous => project(sigmoid(f64::from(row[agents]))),
        AlphaMode::Fixed(c) => project(c),
        AlphaMode::Discrete => {
            if sigmoid(f64::from(row[agents])) > 0.5 {
                objective.full_delegation(cap)
            } else {
                0.0
            }
        }
    };
    (best, alpha)
}

/// softmax of sub-agent logits, in f64.
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / total).collect()
}

/// Slack on the thresholds: they are stored as f32 (0.7 as f32 is 0.69999999), and an alpha
/// projected onto a cap must count as within it.
pub const THRESHOLD_TOLERANCE: f64 = 1e-6;

/// Whether a decision is safe under the true indicator (SBD Definition 3.2).
pub fn is_safe(split: &Split, sample: usize, agent: usize, alpha: f64) -> bool {
    let agents = split.agents();
    alpha <= f64::from(split.unsafe_above[sample * agents + agent]) + THRESHOLD_TOLERANCE
}

impl Objective {
    /// The alpha of full delegation in discrete mode: 1, or 0 where the projection forbids it.
    pub fn full_delegation(&self, alpha_max: f64) -> f64 {
        if self.project && alpha_max < 1.0 { 0.0 } else { 1.0 }
    }

    /// The losses of sample `i` of `split` given pi's output row.
    pub fn sample<T: Scalar>(&self, row: &[T], split: &Split, i: usize) -> SampleLoss<T> {
        if self.alpha == AlphaMode::Discrete {
            return self.discrete_sample(row, split, i);
        }
        let n = row.len() - 1;
        let at = |v: &[f32], a: usize| T::of(f64::from(v[i * n + a]));
        let p = softmax_row(&row[..n]);
        let (raw, d_raw) = match self.alpha {
            AlphaMode::Fixed(c) => (T::of(c), T::zero()),
            _ => {
                let raw = sigmoid(row[n]);
                (raw, raw * (T::one() - raw))
            }
        };
        let cap = T::of(f64::from(split.alpha_max[i]));
        let (alpha, d_alpha) = if self.project && raw > cap { (cap, T::zero()) } else { (raw, d_raw) };
        let temperature = T::of(self.temperature);
        let margin = T::of(self.margin);

        let mut sums = Sums::zero(n);
        for a in 0..n {
            let s = sigmoid((alpha - at(&split.unsafe_above, a) - margin) / temperature);
            let (c0, c1) = (at(&split.cost_at_zero, a), at(&split.cost_at_one, a));
            sums.unsafe_prob[a] = s;
            sums.cost[a] = (T::one() - alpha) * c0 + alpha * c1;
            sums.safety += p[a] * s;
            sums.efficiency += p[a] * sums.cost[a];
            sums.d_safety += p[a] * s * (T::one() - s) / temperature;
            sums.d_efficiency += p[a] * (c1 - c0);
        }
        sums.into_loss(&p, d_alpha)
    }

    /// [`Objective::sample`] for [`AlphaMode::Discrete`]: expectations over alpha in {0, a1}
    /// with P(a1) = q = sigmoid(alpha logit), a1 = [`Objective::full_delegation`].
    fn discrete_sample<T: Scalar>(&self, row: &[T], split: &Split, i: usize) -> SampleLoss<T> {
        let n = row.len() - 1;
        let at = |v: &[f32], a: usize| T::of(f64::from(v[i * n + a]));
        let p = softmax_row(&row[..n]);
        let q = sigmoid(row[n]);
        let full = T::of(self.full_delegation(f64::from(split.alpha_max[i])));
        let temperature = T::of(self.temperature);
        let mut sums = Sums::zero(n);
        for a in 0..n {
            let u = at(&split.unsafe_above, a) + T::of(self.margin);
            let (c0, c1) = (at(&split.cost_at_zero, a), at(&split.cost_at_one, a));
            let (s0, s1) = (sigmoid((T::zero() - u) / temperature), sigmoid((full - u) / temperature));
            let (k0, k1) = (c0, (T::one() - full) * c0 + full * c1);
            sums.unsafe_prob[a] = (T::one() - q) * s0 + q * s1;
            sums.cost[a] = (T::one() - q) * k0 + q * k1;
            sums.safety += p[a] * sums.unsafe_prob[a];
            sums.efficiency += p[a] * sums.cost[a];
            sums.d_safety += p[a] * (s1 - s0);
            sums.d_efficiency += p[a] * (k1 - k0);
        }
        sums.into_loss(&p, q * (T::one() - q))
    }
}

/// Per-agent values and their p-weighted sums for one sample; `d_*` are derivatives along
/// the alpha head's value (alpha, or q in discrete mode).
struct Sums<T> {
    unsafe_prob: Vec<T>,
    cost: Vec<T>,
    safety: T,
    efficiency: T,
    d_safety: T,
    d_efficiency: T,
}

impl<T: Scalar> Sums<T> {
    fn zero(agents: usize) -> Self {
        Sums {
            unsafe_prob: vec![T::zero(); agents],
            cost: vec![T::zero(); agents],
            safety: T::zero(),
            efficiency: T::zero(),
            d_safety: T::zero(),
            d_efficiency: T::zero(),
        }
    }

    /// The losses and their gradients with respect to the output row; `d_head` is
    /// d(head value) / d(alpha logit).
    fn into_loss(self, p: &[T], d_head: T) -> SampleLoss<T> {
        let n = p.len();
        let mut grad_safety = vec![T::zero(); n + 1];
        let mut grad_efficiency = vec![T::zero(); n + 1];
        for a in 0..n {
            // softmax: d(sum_a p_a f_a)/d z_j = p_j (f_j - sum_a p_a f_a)
            grad_safety[a] = p[a] * (self.unsafe_prob[a] - self.safety);
            grad_efficiency[a] = p[a] * (self.cost[a] - self.efficiency);
        }
        grad_safety[n] = self.d_safety * d_head;
        grad_efficiency[n] = self.d_efficiency * d_head;
        SampleLoss { safety: self.safety, efficiency: self.efficiency, grad_safety, grad_efficiency }
    }
}

/// softmax of a logit row in the row's scalar type.
fn softmax_row<T: Scalar>(logits: &[T]) -> Vec<T> {
    let max = logits.iter().copied().fold(T::neg_infinity(), T::max);
    let mut p: Vec<T> = logits.iter().map(|&z| (z - max).exp()).collect();
    let total = p.iter().fold(T::zero(), |s, &x| s + x);
    for x in &mut p {
        *x = *x / total;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split() -> Split {
        Split {
            len: 2,
            states: vec![0.0; 2],
            unsafe_above: vec![0.3, 0.9, 2.0, 0.5, -1.0, 0.2],
            cost_at_zero: vec![0.5, 0.5, 0.5, 0.4, 0.4, 0.4],
            cost_at_one: vec![0.2, 0.7, 0.45, 0.1, 0.3, 0.9],
            alpha_max: vec![1.0, 0.6],
            risk: vec![0.0; 2],
            labels: vec![String::new(); 2],
        }
    }

    #[test]
    fn gradients_match_central_differences() {
        for alpha in [AlphaMode::Continuous, AlphaMode::Discrete, AlphaMode::Fixed(0.5)] {
            for project in [true, false] {
                check_gradients(Objective { temperature: 0.1, project, alpha, ..Objective::default() });
            }
        }
    }

    #[test]
    fn discrete_and_fixed_alphas_decide_as_documented() {
        let discrete = Objective { alpha: AlphaMode::Discrete, ..Objective::default() };
        // q = sigmoid(1) > 0.5 delegates fully where the cap allows it, else keeps the task
        assert_eq!(decide(&discrete, &[0.0, 1.0, 0.0, 1.0], 1.0), (1, 1.0));
        assert_eq!(decide(&discrete, &[0.0, 1.0, 0.0, 1.0], 0.8), (1, 0.0));
        assert_eq!(decide(&discrete, &[0.0, 1.0, 0.0, -1.0], 1.0), (1, 0.0));
        let unprojected = Objective { project: false, ..discrete };
        assert_eq!(decide(&unprojected, &[0.0, 1.0, 0.0, 1.0], 0.8), (1, 1.0));
        let fixed = Objective { alpha: AlphaMode::Fixed(0.5), ..Objective::default() };
        assert_eq!(decide(&fixed, &[2.0, 1.0, 0.0, 9.0], 1.0), (0, 0.5));
        assert_eq!(decide(&fixed, &[2.0, 1.0, 0.0, 9.0], 0.3), (0, 0.3f32 as f64));
        // a fixed alpha's logit gets no gradient
        let loss = fixed.sample::<f64>(&[0.3, -0.2, 0.9, 0.1], &split(), 0);
        assert_eq!((loss.grad_safety[3], loss.grad_efficiency[3]), (0.0, 0.0));
    }

    #[test]
    fn discrete_losses_are_expectations_over_the_two_alphas() {
        // one agent, q = sigmoid(0) = 1/2: the losses are the mean of alpha = 0 and alpha = 1
        let data = Split {
            len: 1,
            states: vec![0.0],
            unsafe_above: vec![0.5],
            cost_at_zero: vec![0.8],
            cost_at_one: vec![0.2],
            alpha_max: vec![1.0],
            risk: vec![0.0],
            labels: vec![String::new()],
        };
        let objective = Objective { temperature: 1e-3, alpha: AlphaMode::Discrete, ..Objective::default() };
        let loss = objective.sample::<f64>(&[0.0, 0.0], &data, 0);
        assert!((loss.efficiency - 0.5).abs() < 1e-6, "{}", loss.efficiency);
        assert!((loss.safety - 0.5).abs() < 1e-9, "unsafe only at alpha = 1: {}", loss.safety);
    }

    fn check_gradients(objective: Objective) {
        let data = split();
        for (i, row) in [(0, [0.3, -0.2, 0.9, 0.1]), (1, [1.0, 0.5, -0.7, -0.4])] {
            let loss = objective.sample::<f64>(&row, &data, i);
            for j in 0..4 {
                let h = 1e-6;
                let mut plus = row;
                plus[j] += h;
                let mut minus = row;
                minus[j] -= h;
                let (lp, lm) =
                    (objective.sample::<f64>(&plus, &data, i), objective.sample::<f64>(&minus, &data, i));
                let fd_s = (lp.safety - lm.safety) / (2.0 * h);
                let fd_e = (lp.efficiency - lm.efficiency) / (2.0 * h);
                assert!(
                    (fd_s - loss.grad_safety[j]).abs() < 1e-7,
                    "safety d/d{j}: {fd_s} vs {}",
                    loss.grad_safety[j]
                );
                assert!((fd_e - loss.grad_efficiency[j]).abs() < 1e-7, "eff d/d{j}");
            }
        }
    }

    #[test]
    fn projection_caps_alpha_and_stops_its_gradient() {
        let objective = Objective::default();
        let data = split();
        // sample 1 has alpha_max 0.6; a large alpha logit is capped
        let (agent, alpha) = decide(&objective, &[0.0, 2.0, 0.0, 5.0], 0.6);
        assert_eq!((agent, alpha), (1, 0.6f32 as f64));
        let loss = objective.sample::<f64>(&[0.0, 2.0, 0.0, 5.0], &data, 1);
        assert_eq!(loss.grad_safety[3], 0.0);
        let free = Objective { project: false, ..objective };
        assert!(decide(&free, &[0.0, 2.0, 0.0, 5.0], 0.6).1 > 0.99);
    }

    #[test]
    fn the_safe_side_of_the_threshold_costs_less_than_a_half() {
        // one agent, contraindicated (u = 0): alpha = 0 is safe and must cost well below 1/2
        let data = Split {
            len: 1,
            states: vec![0.0],
            unsafe_above: vec![0.0],
            cost_at_zero: vec![0.5],
            cost_at_one: vec![0.5],
            alpha_max: vec![1.0],
            risk: vec![0.0],
            labels: vec![String::new()],
        };
        let objective = Objective { project: false, ..Objective::default() };
        let at = |logit: f64| objective.sample::<f64>(&[0.0, logit], &data, 0).safety;
        assert!(at(-40.0) < 0.15, "alpha ~ 0 at u = 0: {}", at(-40.0));
        // the unsafe side costs more than the safe side, and well past the margin about 1
        let logit_of = |alpha: f64| (alpha / (1.0 - alpha)).ln();
        assert!(at(logit_of(0.02)) > at(-40.0));
        assert!(at(logit_of(0.2)) > 0.99, "{}", at(logit_of(0.2)));
        // without the margin (the paper's surrogate) the safe alpha = 0 costs 1/2
        let centred = Objective { margin: 0.0, ..objective };
        assert!((centred.sample::<f64>(&[0.0, -40.0], &data, 0).safety - 0.5).abs() < 1e-9);
    }

    #[test]
    fn the_true_indicator_is_a_threshold_on_alpha() {
        let data = split();
        assert!(is_safe(&data, 0, 0, 0.3));
        assert!(!is_safe(&data, 0, 0, 0.31));
        assert!(is_safe(&data, 0, 0, 0.3 + 1e-7), "within the f32 rounding of the threshold");
        assert!(is_safe(&data, 0, 2, 1.0));
        assert!(!is_safe(&data, 1, 1, 0.0));
    }
}

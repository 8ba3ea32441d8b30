//! SBD-AL, our variant (not the paper's): the outer problem as an augmented Lagrangian over
//! per-context chance constraints, and its hypergradient by implicit differentiation.
//!
//! ## The outer problem
//! With `V` the validation split and `V_k` its samples in context `k` ([`Split::context`]),
//!
//! ```text
//! L_out(pi) = mean_{s in V} l_eff(pi; s) + sum_k psi(g_k(pi), y_k),
//! g_k(pi)   = mean_{s in V_k} l_safe(pi; s) - delta,
//! psi(g, y) = (max(0, y + rho g)^2 - y^2) / (2 rho)
//! ```
//!
//! `psi` is the augmented Lagrangian of an inequality constraint (Nocedal and Wright,
//! eq. 17.65); `d psi / d g = max(0, y + rho g)`. The duals follow the *measured* constraint
//! `e_k = ucb_k - delta`, where `ucb_k` is the one-sided Clopper-Pearson upper bound of the
//! stochastic policy's true unsafe rate on `V_k`: the surrogate shapes the gradient, the bound
//! decides how hard to push, so a satisfied bound carries to unseen data.
//!
//! ## The dual update
//! A proportional-integral controller on `e_k` (Stooke, Achiam and Abbeel 2020, "Responsive
//! safety in RL by PID Lagrangian methods", Algorithm 2 without the derivative term):
//!
//! ```text
//! I_k <- max(0, I_k + K_I e_k),    y_k = max(0, I_k + K_P e_k),
//! ```
//!
//! with `K_P = proportional_share * rho` and `K_I = integral_share * rho`. `K_P = 0`, `K_I = rho`
//! is plain dual ascent, `y_k <- max(0, y_k + rho e_k)` ([`AugmentedConfig::default`]). The
//! proportional form was first built to test whether SBD-AL's saturated lambda came from the
//! duals overshooting: alone it kept the duals ten times smaller and the runs ended in the same
//! place, lambda at 1 from about step 25, because lambda could not come back down (the prior
//! below is what fixes that).
//!
//! SBD-AL itself runs the proportional form, [`AugmentedConfig::sbd_al`]: once lambda could
//! come back, the integral's windup was what held it high. At delta 0.05 on
//! SUPPORT2 (seed 0, T_out 300) plain ascent drives the high-acuity dual to 129, and it is
//! still 113 at the end because it falls by only `rho (ucb - delta)`, about 0.2 per step; with
//! the proportional form it peaks at 15.7.
//!
//! A context with fewer samples than a bound at `confidence` can ever bring below delta
//! ([`bound_attainable`]: 59 at 95% and delta 0.05) follows its point estimate instead: its
//! bound stays above delta even with no unsafe sample, so its dual would rise without end.
//! No guarantee carries from such a context; the report shows its bound.
//!
//! ## The prior on log mu
//! `lambda = sigmoid(z)` with `z = log mu_phi(s)` carries the factor `lambda (1 - lambda)` into
//! every outer gradient, which vanishes as `|z|` grows. Without anything else, the first steps'
//! duals drove z to about 14 (mu about 1e6) on every state within 25 to 50 outer steps, and
//! once the constraints held and the duals were back at 0 nothing brought it down: at delta
//! 0.2 on SUPPORT2 lambda stayed at 1.000 for the last 150 steps with every validation bound
//! 6 to 15 times below delta (`examples/sbd_al_trace.rs`). Plain SGD for phi, a step in
//! lambda's mirror geometry, a five times larger eta_in and five times more inner steps each
//! left it there. So `L_out` carries a Gaussian prior on the log-multiplier,
//! `kappa mean_b z_b^2` over the inner batch (centred at mu = 1, lambda = 1/2), whose
//! gradient `2 kappa z_b / B` grows with z: z settles where the duals' push balances it, and
//! returns when the push stops. With kappa 0.1 the same run ends at mean lambda 0.55 with the
//! high-acuity bound at delta and test TE 0.364 instead of 0.118. The prior is a direct term
//! (it reads phi, not pi) and is checked with the rest against finite differences.
//!
//! ## The hypergradient
//! phi reaches `L_out` only through the inner optimum `pi*(phi)` of
//! `L_in(pi; phi) = mean_b lambda_phi(s_b) l_safe,b + (1 - lambda_phi(s_b)) l_eff,b`.
//! At a stationary point the implicit function theorem gives
//!
//! ```text
//! dL_out/dphi = - (d^2 L_in / dphi dpi) v,    v = H^-1 grad_pi L_out,   H = d^2 L_in / dpi^2,
//! ```
//!
//! with `v` from the Neumann series `v = eta sum_{j < K} (I - eta H)^j g` (Lorraine et al.
//! 2020, eq. 9), each term one Hessian-vector product. `eta` is `1 / (2 ||H||)`, with `||H||`
//! from a few power iterations warm-started at the previous step's top direction, so the
//! series contracts on the positive curvature. A Hessian-vector product is the central
//! difference of two inner gradients in f64 (`(grad(pi + h u) - grad(pi - h u)) / 2h`, error
//! O(h^2)). The mixed term is `sum_b lambda'_b (D_v l_safe,b - D_v l_eff,b) / B`, one
//! forward-mode pass of pi along `v` and one reverse pass of phi, as in
//! [`crate::engine::bilevel`]. There is no direct term: `L_out` does not read lambda.
//! `tests::the_implicit_hypergradient_matches_finite_differences` checks the whole chain
//! against `(L_out(pi*(phi + e)) - L_out(pi*(phi - e))) / 2e` with pi* solved to a gradient
//! norm below 1e-10.

use crate::engine::bilevel::{MixedTerm, Problem};

/// The knobs of SBD-AL's outer problem.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AugmentedConfig {
    /// Confidence of each context's upper bound (e.g. 0.95).
    pub confidence: f64,
    /// The augmented Lagrangian's rho; the dual controller's gains are multiples of it.
    pub rho: f64,
    /// `K_P / rho` of the dual update (0: plain dual ascent).
    pub proportional_share: f64,
    /// `K_I / rho` of the dual update (1 with `proportional_share` 0: plain dual ascent).
    pub integral_share: f64,
    /// Neumann terms K (Hessian-vector products per outer step).
    pub neumann_terms: usize,
    /// Power iterations for `||H||` per outer step.
    pub power_iterations: usize,
    /// kappa of the prior `kappa mean_b z_b^2` on phi's output `z = log mu` (module docs;
    /// 0: none).
    pub logit_decay: f64,
}

impl AugmentedConfig {
    /// SBD-AL as the experiment runs it: the proportional-integral dual update with
    /// `K_P = rho`, `K_I = rho / 10`, and the prior on log mu with kappa 0.1 (module docs).
    pub fn sbd_al() -> Self {
        AugmentedConfig { proportional_share: 1.0, integral_share: 0.1, logit_decay: 0.1, ..AugmentedConfig::default() }
    }
}

/// Plain dual ascent and no prior on log mu: the textbook method, which the tests check
/// against; SBD-AL runs [`AugmentedConfig::sbd_al`].
impl Default for AugmentedConfig {
    fn default() -> Self {
        AugmentedConfig {
            confidence: 0.95,
            rho: 10.0,
            proportional_share: 0.0,
            integral_share: 1.0,
            neumann_terms: 8,
            power_iterations: 3,
            logit_decay: 0.0,
        }
    }
}

/// `L_out` at one pi and its parts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OuterLoss {
    /// `L_out`.
    pub value: f64,
    /// Mean efficiency loss on the split.
    pub efficiency: f64,
    /// Mean surrogate safety loss on the split.
    pub safety: f64,
    /// `g_k` per context (mean surrogate safety minus delta; NaN for an empty context).
    pub violations: Vec<f64>,
}

/// `psi(g, y)` of the module docs and its derivative in g.
pub fn psi(g: f64, y: f64, rho: f64) -> (f64, f64) {
    let active = (y + rho * g).max(0.0);
    ((active * active - y * y) / (2.0 * rho), active)
}

/// `L_out` on the problem's split (all of it) at `pi`, and `grad_pi L_out`.
pub fn outer_loss(
    problem: &Problem<'_>,
    pi: &[f64],
    duals: &[f64],
    delta: f64,
    rho: f64,
) -> (OuterLoss, Vec<f64>) {
    let split = problem.split;
    let all: Vec<usize> = (0..split.len).collect();
    let contexts = duals.len();
    let halves = problem.pi_forward(pi, &all);
    let losses = problem.losses(&halves, &all);
    let mut members = vec![0usize; contexts];
    let mut safety_sums = vec![0.0; contexts];
    for (i, l) in losses.iter().enumerate() {
        let k = split.context(i).min(contexts - 1);
        members[k] += 1;
        safety_sums[k] += l.safety;
    }
    let n = split.len.max(1) as f64;
    let mut out = OuterLoss { violations: vec![f64::NAN; contexts], ..OuterLoss::default() };
    let mut weights = vec![0.0; contexts];
    for k in 0..contexts {
        if members[k] == 0 {
            continue;
        }
        let g = safety_sums[k] / members[k] as f64 - delta;
        let (value, slope) = psi(g, duals[k], rho);
        out.violations[k] = g;
        out.value += value;
        weights[k] = slope / members[k] as f64;
    }
    let width = problem.pi.outputs();
    let mut d_out = Vec::with_capacity(split.len * width);
    for (i, l) in losses.iter().enumerate() {
        let ws = weights[split.context(i).min(contexts - 1)];
        out.efficiency += l.efficiency / n;
        out.safety += l.safety / n;
        d_out.extend(l.grad_safety.iter().zip(&l.grad_efficiency).map(|(&gs, &ge)| ws * gs + ge / n));
    }
    out.value += out.efficiency;
    let grad = problem.pi_backward(pi, &halves, &d_out);
    (out, grad)
}

/// The result of [`implicit_hypergradient`].
#[derive(Debug, Clone, PartialEq)]
pub struct Implicit {
    /// dL_out/dphi.
    pub grad: Vec<f64>,
    /// `||H||` as the power iterations estimated it.
    pub curvature: f64,
    /// The top direction found, for the next call's warm start.
    pub top_direction: Vec<f64>,
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `H u` of the inner loss on `batch` by a central difference of inner gradients.
fn hessian_vector(
    problem: &Problem<'_>,
    pi: &[f64],
    batch: &[usize],
    lambdas: &[f64],
    u: &[f64],
) -> Vec<f64> {
    let size = norm(u);
    if size == 0.0 {
        return vec![0.0; u.len()];
    }
    // the cube root of f64's epsilon balances truncation (h^2) against rounding (eps / h)
    let h = 6e-6 * (1.0 + norm(pi)) / size;
    let shifted = |sign: f64| -> Vec<f64> { pi.iter().zip(u).map(|(p, d)| p + sign * h * d).collect() };
    let (plus, minus) = (shifted(1.0), shifted(-1.0));
    let (g_plus, _) = problem.inner_gradient(&plus, batch, lambdas);
    let (g_minus, _) = problem.inner_gradient(&minus, batch, lambdas);
    g_plus.iter().zip(&g_minus).map(|(a, b)| (a - b) / (2.0 * h)).collect()
}

/// `dL_out/dphi` at `pi` (taken as the inner optimum for phi) from `outer_gradient =
/// grad_pi L_out`, with the inner loss's curvature and mixed term on `batch` of the
/// problem's (training) split. `warm` is the previous top direction of H, if any.
pub fn implicit_hypergradient(
    problem: &Problem<'_>,
    phi: &[f64],
    pi: &[f64],
    batch: &[usize],
    outer_gradient: &[f64],
    config: &AugmentedConfig,
    warm: Option<&[f64]>,
) -> Implicit {
    let (phi_acts, lambdas) = problem.lambdas(phi, batch);
    let hvp = |u: &[f64]| hessian_vector(problem, pi, batch, &lambdas, u);

    // ||H|| by power iteration from the warm start (or the outer gradient)
    let mut top: Vec<f64> = match warm {
        Some(w) if w.len() == pi.len() && norm(w) > 0.0 => w.to_vec(),
        _ => outer_gradient.to_vec(),
    };
    let mut curvature = 0.0;
    for _ in 0..config.power_iterations.max(1) {
        let size = norm(&top);
        if size == 0.0 {
            break;
        }
        top.iter_mut().for_each(|x| *x /= size);
        let image = hvp(&top);
        curvature = norm(&image);
        top = image;
    }
    let eta = if curvature > 0.0 && curvature.is_finite() { 0.5 / curvature } else { 0.0 };

    // v = eta sum_{j < K} (I - eta H)^j g
    let mut term = outer_gradient.to_vec();
    let mut v = term.clone();
    for _ in 1..config.neumann_terms.max(1) {
        let image = hvp(&term);
        term.iter_mut().zip(&image).for_each(|(t, h)| *t -= eta * h);
        v.iter_mut().zip(&term).for_each(|(a, t)| *a += t);
    }
    v.iter_mut().for_each(|x| *x *= eta);

    // the mixed term: - sum_b lambda'_b (D_v l_safe,b - D_v l_eff,b) / B, back through phi
    let b = batch.len().max(1) as f64;
    let mut grad = vec![0.0; problem.phi.parameters()];
    problem.add_mixed_term(
        &MixedTerm {
            phi,
            phi_acts: &phi_acts,
            lambdas: &lambdas,
            pi,
            batch,
            v: &v,
            weight: &|d, lambda| -d * lambda * (1.0 - lambda) / b,
        },
        &mut grad,
    );
    if config.logit_decay > 0.0 {
        let cotangent: Vec<f64> = phi_acts.output.iter().map(|&z| 2.0 * config.logit_decay * z / b).collect();
        crate::engine::mlp::backward(problem.phi, phi, &phi_acts, &cotangent, &mut grad);
    }
    Implicit { grad, curvature, top_direction: top }
}

/// The duals `y_k` of the outer problem and the integral `I_k` behind them (module docs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Duals {
    /// `y_k`, what the outer loss reads.
    pub values: Vec<f64>,
    /// `I_k`.
    pub integrals: Vec<f64>,
}

impl Duals {
    /// All zero, for `contexts` contexts.
    pub fn new(contexts: usize) -> Self {
        Duals { values: vec![0.0; contexts], integrals: vec![0.0; contexts] }
    }

    /// One controller step on the measured violations `e_k` (NaN: a context without samples,
    /// which keeps its dual and integral).
    pub fn update(&mut self, violations: &[f64], config: &AugmentedConfig) {
        let (k_p, k_i) = (config.proportional_share * config.rho, config.integral_share * config.rho);
        for ((y, integral), &e) in self.values.iter_mut().zip(&mut self.integrals).zip(violations) {
            if e.is_finite() {
                *integral = (*integral + k_i * e).max(0.0);
                *y = (*integral + k_p * e).max(0.0);
            }
        }
    }
}

/// Whether a one-sided Clopper-Pearson bound at `confidence` over `samples` can fall to
/// `delta` or below: with no unsafe sample the bound is `1 - (1 - confidence)^(1/n)`, so it
/// needs `n >= ln(1 - confidence) / ln(1 - delta)`.
pub fn bound_attainable(samples: usize, delta: f64, confidence: f64) -> bool {
    samples > 0 && 1.0 - (1.0 - confidence).powf(1.0 / samples as f64) <= delta
}

/// The violation each context's dual follows: `ucb_k - delta`, or the point estimate's
/// `unsafe_rate_k - delta` where the bound is not attainable; NaN for an empty context.
pub fn measured_violations(
    bounds: &[crate::engine::trainer::ContextBound],
    delta: f64,
    confidence: f64,
) -> Vec<f64> {
    bounds
        .iter()
        .map(|b| match b.samples {
            0 => f64::NAN,
            n if bound_attainable(n, delta, confidence) => b.upper_bound - delta,
            _ => b.unsafe_rate - delta,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::data::Split;
    use crate::engine::mlp;
    use crate::engine::mlp::Shape;
    use crate::engine::objective::Objective;
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};

    /// A small problem with both contexts: 24 samples, 2 features, 3 agents.
    fn split(seed: u64) -> Split {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let len = 24;
        let agents = 3;
        let mut s = Split { len, ..Split::default() };
        for i in 0..len {
            s.states.push(rng.random_range(-1.0..1.0));
            s.states.push(rng.random_range(-1.0..1.0));
            for _ in 0..agents {
                s.unsafe_above.push(rng.random_range(0.0..1.0));
                s.cost_at_zero.push(rng.random_range(0.3..0.9));
                s.cost_at_one.push(rng.random_range(0.0..0.6));
            }
            s.alpha_max.push(if i % 3 == 0 { 0.6 } else { 1.0 });
            s.risk.push(0.0);
            s.labels.push(String::new());
        }
        s
    }

    /// Solves `a x = b` by Gaussian elimination with partial pivoting (a small dense system).
    fn solve_dense(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
        let n = b.len();
        for c in 0..n {
            let pivot = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
            if a[pivot][c].abs() < 1e-14 {
                return None;
            }
            a.swap(c, pivot);
            b.swap(c, pivot);
            for r in c + 1..n {
                let f = a[r][c] / a[c][c];
                for k in c..n {
                    a[r][k] -= f * a[c][k];
                }
                b[r] -= f * b[c];
            }
        }
        let mut x = vec![0.0; n];
        for r in (0..n).rev() {
            x[r] = (b[r] - (r + 1..n).map(|k| a[r][k] * x[k]).sum::<f64>()) / a[r][r];
        }
        Some(x)
    }

    /// pi* for phi to a gradient norm below 1e-10: damped Newton steps on the full Hessian
    /// (one Hessian-vector product per parameter), with a gradient step where Newton's
    /// direction does not descend.
    fn solve(problem: &Problem<'_>, phi: &[f64], start: &[f64]) -> Vec<f64> {
        let all: Vec<usize> = (0..problem.split.len).collect();
        let (_, lambdas) = problem.lambdas(phi, &all);
        let loss = |pi: &[f64]| problem.inner_gradient(pi, &all, &lambdas).1.loss;
        let mut pi = start.to_vec();
        for _ in 0..500 {
            let (g, _) = problem.inner_gradient(&pi, &all, &lambdas);
            let gn = norm(&g);
            if gn < 1e-10 {
                return pi;
            }
            let n = pi.len();
            let columns: Vec<Vec<f64>> = (0..n)
                .map(|j| {
                    let mut e = vec![0.0; n];
                    e[j] = 1.0;
                    hessian_vector(problem, &pi, &all, &lambdas, &e)
                })
                .collect();
            let hessian: Vec<Vec<f64>> =
                (0..n).map(|r| (0..n).map(|c| 0.5 * (columns[c][r] + columns[r][c])).collect()).collect();
            let newton = solve_dense(hessian, g.iter().map(|x| -x).collect());
            let direction = match newton {
                Some(d) if d.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>() < 0.0 => d,
                _ => g.iter().map(|x| -x).collect(),
            };
            let slope: f64 = direction.iter().zip(&g).map(|(a, b)| a * b).sum();
            let here = loss(&pi);
            let mut step = 1.0;
            loop {
                let next: Vec<f64> = pi.iter().zip(&direction).map(|(p, d)| p + step * d).collect();
                if loss(&next) <= here + 1e-4 * step * slope || step < 1e-10 {
                    pi = next;
                    break;
                }
                step /= 2.0;
            }
        }
        panic!("the inner problem did not converge");
    }

    #[test]
    fn the_implicit_hypergradient_matches_finite_differences() {
        hypergradient_matches_finite_differences(0.0);
    }

    #[test]
    fn the_log_multiplier_prior_adds_its_exact_gradient() {
        hypergradient_matches_finite_differences(0.2);
    }

    /// `dL_out/dphi` against central differences of `L_out(pi*(phi)) + kappa mean_b z_b(phi)^2`
    /// with pi* solved to 1e-10.
    fn hypergradient_matches_finite_differences(kappa: f64) {
        let train = split(1);
        let validation = split(2);
        // no projection and a ridge on pi, as SBD-AL trains; a smooth surrogate and a linear pi
        // keep the inner problem well conditioned enough to solve to 1e-10
        let objective = Objective {
            project: false,
            penalty: 0.0,
            temperature: 0.3,
            margin: 0.05,
            weight_decay: 0.01,
            ..Objective::default()
        };
        let phi_shape = Shape::new(&[2, 4, 1]);
        let pi_shape = Shape::new(&[2, 4]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let phi: Vec<f64> = mlp::init(&phi_shape, &mut rng, 1.0);
        let pi0: Vec<f64> = mlp::init(&pi_shape, &mut rng, 0.5);
        let problem = Problem { phi: &phi_shape, pi: &pi_shape, objective: &objective, split: &train };
        let outer = Problem { split: &validation, ..problem };
        let (duals, delta, rho) = (vec![0.3, 0.8], 0.1, 5.0);
        let all: Vec<usize> = (0..train.len).collect();
        let prior = |phi: &[f64]| {
            let (acts, _) = problem.lambdas(phi, &all);
            kappa * acts.output.iter().map(|z| z * z).sum::<f64>() / all.len() as f64
        };
        let l_out = |phi: &[f64], start: &[f64]| {
            let pi = solve(&problem, phi, start);
            (outer_loss(&outer, &pi, &duals, delta, rho).0.value + prior(phi), pi)
        };
        let (_, pi_star) = l_out(&phi, &pi0);
        let (_, g) = outer_loss(&outer, &pi_star, &duals, delta, rho);
        let config = AugmentedConfig {
            neumann_terms: 4000,
            power_iterations: 50,
            logit_decay: kappa,
            ..AugmentedConfig::default()
        };
        let implicit = implicit_hypergradient(&problem, &phi, &pi_star, &all, &g, &config, None);
        let mut compared = 0;
        for j in 0..phi.len() {
            let e = 1e-4;
            let mut plus = phi.clone();
            plus[j] += e;
            let mut minus = phi.clone();
            minus[j] -= e;
            let fd = (l_out(&plus, &pi_star).0 - l_out(&minus, &pi_star).0) / (2.0 * e);
            let got = implicit.grad[j];
            assert!(
                (fd - got).abs() <= 1e-6 * fd.abs().max(1e-3),
                "d L_out / d phi[{j}]: finite differences {fd:e}, implicit {got:e}"
            );
            compared += usize::from(fd.abs() > 1e-6);
        }
        assert!(compared >= phi.len() / 2, "most coordinates of phi must matter: {compared}");
    }

    #[test]
    fn the_augmented_term_is_the_inequality_constraints_and_its_slope_is_the_multiplier() {
        // inactive: y + rho g <= 0 gives -y^2 / 2 rho and no slope
        assert_eq!(psi(-1.0, 1.0, 2.0), (-0.25, 0.0));
        // active: the slope is y + rho g
        let (value, slope) = psi(0.1, 1.0, 2.0);
        assert!((slope - 1.2).abs() < 1e-12 && (value - (1.44 - 1.0) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn the_default_is_plain_dual_ascent() {
        let ascent = AugmentedConfig::default();
        let mut duals = Duals { values: vec![0.5, 0.0, 2.0], integrals: vec![0.5, 0.0, 2.0] };
        duals.update(&[0.15, -0.04, f64::NAN], &ascent);
        assert!((duals.values[0] - 2.0).abs() < 1e-12, "{duals:?}");
        assert_eq!(duals.values[1], 0.0, "a slack constraint's dual stays at 0");
        assert_eq!(duals.values[2], 2.0, "an empty context keeps its dual");
    }

    #[test]
    fn the_proportional_term_comes_down_as_soon_as_the_constraint_holds() {
        let config = AugmentedConfig { proportional_share: 1.0, integral_share: 0.1, ..AugmentedConfig::default() };
        let mut duals = Duals::new(1);
        for _ in 0..20 {
            duals.update(&[0.1], &config);
        }
        // K_I = 1: the integral is 2 after 20 steps, the proportional term 1 more
        assert!((duals.integrals[0] - 2.0).abs() < 1e-9 && (duals.values[0] - 3.0).abs() < 1e-9, "{duals:?}");
        duals.update(&[-0.01], &config);
        // the integral barely moves, the dual drops by the whole proportional part
        assert!((duals.integrals[0] - 1.99).abs() < 1e-9 && (duals.values[0] - 1.89).abs() < 1e-9, "{duals:?}");
        let mut ascent = Duals::new(1);
        for _ in 0..20 {
            ascent.update(&[0.1], &AugmentedConfig::default());
        }
        assert!((ascent.values[0] - 20.0).abs() < 1e-9, "plain ascent builds {ascent:?}");
    }

    #[test]
    fn a_context_too_small_for_the_bound_follows_its_point_estimate() {
        // 1 - 0.05^(1/n) <= 0.05 first holds at n = 59
        assert!(!bound_attainable(58, 0.05, 0.95) && bound_attainable(59, 0.05, 0.95));
        assert!(!bound_attainable(0, 0.05, 0.95));
        let bound = |samples, unsafe_rate, upper_bound| crate::engine::trainer::ContextBound { samples, unsafe_rate, upper_bound };
        let e = measured_violations(&[bound(39, 0.0, 0.074), bound(400, 0.01, 0.02), bound(0, 0.0, 0.0)], 0.05, 0.95);
        assert!((e[0] + 0.05).abs() < 1e-12, "39 samples: the point estimate, {e:?}");
        assert!((e[1] + 0.03).abs() < 1e-12, "400 samples: the bound, {e:?}");
        assert!(e[2].is_nan());
    }
}

//! The pre-registered tests of the three theoretical results (SBD section 6.6), measured on a
//! domain. Each reports what it measured and whether the paper's prediction held; a failed
//! prediction is a finding, reported as such.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::engine::backend::Backend;
use crate::engine::bilevel::Problem;
use crate::domains::data::Dataset;
use crate::error::TrainError;
use crate::eval::stats::{self, LineFit};
use crate::engine::trainer::{LambdaMode, TrainConfig, Trainer};

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct TheoryConfig {
    /// The base training configuration (seed, sizes, step sizes, objective).
    pub train: TrainConfig,
    /// Fixed lambdas of the monotonicity sweep.
    pub lambdas: Vec<f64>,
    /// Outer steps (each `train.inner_steps` inner steps) per sweep point.
    pub sweep_outer_steps: usize,
    /// Training samples of the full-batch convergence run.
    pub convergence_samples: usize,
    /// Steps whose distance to pi* is recorded and fitted.
    pub convergence_steps: usize,
    /// Gradient steps along the same path before pi* is solved for from where they end (so
    /// that pi* is the minimum of the basin the path is in).
    pub reference_steps: usize,
    /// The gradient norm pi* is solved to (L-BFGS in f64; F4 needs a true optimum, issue 16:
    /// a later iterate of the same path makes any constant-speed path look linear).
    pub reference_tolerance: f64,
    /// Most L-BFGS iterations spent on pi* (each a full-batch gradient).
    pub reference_iterations: usize,
    /// Random chains per chain length.
    pub chains: usize,
    /// Chain lengths k.
    pub chain_lengths: Vec<usize>,
}

impl Default for TheoryConfig {
    fn default() -> Self {
        TheoryConfig {
            train: TrainConfig::default(),
            lambdas: vec![0.1, 0.3, 0.5, 0.7, 0.9],
            sweep_outer_steps: 500,
            convergence_samples: 512,
            convergence_steps: 200,
            reference_steps: 4000,
            reference_tolerance: 1e-6,
            // on finance at width 32 it stalls at 1.9e-5 by 20,000 and is still there at
            // 100,000 (a kink of the ReLU network or the projection, not a slow tail); the
            // converging domains need under 100
            reference_iterations: 20_000,
            chains: 10_000,
            chain_lengths: vec![2, 3, 4, 5],
        }
    }
}

impl TheoryConfig {
    /// Refuses sizes that would make a check vacuous (a fit through two points, no chains).
    pub fn validate(&self) -> Result<(), TrainError> {
        self.train.validate()?;
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.lambdas.len() < 3 {
            return bad("the monotonicity sweep needs at least three lambdas");
        }
        if self.convergence_samples == 0 {
            return bad("the convergence run needs at least one sample");
        }
        if self.convergence_steps < 3 || self.reference_steps <= self.convergence_steps {
            return bad(
                "the convergence run needs at least 3 fitted steps and more reference steps than fitted ones",
            );
        }
        if self.chains == 0 || self.chain_lengths.is_empty() || self.chain_lengths.contains(&0) {
            return bad("the accountability check needs chains of length at least 1");
        }
        Ok(())
    }
}

/// Theorem 4.4: P(safe) at convergence against a fixed lambda.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monotonicity {
    /// The lambdas swept.
    pub lambdas: Vec<f64>,
    /// Safety Rate on the test split, true indicator, deployed (most probable) sub-agent, per
    /// lambda.
    pub safety_rates: Vec<f64>,
    /// P(safe) on the test split under pi's sub-agent distribution, true indicator, per lambda.
    pub expected_safety_rates: Vec<f64>,
    /// Mean projected alpha on the test split per lambda.
    pub mean_alphas: Vec<f64>,
    /// Spearman correlation of lambda and Safety Rate; NaN (undefined) when the Safety Rate
    /// does not vary.
    pub spearman: f64,
    /// Spearman correlation of lambda and the expected P(safe).
    pub spearman_expected: f64,
    /// Whether the Safety Rate never decreases as lambda grows (Theorem 4.4's own claim).
    pub non_decreasing: bool,
    /// Whether the expected P(safe) never decreases as lambda grows.
    pub expected_non_decreasing: bool,
    /// Spearman correlation of lambda and mean alpha (the mechanism: more safety weight, less
    /// delegation).
    pub spearman_alpha: f64,
    /// The paper's criterion, Spearman > 0.9, on the deployed Safety Rate.
    pub pass: bool,
    /// The same criterion on the expected P(safe).
    pub pass_expected: bool,
}

/// Theorem 4.6: linear convergence of the inner loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Convergence {
    /// Step size used (eta_in).
    pub eta: f64,
    /// ||pi_t - pi*||^2 for t = 0..steps.
    pub distances: Vec<f64>,
    /// Fit of ln ||pi_t - pi*||^2 against t.
    pub fit: LineFit,
    /// Median secant estimate of the strong-convexity constant mu along the path.
    pub mu: f64,
    /// Largest secant estimate of the smoothness constant L along the path.
    pub smoothness: f64,
    /// ln(1 - eta mu): the slope Theorem 4.6 predicts (NaN when mu <= 0).
    pub predicted_slope: f64,
    /// Norm of the full-batch gradient at the reference point pi*.
    pub reference_gradient_norm: f64,
    /// L-BFGS iterations to pi*.
    pub reference_iterations: usize,
    /// Whether pi* reached `reference_tolerance`.
    pub reference_converged: bool,
    /// ||pi_T - pi*||^2 / ||pi_0 - pi*||^2 at the last fitted step.
    pub distance_ratio: f64,
    /// Whether the fitted steps cover at least one e-fold of the squared distance
    /// (`distance_ratio < 1/e`). Over less, any smooth path is log-linear (`ln(1 - x) ~ -x`), so
    /// the fit says nothing about Theorem 4.6.
    pub informative: bool,
    /// The paper's criterion, R^2 > 0.95, checked only against a converged pi* and over an
    /// informative stretch of the path (otherwise it is not checked and does not pass).
    pub pass: bool,
}

/// Proposition 4.8 on random chains.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountabilityBound {
    /// Per chain length: (k, chains, violations, largest max_j w_j / bound).
    pub per_length: Vec<ChainLengthResult>,
    /// Chains whose delegate weights w_1..w_k do not sum to 1 (Lemma 3.6 as printed).
    pub lemma_3_6_failures: usize,
    /// Chains whose weights with the originator's share sum to 1 within 1e-9.
    pub corrected_partition_holds: usize,
    /// The paper's criterion: zero violations of the bound.
    pub pass: bool,
}

/// One chain length of [`AccountabilityBound`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainLengthResult {
    /// Chain length k.
    pub k: usize,
    /// Chains drawn.
    pub chains: usize,
    /// Chains with max_j w_j > 1 - (1 - max alpha)^k.
    pub violations: usize,
    /// Largest ratio max_j w_j / bound seen.
    pub worst_ratio: f64,
}

/// All three validations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TheoryReport {
    /// Theorem 4.4.
    pub monotonicity: Monotonicity,
    /// Theorem 4.6.
    pub convergence: Convergence,
    /// Proposition 4.8.
    pub accountability: AccountabilityBound,
}

/// Theorem 4.4: train pi with each fixed lambda and measure P(safe) on the test split.
pub fn monotonicity<B: Backend + Clone>(
    dataset: &Dataset,
    config: &TheoryConfig,
    backend: &B,
    mut progress: impl FnMut(usize, usize),
) -> Result<Monotonicity, TrainError> {
    let mut safety_rates = Vec::new();
    let mut expected_safety_rates = Vec::new();
    let mut mean_alphas = Vec::new();
    let total = config.lambdas.len() * config.sweep_outer_steps;
    for (i, &lambda) in config.lambdas.iter().enumerate() {
        let train = TrainConfig { lambda: LambdaMode::Fixed(lambda), ..config.train.clone() };
        let mut trainer = Trainer::new(dataset, train, backend.clone())?;
        for s in 0..config.sweep_outer_steps {
            trainer.step()?;
            progress(i * config.sweep_outer_steps + s + 1, total);
        }
        let test = trainer.evaluate(&dataset.test);
        safety_rates.push(test.safety_rate);
        expected_safety_rates.push(test.expected_safety_rate);
        mean_alphas.push(test.mean_alpha);
    }
    let spearman = stats::spearman(&config.lambdas, &safety_rates);
    let spearman_expected = stats::spearman(&config.lambdas, &expected_safety_rates);
    let mut order: Vec<usize> = (0..config.lambdas.len()).collect();
    order.sort_by(|&a, &b| config.lambdas[a].total_cmp(&config.lambdas[b]));
    let non_decreasing = |rates: &[f64]| order.windows(2).all(|w| rates[w[1]] >= rates[w[0]]);
    Ok(Monotonicity {
        lambdas: config.lambdas.clone(),
        non_decreasing: non_decreasing(&safety_rates),
        expected_non_decreasing: non_decreasing(&expected_safety_rates),
        spearman_alpha: stats::spearman(&config.lambdas, &mean_alphas),
        safety_rates,
        expected_safety_rates,
        mean_alphas,
        spearman,
        spearman_expected,
        // NaN > 0.9 is false: an undefined correlation does not meet the pre-registered criterion
        pass: spearman > 0.9,
        pass_expected: spearman_expected > 0.9,
    })
}

/// Theorem 4.6: full-batch projected gradient descent on the inner loss for the initial phi,
/// distance to a far-later iterate pi* against t.
pub fn convergence<B: Backend + Clone>(
    dataset: &Dataset,
    config: &TheoryConfig,
    backend: &B,
    mut progress: impl FnMut(usize, usize),
) -> Result<Convergence, TrainError> {
    let trainer = Trainer::new(dataset, config.train.clone(), backend.clone())?;
    let (phi_shape, pi_shape) = trainer.shapes();
    let (phi, pi0) = trainer.parameters();
    let problem =
        Problem { phi: phi_shape, pi: pi_shape, objective: &config.train.objective, split: &dataset.train };
    let samples: Vec<usize> = (0..config.convergence_samples.min(dataset.train.len)).collect();
    let (_, lambdas) = problem.lambdas(phi, &samples);
    let eta = config.train.eta_in as f32;
    let gradient = |pi: &[f32]| problem.inner_gradient(pi, &samples, &lambdas).0;
    let total = config.reference_steps + config.convergence_steps;

    let mut path_end = pi0.to_vec();
    for step in 0..config.reference_steps {
        let g = gradient(&path_end);
        path_end.iter_mut().zip(&g).for_each(|(p, g)| *p -= eta * g);
        progress(step + 1, total);
    }
    if path_end.iter().any(|p| !p.is_finite()) {
        return Err(TrainError::Diverged("the path towards pi* diverged".into()));
    }
    // pi*: the minimum of the basin the path is in, solved in f64 to the tolerance
    let lambdas64: Vec<f64> = lambdas.iter().map(|&l| f64::from(l)).collect();
    let start: Vec<f64> = path_end.iter().map(|&p| f64::from(p)).collect();
    let solved = crate::engine::lbfgs::minimise(
        |pi: &[f64]| {
            let (g, stats) = problem.inner_gradient(pi, &samples, &lambdas64);
            (stats.loss, g)
        },
        &start,
        config.reference_tolerance,
        config.reference_iterations,
        20,
    );
    let reference: Vec<f32> = solved.x.iter().map(|&p| p as f32).collect();
    let reference_gradient = gradient(&reference);

    let mut pi = pi0.to_vec();
    let mut distances = Vec::with_capacity(config.convergence_steps + 1);
    let mut mu = Vec::new();
    let mut smoothness: f64 = 0.0;
    for step in 0..=config.convergence_steps {
        let diff: Vec<f64> = pi.iter().zip(&reference).map(|(a, b)| f64::from(a - b)).collect();
        let distance: f64 = diff.iter().map(|d| d * d).sum();
        distances.push(distance);
        let g = gradient(&pi);
        if distance > 0.0 {
            let dg: Vec<f64> = g.iter().zip(&reference_gradient).map(|(a, b)| f64::from(a - b)).collect();
            mu.push(dg.iter().zip(&diff).map(|(a, b)| a * b).sum::<f64>() / distance);
            smoothness = smoothness.max((dg.iter().map(|d| d * d).sum::<f64>() / distance).sqrt());
        }
        if step < config.convergence_steps {
            pi.iter_mut().zip(&g).for_each(|(p, g)| *p -= eta * g);
        }
        progress(config.reference_steps + step, total);
    }
    let t: Vec<f64> = (0..distances.len()).map(|t| t as f64).collect();
    let logs: Vec<f64> = distances.iter().map(|d| d.max(f64::MIN_POSITIVE).ln()).collect();
    let fit = stats::line_fit(&t, &logs);
    mu.sort_by(f64::total_cmp);
    let mu = mu.get(mu.len() / 2).copied().unwrap_or(f64::NAN);
    let predicted_slope = if mu > 0.0 && config.train.eta_in * mu < 1.0 {
        (1.0 - config.train.eta_in * mu).ln()
    } else {
        f64::NAN
    };
    let distance_ratio = distances.last().copied().unwrap_or(f64::NAN) / distances.first().copied().unwrap_or(f64::NAN);
    Ok(Convergence {
        distance_ratio,
        eta: config.train.eta_in,
        distances,
        fit,
        mu,
        smoothness,
        predicted_slope,
        reference_gradient_norm: solved.gradient_norm,
        reference_iterations: solved.iterations,
        reference_converged: solved.converged,
        informative: distance_ratio < (-1.0f64).exp(),
        pass: solved.converged && distance_ratio < (-1.0f64).exp() && fit.r_squared > 0.95,
    })
}

/// Proposition 4.8: random chains with alpha ~ U(0, 1), the bound checked on w_1..w_k.
pub fn accountability(config: &TheoryConfig) -> AccountabilityBound {
    let mut rng = ChaCha8Rng::seed_from_u64(config.train.seed);
    let mut per_length = Vec::new();
    let (mut lemma_failures, mut partition_holds) = (0, 0);
    for &k in &config.chain_lengths {
        let mut result = ChainLengthResult { k, chains: config.chains, violations: 0, worst_ratio: 0.0 };
        for _ in 0..config.chains {
            let alphas: Vec<f64> = (0..k).map(|_| rng.random_range(0.0..1.0)).collect();
            let weights = sbd_policy::sbd::accountability_weights(&alphas);
            let delegates = &weights[1..];
            let alpha_bar = alphas.iter().copied().fold(0.0, f64::max);
            let bound = 1.0 - (1.0 - alpha_bar).powi(k as i32);
            let worst = delegates.iter().copied().fold(0.0, f64::max);
            // exact comparison: the prediction is zero violations, rounding included
            if worst > bound {
                result.violations += 1;
            }
            result.worst_ratio = result.worst_ratio.max(worst / bound);
            if (delegates.iter().sum::<f64>() - 1.0).abs() > 1e-9 {
                lemma_failures += 1;
            }
            if (weights.iter().sum::<f64>() - 1.0).abs() <= 1e-9 {
                partition_holds += 1;
            }
        }
        per_length.push(result);
    }
    let pass = per_length.iter().all(|r| r.violations == 0);
    AccountabilityBound {
        per_length,
        lemma_3_6_failures: lemma_failures,
        corrected_partition_holds: partition_holds,
        pass,
    }
}

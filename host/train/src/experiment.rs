//! The pre-registered evaluation of SBD section 6, executed: every method on every domain,
//! delta and seed, the metrics of 6.1, and a verdict for each hypothesis and falsifiability
//! criterion.
//!
//! How each method is realised (all trained ones share the MLPs, sampler and step sizes):
//!
//! | method | lambda | alpha | projection | constraint |
//! |---|---|---|---|---|
//! | SBD | lambda_phi(s), outer loop | continuous | yes | penalty at delta |
//! | Fixed-alpha | - (no learning) | 0.5 | no | none; sub-agent uniformly at random |
//! | CPO-style | one Lagrangian lambda = mu/(1+mu), dual ascent | discrete {0, 1} | no | multiplier at delta |
//! | MARL-vanilla | 0 (efficiency only) | discrete {0, 1} | no | none |
//! | MaAS-style | - (design time) | one (sub-agent, alpha) for all states | no | train SR >= 1 - delta |
//! | SBD-NoOuter | 0.5 | continuous | yes | penalty at delta |
//! | SBD-DiscreteAlpha | lambda_phi(s), outer loop | discrete {0, 1} | yes | penalty at delta |
//! | SBD-FixedLambda | 0.5, outer loop selects pi by validation L_meta | continuous | yes | penalty at delta |
//! | SBD-NoConstraint | lambda_phi(s), outer loop | continuous | no | none (delta = 1) |
//! | SBD-AL (ours) | mu_phi(s)/(1+mu_phi(s)), per-context dual ascent on a validation bound | continuous | no | per-context chance constraints at delta |
//!
//! Every SBD-family method except SBD-NoConstraint also carries the chance constraint
//! `P(unsafe) <= delta` on the stochastic policy through its multiplier nu
//! ([`crate::trainer::Trainer::chance_multiplier`]). SBD-AL is our variant, not the paper's
//! ([`LambdaMode::ContextDual`]: its direct dual-ascent form; the implicit-hypergradient form
//! of issue 16 is not built). It runs without the projection, so its contextual risk is
//! learnt rather than clipped away, with Adam at ten times eta_out.
//!
//! MaAS-style picks, on the training split, the (sub-agent, alpha in {0, 0.1, ..., 1}) with the
//! lowest mean task cost among those whose training Safety Rate is at least `1 - delta` (the
//! safest one when none is). Methods without delta (Fixed-alpha, MARL-vanilla,
//! SBD-NoConstraint) run once per seed and give the same point for every delta.
//!
//! The Safety-Efficiency Area (SEA) is the area of the part of the unit square dominated by a
//! method's feasible (SR, TE) points, one per delta, a point counting only where its SR is at
//! least 1 - delta (issue 16: SEA rewarded infeasible points): the area under its Pareto
//! staircase, with reference point (0, 0). It is defined for any set of points, including a single one (SR x TE).

use std::ops::Range;
use std::time::Instant;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

use crate::backend::CpuBackend;
use crate::data::{self, Dataset, Split};
use crate::error::TrainError;
use crate::finance::{self, FinanceOptions, Market};
use crate::objective::{self, AlphaMode, Objective};
use crate::stats;
use crate::summary;
use crate::theory::{self, Convergence, Monotonicity, TheoryConfig};
use crate::trainer::{LambdaMode, TrainConfig, Trainer};

/// The methods of section 6.1 and 6.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Method {
    /// Safe Bilevel Delegation.
    Sbd,
    /// Constant alpha = 0.5, no learning.
    FixedAlpha,
    /// Lagrangian constrained policy with discrete agent selection.
    Cpo,
    /// No safety mechanism, discrete action space.
    MarlVanilla,
    /// One design-time choice, no runtime adaptation.
    Maas,
    /// lambda = 0.5, no outer loop.
    NoOuter,
    /// SBD with alpha in {0, 1}.
    DiscreteAlpha,
    /// lambda held at 0.5 with the outer loop present (checkpoint selection).
    FixedLambda,
    /// SBD without the constraint (delta = 1, no projection).
    NoConstraint,
    /// SBD-AL, our variant: per-context chance constraints with a learned normalised
    /// multiplier (direct dual-ascent form).
    SbdAl,
}

/// What a method is in the paper's design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Role {
    /// SBD itself.
    Proposed,
    /// A non-ablated baseline (the comparison set of F1 and H-Med-2).
    Baseline,
    /// An ablation of SBD (section 6.5; SBD-NoOuter is both baseline 5 and ablation i).
    Ablation,
    /// Our variant (not in the paper).
    Ours,
}

impl Method {
    /// Every method, in report order.
    pub const ALL: [Method; 10] = [
        Method::Sbd,
        Method::FixedAlpha,
        Method::Cpo,
        Method::MarlVanilla,
        Method::Maas,
        Method::NoOuter,
        Method::DiscreteAlpha,
        Method::FixedLambda,
        Method::NoConstraint,
        Method::SbdAl,
    ];

    /// The non-ablated baselines of F1 and H-Med-2.
    pub const BASELINES: [Method; 4] = [Method::FixedAlpha, Method::Cpo, Method::MarlVanilla, Method::Maas];

    /// The paper's name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Sbd => "SBD",
            Method::FixedAlpha => "Fixed-alpha",
            Method::Cpo => "CPO-style",
            Method::MarlVanilla => "MARL-vanilla",
            Method::Maas => "MaAS-style",
            Method::NoOuter => "SBD-NoOuter",
            Method::DiscreteAlpha => "SBD-DiscreteAlpha",
            Method::FixedLambda => "SBD-FixedLambda",
            Method::NoConstraint => "SBD-NoConstraint",
            Method::SbdAl => "SBD-AL (ours)",
        }
    }

    /// Baseline, ablation or SBD.
    pub fn role(self) -> Role {
        match self {
            Method::Sbd => Role::Proposed,
            Method::FixedAlpha | Method::Cpo | Method::MarlVanilla | Method::Maas => Role::Baseline,
            Method::SbdAl => Role::Ours,
            _ => Role::Ablation,
        }
    }

    /// Whether the method's result depends on delta.
    pub fn uses_delta(self) -> bool {
        !matches!(self, Method::FixedAlpha | Method::MarlVanilla | Method::NoConstraint)
    }

    /// The training configuration realising the method (None: no training).
    pub fn train_config(self, base: &TrainConfig, delta: f64, cpo_dual_step: f64) -> Option<TrainConfig> {
        let objective = |project: bool, penalty: f64, delta: f64, alpha: AlphaMode| Objective {
            project,
            penalty,
            delta,
            alpha,
            ..base.objective
        };
        let rho = base.objective.penalty;
        let (lambda, objective, select) = match self {
            Method::FixedAlpha | Method::Maas => return None,
            Method::Sbd => (LambdaMode::Learned, objective(true, rho, delta, AlphaMode::Continuous), false),
            Method::Cpo => (
                LambdaMode::Lagrangian { eta: cpo_dual_step },
                objective(false, 0.0, delta, AlphaMode::Discrete),
                false,
            ),
            Method::MarlVanilla => (LambdaMode::Fixed(0.0), objective(false, 0.0, 1.0, AlphaMode::Discrete), false),
            Method::NoOuter => (LambdaMode::Fixed(0.5), objective(true, rho, delta, AlphaMode::Continuous), false),
            Method::DiscreteAlpha => (LambdaMode::Learned, objective(true, rho, delta, AlphaMode::Discrete), false),
            Method::FixedLambda => (LambdaMode::Fixed(0.5), objective(true, rho, delta, AlphaMode::Continuous), true),
            Method::NoConstraint => (LambdaMode::Learned, objective(false, 0.0, 1.0, AlphaMode::Continuous), false),
            Method::SbdAl => {
                let objective = objective(false, 0.0, delta, AlphaMode::Continuous);
                return Some(TrainConfig {
                    lambda: LambdaMode::ContextDual { confidence: 0.95 },
                    objective,
                    chance_dual_step: 0.0,
                    outer_optimizer: crate::trainer::OuterOptimizer::Adam,
                    eta_out: 10.0 * base.eta_out,
                    ..base.clone()
                });
            }
        };
        // the chance constraint's multiplier (trainer::Trainer::chance_multiplier) belongs to the
        // SBD family; CPO-style has its own Lagrangian multiplier, and the methods without a
        // constraint have delta = 1
        let chance_dual_step = match self {
            Method::Cpo | Method::MarlVanilla | Method::NoConstraint => 0.0,
            _ => base.chance_dual_step,
        };
        Some(TrainConfig { lambda, objective, select_checkpoint: select, chance_dual_step, ..base.clone() })
    }
}

/// A domain ready for the experiment.
pub struct Domain {
    /// Short name (`finance`, `medical`, `medical-mimic4-demo`, `education`).
    pub name: String,
    /// What the data is, for the report (e.g. "real: SUPPORT2" or "SYNTHETIC").
    pub provenance: String,
    /// The samples.
    pub dataset: Dataset,
    /// How Task Efficiency and the domain's hypotheses are computed.
    pub kind: DomainKind,
}

/// Domain-specific evaluation.
pub enum DomainKind {
    /// TE from a back-test (normalised Sharpe); H-Fin-1 and H-Fin-2.
    Finance {
        /// Per-day market data.
        market: Box<Market>,
        /// Domain options.
        options: FinanceOptions,
    },
    /// TE = expected agreement; H-Med-1 (risk = acuity).
    Medical,
    /// TE = normalised knowledge gain; H-Edu-1 and H-Edu-2 (risk = at-risk flag).
    Education,
}

/// Which domains to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainChoice {
    /// Finance, medical (with the MIMIC-IV demo check) and education.
    All,
    /// S&P 500 (real).
    Finance,
    /// SUPPORT2 (real) and the MIMIC-IV demo check (real).
    Medical,
    /// ASSISTments-format (synthetic).
    Education,
}

/// Loads the chosen domains from the embedded data (education: generated, with small sizes
/// when `quick`).
pub fn load_domains(choice: DomainChoice, quick: bool) -> Result<Vec<Domain>, TrainError> {
    let mut domains = Vec::new();
    if matches!(choice, DomainChoice::All | DomainChoice::Finance) {
        let options = FinanceOptions::default();
        let f = finance::load_embedded(&options)?;
        domains.push(Domain {
            name: "finance".into(),
            provenance: "real: 20 S&P 500 constituents, 2010-2022 (skfolio, BSD-3)".into(),
            dataset: f.dataset,
            kind: DomainKind::Finance { market: Box::new(f.market), options },
        });
    }
    if matches!(choice, DomainChoice::All | DomainChoice::Medical) {
        let support2 = crate::medical::load_support2(crate::medical::EMBEDDED_SUPPORT2, None)?;
        let share = support2.high_acuity_share;
        domains.push(Domain {
            name: "medical".into(),
            provenance: format!(
                "real: SUPPORT2, {} ICU-grade patients with an APACHE III score (UCI #880, CC BY 4.0); high acuity = aps > {:.1}",
                support2.dataset.train.len + support2.dataset.validation.len + support2.dataset.test.len,
                support2.acuity_threshold
            ),
            dataset: support2.dataset,
            kind: DomainKind::Medical,
        });
        let demo = crate::medical::load_demo(&crate::medical::EMBEDDED_DEMO, share)?;
        domains.push(Domain {
            name: "medical-mimic4-demo".into(),
            provenance: format!(
                "real: MIMIC-IV demo, 310 hospitalisations (ODbL); high acuity = ICU stay > {:.1} h",
                demo.acuity_threshold
            ),
            dataset: demo.dataset,
            kind: DomainKind::Medical,
        });
    }
    if matches!(choice, DomainChoice::All | DomainChoice::Education) {
        let options = if quick {
            crate::education::EducationOptions::quick()
        } else {
            crate::education::EducationOptions::default()
        };
        let e = crate::education::load(&options).map_err(TrainError::Education)?;
        domains.push(Domain {
            name: "education".into(),
            provenance: format!(
                "SYNTHETIC: generated ASSISTments skill-builder format, {} students, {} interactions",
                e.students, e.interactions
            ),
            dataset: e.dataset,
            kind: DomainKind::Education,
        });
    }
    Ok(domains)
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentConfig {
    /// Sizes and step sizes shared by every trained method (delta is set per run).
    pub train: TrainConfig,
    /// The delta sweep of SEA.
    pub deltas: Vec<f64>,
    /// The delta at which single-delta hypotheses are evaluated (the paper's default 0.05).
    pub headline_delta: f64,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Dual step size of the CPO-style multiplier.
    pub cpo_dual_step: f64,
    /// Theorem 4.4 sweep (F3) and the convergence run (F4), per domain, first seed.
    pub theory: TheoryConfig,
    /// Concurrent runs.
    pub jobs: usize,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            train: TrainConfig { width: 32, outer_steps: 300, log_validation: false, ..TrainConfig::default() },
            deltas: vec![0.01, 0.05, 0.10, 0.20, 0.30],
            headline_delta: 0.05,
            seeds: vec![0, 1, 2],
            cpo_dual_step: 1.0,
            theory: TheoryConfig {
                train: TrainConfig { width: 32, log_validation: false, ..TrainConfig::default() },
                sweep_outer_steps: 300,
                convergence_samples: 512,
                convergence_steps: 200,
                reference_steps: 4000,
                ..TheoryConfig::default()
            },
            jobs: 2,
        }
    }
}

impl ExperimentConfig {
    /// Small sizes for tests and `--quick`.
    pub fn quick() -> Self {
        let train = TrainConfig {
            width: 16,
            batch: 64,
            inner_steps: 5,
            outer_steps: 8,
            log_validation: false,
            ..TrainConfig::default()
        };
        ExperimentConfig {
            train: train.clone(),
            seeds: vec![0, 1],
            theory: TheoryConfig {
                train,
                sweep_outer_steps: 5,
                convergence_samples: 64,
                convergence_steps: 20,
                reference_steps: 200,
                ..TheoryConfig::default()
            },
            ..ExperimentConfig::default()
        }
    }

    /// Checks the configuration before any work starts.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.train.validate()?;
        self.theory.validate()?;
        let bad = |m: &str| Err(TrainError::Config(m.into()));
        if self.deltas.is_empty() || self.deltas.iter().any(|d| !(0.0..=1.0).contains(d)) {
            return bad("deltas must be a non-empty list of values in [0, 1]");
        }
        if !self.deltas.contains(&self.headline_delta) {
            return bad("the headline delta must be one of the swept deltas");
        }
        if self.seeds.is_empty() || self.jobs == 0 {
            return bad("need at least one seed and one job");
        }
        if !(self.cpo_dual_step.is_finite() && self.cpo_dual_step > 0.0) {
            return bad("the CPO dual step must be positive");
        }
        Ok(())
    }
}

/// One run's measurements on the test split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResult {
    /// Domain name.
    pub domain: String,
    /// Method.
    pub method: Method,
    /// delta (None for methods that do not use it).
    pub delta: Option<f64>,
    /// Seed.
    pub seed: u64,
    /// Safety Rate, true indicator, deployed decisions.
    pub safety_rate: f64,
    /// Safety Rate, true indicator, of the stochastic policy (the sub-agent drawn from pi's
    /// softmax): the quantity SBD's chance constraint bounds by 1 - delta. Equal to
    /// `safety_rate` for the untrained methods, whose choice is deterministic.
    pub stochastic_safety_rate: f64,
    /// The chance constraint's multiplier nu at the end of training (NaN when untrained).
    pub chance_multiplier: f64,
    /// Task Efficiency (domain-specific).
    pub task_efficiency: f64,
    /// Mean Accountability Entropy (bits) of the two-agent chain (principal, sub-agent).
    pub accountability_entropy: f64,
    /// Mean alpha.
    pub mean_alpha: f64,
    /// Mean lambda (NaN for methods without one).
    pub mean_lambda: f64,
    /// Domain-specific figures (see [`Extras`]).
    pub extras: Extras,
    /// L_meta per outer step (SBD-family trained runs).
    pub l_meta: Vec<f64>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// Figures the domain hypotheses need, from one run.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Extras {
    /// Medical: Spearman rho of (acuity, lambda) on the test split and its p-value.
    pub acuity_lambda_spearman: Option<(f64, f64)>,
    /// Finance: mean lambda on the COVID window and on calm 2018, Cohen's d.
    pub covid_lambda: Option<(f64, f64, f64)>,
    /// Finance: max drawdown over the COVID window, and the risk-parity reference's.
    pub covid_drawdown: Option<(f64, f64)>,
    /// Education: mean alpha for at-risk and other decisions, Welch p-value.
    pub at_risk_alpha: Option<(f64, f64, f64)>,
    /// Education: Task Efficiency on the decisions of students not at risk.
    pub not_at_risk_efficiency: Option<f64>,
    /// lambda per test sample with the risk signal, binned into deciles of risk (for plots):
    /// (mean risk, mean lambda) per bin.
    pub lambda_by_risk: Vec<(f64, f64)>,
    /// Finance: (test day index, lambda) over the test split (for the COVID plot).
    pub lambda_over_time: Vec<(f64, f64)>,
    /// Trained methods: per context (0: the rest, 1: the high-risk region) on the test split,
    /// the stochastic policy's P(unsafe) with its one-sided 95% Clopper-Pearson upper bound,
    /// and the mean multiplier mu = lambda / (1 - lambda).
    pub contexts: Vec<crate::trainer::ContextStat>,
}

/// Shannon entropy in bits of a distribution (zero terms skipped).
pub fn entropy_bits(weights: &[f64]) -> f64 {
    weights.iter().filter(|&&w| w > 0.0).map(|&w| -w * w.log2()).sum()
}

/// Mean Accountability Entropy of decisions: each is the chain (principal, sub-agent) with
/// degree alpha, weighted by [`sbd_policy::sbd::accountability_weights`].
pub fn accountability_entropy(decisions: &[(usize, f64)]) -> f64 {
    if decisions.is_empty() {
        return 0.0;
    }
    decisions
        .iter()
        .map(|&(_, alpha)| entropy_bits(&sbd_policy::sbd::accountability_weights(&[alpha.clamp(0.0, 1.0)])))
        .sum::<f64>()
        / decisions.len() as f64
}

/// The Safety-Efficiency Area of (SR, TE) points: the area of `[0, 1]^2` they dominate.
pub fn safety_efficiency_area(points: &[(f64, f64)]) -> f64 {
    let mut points: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .map(|&(s, t)| (s.clamp(0.0, 1.0), t.clamp(0.0, 1.0)))
        .collect();
    // sweep by SR descending; each point adds the strip its TE raises above the best so far
    points.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut area = 0.0;
    let mut best_te = 0.0f64;
    for &(sr, te) in &points {
        if te > best_te {
            area += sr * (te - best_te);
            best_te = te;
        }
    }
    area
}

/// Safety Rate of decisions on a split with the true indicator.
pub fn safety_rate(split: &Split, decisions: &[(usize, f64)]) -> f64 {
    let n = decisions.len().min(split.len);
    if n == 0 {
        return 0.0;
    }
    decisions[..n].iter().enumerate().filter(|&(i, &(a, alpha))| objective::is_safe(split, i, a, alpha)).count()
        as f64
        / n as f64
}

impl Domain {
    /// Task Efficiency of decisions on the test split.
    pub fn task_efficiency(&self, decisions: &[(usize, f64)]) -> f64 {
        match &self.kind {
            DomainKind::Finance { market, options } => {
                finance::backtest(market, market.test_days.clone(), decisions, options).task_efficiency
            }
            DomainKind::Medical | DomainKind::Education => data::task_efficiency(&self.dataset.test, decisions),
        }
    }

    /// The domain's extra figures for decisions and lambdas on the test split (and, for the
    /// finance calm window, lambdas on the validation split).
    fn extras(&self, decisions: &[(usize, f64)], lambdas: &[f64], validation_lambdas: &[f64]) -> Extras {
        let test = &self.dataset.test;
        let risk: Vec<f64> = test.risk.iter().map(|&r| f64::from(r)).collect();
        let has_lambda = lambdas.iter().all(|l| l.is_finite()) && !lambdas.is_empty();
        let mut extras = Extras { lambda_by_risk: if has_lambda { binned(&risk, lambdas, 10) } else { vec![] }, ..Extras::default() };
        match &self.kind {
            DomainKind::Medical => {
                if has_lambda {
                    extras.acuity_lambda_spearman = Some(stats::spearman_test(&risk, lambdas));
                }
            }
            DomainKind::Education => {
                let (mut at_risk, mut others) = (Vec::new(), Vec::new());
                let mut not_at_risk = Vec::new();
                for (i, &(_, alpha)) in decisions.iter().enumerate() {
                    if risk[i] > 0.5 {
                        at_risk.push(alpha);
                    } else {
                        others.push(alpha);
                        not_at_risk.push(i);
                    }
                }
                let (_, p) = stats::welch_test(&others, &at_risk);
                extras.at_risk_alpha = Some((stats::mean_std(&at_risk).0, stats::mean_std(&others).0, p));
                let sub = test.select(&not_at_risk, self.dataset.state_dim);
                let sub_decisions: Vec<(usize, f64)> = not_at_risk.iter().map(|&i| decisions[i]).collect();
                if !not_at_risk.is_empty() {
                    extras.not_at_risk_efficiency = Some(data::task_efficiency(&sub, &sub_decisions));
                }
            }
            DomainKind::Finance { market, options } => {
                let covid = market.days_between(finance::COVID_WINDOW.0, finance::COVID_WINDOW.1);
                let calm = market.days_between(finance::CALM_WINDOW.0, finance::CALM_WINDOW.1);
                if has_lambda {
                    let covid_l = window(lambdas, market.test_days.start, &covid);
                    let calm_l = window(validation_lambdas, market.validation_days.start, &calm);
                    extras.covid_lambda = Some((
                        stats::mean_std(&covid_l).0,
                        stats::mean_std(&calm_l).0,
                        stats::cohens_d(&covid_l, &calm_l),
                    ));
                    extras.lambda_over_time = lambdas.iter().enumerate().map(|(i, &l)| (i as f64, l)).collect();
                }
                let method = summary::figures("method", market, options, decisions, &covid);
                let parity: Vec<(usize, f64)> =
                    test.alpha_max.iter().map(|&cap| (2, f64::from(cap).min(1.0))).collect();
                let reference = summary::figures("risk parity", market, options, &parity, &covid);
                extras.covid_drawdown = Some((method.covid_max_drawdown, reference.covid_max_drawdown));
            }
        }
        extras
    }
}

fn window(values: &[f64], start: usize, range: &Range<usize>) -> Vec<f64> {
    let from = range.start.saturating_sub(start);
    let to = range.end.saturating_sub(start).min(values.len());
    values.get(from..to).unwrap_or_default().to_vec()
}

/// Means of `y` over `bins` quantile bins of `x`: (mean x, mean y) per bin.
fn binned(x: &[f64], y: &[f64], bins: usize) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..x.len().min(y.len())).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let per = order.len().div_ceil(bins.max(1)).max(1);
    order
        .chunks(per)
        .map(|chunk| {
            let n = chunk.len() as f64;
            (chunk.iter().map(|&i| x[i]).sum::<f64>() / n, chunk.iter().map(|&i| y[i]).sum::<f64>() / n)
        })
        .collect()
}

/// One unit of work.
#[derive(Debug, Clone, Copy)]
struct Job {
    domain: usize,
    method: Method,
    delta: Option<f64>,
    seed: u64,
}

/// MaAS-style: the (sub-agent, alpha) with the lowest mean training cost among those whose
/// training Safety Rate is at least `1 - delta` (the safest when none is).
pub fn maas_choice(train: &Split, delta: f64) -> (usize, f64) {
    let agents = train.agents();
    let mut best: Option<((usize, f64), f64)> = None;
    let mut safest: Option<((usize, f64), f64)> = None;
    for agent in 0..agents {
        for step in 0..=10 {
            let alpha = f64::from(step) / 10.0;
            let decisions = vec![(agent, alpha); train.len];
            let sr = safety_rate(train, &decisions);
            let cost = 1.0 - data::task_efficiency(train, &decisions);
            if sr >= 1.0 - delta && best.is_none_or(|(_, c)| cost < c) {
                best = Some(((agent, alpha), cost));
            }
            if safest.is_none_or(|(_, s)| sr > s) {
                safest = Some(((agent, alpha), sr));
            }
        }
    }
    best.or(safest).map_or((0, 0.0), |(choice, _)| choice)
}

fn run_job(domain: &Domain, job: Job, config: &ExperimentConfig) -> Result<RunResult, TrainError> {
    let started = Instant::now();
    let data = &domain.dataset;
    let delta = job.delta.unwrap_or(1.0);
    let base = TrainConfig { seed: job.seed, ..config.train.clone() };
    let mut contexts = Vec::new();
    let (decisions, lambdas, validation_lambdas, l_meta, stochastic, chance) =
        match job.method.train_config(&base, delta, config.cpo_dual_step) {
            None => {
                let decisions = match job.method {
                    Method::Maas => vec![maas_choice(&data.train, delta); data.test.len],
                    _ => {
                        let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
                        let agents = data.sub_agents.len();
                        (0..data.test.len).map(|_| (rng.random_range(0..agents), 0.5)).collect()
                    }
                };
                let sr = safety_rate(&data.test, &decisions);
                (decisions, vec![f64::NAN; data.test.len], vec![], vec![], sr, f64::NAN)
            }
            Some(train) => {
                let mut trainer = Trainer::new(data, train.clone(), CpuBackend)?;
                let mut l_meta = Vec::with_capacity(train.outer_steps);
                for _ in 0..train.outer_steps {
                    l_meta.push(trainer.step()?.l_meta);
                }
                trainer.restore_selected();
                let test = trainer.evaluate(&data.test);
                let validation = trainer.evaluate(&data.validation);
                let lambdas =
                    if train.lambda == LambdaMode::Learned { test.lambdas } else { vec![f64::NAN; data.test.len] };
                let chance = trainer.chance_multiplier();
                contexts = trainer.context_stats(&data.test);
                (test.decisions, lambdas, validation.lambdas, l_meta, test.expected_safety_rate, chance)
            }
        };
    let valid_lambdas: Vec<f64> = lambdas.iter().copied().filter(|l| l.is_finite()).collect();
    Ok(RunResult {
        domain: domain.name.clone(),
        method: job.method,
        delta: job.delta,
        seed: job.seed,
        safety_rate: safety_rate(&data.test, &decisions),
        stochastic_safety_rate: stochastic,
        chance_multiplier: chance,
        task_efficiency: domain.task_efficiency(&decisions),
        accountability_entropy: accountability_entropy(&decisions),
        mean_alpha: decisions.iter().map(|d| d.1).sum::<f64>() / decisions.len().max(1) as f64,
        mean_lambda: if valid_lambdas.is_empty() { f64::NAN } else { stats::mean_std(&valid_lambdas).0 },
        extras: Extras { contexts, ..domain.extras(&decisions, &lambdas, &validation_lambdas) },
        l_meta,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The section 6.6 checks used by F3 and F4, on one domain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainTheory {
    /// Domain name.
    pub domain: String,
    /// Theorem 4.4 sweep (F3).
    pub monotonicity: Monotonicity,
    /// Theorem 4.6 inner-loop convergence (F4).
    pub convergence: Convergence,
}

/// Every run and check of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Results {
    /// Every run.
    pub runs: Vec<RunResult>,
    /// F3 and F4 per domain.
    pub theory: Vec<DomainTheory>,
    /// Wall-clock seconds of the whole experiment.
    pub seconds: f64,
}

/// Runs every (domain, method, delta, seed), `config.jobs` at a time, then the F3/F4 checks.
pub fn run(
    domains: &[Domain],
    config: &ExperimentConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Results, TrainError> {
    config.validate()?;
    let started = Instant::now();
    let mut jobs = Vec::new();
    for (d, _) in domains.iter().enumerate() {
        for &seed in &config.seeds {
            for method in Method::ALL {
                if method.uses_delta() {
                    jobs.extend(config.deltas.iter().map(|&delta| Job { domain: d, method, delta: Some(delta), seed }));
                } else {
                    jobs.push(Job { domain: d, method, delta: None, seed });
                }
            }
        }
    }
    // theory checks run as jobs too, so they share the pool
    let total = jobs.len() + domains.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tick = || {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(n, total);
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.jobs)
        .build()
        .map_err(|e| TrainError::Config(format!("cannot start {} worker threads: {e}", config.jobs)))?;
    let (runs, theory) = pool.install(|| {
        let runs: Result<Vec<RunResult>, TrainError> = jobs
            .par_iter()
            .map(|&job| {
                let result = run_job(&domains[job.domain], job, config);
                tick();
                result
            })
            .collect();
        let theory: Result<Vec<DomainTheory>, TrainError> = domains
            .par_iter()
            .map(|domain| {
                let mut theory_config = config.theory.clone();
                theory_config.train.seed = config.seeds[0];
                let monotonicity = theory::monotonicity(&domain.dataset, &theory_config, &CpuBackend, |_, _| {})?;
                let convergence = theory::convergence(&domain.dataset, &theory_config, &CpuBackend, |_, _| {})?;
                tick();
                Ok(DomainTheory { domain: domain.name.clone(), monotonicity, convergence })
            })
            .collect();
        (runs, theory)
    });
    Ok(Results { runs: runs?, theory: theory?, seconds: started.elapsed().as_secs_f64() })
}

/// A mean and standard deviation over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub std: f64,
}

impl MeanStd {
    fn of(values: &[f64]) -> MeanStd {
        let (mean, std) = stats::mean_std(values);
        MeanStd { mean, std }
    }
}

/// One method's figures on one domain, over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodSummary {
    /// Method.
    pub method: Method,
    /// Its name.
    pub name: String,
    /// Role in the design.
    pub role: Role,
    /// SR at the headline delta.
    pub safety_rate: MeanStd,
    /// TE at the headline delta.
    pub task_efficiency: MeanStd,
    /// Accountability Entropy at the headline delta.
    pub accountability_entropy: MeanStd,
    /// Mean alpha at the headline delta.
    pub mean_alpha: MeanStd,
    /// Mean lambda at the headline delta (NaN for methods without a per-state lambda).
    pub mean_lambda: MeanStd,
    /// SEA over the delta sweep, per seed then summarised.
    pub sea: MeanStd,
    /// SEA per seed.
    pub sea_per_seed: Vec<f64>,
    /// (delta, mean SR, mean TE) per delta, for the Pareto plot.
    pub curve: Vec<(f64, f64, f64)>,
}

/// A hypothesis or criterion with its statistic and verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Identifier (H-Med-1, F1, ...).
    pub id: String,
    /// Domain it is evaluated on.
    pub domain: String,
    /// The paper's criterion, in words.
    pub criterion: String,
    /// What was measured.
    pub measured: String,
    /// For hypotheses: supported. For F1-F4: true when the framework is NOT falsified.
    pub holds: bool,
}

/// Per-domain summaries and every verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Domain -> method summaries, in [`Method::ALL`] order.
    pub domains: Vec<(String, Vec<MethodSummary>)>,
    /// Every hypothesis and falsifiability verdict.
    pub verdicts: Vec<Verdict>,
}

fn runs_of<'a>(results: &'a Results, domain: &str, method: Method) -> Vec<&'a RunResult> {
    results.runs.iter().filter(|r| r.domain == domain && r.method == method).collect()
}

/// The run of a method at a delta (methods without delta answer for every delta).
fn at_delta<'a>(runs: &[&'a RunResult], delta: f64, seed: u64) -> Option<&'a RunResult> {
    runs.iter().copied().find(|r| r.seed == seed && r.delta.is_none_or(|d| d == delta))
}

/// Summarises runs and evaluates every hypothesis.
pub fn analyse(results: &Results, domains: &[Domain], config: &ExperimentConfig) -> Analysis {
    let headline = config.headline_delta;
    let mut summaries = Vec::new();
    for domain in domains {
        let mut list = Vec::new();
        for method in Method::ALL {
            let runs = runs_of(results, &domain.name, method);
            let at: Vec<&RunResult> = config.seeds.iter().filter_map(|&s| at_delta(&runs, headline, s)).collect();
            let pick = |f: fn(&RunResult) -> f64| MeanStd::of(&at.iter().map(|r| f(r)).collect::<Vec<_>>());
            let sea_per_seed: Vec<f64> = config
                .seeds
                .iter()
                .map(|&seed| {
                    let points: Vec<(f64, f64)> = config
                        .deltas
                        .iter()
                        .filter_map(|&d| at_delta(&runs, d, seed).map(|r| (d, r)))
                        // feasible points only (issue 16): SR >= 1 - delta at the delta of the run
                        .filter(|(d, r)| r.safety_rate >= 1.0 - d)
                        .map(|(_, r)| (r.safety_rate, r.task_efficiency))
                        .collect();
                    safety_efficiency_area(&points)
                })
                .collect();
            let curve = config
                .deltas
                .iter()
                .map(|&d| {
                    let rs: Vec<&RunResult> = config.seeds.iter().filter_map(|&s| at_delta(&runs, d, s)).collect();
                    let mean = |f: fn(&RunResult) -> f64| stats::mean_std(&rs.iter().map(|r| f(r)).collect::<Vec<_>>()).0;
                    (d, mean(|r| r.safety_rate), mean(|r| r.task_efficiency))
                })
                .collect();
            list.push(MethodSummary {
                method,
                name: method.name().into(),
                role: method.role(),
                safety_rate: pick(|r| r.safety_rate),
                task_efficiency: pick(|r| r.task_efficiency),
                accountability_entropy: pick(|r| r.accountability_entropy),
                mean_alpha: pick(|r| r.mean_alpha),
                mean_lambda: pick(|r| r.mean_lambda),
                sea: MeanStd::of(&sea_per_seed),
                sea_per_seed,
                curve,
            });
        }
        summaries.push((domain.name.clone(), list));
    }
    let mut verdicts = Vec::new();
    let sea = |domain: &str, method: Method| -> MeanStd {
        summaries
            .iter()
            .find(|(d, _)| d == domain)
            .and_then(|(_, l)| l.iter().find(|m| m.method == method))
            .map_or(MeanStd { mean: f64::NAN, std: f64::NAN }, |m| m.sea)
    };
    let headline_runs = |domain: &str, method: Method| -> Vec<&RunResult> {
        let runs = runs_of(results, domain, method);
        config.seeds.iter().filter_map(|&s| at_delta(&runs, headline, s)).collect()
    };
    let fmt_seeds = |values: &[f64], digits: usize| -> String {
        values.iter().map(|v| format!("{v:.digits$}")).collect::<Vec<_>>().join(", ")
    };

    for domain in domains {
        let name = domain.name.as_str();
        let sbd = sea(name, Method::Sbd);
        // F1 / H-Med-2: strictly higher mean SEA than every non-ablated baseline
        let mut beaten = Vec::new();
        let mut lost = Vec::new();
        for b in Method::BASELINES {
            let other = sea(name, b);
            let entry = format!("{} {:.4}", b.name(), other.mean);
            if sbd.mean > other.mean { beaten.push(entry) } else { lost.push(entry) }
        }
        let f1 = format!(
            "SEA(SBD) {:.4} +/- {:.4}; higher than {}; not higher than {}",
            sbd.mean,
            sbd.std,
            if beaten.is_empty() { "none".into() } else { beaten.join(", ") },
            if lost.is_empty() { "none".into() } else { lost.join(", ") }
        );
        verdicts.push(Verdict {
            id: "F1".into(),
            domain: name.into(),
            criterion: "falsified if SBD's SEA is not strictly higher than every non-ablated baseline's".into(),
            measured: f1.clone(),
            holds: lost.is_empty(),
        });
        if matches!(domain.kind, DomainKind::Medical) {
            verdicts.push(Verdict {
                id: "H-Med-2".into(),
                domain: name.into(),
                criterion: "SBD's SEA strictly higher than each of the four non-ablated baselines".into(),
                measured: f1,
                holds: lost.is_empty(),
            });
        }
        // F2
        let no_outer = sea(name, Method::NoOuter);
        let gap = (sbd.mean - no_outer.mean) / sbd.mean.abs().max(1e-12);
        verdicts.push(Verdict {
            id: "F2".into(),
            domain: name.into(),
            criterion: "falsified if SBD-NoOuter's SEA is within 1% of SBD's, or above it (the outer loop is then unnecessary)"
                .into(),
            measured: format!(
                "SEA(SBD) {:.4}, SEA(SBD-NoOuter) {:.4}: SBD ahead by {:+.2}%",
                sbd.mean,
                no_outer.mean,
                100.0 * gap
            ),
            holds: gap > 0.01,
        });
        // F3 / F4
        if let Some(t) = results.theory.iter().find(|t| t.domain == name) {
            let m = &t.monotonicity;
            verdicts.push(Verdict {
                id: "F3".into(),
                domain: name.into(),
                criterion: "falsified if P(safe) is not monotone in a fixed lambda: Spearman(lambda, test SR) > 0.9 required; a constant SR leaves it undefined, which does not meet it".into(),
                measured: format!(
                    "lambda {:?}: SR {} (Spearman {:.3}); expected P(safe) {} (Spearman {:.3})",
                    m.lambdas,
                    fmt_seeds(&m.safety_rates, 4),
                    m.spearman,
                    fmt_seeds(&m.expected_safety_rates, 4),
                    m.spearman_expected
                ),
                holds: m.pass,
            });
            let c = &t.convergence;
            verdicts.push(Verdict {
                id: "F4".into(),
                domain: name.into(),
                criterion: "falsified if ||pi_t - pi*||^2 does not decay linearly (log-linear fit, R^2 > 0.95); the rate log(1 - eta mu) of Theorem 4.6 is reported, not tested".into(),
                measured: format!(
                    "log-distance slope {:.5} per step, R^2 {:.3}; the theorem's rate {:.5} (measured / predicted {:.1})",
                    c.fit.slope,
                    c.fit.r_squared,
                    c.predicted_slope,
                    c.fit.slope / c.predicted_slope
                ),
                holds: c.pass,
            });
        }
        // ablation ordering, per domain (the cross-domain count is added below)
        let fixed = sea(name, Method::FixedLambda);
        verdicts.push(Verdict {
            id: "Ablation order".into(),
            domain: name.into(),
            criterion: "SEA(SBD) > SEA(SBD-FixedLambda) > SEA(SBD-NoOuter)".into(),
            measured: format!("{:.4} > {:.4} > {:.4}", sbd.mean, fixed.mean, no_outer.mean),
            holds: sbd.mean > fixed.mean && fixed.mean > no_outer.mean,
        });

        let sbd_runs = headline_runs(name, Method::Sbd);
        match &domain.kind {
            DomainKind::Medical => {
                let tests: Vec<(f64, f64)> = sbd_runs.iter().filter_map(|r| r.extras.acuity_lambda_spearman).collect();
                let holds = !tests.is_empty() && tests.iter().all(|&(rho, p)| rho > 0.0 && p < 0.01);
                verdicts.push(Verdict {
                    id: "H-Med-1".into(),
                    domain: name.into(),
                    criterion: "Spearman(acuity, lambda) on the test split positive with p < 0.01 (every seed)".into(),
                    measured: format!(
                        "rho per seed {}; p {}",
                        fmt_seeds(&tests.iter().map(|t| t.0).collect::<Vec<_>>(), 3),
                        tests.iter().map(|t| format!("{:.1e}", t.1)).collect::<Vec<_>>().join(", ")
                    ),
                    holds,
                });
            }
            DomainKind::Finance { .. } => {
                let l: Vec<(f64, f64, f64)> = sbd_runs.iter().filter_map(|r| r.extras.covid_lambda).collect();
                let holds = !l.is_empty() && l.iter().all(|&(c, k, d)| c - k >= 0.15 && d > 0.8);
                verdicts.push(Verdict {
                    id: "H-Fin-1".into(),
                    domain: name.into(),
                    criterion: "mean lambda on the COVID window exceeds calm 2018 by >= 0.15 with Cohen's d > 0.8".into(),
                    measured: format!(
                        "difference per seed {}; d {}",
                        fmt_seeds(&l.iter().map(|x| x.0 - x.1).collect::<Vec<_>>(), 3),
                        fmt_seeds(&l.iter().map(|x| x.2).collect::<Vec<_>>(), 2)
                    ),
                    holds,
                });
                let dd: Vec<(f64, f64)> = sbd_runs.iter().filter_map(|r| r.extras.covid_drawdown).collect();
                let holds = !dd.is_empty() && dd.iter().all(|&(m, r)| m <= r);
                verdicts.push(Verdict {
                    id: "H-Fin-2".into(),
                    domain: name.into(),
                    criterion: "SBD's COVID-window max drawdown no worse than the risk-parity baseline".into(),
                    measured: format!(
                        "SBD {} vs risk parity {}",
                        fmt_seeds(&dd.iter().map(|x| x.0).collect::<Vec<_>>(), 3),
                        dd.first().map_or("-".into(), |x| format!("{:.3}", x.1))
                    ),
                    holds,
                });
            }
            DomainKind::Education => {
                let a: Vec<(f64, f64, f64)> = sbd_runs.iter().filter_map(|r| r.extras.at_risk_alpha).collect();
                let holds = !a.is_empty() && a.iter().all(|&(risk, other, p)| other - risk > 0.15 && p < 0.01);
                verdicts.push(Verdict {
                    id: "H-Edu-1".into(),
                    domain: name.into(),
                    criterion: "mean alpha lower for at-risk students by > 0.15, significant (Welch p < 0.01)".into(),
                    measured: format!(
                        "others - at-risk per seed {}; p {}",
                        fmt_seeds(&a.iter().map(|x| x.1 - x.0).collect::<Vec<_>>(), 3),
                        a.iter().map(|x| format!("{:.1e}", x.2)).collect::<Vec<_>>().join(", ")
                    ),
                    holds,
                });
                // paired by seed, like every single-delta verdict
                let marl = headline_runs(name, Method::MarlVanilla);
                let pairs: Vec<(f64, f64)> = sbd_runs
                    .iter()
                    .filter_map(|r| {
                        let theirs = marl.iter().find(|m| m.seed == r.seed)?.extras.not_at_risk_efficiency?;
                        Some((r.extras.not_at_risk_efficiency?, theirs))
                    })
                    .collect();
                let holds = !pairs.is_empty() && pairs.iter().all(|&(ours, theirs)| ours >= 0.95 * theirs);
                verdicts.push(Verdict {
                    id: "H-Edu-2".into(),
                    domain: name.into(),
                    criterion: "for students not at risk, SBD's TE within 5% of MARL-vanilla's or above (every seed)"
                        .into(),
                    measured: format!(
                        "SBD vs MARL-vanilla per seed: {}",
                        pairs
                            .iter()
                            .map(|(o, t)| format!("{o:.4} vs {t:.4} ({:+.1}%)", 100.0 * (o / t - 1.0)))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    holds,
                });
            }
        }
    }
    // SBD-AL (ours): its own claims, measured the same way for SBD
    for domain in domains {
        let name = domain.name.as_str();
        for method in [Method::SbdAl, Method::Sbd] {
            verdicts.extend(constraint_verdicts(results, name, method, config));
        }
        let (ours, sbd) = (sea(name, Method::SbdAl), sea(name, Method::Sbd));
        verdicts.push(Verdict {
            id: "AL-SEA".into(),
            domain: name.into(),
            criterion: "SBD-AL (ours) has a higher mean SEA than SBD (both over the delta sweep, deployed SR)".into(),
            measured: format!("SEA {:.4} ± {:.4} vs {:.4} ± {:.4}", ours.mean, ours.std, sbd.mean, sbd.std),
            holds: ours.mean > sbd.mean,
        });
    }
    // the MIMIC-IV demo is a second check of the medical domain, not a fourth domain
    let main: Vec<&str> = domains.iter().map(|d| d.name.as_str()).filter(|n| *n != "medical-mimic4-demo").collect();
    let ordered = verdicts
        .iter()
        .filter(|v| v.id == "Ablation order" && v.holds && main.contains(&v.domain.as_str()))
        .count();
    verdicts.push(Verdict {
        id: "Ablation order (6.5)".into(),
        domain: "all".into(),
        criterion: "the ordering holds on at least two of the three domains".into(),
        measured: format!("holds on {ordered} of {} domains ({})", main.len(), main.join(", ")),
        holds: ordered >= 2.min(main.len()),
    });
    Analysis { domains: summaries, verdicts }
}

/// The chance-constraint claims of issue 16 for one method on one domain: at the headline
/// delta every context's test P(unsafe) (stochastic policy) is within delta on every seed
/// (with the Clopper-Pearson bounds reported); and TE rises with delta (mean over seeds at the
/// largest delta above the smallest).
fn constraint_verdicts(
    results: &Results,
    domain: &str,
    method: Method,
    config: &ExperimentConfig,
) -> Vec<Verdict> {
    let runs = runs_of(results, domain, method);
    let headline: Vec<&RunResult> =
        runs.iter().copied().filter(|r| r.delta == Some(config.headline_delta)).collect();
    let mut cells = Vec::new();
    let mut within = !headline.is_empty();
    for r in &headline {
        for c in &r.extras.contexts {
            within &= c.unsafe_rate <= config.headline_delta;
            cells.push(format!(
                "seed {} ctx {}: {:.3} (95% UB {:.3}, mu {:.2}, n {})",
                r.seed,
                c.context,
                c.unsafe_rate + 0.0, // -0.0 prints as 0
                c.upper_bound,
                c.mean_multiplier,
                c.samples
            ));
        }
    }
    let te_at = |delta: f64| {
        let v: Vec<f64> = runs.iter().filter(|r| r.delta == Some(delta)).map(|r| r.task_efficiency).collect();
        stats::mean_std(&v).0
    };
    let (lo, hi) = (
        config.deltas.iter().copied().fold(f64::INFINITY, f64::min),
        config.deltas.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let curve: Vec<String> = config.deltas.iter().map(|&d| format!("{d}: {:.4}", te_at(d))).collect();
    vec![
        Verdict {
            id: "C-context".into(),
            domain: domain.into(),
            criterion: format!(
                "{}: every context's test P(unsafe) of the stochastic policy <= delta = {} (every seed)",
                method.name(),
                config.headline_delta
            ),
            measured: if cells.is_empty() { "no runs".into() } else { cells.join("; ") },
            holds: within,
        },
        Verdict {
            id: "C-delta".into(),
            domain: domain.into(),
            criterion: format!(
                "{}: TE rises with delta (mean over seeds, largest delta above smallest)",
                method.name()
            ),
            measured: curve.join(", "),
            holds: te_at(hi) > te_at(lo) + 1e-6,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sea_is_the_dominated_area() {
        assert_eq!(safety_efficiency_area(&[(0.5, 0.5)]), 0.25);
        // two non-dominated points: the union of their rectangles
        let area = safety_efficiency_area(&[(1.0, 0.2), (0.5, 0.6)]);
        assert!((area - (0.2 + 0.5 * 0.4)).abs() < 1e-12);
        // a dominated point adds nothing
        assert_eq!(safety_efficiency_area(&[(1.0, 0.5), (0.9, 0.4)]), 0.5);
        assert_eq!(safety_efficiency_area(&[]), 0.0);
    }

    #[test]
    fn accountability_entropy_is_one_bit_at_even_delegation() {
        assert!((accountability_entropy(&[(0, 0.5)]) - 1.0).abs() < 1e-12);
        assert_eq!(accountability_entropy(&[(0, 0.0), (1, 1.0)]), 0.0);
    }

    #[test]
    fn maas_takes_the_cheapest_choice_that_meets_the_constraint() {
        // agent 0 is cheap but unsafe above alpha 0.3 on half the samples; agent 1 is safe
        let split = Split {
            len: 2,
            states: vec![0.0; 2],
            unsafe_above: vec![0.3, 2.0, 2.0, 2.0],
            cost_at_zero: vec![1.0, 1.0, 1.0, 1.0],
            cost_at_one: vec![0.0, 0.5, 0.0, 0.5],
            alpha_max: vec![1.0; 2],
            risk: vec![0.0; 2],
            labels: vec![String::new(); 2],
        };
        assert_eq!(maas_choice(&split, 0.05), (1, 1.0));
        assert_eq!(maas_choice(&split, 0.5), (0, 1.0));
    }
}

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
//! | SBD-AL (ours) | mu_phi(s)/(1+mu_phi(s)), implicit hypergradient of a validation augmented Lagrangian | continuous | no | per-context chance constraints at delta, duals on a validation bound |
//! | SBD-AL-direct (ours, ablation) | mu_phi(s)/(1+mu_phi(s)), per-context dual ascent on a validation bound, no hypergradient | continuous | no | per-context chance constraints at delta |
//! | Tabular-context | one multiplier mu_k per context, no network, dual ascent on a validation bound | continuous | no | per-context chance constraints at delta |
//! | Global-Lagrangian | one multiplier for every state, dual ascent | continuous | yes | mean l_safe <= delta |
//! | Best-fixed-lambda | the constant lambda the random search picks | continuous | yes | penalty at delta |
//!
//! Every SBD-family method except SBD-NoConstraint also carries the chance constraint
//! `P(unsafe) <= delta` on the stochastic policy through its multiplier nu
//! ([`crate::engine::trainer::Trainer::chance_multiplier`]). SBD-AL is our variant, not the paper's
//! ([`LambdaMode::ContextAugmented`], [`crate::engine::augmented`]): phi descends the implicit
//! hypergradient of `L_eff + sum_k psi(g_k, y_k)` on validation, with a ridge of
//! [`SBD_AL_WEIGHT_DECAY`] on pi so that the inner optimum exists; its direct dual-ascent form
//! ([`LambdaMode::ContextDual`]) is the ablation SBD-AL-direct, and the tabular multipliers
//! ([`LambdaMode::TabularContext`]) the baseline without a network. All three run without the
//! projection, so their contextual risk is learnt rather than clipped away; the two SBD-AL
//! forms use Adam at ten times eta_out.
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

use std::time::Instant;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::checkpoint::Checkpoint;

use crate::engine::augmented::AugmentedConfig;
use crate::engine::backend::CpuBackend;
use crate::domains::data::{self, Split};
use crate::error::TrainError;
use crate::domains::finance::{self, FinanceOptions};
use crate::eval::domain::education::Education;
use crate::eval::domain::finance::Finance;
use crate::eval::domain::medical::Medical;
use crate::eval::domain::{Domain, DomainData};
use crate::engine::objective::{self, AlphaMode, Objective};
use crate::eval::stats;
use crate::eval::theory::{self, Convergence, Monotonicity, TheoryConfig};
use crate::engine::trainer::{LambdaMode, TrainConfig, Trainer};

/// SBD-AL's ridge on pi ([`Objective::weight_decay`]): small enough to leave the policy's
/// choices to the losses, large enough that the inner minimiser exists.
pub const SBD_AL_WEIGHT_DECAY: f64 = 1e-4;

/// The methods of section 6.1 and 6.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// multiplier, trained on the validation augmented Lagrangian with the implicit
    /// hypergradient ([`crate::engine::augmented`]).
    SbdAl,
    /// SBD-AL's cheaper direct dual-ascent form (an ablation of ours): phi ascends
    /// `E[(ucb(s) - delta) grad log mu_phi(s)]`, no hypergradient.
    SbdAlDirect,
    /// Tabular per-context multipliers: one dual variable per context, no network (issue 16
    /// item 3's baseline for SBD-AL).
    TabularContext,
    /// A global Lagrangian with SBD's own continuous alpha and projection: one multiplier for
    /// every state, dual ascent with a tuned step (issue 16 item 3).
    GlobalLagrangian,
    /// SBD without the outer loop at the constant lambda chosen by the random search on
    /// validation (the best fixed lambda).
    BestFixedLambda,
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
    pub const ALL: [Method; 14] = [
        Method::Sbd,
        Method::SbdAl,
        Method::SbdAlDirect,
        Method::TabularContext,
        Method::FixedAlpha,
        Method::Cpo,
        Method::GlobalLagrangian,
        Method::BestFixedLambda,
        Method::MarlVanilla,
        Method::Maas,
        Method::NoOuter,
        Method::DiscreteAlpha,
        Method::FixedLambda,
        Method::NoConstraint,
    ];

    /// The non-ablated baselines of F1 and H-Med-2 (the paper's four and issue 16's two).
    pub const BASELINES: [Method; 7] = [
        Method::FixedAlpha,
        Method::Cpo,
        Method::GlobalLagrangian,
        Method::TabularContext,
        Method::BestFixedLambda,
        Method::MarlVanilla,
        Method::Maas,
    ];

    /// The methods the random search tunes on validation (the others have nothing to tune,
    /// select on validation by construction, or are ablations that take SBD's values).
    pub const TUNED: [Method; 7] = [
        Method::Sbd,
        Method::SbdAl,
        Method::Cpo,
        Method::GlobalLagrangian,
        Method::TabularContext,
        Method::BestFixedLambda,
        Method::MarlVanilla,
    ];

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
            Method::SbdAlDirect => "SBD-AL-direct (ours)",
            Method::TabularContext => "Tabular-context",
            Method::GlobalLagrangian => "Global-Lagrangian",
            Method::BestFixedLambda => "Best-fixed-lambda",
        }
    }

    /// Baseline, ablation or SBD.
    pub fn role(self) -> Role {
        match self {
            Method::Sbd => Role::Proposed,
            Method::FixedAlpha
            | Method::Cpo
            | Method::MarlVanilla
            | Method::Maas
            | Method::GlobalLagrangian
            | Method::TabularContext
            | Method::BestFixedLambda => Role::Baseline,
            Method::SbdAl | Method::SbdAlDirect => Role::Ours,
            _ => Role::Ablation,
        }
    }

    /// Whether the method's result depends on delta.
    pub fn uses_delta(self) -> bool {
        !matches!(self, Method::FixedAlpha | Method::MarlVanilla | Method::NoConstraint)
    }

    /// The training configuration realising the method with its hyperparameters (None: no
    /// training). A `base` whose objective does not project ([`CapReading::Uncapped`], see
    /// [`ExperimentConfig::base`]) turns the projection off for the projected methods too.
    pub fn train_config(self, base: &TrainConfig, delta: f64, hyper: &Hyper) -> Option<TrainConfig> {
        let base = &TrainConfig {
            eta_in: hyper.eta_in,
            eta_out: hyper.eta_out,
            chance_dual_step: hyper.chance_dual_step,
            ..base.clone()
        };
        let cpo_dual_step = hyper.dual_step;
        let objective = |project: bool, penalty: f64, delta: f64, alpha: AlphaMode| Objective {
            project: project && base.objective.project,
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
            Method::GlobalLagrangian => (
                LambdaMode::Lagrangian { eta: cpo_dual_step },
                objective(true, rho, delta, AlphaMode::Continuous),
                false,
            ),
            Method::BestFixedLambda => (
                LambdaMode::Fixed(hyper.fixed_lambda),
                objective(true, rho, delta, AlphaMode::Continuous),
                false,
            ),
            Method::MarlVanilla => (LambdaMode::Fixed(0.0), objective(false, 0.0, 1.0, AlphaMode::Discrete), false),
            Method::NoOuter => (LambdaMode::Fixed(0.5), objective(true, rho, delta, AlphaMode::Continuous), false),
            Method::DiscreteAlpha => (LambdaMode::Learned, objective(true, rho, delta, AlphaMode::Discrete), false),
            Method::FixedLambda => (LambdaMode::Fixed(0.5), objective(true, rho, delta, AlphaMode::Continuous), true),
            Method::NoConstraint => (LambdaMode::Learned, objective(false, 0.0, 1.0, AlphaMode::Continuous), false),
            Method::SbdAl => {
                let objective = Objective {
                    weight_decay: SBD_AL_WEIGHT_DECAY,
                    ..objective(false, 0.0, delta, AlphaMode::Continuous)
                };
                return Some(TrainConfig {
                    lambda: LambdaMode::ContextAugmented(AugmentedConfig {
                        rho: hyper.rho,
                        logit_decay: hyper.logit_decay,
                        ..AugmentedConfig::sbd_al()
                    }),
                    objective,
                    chance_dual_step: 0.0,
                    outer_optimizer: crate::engine::trainer::OuterOptimizer::Adam,
                    eta_out: 10.0 * base.eta_out,
                    ..base.clone()
                });
            }
            Method::TabularContext => {
                return Some(TrainConfig {
                    lambda: LambdaMode::TabularContext { confidence: 0.95, eta: hyper.dual_step },
                    objective: objective(false, 0.0, delta, AlphaMode::Continuous),
                    chance_dual_step: 0.0,
                    ..base.clone()
                });
            }
            Method::SbdAlDirect => {
                let objective = objective(false, 0.0, delta, AlphaMode::Continuous);
                return Some(TrainConfig {
                    lambda: LambdaMode::ContextDual { confidence: 0.95 },
                    objective,
                    chance_dual_step: 0.0,
                    outer_optimizer: crate::engine::trainer::OuterOptimizer::Adam,
                    eta_out: 10.0 * base.eta_out,
                    ..base.clone()
                });
            }
        };
        // the chance constraint's multiplier (trainer::Trainer::chance_multiplier) belongs to the
        // SBD family; CPO-style has its own Lagrangian multiplier, and the methods without a
        // constraint have delta = 1
        let chance_dual_step = match self {
            Method::Cpo | Method::GlobalLagrangian | Method::MarlVanilla | Method::NoConstraint => 0.0,
            _ => base.chance_dual_step,
        };
        Some(TrainConfig { lambda, objective, select_checkpoint: select, chance_dual_step, ..base.clone() })
    }
}

/// The hyperparameters the random search sets (issue 16 item 3): step sizes, the chance
/// constraint's dual step, the Lagrangian methods' dual step and the constant lambda of
/// Best-fixed-lambda. A method reads only the ones it uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hyper {
    /// eta_in.
    pub eta_in: f64,
    /// eta_out (SBD-AL runs at ten times it).
    pub eta_out: f64,
    /// Dual step of the SBD family's chance constraint.
    pub chance_dual_step: f64,
    /// Dual step of CPO-style's and Global-Lagrangian's multiplier.
    pub dual_step: f64,
    /// Best-fixed-lambda's lambda.
    pub fixed_lambda: f64,
    /// SBD-AL's augmented-Lagrangian rho (also its duals' ascent step).
    pub rho: f64,
    /// SBD-AL's kappa, the weight of its prior on log mu ([`crate::engine::augmented`]).
    pub logit_decay: f64,
}

impl Hyper {
    /// The untuned values: the configuration's, dual step `dual_step`, lambda 0.5.
    pub fn defaults(base: &TrainConfig, dual_step: f64) -> Hyper {
        Hyper {
            eta_in: base.eta_in,
            eta_out: base.eta_out,
            chance_dual_step: base.chance_dual_step,
            dual_step,
            fixed_lambda: 0.5,
            rho: AugmentedConfig::sbd_al().rho,
            logit_decay: AugmentedConfig::sbd_al().logit_decay,
        }
    }

    /// One random-search candidate for `method` around `defaults`: log-uniform eta_in in
    /// [x/2.8, 2.8x]; where the method has them, log-uniform eta_out in [x/4, 4x], chance dual
    /// step in [0.5, 8], Lagrangian dual step in [0.1, 10], SBD-AL's rho in [2, 50] and kappa in
    /// [0.03, 0.3], and a uniform fixed lambda in [0.05, 0.95]. The rest keep their defaults.
    pub fn sample(method: Method, defaults: &Hyper, rng: &mut ChaCha8Rng) -> Hyper {
        let mut h = *defaults;
        let mut log_uniform = |lo: f64, hi: f64| (lo.ln() + rng.random_range(0.0..1.0) * (hi.ln() - lo.ln())).exp();
        h.eta_in = defaults.eta_in * log_uniform(1.0 / 2.8, 2.8);
        match method {
            Method::Sbd => {
                h.eta_out = defaults.eta_out * log_uniform(0.25, 4.0);
                h.chance_dual_step = log_uniform(0.5, 8.0);
            }
            Method::SbdAl => {
                h.eta_out = defaults.eta_out * log_uniform(0.25, 4.0);
                h.rho = log_uniform(2.0, 50.0);
                h.logit_decay = log_uniform(0.03, 0.3);
            }
            Method::Cpo | Method::GlobalLagrangian | Method::TabularContext => h.dual_step = log_uniform(0.1, 10.0),
            Method::BestFixedLambda => {
                h.chance_dual_step = log_uniform(0.5, 8.0);
                h.fixed_lambda = 0.05 + 0.9 * rng.random_range(0.0..1.0);
            }
            _ => {}
        }
        h
    }
}

/// One candidate of the random search and its validation score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuningTrial {
    /// Domain.
    pub domain: String,
    /// Method.
    pub method: Method,
    /// Candidate index (0: the defaults).
    pub candidate: usize,
    /// Its hyperparameters.
    pub hyper: Hyper,
    /// Validation Safety Rate (deployed decisions).
    pub safety_rate: f64,
    /// Validation P(safe) of the stochastic policy (sub-agent drawn from pi's softmax), the
    /// quantity the chance constraint bounds.
    pub stochastic_safety_rate: f64,
    /// Validation Task Efficiency.
    pub task_efficiency: f64,
    /// The score: TE where both Safety Rates are at least 1 - delta, otherwise the smaller
    /// minus 2 (every feasible candidate ranks above every infeasible one, and among
    /// infeasible ones the safest wins).
    pub score: f64,
}

/// The validation score of a candidate at `delta`. Feasibility asks both the deployed Safety
/// Rate and the stochastic policy's P(safe) to reach `1 - delta`: on the deployed rate alone
/// (1.0 for almost every candidate here) the search preferred the candidates whose pi had
/// moved least, whose stochastic policies broke the chance constraint (the sixth session's
/// finance width sweep found SBD-AL's chosen candidate at 0.38 unsafe where the defaults held).
pub fn tuning_score(safety_rate: f64, stochastic_safety_rate: f64, task_efficiency: f64, delta: f64) -> f64 {
    let safest = safety_rate.min(stochastic_safety_rate);
    if safest >= 1.0 - delta { task_efficiency } else { safest - 2.0 }
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
pub fn load_domains(choice: DomainChoice, quick: bool) -> Result<Vec<Box<dyn Domain>>, TrainError> {
    let mut domains: Vec<Box<dyn Domain>> = Vec::new();
    if matches!(choice, DomainChoice::All | DomainChoice::Finance) {
        let options = FinanceOptions::default();
        let f = finance::load_embedded(&options)?;
        domains.push(Box::new(Finance {
            data: DomainData {
                name: "finance".into(),
                provenance: "real: 20 S&P 500 constituents, 2010-2022 (skfolio, BSD-3)".into(),
                dataset: f.dataset,
            },
            market: f.market,
            options,
        }));
    }
    if matches!(choice, DomainChoice::All | DomainChoice::Medical) {
        let support2 = crate::domains::medical::load_support2(crate::domains::medical::EMBEDDED_SUPPORT2, None)?;
        let share = support2.high_acuity_share;
        domains.push(Box::new(Medical {
            data: DomainData {
                name: "medical".into(),
                provenance: format!(
                    "real: SUPPORT2, {} ICU-grade patients with an APACHE III score (UCI #880, CC BY 4.0); high acuity = aps > {:.1}",
                    support2.dataset.train.len + support2.dataset.validation.len + support2.dataset.test.len,
                    support2.acuity_threshold
                ),
                dataset: support2.dataset,
            },
        }));
        let demo = crate::domains::medical::load_demo(&crate::domains::medical::EMBEDDED_DEMO, share)?;
        domains.push(Box::new(Medical {
            data: DomainData {
                name: "medical-mimic4-demo".into(),
                provenance: format!(
                    "real: MIMIC-IV demo, 310 hospitalisations (ODbL); high acuity = ICU stay > {:.1} h",
                    demo.acuity_threshold
                ),
                dataset: demo.dataset,
            },
        }));
    }
    if matches!(choice, DomainChoice::All | DomainChoice::Education) {
        let options = if quick {
            crate::domains::education::EducationOptions::quick()
        } else {
            crate::domains::education::EducationOptions::default()
        };
        let e = crate::domains::education::load(&options).map_err(TrainError::Education)?;
        domains.push(Box::new(Education {
            data: DomainData {
                name: "education".into(),
                provenance: format!(
                    "SYNTHETIC: generated ASSISTments skill-builder format, {} students, {} interactions",
                    e.students, e.interactions
                ),
                dataset: e.dataset,
            },
        }));
    }
    Ok(domains)
}

/// Which reading of SBD 5.3's cap `alpha_max(s)` the projected methods train and decide
/// under (issue 16 item 1). The unprojected methods (CPO-style, MARL-vanilla, SBD-NoConstraint,
/// SBD-AL, SBD-AL-direct, Tabular-context) and the untrained baselines are the same under both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapReading {
    /// The paper's reading: each regime's cap is its own unsafe threshold (finance 0.8 while
    /// portfolio volatility is above 25%, medical 0.7 at high acuity, education 0.6 for
    /// at-risk students), so the projection removes the regime's risk before anything is
    /// learned.
    Threshold,
    /// Caps that are not the thresholds: the projection knows no regime (`alpha_max = 1`
    /// everywhere), so the regime's risk stays in the problem and the methods must learn it
    /// from the state, as the constraint asks.
    Uncapped,
}

impl CapReading {
    /// Whether the projected methods project.
    pub fn projects(self) -> bool {
        self == CapReading::Threshold
    }

    /// Short name for reports and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            CapReading::Threshold => "threshold",
            CapReading::Uncapped => "uncapped",
        }
    }
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
    /// Default dual step size of the CPO-style and Global-Lagrangian multipliers (candidate 0
    /// of their search).
    pub cpo_dual_step: f64,
    /// Random-search candidates per tuned method and domain ([`Method::TUNED`]), candidate 0
    /// the defaults; 1 runs the defaults without a search.
    pub tuning_budget: usize,
    /// Seed of the candidates and of the tuning runs' training (not one of `seeds`).
    pub tuning_seed: u64,
    /// Theorem 4.4 sweep (F3) and the convergence run (F4), per domain, first seed.
    pub theory: TheoryConfig,
    /// Whether to run the F3 and F4 checks at all (the rolling-origin evaluation does not: it
    /// asks how methods compare out of sample, not whether the theorems hold).
    pub theory_checks: bool,
    /// Concurrent runs.
    pub jobs: usize,
    /// The reading of the projection's caps.
    pub caps: CapReading,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            train: TrainConfig { width: 32, outer_steps: 300, log_validation: false, ..TrainConfig::default() },
            deltas: vec![0.01, 0.05, 0.10, 0.20, 0.30],
            headline_delta: 0.05,
            seeds: (0..10).collect(),
            cpo_dual_step: 1.0,
            tuning_budget: 4,
            tuning_seed: 1_000_003,
            theory: TheoryConfig {
                train: TrainConfig { width: 32, log_validation: false, ..TrainConfig::default() },
                sweep_outer_steps: 300,
                convergence_samples: 512,
                convergence_steps: 200,
                reference_steps: 4000,
                ..TheoryConfig::default()
            },
            theory_checks: true,
            jobs: 2,
            caps: CapReading::Threshold,
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
            tuning_budget: 2,
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

    /// The shared training configuration for `seed`, under the configured [`CapReading`].
    pub fn base(&self, seed: u64) -> TrainConfig {
        let mut base = TrainConfig { seed, ..self.train.clone() };
        base.objective.project = self.caps.projects();
        base
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
        if self.tuning_budget == 0 || self.seeds.contains(&self.tuning_seed) {
            return bad("the tuning budget must be at least 1 and the tuning seed not an evaluation seed");
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
    pub contexts: Vec<crate::engine::trainer::ContextStat>,
    /// The H-*-1 statistic ([`Domain::h1_statistic`]) of the trained method.
    pub h1: Option<f64>,
    /// Control: the same statistic with phi and pi at their initialisation (untrained).
    pub h1_init: Option<f64>,
    /// Control: the same statistic with the risk labels shuffled.
    pub h1_shuffled: Option<f64>,
    /// Finance, headline delta: moving-block bootstrap 95% interval of the test TE.
    pub te_block_interval: Option<stats::Interval>,
    /// Finance, headline delta: TE per consecutive window of the test split, from the one
    /// model (not refitted per window; the refitted evaluation is [`crate::eval::rolling`]).
    pub te_windows: Vec<f64>,
    /// Finance: the annualised Sharpe ratio of the test back-test, unclamped (TE is its
    /// clamped map, which saturates at Sharpe 2 in strong years).
    pub sharpe: Option<f64>,
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

/// Trains one candidate of the random search at the headline delta with the tuning seed and
/// scores it on validation.
fn run_tuning(domain: &dyn Domain, method: Method, candidate: usize, hyper: Hyper, config: &ExperimentConfig) -> Result<TuningTrial, TrainError> {
    let data = domain.dataset();
    let delta = config.headline_delta;
    let base = config.base(config.tuning_seed);
    let train = method
        .train_config(&base, delta, &hyper)
        .ok_or_else(|| TrainError::Config(format!("{} has nothing to tune", method.name())))?;
    let mut trainer = Trainer::new(data, train.clone(), CpuBackend)?;
    for _ in 0..train.outer_steps {
        trainer.step()?;
    }
    trainer.restore_selected();
    let validation = trainer.evaluate(&data.validation);
    let safety_rate = safety_rate(&data.validation, &validation.decisions);
    let stochastic_safety_rate = validation.expected_safety_rate;
    let task_efficiency = domain.validation_efficiency(&validation.decisions);
    Ok(TuningTrial {
        domain: domain.name().to_string(),
        method,
        candidate,
        hyper,
        safety_rate,
        stochastic_safety_rate,
        task_efficiency,
        score: tuning_score(safety_rate, stochastic_safety_rate, task_efficiency, delta),
    })
}

fn run_job(domain: &dyn Domain, job: Job, config: &ExperimentConfig, hyper: &Hyper) -> Result<RunResult, TrainError> {
    let started = Instant::now();
    let data = domain.dataset();
    let delta = job.delta.unwrap_or(1.0);
    let base = config.base(job.seed);
    let mut contexts = Vec::new();
    let mut h1_init = None;
    let (decisions, lambdas, validation_lambdas, l_meta, stochastic, chance) =
        match job.method.train_config(&base, delta, hyper) {
            None => {
                let decisions = match job.method {
                    // a design-time choice, selected on validation like every tuned method
                    Method::Maas => vec![maas_choice(&data.validation, delta); data.test.len],
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
                let learned = matches!(
                    train.lambda,
                    LambdaMode::Learned | LambdaMode::ContextDual { .. } | LambdaMode::ContextAugmented(_)
                );
                if learned {
                    // control: the H-*-1 statistic with phi (and pi) untrained
                    let (test, validation) = (trainer.evaluate(&data.test), trainer.evaluate(&data.validation));
                    h1_init = domain.h1_statistic(&test.decisions, &test.lambdas, &validation.lambdas, None);
                }
                let mut l_meta = Vec::with_capacity(train.outer_steps);
                for _ in 0..train.outer_steps {
                    l_meta.push(trainer.step()?.l_meta);
                }
                trainer.restore_selected();
                let test = trainer.evaluate(&data.test);
                let validation = trainer.evaluate(&data.validation);
                let lambdas = if learned { test.lambdas } else { vec![f64::NAN; data.test.len] };
                let chance = trainer.chance_multiplier();
                contexts = trainer.context_stats(&data.test);
                (test.decisions, lambdas, validation.lambdas, l_meta, test.expected_safety_rate, chance)
            }
        };
    let valid_lambdas: Vec<f64> = lambdas.iter().copied().filter(|l| l.is_finite()).collect();
    let h1 = domain.h1_statistic(&decisions, &lambdas, &validation_lambdas, None);
    let h1_shuffled = domain.h1_statistic(&decisions, &lambdas, &validation_lambdas, Some(job.seed ^ 0x5487_11ed));
    let (te_block_interval, te_windows) = if job.delta.is_none_or(|d| d == config.headline_delta) {
        domain.te_intervals(&decisions, 3, job.seed).map_or((None, vec![]), |(i, w)| (Some(i), w))
    } else {
        (None, vec![])
    };
    Ok(RunResult {
        domain: domain.name().to_string(),
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
        extras: Extras {
            contexts,
            h1,
            h1_init,
            h1_shuffled,
            te_block_interval,
            te_windows,
            ..domain.extras(&decisions, &lambdas, &validation_lambdas)
        },
        l_meta,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The section 6.6 checks used by F3 and F4, on one domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Every candidate of the random search, per domain and tuned method.
    pub tuning: Vec<TuningTrial>,
    /// The hyperparameters every run used, per (domain, method): the best candidate for the
    /// tuned methods, SBD's for its ablations, the defaults otherwise.
    pub chosen: Vec<(String, Method, Hyper)>,
    /// Wall-clock seconds of the random search.
    pub tuning_seconds: f64,
    /// Every run.
    pub runs: Vec<RunResult>,
    /// F3 and F4 per domain.
    pub theory: Vec<DomainTheory>,
    /// Wall-clock seconds of the whole experiment.
    pub seconds: f64,
}

/// Runs every (domain, method, delta, seed), `config.jobs` at a time, then the F3/F4 checks.
pub fn run(
    domains: &[Box<dyn Domain>],
    config: &ExperimentConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Results, TrainError> {
    run_checkpointed(domains, config, None, progress)
}

/// [`run`], recording every finished candidate, run and check in `checkpoint` and taking
/// those it already holds from it instead of running them again (each is deterministic in its
/// inputs, so the results are the same as an uninterrupted run's; `seconds` counts this
/// process only).
pub fn run_checkpointed(
    domains: &[Box<dyn Domain>],
    config: &ExperimentConfig,
    checkpoint: Option<&Checkpoint>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Results, TrainError> {
    config.validate()?;
    let started = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.jobs)
        .build()
        .map_err(|e| TrainError::Config(format!("cannot start {} worker threads: {e}", config.jobs)))?;
    // the random search on validation: the same budget and candidate stream for every tuned
    // method (issue 16 item 3)
    let defaults = Hyper::defaults(&config.train, config.cpo_dual_step);
    let mut candidates = Vec::new();
    for (d, domain) in domains.iter().enumerate() {
        for method in Method::TUNED {
            let mut rng = ChaCha8Rng::seed_from_u64(config.tuning_seed ^ ((d as u64) << 8) ^ (method as u64));
            for c in 0..config.tuning_budget {
                let hyper = if c == 0 { defaults } else { Hyper::sample(method, &defaults, &mut rng) };
                candidates.push((domain, method, c, hyper));
            }
        }
    }
    let tuning_total = if config.tuning_budget > 1 { candidates.len() } else { 0 };
    let tuning: Result<Vec<TuningTrial>, TrainError> = if config.tuning_budget > 1 {
        pool.install(|| {
            candidates
                .par_iter()
                .enumerate()
                .map(|(i, &(domain, method, c, hyper))| {
                    let trial = match checkpoint.and_then(|k| k.tuning(i)) {
                        Some(done) => Ok(done),
                        None => run_tuning(domain.as_ref(), method, c, hyper, config).and_then(|trial| {
                            checkpoint.map_or(Ok(()), |k| k.record_tuning(i, &trial))?;
                            Ok(trial)
                        }),
                    };
                    progress(i + 1, tuning_total);
                    trial
                })
                .collect()
        })
    } else {
        Ok(Vec::new())
    };
    let tuning = tuning?;
    let tuning_seconds = started.elapsed().as_secs_f64();
    let mut chosen = Vec::new();
    for domain in domains {
        let best = |method: Method| {
            tuning
                .iter()
                .filter(|t| t.domain == domain.name() && t.method == method)
                .max_by(|a, b| a.score.total_cmp(&b.score).then(b.candidate.cmp(&a.candidate)))
                .map_or(defaults, |t| t.hyper)
        };
        let sbd = best(Method::Sbd);
        for method in Method::ALL {
            let hyper = match method {
                m if Method::TUNED.contains(&m) => best(m),
                Method::NoOuter | Method::DiscreteAlpha | Method::FixedLambda | Method::NoConstraint => sbd,
                // the direct form is an ablation of SBD-AL: it takes SBD-AL's values
                Method::SbdAlDirect => best(Method::SbdAl),
                _ => defaults,
            };
            chosen.push((domain.name().to_string(), method, hyper));
        }
    }
    let hyper_of = |domain: &str, method: Method| {
        chosen.iter().find(|(d, m, _)| d == domain && *m == method).map_or(defaults, |c| c.2)
    };
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
    let theory_domains = if config.theory_checks { domains } else { &[] };
    let total = jobs.len() + theory_domains.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tick = || {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(n, total);
    };
    let (runs, theory) = pool.install(|| {
        let runs: Result<Vec<RunResult>, TrainError> = jobs
            .par_iter()
            .enumerate()
            .map(|(i, &job)| {
                let result = match checkpoint.and_then(|k| k.run(i)) {
                    Some(done) => Ok(done),
                    None => {
                        let domain = &domains[job.domain];
                        run_job(domain.as_ref(), job, config, &hyper_of(domain.name(), job.method)).and_then(|result| {
                            checkpoint.map_or(Ok(()), |k| k.record_run(i, &result))?;
                            Ok(result)
                        })
                    }
                };
                tick();
                result
            })
            .collect();
        let theory: Result<Vec<DomainTheory>, TrainError> = theory_domains
            .par_iter()
            .enumerate()
            .map(|(i, domain)| {
                if let Some(done) = checkpoint.and_then(|k| k.theory(i)) {
                    tick();
                    return Ok(done);
                }
                let mut theory_config = config.theory.clone();
                theory_config.train.seed = config.seeds[0];
                theory_config.train.objective.project = config.caps.projects();
                let monotonicity = theory::monotonicity(domain.dataset(), &theory_config, &CpuBackend, |_, _| {})?;
                let convergence = theory::convergence(domain.dataset(), &theory_config, &CpuBackend, |_, _| {})?;
                let theory = DomainTheory { domain: domain.name().to_string(), monotonicity, convergence };
                checkpoint.map_or(Ok(()), |k| k.record_theory(i, &theory))?;
                tick();
                Ok(theory)
            })
            .collect();
        (runs, theory)
    });
    Ok(Results {
        tuning,
        chosen,
        tuning_seconds,
        runs: runs?,
        theory: theory?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The current UTC time as RFC 3339 to the second (`YYYY-MM-DDTHH:MM:SSZ`), for report
/// headers; civil-from-days (Howard Hinnant's algorithm), so no date crate is needed.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_utc() {
        let now = super::utc_now();
        assert_eq!(now.len(), 20);
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }

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

    #[test]
    fn the_uncapped_reading_turns_off_every_projection_and_changes_nothing_else() {
        use super::{CapReading, ExperimentConfig, Hyper, Method};
        let threshold = ExperimentConfig::default();
        let uncapped = ExperimentConfig { caps: CapReading::Uncapped, ..ExperimentConfig::default() };
        let hyper = Hyper::defaults(&threshold.train, threshold.cpo_dual_step);
        let mut projected = 0;
        for method in Method::ALL {
            let (Some(a), Some(b)) = (
                method.train_config(&threshold.base(3), 0.05, &hyper),
                method.train_config(&uncapped.base(3), 0.05, &hyper),
            ) else {
                continue;
            };
            assert!(!b.objective.project, "{} still projects when uncapped", method.name());
            projected += usize::from(a.objective.project);
            // the reading changes the projection and nothing else
            let mut a_without = a.clone();
            a_without.objective.project = false;
            assert_eq!(a_without, b, "{}", method.name());
            assert_eq!(a.seed, 3);
        }
        // SBD, Global-Lagrangian, Best-fixed-lambda, NoOuter, DiscreteAlpha, FixedLambda
        assert_eq!(projected, 6);
    }
}

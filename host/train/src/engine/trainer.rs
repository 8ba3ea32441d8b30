//! Algorithm 1 of the SBD paper: the outer loop over phi around an inner loop over pi.

use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use sbd_policy::learned::{Dense, LearnedModel, Mlp, Provenance};
use serde::{Deserialize, Serialize};

use crate::engine::backend::Backend;
use crate::engine::bilevel::{BatchStats, Problem};
use crate::domains::data::{Dataset, Split, sample_indices};
use crate::error::TrainError;
use crate::engine::mlp::{self, Shape};
use crate::engine::objective::{self, Objective};

/// How lambda is produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LambdaMode {
    /// lambda_phi(s) from the meta-weight network, trained by the outer loop (SBD).
    Learned,
    /// A constant lambda and no outer loop (SBD-NoOuter, the monotonicity sweep).
    Fixed(f64),
    /// A Lagrangian method (CPO-style): one lambda for every state, `mu / (1 + mu)`, where the
    /// multiplier mu of the constraint `mean l_safe <= delta` rises by dual ascent,
    /// `mu <- max(0, mu + eta (mean l_safe - delta))` on each meta-batch. The inner loss
    /// `lambda l_safe + (1 - lambda) l_eff` is `l_eff + mu l_safe` scaled by `1 / (1 + mu)`.
    Lagrangian {
        /// Dual step size.
        eta: f64,
    },
    /// SBD-AL's direct dual-ascent form (ours, not the paper's): per-context chance
    /// constraints `c_k(pi) = P(unsafe | s in R_k) <= delta` over the domain's regimes
    /// ([`Split::context`]: the high-risk region and the rest), with lambda(s) the normalised
    /// learned multiplier `mu_phi(s) / (1 + mu_phi(s))`, `mu_phi = exp(phi's output)`. After each
    /// inner loop, `c_k` is measured on the whole validation split with the true indicator on
    /// the stochastic policy, and replaced by its one-sided Clopper-Pearson upper bound at
    /// `confidence`, so that a satisfied bound carries to unseen data; phi then takes one step
    /// of ascent on `sum_k (ucb_k - delta) mean_{s in R_k} log mu_phi(s)` (a multiplier rises
    /// where its constraint is violated and decays where it is slack). No hypergradient.
    ContextDual {
        /// Confidence of the upper bound on each context's unsafe rate (e.g. 0.95).
        confidence: f64,
    },
    /// SBD-AL (ours, not the paper's): lambda(s) = `mu_phi(s) / (1 + mu_phi(s))` trained on the
    /// validation split's augmented Lagrangian over the per-context chance constraints, with
    /// the hypergradient by implicit differentiation (see [`crate::engine::augmented`]).
    ContextAugmented(crate::engine::augmented::AugmentedConfig),
    /// Tabular per-context multipliers (a baseline for SBD-AL, issue 16 item 3): one
    /// multiplier `mu_k` per context and no network, `lambda(s) = mu_k / (1 + mu_k)` for `s` in
    /// context k, with `mu_k <- max(0, mu_k + eta (ucb_k - delta))` after each outer step on the
    /// validation split's Clopper-Pearson bound (the same measurement as SBD-AL's).
    TabularContext {
        /// Confidence of each context's upper bound.
        confidence: f64,
        /// Dual step size.
        eta: f64,
    },
}

/// The outer loop's update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OuterOptimizer {
    /// phi <- phi - eta_out g (Algorithm 1 line 22).
    Sgd,
    /// Adam (beta 0.9, 0.999) with step size eta_out.
    Adam,
}

/// Hyperparameters; the defaults are SBD section 6.1.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Seed of initialisation and sampling; a run is deterministic for a given seed.
    pub seed: u64,
    /// T_out.
    pub outer_steps: usize,
    /// T_in.
    pub inner_steps: usize,
    /// B (inner and meta batches).
    pub batch: usize,
    /// eta_out.
    pub eta_out: f64,
    /// eta_in.
    pub eta_in: f64,
    /// Hidden width of both networks.
    pub width: usize,
    /// Linear layers of phi (3 in the paper).
    pub phi_layers: usize,
    /// Linear layers of pi (4 in the paper).
    pub pi_layers: usize,
    /// Inner objective (surrogate temperature, projection, delta, penalty).
    pub objective: Objective,
    /// Learned or fixed lambda.
    pub lambda: LambdaMode,
    /// Outer update rule.
    pub outer_optimizer: OuterOptimizer,
    /// Keep the pi whose validation L_meta (at the current lambda) is lowest, for
    /// [`Trainer::restore_selected`] (SBD-FixedLambda's outer loop; see `experiment`).
    pub select_checkpoint: bool,
    /// Evaluate the validation split after every outer step for the log (SR and mean alpha;
    /// NaN in the log when off).
    pub log_validation: bool,
    /// Draw the outer meta-batch (Algorithm 1 line 17) from the validation split rather than
    /// the training split: the outer problem of a bilevel method is a validation objective
    /// (issue 16 found it drawn from the training split).
    pub meta_from_validation: bool,
    /// Step size of the multiplier nu of the chance constraint `P(unsafe) <= delta` (SBD eq. 4),
    /// measured with the true indicator on the stochastic policy (sub-agent drawn from pi's
    /// softmax) on each outer step's last inner batch; 0 leaves the constraint to the penalty
    /// alone. See [`Trainer::chance_multiplier`].
    pub chance_dual_step: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 0,
            outer_steps: 500,
            inner_steps: 50,
            batch: 256,
            eta_out: 1e-3,
            eta_in: 5e-4,
            width: 256,
            phi_layers: 3,
            pi_layers: 4,
            objective: Objective::default(),
            lambda: LambdaMode::Learned,
            outer_optimizer: OuterOptimizer::Sgd,
            select_checkpoint: false,
            log_validation: true,
            meta_from_validation: true,
            chance_dual_step: 2.0,
        }
    }
}

impl TrainConfig {
    /// Checks ranges before any work starts.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.inner_steps == 0 || self.batch == 0 || self.width == 0 {
            return bad("inner steps, batch and width must be positive");
        }
        if self.phi_layers < 2 || self.pi_layers < 2 {
            return bad("phi and pi need at least two layers");
        }
        if !(self.eta_in > 0.0 && self.eta_out > 0.0 && self.eta_in.is_finite() && self.eta_out.is_finite()) {
            return bad("learning rates must be positive and finite");
        }
        let o = &self.objective;
        let positive_temperature = o.temperature.is_finite() && o.temperature > 0.0;
        let usable_penalty = o.penalty.is_finite() && o.penalty >= 0.0;
        if !positive_temperature || !(0.0..=1.0).contains(&o.delta) || !usable_penalty {
            return bad("need temperature > 0, delta in [0, 1] and penalty >= 0");
        }
        if !(self.chance_dual_step.is_finite() && self.chance_dual_step >= 0.0) {
            return bad("the chance-constraint dual step must be finite and >= 0");
        }
        if let LambdaMode::Fixed(l) = self.lambda
            && !(0.0..=1.0).contains(&l)
        {
            return bad("a fixed lambda must lie in [0, 1]");
        }
        if let LambdaMode::ContextDual { confidence } = self.lambda
            && !(confidence > 0.0 && confidence < 1.0)
        {
            return bad("the context bound's confidence must lie in (0, 1)");
        }
        if let LambdaMode::Lagrangian { eta } | LambdaMode::TabularContext { eta, .. } = self.lambda
            && !(eta.is_finite() && eta > 0.0)
        {
            return bad("the dual step size must be positive and finite");
        }
        if let LambdaMode::TabularContext { confidence, .. } = self.lambda
            && !(confidence > 0.0 && confidence < 1.0)
        {
            return bad("the context bound's confidence must lie in (0, 1)");
        }
        if let LambdaMode::ContextAugmented(a) = self.lambda
            && !(a.confidence > 0.0 && a.confidence < 1.0 && a.rho.is_finite() && a.rho > 0.0 && a.neumann_terms > 0)
        {
            return bad("SBD-AL needs a confidence in (0, 1), rho > 0 and at least one Neumann term");
        }
        if let crate::engine::objective::AlphaMode::Fixed(c) = o.alpha
            && !(0.0..=1.0).contains(&c)
        {
            return bad("a fixed alpha must lie in [0, 1]");
        }
        Ok(())
    }
}

/// One outer step as logged (the training log's columns).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// 1-based outer step.
    pub step: usize,
    /// L_meta on the meta-batch (SBD eq. 3); for SBD-AL its own outer objective, L_out on the
    /// whole validation split ([`crate::engine::augmented`]).
    pub l_meta: f64,
    /// Mean surrogate safety loss on the meta-batch.
    pub l_safety: f64,
    /// Mean efficiency loss on the meta-batch.
    pub l_eff: f64,
    /// Safety Rate on the validation split, true indicator.
    pub safety_rate: f64,
    /// Mean lambda over the training samples this step's inner loop visited (the whole split
    /// when the batches cover it).
    pub mean_lambda: f64,
    /// Mean projected alpha on the validation split.
    pub mean_alpha: f64,
    /// Inner loss on the first and last inner mini-batch.
    pub inner_loss_first: f64,
    /// See `inner_loss_first`.
    pub inner_loss_last: f64,
    /// Norm of the hypergradient (0 without an outer loop).
    pub hypergradient_norm: f64,
    /// P(unsafe) of the stochastic policy on this step's last inner batch after the inner loop
    /// (true indicator), the quantity the chance constraint bounds by delta (NaN when the
    /// constraint is off).
    pub stochastic_unsafe: f64,
    /// The chance constraint's multiplier nu after this step.
    pub chance_multiplier: f64,
    /// Wall-clock seconds of this step.
    pub seconds: f64,
}

/// A trained policy's chance constraint on one context of a split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContextStat {
    /// Context (0: the rest, 1: the high-risk region; [`Split::context`]).
    pub context: usize,
    /// Samples in it.
    pub samples: usize,
    /// P(unsafe) of the stochastic policy, true indicator.
    pub unsafe_rate: f64,
    /// Its one-sided 95% Clopper-Pearson upper bound.
    pub upper_bound: f64,
    /// Mean multiplier `mu = lambda / (1 - lambda)` of the effective lambda, each capped at 1e6
    /// (NaN without one).
    pub mean_multiplier: f64,
}

/// One context's chance constraint as [`LambdaMode::ContextDual`] last measured it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ContextBound {
    /// Validation samples in the context.
    pub samples: usize,
    /// P(unsafe) of the stochastic policy on them.
    pub unsafe_rate: f64,
    /// Its one-sided Clopper-Pearson upper bound.
    pub upper_bound: f64,
}

/// A trained policy's behaviour on one split.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// P(safe) with the true indicator for the deployed decision (most probable sub-agent).
    pub safety_rate: f64,
    /// P(safe) with the true indicator under pi's sub-agent distribution:
    /// `mean_s sum_a p_a(s) 1[(s, a, alpha) safe]` (Definition 3.1's stochastic policy).
    pub expected_safety_rate: f64,
    /// Mean lambda.
    pub mean_lambda: f64,
    /// Mean projected alpha.
    pub mean_alpha: f64,
    /// (sub-agent, projected alpha) per sample.
    pub decisions: Vec<(usize, f64)>,
    /// lambda per sample.
    pub lambdas: Vec<f64>,
    /// How often each sub-agent was chosen.
    pub agent_counts: Vec<usize>,
}

/// Algorithm 1's state: both networks, the sampler and the outer optimiser.
pub struct Trainer<'a, B: Backend> {
    dataset: &'a Dataset,
    config: TrainConfig,
    backend: B,
    phi_shape: Shape,
    pi_shape: Shape,
    phi: Vec<f32>,
    pi: Vec<f32>,
    rng: ChaCha8Rng,
    step: usize,
    adam: Option<Adam>,
    /// The Lagrange multiplier mu of [`LambdaMode::Lagrangian`].
    multiplier: f64,
    /// The multiplier nu of the chance constraint (see [`Trainer::chance_multiplier`]).
    chance: f64,
    /// [`LambdaMode::ContextDual`]'s, [`LambdaMode::ContextAugmented`]'s and
    /// [`LambdaMode::TabularContext`]'s last measurement, per context.
    context_bounds: Vec<ContextBound>,
    /// [`LambdaMode::TabularContext`]'s multipliers mu_k, per context.
    context_duals: Vec<f64>,
    /// [`LambdaMode::ContextAugmented`]'s duals y_k and their controller's state.
    augmented_duals: crate::engine::augmented::Duals,
    /// [`LambdaMode::ContextAugmented`]'s last top direction of the inner Hessian.
    top_direction: Option<Vec<f64>>,
    /// The best validation L_meta so far and its pi (with `select_checkpoint`).
    selected: Option<(f64, Vec<f32>)>,
}

struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl<'a, B: Backend> Trainer<'a, B> {
    /// Initialises phi and pi from the seed.
    pub fn new(dataset: &'a Dataset, config: TrainConfig, backend: B) -> Result<Self, TrainError> {
        config.validate()?;
        let agents = dataset.sub_agents.len();
        if dataset.train.len == 0 || agents == 0 || dataset.train.agents() != agents {
            return Err(TrainError::Config("the training split is empty or has no sub-agents".into()));
        }
        let (phi_shape, pi_shape) = shapes(dataset.state_dim, agents, &config);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut phi = mlp::init(&phi_shape, &mut rng, 0.1);
        if let LambdaMode::ContextDual { .. } | LambdaMode::ContextAugmented(_) = config.lambda {
            // every multiplier starts near 0 (mu = e^-3, lambda 0.05): it rises only where a
            // constraint is violated
            let (_, bias) = phi_shape.offsets(phi_shape.layers() - 1);
            if let Some(b) = phi.get_mut(bias) {
                *b = -3.0;
            }
        }
        let pi = mlp::init(&pi_shape, &mut rng, 0.1);
        let adam = (config.outer_optimizer == OuterOptimizer::Adam).then(|| Adam {
            m: vec![0.0; phi.len()],
            v: vec![0.0; phi.len()],
            t: 0,
        });
        Ok(Trainer {
            dataset,
            config,
            backend,
            phi_shape,
            pi_shape,
            phi,
            pi,
            rng,
            step: 0,
            adam,
            multiplier: 0.0,
            chance: 0.0,
            context_bounds: Vec::new(),
            context_duals: vec![0.0; 2],
            augmented_duals: crate::engine::augmented::Duals::new(2),
            top_direction: None,
            selected: None,
        })
    }

    /// The backend's description.
    pub fn backend(&self) -> String {
        self.backend.description()
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// phi's and pi's parameters.
    pub fn parameters(&self) -> (&[f32], &[f32]) {
        (&self.phi, &self.pi)
    }

    /// phi's and pi's widths.
    pub fn shapes(&self) -> (&Shape, &Shape) {
        (&self.phi_shape, &self.pi_shape)
    }

    fn problem(&self) -> Problem<'_> {
        Problem {
            phi: &self.phi_shape,
            pi: &self.pi_shape,
            objective: &self.config.objective,
            split: &self.dataset.train,
        }
    }

    /// The multiplier nu >= 0 of the chance constraint `P(unsafe) <= delta`.
    ///
    /// SBD's inner problem (eq. 4) is `min E[lambda l_safe + (1 - lambda) l_eff]` subject to
    /// the constraint; its Lagrangian adds `nu (P(unsafe) - delta)`, whose l_safe part makes the
    /// inner loss `(lambda + nu) l_safe + (1 - lambda) l_eff`, that is
    /// `(1 + nu) [lambda' l_safe + (1 - lambda') l_eff]` with `lambda' = (lambda + nu) / (1 + nu)`.
    /// The inner loop therefore runs on `lambda'` (the backends need no change) with its step
    /// size unchanged (the factor `1 + nu` only rescales the step), and nu rises by dual ascent
    /// `nu <- max(0, nu + eta_nu (P(unsafe) - delta))` after each outer step. The constraint
    /// binds exactly when the lambda-weighted optimum is less safe than `1 - delta`.
    pub fn chance_multiplier(&self) -> f64 {
        self.chance
    }

    /// [`LambdaMode::ContextAugmented`]'s duals `y_k` per context (context 0: the rest, 1: the
    /// high-risk region); zeros in other modes.
    pub fn augmented_duals(&self) -> &[f64] {
        &self.augmented_duals.values
    }

    /// [`LambdaMode::ContextDual`]'s last per-context measurement on validation (context 0:
    /// the rest, 1: the high-risk region); empty in other modes.
    pub fn context_bounds(&self) -> &[ContextBound] {
        &self.context_bounds
    }

    /// `lambda' = (lambda + nu) / (1 + nu)` (see [`Trainer::chance_multiplier`]).
    fn with_chance(&self, lambda: f64) -> f64 {
        (lambda + self.chance) / (1.0 + self.chance)
    }

    /// The one lambda of the fixed and Lagrangian modes (None when phi produces it).
    pub fn constant_lambda(&self) -> Option<f64> {
        match self.config.lambda {
            LambdaMode::Fixed(l) => Some(l),
            LambdaMode::Lagrangian { .. } => Some(self.multiplier / (1.0 + self.multiplier)),
            LambdaMode::Learned
            | LambdaMode::ContextDual { .. }
            | LambdaMode::ContextAugmented(_)
            | LambdaMode::TabularContext { .. } => None,
        }
    }

    /// Replaces pi with the checkpoint of lowest validation L_meta (with `select_checkpoint`;
    /// otherwise, or before any step, nothing changes).
    pub fn restore_selected(&mut self) {
        if let Some((_, pi)) = self.selected.take() {
            self.pi = pi;
        }
    }

    /// lambda for the training samples the inner loop visits (detached: phi is fixed during
    /// the inner loop), in a vector over the whole split, and their mean. phi runs on the
    /// visited samples only when they are fewer than the split (the others are never read).
    fn train_lambdas(&self, batches: &[Vec<usize>]) -> (Vec<f32>, f64) {
        let len = self.dataset.train.len;
        match self.config.lambda {
            LambdaMode::Fixed(_) | LambdaMode::Lagrangian { .. } => {
                let l = self.constant_lambda().unwrap_or(0.5);
                (vec![self.with_chance(l) as f32; len], l)
            }
            LambdaMode::TabularContext { .. } => {
                let lambdas = self.tabular_lambdas(&self.dataset.train);
                let mean = lambdas.iter().sum::<f64>() / len.max(1) as f64;
                (lambdas.iter().map(|&l| self.with_chance(l) as f32).collect(), mean)
            }
            LambdaMode::Learned | LambdaMode::ContextDual { .. } | LambdaMode::ContextAugmented(_) => {
                let visited: usize = batches.iter().map(Vec::len).sum();
                let indices: Vec<usize> = if visited < len {
                    let mut seen = vec![false; len];
                    batches.iter().flatten().filter(|&&i| !std::mem::replace(&mut seen[i], true)).copied().collect()
                } else {
                    (0..len).collect()
                };
                let values = self.problem().lambdas(&self.phi, &indices).1;
                let mean = values.iter().map(|&l| f64::from(l)).sum::<f64>() / values.len().max(1) as f64;
                let mut lambdas = vec![0.0f32; len];
                for (&i, &l) in indices.iter().zip(&values) {
                    lambdas[i] = self.with_chance(f64::from(l)) as f32;
                }
                (lambdas, mean)
            }
        }
    }

    /// [`LambdaMode::TabularContext`]'s lambda for each sample of `split`.
    fn tabular_lambdas(&self, split: &Split) -> Vec<f64> {
        (0..split.len)
            .map(|i| {
                let mu = self.context_duals.get(split.context(i)).copied().unwrap_or(0.0);
                mu / (1.0 + mu)
            })
            .collect()
    }

    /// The per-context measurement of SBD-AL and the tabular baseline on the validation split.
    fn measure_contexts(&self, pi: &[f32], confidence: f64) -> Vec<ContextBound> {
        context_bounds(&Problem { split: &self.dataset.validation, ..self.problem() }, pi, confidence)
    }

    /// One outer iteration (Algorithm 1 lines 5-22).
    pub fn step(&mut self) -> Result<StepRecord, TrainError> {
        let started = Instant::now();
        self.step += 1;
        let len = self.dataset.train.len;
        let batches: Vec<Vec<usize>> = (0..self.config.inner_steps)
            .map(|_| sample_indices(&mut self.rng, len, self.config.batch))
            .collect();
        let (lambdas, mean_lambda) = self.train_lambdas(&batches);
        let meta_split = if self.config.meta_from_validation && self.dataset.validation.len > 0 {
            &self.dataset.validation
        } else {
            &self.dataset.train
        };
        let meta_batch = sample_indices(&mut self.rng, meta_split.len, self.config.batch);

        let mut pi = std::mem::take(&mut self.pi);
        let problem = Problem {
            phi: &self.phi_shape,
            pi: &self.pi_shape,
            objective: &self.config.objective,
            split: &self.dataset.train,
        };
        let inner = self.backend.inner_loop(&problem, &mut pi, &batches, &lambdas, self.config.eta_in);
        let inner = match inner {
            Ok(inner) => inner,
            Err(e) => {
                self.pi = pi;
                return Err(e);
            }
        };

        let (meta, hypergradient_norm) = match self.config.lambda {
            LambdaMode::Learned => {
                let last_batch = batches.last().map(Vec::as_slice).unwrap_or_default();
                // The inner loop ran on lambda' = (lambda + nu) / (1 + nu), whose derivative in
                // lambda is 1 / (1 + nu): the implicit term, linear in eta_in, takes that factor
                // through eta_in. With the meta-batch on validation the CPU computes it (as it
                // does behind every backend: the GPU backend hands the outer step to the CPU).
                let eta = self.config.eta_in / (1.0 + self.chance);
                let hyper = if std::ptr::eq(meta_split, &self.dataset.train) {
                    self.backend.hypergradient(
                        &problem,
                        &self.phi,
                        &inner.before_last_step,
                        &pi,
                        last_batch,
                        &meta_batch,
                        eta,
                    )
                } else {
                    Ok(problem.hypergradient_on(
                        meta_split,
                        &self.phi,
                        &inner.before_last_step,
                        &pi,
                        last_batch,
                        &meta_batch,
                        eta,
                    ))
                };
                let hyper = match hyper {
                    Ok(hyper) => hyper,
                    Err(e) => {
                        self.pi = pi;
                        return Err(e);
                    }
                };
                let norm = hyper.grad.iter().map(|g| f64::from(*g).powi(2)).sum::<f64>().sqrt();
                let mut phi = std::mem::take(&mut self.phi);
                self.update_phi(&mut phi, &hyper.grad);
                self.phi = phi;
                (hyper.meta, norm)
            }
            LambdaMode::ContextDual { confidence } => {
                let meta_problem = Problem { split: meta_split, ..problem };
                let meta = meta_problem.meta_loss(&self.phi, &pi, &meta_batch);
                let (grad, bounds) = context_dual_gradient(
                    &Problem { split: &self.dataset.validation, ..problem },
                    &self.phi,
                    &pi,
                    self.config.objective.delta,
                    confidence,
                );
                let norm = grad.iter().map(|g| f64::from(*g).powi(2)).sum::<f64>().sqrt();
                let mut phi = std::mem::take(&mut self.phi);
                self.update_phi(&mut phi, &grad);
                self.phi = phi;
                self.context_bounds = bounds;
                (meta, norm)
            }
            LambdaMode::ContextAugmented(augmented) => {
                let to64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
                let (phi64, pi64) = (to64(&self.phi), to64(&pi));
                let validation = Problem { split: &self.dataset.validation, ..problem };
                let delta = self.config.objective.delta;
                let (outer, outer_gradient) =
                    crate::engine::augmented::outer_loss(&validation, &pi64, &self.augmented_duals.values, delta, augmented.rho);
                // SBD-AL's log shows its own outer objective, L_out on the whole validation split
                let meta = BatchStats { loss: outer.value, safety: outer.safety, efficiency: outer.efficiency };
                let last_batch = batches.last().map(Vec::as_slice).unwrap_or_default();
                let implicit = crate::engine::augmented::implicit_hypergradient(
                    &problem,
                    &phi64,
                    &pi64,
                    last_batch,
                    &outer_gradient,
                    &augmented,
                    self.top_direction.as_deref(),
                );
                let grad: Vec<f32> = implicit.grad.iter().map(|&g| g as f32).collect();
                let norm = implicit.grad.iter().map(|g| g * g).sum::<f64>().sqrt();
                self.top_direction = Some(implicit.top_direction);
                let mut phi = std::mem::take(&mut self.phi);
                self.update_phi(&mut phi, &grad);
                self.phi = phi;
                let bounds = self.measure_contexts(&pi, augmented.confidence);
                let violations = crate::engine::augmented::measured_violations(&bounds, delta, augmented.confidence);
                self.augmented_duals.update(&violations, &augmented);
                self.context_bounds = bounds;
                (meta, norm)
            }
            LambdaMode::TabularContext { confidence, eta } => {
                let lambdas: Vec<f32> =
                    self.tabular_lambdas(meta_split).iter().map(|&l| l as f32).collect();
                let batch_lambdas: Vec<f32> = meta_batch.iter().map(|&i| lambdas[i]).collect();
                let meta = Problem { split: meta_split, ..problem }.weighted_losses(&pi, &meta_batch, &batch_lambdas);
                let bounds = self.measure_contexts(&pi, confidence);
                let delta = self.config.objective.delta;
                for (mu, b) in self.context_duals.iter_mut().zip(&bounds) {
                    if b.samples > 0 {
                        *mu = (*mu + eta * (b.upper_bound - delta)).max(0.0);
                    }
                }
                self.context_bounds = bounds;
                (meta, 0.0)
            }
            LambdaMode::Fixed(_) | LambdaMode::Lagrangian { .. } => {
                let lambda = self.constant_lambda().unwrap_or(0.5) as f32;
                let meta = Problem { split: meta_split, ..problem }.weighted_losses(
                    &pi,
                    &meta_batch,
                    &vec![lambda; meta_batch.len()],
                );
                if let LambdaMode::Lagrangian { eta } = self.config.lambda {
                    // dual ascent on the constraint mean l_safe <= delta
                    let violation = meta.safety - self.config.objective.delta;
                    self.multiplier = (self.multiplier + eta * violation).max(0.0);
                }
                (meta, 0.0)
            }
        };
        // every mode that steps phi has stepped it: a non-finite parameter ends the run
        if self.phi.iter().any(|p| !p.is_finite()) {
            self.pi = pi;
            return Err(TrainError::Diverged("phi has a non-finite parameter".into()));
        }
        // the chance constraint on the stochastic policy, measured on the last inner batch at
        // the updated pi (one forward pass of B samples; skipped when the constraint is off)
        let stochastic_unsafe = if self.config.chance_dual_step > 0.0 {
            let last = batches.last().map(Vec::as_slice).unwrap_or_default();
            let rate = stochastic_unsafe_rate(&self.problem(), &pi, last);
            let violation = rate - self.config.objective.delta;
            self.chance = (self.chance + self.config.chance_dual_step * violation).max(0.0);
            rate
        } else {
            f64::NAN
        };
        if self.config.select_checkpoint {
            let validation = Problem {
                phi: &self.phi_shape,
                pi: &self.pi_shape,
                objective: &self.config.objective,
                split: &self.dataset.validation,
            };
            let all: Vec<usize> = (0..validation.split.len).collect();
            let lambda = self.constant_lambda().unwrap_or(0.5) as f32;
            let loss = validation.weighted_losses(&pi, &all, &vec![lambda; all.len()]).loss;
            if self.selected.as_ref().is_none_or(|(best, _)| loss < *best) {
                self.selected = Some((loss, pi.clone()));
            }
        }
        self.pi = pi;
        let (safety_rate, mean_alpha) = if self.config.log_validation {
            let validation = self.evaluate(&self.dataset.validation);
            (validation.safety_rate, validation.mean_alpha)
        } else {
            (f64::NAN, f64::NAN)
        };
        Ok(StepRecord {
            step: self.step,
            l_meta: meta.loss,
            l_safety: meta.safety,
            l_eff: meta.efficiency,
            safety_rate,
            mean_lambda,
            mean_alpha,
            inner_loss_first: inner.first.loss,
            inner_loss_last: inner.last.loss,
            hypergradient_norm,
            stochastic_unsafe,
            chance_multiplier: self.chance,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    fn update_phi(&mut self, phi: &mut [f32], grad: &[f32]) {
        let eta = self.config.eta_out as f32;
        match &mut self.adam {
            None => {
                for (p, g) in phi.iter_mut().zip(grad) {
                    *p -= eta * g;
                }
            }
            Some(adam) => {
                adam.t += 1;
                let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
                let c1 = 1.0 - b1.powi(adam.t);
                let c2 = 1.0 - b2.powi(adam.t);
                for ((p, g), (m, v)) in phi.iter_mut().zip(grad).zip(adam.m.iter_mut().zip(adam.v.iter_mut()))
                {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *p -= eta * (*m / c1) / ((*v / c2).sqrt() + eps);
                }
            }
        }
    }

    /// Decisions, lambda and the true Safety Rate on a split.
    pub fn evaluate(&self, split: &Split) -> Evaluation {
        match self.config.lambda {
            LambdaMode::TabularContext { .. } => {
                let config = TrainConfig { lambda: LambdaMode::Fixed(0.0), ..self.config.clone() };
                let mut evaluation = evaluate(&self.phi_shape, &self.pi_shape, &self.phi, &self.pi, &config, split);
                evaluation.lambdas = self.tabular_lambdas(split);
                evaluation.mean_lambda = evaluation.lambdas.iter().sum::<f64>() / split.len.max(1) as f64;
                evaluation
            }
            LambdaMode::Lagrangian { .. } => {
                let config = TrainConfig {
                    lambda: LambdaMode::Fixed(self.constant_lambda().unwrap_or(0.5)),
                    ..self.config.clone()
                };
                evaluate(&self.phi_shape, &self.pi_shape, &self.phi, &self.pi, &config, split)
            }
            _ => evaluate(&self.phi_shape, &self.pi_shape, &self.phi, &self.pi, &self.config, split),
        }
    }

    /// Per context of `split`, the stochastic policy's P(unsafe) with its upper bound and the
    /// mean multiplier (see [`ContextStat`]).
    pub fn context_stats(&self, split: &Split) -> Vec<ContextStat> {
        let bounds = context_bounds(&Problem { split, ..self.problem() }, &self.pi, 0.95);
        let lambdas = self.evaluate(split).lambdas;
        bounds
            .into_iter()
            .enumerate()
            .filter(|(_, b)| b.samples > 0)
            .map(|(k, b)| {
                let mu = (0..split.len)
                    .filter(|&i| split.context(i) == k)
                    .map(|i| {
                        // lambda reaches 1 in f32 where log mu passes ~17: cap mu at 1e6
                        let l = self.with_chance(lambdas[i]).clamp(0.0, 1.0 - 1e-6);
                        l / (1.0 - l)
                    })
                    .sum::<f64>()
                    / b.samples as f64;
                ContextStat {
                    context: k,
                    samples: b.samples,
                    unsafe_rate: b.unsafe_rate,
                    upper_bound: b.upper_bound,
                    mean_multiplier: mu,
                }
            })
            .collect()
    }

    /// The trained networks as the policy configuration's model.
    pub fn export(&self, provenance: Provenance) -> LearnedModel {
        LearnedModel {
            state_dim: self.dataset.state_dim as u32,
            state_shift: self.dataset.state_shift.clone(),
            state_scale: self.dataset.state_scale.clone(),
            sub_agents: self.dataset.sub_agents.clone(),
            meta_weight: to_mlp(&self.phi_shape, &self.phi),
            delegation: to_mlp(&self.pi_shape, &self.pi),
            provenance,
        }
    }
}

/// phi's and pi's widths for a state length, agent count and configuration.
pub fn shapes(state_dim: usize, agents: usize, config: &TrainConfig) -> (Shape, Shape) {
    let widths = |layers: usize, out: usize| {
        let mut w = vec![state_dim];
        w.extend(std::iter::repeat_n(config.width, layers - 1));
        w.push(out);
        Shape::new(&w)
    };
    (widths(config.phi_layers, 1), widths(config.pi_layers, agents + 1))
}

/// Decisions, lambda and the true Safety Rate of given parameters on a split.
pub fn evaluate(
    phi_shape: &Shape,
    pi_shape: &Shape,
    phi: &[f32],
    pi: &[f32],
    config: &TrainConfig,
    split: &Split,
) -> Evaluation {
    let problem = Problem { phi: phi_shape, pi: pi_shape, objective: &config.objective, split };
    let all: Vec<usize> = (0..split.len).collect();
    let lambdas: Vec<f64> = match config.lambda {
        LambdaMode::Fixed(l) => vec![l; split.len],
        // the free function has no multiplier: Trainer::evaluate passes the current lambda
        // as a fixed one
        LambdaMode::Lagrangian { .. } => vec![f64::NAN; split.len],
        // the tabular multipliers live in the trainer: Trainer::evaluate fills them in
        LambdaMode::TabularContext { .. } => vec![f64::NAN; split.len],
        LambdaMode::Learned | LambdaMode::ContextDual { .. } | LambdaMode::ContextAugmented(_) => {
            problem.lambdas(phi, &all).1.iter().map(|&l| f64::from(l)).collect()
        }
    };
    let outputs = mlp::forward(pi_shape, pi, &split.states, split.len).output;
    let agents = pi_shape.outputs() - 1;
    let mut agent_counts = vec![0; agents];
    let mut safe = 0usize;
    let mut expected_safe = 0.0;
    let decisions: Vec<(usize, f64)> = outputs
        .chunks_exact(pi_shape.outputs())
        .enumerate()
        .map(|(i, row)| {
            let (agent, alpha) = objective::decide(&config.objective, row, split.alpha_max[i]);
            agent_counts[agent] += 1;
            safe += usize::from(objective::is_safe(split, i, agent, alpha));
            let probabilities = objective::softmax(&row[..agents]);
            expected_safe += probabilities
                .iter()
                .enumerate()
                .filter(|&(a, _)| objective::is_safe(split, i, a, alpha))
                .map(|(_, p)| p)
                .sum::<f64>();
            (agent, alpha)
        })
        .collect();
    let n = split.len.max(1) as f64;
    Evaluation {
        safety_rate: safe as f64 / n,
        expected_safety_rate: expected_safe / n,
        mean_lambda: lambdas.iter().sum::<f64>() / n,
        mean_alpha: decisions.iter().map(|d| d.1).sum::<f64>() / n,
        decisions,
        lambdas,
        agent_counts,
    }
}

/// P(unsafe) of the stochastic policy on the samples `indices` of the problem's split: the
/// mean over samples of `sum_a p_a(s) 1[alpha(s) > u_a(s)]`, with the projected alpha of the
/// objective's mode (Definition 3.1's policy, the sub-agent drawn from pi's softmax).
pub fn stochastic_unsafe_rate(problem: &Problem<'_>, pi: &[f32], indices: &[usize]) -> f64 {
    if indices.is_empty() {
        return 0.0;
    }
    stochastic_unsafe(problem, pi, indices).iter().sum::<f64>() / indices.len() as f64
}

/// Per sample of `indices`: `sum_a p_a(s) 1[alpha(s) > u_a(s)]` (see [`stochastic_unsafe_rate`]).
pub fn stochastic_unsafe(problem: &Problem<'_>, pi: &[f32], indices: &[usize]) -> Vec<f64> {
    let split = problem.split;
    let states = problem.states::<f32>(indices);
    let outputs = mlp::forward(problem.pi, pi, &states, indices.len()).output;
    let width = problem.pi.outputs();
    let agents = width - 1;
    outputs
        .chunks_exact(width)
        .zip(indices)
        .map(|(row, &i)| {
            let (_, alpha) = objective::decide(problem.objective, row, split.alpha_max[i]);
            objective::softmax(&row[..agents])
                .iter()
                .enumerate()
                .filter(|&(a, _)| !objective::is_safe(split, i, a, alpha))
                .map(|(_, p)| p)
                .sum::<f64>()
        })
        .collect()
}

/// [`LambdaMode::ContextDual`] keeps phi's output `log mu` within +/- this (mu in about
/// [3e-4, 3e3]): the dual ascent is projected onto that box, so a multiplier neither explodes
/// nor vanishes beyond recovery.
pub const LOG_MU_BOUND: f64 = 8.0;

/// Per context of the problem's split (0: the rest, 1: the high-risk region), the stochastic
/// policy's P(unsafe) with the true indicator and its one-sided Clopper-Pearson upper bound at
/// `confidence`.
pub fn context_bounds(problem: &Problem<'_>, pi: &[f32], confidence: f64) -> Vec<ContextBound> {
    let split = problem.split;
    let all: Vec<usize> = (0..split.len).collect();
    let unsafe_mass = stochastic_unsafe(problem, pi, &all);
    let mut bounds = vec![ContextBound { samples: 0, unsafe_rate: 0.0, upper_bound: 0.0 }; 2];
    for (i, &u) in unsafe_mass.iter().enumerate() {
        let k = split.context(i);
        bounds[k].samples += 1;
        bounds[k].unsafe_rate += u;
    }
    for b in &mut bounds {
        let x = b.unsafe_rate.clamp(0.0, b.samples as f64);
        b.upper_bound = crate::eval::stats::clopper_pearson_upper(x, b.samples, confidence);
        b.unsafe_rate = x / b.samples.max(1) as f64;
    }
    bounds
}

/// [`LambdaMode::ContextDual`]'s phi step direction on the problem's (validation) split: the
/// gradient to descend, `-sum_k (ucb_k - delta) mean_{s in R_k} d phi(s) / d phi` (phi's
/// output is `log mu`), and the per-context measurements.
pub fn context_dual_gradient(
    problem: &Problem<'_>,
    phi: &[f32],
    pi: &[f32],
    delta: f64,
    confidence: f64,
) -> (Vec<f32>, Vec<ContextBound>) {
    let split = problem.split;
    let all: Vec<usize> = (0..split.len).collect();
    let bounds = context_bounds(problem, pi, confidence);
    let (acts, _) = problem.lambdas(phi, &all);
    let cotangent: Vec<f32> = (0..split.len)
        .map(|i| {
            let b = &bounds[split.context(i)];
            let push = b.upper_bound - delta;
            // projected ascent: log mu stays in [-LOG_MU_BOUND, LOG_MU_BOUND]
            let z = f64::from(acts.output[i]);
            if (z >= LOG_MU_BOUND && push > 0.0) || (z <= -LOG_MU_BOUND && push < 0.0) {
                return 0.0;
            }
            (-push / b.samples.max(1) as f64) as f32
        })
        .collect();
    let mut grad = vec![0.0f32; problem.phi.parameters()];
    mlp::backward(problem.phi, phi, &acts, &cotangent, &mut grad);
    (grad, bounds)
}

fn to_mlp(shape: &Shape, params: &[f32]) -> Mlp {
    let layers = (0..shape.layers())
        .map(|l| {
            let (w, b) = shape.offsets(l);
            let (i, o) = shape.layer(l);
            Dense {
                inputs: i as u32,
                outputs: o as u32,
                weights: params[w..w + i * o].to_vec(),
                bias: params[b..b + o].to_vec(),
            }
        })
        .collect();
    Mlp { layers }
}

/// Floating-point operations of one outer step with a learned lambda (2 per multiply-add of
/// every matrix product; the element-wise work is a few per cent and not counted).
///
/// Per step: lambda for the `train_len` training samples; `T_in` inner steps of pi's forward
/// pass, weight gradients and input gradients (none for the data) on B samples; the
/// hypergradient (pi forward and backward on the meta-batch, pi forward and its JVP at
/// pi_{T-1} on the last batch, phi forward and backward on both batches); and the validation
/// pass of the log (`validation_len` samples through both networks).
pub fn outer_step_flops(
    phi: &Shape,
    pi: &Shape,
    config: &TrainConfig,
    train_len: usize,
    validation_len: usize,
) -> f64 {
    let f_pi = pi.forward_macs() as f64;
    let f_phi = phi.forward_macs() as f64;
    let first_pi = (pi.layer(0).0 * pi.layer(0).1) as f64;
    let first_phi = (phi.layer(0).0 * phi.layer(0).1) as f64;
    let b = config.batch as f64;
    let inner = config.inner_steps as f64 * b * (3.0 * f_pi - first_pi);
    let lambdas = train_len as f64 * f_phi;
    let hyper = b * (f_phi + f_pi + (2.0 * f_pi - first_pi))
        + b * (f_pi + f_pi + (f_pi - first_pi))
        + b * f_phi
        + 2.0 * b * (2.0 * f_phi - first_phi);
    let validation = validation_len as f64 * (f_phi + f_pi);
    2.0 * (inner + lambdas + hyper + validation)
}

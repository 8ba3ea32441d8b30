//! The maths of one SBD outer step, generic over the float type: the inner-loss gradient
//! (Algorithm 1 line 12) and the truncated hypergradient of L_meta with respect to phi
//! (line 21, SBD 5.2).
//!
//! ## The hypergradient
//! Truncated unrolling of the last inner step (Lorraine et al. 2020, as SBD 5.2 prescribes):
//! with `pi_T = pi_{T-1} - eta grad_pi L_inner(pi_{T-1}; phi)` and `pi_{T-1}` held fixed,
//!
//! ```text
//! dL_meta/dphi = dL_meta/dphi|_pi                      (direct, through lambda_phi(s'))
//!              - eta d/dphi [ grad_pi L_inner(pi_{T-1}; phi) . v ],   v = grad_pi L_meta(pi_T)
//! ```
//!
//! `L_inner = (1/B) sum_b lambda_b l_safe,b + (1 - lambda_b) l_eff,b (+ a penalty free of phi)`,
//! so the bracket is `(1/B) sum_b lambda_phi(s_b) (D_v l_safe,b - D_v l_eff,b) + const`: each
//! sample needs the directional derivative of its inner losses along v, which one forward-mode
//! pass of pi gives ([`crate::engine::mlp::jvp`]). Both terms then reach phi through one reverse pass
//! of phi with a scalar cotangent per sample. No Hessian is formed.

use crate::domains::data::Split;
use crate::engine::linalg::Scalar;
use crate::engine::mlp::{self, Activations, Shape};
use crate::engine::objective::Objective;

/// The fixed parts of a training problem.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// phi's widths (state -> 1).
    pub phi: &'a Shape,
    /// pi's widths (state -> agents + 1).
    pub pi: &'a Shape,
    /// The inner objective.
    pub objective: &'a Objective,
    /// The samples batches index into.
    pub split: &'a Split,
}

/// Mean losses over a batch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BatchStats {
    /// Mean surrogate safety loss.
    pub safety: f64,
    /// Mean efficiency loss.
    pub efficiency: f64,
    /// The weighted objective (with the penalty for the inner loss).
    pub loss: f64,
}

/// The inputs of [`Problem::add_mixed_term`].
pub(crate) struct MixedTerm<'a, T> {
    /// phi's parameters.
    pub phi: &'a [T],
    /// phi's forward pass on `batch`.
    pub phi_acts: &'a Activations<T>,
    /// lambda on `batch` (from that pass).
    pub lambdas: &'a [T],
    /// pi's parameters, where the inner gradient is taken.
    pub pi: &'a [T],
    /// The samples of the inner loss.
    pub batch: &'a [usize],
    /// The direction `v` in pi's parameters.
    pub v: &'a [T],
    /// Each sample's cotangent for phi's output, from `D_v l_safe - D_v l_eff` and its lambda:
    /// it carries the term's scale and lambda's slope in phi's output.
    pub weight: &'a dyn Fn(T, T) -> T,
}

/// The result of [`hypergradient`].
#[derive(Debug, Clone, PartialEq)]
pub struct Hypergradient<T> {
    /// dL_meta/dphi, direct plus implicit term.
    pub grad: Vec<T>,
    /// L_meta on the meta-batch (SBD eq. 3) and its parts.
    pub meta: BatchStats,
    /// Mean lambda on the meta-batch.
    pub mean_lambda: f64,
}

impl Problem<'_> {
    /// The states of `indices`, gathered row-major.
    pub fn states<T: Scalar>(&self, indices: &[usize]) -> Vec<T> {
        let dim = self.pi.inputs();
        let mut x = Vec::with_capacity(indices.len() * dim);
        for &i in indices {
            x.extend(self.split.state(i, dim).iter().map(|&v| T::of(f64::from(v))));
        }
        x
    }

    /// phi's logits and lambda = sigmoid(logit) for `indices`.
    pub fn lambdas<T: Scalar>(&self, phi: &[T], indices: &[usize]) -> (Activations<T>, Vec<T>) {
        let acts = mlp::forward(self.phi, phi, &self.states(indices), indices.len());
        let lambdas = acts.output.iter().map(|&z| T::one() / (T::one() + (-z).exp())).collect();
        (acts, lambdas)
    }

    /// pi's forward pass on `indices`, in two halves on two threads (deterministic: the halves
    /// and the order they are combined in do not depend on scheduling).
    pub(crate) fn pi_forward<T: Scalar>(&self, pi: &[T], indices: &[usize]) -> [(Activations<T>, usize); 2] {
        let half = indices.len().div_ceil(2);
        let (left, right) = indices.split_at(half);
        let run = |part: &[usize]| (mlp::forward(self.pi, pi, &self.states(part), part.len()), part.len());
        let (a, b) = rayon::join(|| run(left), || run(right));
        [a, b]
    }

    /// Per-sample losses and pi's output rows for `indices` at `pi`.
    pub(crate) fn losses<T: Scalar>(
        &self,
        halves: &[(Activations<T>, usize); 2],
        indices: &[usize],
    ) -> Vec<crate::engine::objective::SampleLoss<T>> {
        let width = self.pi.outputs();
        halves
            .iter()
            .flat_map(|(acts, _)| acts.output.chunks_exact(width))
            .zip(indices)
            .map(|(row, &i)| self.objective.sample(row, self.split, i))
            .collect()
    }

    /// Adds pi's reverse pass with per-row output cotangents `d_out` (both halves) into `grad`.
    pub(crate) fn pi_backward<T: Scalar>(&self, pi: &[T], halves: &[(Activations<T>, usize); 2], d_out: &[T]) -> Vec<T> {
        let width = self.pi.outputs();
        let split_at = halves[0].1 * width;
        let run = |acts: &Activations<T>, d: &[T]| {
            let mut g = vec![T::zero(); self.pi.parameters()];
            mlp::backward(self.pi, pi, acts, d, &mut g);
            g
        };
        let (mut g0, g1) =
            rayon::join(|| run(&halves[0].0, &d_out[..split_at]), || run(&halves[1].0, &d_out[split_at..]));
        for (a, b) in g0.iter_mut().zip(&g1) {
            *a += *b;
        }
        g0
    }

    /// grad_pi of the inner loss (Algorithm 1 line 12) on `indices`, each sample weighted by
    /// its `lambdas` entry, plus the mini-batch penalty of [`Objective::penalty`].
    pub fn inner_gradient<T: Scalar>(
        &self,
        pi: &[T],
        indices: &[usize],
        lambdas: &[T],
    ) -> (Vec<T>, BatchStats) {
        let halves = self.pi_forward(pi, indices);
        let losses = self.losses(&halves, indices);
        let batch = T::of(indices.len() as f64);
        let mean_safety = losses.iter().fold(T::zero(), |s, l| s + l.safety) / batch;
        let mean_eff = losses.iter().fold(T::zero(), |s, l| s + l.efficiency) / batch;
        let excess = (mean_safety - T::of(self.objective.delta)).max(T::zero());
        // d/d l_safe,b of rho * max(0, mean - delta)^2 = 2 rho excess / B
        let penalty_weight = T::of(2.0 * self.objective.penalty) * excess;
        let mut loss = T::of(self.objective.penalty) * excess * excess;
        let width = self.pi.outputs();
        let mut d_out = Vec::with_capacity(indices.len() * width);
        for (l, &lambda) in losses.iter().zip(lambdas) {
            let ws = (lambda + penalty_weight) / batch;
            let we = (T::one() - lambda) / batch;
            loss += (lambda * l.safety + (T::one() - lambda) * l.efficiency) / batch;
            d_out.extend(l.grad_safety.iter().zip(&l.grad_efficiency).map(|(&gs, &ge)| ws * gs + we * ge));
        }
        let mut grad = self.pi_backward(pi, &halves, &d_out);
        let kappa = self.objective.weight_decay;
        if kappa != 0.0 {
            let k = T::of(kappa);
            let mut square = T::zero();
            for (g, &p) in grad.iter_mut().zip(pi) {
                *g += k * p;
                square += p * p;
            }
            loss += T::of(0.5 * kappa) * square;
        }
        (grad, BatchStats { safety: mean_safety.f64(), efficiency: mean_eff.f64(), loss: loss.f64() })
    }

    /// L_meta(phi, pi) on `indices` (SBD eq. 3), without gradients.
    pub fn meta_loss<T: Scalar>(&self, phi: &[T], pi: &[T], indices: &[usize]) -> BatchStats {
        let (_, lambdas) = self.lambdas(phi, indices);
        self.weighted_losses(pi, indices, &lambdas)
    }

    /// `mean lambda_b l_safe,b + (1 - lambda_b) l_eff,b` on `indices` with given lambdas (eq. 3
    /// for a fixed weight), and the mean losses; no penalty, no ridge, no gradients.
    pub fn weighted_losses<T: Scalar>(&self, pi: &[T], indices: &[usize], lambdas: &[T]) -> BatchStats {
        let halves = self.pi_forward(pi, indices);
        let losses = self.losses(&halves, indices);
        let n = indices.len() as f64;
        let mut stats = BatchStats::default();
        for (l, &lambda) in losses.iter().zip(lambdas) {
            stats.safety += l.safety.f64() / n;
            stats.efficiency += l.efficiency.f64() / n;
            stats.loss += (lambda * l.safety + (T::one() - lambda) * l.efficiency).f64() / n;
        }
        stats
    }

    /// Adds to `grad` the mixed term of a hypergradient, `d/dphi [grad_pi L_inner . v]` up to
    /// the caller's scale: `L_inner` weighs each sample's losses by lambda, so the bracket is
    /// `sum_b lambda_b (D_v l_safe,b - D_v l_eff,b)`. One forward-mode pass of pi along `v`
    /// gives the directional derivatives, and one reverse pass of phi, with the cotangents
    /// `weight(D_v l_safe,b - D_v l_eff,b, lambda_b)`, carries them to phi. Shared by SBD's
    /// truncated hypergradient and SBD-AL's implicit one ([`crate::engine::augmented`]).
    pub(crate) fn add_mixed_term<T: Scalar>(&self, term: &MixedTerm<'_, T>, grad: &mut [T]) {
        let width = self.pi.outputs();
        let halves = self.pi_forward(term.pi, term.batch);
        let losses = self.losses(&halves, term.batch);
        let tangents: Vec<T> =
            halves.iter().flat_map(|(acts, _)| mlp::jvp(self.pi, term.pi, acts, term.v)).collect();
        let cotangent: Vec<T> = losses
            .iter()
            .zip(tangents.chunks_exact(width))
            .zip(term.lambdas)
            .map(|((l, dout), &lambda)| {
                let dot = |g: &[T]| g.iter().zip(dout).fold(T::zero(), |s, (&a, &b)| s + a * b);
                (term.weight)(dot(&l.grad_safety) - dot(&l.grad_efficiency), lambda)
            })
            .collect();
        mlp::backward(self.phi, term.phi, term.phi_acts, &cotangent, grad);
    }

    /// The truncated hypergradient of L_meta with respect to phi (see the module docs).
    ///
    /// `pi_prev` is pi before the last inner step, `pi_last` after it, `last_batch` the
    /// mini-batch of that step and `meta_batch` the fresh outer batch (Algorithm 1 line 17).
    pub fn hypergradient<T: Scalar>(
        &self,
        phi: &[T],
        pi_prev: &[T],
        pi_last: &[T],
        last_batch: &[usize],
        meta_batch: &[usize],
        eta_in: f64,
    ) -> Hypergradient<T> {
        self.hypergradient_on(self.split, phi, pi_prev, pi_last, last_batch, meta_batch, eta_in)
    }

    /// [`Problem::hypergradient`] with the meta-batch drawn from `meta_split` (the validation
    /// split, as a bilevel outer problem needs: issue 16) while `last_batch` indexes the
    /// training split `self.split`.
    #[allow(clippy::too_many_arguments)]
    pub fn hypergradient_on<T: Scalar>(
        &self,
        meta_split: &Split,
        phi: &[T],
        pi_prev: &[T],
        pi_last: &[T],
        last_batch: &[usize],
        meta_batch: &[usize],
        eta_in: f64,
    ) -> Hypergradient<T> {
        let width = self.pi.outputs();
        let sigmoid_slope = |l: T| l * (T::one() - l);
        let meta_problem = Problem { split: meta_split, ..*self };

        // L_meta and v = grad_pi L_meta at pi_T, lambda' differentiable (line 18)
        let (meta_phi, meta_lambdas) = meta_problem.lambdas(phi, meta_batch);
        let meta_halves = meta_problem.pi_forward(pi_last, meta_batch);
        let meta_losses = meta_problem.losses(&meta_halves, meta_batch);
        let n_meta = T::of(meta_batch.len() as f64);
        let mut meta = BatchStats::default();
        let mut d_meta_out = Vec::with_capacity(meta_batch.len() * width);
        let mut phi_cotangent_meta = Vec::with_capacity(meta_batch.len());
        for (l, &lambda) in meta_losses.iter().zip(&meta_lambdas) {
            meta.safety += (l.safety / n_meta).f64();
            meta.efficiency += (l.efficiency / n_meta).f64();
            meta.loss += ((lambda * l.safety + (T::one() - lambda) * l.efficiency) / n_meta).f64();
            d_meta_out.extend(
                l.grad_safety
                    .iter()
                    .zip(&l.grad_efficiency)
                    .map(|(&gs, &ge)| (lambda * gs + (T::one() - lambda) * ge) / n_meta),
            );
            // direct term: d/d lambda of lambda l_safe + (1 - lambda) l_eff, through the sigmoid
            phi_cotangent_meta.push((l.safety - l.efficiency) * sigmoid_slope(lambda) / n_meta);
        }
        let v = meta_problem.pi_backward(pi_last, &meta_halves, &d_meta_out);

        // implicit term: -eta d/dphi [grad_pi L_inner(pi_{T-1}) . v] on the last inner batch
        let mut grad = vec![T::zero(); self.phi.parameters()];
        mlp::backward(self.phi, phi, &meta_phi, &phi_cotangent_meta, &mut grad);
        let (last_phi, last_lambdas) = self.lambdas(phi, last_batch);
        let scale = T::of(-eta_in) / T::of(last_batch.len() as f64);
        self.add_mixed_term(&MixedTerm {
            phi,
            phi_acts: &last_phi,
            lambdas: &last_lambdas,
            pi: pi_prev,
            batch: last_batch,
            v: &v,
            weight: &|d, lambda| scale * d * sigmoid_slope(lambda),
        }, &mut grad);
        let mean_lambda = meta_lambdas.iter().map(|l| l.f64()).sum::<f64>() / meta_batch.len().max(1) as f64;
        Hypergradient { grad, meta, mean_lambda }
    }
}

//! The boundary between Algorithm 1's control flow and the arithmetic that runs it.
//!
//! The trainer samples every mini-batch itself (so two backends see the same indices for the
//! same seed) and hands a backend the whole inner loop and the hypergradient. [`CpuBackend`]
//! runs them with `matrixmultiply` on two threads; a GPU backend implements the same trait.

use crate::engine::bilevel::{BatchStats, Hypergradient, Problem};
use crate::error::TrainError;

/// What the inner loop hands back besides the updated pi.
#[derive(Debug, Clone, PartialEq)]
pub struct InnerLoop {
    /// pi before the last step: the point the truncated hypergradient differentiates at.
    pub before_last_step: Vec<f32>,
    /// Losses on the first mini-batch, before its step.
    pub first: BatchStats,
    /// Losses on the last mini-batch, before its step.
    pub last: BatchStats,
}

/// Where the inner loop and the hypergradient are computed.
pub trait Backend {
    /// A line saying what runs the arithmetic (e.g. `cpu: matrixmultiply, 2 threads`).
    fn description(&self) -> String;

    /// Algorithm 1 lines 6-14: one gradient step on `pi` per mini-batch, the sample weights
    /// `lambdas[i]` (one per sample of the split, detached from phi) fixed throughout.
    fn inner_loop(
        &mut self,
        problem: &Problem<'_>,
        pi: &mut [f32],
        batches: &[Vec<usize>],
        lambdas: &[f32],
        eta_in: f64,
    ) -> Result<InnerLoop, TrainError>;

    /// Algorithm 1 line 21: the truncated hypergradient (see [`crate::engine::bilevel`]).
    #[allow(clippy::too_many_arguments)]
    fn hypergradient(
        &mut self,
        problem: &Problem<'_>,
        phi: &[f32],
        pi_prev: &[f32],
        pi_last: &[f32],
        last_batch: &[usize],
        meta_batch: &[usize],
        eta_in: f64,
    ) -> Result<Hypergradient<f32>, TrainError>;
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn description(&self) -> String {
        (**self).description()
    }

    fn inner_loop(
        &mut self,
        problem: &Problem<'_>,
        pi: &mut [f32],
        batches: &[Vec<usize>],
        lambdas: &[f32],
        eta_in: f64,
    ) -> Result<InnerLoop, TrainError> {
        (**self).inner_loop(problem, pi, batches, lambdas, eta_in)
    }

    fn hypergradient(
        &mut self,
        problem: &Problem<'_>,
        phi: &[f32],
        pi_prev: &[f32],
        pi_last: &[f32],
        last_batch: &[usize],
        meta_batch: &[usize],
        eta_in: f64,
    ) -> Result<Hypergradient<f32>, TrainError> {
        (**self).hypergradient(problem, phi, pi_prev, pi_last, last_batch, meta_batch, eta_in)
    }
}

/// The CPU backend: f32, packed GEMM kernels, each batch split over two threads.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn description(&self) -> String {
        format!(
            "cpu: matrixmultiply f32 kernels, batch halves on {} rayon threads",
            rayon::current_num_threads()
        )
    }

    fn inner_loop(
        &mut self,
        problem: &Problem<'_>,
        pi: &mut [f32],
        batches: &[Vec<usize>],
        lambdas: &[f32],
        eta_in: f64,
    ) -> Result<InnerLoop, TrainError> {
        let eta = eta_in as f32;
        let mut before_last_step = Vec::new();
        let (mut first, mut last) = (BatchStats::default(), BatchStats::default());
        for (k, batch) in batches.iter().enumerate() {
            let weights: Vec<f32> = batch.iter().map(|&i| lambdas[i]).collect();
            let (grad, stats) = problem.inner_gradient(pi, batch, &weights);
            if k == 0 {
                first = stats;
            }
            if k + 1 == batches.len() {
                before_last_step = pi.to_vec();
                last = stats;
            }
            for (p, g) in pi.iter_mut().zip(&grad) {
                *p -= eta * g;
            }
        }
        if pi.iter().any(|p| !p.is_finite()) {
            return Err(TrainError::Diverged("pi has a non-finite parameter after the inner loop".into()));
        }
        Ok(InnerLoop { before_last_step, first, last })
    }

    fn hypergradient(
        &mut self,
        problem: &Problem<'_>,
        phi: &[f32],
        pi_prev: &[f32],
        pi_last: &[f32],
        last_batch: &[usize],
        meta_batch: &[usize],
        eta_in: f64,
    ) -> Result<Hypergradient<f32>, TrainError> {
        Ok(problem.hypergradient(phi, pi_prev, pi_last, last_batch, meta_batch, eta_in))
    }
}

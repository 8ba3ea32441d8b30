//! What the evaluation asks of a domain, as one trait: its samples, how its decisions are
//! scored, the risk signal its hypotheses are about, and its own figures and plot. The
//! experiment, the verdicts and the report read a domain only through [`Domain`]; adding a
//! domain means one more implementation, in one file beside these:
//!
//! - [`finance::Finance`]: TE from a back-test (normalised Sharpe); H-Fin-1 (lambda in the COVID
//!   crash against calm 2018) and H-Fin-2 (the crash drawdown against risk parity);
//! - [`medical::Medical`]: TE = expected agreement; H-Med-1 (Spearman of acuity and lambda), and
//!   F1 also read as H-Med-2;
//! - [`education::Education`]: TE = normalised knowledge gain; H-Edu-1 (alpha lower for
//!   at-risk students) and H-Edu-2 (no efficiency lost on the others).

pub mod education;
pub mod finance;
pub mod medical;

use std::ops::Range;
use std::path::Path;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::domains::data::Dataset;
use crate::error::TrainError;
use crate::eval::experiment::{ExperimentConfig, Extras, Method, Results, RunResult};
use crate::eval::stats;

/// A domain's H-*-1 claim on a method's runs at the headline delta: the statistic (per run,
/// [`Domain::h1_statistic`]) must exceed `threshold`.
pub struct RiskClaim {
    /// "H-Fin-1", "H-Med-1" or "H-Edu-1".
    pub id: &'static str,
    /// What is claimed, naming the method.
    pub criterion: String,
    /// The statistic's threshold.
    pub threshold: f64,
    /// The point verdict over the seeds (the paper's own reading of the claim).
    pub point_holds: bool,
}

/// A domain's further claim (H-Fin-2, H-Edu-2), ready to be tested across seeds: `margins`
/// holds one value per seed, positive where the claim holds.
pub struct DomainClaim {
    /// The claim's id.
    pub id: &'static str,
    /// What is claimed, naming the method.
    pub criterion: String,
    /// What was measured.
    pub measured: String,
    /// One margin per seed.
    pub margins: Vec<f64>,
    /// The point verdict.
    pub point_holds: bool,
}

/// What every domain carries: its name, where the data is from, and the samples.
pub struct DomainData {
    /// Short name (`finance`, `medical`, `medical-mimic4-demo`, `education`).
    pub name: String,
    /// What the data is, for the report (e.g. "real: SUPPORT2" or "SYNTHETIC").
    pub provenance: String,
    /// The samples.
    pub dataset: Dataset,
}

/// One evaluation domain (module docs).
pub trait Domain: Send + Sync {
    /// Name, provenance and samples.
    fn data(&self) -> &DomainData;

    /// Short name.
    fn name(&self) -> &str {
        &self.data().name
    }

    /// What the data is.
    fn provenance(&self) -> &str {
        &self.data().provenance
    }

    /// The samples.
    fn dataset(&self) -> &Dataset {
        &self.data().dataset
    }

    /// Task Efficiency of decisions on the test split; by default the mean per-decision
    /// efficiency ([`crate::domains::data::task_efficiency`]).
    fn task_efficiency(&self, decisions: &[(usize, f64)]) -> f64 {
        crate::domains::data::task_efficiency(&self.dataset().test, decisions)
    }

    /// Task Efficiency of decisions on the validation split (the random search's objective).
    fn validation_efficiency(&self, decisions: &[(usize, f64)]) -> f64 {
        crate::domains::data::task_efficiency(&self.dataset().validation, decisions)
    }

    /// The statistic of the domain's H-*-1 claim on test decisions and lambdas (and, where the
    /// claim compares with a calm period, validation lambdas). With `shuffle`, the risk labels
    /// are permuted first (seeded), the claim's control. None where the statistic needs a
    /// lambda the method does not have.
    fn h1_statistic(
        &self,
        decisions: &[(usize, f64)],
        lambdas: &[f64],
        validation_lambdas: &[f64],
        shuffle: Option<u64>,
    ) -> Option<f64>;

    /// The domain's figures of one run ([`Extras`]'s domain fields and `lambda_by_risk`).
    fn extras(&self, decisions: &[(usize, f64)], lambdas: &[f64], validation_lambdas: &[f64]) -> Extras;

    /// A 95% interval of the test TE and the TE of each of `windows` consecutive test windows,
    /// where TE is a statistic of a path rather than a mean over decisions (finance).
    fn te_intervals(&self, _decisions: &[(usize, f64)], _windows: usize, _seed: u64) -> Option<(stats::Interval, Vec<f64>)> {
        None
    }

    /// The H-*-1 claim for `who`'s runs at the headline delta.
    fn risk_claim(&self, who: &str, runs: &[&RunResult]) -> RiskClaim;

    /// The domain's further claim, if it has one; `headline_runs` gives any method's runs at
    /// the headline delta and `ci` formats a per-seed figure with its interval.
    fn further_claim<'r>(
        &self,
        _who: &str,
        _runs: &[&'r RunResult],
        _headline_runs: &dyn Fn(Method) -> Vec<&'r RunResult>,
        _ci: &dyn Fn(&[f64]) -> String,
    ) -> Option<DomainClaim> {
        None
    }

    /// Another id under which F1 (SEA above every non-ablated baseline) is one of the
    /// domain's own claims (medical: H-Med-2).
    fn f1_also(&self) -> Option<&'static str> {
        None
    }

    /// Whether [`crate::eval::oracle`]'s closed-form frontier applies (TE a mean over
    /// decisions).
    fn has_oracle(&self) -> bool {
        true
    }

    /// The file name and caption of the domain's own plot.
    fn plot_caption(&self) -> (String, String);

    /// Draws the domain's own plot into `dir` from SBD's runs at the headline delta (and, where
    /// the plot sweeps delta, from `results`).
    fn plot(
        &self,
        dir: &Path,
        config: &ExperimentConfig,
        results: &Results,
        sbd_runs: &[&RunResult],
    ) -> Result<(), TrainError>;
}

/// `values[i]` is day `start + i`: the values of the days in `range`.
pub(crate) fn window(values: &[f64], start: usize, range: &Range<usize>) -> Vec<f64> {
    let from = range.start.saturating_sub(start);
    let to = range.end.saturating_sub(start).min(values.len());
    values.get(from..to).unwrap_or_default().to_vec()
}

/// Means of `y` over `bins` quantile bins of `x`: (mean x, mean y) per bin.
pub(crate) fn binned(x: &[f64], y: &[f64], bins: usize) -> Vec<(f64, f64)> {
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

/// A seeded in-place permutation, or none without a seed (the shuffled-labels control).
pub(crate) fn permuter(shuffle: Option<u64>) -> impl FnMut(&mut Vec<f64>) {
    let mut rng = shuffle.map(ChaCha8Rng::seed_from_u64);
    move |v: &mut Vec<f64>| {
        if let Some(rng) = rng.as_mut() {
            for i in (1..v.len()).rev() {
                v.swap(i, rng.random_range(0..=i));
            }
        }
    }
}

/// Whether `lambdas` is a method's lambda per sample (not absent, not NaN).
pub(crate) fn has_lambda(lambdas: &[f64]) -> bool {
    !lambdas.is_empty() && lambdas.iter().all(|l| l.is_finite())
}

/// The test split's risk signal per sample, as f64.
pub(crate) fn test_risk(dataset: &Dataset) -> Vec<f64> {
    dataset.test.risk.iter().map(|&r| f64::from(r)).collect()
}

/// [`Extras`] with `lambda_by_risk` filled (deciles of the test split's risk signal).
pub(crate) fn extras_with_lambda_by_risk(dataset: &Dataset, lambdas: &[f64]) -> Extras {
    let risk = test_risk(dataset);
    Extras { lambda_by_risk: if has_lambda(lambdas) { binned(&risk, lambdas, 10) } else { vec![] }, ..Extras::default() }
}

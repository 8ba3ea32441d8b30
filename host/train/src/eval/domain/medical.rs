//! Medical (real SUPPORT2 and the MIMIC-IV demo): TE is the expected agreement with the
//! indicated specialty; the risk signal is acuity.

use std::path::Path;

use super::{Domain, DomainData, RiskClaim, extras_with_lambda_by_risk, has_lambda, permuter, test_risk};
use crate::error::TrainError;
use crate::eval::experiment::{ExperimentConfig, Extras, Results, RunResult};
use crate::eval::report::{Panel, Series, line_plot};
use crate::eval::stats;

/// A medical data set (SUPPORT2, or the MIMIC-IV demo check).
pub struct Medical {
    /// Name, provenance and samples.
    pub data: DomainData,
}

impl Domain for Medical {
    fn data(&self) -> &DomainData {
        &self.data
    }

    /// Spearman's rho of (acuity, lambda) on the test split; shuffled, the acuity values are
    /// permuted over the test samples.
    fn h1_statistic(
        &self,
        _decisions: &[(usize, f64)],
        lambdas: &[f64],
        _validation_lambdas: &[f64],
        shuffle: Option<u64>,
    ) -> Option<f64> {
        if !has_lambda(lambdas) {
            return None;
        }
        let mut risk = test_risk(self.dataset());
        permuter(shuffle)(&mut risk);
        Some(stats::spearman(&risk, lambdas))
    }

    fn extras(&self, _decisions: &[(usize, f64)], lambdas: &[f64], _validation_lambdas: &[f64]) -> Extras {
        let mut extras = extras_with_lambda_by_risk(self.dataset(), lambdas);
        if has_lambda(lambdas) {
            extras.acuity_lambda_spearman = Some(stats::spearman_test(&test_risk(self.dataset()), lambdas));
        }
        extras
    }

    fn risk_claim(&self, who: &str, runs: &[&RunResult]) -> RiskClaim {
        let tests: Vec<(f64, f64)> = runs.iter().filter_map(|r| r.extras.acuity_lambda_spearman).collect();
        RiskClaim {
            id: "H-Med-1",
            criterion: format!("Spearman(acuity, {who}'s lambda) on the test split positive (point: p < 0.01 on every seed)"),
            threshold: 0.0,
            point_holds: !tests.is_empty() && tests.iter().all(|&(rho, p)| rho > 0.0 && p < 0.01),
        }
    }

    fn f1_also(&self) -> Option<&'static str> {
        Some("H-Med-2")
    }

    fn plot_caption(&self) -> (String, String) {
        (
            format!("lambda-vs-acuity-{}.png", self.name()),
            format!("SBD's lambda against the acuity signal, deciles of the test split, {}", self.name()),
        )
    }

    fn plot(
        &self,
        dir: &Path,
        _config: &ExperimentConfig,
        _results: &Results,
        sbd_runs: &[&RunResult],
    ) -> Result<(), TrainError> {
        let title = format!("SBD lambda by acuity decile: {}", self.name());
        let seed_labels: Vec<String> = sbd_runs.iter().map(|r| format!("seed {}", r.seed)).collect();
        let series = sbd_runs
            .iter()
            .zip(&seed_labels)
            .map(|(r, label)| Series { label: label.as_str(), points: r.extras.lambda_by_risk.clone() })
            .collect();
        line_plot(
            &dir.join(self.plot_caption().0),
            &[Panel { title: &title, x_label: "acuity (decile mean)", y_label: "mean lambda", log_y: false, series }],
        )
    }
}

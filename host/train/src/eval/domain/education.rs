//! Education (SYNTHETIC, ASSISTments skill-builder format): TE is the normalised knowledge
//! gain; the risk signal is the at-risk flag.

use std::path::Path;

use super::{Domain, DomainClaim, DomainData, RiskClaim, extras_with_lambda_by_risk, permuter, test_risk};
use crate::domains::data;
use crate::error::TrainError;
use crate::eval::experiment::{ExperimentConfig, Extras, Method, Results, RunResult};
use crate::eval::report::{Panel, Series, line_plot};
use crate::eval::stats;

/// The education domain.
pub struct Education {
    /// Name, provenance and samples.
    pub data: DomainData,
}

impl Domain for Education {
    fn data(&self) -> &DomainData {
        &self.data
    }

    /// Mean alpha of other students minus at-risk ones (every method has an alpha); shuffled,
    /// the at-risk flags are permuted over the test samples.
    fn h1_statistic(
        &self,
        decisions: &[(usize, f64)],
        _lambdas: &[f64],
        _validation_lambdas: &[f64],
        shuffle: Option<u64>,
    ) -> Option<f64> {
        let mut risk = test_risk(self.dataset());
        permuter(shuffle)(&mut risk);
        let (mut at_risk, mut others) = (Vec::new(), Vec::new());
        for (i, &(_, alpha)) in decisions.iter().enumerate() {
            if risk.get(i).is_some_and(|&r| r > 0.5) { at_risk.push(alpha) } else { others.push(alpha) }
        }
        Some(stats::mean_std(&others).0 - stats::mean_std(&at_risk).0)
    }

    fn extras(&self, decisions: &[(usize, f64)], lambdas: &[f64], _validation_lambdas: &[f64]) -> Extras {
        let test = &self.dataset().test;
        let risk = test_risk(self.dataset());
        let mut extras = extras_with_lambda_by_risk(self.dataset(), lambdas);
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
        let sub = test.select(&not_at_risk, self.dataset().state_dim);
        let sub_decisions: Vec<(usize, f64)> = not_at_risk.iter().map(|&i| decisions[i]).collect();
        if !not_at_risk.is_empty() {
            extras.not_at_risk_efficiency = Some(data::task_efficiency(&sub, &sub_decisions));
        }
        extras
    }

    fn risk_claim(&self, who: &str, runs: &[&RunResult]) -> RiskClaim {
        let a: Vec<(f64, f64, f64)> = runs.iter().filter_map(|r| r.extras.at_risk_alpha).collect();
        RiskClaim {
            id: "H-Edu-1",
            criterion: format!("{who}'s mean alpha lower for at-risk students by > 0.15 (point: Welch p < 0.01, every seed)"),
            threshold: 0.15,
            point_holds: !a.is_empty() && a.iter().all(|&(risk, other, p)| other - risk > 0.15 && p < 0.01),
        }
    }

    fn further_claim<'r>(
        &self,
        who: &str,
        runs: &[&'r RunResult],
        headline_runs: &dyn Fn(Method) -> Vec<&'r RunResult>,
        ci: &dyn Fn(&[f64]) -> String,
    ) -> Option<DomainClaim> {
        let marl = headline_runs(Method::MarlVanilla);
        let pairs: Vec<(f64, f64)> = runs
            .iter()
            .filter_map(|r| {
                let theirs = marl.iter().find(|m| m.seed == r.seed)?.extras.not_at_risk_efficiency?;
                Some((r.extras.not_at_risk_efficiency?, theirs))
            })
            .collect();
        Some(DomainClaim {
            id: "H-Edu-2",
            criterion: format!(
                "for students not at risk, {who}'s TE within 5% of MARL-vanilla's or above (margin: ours - 0.95 theirs)"
            ),
            measured: format!(
                "TE {} vs MARL-vanilla {}",
                ci(&pairs.iter().map(|p| p.0).collect::<Vec<_>>()),
                ci(&pairs.iter().map(|p| p.1).collect::<Vec<_>>())
            ),
            point_holds: !pairs.is_empty() && pairs.iter().all(|&(o, t)| o >= 0.95 * t),
            margins: pairs.iter().map(|(o, t)| o - 0.95 * t).collect(),
        })
    }

    fn plot_caption(&self) -> (String, String) {
        ("alpha-at-risk.png".into(), "mean alpha for at-risk and other students against delta (synthetic data)".into())
    }

    /// Mean alpha of at-risk and other students against delta, for SBD, SBD-NoOuter and
    /// MARL-vanilla.
    fn plot(
        &self,
        dir: &Path,
        config: &ExperimentConfig,
        results: &Results,
        _sbd_runs: &[&RunResult],
    ) -> Result<(), TrainError> {
        let mut series = Vec::new();
        let labels: Vec<(Method, String, String)> = [Method::Sbd, Method::NoOuter, Method::MarlVanilla]
            .iter()
            .map(|m| (*m, format!("{}: at risk", m.name()), format!("{}: others", m.name())))
            .collect();
        for (method, risk_label, other_label) in &labels {
            let mut risk = Vec::new();
            let mut other = Vec::new();
            for &delta in &config.deltas {
                let rs: Vec<(f64, f64, f64)> = results
                    .runs
                    .iter()
                    .filter(|r| r.domain == self.name() && r.method == *method && r.delta.is_none_or(|x| x == delta))
                    .filter_map(|r| r.extras.at_risk_alpha)
                    .collect();
                let n = rs.len().max(1) as f64;
                risk.push((delta, rs.iter().map(|x| x.0).sum::<f64>() / n));
                other.push((delta, rs.iter().map(|x| x.1).sum::<f64>() / n));
            }
            series.push(Series { label: risk_label.as_str(), points: risk });
            series.push(Series { label: other_label.as_str(), points: other });
        }
        line_plot(
            &dir.join(self.plot_caption().0),
            &[Panel {
                title: "Mean alpha, at-risk vs other students (SYNTHETIC data)",
                x_label: "delta",
                y_label: "mean alpha",
                log_y: false,
                series,
            }],
        )
    }
}

//! Finance (real S&P 500 prices): TE from a back-test over the split's days; the risk signal is
//! market stress, the COVID crash (2020-02-20 .. 03-23) against calm 2018.

use std::path::Path;

use super::{Domain, DomainClaim, DomainData, RiskClaim, extras_with_lambda_by_risk, has_lambda, permuter, window};
use crate::domains::finance::{self, FinanceOptions, Market};
use crate::error::TrainError;
use crate::eval::experiment::{ExperimentConfig, Extras, Method, Results, RunResult};
use crate::eval::report::{Panel, Series, line_plot};
use crate::eval::{stats, summary};

/// The finance domain with its market data.
pub struct Finance {
    /// Name, provenance and samples.
    pub data: DomainData,
    /// Per-day market data.
    pub market: Market,
    /// Domain options.
    pub options: FinanceOptions,
}

impl Finance {
    /// Whether the splits hold the stress test's windows: the COVID crash inside the test
    /// days and calm 2018 inside the validation days (the paper's splits do; most rolling
    /// origins do not, and then H-Fin-1 and H-Fin-2 have nothing to measure).
    pub fn has_stress_windows(&self) -> bool {
        let market = &self.market;
        let inside = |window: (&str, &str), days: &std::ops::Range<usize>| {
            let w = market.days_between(window.0, window.1);
            !w.is_empty() && days.start <= w.start && w.end <= days.end
        };
        inside(finance::COVID_WINDOW, &market.test_days) && inside(finance::CALM_WINDOW, &market.validation_days)
    }

    /// Mean lambda on the COVID window (test days) and on calm 2018 (validation days).
    fn covid_and_calm(&self, lambdas: &[f64], validation_lambdas: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let market = &self.market;
        let covid = market.days_between(finance::COVID_WINDOW.0, finance::COVID_WINDOW.1);
        let calm = market.days_between(finance::CALM_WINDOW.0, finance::CALM_WINDOW.1);
        (window(lambdas, market.test_days.start, &covid), window(validation_lambdas, market.validation_days.start, &calm))
    }
}

impl Domain for Finance {
    fn data(&self) -> &DomainData {
        &self.data
    }

    fn task_efficiency(&self, decisions: &[(usize, f64)]) -> f64 {
        finance::backtest(&self.market, self.market.test_days.clone(), decisions, &self.options).task_efficiency
    }

    fn validation_efficiency(&self, decisions: &[(usize, f64)]) -> f64 {
        finance::backtest(&self.market, self.market.validation_days.clone(), decisions, &self.options).task_efficiency
    }

    /// Mean lambda on the COVID window minus calm 2018; shuffled, the COVID and calm days are
    /// pooled and re-split at their sizes.
    fn h1_statistic(
        &self,
        _decisions: &[(usize, f64)],
        lambdas: &[f64],
        validation_lambdas: &[f64],
        shuffle: Option<u64>,
    ) -> Option<f64> {
        if !has_lambda(lambdas) || !self.has_stress_windows() {
            return None;
        }
        let (covid_l, calm_l) = self.covid_and_calm(lambdas, validation_lambdas);
        let mut pooled: Vec<f64> = covid_l.iter().chain(&calm_l).copied().collect();
        permuter(shuffle)(&mut pooled);
        let (a, b) = pooled.split_at(covid_l.len());
        Some(stats::mean_std(a).0 - stats::mean_std(b).0)
    }

    fn extras(&self, decisions: &[(usize, f64)], lambdas: &[f64], validation_lambdas: &[f64]) -> Extras {
        let mut extras = extras_with_lambda_by_risk(self.dataset(), lambdas);
        extras.sharpe =
            Some(finance::backtest(&self.market, self.market.test_days.clone(), decisions, &self.options).sharpe);
        if !self.has_stress_windows() {
            return extras;
        }
        let (market, options) = (&self.market, &self.options);
        let covid = market.days_between(finance::COVID_WINDOW.0, finance::COVID_WINDOW.1);
        if has_lambda(lambdas) {
            let (covid_l, calm_l) = self.covid_and_calm(lambdas, validation_lambdas);
            extras.covid_lambda =
                Some((stats::mean_std(&covid_l).0, stats::mean_std(&calm_l).0, stats::cohens_d(&covid_l, &calm_l)));
            extras.lambda_over_time = lambdas.iter().enumerate().map(|(i, &l)| (i as f64, l)).collect();
        }
        let method = summary::figures("method", market, options, decisions, &covid);
        let parity: Vec<(usize, f64)> =
            self.dataset().test.alpha_max.iter().map(|&cap| (2, f64::from(cap).min(1.0))).collect();
        let reference = summary::figures("risk parity", market, options, &parity, &covid);
        extras.covid_drawdown = Some((method.covid_max_drawdown, reference.covid_max_drawdown));
        extras
    }

    /// A moving-block bootstrap 95% interval (blocks of 20 trading days, 1,000 resamples) of
    /// the test TE, and the TE of each of `windows` consecutive test windows (the model is
    /// trained once, not refitted per window).
    fn te_intervals(&self, decisions: &[(usize, f64)], windows: usize, seed: u64) -> Option<(stats::Interval, Vec<f64>)> {
        let returns = finance::daily_returns(&self.market, self.market.test_days.clone(), decisions);
        let interval =
            stats::block_bootstrap_interval(&returns, 20, finance::returns_task_efficiency, 1000, 0.95, seed);
        let per = returns.len().div_ceil(windows.max(1)).max(1);
        let by_window = returns.chunks(per).map(finance::returns_task_efficiency).collect();
        Some((interval, by_window))
    }

    fn risk_claim(&self, who: &str, runs: &[&RunResult]) -> RiskClaim {
        let l: Vec<(f64, f64, f64)> = runs.iter().filter_map(|r| r.extras.covid_lambda).collect();
        RiskClaim {
            id: "H-Fin-1",
            criterion: format!(
                "{who}'s mean lambda on the COVID window exceeds calm 2018 by >= 0.15 (point: also Cohen's d > 0.8, every seed)"
            ),
            threshold: 0.15,
            point_holds: !l.is_empty() && l.iter().all(|&(c, k, d)| c - k >= 0.15 && d > 0.8),
        }
    }

    fn further_claim<'r>(
        &self,
        who: &str,
        runs: &[&'r RunResult],
        _headline_runs: &dyn Fn(Method) -> Vec<&'r RunResult>,
        ci: &dyn Fn(&[f64]) -> String,
    ) -> Option<DomainClaim> {
        let dd: Vec<(f64, f64)> = runs.iter().filter_map(|r| r.extras.covid_drawdown).collect();
        Some(DomainClaim {
            id: "H-Fin-2",
            criterion: format!(
                "{who}'s COVID-window max drawdown no worse than the risk-parity baseline (tested as: smaller, margin risk parity - ours)"
            ),
            measured: format!(
                "drawdown {} vs risk parity {}",
                ci(&dd.iter().map(|x| x.0).collect::<Vec<_>>()),
                dd.first().map_or("-".into(), |x| format!("{:.3}", x.1))
            ),
            point_holds: !dd.is_empty() && dd.iter().all(|&(o, r)| o <= r),
            margins: dd.iter().map(|(ours, rp)| rp - ours).collect(),
        })
    }

    /// TE is a Sharpe ratio over the whole test path, not a mean over decisions.
    fn has_oracle(&self) -> bool {
        false
    }

    fn plot_caption(&self) -> (String, String) {
        ("lambda-covid.png".into(), "SBD's lambda over the 2020-2022 test days, with the COVID window".into())
    }

    fn plot(
        &self,
        dir: &Path,
        _config: &ExperimentConfig,
        _results: &Results,
        sbd_runs: &[&RunResult],
    ) -> Result<(), TrainError> {
        let market = &self.market;
        let covid = market.days_between(finance::COVID_WINDOW.0, finance::COVID_WINDOW.1);
        let start = market.test_days.start;
        let (a, b) = (covid.start.saturating_sub(start) as f64, covid.end.saturating_sub(start) as f64);
        let seed_labels: Vec<String> = sbd_runs.iter().map(|r| format!("seed {}", r.seed)).collect();
        let mut series: Vec<Series<'_>> = sbd_runs
            .iter()
            .zip(&seed_labels)
            .map(|(r, label)| Series { label: label.as_str(), points: r.extras.lambda_over_time.clone() })
            .collect();
        let (lo, hi) = sbd_runs
            .iter()
            .flat_map(|r| r.extras.lambda_over_time.iter().map(|p| p.1))
            .fold((f64::MAX, f64::MIN), |(lo, hi), l| (lo.min(l), hi.max(l)));
        if lo <= hi {
            series.push(Series {
                label: "COVID window (2020-02-20 .. 03-23)",
                points: vec![(a, lo), (a, hi), (b, hi), (b, lo), (a, lo)],
            });
        }
        line_plot(
            &dir.join(self.plot_caption().0),
            &[Panel {
                title: "SBD lambda over the test days (2020-2022)",
                x_label: "test trading day",
                y_label: "lambda",
                log_y: false,
                series,
            }],
        )
    }
}

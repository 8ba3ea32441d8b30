//! What a trained finance policy does on the test split, next to simple reference portfolios,
//! and the quantities the finance hypotheses H-Fin-1/2 (SBD 6.3) are stated in.

use std::ops::Range;

use serde::Serialize;

use crate::engine::backend::Backend;
use crate::domains::finance::{self, CALM_WINDOW, COVID_WINDOW, Finance, FinanceOptions, Market};
use crate::engine::trainer::{Evaluation, Trainer};
use crate::numeric::mean_std;

/// One portfolio's test-period figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortfolioFigures {
    /// Which portfolio.
    pub name: String,
    /// Safety Rate with the true indicator.
    pub safety_rate: f64,
    /// Task Efficiency: the normalised Sharpe ratio.
    pub task_efficiency: f64,
    /// Annualised Sharpe ratio.
    pub sharpe: f64,
    /// Largest drawdown over the test split.
    pub max_drawdown: f64,
    /// Largest drawdown over the COVID window, from the close before its first day to its
    /// last close (H-Fin-2).
    pub covid_max_drawdown: f64,
}

/// The finance summary of a trained policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinanceSummary {
    /// The trained SBD policy on the test split.
    pub sbd: PortfolioFigures,
    /// Equal weight (alpha = 0), each sub-agent at alpha = 1 projected, for reference.
    pub references: Vec<PortfolioFigures>,
    /// Mean projected alpha on the test split.
    pub mean_alpha: f64,
    /// Mean lambda on the test split.
    pub mean_lambda: f64,
    /// How often each sub-agent was chosen on the test split.
    pub sub_agent_share: Vec<(String, f64)>,
    /// Mean lambda in the COVID window (H-Fin-1).
    pub covid_mean_lambda: f64,
    /// Mean lambda over calm 2018 (H-Fin-1).
    pub calm_mean_lambda: f64,
    /// COVID minus calm mean lambda (H-Fin-1 asks for at least 0.15).
    pub lambda_difference: f64,
    /// Cohen's d of COVID against calm lambda, pooled standard deviation (H-Fin-1: > 0.8).
    pub cohens_d: f64,
    /// The policy's decisions on a few notable days, with their raw states.
    pub examples: Vec<ExampleDecision>,
}

/// One day's decision with the raw state that produced it (for scenarios and docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExampleDecision {
    /// The trading day.
    pub date: String,
    /// The raw state vector (appendix B.2 features, then zero padding).
    pub state: Vec<f64>,
    /// lambda_phi(s).
    pub lambda: f64,
    /// The chosen sub-agent.
    pub sub_agent: String,
    /// The projected alpha.
    pub alpha: f64,
}

/// Days shown in [`FinanceSummary::examples`]: calm 2018, the COVID crash, the 2022 sell-off.
pub const EXAMPLE_DATES: [&str; 3] = ["2018-06-01", "2020-03-16", "2022-06-13"];

/// Back-tests decisions over the test split and the COVID crash window (from the close before
/// its first day).
pub fn figures(
    name: &str,
    market: &Market,
    options: &FinanceOptions,
    decisions: &[(usize, f64)],
    covid: &Range<usize>,
) -> PortfolioFigures {
    let test = market.test_days.clone();
    let whole = finance::backtest(market, test.clone(), decisions, options);
    // day t earns the close-to-close return t -> t+1, so the window's moves from the close
    // before its first day to its last close are the returns of days start-1 .. end-1
    let crash_days = covid.start.saturating_sub(1).max(test.start)..covid.end.saturating_sub(1);
    let offset = crash_days.start - test.start;
    let covid_decisions = decisions.get(offset..).unwrap_or_default();
    let crash = finance::backtest(market, crash_days, covid_decisions, options);
    PortfolioFigures {
        name: name.to_string(),
        safety_rate: whole.safety_rate,
        task_efficiency: whole.task_efficiency,
        sharpe: whole.sharpe,
        max_drawdown: whole.max_drawdown,
        covid_max_drawdown: crash.max_drawdown,
    }
}

/// Back-tests the trainer's policy and the reference portfolios.
pub fn finance_summary<B: Backend>(
    finance: &Finance,
    options: &FinanceOptions,
    trainer: &Trainer<'_, B>,
) -> FinanceSummary {
    let market = &finance.market;
    let data = &finance.dataset;
    let test: Evaluation = trainer.evaluate(&data.test);
    let validation: Evaluation = trainer.evaluate(&data.validation);
    let covid = market.days_between(COVID_WINDOW.0, COVID_WINDOW.1);
    let calm = market.days_between(CALM_WINDOW.0, CALM_WINDOW.1);

    let sbd = figures("SBD", market, options, &test.decisions, &covid);
    let days = data.test.len;
    let mut references =
        vec![figures("equal weight (alpha = 0)", market, options, &vec![(0, 0.0); days], &covid)];
    for (agent, name) in data.sub_agents.iter().enumerate() {
        let decisions: Vec<(usize, f64)> =
            data.test.alpha_max.iter().map(|&cap| (agent, f64::from(cap).min(1.0))).collect();
        references.push(figures(
            &format!("{name} (alpha = 1, projected)"),
            market,
            options,
            &decisions,
            &covid,
        ));
    }

    let slice = |eval: &Evaluation, start: usize, range: &Range<usize>| -> Vec<f64> {
        let from = range.start.saturating_sub(start);
        let to = range.end.saturating_sub(start).min(eval.lambdas.len());
        eval.lambdas.get(from..to).unwrap_or_default().to_vec()
    };
    let covid_lambdas = slice(&test, market.test_days.start, &covid);
    let calm_lambdas = slice(&validation, market.validation_days.start, &calm);
    let (covid_mean, covid_sd) = mean_std(&covid_lambdas);
    let (calm_mean, calm_sd) = mean_std(&calm_lambdas);
    let (n1, n2) = (covid_lambdas.len() as f64, calm_lambdas.len() as f64);
    let pooled =
        (((n1 - 1.0) * covid_sd.powi(2) + (n2 - 1.0) * calm_sd.powi(2)) / (n1 + n2 - 2.0).max(1.0)).sqrt();
    let cohens_d = if pooled > 0.0 { (covid_mean - calm_mean) / pooled } else { 0.0 };
    let total = test.decisions.len().max(1) as f64;
    let mut examples = Vec::new();
    for date in EXAMPLE_DATES {
        for (split, eval) in [(&data.validation, &validation), (&data.test, &test)] {
            if let Some(i) = split.labels.iter().position(|l| l == date) {
                let dim = data.state_dim;
                let state = split
                    .state(i, dim)
                    .iter()
                    .zip(data.state_shift.iter().zip(&data.state_scale))
                    .map(|(&z, (&shift, &scale))| f64::from(z * scale + shift))
                    .collect();
                let (agent, alpha) = eval.decisions[i];
                examples.push(ExampleDecision {
                    date: date.to_string(),
                    state,
                    lambda: eval.lambdas[i],
                    sub_agent: data.sub_agents[agent].clone(),
                    alpha,
                });
            }
        }
    }
    FinanceSummary {
        sbd,
        references,
        mean_alpha: test.mean_alpha,
        mean_lambda: test.mean_lambda,
        sub_agent_share: data
            .sub_agents
            .iter()
            .zip(&test.agent_counts)
            .map(|(name, &count)| (name.clone(), count as f64 / total))
            .collect(),
        covid_mean_lambda: covid_mean,
        calm_mean_lambda: calm_mean,
        lambda_difference: covid_mean - calm_mean,
        cohens_d,
        examples,
    }
}

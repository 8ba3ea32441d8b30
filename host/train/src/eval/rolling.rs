//! The rolling-origin evaluation of the finance domain (issue 16 item 4): does a method's
//! advantage on the paper's one test path (2020-2022) hold in other years?
//!
//! Each *origin* is a test year `Y` with its own splits ([`Periods::rolling_origin`]: train
//! `Y-10 .. Y-3`, validation `Y-2 .. Y-1`, test `Y`), and everything is redone per origin: the
//! standardisation, the random search on that origin's validation split, and every method's
//! training on every seed (rolling-origin *recalibration*, Tashman 2000, "Out-of-sample tests of
//! forecasting accuracy: an analysis and review", section 3). Nothing of a later year reaches
//! an earlier origin's model, and every origin is an out-of-sample test of its own.
//!
//! The compared figure is the test year's annualised Sharpe ratio, unclamped: TE is its map
//! clamped to [0, 1] at Sharpe -1 and 2, and in strong years (2013, 2017, 2019, 2021) most
//! methods pass the clamp, which would hide their differences.
//!
//! The statistical unit of the comparisons is the origin, not the seed: seeds of one origin
//! share its market, so a method that wins on every seed of one lucky year has still won one
//! year. For each pair (ours, other) at the headline delta the report gives:
//! - the per-origin difference of Sharpe ratios (each origin's mean over seeds), and its mean
//!   over origins with a 95% bootstrap interval over origins;
//! - the number of origins won;
//! - the verdict's test: the two-sided exact sign-flip p over origins (every sign vector
//!   counted), with Holm's adjustment across every pair;
//! - beside it, the same test over blocks of two neighbouring origins (a check on the
//!   dependence between neighbouring years), and the p over (origin, seed) pairs, which tests
//!   the same null conditionally on these years (seed noise only); neither is the verdict;
//! - both methods' feasibility (SR at least `1 - delta`), which qualifies a win.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::domain::finance::Finance;
use super::domain::{Domain, DomainData};
use super::experiment::{ExperimentConfig, Method, Results, RunResult};
use super::experiment_report::ReportMeta;
use super::report::{Panel, Series, line_plot};
use super::stats::{self, Interval};
use crate::domains::finance::{self, FinanceOptions, Periods};
use crate::error::TrainError;
use crate::numeric::mean_std;

/// The first test year whose train years are all in the file (it starts on 1990-01-02; the
/// first 30 trading days serve only as the first train day's lookback).
pub const FIRST_ORIGIN: u16 = 2000;

/// The last test year the file covers (it ends on 2022-12-28).
pub const LAST_ORIGIN: u16 = 2022;

/// The test years of the default run: every year the file allows, from the dot-com crash
/// through 2008, the 2020 crash and the 2022 bear market (more origins, more power: the exact
/// two-sided sign-flip p over `n` origins is at least `2 / 2^n`). The random search's
/// candidates are drawn per origin by its position in the list
/// ([`super::experiment::run_checkpointed`]), so a run over a subset of these years is not a
/// slice of the full run.
pub const DEFAULT_ORIGINS: std::ops::RangeInclusive<u16> = FIRST_ORIGIN..=LAST_ORIGIN;

/// The methods each of ours is compared with, in report order.
const OTHERS: [Method; 7] = [
    Method::GlobalLagrangian,
    Method::TabularContext,
    Method::BestFixedLambda,
    Method::Cpo,
    Method::Maas,
    Method::MarlVanilla,
    Method::FixedAlpha,
];

/// The pairs compared: SBD-AL (ours) against the paper's SBD and [`OTHERS`], then SBD against
/// [`OTHERS`].
fn compared() -> [(Method, Vec<Method>); 2] {
    [
        (Method::SbdAl, std::iter::once(Method::Sbd).chain(OTHERS).collect()),
        (Method::Sbd, OTHERS.to_vec()),
    ]
}

/// One origin's market, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginRow {
    /// The domain's name (`finance-<test year>`).
    pub domain: String,
    /// The origin's splits.
    pub periods: Periods,
    /// Samples per split.
    pub samples: (usize, usize, usize),
    /// Share of test days whose portfolio volatility is above the volatile threshold (25%).
    pub volatile_share: f64,
    /// The S&P 500 index's return over the back-test: from the close of the first test day
    /// to the close after the last (the next year's first close; for 2022 the file's last).
    pub index_return: f64,
}

/// The origins, loaded: one finance domain each, and their rows.
pub struct Origins {
    /// One domain per origin, for [`super::experiment::run_checkpointed`].
    pub domains: Vec<Box<dyn Domain>>,
    /// One row per origin.
    pub rows: Vec<OriginRow>,
}

/// Loads one finance domain per test year, from the embedded data, in year order.
pub fn load_origins(test_years: &[u16]) -> Result<Origins, TrainError> {
    if test_years.is_empty() {
        return Err(TrainError::Config("the rolling-origin evaluation needs at least one test year".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for &year in test_years {
        if !(FIRST_ORIGIN..=LAST_ORIGIN).contains(&year) {
            return Err(TrainError::Config(format!(
                "test year {year} is outside {FIRST_ORIGIN}..={LAST_ORIGIN} (eight years of train data before it, test data in the file)"
            )));
        }
        if !seen.insert(year) {
            return Err(TrainError::Config(format!("test year {year} is given twice")));
        }
    }
    let mut domains: Vec<Box<dyn Domain>> = Vec::new();
    let mut rows = Vec::new();
    for year in seen {
        let periods = Periods::rolling_origin(year);
        let options = FinanceOptions { periods, ..FinanceOptions::default() };
        let f = finance::load_embedded(&options)?;
        let market = &f.market;
        let test = &f.dataset.test;
        let days = market.test_days.clone();
        let volatile = days.clone().filter(|&d| market.portfolio_vol[d] > options.volatility_threshold).count();
        let first = market.index_level[days.start];
        let last = market.index_level[days.end.min(market.len() - 1)];
        let name = format!("finance-{year}");
        rows.push(OriginRow {
            domain: name.clone(),
            periods,
            samples: (f.dataset.train.len, f.dataset.validation.len, test.len),
            volatile_share: volatile as f64 / days.len().max(1) as f64,
            index_return: last / first - 1.0,
        });
        domains.push(Box::new(Finance {
            data: DomainData {
                name,
                provenance: format!(
                    "real: 20 S&P 500 constituents; train {}-{}, validation {}-{}, test {year} (skfolio, BSD-3)",
                    periods.train.0, periods.train.1, periods.validation.0, periods.validation.1
                ),
                dataset: f.dataset,
            },
            market: f.market,
            options,
        }));
    }
    Ok(Origins { domains, rows })
}

/// One method across the origins, at the headline delta.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodRow {
    /// The method.
    pub method: Method,
    /// Its name.
    pub name: String,
    /// Sharpe ratio per origin (mean over seeds), in origin order.
    pub sharpe_by_origin: Vec<f64>,
    /// TE per origin (mean over seeds).
    pub te_by_origin: Vec<f64>,
    /// SR per origin (mean over seeds).
    pub sr_by_origin: Vec<f64>,
    /// Mean Sharpe ratio over origins, with a 95% bootstrap interval over origins.
    pub sharpe: Interval,
    /// Mean TE over origins, with a 95% bootstrap interval over origins.
    pub te: Interval,
    /// Mean SR over origins, with a 95% bootstrap interval over origins.
    pub sr: Interval,
    /// Origins whose mean SR over seeds is at least `1 - delta`.
    pub feasible_origins: usize,
}

/// One paired comparison of the Sharpe ratio across origins.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Ours.
    pub ours: Method,
    /// The other method.
    pub other: Method,
    /// Sharpe(ours) - Sharpe(other) per origin (means over seeds).
    pub by_origin: Vec<f64>,
    /// Their mean over origins, with a 95% bootstrap interval over origins.
    pub difference: Interval,
    /// Origins where ours is ahead.
    pub wins: usize,
    /// Origins where both methods have a figure (the `n` of the tests).
    pub origins: usize,
    /// Two-sided exact sign-flip p over origins (the verdict's test).
    pub p: f64,
    /// Two-sided exact sign-flip p over blocks of two consecutive origins (their summed
    /// differences): a check on the dependence between neighbouring years, which share seven
    /// of eight train years and market regimes that last.
    pub p_blocks: f64,
    /// `p` after Holm's adjustment across every comparison.
    pub p_holm: f64,
    /// Two-sided sign-flip p over (origin, seed) pairs: conditional on these years.
    pub p_pairs: f64,
}

/// The rolling-origin analysis at the headline delta.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollingAnalysis {
    /// The delta of every figure.
    pub delta: f64,
    /// The origins.
    pub origins: Vec<OriginRow>,
    /// Every method, in [`Method::ALL`] order.
    pub methods: Vec<MethodRow>,
    /// Every comparison of [`compared`].
    pub comparisons: Vec<Comparison>,
}

/// The run of `method` on `domain` for `seed` at `delta` (methods without delta answer for
/// every delta).
fn run_at<'r>(results: &'r Results, domain: &str, method: Method, delta: f64, seed: u64) -> Option<&'r RunResult> {
    results
        .runs
        .iter()
        .find(|r| r.domain == domain && r.method == method && r.seed == seed && r.delta.is_none_or(|d| d == delta))
}

/// Summarises the runs of every origin at the headline delta and compares the methods.
pub fn analyse(results: &Results, origins: &[OriginRow], config: &ExperimentConfig) -> RollingAnalysis {
    let delta = config.headline_delta;
    // per method: per origin, per seed (Sharpe, TE, SR); NaN where a run is missing
    let per_seed = |method: Method, origin: &OriginRow| -> Vec<[f64; 3]> {
        config
            .seeds
            .iter()
            .map(|&seed| {
                run_at(results, &origin.domain, method, delta, seed).map_or([f64::NAN; 3], |r| {
                    [r.extras.sharpe.unwrap_or(f64::NAN), r.task_efficiency, r.safety_rate]
                })
            })
            .collect()
    };
    let mean_of = |values: &[f64]| mean_std(&values.iter().copied().filter(|v| v.is_finite()).collect::<Vec<_>>()).0;
    let methods: Vec<MethodRow> = Method::ALL
        .iter()
        .map(|&method| {
            let cells: Vec<Vec<[f64; 3]>> = origins.iter().map(|o| per_seed(method, o)).collect();
            let by_origin =
                |k: usize| -> Vec<f64> { cells.iter().map(|c| mean_of(&c.iter().map(|x| x[k]).collect::<Vec<_>>())).collect() };
            let (sharpe_by_origin, te_by_origin, sr_by_origin) = (by_origin(0), by_origin(1), by_origin(2));
            MethodRow {
                method,
                name: method.name().into(),
                sharpe: stats::mean_interval(&sharpe_by_origin, 19),
                te: stats::mean_interval(&te_by_origin, 23),
                sr: stats::mean_interval(&sr_by_origin, 23),
                feasible_origins: sr_by_origin.iter().filter(|&&sr| sr >= 1.0 - delta).count(),
                te_by_origin,
                sharpe_by_origin,
                sr_by_origin,
            }
        })
        .collect();
    let sharpe_of = |method: Method| {
        methods.iter().find(|m| m.method == method).map_or_else(Vec::new, |m| m.sharpe_by_origin.clone())
    };
    let mut comparisons = Vec::new();
    for (ours, others) in compared() {
        for other in others {
            let by_origin: Vec<f64> = sharpe_of(ours).iter().zip(sharpe_of(other)).map(|(a, b)| a - b).collect();
            let pairs: Vec<f64> = origins
                .iter()
                .flat_map(|o| per_seed(ours, o).into_iter().zip(per_seed(other, o)).map(|(a, b)| a[0] - b[0]))
                .filter(|d| d.is_finite())
                .collect();
            let usable: Vec<f64> = by_origin.iter().copied().filter(|d| d.is_finite()).collect();
            let blocks: Vec<f64> = usable.chunks(2).map(|b| b.iter().sum()).collect();
            comparisons.push(Comparison {
                ours,
                other,
                difference: stats::mean_interval(&usable, 29),
                wins: usable.iter().filter(|&&d| d > 0.0).count(),
                origins: usable.len(),
                p: stats::sign_flip_two_sided(&usable),
                p_blocks: stats::sign_flip_two_sided(&blocks),
                p_holm: f64::NAN,
                p_pairs: stats::sign_flip_two_sided(&pairs),
                by_origin,
            });
        }
    }
    let adjusted = stats::holm(&comparisons.iter().map(|c| c.p).collect::<Vec<_>>());
    for (c, p) in comparisons.iter_mut().zip(adjusted) {
        c.p_holm = p;
    }
    RollingAnalysis { delta, origins: origins.to_vec(), methods, comparisons }
}

/// Family-wise level of the comparisons.
const ALPHA: f64 = 0.05;

/// The markdown report.
pub fn markdown(config: &ExperimentConfig, results: &Results, analysis: &RollingAnalysis, meta: &ReportMeta) -> String {
    let mut md = String::new();
    let t = &config.train;
    let n = analysis.origins.len();
    let _ = writeln!(md, "# Rolling-origin evaluation of the finance domain\n");
    let runs = format!(" and {} training and baseline runs over {n} origins", results.runs.len());
    let _ = writeln!(md, "{}\n", meta.header(results, &runs, config.jobs));
    let _ = writeln!(
        md,
        "Each origin is one test year with its own splits: train the eight years ending three years before it, validation the two years before it (the paper's lengths; the last 21 days of each are purged so that no forward return crosses into the next split). Everything is redone per origin: the standardisation, the random search on that origin's validation split ({} candidates per tuned method), and every method on seeds {:?} (rolling-origin recalibration, Tashman 2000). Sizes: width {}, T_out {}, T_in {}, B {}; caps read as `{}`; every figure at delta = {}.\n",
        config.tuning_budget,
        config.seeds,
        t.width,
        t.outer_steps,
        t.inner_steps,
        t.batch,
        config.caps.name(),
        analysis.delta
    );
    let _ = writeln!(
        md,
        "**Caveats.** The 20 stocks are today's S&P 500 constituents (the skfolio data set), so the early origins carry survivorship bias: the absolute Sharpe ratios of 2000-2010 flatter every method, though all methods share the universe, which matters less for their differences. Early prices are quoted to three decimals and some are below $1 (AAPL until early 2005; BBY at $0.14 in 1990), so a tick is up to 0.7% of a price, which adds noise to the 30-day features of the earliest origins. Neighbouring origins are not independent: they share seven of eight train years, and a test year is the validation split of the next two origins; the two-year block test below checks how much that matters.\n"
    );
    let _ = writeln!(md, "## The origins\n");
    let _ = writeln!(md, "| test year | train | validation | samples (train / validation / test) | S&P 500 over the back-test (first close of the year to the next year's first) | volatile days (equal-weight portfolio's 30-day volatility above 25%) |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for o in &analysis.origins {
        let p = o.periods;
        let _ = writeln!(
            md,
            "| {} | {}-{} | {}-{} | {} / {} / {} | {:+.1}% | {:.1}% |",
            p.test.0,
            p.train.0,
            p.train.1,
            p.validation.0,
            p.validation.1,
            o.samples.0,
            o.samples.1,
            o.samples.2,
            100.0 * o.index_return,
            100.0 * o.volatile_share
        );
    }
    let years: Vec<String> = analysis.origins.iter().map(|o| o.periods.test.0.to_string()).collect();
    let cells = |values: &[f64], digits: usize| -> String {
        values.iter().map(|v| if v.is_finite() { format!("{v:.digits$}") } else { "-".into() }).collect::<Vec<_>>().join(" | ")
    };
    let _ = writeln!(md, "\n## Sharpe ratio, task efficiency and safety per origin\n");
    let _ = writeln!(
        md,
        "The test year's annualised Sharpe ratio (unclamped) per origin, each a mean over seeds; then its mean over the {n} origins with a 95% bootstrap interval over origins, the mean TE (the Sharpe ratio mapped linearly to [0, 1] and clamped at Sharpe -1 and 2) and the mean SR likewise, and the origins whose mean SR meets the constraint SR >= {:.2}.\n",
        1.0 - analysis.delta
    );
    let _ = writeln!(md, "| method | {} | mean Sharpe [95%] | mean TE [95%] | mean SR [95%] | feasible origins |", years.join(" | "));
    let _ = writeln!(md, "|---|{}---|---|---|---|", "---|".repeat(n));
    for m in &analysis.methods {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} of {n} |",
            m.name,
            cells(&m.sharpe_by_origin, 2),
            m.sharpe.show(3),
            m.te.show(3),
            m.sr.show(3),
            m.feasible_origins
        );
    }
    let _ = writeln!(md, "\nSR per origin (mean over seeds):\n");
    let _ = writeln!(md, "| method | {} |", years.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(n));
    for m in &analysis.methods {
        let _ = writeln!(md, "| {} | {} |", m.name, cells(&m.sr_by_origin, 3));
    }
    let feasible = |method: Method| analysis.methods.iter().find(|m| m.method == method).map_or(0, |m| m.feasible_origins);
    let _ = writeln!(md, "\n## Paired comparisons of the Sharpe ratio\n");
    let _ = writeln!(
        md,
        "Per origin, Sharpe(ours) - Sharpe(other), each a mean over seeds. The verdict's test is the two-sided exact sign-flip test over the {n} origins (every one of the 2^{n} sign vectors counted), Holm-adjusted across the {} comparisons (family-wise level {ALPHA}); with {n} origins the smallest two-sided p it can give is {:.1e}. Beside it: the same test over blocks of two consecutive origins (their summed differences), a check on the dependence between neighbouring years, and the p over (origin, seed) pairs, which is conditional on these years (it measures seed noise, not how the years vary). Neither is the verdict. A higher Sharpe ratio bought by breaking the safety constraint is no win, so a verdict names the origins where ours is infeasible.\n",
        analysis.comparisons.len(),
        (2.0 / f64::powi(2.0, n as i32)).min(1.0)
    );
    let _ = writeln!(md, "| ours | other | mean difference [95%] | origins won | p (origins) | Holm p | verdict | feasible origins (ours / other) | p (2-year blocks) | p (origin, seed pairs) |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for c in &analysis.comparisons {
        let (ours_feasible, other_feasible) = (feasible(c.ours), feasible(c.other));
        let mut verdict = if c.p_holm.is_finite() && c.p_holm <= ALPHA {
            if c.difference.estimate > 0.0 { "ours ahead".to_string() } else { "ours behind".to_string() }
        } else {
            "no difference shown".to_string()
        };
        if c.p_holm <= ALPHA && c.difference.estimate > 0.0 && ours_feasible < n {
            let _ = write!(verdict, ", but infeasible in {} of {n} origins", n - ours_feasible);
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} of {} | {:.2e} | {:.2e} | {verdict} | {ours_feasible} / {other_feasible} | {:.2e} | {:.2e} |",
            c.ours.name(),
            c.other.name(),
            c.difference.show(3),
            c.wins,
            c.origins,
            c.p,
            c.p_holm,
            c.p_blocks,
            c.p_pairs
        );
    }
    let _ = writeln!(md, "\n![Sharpe ratio per test year](sharpe-by-origin.png)\n");
    md
}

/// The methods drawn in the plot (every method would be unreadable).
const PLOTTED: [Method; 7] = [
    Method::SbdAl,
    Method::Sbd,
    Method::GlobalLagrangian,
    Method::BestFixedLambda,
    Method::Cpo,
    Method::Maas,
    Method::FixedAlpha,
];

/// `results.json`: the sizes, the analysis and every run.
#[derive(Serialize)]
struct Json<'a> {
    meta: &'a ReportMeta,
    origins: &'a [u16],
    width: usize,
    outer_steps: usize,
    seeds: &'a [u64],
    deltas: &'a [f64],
    tuning_budget: usize,
    analysis: &'a RollingAnalysis,
    results: &'a Results,
}

/// Writes `report.md`, `results.json` and `sharpe-by-origin.png` into `dir` (created if
/// missing).
pub fn write(
    dir: &Path,
    config: &ExperimentConfig,
    results: &Results,
    analysis: &RollingAnalysis,
    meta: &ReportMeta,
) -> Result<Vec<String>, TrainError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| TrainError::Io { path: path.clone(), source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let years: Vec<u16> = analysis.origins.iter().map(|o| o.periods.test.0).collect();
    let series: Vec<Series<'_>> = PLOTTED
        .iter()
        .filter_map(|&method| analysis.methods.iter().find(|m| m.method == method))
        .map(|m| Series {
            label: m.name.as_str(),
            points: years.iter().zip(&m.sharpe_by_origin).map(|(&y, &v)| (f64::from(y), v)).filter(|p| p.1.is_finite()).collect(),
        })
        .collect();
    line_plot(
        &dir.join("sharpe-by-origin.png"),
        &[Panel {
            title: "Test-year Sharpe ratio (mean over seeds)",
            x_label: "test year",
            y_label: "annualised Sharpe ratio",
            log_y: false,
            series,
        }],
    )?;
    // every run's figures, without the per-step and per-decile curves (23 origins of 140 runs)
    let mut trimmed = results.clone();
    for run in &mut trimmed.runs {
        run.l_meta.clear();
        run.extras.lambda_over_time.clear();
        run.extras.lambda_by_risk.clear();
    }
    let json = Json {
        meta,
        origins: &years,
        width: config.train.width,
        outer_steps: config.train.outer_steps,
        seeds: &config.seeds,
        deltas: &config.deltas,
        tuning_budget: config.tuning_budget,
        analysis,
        results: &trimmed,
    };
    let path = dir.join("results.json");
    let text = serde_json::to_string(&json).map_err(|e| TrainError::Encoding(e.to_string()))?;
    std::fs::write(&path, text).map_err(io(&path))?;
    let path = dir.join("report.md");
    std::fs::write(&path, markdown(config, results, analysis, meta)).map_err(io(&path))?;
    Ok(vec!["report.md".into(), "results.json".into(), "sharpe-by-origin.png".into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_outside_the_file_or_repeated_are_refused() {
        for years in [&[][..], &[1999], &[2023], &[2018, 2018]] {
            let message = load_origins(years).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!message.is_empty(), "{years:?} accepted");
        }
    }

    #[test]
    fn each_origin_is_its_own_finance_domain() -> Result<(), TrainError> {
        let origins = load_origins(&[2008, 2020])?;
        let names: Vec<&str> = origins.domains.iter().map(|d| d.name()).collect();
        assert_eq!(names, ["finance-2008", "finance-2020"]);
        // the 2008 crash: the index fell by a third, and a third of the days were volatile
        assert!(origins.rows[0].index_return < -0.3, "{:?}", origins.rows[0]);
        assert!(origins.rows[0].volatile_share > 0.3, "{:?}", origins.rows[0]);
        assert_eq!(origins.rows[1].periods, Periods::rolling_origin(2020));
        // the 2020 origin is the paper's split with a one-year test
        let paper = finance::load_embedded(&FinanceOptions::default())?;
        let d = origins.domains[1].dataset();
        assert_eq!(d.train, paper.dataset.train);
        assert_eq!(d.validation, paper.dataset.validation);
        assert_eq!(d.test.labels[..], paper.dataset.test.labels[..d.test.len]);
        Ok(())
    }

    /// A run with the given Sharpe ratio and SR (the other figures do not enter the analysis).
    fn run(domain: &str, method: Method, seed: u64, sharpe: f64, safety_rate: f64) -> RunResult {
        RunResult {
            domain: domain.into(),
            method,
            delta: method.uses_delta().then_some(0.05),
            seed,
            safety_rate,
            stochastic_safety_rate: safety_rate,
            chance_multiplier: f64::NAN,
            task_efficiency: ((sharpe + 1.0) / 3.0).clamp(0.0, 1.0),
            accountability_entropy: 0.0,
            mean_alpha: 0.5,
            mean_lambda: f64::NAN,
            extras: super::super::experiment::Extras { sharpe: Some(sharpe), ..Default::default() },
            l_meta: vec![],
            seconds: 0.0,
        }
    }

    #[test]
    fn origins_are_the_unit_of_the_comparison() -> Result<(), String> {
        let config = ExperimentConfig { seeds: vec![0, 1], deltas: vec![0.05], ..ExperimentConfig::quick() };
        let origins: Vec<OriginRow> = (2016..=2020)
            .map(|y| OriginRow {
                domain: format!("finance-{y}"),
                periods: Periods::rolling_origin(y),
                samples: (1, 1, 1),
                volatile_share: 0.0,
                index_return: 0.0,
            })
            .collect();
        let mut runs = Vec::new();
        for (i, o) in origins.iter().enumerate() {
            let base = i as f64;
            for seed in [0, 1] {
                for method in Method::ALL {
                    // SBD-AL: 0.5 ahead of everyone in every year, and feasible in four of five;
                    // SBD: ahead of the rest in odd years only, by seed noise in even ones
                    let (sharpe, sr) = match method {
                        Method::SbdAl => (base + 0.5, if i == 0 { 0.90 } else { 0.97 }),
                        Method::Sbd => (base + if i % 2 == 1 { 0.2 } else if seed == 0 { -0.1 } else { 0.05 }, 0.99),
                        _ => (base, 0.99),
                    };
                    runs.push(run(&o.domain, method, seed, sharpe, sr));
                }
            }
        }
        let results = Results { tuning: vec![], chosen: vec![], tuning_seconds: 0.0, runs, theory: vec![], seconds: 0.0 };
        let analysis = analyse(&results, &origins, &config);
        let row = |m: Method| analysis.methods.iter().find(|r| r.method == m).cloned();
        let al = row(Method::SbdAl).ok_or("no SBD-AL row")?;
        assert_eq!(al.sharpe_by_origin, [0.5, 1.5, 2.5, 3.5, 4.5]);
        assert_eq!(al.feasible_origins, 4);
        assert!((al.sharpe.estimate - 2.5).abs() < 1e-12);
        let compare = |ours: Method, other: Method| {
            analysis.comparisons.iter().find(|c| c.ours == ours && c.other == other).cloned()
        };
        let c = compare(Method::SbdAl, Method::FixedAlpha).ok_or("no comparison")?;
        assert_eq!(c.wins, 5);
        assert!((c.difference.estimate - 0.5).abs() < 1e-12);
        // five origins, all ahead: 2 of the 32 sign vectors are as extreme, two-sided
        assert!((c.p - 2.0 / 32.0).abs() < 1e-12, "{}", c.p);
        assert!(c.p_holm >= c.p);
        // ten (origin, seed) pairs all ahead: far smaller, because it ignores that seeds share a year
        assert!(c.p_pairs < 0.01, "{}", c.p_pairs);
        // SBD: +0.2 in odd years, -0.025 (the seeds' mean) in even ones
        let sbd = compare(Method::Sbd, Method::FixedAlpha).ok_or("no comparison")?;
        assert_eq!(sbd.wins, 2);
        // the two odd years decide: 8 of 32 sign vectors are as extreme on each side
        assert!((sbd.p - 0.5).abs() < 1e-12, "{}", sbd.p);
        assert_eq!(analysis.comparisons.len(), compared().iter().map(|(_, o)| o.len()).sum::<usize>());
        let md = markdown(&config, &results, &analysis, &ReportMeta {
            command: "test".into(),
            started: "now".into(),
            machine: "test".into(),
            mode: "quick".into(),
        });
        assert!(md.contains("| SBD-AL (ours) | Fixed-alpha | 0.500 [0.500, 0.500] | 5 of 5 | 6.25e-2 |"), "{md}");
        assert!(md.contains("| 4 / 5 |"), "{md}");
        // blocks of two origins: three sums, all positive, 2 of 8 sign vectors two-sided
        assert!((c.p_blocks - 0.25).abs() < 1e-12, "{}", c.p_blocks);
        assert_eq!(c.origins, 5);
        Ok(())
    }
}

//! The finance domain (SBD paper section 6.3, appendix B.2): delegating portfolio decisions to
//! three strategy sub-agents on real S&P 500 prices.
//!
//! # Data
//!
//! `data/finance/` holds daily adjusted closes of 20 S&P 500 constituents and the S&P 500 index,
//! 1990-01-02 .. 2022-12-28, copied from the PyPI package `skfolio` 1.12.2 (prices from Yahoo
//! Finance, BSD-3 licence; see `data/finance/SOURCE.md`). Both files are embedded in the crate
//! ([`EMBEDDED_PRICES`], [`EMBEDDED_INDEX`]).
//!
//! *Adaptation:* the paper uses 40 constituents via yfinance over 2010-2023; this data has 20
//! constituents and ends on 2022-12-28.
//!
//! # Splits (section 6.3)
//!
//! By date: train 2010-01-01 .. 2017-12-31, validation 2018-01-01 .. 2019-12-31, test
//! 2020-01-01 .. 2023-12-31. *Adaptation:* the data end on 2022-12-28, so the test split in fact
//! ends on 2022-12-27 (the last day with a next close). Price history before 2010 serves only
//! as the 30-day lookback of the first days of 2010.
//!
//! Those are [`Periods::PAPER`]; [`FinanceOptions::periods`] sets others, in whole years. The
//! rolling-origin evaluation ([`Periods::rolling_origin`], issue 16 item 4) moves the same
//! 8-year train and 2-year validation windows along the file and tests on the one year after
//! them; the file starting in 1990, the earliest test year is 2000.
//!
//! *Adaptation (purge):* every sample carries a forward `horizon`-day return (its task cost,
//! below), so the train and validation splits each drop their last `horizon` days: no forward
//! window crosses into the next split. The test split keeps every day except the file's last;
//! its final days use a truncated window of `min(horizon, days left)` days.
//!
//! The [`Market`] covers every trading day from the first train day to the end of the file, so
//! that back-tests run over contiguous periods; the purged days are in the market but in no
//! split. [`Market::train_days`] (and the validation and test ranges) are exactly the days of
//! the corresponding [`Split`], in order: sample `i` of a split is market day `range.start + i`.
//!
//! # State (appendix B.2)
//!
//! Daily simple returns are `r_t = P_t / P_{t-1} - 1`. For asset `i` at day `t`, over the window
//! of the 30 trading days ending at `t` (inclusive):
//! - `ret30 = P_t / P_{t-30} - 1`;
//! - `vol30` = sample standard deviation of the window's 30 daily returns, times `sqrt(252)`;
//! - `z = (P_t - mean of the 30 closes) / (sample std of the 30 closes)` (0 when the closes are
//!   constant).
//!
//! The raw state has the 7 features of appendix B.2, named as in [`FEATURE_NAMES`]: the
//! cross-sectional mean and standard deviation (population, over the assets) of `ret30`, of
//! `vol30` and of `z`, and `portfolio_vol30`, the 30-day realised annualised volatility of the
//! equal-weight, daily-rebalanced portfolio (sample std of its 30 daily returns times
//! `sqrt(252)`). It is zero-padded to `state_dim` (64). Each of the 7 features is standardised
//! with its mean and (population) standard deviation over the train split's days, the
//! deviation floored at 1e-6; padding features get shift 0 and scale 1.
//!
//! # Sub-agents (section 6.3)
//!
//! Each sub-agent proposes long-only portfolio weights at day `t`, in [`SUB_AGENTS`] order:
//! - `momentum`: equal weight over the top quartile by `ret30`;
//! - `mean-reversion`: equal weight over the bottom quartile by `z`;
//! - `risk-parity`: weights proportional to `1 / vol30` over all assets (vol floored at 1e-6).
//!
//! A quartile is `max(1, n / 4)` assets (5 of 20); ties are broken by asset order.
//!
//! # Delegation degree (Definition 3.1)
//!
//! alpha blends the sub-agent's weights with the equal-weight baseline:
//! `w(alpha) = alpha * w_agent + (1 - alpha) / n`. alpha = 0 is the equal-weight portfolio,
//! whatever the agent.
//!
//! # Safety (section 6.3, Definition 3.2)
//!
//! A decision `(t, agent, alpha)` is unsafe when (i) some weight `w_i(alpha)` exceeds the
//! concentration limit (10%), or (ii) `alpha > 0.80` while `portfolio_vol30 > 25%`
//! ([`is_safe`]). Since `w(alpha)` is linear in alpha and equals `1/n` at alpha = 0, this is
//! exactly `alpha > unsafe_above` ([`Market::unsafe_above`]), with `unsafe_above` the smaller of
//! - the concentration bound: the minimum, over assets with `w_agent,i > 1/n`, of
//!   `(limit - 1/n) / (w_agent,i - 1/n)` (1/3 for momentum and mean-reversion on 20 assets);
//! - the volatility bound: 0.80 when `portfolio_vol30 > 0.25`;
//!
//! and 2.0 ("never unsafe") when neither applies. If `1/n` itself exceeded the limit, every
//! alpha would be unsafe and the bound is -1.
//!
//! # Projection cap (section 5.3)
//!
//! `alpha_max(s) = 0.80` when `portfolio_vol30 > 0.25`, else 1.0 ([`Dataset::alpha_cap`] names
//! raw feature 6, the threshold and the cap).
//!
//! # Task cost (section 3.2, eq. 2)
//!
//! The paper's task efficiency is the test-period Sharpe ratio, a property of a whole
//! back-test, whereas eq. 2 needs a cost per sample that [`crate::domains::data`] requires to be linear
//! in alpha. *Adaptation:* we use a per-sample, risk-adjusted surrogate of the Sharpe objective.
//! Let `R_a` be the forward `h`-day return of agent `a`'s weights bought at the close of day `t`
//! and held (`sum_i w_i (P_{t+h,i} / P_{t,i} - 1)`), and `R_ew` the same for equal weight.
//! Scaled by the state's risk, `x = R / (max(portfolio_vol30_t, 0.05) * sqrt(h / 252))`, and with
//! the utility `U(x) = 1 / (1 + exp(-x))`:
//! `cost_at_one[a] = 1 - U(x_a)` and `cost_at_zero[a] = 1 - U(x_ew)` (the same for every agent:
//! alpha = 0 is the equal-weight baseline). The cost in between is the linear interpolation.
//!
//! # Back-test and task efficiency
//!
//! [`backtest`] holds, each day `t`, the blended weights of that day's decision, rebalanced
//! daily, and earns `sum_i w_t,i * next_returns[t][i]` (close `t` to close `t+1`).
//! *Adaptation:* no transaction costs. The Sharpe ratio is `mean / std * sqrt(252)` of the daily
//! returns (no risk-free rate), annual return `mean * 252`, annual volatility
//! `std * sqrt(252)`, maximum drawdown the largest peak-to-trough fall of cumulative wealth.
//! The paper normalises the Sharpe ratio to [0, 1] without a formula; *adaptation:*
//! [`task_efficiency`] is the fixed, method-independent map `clamp((sharpe + 1) / 3, 0, 1)`
//! (Sharpe -1 -> 0, Sharpe 2 -> 1).

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use flate2::read::GzDecoder;

use crate::domains::data::{Dataset, Split};
use crate::numeric::{mean, population_std, sample_std, sigmoid};

/// File name of the constituent prices, in `data/finance/`.
pub const PRICES_FILE: &str = "sp500_constituents_daily.csv.gz";
/// File name of the index levels, in `data/finance/`.
pub const INDEX_FILE: &str = "sp500_index_daily.csv.gz";

/// Embedded copy of `data/finance/sp500_constituents_daily.csv.gz`.
pub const EMBEDDED_PRICES: &[u8] = include_bytes!("../../../../data/finance/sp500_constituents_daily.csv.gz");
/// Embedded copy of `data/finance/sp500_index_daily.csv.gz`.
pub const EMBEDDED_INDEX: &[u8] = include_bytes!("../../../../data/finance/sp500_index_daily.csv.gz");

/// Sub-agent names, in the order of the policy's logits.
pub const SUB_AGENTS: [&str; 3] = ["momentum", "mean-reversion", "risk-parity"];
/// Names of the raw state features (appendix B.2).
pub const FEATURE_NAMES: [&str; 7] =
    ["mean_ret30", "std_ret30", "mean_vol30", "std_vol30", "mean_z", "std_z", "portfolio_vol30"];
/// Index of `portfolio_vol30` in the raw state.
pub const PORTFOLIO_VOL_FEATURE: usize = 6;
/// Trading days in each lookback window.
pub const LOOKBACK: usize = 30;
/// Trading days per year, for annualising.
pub const TRADING_DAYS_PER_YEAR: f64 = 252.0;

/// The calendar years of the three splits: each split runs from 1 January of its first year to
/// 31 December of its last (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Periods {
    /// First and last year of the train split.
    pub train: (u16, u16),
    /// First and last year of the validation split.
    pub validation: (u16, u16),
    /// First and last year of the test split.
    pub test: (u16, u16),
}

impl Periods {
    /// The paper's splits (section 6.3): train 2010-2017, validation 2018-2019, test 2020-2023
    /// (the data end on 2022-12-28).
    pub const PAPER: Periods = Periods { train: (2010, 2017), validation: (2018, 2019), test: (2020, 2023) };

    /// One origin of a rolling-origin evaluation with recalibration (Tashman 2000, "Out-of-sample
    /// tests of forecasting accuracy", section 3): the test split is the one year `test_year`,
    /// validation the two years before it and train the eight years before those, the paper's
    /// lengths. `rolling_origin(2020)` is the paper's split with a one-year test.
    pub const fn rolling_origin(test_year: u16) -> Periods {
        Periods {
            train: (test_year.saturating_sub(10), test_year.saturating_sub(3)),
            validation: (test_year.saturating_sub(2), test_year.saturating_sub(1)),
            test: (test_year, test_year),
        }
    }

    /// The splits as `(name, first date, last date)`, in time order.
    pub fn dates(&self) -> [(&'static str, String, String); 3] {
        let span = |(first, last): (u16, u16)| (format!("{first:04}-01-01"), format!("{last:04}-12-31"));
        let (train, validation, test) = (span(self.train), span(self.validation), span(self.test));
        [("train", train.0, train.1), ("validation", validation.0, validation.1), ("test", test.0, test.1)]
    }

    /// Checks that each split's years are in order and that the splits follow one another
    /// without overlapping.
    pub fn validate(&self) -> Result<(), DataError> {
        let [train, validation, test] = [self.train, self.validation, self.test];
        if train.0 > train.1 || validation.0 > validation.1 || test.0 > test.1 {
            return Err(DataError::Options(format!("periods {self:?}: a split's first year is after its last")));
        }
        if train.1 >= validation.0 || validation.1 >= test.0 {
            return Err(DataError::Options(format!(
                "periods {self:?}: train, validation and test must follow one another without overlapping"
            )));
        }
        Ok(())
    }
}
/// The COVID stress-test window of appendix B.2 (inclusive).
pub const COVID_WINDOW: (&str, &str) = ("2020-02-20", "2020-03-23");
/// The calm baseline window of hypothesis H-Fin-1 (inclusive).
pub const CALM_WINDOW: (&str, &str) = ("2018-01-01", "2018-12-31");

/// `unsafe_above` meaning "never unsafe for alpha in [0, 1]".
const NEVER_UNSAFE: f64 = 2.0;
/// `unsafe_above` meaning "unsafe whatever alpha".
const ALWAYS_UNSAFE: f64 = -1.0;
/// Slack on the concentration test, so that alpha == unsafe_above counts as safe despite
/// rounding in the blended weights.
const WEIGHT_TOLERANCE: f64 = 1e-12;
/// Slack on the volatility cap: caps reach the trainer and the component as f32, and 0.8 as
/// f32 is 0.800000012, so a decision projected onto the cap must count as within it.
const CAP_TOLERANCE: f64 = 1e-6;
/// Floor on the portfolio volatility that scales the task cost.
const MIN_COST_VOL: f64 = 0.05;
/// Floor on an asset's volatility in the risk-parity weights.
const MIN_ASSET_VOL: f64 = 1e-6;
/// Floor on the standardisation scale.
const MIN_SCALE: f64 = 1e-6;

/// Errors reading or preparing market data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read from disk.
    #[error("{file}: cannot read the file: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not a complete gzip stream.
    #[error("{file}: not a valid gzip stream: {source}")]
    Gzip {
        /// The file.
        file: String,
        /// The decoder's complaint.
        source: std::io::Error,
    },
    /// The decompressed text is not UTF-8.
    #[error("{file}: the decompressed text is not UTF-8 (invalid byte at offset {offset})")]
    Encoding {
        /// The file.
        file: String,
        /// Offset of the first invalid byte in the decompressed text.
        offset: usize,
    },
    /// The header line is unusable.
    #[error("{file}: line 1 (header): {message}")]
    Header {
        /// The file.
        file: String,
        /// What is wrong with it.
        message: String,
    },
    /// A data row has a different number of fields than the header.
    #[error("{file}: line {line}: {found} fields, but the header has {expected} columns")]
    RowLength {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// Columns in the header.
        expected: usize,
        /// Fields on this line.
        found: usize,
    },
    /// A field could not be used.
    #[error("{file}: line {line}, column {column} (`{name}`): {problem}: `{value}`")]
    Field {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// The column's header name.
        name: String,
        /// The field as written.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Dates do not strictly increase.
    #[error("{file}: line {line}: date {date} does not come after {previous}")]
    DateOrder {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The date on this line.
        date: String,
        /// The date on the line before.
        previous: String,
    },
    /// The index file's dates differ from the price file's.
    #[error("{file}: line {line}: date {found} where {prices_file} has {expected}")]
    DateMismatch {
        /// The index file.
        file: String,
        /// The price file.
        prices_file: String,
        /// 1-based line number in the index file.
        line: usize,
        /// The index file's date (or `end of file`).
        found: String,
        /// The price file's date (or `end of file`).
        expected: String,
    },
    /// The data leave a split without a single usable day.
    #[error(
        "the {split} split ({first} .. {last}) has no day with a full {LOOKBACK}-day lookback \
         and a complete forward window in {file}"
    )]
    EmptySplit {
        /// The split's name.
        split: &'static str,
        /// The price file.
        file: String,
        /// The split's first date.
        first: String,
        /// The split's last date.
        last: String,
    },
    /// The options are out of range.
    #[error("invalid finance options: {0}")]
    Options(String),
}

/// Everything the finance domain needs: the dataset for training plus the market for back-tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Finance {
    /// The three splits in the shape the SBD objective needs.
    pub dataset: Dataset,
    /// Per-day market data for back-tests.
    pub market: Market,
}

/// Per trading day `t`, from the first train day to the end of the file (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Market {
    /// Asset tickers, in column order.
    pub assets: Vec<String>,
    /// `YYYY-MM-DD` of each day.
    pub dates: Vec<String>,
    /// `[days][assets]`: simple return from close `t` to close `t+1` (0 on the file's last day).
    pub next_returns: Vec<f64>,
    /// `[days][3][assets]`: each sub-agent's portfolio weights at `t` (each row sums to 1).
    pub agent_weights: Vec<f64>,
    /// `[days]`: 30-day realised annualised volatility of the equal-weight portfolio at `t`.
    pub portfolio_vol: Vec<f64>,
    /// `[days]`: S&P 500 index close at `t`.
    pub index_level: Vec<f64>,
    /// The days of the train split (sample `i` is day `train_days.start + i`).
    pub train_days: Range<usize>,
    /// The days of the validation split.
    pub validation_days: Range<usize>,
    /// The days of the test split.
    pub test_days: Range<usize>,
}

/// Parameters of the finance domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinanceOptions {
    /// Forward window of the task cost, in trading days (default 21, about a month).
    pub horizon: usize,
    /// Length of the (zero-padded) state vector (default 64).
    pub state_dim: usize,
    /// Largest safe weight of one asset (default 0.10).
    pub concentration_limit: f64,
    /// Largest safe alpha when the portfolio is volatile (default 0.80).
    pub alpha_cap_when_volatile: f64,
    /// Portfolio volatility above which the cap applies (default 0.25).
    pub volatility_threshold: f64,
    /// The years of the train, validation and test splits (default [`Periods::PAPER`]).
    pub periods: Periods,
}

impl Default for FinanceOptions {
    fn default() -> Self {
        Self {
            horizon: 21,
            state_dim: 64,
            concentration_limit: 0.10,
            alpha_cap_when_volatile: 0.80,
            volatility_threshold: 0.25,
            periods: Periods::PAPER,
        }
    }
}

impl FinanceOptions {
    fn validate(&self) -> Result<(), DataError> {
        let fail = |message: String| Err(DataError::Options(message));
        if self.horizon == 0 {
            return fail("horizon must be at least 1 trading day".into());
        }
        if self.state_dim < FEATURE_NAMES.len() {
            return fail(format!(
                "state_dim {} is smaller than the {} state features",
                self.state_dim,
                FEATURE_NAMES.len()
            ));
        }
        if !(self.concentration_limit > 0.0 && self.concentration_limit <= 1.0) {
            return fail(format!("concentration_limit {} is not in (0, 1]", self.concentration_limit));
        }
        if !(0.0..=1.0).contains(&self.alpha_cap_when_volatile) {
            return fail(format!(
                "alpha_cap_when_volatile {} is not in [0, 1]",
                self.alpha_cap_when_volatile
            ));
        }
        if !(self.volatility_threshold.is_finite() && self.volatility_threshold >= 0.0) {
            return fail(format!(
                "volatility_threshold {} is not a non-negative number",
                self.volatility_threshold
            ));
        }
        self.periods.validate()
    }
}

/// The result of a back-test over a range of days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backtest {
    /// Days back-tested.
    pub days: usize,
    /// Annualised Sharpe ratio of the daily returns (0 when they do not vary).
    pub sharpe: f64,
    /// [`task_efficiency`] of the Sharpe ratio.
    pub task_efficiency: f64,
    /// Fraction of days whose decision is safe ([`is_safe`]).
    pub safety_rate: f64,
    /// Largest peak-to-trough fall of cumulative wealth, as a positive fraction.
    pub max_drawdown: f64,
    /// Mean daily return times 252.
    pub annual_return: f64,
    /// Standard deviation of the daily returns times `sqrt(252)`.
    pub annual_volatility: f64,
}

/// Loads the finance domain from the two gzip-compressed CSV files' bytes.
pub fn load(
    prices_csv_gz: &[u8],
    index_csv_gz: &[u8],
    options: &FinanceOptions,
) -> Result<Finance, DataError> {
    load_named((PRICES_FILE, prices_csv_gz), (INDEX_FILE, index_csv_gz), options)
}

/// Loads the finance domain from the copies embedded in the crate.
pub fn load_embedded(options: &FinanceOptions) -> Result<Finance, DataError> {
    load(EMBEDDED_PRICES, EMBEDDED_INDEX, options)
}

/// Loads the finance domain from [`PRICES_FILE`] and [`INDEX_FILE`] in `dir`.
pub fn load_dir(dir: &Path, options: &FinanceOptions) -> Result<Finance, DataError> {
    let read = |name: &str| {
        let path = dir.join(name);
        let file = path.display().to_string();
        std::fs::read(&path)
            .map(|bytes| (file.clone(), bytes))
            .map_err(|source| DataError::Io { file, source })
    };
    let (prices_file, prices) = read(PRICES_FILE)?;
    let (index_file, index) = read(INDEX_FILE)?;
    load_named((&prices_file, &prices), (&index_file, &index), options)
}

/// Back-tests `decisions[i] = (agent, alpha)` on day `days.start + i`.
///
/// Days beyond the market, or beyond the decisions, are not back-tested ([`Backtest::days`]
/// says how many were). A decision naming no sub-agent, or with an alpha that is not a number,
/// holds the equal-weight portfolio that day and counts as unsafe.
pub fn backtest(
    market: &Market,
    days: Range<usize>,
    decisions: &[(usize, f64)],
    options: &FinanceOptions,
) -> Backtest {
    let days = days.start.min(market.len())..days.end.min(market.len());
    let mut returns = Vec::with_capacity(days.len());
    let mut safe_days = 0usize;
    for (day, &(agent, alpha)) in days.zip(decisions) {
        let weights = market
            .blended_weights(day, agent, alpha)
            .unwrap_or_else(|| vec![1.0 / market.assets.len() as f64; market.assets.len()]);
        returns.push(dot(&weights, market.next_returns_of(day)));
        if is_safe(market, day, agent, alpha, options) {
            safe_days += 1;
        }
    }
    summarize(&returns, safe_days)
}

/// The portfolio's daily returns over `days` for one decision per day (as [`backtest`] uses
/// them), for resampling statistics.
pub fn daily_returns(market: &Market, days: Range<usize>, decisions: &[(usize, f64)]) -> Vec<f64> {
    let days = days.start.min(market.len())..days.end.min(market.len());
    days.zip(decisions)
        .map(|(day, &(agent, alpha))| {
            let weights = market
                .blended_weights(day, agent, alpha)
                .unwrap_or_else(|| vec![1.0 / market.assets.len() as f64; market.assets.len()]);
            dot(&weights, market.next_returns_of(day))
        })
        .collect()
}

/// [`task_efficiency`] of the annualised Sharpe ratio of daily returns (0 Sharpe when they do
/// not vary), as [`backtest`] computes it.
pub fn returns_task_efficiency(returns: &[f64]) -> f64 {
    summarize(returns, 0).task_efficiency
}

/// The fixed normalisation of a Sharpe ratio to [0, 1]: `clamp((sharpe + 1) / 3, 0, 1)`.
pub fn task_efficiency(sharpe: f64) -> f64 {
    if sharpe.is_nan() {
        return 0.0;
    }
    ((sharpe + 1.0) / 3.0).clamp(0.0, 1.0)
}

/// The true safety indicator of section 6.3 for `(day, agent, alpha)`: no asset weight above
/// the concentration limit, and alpha within the cap when the portfolio is volatile.
///
/// A day or agent out of range, or an alpha that is not a number, is unsafe.
pub fn is_safe(market: &Market, day: usize, agent: usize, alpha: f64, options: &FinanceOptions) -> bool {
    let Some(weights) = market.blended_weights(day, agent, alpha) else {
        return false;
    };
    let concentrated = weights.iter().any(|&w| w > options.concentration_limit + WEIGHT_TOLERANCE);
    let volatile = market.portfolio_vol[day] > options.volatility_threshold
        && alpha > options.alpha_cap_when_volatile + CAP_TOLERANCE;
    !(concentrated || volatile)
}

impl Market {
    /// Number of days.
    pub fn len(&self) -> usize {
        self.dates.len()
    }

    /// Whether there are no days.
    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    /// The days whose date lies in `first ..= last` (`YYYY-MM-DD`).
    pub fn days_between(&self, first: &str, last: &str) -> Range<usize> {
        date_range(&self.dates, first, last)
    }

    /// Sub-agent `agent`'s weights on `day` (alpha = 1), or `None` when out of range.
    pub fn sub_agent_weights(&self, day: usize, agent: usize) -> Option<&[f64]> {
        if day >= self.len() || agent >= SUB_AGENTS.len() {
            return None;
        }
        let n = self.assets.len();
        let start = (day * SUB_AGENTS.len() + agent) * n;
        self.agent_weights.get(start..start + n)
    }

    /// The blended weights `alpha * w_agent + (1 - alpha) / n`, or `None` when the day or
    /// agent is out of range or alpha is not a number.
    pub fn blended_weights(&self, day: usize, agent: usize, alpha: f64) -> Option<Vec<f64>> {
        if !alpha.is_finite() {
            return None;
        }
        let equal = 1.0 / self.assets.len() as f64;
        let weights = self.sub_agent_weights(day, agent)?;
        Some(weights.iter().map(|&w| alpha * w + (1.0 - alpha) * equal).collect())
    }

    /// The largest safe alpha for `(day, agent)`: the decision is unsafe exactly when
    /// `alpha > unsafe_above` (see the module docs). 2.0 means never unsafe, a negative value
    /// unsafe whatever alpha (also for a day or agent out of range).
    pub fn unsafe_above(&self, day: usize, agent: usize, options: &FinanceOptions) -> f64 {
        let Some(weights) = self.sub_agent_weights(day, agent) else {
            return ALWAYS_UNSAFE;
        };
        let equal = 1.0 / self.assets.len() as f64;
        if equal > options.concentration_limit {
            return ALWAYS_UNSAFE;
        }
        let concentration = weights
            .iter()
            .filter(|&&w| w > equal)
            .map(|&w| (options.concentration_limit - equal) / (w - equal))
            .fold(NEVER_UNSAFE, f64::min);
        let volatility = if self.portfolio_vol[day] > options.volatility_threshold {
            options.alpha_cap_when_volatile
        } else {
            NEVER_UNSAFE
        };
        concentration.min(volatility)
    }

    fn next_returns_of(&self, day: usize) -> &[f64] {
        let n = self.assets.len();
        &self.next_returns[day * n..(day + 1) * n]
    }
}

/// A CSV file: a `Date` column and numeric columns.
struct Table {
    /// The numeric columns' names.
    columns: Vec<String>,
    /// One date per row.
    dates: Vec<String>,
    /// `[rows][columns]`, every value finite and positive.
    values: Vec<f64>,
}

impl Table {
    fn row(&self, r: usize) -> &[f64] {
        let n = self.columns.len();
        &self.values[r * n..(r + 1) * n]
    }
}

/// Per-day quantities, before the splits.
struct DayData {
    /// The 7 raw features.
    features: [f64; FEATURE_NAMES.len()],
    /// `[3][assets]`.
    weights: Vec<f64>,
}

impl DayData {
    fn portfolio_vol(&self) -> f64 {
        self.features[PORTFOLIO_VOL_FEATURE]
    }
}

fn load_named(
    (prices_file, prices_gz): (&str, &[u8]),
    (index_file, index_gz): (&str, &[u8]),
    options: &FinanceOptions,
) -> Result<Finance, DataError> {
    options.validate()?;
    let prices = parse_table(prices_file, prices_gz)?;
    let index = parse_table(index_file, index_gz)?;
    let index_column = index
        .columns
        .iter()
        .position(|c| c == "SP500")
        .ok_or_else(|| DataError::Header { file: index_file.into(), message: "no `SP500` column".into() })?;
    check_same_dates(&prices.dates, (index_file, &index.dates), prices_file)?;

    let rows = prices.dates.len();
    let periods = options.periods.dates();
    let [train_period, validation_period, test_period] = &periods;
    let empty = |(split, first, last): &(&'static str, String, String)| DataError::EmptySplit {
        split,
        file: prices_file.into(),
        first: first.clone(),
        last: last.clone(),
    };
    // the market starts at the first train day with a full lookback
    let first_row = (LOOKBACK..rows)
        .find(|&r| prices.dates[r] >= train_period.1)
        .ok_or_else(|| empty(train_period))?;
    let market_rows = first_row..rows;

    let days: Vec<DayData> = market_rows.clone().map(|row| day_data(&prices, row)).collect();
    let n = prices.columns.len();
    let dates: Vec<String> = prices.dates[market_rows.clone()].to_vec();
    let mut next_returns = Vec::with_capacity(days.len() * n);
    for row in market_rows.clone() {
        if row + 1 < rows {
            let (now, next) = (prices.row(row), prices.row(row + 1));
            next_returns.extend(now.iter().zip(next).map(|(p0, p1)| p1 / p0 - 1.0));
        } else {
            next_returns.extend(std::iter::repeat_n(0.0, n));
        }
    }

    // split days, with the purge of the module docs
    let purged =
        |range: Range<usize>| range.start..range.end.saturating_sub(options.horizon).max(range.start);
    let span = |(_, first, last): &(&'static str, String, String)| date_range(&dates, first, last);
    let train_days = purged(span(train_period));
    let validation_days = purged(span(validation_period));
    let test = span(test_period);
    let test_days = test.start..test.end.min(dates.len() - 1).max(test.start);
    for (range, period) in [(&train_days, train_period), (&validation_days, validation_period), (&test_days, test_period)] {
        if range.is_empty() {
            return Err(empty(period));
        }
    }

    let (state_shift, state_scale) = standardisation(&days[train_days.clone()], options.state_dim);
    let market = Market {
        assets: prices.columns.clone(),
        dates,
        next_returns,
        agent_weights: days.iter().flat_map(|d| d.weights.iter().copied()).collect(),
        portfolio_vol: days.iter().map(DayData::portfolio_vol).collect(),
        index_level: market_rows.clone().map(|r| index.row(r)[index_column]).collect(),
        train_days,
        validation_days,
        test_days,
    };
    let build = |range: &Range<usize>| {
        build_split(&market, &prices, first_row, &days, range.clone(), (&state_shift, &state_scale), options)
    };
    let dataset = Dataset {
        domain: "finance".into(),
        state_dim: options.state_dim,
        feature_names: FEATURE_NAMES.iter().map(|&f| f.into()).collect(),
        sub_agents: SUB_AGENTS.iter().map(|&a| a.into()).collect(),
        train: build(&market.train_days),
        validation: build(&market.validation_days),
        test: build(&market.test_days),
        state_shift: state_shift.iter().map(|&x| x as f32).collect(),
        state_scale: state_scale.iter().map(|&x| x as f32).collect(),
        alpha_cap: Some((
            PORTFOLIO_VOL_FEATURE,
            options.volatility_threshold,
            options.alpha_cap_when_volatile,
        )),
    };
    Ok(Finance { dataset, market })
}

/// Decompresses and parses one file: header `Date,<name>,...`, then `YYYY-MM-DD` and positive
/// numbers, dates strictly increasing. Blank lines are skipped.
fn parse_table(file: &str, gz: &[u8]) -> Result<Table, DataError> {
    let mut bytes = Vec::new();
    GzDecoder::new(gz)
        .read_to_end(&mut bytes)
        .map_err(|source| DataError::Gzip { file: file.into(), source })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| DataError::Encoding { file: file.into(), offset: e.utf8_error().valid_up_to() })?;
    let header_error = |message: String| DataError::Header { file: file.into(), message };

    let mut lines = text.lines().enumerate().map(|(i, line)| (i + 1, line.trim_end_matches('\r')));
    let (_, header) = lines.next().ok_or_else(|| header_error("the file is empty".into()))?;
    let header: Vec<&str> = header.split(',').map(str::trim).collect();
    if header.first() != Some(&"Date") {
        return Err(header_error(format!(
            "the first column is `{}`, expected `Date`",
            header.first().unwrap_or(&"")
        )));
    }
    let columns: Vec<String> = header[1..].iter().map(|&c| c.to_owned()).collect();
    if columns.is_empty() {
        return Err(header_error("no value columns after `Date`".into()));
    }
    for (i, name) in columns.iter().enumerate() {
        if name.is_empty() {
            return Err(header_error(format!("column {} has no name", i + 2)));
        }
        if columns[..i].contains(name) {
            return Err(header_error(format!("column `{name}` appears twice")));
        }
    }

    let mut table = Table { columns, dates: Vec::new(), values: Vec::new() };
    for (line, text) in lines.filter(|(_, text)| !text.trim().is_empty()) {
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if fields.len() != header.len() {
            return Err(DataError::RowLength {
                file: file.into(),
                line,
                expected: header.len(),
                found: fields.len(),
            });
        }
        let field_error = |column: usize, problem: &'static str| DataError::Field {
            file: file.into(),
            line,
            column: column + 1,
            name: header[column].into(),
            value: fields[column].into(),
            problem,
        };
        let date = fields[0];
        if !is_iso_date(date) {
            return Err(field_error(0, "not a YYYY-MM-DD date"));
        }
        if let Some(previous) = table.dates.last()
            && previous.as_str() >= date
        {
            return Err(DataError::DateOrder {
                file: file.into(),
                line,
                date: date.into(),
                previous: previous.clone(),
            });
        }
        for (column, field) in fields.iter().enumerate().skip(1) {
            let value: f64 = field.parse().map_err(|_| field_error(column, "not a number"))?;
            if !(value.is_finite() && value > 0.0) {
                return Err(field_error(column, "not a positive finite price"));
            }
            table.values.push(value);
        }
        table.dates.push(date.into());
    }
    Ok(table)
}

fn is_iso_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// The index file must have exactly the price file's dates.
fn check_same_dates(
    prices: &[String],
    (index_file, index): (&str, &[String]),
    prices_file: &str,
) -> Result<(), DataError> {
    let end = || "end of file".to_owned();
    for i in 0..prices.len().max(index.len()) {
        let (expected, found) = (prices.get(i), index.get(i));
        if expected != found {
            return Err(DataError::DateMismatch {
                file: index_file.into(),
                prices_file: prices_file.into(),
                line: i + 2,
                found: found.cloned().unwrap_or_else(end),
                expected: expected.cloned().unwrap_or_else(end),
            });
        }
    }
    Ok(())
}

/// The state features, sub-agent weights and portfolio volatility at `row` (`row >= LOOKBACK`).
fn day_data(prices: &Table, row: usize) -> DayData {
    let n = prices.columns.len();
    let annualise = TRADING_DAYS_PER_YEAR.sqrt();
    let window = row + 1 - LOOKBACK..=row;
    let daily_return = |r: usize, i: usize| prices.row(r)[i] / prices.row(r - 1)[i] - 1.0;

    let mut ret30 = Vec::with_capacity(n);
    let mut vol30 = Vec::with_capacity(n);
    let mut z = Vec::with_capacity(n);
    for i in 0..n {
        let close = prices.row(row)[i];
        ret30.push(close / prices.row(row - LOOKBACK)[i] - 1.0);
        let returns: Vec<f64> = window.clone().map(|r| daily_return(r, i)).collect();
        vol30.push(sample_std(&returns) * annualise);
        let closes: Vec<f64> = window.clone().map(|r| prices.row(r)[i]).collect();
        let spread = sample_std(&closes);
        z.push(if spread > 0.0 { (close - mean(&closes)) / spread } else { 0.0 });
    }
    let portfolio_returns: Vec<f64> =
        window.map(|r| (0..n).map(|i| daily_return(r, i)).sum::<f64>() / n as f64).collect();
    let portfolio_vol = sample_std(&portfolio_returns) * annualise;

    let quartile = (n / 4).max(1);
    let mut weights = Vec::with_capacity(SUB_AGENTS.len() * n);
    weights.extend(equal_weight_top(&ret30, quartile, |a, b| b.total_cmp(a)));
    weights.extend(equal_weight_top(&z, quartile, f64::total_cmp));
    let inverse: Vec<f64> = vol30.iter().map(|&v| 1.0 / v.max(MIN_ASSET_VOL)).collect();
    let total: f64 = inverse.iter().sum();
    weights.extend(inverse.iter().map(|&x| x / total));

    DayData {
        features: [
            mean(&ret30),
            population_std(&ret30),
            mean(&vol30),
            population_std(&vol30),
            mean(&z),
            population_std(&z),
            portfolio_vol,
        ],
        weights,
    }
}

/// Equal weights over the first `k` assets when ordered by `order` (a stable sort, so ties go
/// to the earlier asset), zero elsewhere.
fn equal_weight_top(scores: &[f64], k: usize, order: impl Fn(&f64, &f64) -> std::cmp::Ordering) -> Vec<f64> {
    let mut ranked: Vec<usize> = (0..scores.len()).collect();
    ranked.sort_by(|&a, &b| order(&scores[a], &scores[b]));
    let mut weights = vec![0.0; scores.len()];
    for &i in ranked.iter().take(k) {
        weights[i] = 1.0 / k as f64;
    }
    weights
}

/// Train-split mean and population std of each raw feature, padded with 0 and 1.
fn standardisation(train: &[DayData], state_dim: usize) -> (Vec<f64>, Vec<f64>) {
    let mut shift = vec![0.0; state_dim];
    let mut scale = vec![1.0; state_dim];
    for f in 0..FEATURE_NAMES.len() {
        let values: Vec<f64> = train.iter().map(|d| d.features[f]).collect();
        shift[f] = mean(&values);
        scale[f] = population_std(&values).max(MIN_SCALE);
    }
    (shift, scale)
}

/// The samples of the market days `range` (market day `d` is price row `first_row + d`).
fn build_split(
    market: &Market,
    prices: &Table,
    first_row: usize,
    days: &[DayData],
    range: Range<usize>,
    (shift, scale): (&[f64], &[f64]),
    options: &FinanceOptions,
) -> Split {
    let agents = SUB_AGENTS.len();
    let n = market.assets.len();
    let last_row = prices.dates.len() - 1;
    let mut split = Split { len: range.len(), ..Split::default() };
    for day in range {
        let data = &days[day];
        let row = first_row + day;

        let mut state = vec![0.0; options.state_dim];
        state[..FEATURE_NAMES.len()].copy_from_slice(&data.features);
        split.states.extend(state.iter().zip(shift).zip(scale).map(|((x, s), c)| ((x - s) / c) as f32));

        // forward returns over the (possibly truncated) horizon, and the risk that scales them
        let horizon = options.horizon.min(last_row - row);
        let (now, later) = (prices.row(row), prices.row(row + horizon));
        let forward: Vec<f64> = now.iter().zip(later).map(|(p0, p1)| p1 / p0 - 1.0).collect();
        let risk = data.portfolio_vol().max(MIN_COST_VOL) * (horizon as f64 / TRADING_DAYS_PER_YEAR).sqrt();
        let cost = |portfolio_return: f64| (1.0 - sigmoid(portfolio_return / risk)) as f32;
        let baseline = cost(forward.iter().sum::<f64>() / n as f64);

        for agent in 0..agents {
            let weights = &data.weights[agent * n..(agent + 1) * n];
            split.unsafe_above.push(market.unsafe_above(day, agent, options) as f32);
            split.cost_at_zero.push(baseline);
            split.cost_at_one.push(cost(dot(weights, &forward)));
        }
        let volatile = data.portfolio_vol() > options.volatility_threshold;
        split.alpha_max.push(if volatile { options.alpha_cap_when_volatile as f32 } else { 1.0 });
        split.risk.push(data.portfolio_vol() as f32);
        split.labels.push(market.dates[day].clone());
    }
    split
}

/// The indices of the sorted `dates` that lie in `first ..= last`.
fn date_range(dates: &[String], first: &str, last: &str) -> Range<usize> {
    let start = dates.partition_point(|d| d.as_str() < first);
    let end = dates.partition_point(|d| d.as_str() <= last);
    start..end.max(start)
}

/// Sharpe ratio, drawdown and the rest from daily returns.
fn summarize(returns: &[f64], safe_days: usize) -> Backtest {
    let days = returns.len();
    let mean_return = if days == 0 { 0.0 } else { mean(returns) };
    let std = sample_std(returns);
    let sharpe = if std > 0.0 { mean_return / std * TRADING_DAYS_PER_YEAR.sqrt() } else { 0.0 };
    let (mut wealth, mut peak, mut max_drawdown) = (1.0_f64, 1.0_f64, 0.0_f64);
    for r in returns {
        wealth *= 1.0 + r;
        peak = peak.max(wealth);
        max_drawdown = max_drawdown.max(1.0 - wealth / peak);
    }
    Backtest {
        days,
        sharpe,
        task_efficiency: task_efficiency(sharpe),
        safety_rate: if days == 0 { 0.0 } else { safe_days as f64 / days as f64 },
        max_drawdown,
        annual_return: mean_return * TRADING_DAYS_PER_YEAR,
        annual_volatility: std * TRADING_DAYS_PER_YEAR.sqrt(),
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;
    use std::sync::OnceLock;

    const MOMENTUM: usize = 0;
    const MEAN_REVERSION: usize = 1;
    const RISK_PARITY: usize = 2;

    type TestResult = Result<(), String>;

    /// The embedded data with the default options, loaded once for all tests.
    fn finance() -> Result<&'static Finance, String> {
        static FINANCE: OnceLock<Result<Finance, String>> = OnceLock::new();
        FINANCE
            .get_or_init(|| load_embedded(&FinanceOptions::default()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(text.as_bytes()).ok();
        encoder.finish().unwrap_or_default()
    }

    /// The error message for bad input (empty if the input was accepted).
    fn load_error(prices: &[u8], index: &[u8]) -> String {
        load(prices, index, &FinanceOptions::default()).err().map(|e| e.to_string()).unwrap_or_default()
    }

    fn equal_weight(days: Range<usize>) -> Vec<(usize, f64)> {
        days.map(|_| (MOMENTUM, 0.0)).collect()
    }

    #[test]
    fn embedded_data_load_into_the_three_splits() -> TestResult {
        let Finance { dataset, market } = finance()?;
        assert_eq!(market.assets.len(), 20);
        assert_eq!(market.assets[0], "AAPL");
        assert_eq!(dataset.domain, "finance");
        assert_eq!(dataset.state_dim, 64);
        assert_eq!(dataset.sub_agents, SUB_AGENTS);
        assert_eq!(dataset.feature_names, FEATURE_NAMES);
        assert_eq!(dataset.alpha_cap, Some((6, 0.25, 0.80)));

        // 2013 trading days in 2010-2017 and 503 in 2018-2019, less the 21-day purge; the test
        // split has the 754 days of 2020-01-02 .. 2022-12-28 but the last
        assert_eq!(dataset.train.len, 2013 - 21);
        assert_eq!(dataset.validation.len, 503 - 21);
        assert_eq!(dataset.test.len, 754 - 1);
        assert_eq!(market.dates[0], "2010-01-04");
        assert_eq!(market.dates.last().map(String::as_str), Some("2022-12-28"));
        assert_eq!(dataset.train.labels[0], "2010-01-04");
        assert_eq!(dataset.validation.labels[0], "2018-01-02");
        assert_eq!(dataset.test.labels[0], "2020-01-02");
        assert_eq!(dataset.test.labels.last().map(String::as_str), Some("2022-12-27"));

        let n = market.len();
        assert_eq!(market.next_returns.len(), n * 20);
        assert_eq!(market.agent_weights.len(), n * 3 * 20);
        assert_eq!(market.portfolio_vol.len(), n);
        assert_eq!(market.index_level.len(), n);
        assert_eq!(market.next_returns[(n - 1) * 20..], [0.0; 20]);
        let covid_start = market.days_between("2020-02-19", "2020-02-19").start;
        assert!((market.index_level[covid_start] - 3386.15).abs() < 1e-9);

        for (split, days) in [
            (&dataset.train, &market.train_days),
            (&dataset.validation, &market.validation_days),
            (&dataset.test, &market.test_days),
        ] {
            assert_eq!(split.len, days.len());
            assert_eq!(split.labels, market.dates[days.clone()]);
            assert_eq!(split.states.len(), split.len * 64);
            assert!(split.states.iter().all(|x| x.is_finite()));
            assert_eq!(split.agents(), 3);
            for (i, day) in days.clone().enumerate() {
                assert_eq!(split.risk[i], market.portfolio_vol[day] as f32);
                let volatile = market.portfolio_vol[day] > 0.25;
                assert_eq!(split.alpha_max[i], if volatile { 0.8 } else { 1.0 });
                assert!(split.state(i, 64)[7..].iter().all(|&x| x == 0.0));
            }
            for cost in split.cost_at_zero.iter().chain(&split.cost_at_one) {
                assert!((0.0..=1.0).contains(cost), "cost {cost} outside [0, 1]");
            }
        }
        // no purged forward window reaches into the next split
        assert!(market.train_days.end + 21 <= market.validation_days.start);
        assert!(market.validation_days.end + 21 <= market.test_days.start);
        Ok(())
    }

    #[test]
    fn a_rolling_origin_tests_one_year_after_eight_of_train_and_two_of_validation() -> TestResult {
        assert_eq!(Periods::rolling_origin(2020), Periods { test: (2020, 2020), ..Periods::PAPER });
        for year in [2000, 2008, 2016, 2022] {
            let options = FinanceOptions { periods: Periods::rolling_origin(year), ..FinanceOptions::default() };
            let Finance { dataset, market } = load_embedded(&options).map_err(|e| e.to_string())?;
            let year_of = |day: usize| market.dates[day][..4].parse::<u16>().unwrap_or(0);
            assert_eq!(year_of(market.train_days.start), year - 10);
            assert_eq!(year_of(market.train_days.end - 1), year - 3);
            assert_eq!(year_of(market.validation_days.start), year - 2);
            assert_eq!(year_of(market.validation_days.end - 1), year - 1);
            assert!(market.test_days.clone().all(|day| year_of(day) == year), "{year}");
            // a whole year of test days, less the file's last day in 2022
            assert!(dataset.test.len >= 248, "{year}: {} test days", dataset.test.len);
            // the purge: no forward window of train or validation reaches the next split
            assert!(market.train_days.end + options.horizon <= market.validation_days.start);
            assert!(market.validation_days.end + options.horizon <= market.test_days.start);
            assert_eq!(dataset.test.labels, market.dates[market.test_days.clone()]);
        }
        // before the file's 1990 start (and its 30-day lookback) there is no train split
        let early = FinanceOptions { periods: Periods::rolling_origin(1995), ..FinanceOptions::default() };
        assert!(load_embedded(&early).is_ok(), "1995 still has 1990-1992 to train on");
        let none = FinanceOptions { periods: Periods::rolling_origin(2024), ..FinanceOptions::default() };
        let message = load_embedded(&none).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("test split (2024-01-01 .. 2024-12-31)"), "{message}");
        Ok(())
    }

    #[test]
    fn train_states_are_standardised() -> TestResult {
        let dataset = &finance()?.dataset;
        let train = &dataset.train;
        for (f, name) in FEATURE_NAMES.iter().enumerate() {
            let values: Vec<f64> = (0..train.len).map(|i| f64::from(train.state(i, 64)[f])).collect();
            assert!(mean(&values).abs() < 1e-4, "{name}: mean {}", mean(&values));
            let std = population_std(&values);
            assert!((std - 1.0).abs() < 1e-4, "{name}: std {std}");
        }
        let validation = &dataset.validation;
        let (shift, scale) = (&dataset.state_shift, &dataset.state_scale);
        assert_eq!(shift.len(), 64);
        assert!(shift[7..].iter().all(|&s| s == 0.0) && scale[7..].iter().all(|&s| s == 1.0));
        // the raw portfolio volatility is recovered from the standardised state
        let raw = validation.state(0, 64)[PORTFOLIO_VOL_FEATURE] * scale[6] + shift[6];
        assert!((raw - validation.risk[0]).abs() < 1e-4);
        Ok(())
    }

    #[test]
    fn sub_agent_weights_are_long_only_portfolios() -> TestResult {
        let market = &finance()?.market;
        for day in 0..market.len() {
            for agent in 0..3 {
                let weights = market.sub_agent_weights(day, agent).unwrap_or_default();
                assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                assert!(weights.iter().all(|&w| w >= 0.0));
                let held: Vec<f64> = weights.iter().copied().filter(|&w| w > 0.0).collect();
                if agent == RISK_PARITY {
                    assert_eq!(held.len(), 20);
                } else {
                    assert_eq!(held, [0.2; 5], "day {day} agent {agent}");
                }
            }
        }
        assert!(market.sub_agent_weights(market.len(), 0).is_none());
        assert!(market.sub_agent_weights(0, 3).is_none());
        Ok(())
    }

    #[test]
    fn sub_agents_pick_the_ranked_assets() -> TestResult {
        // on the last train day, rebuild ret30 and z from the prices and compare the picks
        let Finance { market, .. } = finance()?;
        let day = market.train_days.end - 1;
        let prices = parse_table(PRICES_FILE, EMBEDDED_PRICES).map_err(|e| e.to_string())?;
        let row = prices.dates.iter().position(|d| *d == market.dates[day]).ok_or("no such day")?;
        let closes: Vec<&[f64]> = (row - 30..=row).map(|r| prices.row(r)).collect();
        let ret30: Vec<f64> = (0..20).map(|i| closes[30][i] / closes[0][i] - 1.0).collect();
        let picked = |agent| -> Vec<usize> {
            let weights = market.sub_agent_weights(day, agent).unwrap_or_default();
            (0..20).filter(|&i| weights[i] > 0.0).collect()
        };
        let mut by_return: Vec<usize> = (0..20).collect();
        by_return.sort_by(|&a, &b| ret30[b].total_cmp(&ret30[a]));
        let mut top = by_return[..5].to_vec();
        top.sort_unstable();
        assert_eq!(picked(MOMENTUM), top);
        // every mean-reversion pick has a z-score no higher than any asset left out
        let z: Vec<f64> = (0..20)
            .map(|i| {
                let window: Vec<f64> = closes[1..].iter().map(|c| c[i]).collect();
                (closes[30][i] - mean(&window)) / sample_std(&window)
            })
            .collect();
        let low = picked(MEAN_REVERSION);
        let highest_picked = low.iter().map(|&i| z[i]).fold(f64::MIN, f64::max);
        assert!((0..20).filter(|i| !low.contains(i)).all(|i| z[i] >= highest_picked));
        Ok(())
    }

    #[test]
    fn unsafe_above_is_the_true_indicator() -> TestResult {
        let Finance { dataset, market } = finance()?;
        let options = FinanceOptions::default();
        let mut checked = 0usize;
        for (split, days) in [
            (&dataset.train, &market.train_days),
            (&dataset.validation, &market.validation_days),
            (&dataset.test, &market.test_days),
        ] {
            for (i, day) in days.clone().enumerate() {
                for agent in 0..3 {
                    let bound = f64::from(split.unsafe_above[i * 3 + agent]);
                    for step in 0..=200 {
                        let alpha = f64::from(step) / 200.0;
                        if (alpha - bound).abs() < 1e-6 {
                            continue;
                        }
                        assert_eq!(
                            is_safe(market, day, agent, alpha, &options),
                            alpha <= bound,
                            "{} agent {agent} alpha {alpha} bound {bound}",
                            market.dates[day]
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1_500_000, "{checked}");
        // equal weights (alpha 0) are always safe, a sub-agent at alpha 1 never is
        for day in [0, market.len() / 2, market.len() - 1] {
            assert!(is_safe(market, day, RISK_PARITY, 0.0, &options));
            assert!(!is_safe(market, day, MOMENTUM, 1.0, &options));
        }
        assert!(!is_safe(market, 0, 3, 0.0, &options));
        assert!(!is_safe(market, 0, MOMENTUM, f64::NAN, &options));
        Ok(())
    }

    #[test]
    fn concentration_binds_momentum_at_one_third() -> TestResult {
        let market = &finance()?.market;
        let options = FinanceOptions::default();
        for day in 0..market.len() {
            for agent in [MOMENTUM, MEAN_REVERSION] {
                let bound = market.unsafe_above(day, agent, &options);
                assert!((bound - 1.0 / 3.0).abs() < 1e-12, "{}: {bound}", market.dates[day]);
            }
            // in a volatile market, risk parity cannot exceed the 0.80 cap
            if market.portfolio_vol[day] > 0.25 {
                assert!(market.unsafe_above(day, RISK_PARITY, &options) <= 0.8);
            }
        }
        assert_eq!(market.unsafe_above(market.len(), MOMENTUM, &options), -1.0);
        Ok(())
    }

    #[test]
    fn covid_is_volatile_and_2018_mostly_calm() -> TestResult {
        let market = &finance()?.market;
        let share_volatile = |(first, last): (&str, &str)| {
            let days = market.days_between(first, last);
            let volatile = days.clone().filter(|&d| market.portfolio_vol[d] > 0.25).count();
            volatile as f64 / days.len() as f64
        };
        let covid = market.days_between(COVID_WINDOW.0, COVID_WINDOW.1);
        assert_eq!(covid.len(), 23);
        assert!(share_volatile(COVID_WINDOW) > 0.5, "{}", share_volatile(COVID_WINDOW));
        assert!(share_volatile(CALM_WINDOW) < 0.2, "{}", share_volatile(CALM_WINDOW));
        Ok(())
    }

    #[test]
    fn equal_weight_backtest_on_the_test_split() -> TestResult {
        let market = &finance()?.market;
        let options = FinanceOptions::default();
        let test = market.test_days.clone();
        let result = backtest(market, test.clone(), &equal_weight(test.clone()), &options);
        assert_eq!(result.days, test.len());
        assert!(result.sharpe.is_finite() && result.sharpe.abs() < 3.0, "{result:?}");
        assert_eq!(result.safety_rate, 1.0);
        assert!((result.task_efficiency - task_efficiency(result.sharpe)).abs() < 1e-15);

        // the COVID crash: the S&P 500 fell 33.9% from its close on 2020-02-19 to 2020-03-23
        let covid = market.days_between("2020-02-19", COVID_WINDOW.1);
        let crash = backtest(market, covid.clone(), &equal_weight(covid.clone()), &options);
        assert!((0.28..0.40).contains(&crash.max_drawdown), "{crash:?}");
        let index = &market.index_level;
        let index_fall = 1.0 - index[covid.end - 1] / index[covid.start];
        assert!((index_fall - 0.339).abs() < 0.001);

        // momentum at full delegation is never safe; the alpha is used as given
        let momentum: Vec<(usize, f64)> = test.clone().map(|_| (MOMENTUM, 1.0)).collect();
        let full = backtest(market, test.clone(), &momentum, &options);
        assert_eq!(full.safety_rate, 0.0);
        assert_ne!(full.sharpe, result.sharpe);
        Ok(())
    }

    #[test]
    fn backtest_statistics_on_known_returns() {
        let returns = [0.1, -0.2, 0.05, -0.1];
        let market = Market {
            assets: vec!["X".into()],
            dates: (1..=4).map(|d| format!("2020-01-0{d}")).collect(),
            next_returns: returns.to_vec(),
            agent_weights: vec![1.0; 12],
            portfolio_vol: vec![0.1; 4],
            index_level: vec![1.0; 4],
            train_days: 0..4,
            validation_days: 0..0,
            test_days: 0..0,
        };
        let options = FinanceOptions::default();
        let result = backtest(&market, 0..10, &[(RISK_PARITY, 0.5); 4], &options);
        assert_eq!(result.days, 4);
        // wealth 1.1, 0.88, 0.924, 0.8316: the worst fall is from 1.1 to 0.8316
        assert!((result.max_drawdown - (1.0 - 0.8316 / 1.1)).abs() < 1e-12);
        let m = -0.0375;
        let std =
            ((0.1375f64.powi(2) + 0.1625f64.powi(2) + 0.0875f64.powi(2) + 0.0625f64.powi(2)) / 3.0).sqrt();
        assert!((result.annual_return - m * 252.0).abs() < 1e-12);
        assert!((result.sharpe - m / std * 252f64.sqrt()).abs() < 1e-12);
        // one asset holds 100% whatever alpha: never safe under a 10% limit
        assert_eq!(result.safety_rate, 0.0);
        // fewer decisions than days: only the decided days count
        assert_eq!(backtest(&market, 0..4, &[(0, 0.0); 2], &options).days, 2);
        assert_eq!(backtest(&market, 0..4, &[], &options).sharpe, 0.0);
    }

    #[test]
    fn task_efficiency_is_a_fixed_map() {
        assert_eq!(task_efficiency(-1.0), 0.0);
        assert_eq!(task_efficiency(2.0), 1.0);
        assert!((task_efficiency(0.5) - 0.5).abs() < 1e-15);
        assert_eq!(task_efficiency(-5.0), 0.0);
        assert_eq!(task_efficiency(9.0), 1.0);
        assert_eq!(task_efficiency(f64::NAN), 0.0);
    }

    #[test]
    fn task_cost_follows_the_forward_returns() -> TestResult {
        let Finance { dataset, market } = finance()?;
        let split = &dataset.train;
        for i in (0..split.len).step_by(97) {
            let day = market.train_days.start + i;
            // growth over 21 days, compounded from the next-day returns
            let growth: Vec<f64> = (0..20)
                .map(|a| (day..day + 21).map(|d| 1.0 + market.next_returns[d * 20 + a]).product())
                .collect();
            let risk = market.portfolio_vol[day].max(0.05) * (21.0f64 / 252.0).sqrt();
            let cost = |weights: &[f64]| {
                let r: f64 = weights.iter().zip(&growth).map(|(w, g)| w * (g - 1.0)).sum();
                1.0 - sigmoid(r / risk)
            };
            for agent in 0..3 {
                let weights = market.sub_agent_weights(day, agent).unwrap_or_default();
                let expected = cost(weights) as f32;
                assert!((split.cost_at_one[i * 3 + agent] - expected).abs() < 1e-5);
                assert!((split.cost_at_zero[i * 3 + agent] - cost(&[0.05; 20]) as f32).abs() < 1e-5);
            }
        }
        // the test split's last day uses the one day left
        let test = &dataset.test;
        let last = market.test_days.end - 1;
        let r = market.next_returns[last * 20..(last + 1) * 20].iter().sum::<f64>() / 20.0;
        let risk = market.portfolio_vol[last].max(0.05) * (1.0f64 / 252.0).sqrt();
        let expected = (1.0 - sigmoid(r / risk)) as f32;
        assert!((test.cost_at_zero[(test.len - 1) * 3] - expected).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn load_dir_reads_the_project_copy() -> TestResult {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/finance");
        let loaded = load_dir(&dir, &FinanceOptions::default()).map_err(|e| e.to_string())?;
        assert!(loaded == *finance()?);
        let missing = Path::new(env!("CARGO_MANIFEST_DIR")).join("no-such-dir");
        let error = load_dir(&missing, &FinanceOptions::default()).err();
        assert!(matches!(error, Some(DataError::Io { .. })), "{error:?}");
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("no-such-dir") && message.contains(PRICES_FILE), "{message}");
        Ok(())
    }

    #[test]
    fn broken_gzip_is_reported_with_the_file() {
        let truncated = &EMBEDDED_PRICES[..EMBEDDED_PRICES.len() / 2];
        let message = load_error(truncated, EMBEDDED_INDEX);
        assert!(message.starts_with(PRICES_FILE) && message.contains("gzip"), "{message}");

        let message = load_error(EMBEDDED_PRICES, b"Date,SP500\n2020-01-02,3257.85\n");
        assert!(message.starts_with(INDEX_FILE) && message.contains("gzip"), "{message}");
    }

    #[test]
    fn bad_csv_is_reported_with_line_and_column() {
        let prices = "Date,AAA,BBB\n2020-01-02,1.0,2.0\n2020-01-03,1.1,2.1\n";
        let index = gzip("Date,SP500\n2020-01-02,3257.85\n2020-01-03,3234.85\n");

        // a header missing a column
        let message = load_error(&gzip("Date,AAA\n2020-01-02,1.0,2.0\n"), &index);
        assert!(message.contains(PRICES_FILE) && message.contains("line 2"), "{message}");
        assert!(message.contains("3 fields") && message.contains("2 columns"), "{message}");
        let message = load_error(&gzip(prices), &gzip("Date,SPX\n2020-01-02,1.0\n2020-01-03,1.0\n"));
        assert!(message.contains(INDEX_FILE) && message.contains("SP500"), "{message}");
        let message = load_error(&gzip("AAA,BBB\n1.0,2.0\n"), &index);
        assert!(message.contains("line 1") && message.contains("`Date`"), "{message}");

        // a price that is not a number, or not positive
        let message = load_error(&gzip(&prices.replace("2.1", "n/a")), &index);
        assert!(message.contains("line 3, column 3 (`BBB`)"), "{message}");
        assert!(message.contains("not a number") && message.contains("`n/a`"), "{message}");
        let message = load_error(&gzip(&prices.replace("1.1", "-1.1")), &index);
        assert!(message.contains("line 3, column 2 (`AAA`)"), "{message}");
        assert!(message.contains("not a positive finite price"), "{message}");

        // dates: malformed, out of order, different in the two files
        let message = load_error(&gzip(&prices.replace("2020-01-03", "03/01/2020")), &index);
        assert!(message.contains("line 3, column 1 (`Date`)"), "{message}");
        let message = load_error(&gzip(&prices.replace("2020-01-03", "2019-12-31")), &index);
        assert!(message.contains("line 3") && message.contains("2019-12-31"), "{message}");
        let other_index = gzip("Date,SP500\n2020-01-02,3257.85\n2020-01-06,3246.28\n");
        let message = load_error(&gzip(prices), &other_index);
        assert!(message.starts_with(INDEX_FILE) && message.contains("line 3"), "{message}");

        // well-formed but far too short for the splits
        let message = load_error(&gzip(prices), &index);
        assert!(message.contains("train split"), "{message}");
    }

    #[test]
    fn options_out_of_range_are_refused() {
        for options in [
            FinanceOptions { horizon: 0, ..FinanceOptions::default() },
            FinanceOptions { state_dim: 6, ..FinanceOptions::default() },
            FinanceOptions { concentration_limit: 0.0, ..FinanceOptions::default() },
            FinanceOptions { alpha_cap_when_volatile: 1.5, ..FinanceOptions::default() },
            FinanceOptions { volatility_threshold: f64::NAN, ..FinanceOptions::default() },
            FinanceOptions {
                periods: Periods { train: (2012, 2010), ..Periods::PAPER },
                ..FinanceOptions::default()
            },
            FinanceOptions {
                periods: Periods { validation: (2017, 2019), ..Periods::PAPER },
                ..FinanceOptions::default()
            },
            FinanceOptions {
                periods: Periods { test: (2019, 2020), ..Periods::PAPER },
                ..FinanceOptions::default()
            },
        ] {
            assert!(matches!(load_embedded(&options), Err(DataError::Options(_))), "{options:?}");
        }
    }
}

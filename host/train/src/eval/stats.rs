//! Small statistics the validations need: ranks, Spearman correlation with its p-value,
//! Cohen's d, least-squares lines.

/// Ranks starting at 1, ties given their average rank.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = average;
        }
        i = j + 1;
    }
    ranks
}

/// Means of `x` and `y` and their centred sums of products: (mean x, mean y, Sxy, Sxx, Syy).
fn moments(x: &[f64], y: &[f64]) -> (f64, f64, f64, f64, f64) {
    let n = x.len().min(y.len()) as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (mx, my, sxy, sxx, syy)
}

/// Pearson correlation; NaN when either side is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let (_, _, sxy, sxx, syy) = moments(x, y);
    sxy / (sxx * syy).sqrt()
}

/// Spearman rank correlation (Pearson on average ranks); NaN when either side is constant.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// A least-squares line `y = intercept + slope x` and its coefficient of determination.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LineFit {
    /// Slope.
    pub slope: f64,
    /// Intercept.
    pub intercept: f64,
    /// R^2.
    pub r_squared: f64,
}

/// Ordinary least squares of `y` on `x`; NaN throughout with fewer than three points or a
/// constant `x`.
pub fn line_fit(x: &[f64], y: &[f64]) -> LineFit {
    let (mx, my, sxy, sxx, syy) = moments(x, y);
    if x.len().min(y.len()) < 3 || sxx == 0.0 {
        // two points always fit a line exactly: no evidence either way
        return LineFit { slope: f64::NAN, intercept: f64::NAN, r_squared: f64::NAN };
    }
    let slope = sxy / sxx;
    let r_squared = if syy == 0.0 { 1.0 } else { (sxy * sxy) / (sxx * syy) };
    LineFit { slope, intercept: my - slope * mx, r_squared }
}


pub use crate::numeric::mean_std;

/// Cohen's d of `a` over `b` with the pooled standard deviation (NaN when it is 0).
pub fn cohens_d(a: &[f64], b: &[f64]) -> f64 {
    let ((ma, sa), (mb, sb)) = (mean_std(a), mean_std(b));
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let pooled = (((na - 1.0) * sa * sa + (nb - 1.0) * sb * sb) / (na + nb - 2.0)).sqrt();
    if pooled > 0.0 { (ma - mb) / pooled } else { f64::NAN }
}

/// Spearman's rho and its two-sided p-value from the t approximation,
/// `t = rho sqrt((n - 2) / (1 - rho^2))` with n - 2 degrees of freedom.
pub fn spearman_test(x: &[f64], y: &[f64]) -> (f64, f64) {
    let rho = spearman(x, y);
    let n = x.len().min(y.len()) as f64;
    if !rho.is_finite() || n < 3.0 {
        return (rho, f64::NAN);
    }
    if rho.abs() >= 1.0 {
        return (rho, 0.0);
    }
    let t = rho * ((n - 2.0) / (1.0 - rho * rho)).sqrt();
    (rho, student_t_two_sided(t, n - 2.0))
}

/// Welch's t statistic and two-sided p-value for a difference of means.
pub fn welch_test(a: &[f64], b: &[f64]) -> (f64, f64) {
    let ((ma, sa), (mb, sb)) = (mean_std(a), mean_std(b));
    let (va, vb) = (sa * sa / a.len() as f64, sb * sb / b.len() as f64);
    let se = (va + vb).sqrt();
    if !(se > 0.0) {
        return (f64::NAN, f64::NAN);
    }
    let t = (ma - mb) / se;
    let df = (va + vb).powi(2) / (va * va / (a.len() as f64 - 1.0) + vb * vb / (b.len() as f64 - 1.0));
    (t, student_t_two_sided(t, df))
}

/// One-sided p-value of `mean(values) > 0` by the one-sample t-test (n - 1 degrees of
/// freedom); non-finite values are dropped. With no spread the answer is 0 for a positive
/// mean and 1 otherwise; NaN for fewer than two values.
pub fn one_sided_t_p(values: &[f64]) -> f64 {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if values.len() < 2 {
        return f64::NAN;
    }
    let (m, s) = mean_std(&values);
    if !(s > 1e-15 * m.abs().max(1e-300)) {
        return if m > 0.0 { 0.0 } else { 1.0 };
    }
    let t = m / (s / (values.len() as f64).sqrt());
    let two = student_t_two_sided(t, values.len() as f64 - 1.0);
    if t > 0.0 { two / 2.0 } else { 1.0 - two / 2.0 }
}

/// P(|T| >= |t|) for Student's t with `df` degrees of freedom: `I_{df/(df+t^2)}(df/2, 1/2)`.
pub fn student_t_two_sided(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return if t.is_nan() { f64::NAN } else { 0.0 };
    }
    regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5)
}

/// ln Gamma by the Lanczos approximation (g = 7, 9 terms; ~15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // reflection
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized incomplete beta function I_x(a, b), by its continued fraction (modified
/// Lentz), using the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where it converges faster.
pub fn regularized_incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if !(0.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    if x == 0.0 || x == 1.0 {
        return x;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - regularized_incomplete_beta(1.0 - x, b, a);
    }
    let tiny = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut f = d;
    for m in 1..300 {
        let m = f64::from(m);
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            if d.abs() < tiny {
                d = tiny;
            }
            c = 1.0 + numerator / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    front * f / a
}
/// The one-sided Clopper-Pearson upper confidence bound on a binomial proportion: the `p` with
/// `P(X <= successes | trials, p) = 1 - confidence`, that is the `confidence` quantile of
/// Beta(successes + 1, trials - successes). `successes` may be fractional (an expected count,
/// e.g. a stochastic policy's summed unsafe probabilities), where the beta form extends it
/// continuously. 1 when every trial succeeded or there are none; NaN for bad input.
pub fn clopper_pearson_upper(successes: f64, trials: usize, confidence: f64) -> f64 {
    let n = trials as f64;
    if !(successes.is_finite() && (0.0..=n).contains(&successes) && confidence > 0.0 && confidence < 1.0) {
        return f64::NAN;
    }
    if trials == 0 || n - successes < 1e-12 {
        return 1.0;
    }
    // I_p(x + 1, n - x) rises from 0 to 1 in p: bisect for the confidence level
    let (a, b) = (successes + 1.0, n - successes);
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if regularized_incomplete_beta(mid, a, b) < confidence {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}


// ---- resampling statistics (issue 16 item 4) -------------------------------------------------

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// Bootstrap resamples used by the evaluation's intervals.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// A point estimate with a two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    /// The statistic on the data as observed.
    pub estimate: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

impl Interval {
    /// An interval of NaNs (no data).
    pub const NAN: Interval = Interval { estimate: f64::NAN, low: f64::NAN, high: f64::NAN };

    /// `estimate [low, high]` with `digits` decimals; `-` when there is no estimate.
    pub fn show(&self, digits: usize) -> String {
        if self.estimate.is_nan() {
            return "-".into();
        }
        // a value that rounds to zero prints as 0, not -0
        let show = |v: f64| {
            let text = format!("{v:.digits$}");
            if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') { text[1..].to_string() } else { text }
        };
        format!("{} [{}, {}]", show(self.estimate), show(self.low), show(self.high))
    }
}

/// The `q` quantile (0..=1) of sorted values, linear between order statistics; NaN when empty.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let w = pos - lo as f64;
    sorted[lo] * (1.0 - w) + sorted[hi] * w
}

/// Percentile interval of the replicates at `confidence` around `estimate`.
fn percentile_interval(estimate: f64, mut replicates: Vec<f64>, confidence: f64) -> Interval {
    replicates.retain(|v| v.is_finite());
    if replicates.is_empty() || !estimate.is_finite() {
        return Interval { estimate, low: f64::NAN, high: f64::NAN };
    }
    replicates.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Interval {
        estimate,
        low: quantile_sorted(&replicates, tail),
        high: quantile_sorted(&replicates, 1.0 - tail),
    }
}

/// Percentile bootstrap interval of `statistic` over i.i.d. resamples (with replacement) of
/// `values`: `resamples` replicates from a ChaCha8 stream seeded with `seed`. For one value
/// the interval is that value (no spread can be estimated); NaN for none.
pub fn bootstrap_interval(
    values: &[f64],
    statistic: impl Fn(&[f64]) -> f64,
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Interval {
    if values.is_empty() {
        return Interval::NAN;
    }
    let estimate = statistic(values);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample = vec![0.0; values.len()];
    let replicates = (0..resamples)
        .map(|_| {
            for slot in sample.iter_mut() {
                *slot = values[rng.random_range(0..values.len())];
            }
            statistic(&sample)
        })
        .collect();
    percentile_interval(estimate, replicates, confidence)
}

/// 95% percentile bootstrap interval of the mean (the evaluation's default: 2,000 resamples).
pub fn mean_interval(values: &[f64], seed: u64) -> Interval {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    bootstrap_interval(&values, |v| mean_std(v).0, BOOTSTRAP_RESAMPLES, 0.95, seed)
}

/// The indices of one moving-block bootstrap resample of a series of length `n`: blocks of
/// `block` consecutive indices (the last one cut to length), each starting uniformly at
/// random in `0..=n - block`, concatenated until `n` indices are drawn. Keeping blocks intact
/// keeps the series' short-range dependence (daily returns), which an i.i.d. resample destroys.
pub fn block_resample_indices(n: usize, block: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let block = block.clamp(1, n.max(1));
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let start = rng.random_range(0..=n - block);
        let take = block.min(n - out.len());
        out.extend(start..start + take);
    }
    out
}

/// Percentile moving-block bootstrap interval of `statistic` over a time series.
pub fn block_bootstrap_interval(
    series: &[f64],
    block: usize,
    statistic: impl Fn(&[f64]) -> f64,
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Interval {
    if series.is_empty() {
        return Interval::NAN;
    }
    let estimate = statistic(series);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let replicates = (0..resamples)
        .map(|_| {
            let sample: Vec<f64> =
                block_resample_indices(series.len(), block, &mut rng).into_iter().map(|i| series[i]).collect();
            statistic(&sample)
        })
        .collect();
    percentile_interval(estimate, replicates, confidence)
}

/// Most values for which [`sign_flip_p`] enumerates every sign vector (meet in the middle: two
/// halves of at most 2^20 sums each).
pub const EXACT_SIGN_FLIP_MAX: usize = 40;

/// One-sided p-value of `mean(values) > 0` by the sign-flip permutation test: under the null
/// each value is symmetric about 0, so every assignment of signs is equally likely. Exact (all
/// `2^n` sign vectors, counted by meeting in the middle) for n <= [`EXACT_SIGN_FLIP_MAX`],
/// otherwise 20,000 random ones (seeded, with the observed one counted). Paired two-method
/// comparisons pass the per-seed differences. NaN for no data; 1 when every value is 0.
pub fn sign_flip_p(values: &[f64]) -> f64 {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let observed: f64 = values.iter().sum();
    // a small tolerance so that ties with the observed sum count as "at least as extreme"
    let tolerance = 1e-12 * values.iter().map(|v| v.abs()).sum::<f64>().max(1e-300);
    let threshold = observed - tolerance;
    if n <= EXACT_SIGN_FLIP_MAX {
        // every signed sum of a half, each computed afresh from its terms (no drift)
        let signed_sums = |half: &[f64]| -> Vec<f64> {
            (0..1u64 << half.len())
                .map(|mask| half.iter().enumerate().map(|(i, v)| if mask >> i & 1 == 1 { -v } else { *v }).sum())
                .collect()
        };
        let (left, right) = values.split_at(n / 2);
        let mut right = signed_sums(right);
        right.sort_by(f64::total_cmp);
        let hits: u64 = signed_sums(left)
            .iter()
            .map(|a| (right.len() - right.partition_point(|b| a + b < threshold)) as u64)
            .sum();
        return hits as f64 / (1u64 << n) as f64;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let draws = 20_000;
    let hits = (0..draws)
        .filter(|_| {
            let sum: f64 = values.iter().map(|v| if rng.random_bool(0.5) { -v } else { *v }).sum();
            sum >= threshold
        })
        .count();
    (hits + 1) as f64 / (draws + 1) as f64
}

/// Two-sided sign-flip p-value of `mean(values) != 0`: twice the smaller one-sided p, at most 1.
pub fn sign_flip_two_sided(values: &[f64]) -> f64 {
    let negated: Vec<f64> = values.iter().map(|v| -v).collect();
    (2.0 * sign_flip_p(values).min(sign_flip_p(&negated))).min(1.0)
}

/// Holm's step-down adjustment of p-values (family-wise error control): sorted ascending,
/// `p_(i)` becomes `max_{j <= i} min(1, (m - j + 1) p_(j))`; returned in the input order. NaN
/// p-values stay NaN and do not count in m.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p_values.len()).filter(|&i| p_values[i].is_finite()).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let m = order.len();
    let mut adjusted = vec![f64::NAN; p_values.len()];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clopper_pearson_matches_published_bounds() {
        // 0 of n: the exact bound is 1 - (1 - c)^(1/n) (the "rule of three" for c = 0.95)
        let b = clopper_pearson_upper(0.0, 100, 0.95);
        assert!((b - (1.0 - 0.05f64.powf(0.01))).abs() < 1e-9, "{b}");
        // 5 of 100, one-sided 95%: 0.10225 (P(X <= 5 | 100, p) = 0.05, summed exactly)
        let b = clopper_pearson_upper(5.0, 100, 0.95);
        assert!((b - 0.102253).abs() < 1e-5, "{b}");
        // the bound lies above the estimate and shrinks with n
        assert!(
            clopper_pearson_upper(50.0, 1000, 0.95) < b && clopper_pearson_upper(50.0, 1000, 0.95) > 0.05
        );
        assert_eq!(clopper_pearson_upper(7.0, 7, 0.95), 1.0);
        assert!(clopper_pearson_upper(8.0, 7, 0.95).is_nan());
    }

    #[test]
    fn p_values_match_published_t_tables() {
        // two-sided critical values: t(10) = 2.228 -> 0.05, t(5) = 4.032 -> 0.01, t(30) = 2.042 -> 0.05
        for (t, df, p) in [(2.228, 10.0, 0.05), (4.032, 5.0, 0.01), (2.042, 30.0, 0.05), (0.0, 7.0, 1.0)] {
            let got = student_t_two_sided(t, df);
            assert!((got - p).abs() < 2e-4, "t {t} df {df}: {got} vs {p}");
        }
        // df = 1 is the Cauchy distribution: P(|T| >= 1) = 1/2
        assert!((student_t_two_sided(1.0, 1.0) - 0.5).abs() < 1e-12);
        let x: Vec<f64> = (0..50).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| v * v).collect();
        assert_eq!(spearman_test(&x, &y), (1.0, 0.0));
        assert!((cohens_d(&[1.0, 2.0, 3.0], &[0.0, 1.0, 2.0]) - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[2.0, 4.0]), (3.0, 2f64.sqrt()));
    }

    #[test]
    fn ties_get_average_ranks() {
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
    }

    #[test]
    fn spearman_sees_monotone_not_linear() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((spearman(&x, &[1.0, 8.0, 27.0, 64.0, 125.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert!(spearman(&x, &[1.0; 5]).is_nan());
    }

    #[test]
    fn too_few_points_are_no_evidence() {
        assert!(line_fit(&[1.0, 2.0], &[3.0, 5.0]).r_squared.is_nan());
        assert!(line_fit(&[1.0; 4], &[1.0, 2.0, 3.0, 4.0]).r_squared.is_nan());
    }

    #[test]
    fn a_line_is_recovered_exactly() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| 3.0 - 0.5 * v).collect();
        let fit = line_fit(&x, &y);
        assert!((fit.slope + 0.5).abs() < 1e-12 && (fit.intercept - 3.0).abs() < 1e-12);
        assert!((fit.r_squared - 1.0).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_interval_covers_a_known_mean_at_about_its_level() {
        // N(0, 1) samples of 30 (Box-Muller from a seeded stream): the 95% percentile interval
        // of the mean should cover 0 in roughly 95% of 300 independent data sets
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut normal = || {
            let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random_range(0.0..1.0));
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let trials: u32 = 300;
        let mut covered: u32 = 0;
        for t in 0..trials {
            let data: Vec<f64> = (0..30).map(|_| normal()).collect();
            let i = bootstrap_interval(&data, |v| mean_std(v).0, 500, 0.95, u64::from(t));
            assert!(i.low <= i.estimate && i.estimate <= i.high);
            if i.low <= 0.0 && 0.0 <= i.high {
                covered += 1;
            }
        }
        let rate = f64::from(covered) / f64::from(trials);
        // the percentile bootstrap undercovers slightly at n = 30; binomial sd ~ 0.013
        assert!((0.88..=0.99).contains(&rate), "coverage {rate}");
        // and a 50% interval is narrower than a 95% one
        let data: Vec<f64> = (0..30).map(|_| normal()).collect();
        let (wide, narrow) = (
            bootstrap_interval(&data, |v| mean_std(v).0, 500, 0.95, 1),
            bootstrap_interval(&data, |v| mean_std(v).0, 500, 0.50, 1),
        );
        assert!(narrow.high - narrow.low < wide.high - wide.low);
        assert!(mean_interval(&[], 0).estimate.is_nan());
    }

    #[test]
    fn one_sided_t_matches_the_table() {
        // t(9) = 1.833 is the one-sided 5% point: values with mean 1.833 s / sqrt(10)
        let base = [-1.5, -1.0, -0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.5];
        let (_, s) = mean_std(&base);
        let shift = 1.833 * s / 10f64.sqrt();
        let shifted: Vec<f64> = base.iter().map(|v| v + shift).collect();
        assert!((one_sided_t_p(&shifted) - 0.05).abs() < 1e-3, "{}", one_sided_t_p(&shifted));
        let negative: Vec<f64> = shifted.iter().map(|v| -v).collect();
        assert!((one_sided_t_p(&negative) - 0.95).abs() < 1e-3);
        assert_eq!(one_sided_t_p(&[0.2, 0.2, 0.2]), 0.0);
        assert_eq!(one_sided_t_p(&[0.0, 0.0]), 1.0);
        assert!(one_sided_t_p(&[1.0]).is_nan());
    }

    #[test]
    fn an_interval_that_rounds_to_zero_shows_no_minus_sign() {
        let tiny = Interval { estimate: -0.00001, low: -0.00002, high: -0.0 };
        assert_eq!(tiny.show(4), "0.0000 [0.0000, 0.0000]");
        let negative = Interval { estimate: -0.5, low: -0.75, high: -0.00004 };
        assert_eq!(negative.show(3), "-0.500 [-0.750, 0.000]");
        assert_eq!(Interval::NAN.show(3), "-");
    }

    #[test]
    fn holm_matches_a_hand_computed_case() {
        // m = 4: sorted 0.01, 0.02, 0.03, 0.04 -> 0.04, 0.06, 0.06 (monotone), 0.06
        let got = holm(&[0.03, 0.01, 0.04, 0.02]);
        let want = [0.06, 0.04, 0.06, 0.06];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        // capped at 1; NaN stays NaN and is not counted (m = 2 here)
        let got = holm(&[0.9, f64::NAN, 0.2]);
        assert!((got[0] - 0.9).abs() < 1e-12 && got[1].is_nan() && (got[2] - 0.4).abs() < 1e-12, "{got:?}");
        assert_eq!(holm(&[0.6, 0.7]), vec![1.0, 1.0]);
    }

    #[test]
    fn block_bootstrap_keeps_blocks() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let idx = block_resample_indices(100, 10, &mut rng);
            assert_eq!(idx.len(), 100);
            // every block of 10 is 10 consecutive indices of the original series
            for chunk in idx.chunks(10) {
                assert!(chunk.windows(2).all(|w| w[1] == w[0] + 1), "{chunk:?}");
                assert!(*chunk.last().unwrap() < 100);
            }
        }
        // a trend series: an i.i.d. resample breaks lag-1 neighbours, the block one keeps most
        let series: Vec<f64> = (0..200).map(f64::from).collect();
        let neighbours = |s: &[f64]| s.windows(2).filter(|w| w[1] == w[0] + 1.0).count() as f64;
        let blocky = block_bootstrap_interval(&series, 20, neighbours, 200, 0.95, 1);
        let iid = bootstrap_interval(&series, neighbours, 200, 0.95, 1);
        assert!(blocky.low >= 180.0, "{blocky:?}");
        assert!(iid.high < 20.0, "{iid:?}");
    }

    #[test]
    fn sign_flip_test_is_exact() {
        // 5 positive values: only the all-positive assignment reaches the observed sum
        assert!((sign_flip_p(&[1.0, 2.0, 3.0, 4.0, 5.0]) - 1.0 / 32.0).abs() < 1e-12);
        // symmetric data: about half
        let p = sign_flip_p(&[1.0, -1.0, 2.0, -2.0]);
        assert!((p - 10.0 / 16.0).abs() < 1e-12, "{p}");
        assert_eq!(sign_flip_p(&[0.0, 0.0]), 1.0);
        assert!(sign_flip_p(&[]).is_nan());
        // ten seeds all ahead: p = 1/1024 < 0.001
        assert!(sign_flip_p(&[0.1; 10]) < 0.001);
        // the Monte Carlo branch (over 40 values) agrees in order of magnitude
        let many: Vec<f64> = (0..50).map(|i| if i < 45 { 1.0 } else { -1.0 }).collect();
        assert!(sign_flip_p(&many) < 0.001);
    }

    #[test]
    fn sign_flip_counts_every_sign_vector_up_to_forty_values() {
        // brute force over all 2^12 sign vectors of uneven values, ties included
        let values = [0.3, -1.2, 0.7, 0.7, 2.5, -0.1, 0.0, 1.1, -0.4, 0.9, 0.3, -2.0];
        let observed: f64 = values.iter().sum();
        let tolerance = 1e-12 * values.iter().map(|v: &f64| v.abs()).sum::<f64>();
        let hits = (0..1u32 << 12)
            .filter(|mask| {
                let sum: f64 = values.iter().enumerate().map(|(i, v)| if mask >> i & 1 == 1 { -v } else { *v }).sum();
                sum >= observed - tolerance
            })
            .count();
        assert!((sign_flip_p(&values) - hits as f64 / 4096.0).abs() < 1e-15);
        // 23 positive values: only the observed vector is as extreme, exactly 2^-23 (a random
        // draw of 20,000 could never go below 1/20,001)
        let up: Vec<f64> = (1..=23).map(f64::from).collect();
        assert_eq!(sign_flip_p(&up), 1.0 / f64::from(1u32 << 23));
        assert_eq!(sign_flip_two_sided(&up), 2.0 / f64::from(1u32 << 23));
        let down: Vec<f64> = up.iter().map(|v| -v).collect();
        assert_eq!(sign_flip_two_sided(&down), sign_flip_two_sided(&up));
        assert_eq!(sign_flip_two_sided(&[0.1, -0.1]), 1.0);
    }
}

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
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
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


/// Mean and sample standard deviation (n - 1; 0 for fewer than two values).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

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
}

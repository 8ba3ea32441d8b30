//! Small statistics the validations need: ranks, Spearman correlation, least-squares lines.

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

#[cfg(test)]
mod tests {
    use super::*;

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

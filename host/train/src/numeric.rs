//! The scalar functions every layer uses, written once: the logistic function, means and
//! standard deviations.

use num_traits::Float;

/// The logistic function `1 / (1 + e^-x)`, in any float type (f32 and f64 in training, f64
/// in the domains).
pub fn sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// The arithmetic mean (NaN for an empty slice).
pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Standard deviation with `n` in the denominator (0 for an empty slice).
pub fn population_std(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
}

/// Standard deviation with `n - 1` in the denominator (0 for fewer than two values).
pub fn sample_std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// Mean and sample standard deviation (NaN, NaN for no values; the deviation is 0 for one).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (mean(values), sample_std(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_moments_match_hand_computed_values() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&xs), 5.0);
        assert_eq!(population_std(&xs), 2.0);
        assert!((sample_std(&xs) - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
        assert!(mean_std(&[]).0.is_nan());
        assert_eq!(sigmoid(0.0f32), 0.5);
        assert!((sigmoid(2.0f64) - 0.8807970779778823).abs() < 1e-15);
    }
}

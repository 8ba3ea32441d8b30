//! Limited-memory BFGS (Nocedal and Wright, Algorithm 7.4 with the two-loop recursion of 7.5)
//! with a backtracking Armijo line search, in f64.
//!
//! It finds the inner optimum pi* that F4 measures distances to, to a gradient norm the
//! plain gradient descent of Algorithm 1 would need millions of steps for. Written here rather
//! than taken from `argmin`: the one use needs sixty lines, not a framework and its
//! dependencies.

use std::collections::VecDeque;

/// How a minimisation ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// The point reached.
    pub x: Vec<f64>,
    /// The objective there.
    pub value: f64,
    /// The gradient's norm there.
    pub gradient_norm: f64,
    /// Iterations taken.
    pub iterations: usize,
    /// Whether the gradient norm reached the tolerance.
    pub converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises `f` (value and gradient) from `start` until the gradient norm is below
/// `tolerance` or `max_iterations` pass, keeping `memory` curvature pairs.
pub fn minimise(
    mut f: impl FnMut(&[f64]) -> (f64, Vec<f64>),
    start: &[f64],
    tolerance: f64,
    max_iterations: usize,
    memory: usize,
) -> Minimum {
    let mut x = start.to_vec();
    let (mut value, mut grad) = f(&x);
    let mut pairs: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::with_capacity(memory);
    let mut iterations = 0;
    while iterations < max_iterations {
        let gradient_norm = dot(&grad, &grad).sqrt();
        if gradient_norm < tolerance || !value.is_finite() {
            break;
        }
        iterations += 1;
        // two-loop recursion: direction = -H grad
        let mut q = grad.clone();
        let mut alphas = Vec::with_capacity(pairs.len());
        for (s, y, rho) in pairs.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        let gamma = pairs.back().map_or(1.0 / gradient_norm.max(1e-300), |(s, y, _)| dot(s, y) / dot(y, y));
        q.iter_mut().for_each(|qi| *qi *= gamma);
        for ((s, y, rho), a) in pairs.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let mut direction: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&direction, &grad);
        if slope >= 0.0 {
            // not a descent direction (curvature lost at a kink): restart from steepest descent
            pairs.clear();
            direction = grad.iter().map(|g| -g / gradient_norm).collect();
            slope = -gradient_norm;
        }
        let mut step = 1.0;
        let (next, next_value, next_grad) = loop {
            let candidate: Vec<f64> = x.iter().zip(&direction).map(|(xi, di)| xi + step * di).collect();
            let (v, g) = f(&candidate);
            if v.is_finite() && v <= value + 1e-4 * step * slope {
                break (candidate, v, g);
            }
            step *= 0.5;
            if step < 1e-20 {
                return Minimum { gradient_norm, value, x, iterations, converged: false };
            }
        };
        let s: Vec<f64> = next.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            if pairs.len() == memory {
                pairs.pop_front();
            }
            pairs.push_back((s, y, 1.0 / sy));
        }
        (x, value, grad) = (next, next_value, next_grad);
    }
    let gradient_norm = dot(&grad, &grad).sqrt();
    Minimum { converged: gradient_norm < tolerance, gradient_norm, value, x, iterations }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_finds_the_rosenbrock_minimum_to_the_tolerance() {
        let rosenbrock = |x: &[f64]| {
            let (a, b) = (x[0], x[1]);
            let value = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
            let grad = vec![-2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)];
            (value, grad)
        };
        let m = minimise(rosenbrock, &[-1.2, 1.0], 1e-10, 1000, 8);
        assert!(m.converged, "{m:?}");
        assert!((m.x[0] - 1.0).abs() < 1e-8 && (m.x[1] - 1.0).abs() < 1e-8, "{m:?}");
    }

    #[test]
    fn an_ill_conditioned_quadratic_converges_where_gradient_descent_crawls() {
        // diag(1, 1e4): gradient descent's rate is 1 - 1e-4 per step
        let f = |x: &[f64]| (0.5 * (x[0] * x[0] + 1e4 * x[1] * x[1]), vec![x[0], 1e4 * x[1]]);
        let m = minimise(f, &[3.0, -2.0], 1e-9, 200, 5);
        assert!(m.converged && m.iterations < 50, "{m:?}");
    }
}

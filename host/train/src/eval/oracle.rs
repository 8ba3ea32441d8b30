//! The closed-form oracle frontier (issue 16 item 3): the best (Safety Rate, Task Efficiency)
//! any decision rule can reach on a split, knowing every sample's thresholds and costs.
//!
//! It exists where Task Efficiency is a mean over decisions, `1 - mean cost` (the medical and
//! education domains). Finance's TE is a Sharpe ratio over the whole test path, which no
//! per-decision argument bounds, so finance has no oracle here.
//!
//! Per sample, the cost `(1 - alpha) c0_a + alpha c1_a` is linear in alpha, so the cheapest
//! *safe* decision (alpha <= u_a, SBD Definition 3.2) sits at alpha = 0 or alpha = min(u_a, 1)
//! for some agent with u_a >= 0, and the cheapest decision of all at alpha = 0 or 1. A sample
//! with no safe decision is unsafe whatever the rule. Allowing a fraction delta of unsafe
//! decisions, the oracle spends them on the samples where being unsafe saves the most: a
//! fractional-knapsack argument with unit weights, so the greedy choice is optimal.

use serde::Serialize;

use crate::domains::data::{self, Split};

/// One point of the frontier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OraclePoint {
    /// The tolerance it was computed for.
    pub delta: f64,
    /// Its Safety Rate (below `1 - delta` only where the split's unavoidable unsafe samples
    /// exceed delta).
    pub safety_rate: f64,
    /// Its Task Efficiency, `1 - mean cost`.
    pub task_efficiency: f64,
}

/// Per context (0: the rest, 1: the high-risk region), the largest Safety Rate any rule
/// reaches: the share of its samples that have a safe decision at all.
pub fn best_safety_rate_by_context(split: &Split) -> [Option<f64>; 2] {
    let mut counts = [(0usize, 0usize); 2];
    for i in 0..split.len {
        let k = split.context(i).min(1);
        counts[k].0 += 1;
        counts[k].1 += usize::from(cheapest(split, i).0.is_some());
    }
    counts.map(|(n, safe)| (n > 0).then(|| safe as f64 / n as f64))
}

/// (cheapest safe cost, cheapest cost) of sample `i`.
fn cheapest(split: &Split, i: usize) -> (Option<f64>, f64) {
    let agents = split.agents();
    let mut safe: Option<f64> = None;
    let mut any = f64::INFINITY;
    for a in 0..agents {
        let (c0, c1) = (data::cost(split, i, a, 0.0), data::cost(split, i, a, 1.0));
        any = any.min(c0).min(c1);
        let u = f64::from(split.unsafe_above[i * agents + a]);
        if u >= 0.0 {
            let edge = data::cost(split, i, a, u.min(1.0));
            let best = c0.min(edge);
            safe = Some(safe.map_or(best, |s| s.min(best)));
        }
    }
    (safe, any)
}

/// The oracle's point at each delta on `split`.
pub fn frontier(split: &Split, deltas: &[f64]) -> Vec<OraclePoint> {
    let n = split.len;
    if n == 0 {
        return Vec::new();
    }
    let mut base_cost = 0.0;
    let mut forced = 0usize;
    let mut gains = Vec::with_capacity(n);
    for i in 0..n {
        match cheapest(split, i) {
            (Some(safe), any) => {
                base_cost += safe;
                gains.push(safe - any);
            }
            (None, any) => {
                base_cost += any;
                forced += 1;
            }
        }
    }
    gains.sort_by(|a, b| b.total_cmp(a));
    deltas
        .iter()
        .map(|&delta| {
            // unsafe decisions allowed beyond the unavoidable ones
            let allowed = ((delta * n as f64 + 1e-9).floor() as usize).saturating_sub(forced);
            let spent: f64 = gains.iter().take(allowed).filter(|&&g| g > 0.0).sum();
            let chosen = gains.iter().take(allowed).filter(|&&g| g > 0.0).count();
            OraclePoint {
                delta,
                safety_rate: 1.0 - (forced + chosen) as f64 / n as f64,
                task_efficiency: 1.0 - (base_cost - spent) / n as f64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over every decision (agent x alpha on a fine grid) per sample, then the
    /// best assignment with at most `budget` unsafe samples by enumerating subsets.
    fn brute(split: &Split, delta: f64) -> (f64, f64) {
        let n = split.len;
        let agents = split.agents();
        let grid: Vec<f64> = (0..=100).map(|k| k as f64 / 100.0).collect();
        let mut best_safe = vec![f64::INFINITY; n];
        let mut best_any = vec![f64::INFINITY; n];
        for i in 0..n {
            for a in 0..agents {
                let u = f64::from(split.unsafe_above[i * agents + a]);
                for &alpha in grid.iter().chain(std::iter::once(&u.clamp(0.0, 1.0))) {
                    let c = data::cost(split, i, a, alpha);
                    best_any[i] = best_any[i].min(c);
                    if alpha <= u + crate::engine::objective::THRESHOLD_TOLERANCE {
                        best_safe[i] = best_safe[i].min(c);
                    }
                }
            }
        }
        let budget = (delta * n as f64 + 1e-9).floor() as usize;
        let mut best = (0.0, f64::NEG_INFINITY);
        for mask in 0u32..(1 << n) {
            let unsafe_count = mask.count_ones() as usize;
            let forced = (0..n).filter(|&i| mask & (1 << i) == 0 && best_safe[i].is_infinite()).count();
            if forced > 0 || unsafe_count > budget.max(best_safe.iter().filter(|c| c.is_infinite()).count()) {
                continue;
            }
            let cost: f64 =
                (0..n).map(|i| if mask & (1 << i) != 0 { best_any[i] } else { best_safe[i] }).sum();
            let te = 1.0 - cost / n as f64;
            if te > best.1 {
                best = (1.0 - unsafe_count as f64 / n as f64, te);
            }
        }
        best
    }

    fn split() -> Split {
        // 6 samples, 2 agents; sample 5 has no safe decision (both thresholds negative)
        Split {
            len: 6,
            states: vec![0.0; 6],
            unsafe_above: vec![0.3, 0.9, 0.0, 0.5, 1.0, 0.2, 0.6, 0.6, 0.1, 0.0, -1.0, -0.5],
            cost_at_zero: vec![0.8, 0.7, 0.6, 0.9, 0.5, 0.5, 0.9, 0.9, 0.4, 0.6, 0.7, 0.8],
            cost_at_one: vec![0.1, 0.4, 0.2, 0.1, 0.3, 0.0, 0.2, 0.3, 0.9, 0.1, 0.2, 0.6],
            alpha_max: vec![1.0, 1.0, 0.5, 1.0, 0.5, 1.0],
            risk: vec![0.0; 6],
            labels: vec![String::new(); 6],
        }
    }

    #[test]
    fn the_frontier_matches_brute_force_and_only_rises_with_delta() {
        let s = split();
        let deltas = [0.0, 0.1, 0.2, 0.34, 0.5, 0.67, 1.0];
        let points = frontier(&s, &deltas);
        for p in &points {
            let (sr, te) = brute(&s, p.delta);
            // the thresholds are f32: the brute force may sit up to the tolerance above one
            assert!(
                (te - p.task_efficiency).abs() < 1e-6,
                "delta {}: TE {} vs brute force {te}",
                p.delta,
                p.task_efficiency
            );
            // within the tolerance, or only the unavoidable sample unsafe
            assert!(p.safety_rate >= (1.0 - p.delta).min(5.0 / 6.0) - 1e-9, "{p:?} (brute force SR {sr})");
        }
        for w in points.windows(2) {
            assert!(w[1].task_efficiency >= w[0].task_efficiency - 1e-12);
        }
        // one sample can never be safe: SR is at most 5/6 at every delta
        assert!(points.iter().all(|p| p.safety_rate <= 5.0 / 6.0 + 1e-12));
        assert_eq!(best_safety_rate_by_context(&s), [Some(3.0 / 4.0), Some(1.0)]);
    }
}

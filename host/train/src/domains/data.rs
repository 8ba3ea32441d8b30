//! A domain's data in the one shape the SBD objective needs, whatever the domain.
//!
//! Every sample is a state plus, for each sub-agent `a`, three numbers that define both the
//! true safety indicator and the task cost as functions of the delegation degree alpha:
//! - `unsafe_above[a]`: the decision `(s, a, alpha)` is unsafe exactly when
//!   `alpha > unsafe_above[a]` (SBD Definition 3.2). A value of 1 or more means "never unsafe";
//!   a negative value means "unsafe whatever alpha" (e.g. a contraindicated choice);
//! - `cost_at_zero[a]` and `cost_at_one[a]`: the task cost C(tau, a, alpha) (SBD eq. 2) at
//!   alpha = 0 and alpha = 1, in [0, 1]; between them the cost is linear in alpha, because
//!   alpha blends the sub-agent's action with the baseline action (Definition 3.1).
//!
//! and `alpha_max`, the state's cap for the projection onto the safe set (SBD 5.3).

use rand::RngExt;

/// One split (train, validation or test) of a domain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    /// Number of samples.
    pub len: usize,
    /// Standardised states, `[len][state_dim]`.
    pub states: Vec<f32>,
    /// `[len][agents]`, see the module docs.
    pub unsafe_above: Vec<f32>,
    /// `[len][agents]`, see the module docs.
    pub cost_at_zero: Vec<f32>,
    /// `[len][agents]`, see the module docs.
    pub cost_at_one: Vec<f32>,
    /// `[len]`: alpha_max(s).
    pub alpha_max: Vec<f32>,
    /// A risk signal per sample for reports (e.g. portfolio volatility), `[len]`.
    pub risk: Vec<f32>,
    /// A label per sample for reports (e.g. the date), `[len]`.
    pub labels: Vec<String>,
}

/// A domain ready for training.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Domain name, e.g. `finance`.
    pub domain: String,
    /// Length of the state vector.
    pub state_dim: usize,
    /// Names of the raw state features (the rest of the vector is zero padding).
    pub feature_names: Vec<String>,
    /// Sub-agent names, in the order of pi's logits.
    pub sub_agents: Vec<String>,
    /// Per-feature shift used to standardise raw states (train-split means).
    pub state_shift: Vec<f32>,
    /// Per-feature scale used to standardise raw states (train-split standard deviations).
    pub state_scale: Vec<f32>,
    /// Index of the raw feature alpha_max(s) is conditioned on, with its threshold and cap.
    pub alpha_cap: Option<(usize, f64, f64)>,
    /// Training split.
    pub train: Split,
    /// Validation split.
    pub validation: Split,
    /// Test split.
    pub test: Split,
}

impl Split {
    /// Agent count implied by the per-agent arrays.
    pub fn agents(&self) -> usize {
        self.unsafe_above.len().checked_div(self.len).unwrap_or(0)
    }

    /// The regime of sample `i` for per-context constraints: 1 in the domain's high-risk region
    /// (where the projection caps alpha below 1: high portfolio volatility, high acuity, an
    /// at-risk student), 0 elsewhere.
    pub fn context(&self, i: usize) -> usize {
        usize::from(self.alpha_max.get(i).is_some_and(|&cap| cap < 1.0))
    }

    /// The standardised state of sample `i`.
    pub fn state(&self, i: usize, dim: usize) -> &[f32] {
        &self.states[i * dim..(i + 1) * dim]
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize], dim: usize) -> Split {
        let agents = self.agents();
        let mut out = Split { len: indices.len(), ..Split::default() };
        for &i in indices {
            out.states.extend_from_slice(self.state(i, dim));
            out.unsafe_above.extend_from_slice(&self.unsafe_above[i * agents..(i + 1) * agents]);
            out.cost_at_zero.extend_from_slice(&self.cost_at_zero[i * agents..(i + 1) * agents]);
            out.cost_at_one.extend_from_slice(&self.cost_at_one[i * agents..(i + 1) * agents]);
            out.alpha_max.push(self.alpha_max[i]);
            out.risk.push(self.risk.get(i).copied().unwrap_or(0.0));
            out.labels.push(self.labels.get(i).cloned().unwrap_or_default());
        }
        out
    }
}

/// The task cost C(tau, a, alpha) of sample `i` decided as `(agent, alpha)`: linear between
/// `cost_at_zero` and `cost_at_one` (NaN for an agent out of range).
pub fn cost(split: &Split, i: usize, agent: usize, alpha: f64) -> f64 {
    let agents = split.agents();
    if agent >= agents {
        return f64::NAN;
    }
    let (c0, c1) = (f64::from(split.cost_at_zero[i * agents + agent]), f64::from(split.cost_at_one[i * agents + agent]));
    (1.0 - alpha) * c0 + alpha * c1
}

/// Task Efficiency of decisions on a split whose costs are `1 - efficiency` (the medical and
/// education domains): `1 - mean cost`. A decision with no valid agent scores 0.
pub fn task_efficiency(split: &Split, decisions: &[(usize, f64)]) -> f64 {
    let n = decisions.len().min(split.len);
    if n == 0 {
        return 0.0;
    }
    let total: f64 = decisions[..n]
        .iter()
        .enumerate()
        .map(|(i, &(agent, alpha))| {
            let c = cost(split, i, agent, alpha);
            if c.is_finite() { 1.0 - c } else { 0.0 }
        })
        .sum();
    total / n as f64
}

/// `batch` distinct indices below `len` (all of them, shuffled, when `batch >= len`).
pub fn sample_indices(rng: &mut impl rand::Rng, len: usize, batch: usize) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..len).collect();
    let take = batch.min(len);
    // partial Fisher-Yates: the first `take` entries are a uniform sample without replacement
    for i in 0..take {
        let j = rng.random_range(i..len);
        pool.swap(i, j);
    }
    pool.truncate(take);
    pool
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha8Rng;

    #[test]
    fn sampling_is_without_replacement_and_deterministic() {
        let mut a = ChaCha8Rng::seed_from_u64(1);
        let mut b = ChaCha8Rng::seed_from_u64(1);
        let x = sample_indices(&mut a, 100, 30);
        assert_eq!(x, sample_indices(&mut b, 100, 30));
        let mut sorted = x.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 30);
        assert_eq!(sample_indices(&mut a, 5, 30).len(), 5);
    }
}

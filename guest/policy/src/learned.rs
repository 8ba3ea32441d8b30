//! Trained SBD networks evaluated at decision time: the meta-weight network phi (state ->
//! lambda) and the delegation network pi (state -> sub-agent logits and alpha), arXiv
//! 2604.27358 sections 3.3 and 6.1.
//!
//! The trainer (`host/train`) writes a [`LearnedModel`]; the policy configuration carries it and
//! the component runs [`LearnedModel::infer`] for every grant. Layout conventions shared with
//! the trainer:
//! - a dense layer stores its weights input-major, `weights[i * outputs + o]`, so that a batch
//!   is `Z = X W + b` with `X` row-major `[batch][inputs]`;
//! - ReLU follows every layer except the last;
//! - the state is standardised with `(s - state_shift) / state_scale` before either network.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// A fully connected layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Dense {
    /// Input width.
    pub inputs: u32,
    /// Output width.
    pub outputs: u32,
    /// `inputs * outputs` weights, input-major.
    pub weights: Vec<f32>,
    /// `outputs` biases.
    pub bias: Vec<f32>,
}

/// A multi-layer perceptron with ReLU between layers and a linear last layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<Dense>,
}

/// What the trainer recorded about the run that produced a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Provenance {
    /// Training domain, e.g. `finance`.
    pub domain: String,
    /// RNG seed of the run.
    pub seed: u64,
    /// Outer steps completed.
    pub outer_steps: u32,
    /// Safety Rate on the test split with the true indicator.
    pub test_safety_rate: f64,
}

/// The trained phi and pi networks with the sub-agents pi chooses among.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LearnedModel {
    /// Length of the raw state vector.
    pub state_dim: u32,
    /// Subtracted from each raw state feature.
    pub state_shift: Vec<f32>,
    /// Each shifted feature is divided by this.
    pub state_scale: Vec<f32>,
    /// Sub-agent names, in the order of pi's logits.
    pub sub_agents: Vec<String>,
    /// phi: state -> one logit; lambda = sigmoid(logit).
    pub meta_weight: Mlp,
    /// pi: state -> `sub_agents.len()` logits, then one alpha logit; alpha = sigmoid(logit).
    pub delegation: Mlp,
    /// Where the weights came from.
    #[serde(default)]
    pub provenance: Provenance,
}

/// One forward pass of both networks.
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    /// lambda_phi(s).
    pub lambda: f64,
    /// Index of the most probable sub-agent (the first on ties).
    pub sub_agent: usize,
    /// softmax(logits): the probability of each sub-agent.
    pub sub_agent_probabilities: Vec<f64>,
    /// alpha before projection onto the safe set.
    pub alpha: f64,
}

impl Mlp {
    /// Input width of the first layer.
    pub fn inputs(&self) -> u32 {
        self.layers.first().map_or(0, |l| l.inputs)
    }

    /// Output width of the last layer.
    pub fn outputs(&self) -> u32 {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.layers.iter().map(|l| l.weights.len() + l.bias.len()).sum()
    }

    /// Forward pass of one input row. Accumulates in f32, like the trainer.
    pub fn forward(&self, input: &[f32]) -> Vec<f32> {
        let mut x = input.to_vec();
        let last = self.layers.len().saturating_sub(1);
        for (index, layer) in self.layers.iter().enumerate() {
            let mut z = vec![0.0; layer.outputs as usize];
            dense(&x, &layer.weights, &layer.bias, &mut z);
            if index != last {
                // ReLU, as `max(v, 0)` (NaN becomes 0) without a call to `fmaxf` per value
                for v in &mut z {
                    *v = if *v > 0.0 { *v } else { 0.0 };
                }
            }
            x = z;
        }
        x
    }

    fn validate(&self, name: &str, inputs: u32, outputs: u32) -> Result<(), ConfigError> {
        if self.layers.is_empty() {
            return Err(ConfigError::new(format!("`{name}` has no layers")));
        }
        let mut width = inputs;
        for (i, layer) in self.layers.iter().enumerate() {
            // checked: on the 32-bit guest a product of two u32 can wrap
            let expected = (layer.inputs as usize).checked_mul(layer.outputs as usize);
            if layer.inputs != width
                || layer.outputs == 0
                || Some(layer.weights.len()) != expected
                || layer.bias.len() != layer.outputs as usize
            {
                return Err(ConfigError::new(format!(
                    "`{name}` layer {i} is malformed: {}x{} with {} weights and {} biases after a layer of width {width}",
                    layer.inputs,
                    layer.outputs,
                    layer.weights.len(),
                    layer.bias.len()
                )));
            }
            if layer.weights.iter().chain(&layer.bias).any(|v| !v.is_finite()) {
                return Err(ConfigError::new(format!("`{name}` layer {i} has a non-finite parameter")));
            }
            width = layer.outputs;
        }
        if width != outputs {
            return Err(ConfigError::new(format!("`{name}` must have {outputs} outputs, has {width}")));
        }
        Ok(())
    }
}

impl LearnedModel {
    /// Checks shapes and values; every later forward pass relies on this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let dim = self.state_dim as usize;
        if dim == 0 || self.state_shift.len() != dim || self.state_scale.len() != dim {
            return Err(ConfigError::new(format!(
                "learned model: state_dim {dim} needs that many shifts and scales (got {} and {})",
                self.state_shift.len(),
                self.state_scale.len()
            )));
        }
        if self.state_shift.iter().any(|v| !v.is_finite())
            || self.state_scale.iter().any(|v| !v.is_finite() || *v <= 0.0)
        {
            return Err(ConfigError::new("learned model: shifts must be finite and scales positive"));
        }
        if self.sub_agents.is_empty() || self.sub_agents.iter().any(String::is_empty) {
            return Err(ConfigError::new("learned model: needs at least one named sub-agent"));
        }
        let agents = u32::try_from(self.sub_agents.len())
            .map_err(|_| ConfigError::new("learned model: too many sub-agents"))?;
        self.meta_weight.validate("meta_weight", self.state_dim, 1)?;
        self.delegation.validate("delegation", self.state_dim, agents + 1)?;
        Ok(())
    }

    /// Standardises a raw state vector. The caller has checked its length.
    pub fn standardise(&self, state: &[f64]) -> Vec<f32> {
        state
            .iter()
            .zip(self.state_shift.iter().zip(&self.state_scale))
            .map(|(&s, (&shift, &scale))| (s as f32 - shift) / scale)
            .collect()
    }

    /// lambda, the chosen sub-agent and the unprojected alpha for a raw state vector; `None`
    /// when the standardised state or an output is not finite (a state far outside anything
    /// the networks saw, or weights that overflow f32), so the caller can fail closed.
    pub fn infer(&self, state: &[f64]) -> Option<Inference> {
        let x = self.standardise(state);
        if x.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let lambda = sigmoid(self.meta_weight.forward(&x).first().copied().unwrap_or(0.0));
        let out = self.delegation.forward(&x);
        let agents = self.sub_agents.len();
        let (logits, alpha_logit) = out.split_at(agents.min(out.len()));
        let alpha = sigmoid(alpha_logit.first().copied().unwrap_or(f32::NEG_INFINITY));
        let probabilities = softmax(logits);
        let mut best = 0;
        for (i, p) in probabilities.iter().enumerate() {
            if *p > probabilities[best] {
                best = i;
            }
        }
        let finite = lambda.is_finite() && alpha.is_finite() && probabilities.iter().all(|p| p.is_finite());
        finite.then_some(Inference { lambda, sub_agent: best, sub_agent_probabilities: probabilities, alpha })
    }
}

/// Input rows folded into the outputs per pass of [`dense`].
const UNROLL: usize = 4;
/// Outputs updated per step of [`dense`]'s inner loop: eight 128-bit vectors of f32.
const LANES: usize = 32;

/// `out = bias + x W` for input-major `weights` (`weights[i * outputs + o]`).
///
/// Every output accumulates `bias[o] + x[0] w[0][o] + x[1] w[1][o] + ...` in that order, the
/// order of the plain loop, so the result is bit-identical natively and in the component.
/// Each pass folds [`UNROLL`] input rows into every output, over the outputs in order, which
/// the compiler vectorises (SSE natively, `simd128` in the component) with a handful of live
/// registers. That matters in the component: Cranelift does not reschedule, so a kernel with
/// many live vectors (sums held in registers over a whole row) spills them to the stack on
/// every step; inlined into its caller, the plain loop made the learned policy 5x slower there.
#[inline(never)]
fn dense(x: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32]) {
    let outputs = out.len();
    out.copy_from_slice(bias);
    // Validation sized the weights; were they short, NaN outputs make the inference fail
    // closed instead of deciding on a partial sum.
    let Some(weights) = x.len().checked_mul(outputs).and_then(|n| weights.get(..n)) else {
        out.fill(f32::NAN);
        return;
    };
    let mut rows = weights.chunks_exact(outputs.max(1));
    let groups = x.chunks_exact(UNROLL);
    let rest = groups.remainder();
    for group in groups {
        let (Some(w0), Some(w1), Some(w2), Some(w3)) = (rows.next(), rows.next(), rows.next(), rows.next())
        else {
            out.fill(f32::NAN);
            return;
        };
        let (x0, x1, x2, x3) = (group[0], group[1], group[2], group[3]);
        let fold = |o: &mut [f32], a: &[f32], b: &[f32], c: &[f32], d: &[f32]| {
            for ((((o, &a), &b), &c), &d) in o.iter_mut().zip(a).zip(b).zip(c).zip(d) {
                let mut sum = *o;
                sum += x0 * a;
                sum += x1 * b;
                sum += x2 * c;
                sum += x3 * d;
                *o = sum;
            }
        };
        // LANES outputs per step, so the per-step cost of the loop (an epoch check, and the
        // broadcast inputs Cranelift reloads around it) is paid once per eight vectors
        // (measured: 16 and 64 were slower in the component, 64 by 1.7x).
        let mut chunks = out.chunks_exact_mut(LANES);
        let mut at = 0;
        for o in chunks.by_ref() {
            let range = at..at + LANES;
            fold(o, &w0[range.clone()], &w1[range.clone()], &w2[range.clone()], &w3[range]);
            at += LANES;
        }
        fold(chunks.into_remainder(), &w0[at..], &w1[at..], &w2[at..], &w3[at..]);
    }
    for (&xi, w) in rest.iter().zip(rows) {
        for (o, &wk) in out.iter_mut().zip(w) {
            *o += xi * wk;
        }
    }
}

fn sigmoid(x: f32) -> f64 {
    1.0 / (1.0 + libm::exp(-f64::from(x)))
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut out = vec![0.0; logits.len()];
    let mut total = 0.0;
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = libm::exp(f64::from(l - max));
        total += *o;
    }
    for o in &mut out {
        *o /= total;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(inputs: u32, outputs: u32, fill: f32) -> Dense {
        Dense {
            inputs,
            outputs,
            weights: (0..inputs * outputs).map(|i| fill * ((i % 7) as f32 - 3.0)).collect(),
            bias: vec![0.1; outputs as usize],
        }
    }

    pub(crate) fn model() -> LearnedModel {
        LearnedModel {
            state_dim: 3,
            state_shift: vec![0.0, 1.0, 0.0],
            state_scale: vec![1.0, 2.0, 1.0],
            sub_agents: vec!["a".into(), "b".into()],
            meta_weight: Mlp { layers: vec![layer(3, 4, 0.1), layer(4, 1, 0.2)] },
            delegation: Mlp { layers: vec![layer(3, 4, 0.3), layer(4, 3, -0.2)] },
            provenance: Provenance::default(),
        }
    }

    #[test]
    fn a_well_formed_model_validates_and_infers_in_range() {
        let m = model();
        assert_eq!(m.validate(), Ok(()));
        let out = m.infer(&[0.5, -1.0, 2.0]);
        assert!(out.is_some(), "a finite model on a finite state gives finite outputs");
        if let Some(out) = out {
            assert!((0.0..=1.0).contains(&out.lambda));
            assert!((0.0..=1.0).contains(&out.alpha));
            assert!((out.sub_agent_probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(out.sub_agent < 2);
        }
    }

    #[test]
    fn overflowing_networks_and_absurd_states_give_no_inference() {
        // passes validation (every weight finite) but overflows: inf * 0 = NaN
        let mut m = model();
        m.delegation.layers[0].weights.iter_mut().for_each(|w| *w = f32::MAX);
        m.delegation.layers[1].weights.iter_mut().for_each(|w| *w = 0.0);
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(m.infer(&[1.0, 3.0, 1.0]), None);
        // a finite f64 state beyond f32's range
        assert_eq!(model().infer(&[1e300, 0.0, 0.0]), None);
    }

    proptest::proptest! {
        /// The blocked kernel adds in the plain loop's order, so its outputs are bit-identical
        /// to `bias[o] + sum_i x[i] w[i][o]` summed left to right, for any width (full blocks
        /// and a remainder alike).
        #[test]
        fn dense_is_bit_identical_to_the_plain_loop(
            inputs in 1usize..40,
            outputs in 1usize..70,
            seed in proptest::prelude::any::<u64>(),
        ) {
            let mut state = seed | 1;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 2001) as f32 / 1000.0 - 1.0
            };
            let x: Vec<f32> = (0..inputs).map(|_| next()).collect();
            let weights: Vec<f32> = (0..inputs * outputs).map(|_| next()).collect();
            let bias: Vec<f32> = (0..outputs).map(|_| next()).collect();
            let mut out = vec![0.0; outputs];
            dense(&x, &weights, &bias, &mut out);
            for (o, got) in out.iter().enumerate() {
                let mut want = bias[o];
                for (i, xi) in x.iter().enumerate() {
                    want += xi * weights[i * outputs + o];
                }
                proptest::prop_assert_eq!(got.to_bits(), want.to_bits(), "output {}", o);
            }
        }
    }

    #[test]
    fn forward_matches_a_hand_computed_layer() {
        let mlp = Mlp {
            layers: vec![Dense {
                inputs: 2,
                outputs: 2,
                weights: vec![1.0, 2.0, 3.0, 4.0],
                bias: vec![0.5, -100.0],
            }],
        };
        // z0 = 0.5 + 1*1 + 2*3 = 7.5 ; z1 = -100 + 1*2 + 2*4 = -90 (last layer: no ReLU)
        assert_eq!(mlp.forward(&[1.0, 2.0]), vec![7.5, -90.0]);
    }

    #[test]
    fn malformed_models_are_rejected_with_the_part_named() {
        let mut m = model();
        m.delegation.layers[1].outputs = 2;
        m.delegation.layers[1].weights.truncate(8);
        m.delegation.layers[1].bias.truncate(2);
        assert!(m.validate().err().map(|e| e.message().contains("delegation")).unwrap_or(false));

        let mut m = model();
        m.meta_weight.layers[0].weights[0] = f32::NAN;
        assert!(m.validate().err().map(|e| e.message().contains("non-finite")).unwrap_or(false));

        let mut m = model();
        m.state_scale[1] = 0.0;
        assert!(m.validate().is_err());

        let mut m = model();
        m.sub_agents.clear();
        assert!(m.validate().is_err());
    }
}

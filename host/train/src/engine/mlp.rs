//! Multi-layer perceptrons over a flat parameter vector: forward pass, reverse-mode gradient
//! and forward-mode directional derivative (JVP).
//!
//! Layer `l` maps width `sizes[l]` to `sizes[l + 1]`; its weights are stored input-major
//! (`W[i * out + o]`, so a batch is `Z = X W + b`) followed by its biases, layer after layer.
//! That is the layout of [`sbd_policy::learned::Dense`], so export is a copy. ReLU follows
//! every layer but the last. A flat vector makes the optimiser step, the tangent of the
//! hypergradient and finite differences one loop each.

use rand::RngExt;

use crate::engine::linalg::{MatRef, Scalar, matmul};

/// The widths of an MLP, input first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    sizes: Vec<usize>,
}

impl Shape {
    /// An MLP with these widths (`sizes[0]` inputs, last entry outputs).
    ///
    /// # Panics
    /// With fewer than two widths or a zero width (a programming error).
    pub fn new(sizes: &[usize]) -> Shape {
        assert!(sizes.len() >= 2 && sizes.iter().all(|&s| s > 0), "bad MLP widths {sizes:?}");
        Shape { sizes: sizes.to_vec() }
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// (inputs, outputs) of layer `l`.
    pub fn layer(&self, l: usize) -> (usize, usize) {
        (self.sizes[l], self.sizes[l + 1])
    }

    /// Total parameter count.
    pub fn parameters(&self) -> usize {
        (0..self.layers()).map(|l| self.sizes[l] * self.sizes[l + 1] + self.sizes[l + 1]).sum()
    }

    /// Offsets of layer `l`'s weights and biases in the flat vector.
    pub fn offsets(&self, l: usize) -> (usize, usize) {
        let start: usize = (0..l).map(|j| self.sizes[j] * self.sizes[j + 1] + self.sizes[j + 1]).sum();
        (start, start + self.sizes[l] * self.sizes[l + 1])
    }

    /// Multiply-adds of one forward pass for one input row.
    pub fn forward_macs(&self) -> usize {
        (0..self.layers()).map(|l| self.sizes[l] * self.sizes[l + 1]).sum()
    }

    /// The widths.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
}

/// Splits a flat parameter (or gradient) vector into layer `l`'s weights and biases.
fn layer_params<'a, T>(shape: &Shape, params: &'a [T], l: usize) -> (&'a [T], &'a [T]) {
    let (w, b) = shape.offsets(l);
    let (i, o) = shape.layer(l);
    (&params[w..w + i * o], &params[b..b + o])
}

/// He-uniform initial parameters, biases zero; the last layer is scaled by `last_scale`
/// (small outputs at the start keep sigmoid and softmax heads away from saturation).
pub fn init<T: Scalar>(shape: &Shape, rng: &mut impl rand::Rng, last_scale: f64) -> Vec<T> {
    let mut params = vec![T::zero(); shape.parameters()];
    for l in 0..shape.layers() {
        let (w, _) = shape.offsets(l);
        let (i, o) = shape.layer(l);
        let mut bound = (6.0 / i as f64).sqrt();
        if l + 1 == shape.layers() {
            bound *= last_scale;
        }
        for p in &mut params[w..w + i * o] {
            *p = T::of(rng.random_range(-bound..bound));
        }
    }
    params
}

/// What a forward pass keeps for the backward pass and the JVP.
#[derive(Debug, Clone)]
pub struct Activations<T> {
    /// Batch size.
    pub batch: usize,
    /// `inputs[l]` is the input of layer `l` (`inputs[0]` the batch itself, then post-ReLU).
    pub inputs: Vec<Vec<T>>,
    /// The last layer's linear output, `[batch][outputs]`.
    pub output: Vec<T>,
}

/// Forward pass of `batch` rows of `x`.
pub fn forward<T: Scalar>(shape: &Shape, params: &[T], x: &[T], batch: usize) -> Activations<T> {
    let mut inputs = Vec::with_capacity(shape.layers());
    let mut current = x[..batch * shape.inputs()].to_vec();
    for l in 0..shape.layers() {
        let (i, o) = shape.layer(l);
        let (w, b) = layer_params(shape, params, l);
        let mut z = Vec::with_capacity(batch * o);
        for _ in 0..batch {
            z.extend_from_slice(b);
        }
        matmul(MatRef::new(&current, batch, i), MatRef::new(w, i, o), &mut z, true);
        if l + 1 < shape.layers() {
            for v in &mut z {
                *v = v.max(T::zero());
            }
        }
        inputs.push(std::mem::replace(&mut current, z));
    }
    Activations { batch, inputs, output: current }
}

/// Reverse mode: adds the gradient of `sum_rows d_output . output` with respect to the
/// parameters into `grad`.
pub fn backward<T: Scalar>(
    shape: &Shape,
    params: &[T],
    acts: &Activations<T>,
    d_output: &[T],
    grad: &mut [T],
) {
    let batch = acts.batch;
    let mut delta = d_output[..batch * shape.outputs()].to_vec();
    for l in (0..shape.layers()).rev() {
        let (i, o) = shape.layer(l);
        let (w_off, b_off) = shape.offsets(l);
        let input = &acts.inputs[l];
        // dW += X^T delta ; db += column sums of delta
        matmul(
            MatRef::new(input, batch, i).t(),
            MatRef::new(&delta, batch, o),
            &mut grad[w_off..w_off + i * o],
            true,
        );
        let db = &mut grad[b_off..b_off + o];
        for row in delta.chunks_exact(o) {
            for (g, &d) in db.iter_mut().zip(row) {
                *g += d;
            }
        }
        if l > 0 {
            // delta_prev = (delta W^T) * relu'(input)
            let (w, _) = layer_params(shape, params, l);
            let mut prev = vec![T::zero(); batch * i];
            matmul(MatRef::new(&delta, batch, o), MatRef::new(w, i, o).t(), &mut prev, false);
            for (p, &h) in prev.iter_mut().zip(input) {
                if h <= T::zero() {
                    *p = T::zero();
                }
            }
            delta = prev;
        }
    }
}

/// Forward mode: the directional derivative of the output along the parameter tangent
/// `tangent`, `[batch][outputs]`, at the point the activations were taken.
pub fn jvp<T: Scalar>(shape: &Shape, params: &[T], acts: &Activations<T>, tangent: &[T]) -> Vec<T> {
    let batch = acts.batch;
    let mut d_input: Option<Vec<T>> = None; // tangent of layer l's input; zero for the data
    for l in 0..shape.layers() {
        let (i, o) = shape.layer(l);
        let (w, _) = layer_params(shape, params, l);
        let (dw, db) = layer_params(shape, tangent, l);
        // dZ = dX W + X dW + db
        let mut dz = Vec::with_capacity(batch * o);
        for _ in 0..batch {
            dz.extend_from_slice(db);
        }
        matmul(MatRef::new(&acts.inputs[l], batch, i), MatRef::new(dw, i, o), &mut dz, true);
        if let Some(dx) = &d_input {
            matmul(MatRef::new(dx, batch, i), MatRef::new(w, i, o), &mut dz, true);
        }
        if l + 1 < shape.layers() {
            let next_input = &acts.inputs[l + 1];
            for (d, &h) in dz.iter_mut().zip(next_input) {
                if h <= T::zero() {
                    *d = T::zero();
                }
            }
        }
        d_input = Some(dz);
    }
    d_input.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha8Rng;

    fn setup() -> (Shape, Vec<f64>, Vec<f64>, usize) {
        let shape = Shape::new(&[5, 9, 7, 3]);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let params = init::<f64>(&shape, &mut rng, 1.0);
        let batch = 4;
        let x: Vec<f64> = (0..batch * 5).map(|_| rng.random_range(-1.0..1.0)).collect();
        (shape, params, x, batch)
    }

    fn loss(shape: &Shape, params: &[f64], x: &[f64], batch: usize, weights: &[f64]) -> f64 {
        forward(shape, params, x, batch).output.iter().zip(weights).map(|(o, w)| o * w).sum()
    }

    #[test]
    fn backward_matches_central_differences() {
        let (shape, params, x, batch) = setup();
        let weights: Vec<f64> = (0..batch * 3).map(|i| (i as f64 * 0.7).sin()).collect();
        let acts = forward(&shape, &params, &x, batch);
        let mut grad = vec![0.0; shape.parameters()];
        backward(&shape, &params, &acts, &weights, &mut grad);
        let h = 1e-6;
        for k in (0..shape.parameters()).step_by(7) {
            let mut plus = params.clone();
            plus[k] += h;
            let mut minus = params.clone();
            minus[k] -= h;
            let fd = (loss(&shape, &plus, &x, batch, &weights) - loss(&shape, &minus, &x, batch, &weights))
                / (2.0 * h);
            assert!((fd - grad[k]).abs() < 1e-6 * (1.0 + fd.abs()), "param {k}: fd {fd} vs {}", grad[k]);
        }
    }

    #[test]
    fn jvp_matches_the_gradient_dot_tangent() {
        let (shape, params, x, batch) = setup();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let tangent: Vec<f64> = (0..shape.parameters()).map(|_| rng.random_range(-1.0..1.0)).collect();
        let acts = forward(&shape, &params, &x, batch);
        let dout = jvp(&shape, &params, &acts, &tangent);
        for row in 0..batch {
            for out in 0..3 {
                let mut weights = vec![0.0; batch * 3];
                weights[row * 3 + out] = 1.0;
                let mut grad = vec![0.0; shape.parameters()];
                backward(&shape, &params, &acts, &weights, &mut grad);
                let dot: f64 = grad.iter().zip(&tangent).map(|(g, t)| g * t).sum();
                assert!((dot - dout[row * 3 + out]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn layout_and_counts_are_consistent() {
        let shape = Shape::new(&[64, 256, 256, 256, 4]);
        assert_eq!(shape.parameters(), 64 * 256 + 256 + 2 * (256 * 256 + 256) + 256 * 4 + 4);
        assert_eq!(shape.offsets(1).0, 64 * 256 + 256);
        assert_eq!(shape.forward_macs(), 64 * 256 + 2 * 256 * 256 + 256 * 4);
    }
}

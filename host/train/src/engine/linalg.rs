//! Dense matrix products for the trainer, on `matrixmultiply`'s packed AVX2/FMA kernels.
//!
//! Everything is row-major; a [`MatRef`] is a strided view, so a transpose is free. The
//! trainer is generic over [`Scalar`] so the same code runs in f32 (training) and in f64 (the
//! finite-difference check of the hypergradient).

use std::fmt::Debug;
use std::ops::AddAssign;

use num_traits::Float;

/// A floating-point type the trainer computes in.
pub trait Scalar: Float + AddAssign + Default + Debug + Send + Sync + 'static {
    /// Converts from f64 (rounding for f32).
    fn of(value: f64) -> Self;
    /// Converts to f64.
    fn f64(self) -> f64;
    /// `c = a b + beta c` for the raw strided operands (see [`matmul`]).
    #[allow(clippy::too_many_arguments)]
    fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        a: MatRef<'_, Self>,
        b: MatRef<'_, Self>,
        beta: Self,
        c: &mut [Self],
    );
}

/// A strided, read-only matrix view.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major `rows x cols` view of `data`.
    ///
    /// # Panics
    /// When `data` is shorter than `rows * cols` (a programming error, not an input error).
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix view {rows}x{cols} over {} elements", data.len());
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

macro_rules! impl_scalar {
    ($t:ty, $gemm:path) => {
        impl Scalar for $t {
            fn of(value: f64) -> Self {
                value as $t
            }
            fn f64(self) -> f64 {
                self as f64
            }
            fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                a: MatRef<'_, Self>,
                b: MatRef<'_, Self>,
                beta: Self,
                c: &mut [Self],
            ) {
                let stride = |s: usize| isize::try_from(s).unwrap_or(isize::MAX);
                #[allow(unsafe_code)]
                // SAFETY: `matmul` checked that every index the kernel touches,
                // (rows-1)*row_stride + (cols-1)*col_stride for a, b and c, lies inside the
                // slices, that c has no aliasing (it is a unique borrow) and that the shapes
                // agree. matrixmultiply reads a and b and writes only c within those bounds.
                unsafe {
                    $gemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.data.as_ptr(),
                        stride(a.row_stride),
                        stride(a.col_stride),
                        b.data.as_ptr(),
                        stride(b.row_stride),
                        stride(b.col_stride),
                        beta,
                        c.as_mut_ptr(),
                        stride(n),
                        1,
                    )
                }
            }
        }
    };
}

impl_scalar!(f32, matrixmultiply::sgemm);
impl_scalar!(f64, matrixmultiply::dgemm);

fn fits<T>(m: &MatRef<'_, T>) -> bool {
    m.rows == 0 || m.cols == 0 || (m.rows - 1) * m.row_stride + (m.cols - 1) * m.col_stride < m.data.len()
}

/// `c = a b` (or `c += a b` with `accumulate`), `c` row-major `a.rows x b.cols`.
///
/// # Panics
/// On mismatched shapes: every caller passes shapes fixed by the network layout.
pub fn matmul<T: Scalar>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T], accumulate: bool) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    assert!(fits(&a) && fits(&b), "operand view out of bounds");
    assert!(c.len() >= a.rows * b.cols, "output too small");
    if a.rows == 0 || b.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            c[..a.rows * b.cols].fill(T::zero());
        }
        return;
    }
    let beta = if accumulate { T::one() } else { T::zero() };
    T::gemm_raw(a.rows, a.cols, b.cols, a, b, beta, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_and_transposes_match_a_naive_reference() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let mut c = vec![0.0; m * n];
        matmul(MatRef::new(&a, m, k), MatRef::new(&b, k, n), &mut c, false);
        for (x, y) in c.iter().zip(naive(&a, &b, m, k, n)) {
            assert!((x - y).abs() < 1e-12);
        }
        // (a^T)^T b^T^T: use the transpose of a k x m matrix
        let at: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let mut c2 = vec![1.0; m * n];
        matmul(MatRef::new(&at, k, m).t(), MatRef::new(&b, k, n), &mut c2, true);
        for (x, y) in c2.iter().zip(naive(&a, &b, m, k, n)) {
            assert!((x - 1.0 - y).abs() < 1e-12);
        }
    }
}

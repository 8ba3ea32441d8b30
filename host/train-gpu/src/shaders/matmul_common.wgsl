// The matrix product's contract, shared by its two forms (matmul.wgsl, matmul_vec4.wgsl; the
// host prepends this file to either): C = op(A) op(B) (+ bias) (+ C) with a ReLU or a ReLU
// mask, all f32, row-major C.
//
// A(i, k) = a[a_offset + i * a_row + k * a_col] and B(k, j) = b[b_offset + k * b_row + j * b_col],
// so transposes and sub-matrices of the flat parameter vector are just strides and offsets.
// C(i, j) = c[c_offset + i * n + j].
//
// A workgroup of 16 x 16 invocations computes a 64 x 64 block of C, each invocation a 4 x 4
// sub-block; slices of depth 16 of A and B go through workgroup memory. Sizes need not divide
// the block: out-of-range loads read zero and out-of-range stores are skipped.

struct Params {
    m: u32, k: u32, n: u32,
    a_offset: u32, a_row: u32, a_col: u32,
    b_offset: u32, b_row: u32, b_col: u32,
    c_offset: u32,
    bias_offset: u32,
    // bit 0: add the bias row; bit 1: accumulate into C; bit 2: ReLU the result;
    // bit 3: zero entries where mask(i, j) <= 0 (the ReLU derivative of the layer's input)
    flags: u32,
    mask_offset: u32,
    _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const BLOCK: u32 = 64u;
const DEPTH: u32 = 16u;

// C(row, col) = value with the flags' bias, accumulation, ReLU and mask
fn store(row: u32, col: u32, value: f32) {
    if (row >= p.m || col >= p.n) {
        return;
    }
    let at = p.c_offset + row * p.n + col;
    var v = value;
    if ((p.flags & 1u) != 0u) {
        v = v + bias[p.bias_offset + col];
    }
    if ((p.flags & 2u) != 0u) {
        v = v + c[at];
    }
    if ((p.flags & 4u) != 0u) {
        v = max(v, 0.0);
    }
    if ((p.flags & 8u) != 0u && mask[p.mask_offset + row * p.n + col] <= 0.0) {
        v = 0.0;
    }
    c[at] = v;
}

// C = op(A) op(B) (+ bias) (+ C) with a ReLU or a ReLU mask, all f32, row-major C.
//
// A(i, k) = a[a_offset + i * a_row + k * a_col] and B(k, j) = b[b_offset + k * b_row + j * b_col],
// so transposes and sub-matrices of the flat parameter vector are just strides and offsets.
// C(i, j) = c[c_offset + i * n + j].
//
// A workgroup of 16 x 16 invocations computes a 64 x 64 block of C, each invocation a 4 x 4
// sub-block held in registers; 64 x 16 slices of A and 16 x 64 slices of B go through
// workgroup memory. Sizes need not divide the block: out-of-range loads read zero.

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
var<workgroup> tile_a: array<array<f32, 16>, 64>;   // [row in block][k in slice]
var<workgroup> tile_b: array<array<f32, 64>, 16>;   // [k in slice][column in block]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = group.y * BLOCK;
    let col0 = group.x * BLOCK;
    let flat = lid.y * 16u + lid.x;  // 0..256
    var acc: array<array<f32, 4>, 4>;
    for (var i = 0u; i < 4u; i = i + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            acc[i][j] = 0.0;
        }
    }
    let slices = (p.k + DEPTH - 1u) / DEPTH;
    for (var s = 0u; s < slices; s = s + 1u) {
        // 1,024 entries of each slice, four per invocation
        for (var e = 0u; e < 4u; e = e + 1u) {
            let index = flat * 4u + e;
            let ar = index / DEPTH;
            let ak = index % DEPTH;
            let gi = row0 + ar;
            let gk = s * DEPTH + ak;
            var av = 0.0;
            if (gi < p.m && gk < p.k) {
                av = a[p.a_offset + gi * p.a_row + gk * p.a_col];
            }
            tile_a[ar][ak] = av;
            let bk = index / BLOCK;
            let bc = index % BLOCK;
            let gk2 = s * DEPTH + bk;
            let gj = col0 + bc;
            var bv = 0.0;
            if (gk2 < p.k && gj < p.n) {
                bv = b[p.b_offset + gk2 * p.b_row + gj * p.b_col];
            }
            tile_b[bk][bc] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < DEPTH; kk = kk + 1u) {
            var ra: array<f32, 4>;
            var rb: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                ra[i] = tile_a[lid.y * 4u + i][kk];
                rb[i] = tile_b[kk][lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i][j] = acc[i][j] + ra[i] * rb[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + lid.x * 4u + j;
            if (row < p.m && col < p.n) {
                let at = p.c_offset + row * p.n + col;
                var v = acc[i][j];
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
        }
    }
}

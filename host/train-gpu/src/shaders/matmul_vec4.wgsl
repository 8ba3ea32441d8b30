// The same product as matmul.wgsl (same parameters, flags and layout of C), written so that
// nothing per thread is an indexed array: each invocation's 4 x 4 block of C is four vec4
// accumulators, and the tiles hold vec4s of four rows of A and four columns of B, so the inner
// product step is four vector multiply-adds on two workgroup loads.
//
// A workgroup of 16 x 16 invocations computes a 64 x 64 block of C; invocation (x, y) holds
// rows 4y..4y+3 and columns 4x..4x+3 of it. Slices of depth 16 go through workgroup memory:
// tile_a[k][y] = A(rows 4y..4y+3, k), tile_b[k][x] = B(k, columns 4x..4x+3). Sizes need not
// divide the block: out-of-range loads read zero and out-of-range stores are skipped.

struct Params {
    m: u32, k: u32, n: u32,
    a_offset: u32, a_row: u32, a_col: u32,
    b_offset: u32, b_row: u32, b_col: u32,
    c_offset: u32,
    bias_offset: u32,
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
var<workgroup> tile_a: array<array<vec4<f32>, 16>, 16>;   // [k in slice][row group]
var<workgroup> tile_b: array<array<vec4<f32>, 16>, 16>;   // [k in slice][column group]

fn load_a(row: u32, k: u32) -> f32 {
    if (row < p.m && k < p.k) {
        return a[p.a_offset + row * p.a_row + k * p.a_col];
    }
    return 0.0;
}

fn load_b(k: u32, col: u32) -> f32 {
    if (k < p.k && col < p.n) {
        return b[p.b_offset + k * p.b_row + col * p.b_col];
    }
    return 0.0;
}

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

fn store_row(row: u32, col: u32, v: vec4<f32>) {
    store(row, col, v.x);
    store(row, col + 1u, v.y);
    store(row, col + 2u, v.z);
    store(row, col + 3u, v.w);
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = group.y * BLOCK;
    let col0 = group.x * BLOCK;
    let flat = lid.y * 16u + lid.x;  // 0..256
    // what this invocation loads: A(4 rows of group load_rows, k = load_k), and
    // B(k = load_k2, 4 columns of group load_cols)
    let load_k = flat % DEPTH;
    let load_rows = flat / DEPTH;
    let load_k2 = flat / 16u;
    let load_cols = flat % 16u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let slices = (p.k + DEPTH - 1u) / DEPTH;
    for (var s = 0u; s < slices; s = s + 1u) {
        let k0 = s * DEPTH;
        let r = row0 + load_rows * 4u;
        tile_a[load_k][load_rows] = vec4<f32>(
            load_a(r, k0 + load_k),
            load_a(r + 1u, k0 + load_k),
            load_a(r + 2u, k0 + load_k),
            load_a(r + 3u, k0 + load_k),
        );
        let cc = col0 + load_cols * 4u;
        tile_b[load_k2][load_cols] = vec4<f32>(
            load_b(k0 + load_k2, cc),
            load_b(k0 + load_k2, cc + 1u),
            load_b(k0 + load_k2, cc + 2u),
            load_b(k0 + load_k2, cc + 3u),
        );
        workgroupBarrier();
        for (var kk = 0u; kk < DEPTH; kk = kk + 1u) {
            let av = tile_a[kk][lid.y];
            let bv = tile_b[kk][lid.x];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    let row = row0 + lid.y * 4u;
    let col = col0 + lid.x * 4u;
    store_row(row, col, acc0);
    store_row(row + 1u, col, acc1);
    store_row(row + 2u, col, acc2);
    store_row(row + 3u, col, acc3);
}

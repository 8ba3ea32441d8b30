// The looped form of the matrix product (matmul_common.wgsl holds its contract and store):
// each invocation's 4 x 4 block of C in an indexed array, filled by loops; 64 x 16 slices of A
// and 16 x 64 slices of B in workgroup memory. Kept to be measured against the vec4 form
// (benches/gpu_kernels.rs): with wgpu's loop bounding it is 31x slower on an NVIDIA H200.

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
        for (var j = 0u; j < 4u; j = j + 1u) {
            store(row0 + lid.y * 4u + i, col0 + lid.x * 4u + j, acc[i][j]);
        }
    }
}

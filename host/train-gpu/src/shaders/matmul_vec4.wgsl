// The vec4 form of the matrix product (matmul_common.wgsl holds its contract and store),
// written so that nothing per thread is an indexed array: each invocation's 4 x 4 block of C
// is four vec4 accumulators, and the tiles hold vec4s of four rows of A and four columns of B,
// so the inner product step is four vector multiply-adds on two workgroup loads.
//
// Invocation (x, y) holds rows 4y..4y+3 and columns 4x..4x+3 of its workgroup's block:
// tile_a[k][y] = A(rows 4y..4y+3, k), tile_b[k][x] = B(k, columns 4x..4x+3).

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

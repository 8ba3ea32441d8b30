// Column sums of a layer's delta into its bias gradient, and the SGD step.

struct Params { rows: u32, cols: u32, offset: u32, _pad0: u32, eta: f32, _pad1: f32, _pad2: f32, _pad3: f32 }

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// dst[offset + j] = sum_r src[r * cols + j]
@compute @workgroup_size(64, 1, 1)
fn bias_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= p.cols) {
        return;
    }
    var sum = 0.0;
    for (var r = 0u; r < p.rows; r = r + 1u) {
        sum = sum + src[r * p.cols + j];
    }
    dst[p.offset + j] = sum;
}

// dst[i] -= eta * src[i] for i < cols: the parameters and their gradient
@compute @workgroup_size(64, 1, 1)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.cols) {
        return;
    }
    dst[i] = dst[i] - p.eta * src[i];
}

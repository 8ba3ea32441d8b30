// Column sums of a layer's delta into its bias gradient, and the SGD step. Both stride over
// the grid, so any size fits in the 65,535-workgroup dispatch limit.

struct Params { rows: u32, cols: u32, offset: u32, _pad0: u32, eta: f32, _pad1: f32, _pad2: f32, _pad3: f32 }

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// dst[offset + j] = sum_r src[r * cols + j]
@compute @workgroup_size(64, 1, 1)
fn bias_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let stride = groups.x * 64u;
    for (var j = gid.x; j < p.cols; j = j + stride) {
        var sum = 0.0;
        for (var r = 0u; r < p.rows; r = r + 1u) {
            sum = sum + src[r * p.cols + j];
        }
        dst[p.offset + j] = sum;
        if (p.cols - j <= stride) {
            break;  // the next index is past the end: stop before it can wrap around
        }
    }
}

// dst[i] -= eta * src[i] for i < cols: the parameters and their gradient
@compute @workgroup_size(64, 1, 1)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let stride = groups.x * 64u;
    for (var i = gid.x; i < p.cols; i = i + stride) {
        dst[i] = dst[i] - p.eta * src[i];
        if (p.cols - i <= stride) {
            break;  // as in bias_grad
        }
    }
}

// x[b][j] = states[indices[step * batch + b]][j]: the inner step's mini-batch, gathered on the
// device from the split uploaded once. `step` is the device-side counter `advance` increments.

struct Params { batch: u32, dim: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<storage, read> states: array<f32>;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read> counter: array<u32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let total = p.batch * p.dim;  // the host refuses a product past u32::MAX
    let stride = groups.x * 64u;
    for (var i = gid.x; i < total; i = i + stride) {
        let b = i / p.dim;
        let j = i % p.dim;
        let sample = indices[counter[0] * p.batch + b];
        x[i] = states[sample * p.dim + j];
        if (total - i <= stride) {
            break;  // the next index is past the end: stop before it can wrap around
        }
    }
}

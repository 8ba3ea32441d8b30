// The output cotangent of the inner loss: d_out[b][j] = ((lambda_b + w) gs + (1 - lambda_b) ge) / B
// with w the penalty weight from `penalty` and lambda_b the detached lambda of the sample.

struct Params { batch: u32, agents: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<storage, read> head_out: array<f32>;
@group(0) @binding(1) var<storage, read> lambdas: array<f32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> counter: array<u32>;
@group(0) @binding(4) var<storage, read> scalars: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_out: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let width = p.agents + 1u;
    let batch = f32(p.batch);
    let total = p.batch * width;  // the host refuses a product past u32::MAX
    let stride = groups.x * 64u;
    for (var i = gid.x; i < total; i = i + stride) {
        let b = i / width;
        let j = i % width;
        let lambda = lambdas[indices[counter[0] * p.batch + b]];
        let o = b * (2u * p.agents + 4u);
        let gs = head_out[o + 2u + j];
        let ge = head_out[o + 2u + width + j];
        d_out[i] = (lambda + scalars[0]) / batch * gs + (1.0 - lambda) / batch * ge;
        if (total - i <= stride) {
            break;  // the next index is past the end: stop before it can wrap around
        }
    }
}

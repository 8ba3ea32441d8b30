// One workgroup: the batch mean of l_safe and the penalty's weight on each sample,
// 2 rho max(0, mean - delta) (sbd_train::bilevel::Problem::inner_gradient), into scalars[0].

struct Params { batch: u32, stride: u32, _pad0: u32, _pad1: u32, delta: f32, penalty: f32, _pad2: f32, _pad3: f32 }

@group(0) @binding(0) var<storage, read> head_out: array<f32>;
@group(0) @binding(1) var<storage, read_write> scalars: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
    var sum = 0.0;
    for (var b = lid.x; b < p.batch; b = b + 256u) {
        sum = sum + head_out[b * p.stride];
        if (p.batch - b <= 256u) {
            break;  // the next index is past the end: stop before it can wrap around
        }
    }
    partial[lid.x] = sum;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width = width / 2u) {
        if (lid.x < width) {
            partial[lid.x] = partial[lid.x] + partial[lid.x + width];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        let excess = max(partial[0] / f32(p.batch) - p.delta, 0.0);
        scalars[0] = 2.0 * p.penalty * excess;
    }
}

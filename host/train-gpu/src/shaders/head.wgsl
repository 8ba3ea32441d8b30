// Per sample: the SBD losses on pi's output row and their gradients with respect to it
// (sbd_train::objective::Objective::sample, line for line).
//
// samples[s] holds, for n sub-agents, unsafe_above[n], cost_at_zero[n], cost_at_one[n],
// alpha_max (stride 3n + 1). head_out[b] receives l_safe, l_eff, then d l_safe / d row (n + 1),
// then d l_eff / d row (n + 1) (stride 2n + 4).

struct Params { batch: u32, agents: u32, project: u32, _pad0: u32, temperature: f32, margin: f32, _pad2: f32, _pad3: f32 }

@group(0) @binding(0) var<storage, read> out: array<f32>;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read> counter: array<u32>;
@group(0) @binding(3) var<storage, read> samples: array<f32>;
@group(0) @binding(4) var<storage, read_write> head_out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.batch) {
        return;
    }
    let n = p.agents;
    let width = n + 1u;
    let row = b * width;
    let sample = indices[counter[0] * p.batch + b];
    let base = sample * (3u * n + 1u);
    let o = b * (2u * n + 4u);

    var max_logit = out[row];
    for (var a = 1u; a < n; a = a + 1u) {
        max_logit = max(max_logit, out[row + a]);
    }
    var total = 0.0;
    for (var a = 0u; a < n; a = a + 1u) {
        total = total + exp(out[row + a] - max_logit);
    }
    let raw = sigmoid(out[row + n]);
    let cap = samples[base + 3u * n];
    var alpha = raw;
    var d_alpha = raw * (1.0 - raw);
    if (p.project != 0u && raw > cap) {
        alpha = cap;
        d_alpha = 0.0;
    }

    var safety = 0.0;
    var efficiency = 0.0;
    var d_safety_alpha = 0.0;
    var d_eff_alpha = 0.0;
    for (var a = 0u; a < n; a = a + 1u) {
        let prob = exp(out[row + a] - max_logit) / total;
        let s = sigmoid((alpha - samples[base + a] - p.margin) / p.temperature);
        let c0 = samples[base + n + a];
        let c1 = samples[base + 2u * n + a];
        safety = safety + prob * s;
        efficiency = efficiency + prob * ((1.0 - alpha) * c0 + alpha * c1);
        d_safety_alpha = d_safety_alpha + prob * s * (1.0 - s) / p.temperature;
        d_eff_alpha = d_eff_alpha + prob * (c1 - c0);
    }
    head_out[o] = safety;
    head_out[o + 1u] = efficiency;
    for (var a = 0u; a < n; a = a + 1u) {
        let prob = exp(out[row + a] - max_logit) / total;
        let s = sigmoid((alpha - samples[base + a] - p.margin) / p.temperature);
        let cost = (1.0 - alpha) * samples[base + n + a] + alpha * samples[base + 2u * n + a];
        head_out[o + 2u + a] = prob * (s - safety);
        head_out[o + 2u + width + a] = prob * (cost - efficiency);
    }
    head_out[o + 2u + n] = d_safety_alpha * d_alpha;
    head_out[o + 2u + width + n] = d_eff_alpha * d_alpha;
}

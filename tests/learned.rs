//! Trained networks inside the policy component: the component's forward pass matches the
//! trainer's to 1e-5, and an allowed grant carries the learned lambda, sub-agent and
//! projected alpha.
#![allow(clippy::expect_used, clippy::panic, reason = "test set-up fails loudly")]

use sbd_e2e::allowed_request;
use sbd_policy::config::AlphaCap;
use sbd_policy::learned::Provenance;
use sbd_policy::{Policy, PolicyConfig, Request, Verdict};
use sbd_runtime::{DEFAULT_COMPONENT, PolicyRuntime, RuntimeLimits};
use sbd_train::CpuBackend;
use sbd_train::domains::finance::{self, FinanceOptions};
use sbd_train::engine::mlp;
use sbd_train::engine::trainer::{TrainConfig, Trainer};

const TOLERANCE: f64 = 1e-5;

/// A tiny deterministic generator, so the states do not depend on the trainer's RNG.
fn states(count: usize, dim: usize, shift: &[f32], scale: &[f32]) -> Vec<Vec<f64>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64 * 5.0 - 2.5
    };
    (0..count)
        .map(|_| (0..dim).map(|j| f64::from(shift[j]) + f64::from(scale[j]) * next()).collect())
        .collect()
}

#[test]
fn the_component_runs_the_trained_networks_as_the_trainer_does() {
    let data = finance::load_embedded(&FinanceOptions::default()).expect("embedded finance data");
    let config = TrainConfig { outer_steps: 2, inner_steps: 3, batch: 64, ..TrainConfig::default() };
    let mut trainer = Trainer::new(&data.dataset, config, CpuBackend).expect("trainer");
    trainer.step().expect("outer step");
    trainer.step().expect("outer step");
    let model = trainer.export(Provenance::default());
    let (phi_shape, pi_shape) = trainer.shapes();
    let (phi, pi) = trainer.parameters();

    let mut policy_config = PolicyConfig::named("learned", "1");
    policy_config.sbd.review_threshold = 0.0;
    policy_config.sbd.alpha_caps = vec![AlphaCap { feature: 6, above: 0.25, alpha_max: 0.8 }];
    policy_config.sbd.model = Some(model.clone());
    let bytes = policy_config.to_bytes().expect("encode");
    let runtime = PolicyRuntime::new(RuntimeLimits::default()).expect("runtime");
    let component = runtime.load_component(DEFAULT_COMPONENT).expect("component");
    let loaded = runtime.instantiate(&component, &bytes).expect("the component accepts the model");
    let native = Policy::from_bytes(&bytes).expect("native policy");

    let dim = data.dataset.state_dim;
    let raw = states(200, dim, &model.state_shift, &model.state_scale);
    // the trainer's forward pass: GEMM kernels on the standardised batch
    let standardised: Vec<f32> = raw.iter().flat_map(|s| model.standardise(s)).collect();
    let lambdas = mlp::forward(phi_shape, phi, &standardised, raw.len()).output;
    let outputs = mlp::forward(pi_shape, pi, &standardised, raw.len()).output;
    let agents = data.dataset.sub_agents.len();

    let mut compared = 0;
    for (i, state) in raw.iter().enumerate() {
        let request = Request { state: state.clone(), ..allowed_request() };
        let verdict = loaded.evaluate(&request);
        assert_eq!(verdict, native.evaluate(&request), "component and native rules differ on state {i}");
        let Verdict::Allow(grant) = verdict else { panic!("state {i}: expected an allow, got {verdict:?}") };

        let lambda = 1.0 / (1.0 + (-f64::from(lambdas[i])).exp());
        let row = &outputs[i * (agents + 1)..(i + 1) * (agents + 1)];
        let alpha = 1.0 / (1.0 + (-f64::from(row[agents])).exp());
        let cap = if state[6] > 0.25 { 0.8 } else { 1.0 };
        assert!(
            (grant.lambda - lambda).abs() < TOLERANCE,
            "state {i}: lambda {} vs trainer {lambda}",
            grant.lambda
        );
        assert!(
            (grant.alpha - alpha.min(cap)).abs() < TOLERANCE,
            "state {i}: alpha {} vs trainer {alpha} capped at {cap}",
            grant.alpha
        );
        let mut order: Vec<usize> = (0..agents).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        if row[order[0]] - row[order[1]] > 1e-4 {
            assert_eq!(grant.sub_agent, data.dataset.sub_agents[order[0]], "state {i}: sub-agent");
            compared += 1;
        }
    }
    assert!(compared > 150, "too many near-ties to compare sub-agents ({compared} of 200)");
}

#[test]
fn a_state_of_the_wrong_length_is_denied_by_a_learned_policy() {
    let data = finance::load_embedded(&FinanceOptions::default()).expect("embedded finance data");
    let config = TrainConfig { inner_steps: 1, batch: 16, width: 16, ..TrainConfig::default() };
    let trainer = Trainer::new(&data.dataset, config, CpuBackend).expect("trainer");
    let mut policy_config = PolicyConfig::named("learned", "1");
    policy_config.sbd.model = Some(trainer.export(Provenance::default()));
    let bytes = policy_config.to_bytes().expect("encode");
    let runtime = PolicyRuntime::new(RuntimeLimits::default()).expect("runtime");
    let component = runtime.load_component(DEFAULT_COMPONENT).expect("component");
    let loaded = runtime.instantiate(&component, &bytes).expect("instantiate");
    let request = Request { state: vec![0.1; 7], ..allowed_request() };
    match loaded.evaluate(&request) {
        Verdict::Deny(denial) => assert_eq!(denial.reason.name(), "state-invalid"),
        other => panic!("expected a state-invalid denial, got {other:?}"),
    }
}

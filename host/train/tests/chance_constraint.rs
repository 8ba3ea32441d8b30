//! SBD's chance constraint `P(unsafe) <= delta` (eq. 4) binds: on a problem whose
//! lambda-weighted optimum is unsafe, the stochastic policy's Safety Rate and the Task
//! Efficiency move with delta, and the safety rate reaches about `1 - delta` (issue 16: in the
//! committed evaluation they were identical for every delta).
#![allow(clippy::expect_used, clippy::panic, reason = "test set-up fails loudly")]

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use sbd_train::CpuBackend;
use sbd_train::domains::data::{self, Dataset, Split};
use sbd_train::engine::objective::Objective;
use sbd_train::engine::trainer::{LambdaMode, OuterOptimizer, TrainConfig, Trainer};

const DIM: usize = 4;

/// Two sub-agents. `steady` is never unsafe and costs 0.5 whatever alpha; `tempting` is unsafe
/// whatever alpha and, delegated fully, costs `0.5 (1 - g(s))` with a gain `g(s) in [0, 1]`
/// read off the first state feature. With a small lambda the weighted optimum delegates to
/// `tempting` wherever `g(s)` is large, so only the constraint can hold P(unsafe) at delta,
/// and it does so by giving up the states of smallest gain first.
fn split(rng: &mut ChaCha8Rng, len: usize) -> Split {
    let mut s = Split { len, ..Split::default() };
    for _ in 0..len {
        let state: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let gain = (state[0] + 1.0) / 2.0;
        s.states.extend(&state);
        s.unsafe_above.extend([2.0, -1.0]);
        s.cost_at_zero.extend([0.5, 0.5]);
        s.cost_at_one.extend([0.5, 0.5 * (1.0 - gain)]);
        s.alpha_max.push(1.0);
        s.risk.push(gain);
        s.labels.push(String::new());
    }
    s
}

fn dataset() -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    Dataset {
        domain: "synthetic".into(),
        state_dim: DIM,
        feature_names: (0..DIM).map(|i| format!("x{i}")).collect(),
        sub_agents: vec!["steady".into(), "tempting".into()],
        state_shift: vec![0.0; DIM],
        state_scale: vec![1.0; DIM],
        alpha_cap: None,
        train: split(&mut rng, 1024),
        validation: split(&mut rng, 256),
        test: split(&mut rng, 1024),
    }
}

/// (stochastic SR, deployed SR, TE, largest multiplier during training) on the test split.
fn train(data: &Dataset, delta: f64, chance_dual_step: f64) -> (f64, f64, f64, f64) {
    let config = TrainConfig {
        seed: 3,
        outer_steps: 150,
        inner_steps: 10,
        batch: 128,
        width: 16,
        eta_in: 0.1,
        lambda: LambdaMode::Fixed(0.1),
        objective: Objective { delta, penalty: 0.0, ..Objective::default() },
        chance_dual_step,
        log_validation: false,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(data, config, CpuBackend).expect("trainer");
    let mut largest = 0.0f64;
    for _ in 0..150 {
        largest = largest.max(trainer.step().expect("step").chance_multiplier);
    }
    let test = trainer.evaluate(&data.test);
    let te = data::task_efficiency(&data.test, &test.decisions);
    (test.expected_safety_rate, test.safety_rate, te, largest)
}

#[test]
fn safety_rate_and_efficiency_move_with_delta() {
    let data = dataset();
    let free = train(&data, 0.05, 0.0);
    let tight = train(&data, 0.05, 2.0);
    let loose = train(&data, 0.40, 2.0);
    eprintln!("no constraint {free:?}\ndelta 0.05 {tight:?}\ndelta 0.40 {loose:?}");
    // without the constraint the lambda-weighted optimum is mostly unsafe
    assert!(free.0 < 0.5, "the problem must tempt: SR {} without the constraint", free.0);
    // with it, SR reaches about 1 - delta for each delta, and TE pays for it
    assert!(tight.0 > 0.95 - 0.04, "delta 0.05: stochastic SR {}", tight.0);
    assert!((loose.0 - 0.60).abs() < 0.08, "delta 0.40: stochastic SR {}", loose.0);
    assert!(tight.1 > loose.1 + 0.2, "deployed SR {} vs {}", tight.1, loose.1);
    assert!(tight.2 + 0.02 < loose.2, "TE {} vs {}", tight.2, loose.2);
    assert!(tight.3 > 0.0 && loose.3 > 0.0, "the multiplier was active: {} {}", tight.3, loose.3);
    assert_eq!(free.3, 0.0, "no multiplier without the constraint");
}

/// As [`split`], with two regimes: the second state feature above 0 is the high-risk region
/// (alpha_max 0.6 there marks it, [`Split::context`]), and only there is `tempting` unsafe.
fn contextual_split(rng: &mut ChaCha8Rng, len: usize) -> Split {
    let mut s = split(rng, len);
    for i in 0..len {
        let risky = s.states[i * DIM + 1] > 0.0;
        s.alpha_max[i] = if risky { 0.6 } else { 1.0 };
        s.unsafe_above[i * 2 + 1] = if risky { -1.0 } else { 2.0 };
    }
    s
}

#[test]
fn sbd_al_binds_each_context_and_raises_its_multiplier_only_where_it_binds() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let data = Dataset {
        train: contextual_split(&mut rng, 1024),
        validation: contextual_split(&mut rng, 512),
        test: contextual_split(&mut rng, 1024),
        ..dataset()
    };
    let run = |delta: f64| {
        let config = TrainConfig {
            seed: 5,
            outer_steps: 200,
            inner_steps: 10,
            batch: 128,
            width: 16,
            eta_in: 0.1,
            eta_out: 0.03,
            outer_optimizer: OuterOptimizer::Adam,
            lambda: LambdaMode::ContextDual { confidence: 0.95 },
            objective: Objective { delta, penalty: 0.0, project: false, ..Objective::default() },
            chance_dual_step: 0.0,
            log_validation: false,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(&data, config, CpuBackend).expect("trainer");
        for _ in 0..200 {
            trainer.step().expect("step");
        }
        let stats = trainer.context_stats(&data.test);
        let te = data::task_efficiency(&data.test, &trainer.evaluate(&data.test).decisions);
        (stats, te)
    };
    let (tight, te_tight) = run(0.05);
    let (loose, te_loose) = run(0.30);
    eprintln!("delta 0.05: {tight:?} TE {te_tight}\ndelta 0.30: {loose:?} TE {te_loose}");
    let (calm, risky) = (&tight[0], &tight[1]);
    assert_eq!((calm.context, risky.context), (0, 1));
    // the high-risk context is held near its delta; the calm one never binds
    assert!(risky.unsafe_rate <= 0.05 + 0.04, "risky context P(unsafe) {}", risky.unsafe_rate);
    assert!(calm.unsafe_rate < 0.01, "calm context P(unsafe) {}", calm.unsafe_rate);
    assert!(risky.mean_multiplier > 1.0, "risky mu {}", risky.mean_multiplier);
    assert!(calm.mean_multiplier < 0.1 && loose[0].mean_multiplier < 0.1, "calm mu {calm:?} {:?}", loose[0]);
    // a looser delta lets the risky context spend more risk, and TE rises
    assert!(
        loose[1].unsafe_rate > risky.unsafe_rate + 0.1,
        "{} vs {}",
        loose[1].unsafe_rate,
        risky.unsafe_rate
    );
    assert!(loose[1].unsafe_rate <= 0.30 + 0.06, "{}", loose[1].unsafe_rate);
    assert!(te_loose > te_tight, "TE {te_loose} vs {te_tight}");
}

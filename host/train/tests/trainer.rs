//! Algorithm 1 end to end on the real finance data, at small sizes.
#![allow(clippy::expect_used, clippy::panic, reason = "test set-up fails loudly")]

use sbd_train::domains::finance::{self, FinanceOptions};
use sbd_train::engine::trainer::{LambdaMode, TrainConfig, Trainer};
use sbd_train::{CpuBackend, TrainError};

fn small(seed: u64) -> TrainConfig {
    TrainConfig { seed, inner_steps: 4, batch: 32, width: 24, ..TrainConfig::default() }
}

#[test]
fn a_run_is_deterministic_for_its_seed_and_differs_across_seeds() {
    let data = finance::load_embedded(&FinanceOptions::default()).expect("data");
    let run = |seed| {
        let mut trainer = Trainer::new(&data.dataset, small(seed), CpuBackend).expect("trainer");
        let records: Vec<_> = (0..3).map(|_| trainer.step().expect("step")).collect();
        let (phi, pi) = trainer.parameters();
        (phi.to_vec(), pi.to_vec(), records.iter().map(|r| r.l_meta).collect::<Vec<_>>())
    };
    let (a, b, c) = (run(5), run(5), run(6));
    assert_eq!(a, b, "same seed, different result");
    assert_ne!(a.0, c.0, "a different seed gave the same phi");
    assert_ne!(a.1, c.1, "a different seed gave the same pi");
}

#[test]
fn the_outer_loop_moves_phi_and_a_fixed_lambda_does_not() {
    let data = finance::load_embedded(&FinanceOptions::default()).expect("data");
    let mut learned = Trainer::new(&data.dataset, small(1), CpuBackend).expect("trainer");
    let phi0 = learned.parameters().0.to_vec();
    let record = learned.step().expect("step");
    assert!(record.hypergradient_norm > 0.0);
    assert_ne!(learned.parameters().0, phi0.as_slice());

    let config = TrainConfig { lambda: LambdaMode::Fixed(0.3), ..small(1) };
    let mut fixed = Trainer::new(&data.dataset, config, CpuBackend).expect("trainer");
    let phi0 = fixed.parameters().0.to_vec();
    let pi0 = fixed.parameters().1.to_vec();
    let record = fixed.step().expect("step");
    assert_eq!(record.hypergradient_norm, 0.0);
    assert!((record.mean_lambda - 0.3).abs() < 1e-6);
    assert_eq!(fixed.parameters().0, phi0.as_slice());
    assert_ne!(fixed.parameters().1, pi0.as_slice(), "the inner loop must still train pi");
}

#[test]
fn inner_steps_lower_the_inner_loss_on_average() {
    let data = finance::load_embedded(&FinanceOptions::default()).expect("data");
    let config = TrainConfig { eta_in: 0.05, ..small(2) };
    let mut trainer = Trainer::new(&data.dataset, config, CpuBackend).expect("trainer");
    let first = trainer.step().expect("step");
    let mut last = first.clone();
    for _ in 0..20 {
        last = trainer.step().expect("step");
    }
    assert!(
        last.inner_loss_last < first.inner_loss_first,
        "{} !< {}",
        last.inner_loss_last,
        first.inner_loss_first
    );
}

#[test]
fn bad_configurations_are_refused_before_any_work() {
    let data = finance::load_embedded(&FinanceOptions::default()).expect("data");
    for (config, needle) in [
        (TrainConfig { batch: 0, ..small(0) }, "positive"),
        (TrainConfig { eta_in: f64::NAN, ..small(0) }, "learning rates"),
        (TrainConfig { lambda: LambdaMode::Fixed(1.5), ..small(0) }, "fixed lambda"),
        (TrainConfig { pi_layers: 1, ..small(0) }, "two layers"),
    ] {
        match Trainer::new(&data.dataset, config, CpuBackend) {
            Err(TrainError::Config(message)) => assert!(message.contains(needle), "{message}"),
            Err(other) => panic!("wrong error {other}"),
            Ok(_) => panic!("accepted a bad configuration"),
        }
    }
}

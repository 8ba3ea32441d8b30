//! One SBD-AL training run, traced: every 25 outer steps the mean lambda, the duals `y_k` and
//! each validation context's samples, unsafe rate and Clopper-Pearson bound; at the end the
//! test Task Efficiency, Safety Rate and per-context measurements. It is how the cause of
//! SBD-AL's saturated lambda was looked for (docs/research.md).
//!
//! `cargo run --release -p sbd-train --example sbd_al_trace -- [--domain finance|medical|mimic]
//!  [--delta 0.05] [--outer-steps 300] [--seed 0] [--eta-out X] [--eta-in X] [--inner-steps N]
//!  [--optimizer adam|sgd] [--kp 1] [--ki 0.1] [--logit-decay 0.1]`
//!
//! `--kp` and `--ki` are the dual controller's gains as multiples of rho
//! ([`AugmentedConfig::proportional_share`], [`AugmentedConfig::integral_share`]; `--kp 0 --ki 1`
//! is plain dual ascent), `--logit-decay` the prior's kappa; every default is what the
//! experiment gives SBD-AL ([`AugmentedConfig::sbd_al`], [`Method::train_config`]).

use sbd_train::engine::augmented::AugmentedConfig;
use sbd_train::eval::experiment::{self, DomainChoice, ExperimentConfig, Hyper, Method};
use sbd_train::{CpuBackend, LambdaMode, OuterOptimizer, TrainConfig, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let number = |flag: &str, default: f64| -> Result<f64, String> {
        value(flag).map_or(Ok(default), |v| v.parse().map_err(|e| format!("{flag} `{v}`: {e}")))
    };
    let domain_name = value("--domain").unwrap_or_else(|| "medical".into());
    let choice = match domain_name.as_str() {
        "finance" => DomainChoice::Finance,
        "medical" | "mimic" => DomainChoice::Medical,
        other => return Err(format!("--domain: unknown `{other}` (finance, medical, mimic)").into()),
    };
    let delta = number("--delta", 0.05)?;
    let steps = number("--outer-steps", 300.0)? as usize;
    let seed = number("--seed", 0.0)? as u64;
    let defaults = AugmentedConfig::sbd_al();
    let (kp, ki) = (number("--kp", defaults.proportional_share)?, number("--ki", defaults.integral_share)?);

    let config = ExperimentConfig::default();
    let base = TrainConfig { seed, outer_steps: steps, ..config.train.clone() };
    let hyper = Hyper::defaults(&base, config.cpo_dual_step);
    let mut train = Method::SbdAl.train_config(&base, delta, &hyper).ok_or("SBD-AL trains")?;
    if let LambdaMode::ContextAugmented(augmented) = &mut train.lambda {
        augmented.proportional_share = kp;
        augmented.integral_share = ki;
        augmented.logit_decay = number("--logit-decay", defaults.logit_decay)?;
    }
    train.eta_out = number("--eta-out", train.eta_out)?;
    train.eta_in = number("--eta-in", train.eta_in)?;
    train.inner_steps = number("--inner-steps", train.inner_steps as f64)? as usize;
    match value("--optimizer").as_deref() {
        None => {}
        Some("adam") => train.outer_optimizer = OuterOptimizer::Adam,
        Some("sgd") => train.outer_optimizer = OuterOptimizer::Sgd,
        Some(other) => return Err(format!("--optimizer: unknown `{other}` (adam, sgd)").into()),
    }
    let wanted = if domain_name == "mimic" { "medical-mimic4-demo" } else { domain_name.as_str() };
    let domains = experiment::load_domains(choice, false)?;
    let domain = domains.iter().find(|d| d.name() == wanted).ok_or("domain not loaded")?;
    let data = domain.dataset();
    println!(
        "{wanted}: SBD-AL, delta {delta}, seed {seed}, T_out {steps}, eta_out {} ({:?}), eta_in {}, T_in {}, K_P {kp} rho, K_I {ki} rho, kappa {}",
        train.eta_out,
        train.outer_optimizer,
        train.eta_in,
        train.inner_steps,
        match train.lambda {
            LambdaMode::ContextAugmented(a) => a.logit_decay,
            _ => f64::NAN,
        }
    );
    let mut trainer = Trainer::new(data, train, CpuBackend)?;
    for step in 1..=steps {
        let record = trainer.step()?;
        if step % 25 == 0 || step == 1 {
            let duals: Vec<String> = trainer.augmented_duals().iter().map(|y| format!("{y:.2}")).collect();
            let contexts: Vec<String> = trainer
                .context_bounds()
                .iter()
                .map(|b| format!("n {} rate {:.3} bound {:.3}", b.samples, b.unsafe_rate, b.upper_bound))
                .collect();
            println!("step {step:3}: mean lambda {:.3}, duals {duals:?}, validation {contexts:?}", record.mean_lambda);
        }
    }
    trainer.restore_selected();
    let test = trainer.evaluate(&data.test);
    println!(
        "test: TE {:.4}, SR {:.4}, stochastic SR {:.4}",
        domain.task_efficiency(&test.decisions),
        test.safety_rate,
        test.expected_safety_rate
    );
    for c in trainer.context_stats(&data.test) {
        println!(
            "  context {}: n {}, P(unsafe) {:.3}, bound {:.3}, mean mu {:.3e}",
            c.context, c.samples, c.unsafe_rate, c.upper_bound, c.mean_multiplier
        );
    }
    Ok(())
}

//! The pre-registered evaluation without the CLI's dependencies (wasmtime, the gateway): the
//! same `experiment::run`, `analyse` and report as `sbd experiment`, for a machine where only
//! this crate is built.
//!
//! `cargo run --release -p sbd-train --example experiment -- [--domain all|finance|medical|education]
//!  [--quick] [--seeds N] [--outer-steps T] [--width W] [--jobs J] --out DIR`

use std::path::PathBuf;

use sbd_train::eval::experiment::{self, DomainChoice, ExperimentConfig};
use sbd_train::eval::analysis;
use sbd_train::eval::experiment_report::{self, ReportMeta};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let quick = args.iter().any(|a| a == "--quick");
    let choice = match value("--domain").as_deref().unwrap_or("all") {
        "all" => DomainChoice::All,
        "finance" => DomainChoice::Finance,
        "medical" => DomainChoice::Medical,
        "education" => DomainChoice::Education,
        other => return Err(format!("unknown domain `{other}`").into()),
    };
    let out = PathBuf::from(value("--out").ok_or("--out DIR is required")?);
    let mut config = if quick { ExperimentConfig::quick() } else { ExperimentConfig::default() };
    config.jobs = match value("--jobs") {
        Some(j) => j.parse()?,
        None => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    };
    if let Some(n) = value("--seeds") {
        config.seeds = (0..n.parse()?).collect();
    }
    if let Some(t) = value("--outer-steps") {
        config.train.outer_steps = t.parse()?;
    }
    if let Some(w) = value("--width") {
        config.train.width = w.parse()?;
        config.theory.train.width = config.train.width;
    }
    let domains = experiment::load_domains(choice, quick)?;
    let started = experiment::utc_now();
    let results = experiment::run(&domains, &config, &|done, total| {
        if done % 20 == 0 || done == total {
            eprintln!("{done}/{total}");
        }
    })?;
    let analysis = analysis::analyse(&results, &domains, &config);
    let meta = ReportMeta {
        command: args.join(" "),
        started,
        machine: format!(
            "{} logical CPUs (shared with other builds), CPU backend",
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        ),
        mode: if quick { "quick".into() } else { "full".into() },
    };
    let files = experiment_report::write(&out, &domains, &config, &results, &analysis, &meta)?;
    println!("{} runs in {:.1} min", results.runs.len(), results.seconds / 60.0);
    for v in &analysis.verdicts {
        println!("  {:<22} {:<20} {}", v.id, v.domain, if v.holds { "holds" } else { "FAILS" });
    }
    println!("wrote {}/{{{}}}", out.display(), files.join(", "));
    Ok(())
}


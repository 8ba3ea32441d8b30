//! `sbd experiment`: the paper's pre-registered evaluation on every domain, as one report.

use std::path::Path;

use anyhow::Context;
use sbd_train::eval::experiment::{self, DomainChoice, ExperimentConfig};
use sbd_train::eval::analysis;
use sbd_train::eval::experiment_report::{self, ReportMeta};

/// What `sbd experiment` prints when it is done.
pub struct Outcome {
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Runs executed.
    pub runs: usize,
    /// (id, domain, holds) per verdict.
    pub verdicts: Vec<(String, String, bool)>,
    /// Files written.
    pub files: Vec<String>,
}

/// Loads the domains, runs every method, delta and seed, and writes the report into `out`.
pub fn run_experiment(
    choice: DomainChoice,
    config: &ExperimentConfig,
    quick: bool,
    out: &Path,
    command: String,
    quiet: bool,
) -> anyhow::Result<Outcome> {
    config.validate()?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create output directory `{}`", out.display()))?;
    let domains = experiment::load_domains(choice, quick)?;
    let started = experiment::utc_now();
    if !quiet {
        for d in &domains {
            eprintln!(
                "{}: {} train / {} validation / {} test samples, {} sub-agents ({})",
                d.name,
                d.dataset.train.len,
                d.dataset.validation.len,
                d.dataset.test.len,
                d.dataset.sub_agents.len(),
                d.provenance
            );
        }
    }
    let bar = crate::train::progress_bar(0, quiet, "runs");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let results = experiment::run(&domains, config, &progress)?;
    bar.finish_and_clear();
    let analysis = analysis::analyse(&results, &domains, config);
    let meta = ReportMeta {
        command,
        started,
        machine: format!(
            "{} logical CPUs, CPU backend",
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        ),
        mode: if quick { "quick".into() } else { "full".into() },
    };
    let files = experiment_report::write(out, &domains, config, &results, &analysis, &meta)?;
    Ok(Outcome {
        seconds: results.seconds,
        runs: results.runs.len(),
        verdicts: analysis.verdicts.iter().map(|v| (v.id.clone(), v.domain.clone(), v.holds)).collect(),
        files,
    })
}

//! `sbd experiment`: the paper's pre-registered evaluation on every domain, as one report.

use std::path::Path;

use anyhow::Context;
use sbd_train::eval::analysis;
use sbd_train::eval::checkpoint::Checkpoint;
use sbd_train::eval::domain::Domain;
use sbd_train::eval::rolling;
use sbd_train::eval::experiment::{self, DomainChoice, ExperimentConfig};
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

/// The checkpoint's name in the output directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.postcard";

/// Loads the domains, runs every method, delta and seed, and writes the report into `out`.
///
/// Every finished run is recorded in `out/checkpoint.postcard` as it completes; a run of the
/// same experiment by the same build resumes from it (unless `fresh`), and the file is removed
/// once the report is written.
pub fn run_experiment(
    choice: DomainChoice,
    config: &ExperimentConfig,
    quick: bool,
    out: &Path,
    command: String,
    fresh: bool,
    quiet: bool,
) -> anyhow::Result<Outcome> {
    config.validate()?;
    let domains = experiment::load_domains(choice, quick)?;
    let started = experiment::utc_now();
    let results = execute(&domains, config, out, fresh, quiet)?;
    let analysis = analysis::analyse(&results, &domains, config);
    let meta = report_meta(command, started, quick);
    let files = experiment_report::write(out, &domains, config, &results, &analysis, &meta)?;
    remove_checkpoint(out)?;
    Ok(Outcome {
        seconds: results.seconds,
        runs: results.runs.len(),
        verdicts: analysis.verdicts.iter().map(|v| (v.id.clone(), v.domain.clone(), v.holds)).collect(),
        files,
    })
}

/// The rolling-origin evaluation of the finance domain: one origin per test year in
/// `test_years` (each with its own splits, random search and runs), compared across origins;
/// writes report.md, results.json and sharpe-by-origin.png into `out`. Checkpointed as
/// [`run_experiment`].
pub fn run_rolling(
    test_years: &[u16],
    config: &ExperimentConfig,
    quick: bool,
    out: &Path,
    command: String,
    fresh: bool,
    quiet: bool,
) -> anyhow::Result<RollingOutcome> {
    config.validate()?;
    let origins = rolling::load_origins(test_years)?;
    let started = experiment::utc_now();
    let results = execute(&origins.domains, config, out, fresh, quiet)?;
    let analysis = rolling::analyse(&results, &origins.rows, config);
    let meta = report_meta(command, started, quick);
    let files = rolling::write(out, config, &results, &analysis, &meta)?;
    remove_checkpoint(out)?;
    Ok(RollingOutcome { seconds: results.seconds, runs: results.runs.len(), analysis, files })
}

/// What `sbd experiment --domain finance-rolling` prints when it is done.
pub struct RollingOutcome {
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Runs executed.
    pub runs: usize,
    /// The comparisons and per-method figures.
    pub analysis: rolling::RollingAnalysis,
    /// Files written.
    pub files: Vec<String>,
}

/// Runs every domain's random search and runs, recording each in `out`'s checkpoint as it
/// finishes and resuming from one the same experiment left (unless `fresh`).
fn execute(
    domains: &[Box<dyn Domain>],
    config: &ExperimentConfig,
    out: &Path,
    fresh: bool,
    quiet: bool,
) -> anyhow::Result<experiment::Results> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create output directory `{}`", out.display()))?;
    if !quiet {
        for d in domains {
            eprintln!(
                "{}: {} train / {} validation / {} test samples, {} sub-agents ({})",
                d.name(),
                d.dataset().train.len,
                d.dataset().validation.len,
                d.dataset().test.len,
                d.dataset().sub_agents.len(),
                d.provenance()
            );
        }
    }
    let bar = crate::train::progress_bar(0, quiet, "runs");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let checkpoint_path = out.join(CHECKPOINT_FILE);
    if fresh && checkpoint_path.exists() {
        std::fs::remove_file(&checkpoint_path)
            .with_context(|| format!("cannot delete the checkpoint `{}`", checkpoint_path.display()))?;
    }
    let identity = Checkpoint::identity(config, domains, &build_identity()?);
    let checkpoint = Checkpoint::open(&checkpoint_path, &identity)
        .map_err(|e| anyhow::anyhow!("{e} (or pass --fresh)"))?;
    if checkpoint.resumed() > 0 && !quiet {
        eprintln!(
            "resuming: {} finished candidates, runs and checks read from `{}`",
            checkpoint.resumed(),
            checkpoint_path.display()
        );
    }
    let results = experiment::run_checkpointed(domains, config, Some(&checkpoint), &progress)?;
    bar.finish_and_clear();
    drop(checkpoint);
    Ok(results)
}

/// Deletes the checkpoint once the report holds every result.
fn remove_checkpoint(out: &Path) -> anyhow::Result<()> {
    let path = out.join(CHECKPOINT_FILE);
    std::fs::remove_file(&path).with_context(|| format!("cannot delete the checkpoint `{}`", path.display()))
}

/// The report's header: the command, when it started, the machine and the sizes.
fn report_meta(command: String, started: String, quick: bool) -> ReportMeta {
    ReportMeta {
        command,
        started,
        machine: format!(
            "{} logical CPUs, CPU backend",
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        ),
        mode: if quick { "quick".into() } else { "full".into() },
    }
}

/// The running build, for the checkpoint's identity: the SHA-256 of this executable, so a
/// checkpoint is never resumed by different code.
fn build_identity() -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let exe = std::env::current_exe().context("cannot locate the running executable")?;
    let bytes = std::fs::read(&exe).with_context(|| format!("cannot read `{}`", exe.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

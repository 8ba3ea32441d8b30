//! `sbd experiment`: the paper's pre-registered evaluation on every domain, as one report.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sbd_train::experiment::{self, DomainChoice, ExperimentConfig};
use sbd_train::experiment_report::{self, ReportMeta};

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
    let started = utc_now();
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
    let analysis = experiment::analyse(&results, &domains, config);
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

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_utc() {
        let now = super::utc_now();
        assert_eq!(now.len(), 20);
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }
}

//! `sbd train` and `sbd theory`: SBD training and the section 6.6 validations on a domain, with
//! a progress bar, and every output written to one directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sbd_policy::learned::Provenance;
use sbd_train::domains::finance::{self, Finance, FinanceOptions};
use sbd_train::eval::report::{self, Panel, Series, TrainingLog};
use sbd_train::eval::summary::{FinanceSummary, finance_summary};
use sbd_train::eval::theory::{self, TheoryConfig, TheoryReport};
use sbd_train::engine::trainer::{OuterOptimizer, StepRecord, TrainConfig, Trainer};
use sbd_train::{Backend, CpuBackend, TrainError};
use sbd_train_gpu::{AdapterChoice, GpuBackend};
use serde::Serialize;

/// The policy configuration written next to trained weights: the finance constraint set of
/// SBD 6.3 with the learned model in `model.postcard` beside it.
pub const FINANCE_POLICY_TEMPLATE: &str = include_str!("../../../policies/finance/policy.toml");

/// Everything `sbd train` records about a run besides the log.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// Domain trained on.
    pub domain: String,
    /// What ran the arithmetic.
    pub backend: String,
    /// Hyperparameters.
    pub config: ConfigRecord,
    /// Outer steps completed.
    pub outer_steps: usize,
    /// Wall-clock seconds of training (excluding data loading and the final evaluation).
    pub training_seconds: f64,
    /// Mean seconds per outer step.
    pub seconds_per_outer_step: f64,
    /// Test-split results.
    pub test: FinanceSummary,
}

/// The hyperparameters as written to `summary.json`.
#[derive(Debug, Serialize)]
pub struct ConfigRecord {
    seed: u64,
    outer_steps: usize,
    inner_steps: usize,
    batch: usize,
    width: usize,
    phi_layers: usize,
    pi_layers: usize,
    eta_out: f64,
    eta_in: f64,
    delta: f64,
    penalty: f64,
    surrogate_temperature: f64,
    outer_optimizer: OuterOptimizer,
}

impl From<&TrainConfig> for ConfigRecord {
    fn from(c: &TrainConfig) -> Self {
        ConfigRecord {
            seed: c.seed,
            outer_steps: c.outer_steps,
            inner_steps: c.inner_steps,
            batch: c.batch,
            width: c.width,
            phi_layers: c.phi_layers,
            pi_layers: c.pi_layers,
            eta_out: c.eta_out,
            eta_in: c.eta_in,
            delta: c.objective.delta,
            penalty: c.objective.penalty,
            surrogate_temperature: c.objective.temperature,
            outer_optimizer: c.outer_optimizer,
        }
    }
}

/// Loads the finance domain from `data` or the embedded copy.
pub fn load_finance(data: Option<&Path>, options: &FinanceOptions) -> anyhow::Result<Finance> {
    Ok(match data {
        Some(dir) => finance::load_dir(dir, options)?,
        None => finance::load_embedded(options)?,
    })
}

pub(crate) fn progress_bar(total: usize, quiet: bool, unit: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    let template = format!("{{elapsed_precise}} [{{bar:32}}] {{pos}}/{{len}} {unit} (eta {{eta}}) {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output directory `{}`", dir.display()))
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write `{}`", path.display()))
}

/// Which backend runs the training arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// The CPU trainer.
    Cpu,
    /// The GPU kernels on any Vulkan adapter (a discrete GPU first; llvmpipe counts).
    Gpu,
    /// A discrete GPU if there is one, otherwise the CPU trainer.
    Auto,
}

/// Opens the backend `choice` names and says which one it is (one line, for the user).
pub fn open_backend(choice: BackendChoice) -> anyhow::Result<(Box<dyn Backend>, String)> {
    match choice {
        BackendChoice::Cpu => Ok((Box::new(CpuBackend), "backend: cpu (chosen)".into())),
        BackendChoice::Gpu => {
            let gpu = GpuBackend::new(AdapterChoice::Any)?;
            let line = format!("backend: gpu on {} (chosen)", gpu.gpu().adapter);
            Ok((Box::new(gpu), line))
        }
        BackendChoice::Auto => match GpuBackend::new(AdapterChoice::DiscreteOnly) {
            Ok(gpu) => {
                let line = format!("backend: gpu on {} (auto: a discrete GPU)", gpu.gpu().adapter);
                Ok((Box::new(gpu), line))
            }
            Err(why) => Ok((Box::new(CpuBackend), format!("backend: cpu (auto: {why})"))),
        },
    }
}

/// Trains SBD on the finance domain and writes log.jsonl, loss.png, model.postcard,
/// policy.toml and summary.json into `out`.
///
/// Prints which backend runs (one line on stderr) once the configuration, the data and the
/// backend are all usable, so a bad input still gives exactly one error line.
pub fn train_finance(
    config: TrainConfig,
    backend: BackendChoice,
    options: &FinanceOptions,
    data: Option<&Path>,
    out: &Path,
    quiet: bool,
) -> anyhow::Result<RunSummary> {
    config.validate()?;
    let finance = load_finance(data, options)?;
    let (backend, backend_line) = open_backend(backend)?;
    let mut trainer = Trainer::new(&finance.dataset, config, backend)?;
    create_dir(out)?;
    if !quiet {
        eprintln!("{backend_line}");
    }
    let steps = trainer.config().outer_steps;
    if !quiet {
        eprintln!(
            "training SBD on finance: {} train / {} validation / {} test days; {}",
            finance.dataset.train.len,
            finance.dataset.validation.len,
            finance.dataset.test.len,
            trainer.backend()
        );
    }
    let mut log = TrainingLog::create(&out.join("log.jsonl"))?;
    let bar = progress_bar(steps, quiet, "outer steps");
    let started = Instant::now();
    let mut records: Vec<StepRecord> = Vec::with_capacity(steps);
    for _ in 0..steps {
        let record = trainer.step()?;
        bar.set_message(format!(
            "L_meta {:.4}  SR {:.3}  lambda {:.3}  alpha {:.3}",
            record.l_meta, record.safety_rate, record.mean_lambda, record.mean_alpha
        ));
        bar.inc(1);
        log.record(&record)?;
        records.push(record);
    }
    let training_seconds = started.elapsed().as_secs_f64();
    bar.finish();
    log.finish()?;
    report::training_curves(&out.join("loss.png"), &records)?;

    let test = finance_summary(&finance, options, &trainer);
    let model = trainer.export(Provenance {
        domain: "finance".into(),
        seed: trainer.config().seed,
        outer_steps: u32::try_from(steps).unwrap_or(u32::MAX),
        test_safety_rate: test.sbd.safety_rate,
    });
    write(
        &out.join("model.postcard"),
        postcard::to_allocvec(&model).map_err(|e| TrainError::Encoding(e.to_string()))?,
    )?;
    write(&out.join("policy.toml"), FINANCE_POLICY_TEMPLATE)?;
    let summary = RunSummary {
        domain: "finance".into(),
        backend: trainer.backend(),
        config: ConfigRecord::from(trainer.config()),
        outer_steps: steps,
        training_seconds,
        seconds_per_outer_step: training_seconds / steps.max(1) as f64,
        test,
    };
    write(&out.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    Ok(summary)
}

/// Runs the three section 6.6 validations on the finance domain and writes theory.json,
/// theory.md, convergence.png and monotonicity.png into `out`.
pub fn theory_finance(
    config: &TheoryConfig,
    options: &FinanceOptions,
    data: Option<&Path>,
    out: &Path,
    quiet: bool,
) -> anyhow::Result<TheoryReport> {
    config.validate()?;
    let finance = load_finance(data, options)?;
    create_dir(out)?;
    let dataset = &finance.dataset;

    let bar = progress_bar(config.lambdas.len() * config.sweep_outer_steps, quiet, "sweep outer steps");
    let monotonicity =
        theory::monotonicity(dataset, config, &CpuBackend, |done, _| bar.set_position(done as u64))?;
    bar.finish();
    let bar = progress_bar(config.reference_steps + config.convergence_steps, quiet, "full-batch steps");
    let convergence =
        theory::convergence(dataset, config, &CpuBackend, |done, _| bar.set_position(done as u64))?;
    bar.finish();
    let accountability = theory::accountability(config);
    let report = TheoryReport { monotonicity, convergence, accountability };

    write(&out.join("theory.json"), serde_json::to_string_pretty(&report)?)?;
    write(&out.join("theory.md"), theory_markdown(&report, config))?;
    let c = &report.convergence;
    let fitted: Vec<(f64, f64)> = (0..c.distances.len())
        .map(|t| (t as f64, (c.fit.intercept + c.fit.slope * t as f64).exp()))
        .collect();
    let mut convergence_series = vec![
        Series {
            label: "||pi_t - pi*||^2",
            points: c.distances.iter().enumerate().map(|(t, &d)| (t as f64, d)).collect(),
        },
        Series { label: "least-squares fit", points: fitted },
    ];
    if c.predicted_slope.is_finite() {
        let start = c.distances.first().copied().unwrap_or(1.0);
        convergence_series.push(Series {
            label: "(1 - eta mu)^t, Theorem 4.6",
            points: (0..c.distances.len())
                .map(|t| (t as f64, start * (c.predicted_slope * t as f64).exp()))
                .collect(),
        });
    }
    report::line_plot(
        &out.join("convergence.png"),
        &[Panel {
            title: "Inner convergence (Theorem 4.6)",
            x_label: "inner step t",
            y_label: "squared distance",
            log_y: true,
            series: convergence_series,
        }],
    )?;
    let m = &report.monotonicity;
    report::line_plot(
        &out.join("monotonicity.png"),
        &[Panel {
            title: "Test split vs fixed lambda (Theorem 4.4)",
            x_label: "lambda",
            y_label: "rate / alpha",
            log_y: false,
            series: vec![
                Series {
                    label: "Safety Rate, deployed sub-agent",
                    points: m.lambdas.iter().copied().zip(m.safety_rates.iter().copied()).collect(),
                },
                Series {
                    label: "P(safe) under pi's distribution",
                    points: m.lambdas.iter().copied().zip(m.expected_safety_rates.iter().copied()).collect(),
                },
                Series {
                    label: "mean alpha",
                    points: m.lambdas.iter().copied().zip(m.mean_alphas.iter().copied()).collect(),
                },
            ],
        }],
    )?;
    Ok(report)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// The theory report as markdown.
pub fn theory_markdown(report: &TheoryReport, config: &TheoryConfig) -> String {
    let m = &report.monotonicity;
    let c = &report.convergence;
    let a = &report.accountability;
    let mut s = String::from("# SBD theory validation (section 6.6), finance domain\n\n");
    s += &format!(
        "Seed {}, T_in {}, B {}, width {}, eta_in {}; sweep: {} outer steps per lambda.\n\n",
        config.train.seed,
        config.train.inner_steps,
        config.train.batch,
        config.train.width,
        config.train.eta_in,
        config.sweep_outer_steps
    );
    s += "## Theorem 4.4: safety monotonicity\n\n";
    s += "| lambda | Safety Rate, deployed sub-agent | P(safe) under pi's sub-agent distribution | mean alpha |\n|---|---|---|---|\n";
    for (i, l) in m.lambdas.iter().enumerate() {
        s += &format!(
            "| {l:.1} | {:.4} | {:.4} | {:.4} |\n",
            m.safety_rates[i], m.expected_safety_rates[i], m.mean_alphas[i]
        );
    }
    let show = |rho: f64| {
        if rho.is_nan() { "undefined (constant)".to_string() } else { format!("{rho:.3}") }
    };
    s += &format!(
        "\n- deployed Safety Rate: Spearman {}; criterion Spearman > 0.9: **{}**; non-decreasing in lambda: {}\n",
        show(m.spearman),
        verdict(m.pass),
        if m.non_decreasing { "yes" } else { "no" }
    );
    s += &format!(
        "- P(safe) under pi: Spearman {}; criterion Spearman > 0.9: **{}**; non-decreasing in lambda: {}\n",
        show(m.spearman_expected),
        verdict(m.pass_expected),
        if m.expected_non_decreasing { "yes" } else { "no" }
    );
    s += &format!("- mean alpha: Spearman(lambda, alpha) = {}\n\n", show(m.spearman_alpha));
    s += &format!(
        "## Theorem 4.6: inner convergence\n\nFull-batch projected gradient descent on {} training samples, eta = {}; pi* = the optimum of the basin the path reaches after {} steps, solved by L-BFGS in {} iterations to a gradient norm of {:.3e} ({}).\n\n",
        config.convergence_samples,
        c.eta,
        config.reference_steps,
        c.reference_iterations,
        c.reference_gradient_norm,
        if c.reference_converged { "converged" } else { "NOT converged: the fit is not a verdict" }
    );
    s += &format!(
        "- fit of ln ||pi_t - pi*||^2 on t over {} steps: slope {:.4e}, R^2 = {:.4}; the distance at the end is {:.3} of the start ({}); prediction R^2 > 0.95: **{}**\n",
        c.distances.len().saturating_sub(1),
        c.fit.slope,
        c.fit.r_squared,
        c.distance_ratio,
        if c.informative { "at least one e-fold" } else { "less than one e-fold, where any smooth path is log-linear: not checked" },
        verdict(c.pass)
    );
    s += &format!(
        "- secant estimates along the path: mu = {:.4e} (median), L = {:.4e} (max); predicted slope ln(1 - eta mu) = {:.4e}; measured / predicted = {:.3}\n\n",
        c.mu,
        c.smoothness,
        c.predicted_slope,
        c.fit.slope / c.predicted_slope
    );
    s += "## Proposition 4.8: accountability bound\n\n| k | chains | violations | worst max_j w_j / bound |\n|---|---|---|---|\n";
    for r in &a.per_length {
        s += &format!("| {} | {} | {} | {:.4} |\n", r.k, r.chains, r.violations, r.worst_ratio);
    }
    s += &format!(
        "\nZero violations predicted: **{}**. Lemma 3.6 as printed (w_1..w_k sum to 1) fails on {} chains; with the originator's retained share 1 - alpha_1 the weights sum to 1 on {} chains (see guest/policy/src/sbd.rs).\n",
        verdict(a.pass),
        a.lemma_3_6_failures,
        a.corrected_partition_holds
    );
    s
}

/// Default output directory for a domain's runs.
pub fn default_out(kind: &str, domain: &str) -> PathBuf {
    PathBuf::from("runs").join(format!("{kind}-{domain}"))
}

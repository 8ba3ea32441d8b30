//! The report of an executed evaluation: `report.md` (paper-style tables and every verdict),
//! `results.json` (every number) and PNG plots.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::TrainError;
use crate::experiment::{Analysis, Domain, DomainKind, ExperimentConfig, Method, MethodSummary, Results};
use crate::report::{Panel, Series, line_plot};

/// How the report was produced, for its header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportMeta {
    /// The command line that produced it.
    pub command: String,
    /// When it started (UTC, RFC 3339).
    pub started: String,
    /// The machine, in words (e.g. `2 cores`).
    pub machine: String,
    /// Sizes used: `full` (the committed report) or `quick`.
    pub mode: String,
}

#[derive(Serialize)]
struct Json<'a> {
    meta: &'a ReportMeta,
    config: ConfigJson,
    domains: Vec<DomainJson>,
    analysis: &'a Analysis,
    results: &'a Results,
}

#[derive(Serialize)]
struct ConfigJson {
    width: usize,
    outer_steps: usize,
    inner_steps: usize,
    batch: usize,
    eta_out: f64,
    eta_in: f64,
    temperature: f64,
    penalty: f64,
    deltas: Vec<f64>,
    headline_delta: f64,
    seeds: Vec<u64>,
    cpo_dual_step: f64,
    sweep_lambdas: Vec<f64>,
    sweep_outer_steps: usize,
    jobs: usize,
}

#[derive(Serialize)]
struct DomainJson {
    name: String,
    provenance: String,
    sub_agents: Vec<String>,
    state_dim: usize,
    train: usize,
    validation: usize,
    test: usize,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.display().to_string(), source }
}

fn cell(m: &crate::experiment::MeanStd, digits: usize) -> String {
    if m.mean.is_nan() {
        "-".into()
    } else {
        // + 0.0 turns -0.0 into 0.0
        format!("{:.digits$} ± {:.digits$}", m.mean + 0.0, m.std + 0.0)
    }
}

/// Writes `report.md`, `results.json` and the plots into `dir` (created if missing).
pub fn write(
    dir: &Path,
    domains: &[Domain],
    config: &ExperimentConfig,
    results: &Results,
    analysis: &Analysis,
    meta: &ReportMeta,
) -> Result<Vec<String>, TrainError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = vec!["report.md".to_string(), "results.json".to_string()];
    files.extend(plots(dir, domains, config, results, analysis)?);

    // the JSON keeps L_meta curves only where the convergence plot uses them (SBD, headline delta)
    let mut trimmed = results.clone();
    for run in &mut trimmed.runs {
        if !(run.method == Method::Sbd && run.delta == Some(config.headline_delta)) {
            run.l_meta.clear();
        }
        run.extras.lambda_over_time.clear();
    }
    let json = Json {
        meta,
        config: ConfigJson {
            width: config.train.width,
            outer_steps: config.train.outer_steps,
            inner_steps: config.train.inner_steps,
            batch: config.train.batch,
            eta_out: config.train.eta_out,
            eta_in: config.train.eta_in,
            temperature: config.train.objective.temperature,
            penalty: config.train.objective.penalty,
            deltas: config.deltas.clone(),
            headline_delta: config.headline_delta,
            seeds: config.seeds.clone(),
            cpo_dual_step: config.cpo_dual_step,
            sweep_lambdas: config.theory.lambdas.clone(),
            sweep_outer_steps: config.theory.sweep_outer_steps,
            jobs: config.jobs,
        },
        domains: domains
            .iter()
            .map(|d| DomainJson {
                name: d.name.clone(),
                provenance: d.provenance.clone(),
                sub_agents: d.dataset.sub_agents.clone(),
                state_dim: d.dataset.state_dim,
                train: d.dataset.train.len,
                validation: d.dataset.validation.len,
                test: d.dataset.test.len,
            })
            .collect(),
        analysis,
        results: &trimmed,
    };
    let path = dir.join("results.json");
    let text = serde_json::to_string_pretty(&json).map_err(|e| TrainError::Encoding(e.to_string()))?;
    std::fs::write(&path, text).map_err(io(&path))?;
    let path = dir.join("report.md");
    std::fs::write(&path, markdown(domains, config, results, analysis, meta)).map_err(io(&path))?;
    Ok(files)
}

/// The markdown summary.
pub fn markdown(
    domains: &[Domain],
    config: &ExperimentConfig,
    results: &Results,
    analysis: &Analysis,
    meta: &ReportMeta,
) -> String {
    let mut md = String::new();
    let t = &config.train;
    let _ = writeln!(md, "# The SBD paper's pre-registered evaluation (section 6), executed\n");
    let _ = writeln!(
        md,
        "Command: `{}` ({} sizes), started {} on {}; wall time **{:.1} min** for {} training and baseline runs plus the F3/F4 checks, {} at a time.\n",
        meta.command,
        meta.mode,
        meta.started,
        meta.machine,
        results.seconds / 60.0,
        results.runs.len(),
        config.jobs
    );
    let _ = writeln!(
        md,
        "Sizes: phi and pi MLPs of width {} (paper: 256), T_out {}, T_in {}, B {}, eta_out {}, eta_in {}, surrogate temperature {} with margin {}, penalty rho {}, chance-constraint dual step {}, meta-batch from the {} split; delta in {:?} (single-delta figures at {}); seeds {:?}. Mean ± sample std over seeds. The evaluation protocol, the methods' realisation and every deviation from the paper are in the README section \"The pre-registered evaluation\" and docs/research.md.\n",
        t.width,
        t.outer_steps,
        t.inner_steps,
        t.batch,
        t.eta_out,
        t.eta_in,
        t.objective.temperature,
        t.objective.margin,
        t.objective.penalty,
        t.chance_dual_step,
        if t.meta_from_validation { "validation" } else { "training" },
        config.deltas,
        config.headline_delta,
        config.seeds
    );
    let _ = writeln!(md, "## Domains\n");
    let _ = writeln!(md, "| domain | data | sub-agents | train / validation / test |");
    let _ = writeln!(md, "|---|---|---|---|");
    for d in domains {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {} / {} |",
            d.name,
            d.provenance,
            d.dataset.sub_agents.join(", "),
            d.dataset.train.len,
            d.dataset.validation.len,
            d.dataset.test.len
        );
    }
    let _ = writeln!(md, "\n## Verdicts\n");
    let _ = writeln!(
        md,
        "For H-* rows, ✔ means the hypothesis is supported. For F1-F4, ✔ means the criterion does **not** falsify the framework on that domain, ✘ that it does.\n"
    );
    let _ = writeln!(md, "| id | domain | criterion | measured | verdict |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for v in &analysis.verdicts {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            v.id,
            v.domain,
            v.criterion,
            v.measured,
            if v.holds { "✔" } else { "✘" }
        );
    }
    for (name, methods) in &analysis.domains {
        let provenance = domains.iter().find(|d| &d.name == name).map_or("", |d| d.provenance.as_str());
        let _ = writeln!(md, "\n## {name} ({provenance})\n");
        let _ = writeln!(
            md,
            "At delta = {}: Safety Rate, Task Efficiency, Accountability Entropy (bits), mean alpha, mean learned lambda; SEA over the delta sweep.\n",
            config.headline_delta
        );
        let _ = writeln!(md, "| method | role | SR | TE | SEA | AE | mean alpha | mean lambda |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        for m in methods {
            let _ = writeln!(
                md,
                "| {} | {:?} | {} | {} | {} | {} | {} | {} |",
                m.name,
                m.role,
                cell(&m.safety_rate, 4),
                cell(&m.task_efficiency, 4),
                cell(&m.sea, 4),
                cell(&m.accountability_entropy, 3),
                cell(&m.mean_alpha, 3),
                cell(&m.mean_lambda, 3)
            );
        }
        let _ = writeln!(md, "\nSR / TE per delta (means over seeds):\n");
        let header: Vec<String> = config.deltas.iter().map(|d| format!("delta {d}")).collect();
        let _ = writeln!(md, "| method | {} |", header.join(" | "));
        let _ = writeln!(md, "|---|{}", "---|".repeat(config.deltas.len()));
        for m in methods {
            let cells: Vec<String> = m.curve.iter().map(|(_, sr, te)| format!("{sr:.3} / {te:.3}")).collect();
            let _ = writeln!(md, "| {} | {} |", m.name, cells.join(" | "));
        }
        delta_binding(&mut md, name, config, results);
        let _ = writeln!(md, "\n![SR-TE Pareto curves]({})", pareto_file(name));
    }
    let _ = writeln!(md, "\n## Theory checks behind F3 and F4 (seed {})\n", config.seeds.first().copied().unwrap_or(0));
    let _ = writeln!(md, "| domain | fixed lambda | test SR | expected P(safe) | Spearman (SR, expected) | inner log-distance slope (R^2) |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for th in &results.theory {
        let m = &th.monotonicity;
        let join = |v: &[f64]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.3}, {:.3} | {:.5} ({:.3}) |",
            th.domain,
            join(&m.lambdas),
            join(&m.safety_rates),
            join(&m.expected_safety_rates),
            m.spearman,
            m.spearman_expected,
            th.convergence.fit.slope,
            th.convergence.fit.r_squared
        );
    }
    let _ = writeln!(md, "\n## Plots\n");
    for (file, what) in plot_list(domains) {
        let _ = writeln!(md, "- [`{file}`]({file}): {what}");
    }
    md
}

/// Whether delta binds: per delta, the stochastic policy's SR (what the chance constraint
/// bounds), the deployed SR, TE and the constraint's final multiplier nu, for the SBD methods
/// that carry the constraint (means over seeds).
fn delta_binding(md: &mut String, domain: &str, config: &ExperimentConfig, results: &Results) {
    let _ = writeln!(
        md,
        "\nDoes delta bind? Per delta: stochastic-policy SR (bounded below by 1 - delta by the chance constraint) / deployed SR / TE / multiplier nu, means over seeds:\n"
    );
    let header: Vec<String> = config.deltas.iter().map(|d| format!("delta {d}")).collect();
    let _ = writeln!(md, "| method | {} |", header.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(config.deltas.len()));
    for method in [Method::Sbd, Method::NoOuter, Method::DiscreteAlpha, Method::FixedLambda] {
        let cells: Vec<String> = config
            .deltas
            .iter()
            .map(|&delta| {
                let runs: Vec<_> = results
                    .runs
                    .iter()
                    .filter(|r| r.domain == domain && r.method == method && r.delta == Some(delta))
                    .collect();
                let n = runs.len().max(1) as f64;
                let mean = |f: &dyn Fn(&crate::experiment::RunResult) -> f64| {
                    runs.iter().map(|r| f(r)).sum::<f64>() / n
                };
                format!(
                    "{:.3} / {:.3} / {:.3} / {:.2}",
                    mean(&|r| r.stochastic_safety_rate),
                    mean(&|r| r.safety_rate),
                    mean(&|r| r.task_efficiency),
                    mean(&|r| r.chance_multiplier)
                )
            })
            .collect();
        let _ = writeln!(md, "| {} | {} |", method.name(), cells.join(" | "));
    }
}

fn pareto_file(domain: &str) -> String {
    format!("pareto-{domain}.png")
}

fn plot_list(domains: &[Domain]) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = domains
        .iter()
        .map(|d| (pareto_file(&d.name), format!("SR-TE Pareto curves over delta, {} ({})", d.name, d.provenance)))
        .collect();
    for d in domains {
        match d.kind {
            DomainKind::Medical => list.push((
                format!("lambda-vs-acuity-{}.png", d.name),
                format!("SBD's lambda against the acuity signal, deciles of the test split, {}", d.name),
            )),
            DomainKind::Finance { .. } => list.push((
                "lambda-covid.png".into(),
                "SBD's lambda over the 2020-2022 test days, with the COVID window".into(),
            )),
            DomainKind::Education => list.push((
                "alpha-at-risk.png".into(),
                "mean alpha for at-risk and other students against delta (synthetic data)".into(),
            )),
        }
    }
    list.push(("convergence.png".into(), "SBD's L_meta per outer step, each domain, every seed".into()));
    list
}

fn summaries<'a>(analysis: &'a Analysis, domain: &str) -> &'a [MethodSummary] {
    analysis.domains.iter().find(|(d, _)| d == domain).map_or(&[], |(_, l)| l.as_slice())
}

fn plots(
    dir: &Path,
    domains: &[Domain],
    config: &ExperimentConfig,
    results: &Results,
    analysis: &Analysis,
) -> Result<Vec<String>, TrainError> {
    let mut files = Vec::new();
    let headline = Some(config.headline_delta);
    let sbd_runs = |domain: &str| -> Vec<&crate::experiment::RunResult> {
        results.runs.iter().filter(|r| r.domain == domain && r.method == Method::Sbd && r.delta == headline).collect()
    };
    for d in domains {
        let file = pareto_file(&d.name);
        let title = format!("SR-TE over delta: {}", d.name);
        let series: Vec<Series<'_>> = summaries(analysis, &d.name)
            .iter()
            .map(|m| Series { label: m.name.as_str(), points: m.curve.iter().map(|&(_, sr, te)| (sr, te)).collect() })
            .collect();
        line_plot(
            &dir.join(&file),
            &[Panel { title: &title, x_label: "Safety Rate", y_label: "Task Efficiency", log_y: false, series }],
        )?;
        files.push(file);
        let runs = sbd_runs(&d.name);
        let seed_labels: Vec<String> = runs.iter().map(|r| format!("seed {}", r.seed)).collect();
        match d.kind {
            DomainKind::Medical => {
                let file = format!("lambda-vs-acuity-{}.png", d.name);
                let title = format!("SBD lambda by acuity decile: {}", d.name);
                let series = runs
                    .iter()
                    .zip(&seed_labels)
                    .map(|(r, label)| Series { label: label.as_str(), points: r.extras.lambda_by_risk.clone() })
                    .collect();
                line_plot(
                    &dir.join(&file),
                    &[Panel { title: &title, x_label: "acuity (decile mean)", y_label: "mean lambda", log_y: false, series }],
                )?;
                files.push(file);
            }
            DomainKind::Finance { ref market, .. } => {
                let covid = market.days_between(crate::finance::COVID_WINDOW.0, crate::finance::COVID_WINDOW.1);
                let start = market.test_days.start;
                let (a, b) = (covid.start.saturating_sub(start) as f64, covid.end.saturating_sub(start) as f64);
                let mut series: Vec<Series<'_>> = runs
                    .iter()
                    .zip(&seed_labels)
                    .map(|(r, label)| Series { label: label.as_str(), points: r.extras.lambda_over_time.clone() })
                    .collect();
                let (lo, hi) = runs
                    .iter()
                    .flat_map(|r| r.extras.lambda_over_time.iter().map(|p| p.1))
                    .fold((f64::MAX, f64::MIN), |(lo, hi), l| (lo.min(l), hi.max(l)));
                if lo <= hi {
                    series.push(Series {
                        label: "COVID window (2020-02-20 .. 03-23)",
                        points: vec![(a, lo), (a, hi), (b, hi), (b, lo), (a, lo)],
                    });
                }
                line_plot(
                    &dir.join("lambda-covid.png"),
                    &[Panel {
                        title: "SBD lambda over the test days (2020-2022)",
                        x_label: "test trading day",
                        y_label: "lambda",
                        log_y: false,
                        series,
                    }],
                )?;
                files.push("lambda-covid.png".into());
            }
            DomainKind::Education => {
                let mut series = Vec::new();
                let labels: Vec<(Method, String, String)> = [Method::Sbd, Method::NoOuter, Method::MarlVanilla]
                    .iter()
                    .map(|m| (*m, format!("{}: at risk", m.name()), format!("{}: others", m.name())))
                    .collect();
                for (method, risk_label, other_label) in &labels {
                    let mut risk = Vec::new();
                    let mut other = Vec::new();
                    for &delta in &config.deltas {
                        let rs: Vec<(f64, f64, f64)> = results
                            .runs
                            .iter()
                            .filter(|r| {
                                r.domain == d.name && r.method == *method && r.delta.is_none_or(|x| x == delta)
                            })
                            .filter_map(|r| r.extras.at_risk_alpha)
                            .collect();
                        let n = rs.len().max(1) as f64;
                        risk.push((delta, rs.iter().map(|x| x.0).sum::<f64>() / n));
                        other.push((delta, rs.iter().map(|x| x.1).sum::<f64>() / n));
                    }
                    series.push(Series { label: risk_label.as_str(), points: risk });
                    series.push(Series { label: other_label.as_str(), points: other });
                }
                line_plot(
                    &dir.join("alpha-at-risk.png"),
                    &[Panel {
                        title: "Mean alpha, at-risk vs other students (SYNTHETIC data)",
                        x_label: "delta",
                        y_label: "mean alpha",
                        log_y: false,
                        series,
                    }],
                )?;
                files.push("alpha-at-risk.png".into());
            }
        }
    }
    let labels: Vec<(String, Vec<(f64, f64)>)> = domains
        .iter()
        .flat_map(|d| {
            sbd_runs(&d.name).into_iter().map(move |r| {
                (
                    format!("{} seed {}", d.name, r.seed),
                    r.l_meta.iter().enumerate().map(|(i, &l)| ((i + 1) as f64, l)).collect(),
                )
            })
        })
        .collect();
    let series = labels.iter().map(|(l, p)| Series { label: l.as_str(), points: p.clone() }).collect();
    line_plot(
        &dir.join("convergence.png"),
        &[Panel { title: "SBD L_meta per outer step", x_label: "outer step", y_label: "L_meta", log_y: false, series }],
    )?;
    files.push("convergence.png".into());
    Ok(files)
}

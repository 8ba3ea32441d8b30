//! `sbd`: evaluate delegations against a policy component, replay multi-hop scenarios, and run
//! the built-in demo.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use sbd_cli::output::{EXIT_FAILED, EXIT_OK, verdict_status};
use sbd_cli::scenario::Scenario;
use sbd_cli::{
    DEMO_SCENARIO_JSON, PolicySource, RISK_DEPTH_POLICY_TOML, RISK_DEPTH_SCENARIO_JSON, input_name, load_policy,
    load_policy_with, outln, parse_config, read_text, render, train,
};
use sbd_policy::{PolicyConfig, Reason, Request};
use sbd_train::eval::experiment::{CapReading, DomainChoice, ExperimentConfig};
use sbd_train::domains::finance::FinanceOptions;
use sbd_train::engine::objective::Objective;
use sbd_train::eval::theory::TheoryConfig;
use sbd_train::engine::trainer::{OuterOptimizer, TrainConfig};

/// The runtime safety layer for agent-to-agent delegation.
///
/// Exit status (every command): 0 success or allow, 1 error, 2 usage, 3 escalate, 4 deny (the
/// most severe verdict of a batch), 5 an `sbd check` or `sbd test` failure. A FILE argument of
/// `-` reads standard input.
#[derive(Parser)]
#[command(name = "sbd", version, about, long_about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay a built-in scenario: the five-agent refund chain on the default policy, or
    /// `risk-depth`, a stress state shortening the chain (policies/risk-depth.toml).
    Demo {
        /// Which scenario.
        #[arg(value_enum, default_value_t = DemoName::RefundChain)]
        scenario: DemoName,
        /// Print the trace as JSON instead of text (same as --format json).
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Replay at this instant (Unix ms) instead of the current time.
        #[arg(long, value_name = "UNIX_MS")]
        now: Option<u64>,
    },
    /// Decide one request (a JSON object) or a batch (a JSON array); prints the verdicts.
    /// Exit status 0 allow, 3 escalate, 4 deny (the most severe of a batch). The request
    /// format: schema/request.schema.json (`sbd schema request`).
    Eval {
        #[command(flatten)]
        policy: PolicyArgs,
        /// The request file (`-`: standard input).
        #[arg(long, short)]
        request: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Replay a multi-hop scenario file and print each hop's verdict and the trace.
    Replay {
        #[command(flatten)]
        policy: PolicyArgs,
        /// The scenario file (see policies/scenarios/demo.json; `-`: standard input).
        #[arg(long, short)]
        scenario: PathBuf,
        /// Print the trace as JSON instead of text (same as --format json).
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Move the scenario to this instant (Unix ms) [default: the current time for a
        /// scenario with `rebase_to_now`, else the file's own times].
        #[arg(long, value_name = "UNIX_MS")]
        now: Option<u64>,
    },
    /// Print a policy's name, version, configuration digest and component digest.
    Info {
        #[command(flatten)]
        policy: PolicyArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// List every reason code a verdict can carry.
    Reasons {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Validate policy configurations (.toml), scenarios, requests, canaries (.json) and bundle
    /// directories without deciding anything; exit status 5 if any is invalid.
    Check {
        /// The files (`-`: standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Verify bundles' signatures and digests against this trust store.
        #[arg(long, short)]
        trust_store: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Replay scenario files and check each hop's `expect` entry against its verdict (as `opa
    /// test` runs a policy's tests); exit status 5 if any expectation fails.
    Test {
        #[command(flatten)]
        policy: PolicyArgs,
        /// Scenario files with `expect` entries (`-`: standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Replay at this instant (Unix ms) [default: as `sbd replay`].
        #[arg(long, value_name = "UNIX_MS")]
        now: Option<u64>,
        /// Print only failures and the summary.
        #[arg(long, short)]
        quiet: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON Schema of a document sbd reads or writes (generated from the Rust types;
    /// committed under schema/), or write them all to a directory.
    Schema {
        /// Which document.
        #[arg(value_enum, required_unless_present = "out")]
        name: Option<SchemaName>,
        /// Write every schema to DIR/<name>.schema.json instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script: `sbd completions bash > /etc/bash_completion.d/sbd`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Generate an Ed25519 signing key (OUT.key, OUT.pub), optionally trusting it in a trust store.
    Keygen(sbd_cli::bundle::KeygenArgs),
    /// Signed policy bundles: build, sign, verify, inspect, activate, watch, record a canary.
    Bundle {
        #[command(subcommand)]
        command: sbd_cli::bundle::BundleCommand,
    },
    /// Delegation tokens: issue the child's token for an allowed delegation, verify a token.
    Token {
        #[command(subcommand)]
        command: sbd_cli::bundle::TokenCommand,
    },
    /// Tamper-evident delegation traces: verify a chain export offline.
    Trace {
        #[command(subcommand)]
        command: sbd_cli::trace::TraceCommand,
    },
    /// Run the SBD paper's pre-registered evaluation (section 6): every method, delta and seed
    /// on each domain; writes report.md, results.json and PNG plots.
    Experiment {
        /// Which domains.
        #[arg(long, value_enum, default_value_t = ExperimentDomain::All)]
        domain: ExperimentDomain,
        /// With `--domain finance-rolling`: the test years, one origin each, comma-separated
        /// or as FIRST-LAST, from 2000 to 2022 [default: 2000-2022].
        #[arg(long, value_parser = parse_years)]
        origins: Option<Years>,
        /// Output directory [default: runs/experiment-<domain>]
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Small sizes for a smoke run: width 16, B 64, T_in 5, T_out 8, two seeds, 300
        /// synthetic students.
        #[arg(long)]
        quick: bool,
        /// Runs at a time [default: the number of CPUs].
        #[arg(long)]
        jobs: Option<usize>,
        /// Number of seeds (0, 1, ...) [default: 10, or 2 with --quick].
        #[arg(long)]
        seeds: Option<u64>,
        /// The delta sweep, comma-separated; it must contain 0.05, the headline delta
        /// [default: 0.01,0.05,0.1,0.2,0.3; finance-rolling runs 0.05 only].
        #[arg(long, value_delimiter = ',')]
        deltas: Option<Vec<f64>>,
        /// Random-search candidates per tuned method and domain on validation, the defaults
        /// included (1: no search) [default: 4, or 2 with --quick].
        #[arg(long)]
        tuning_budget: Option<usize>,
        /// T_out of every trained run and of the F3 sweep's runs [default: 300, or 8 with
        /// --quick].
        #[arg(long)]
        outer_steps: Option<usize>,
        /// Hidden width of phi and pi [default: 32, or 16 with --quick].
        #[arg(long)]
        width: Option<usize>,
        /// The reading of the projection's caps alpha_max(s) (SBD 5.3).
        #[arg(long, value_enum, default_value_t = CapsArg::Threshold)]
        caps: CapsArg,
        /// Start over: delete the checkpoint a previous, interrupted run left in the output
        /// directory instead of resuming from it.
        #[arg(long)]
        fresh: bool,
        /// No progress bar or banner.
        #[arg(long)]
        quiet: bool,
    },
    /// Run the edge gateway: delegation API, escalations, traces and the Cycles ledger on an
    /// embedded SQLite store (zero setup).
    Serve(sbd_cli::serve::ServeArgs),
    /// Train the SBD networks (Algorithm 1) on a domain's real data; writes the log, a
    /// loss-curve plot, the weights, a policy that uses them and a test-split summary.
    Train {
        #[command(flatten)]
        args: TrainArgs,
        /// Output directory [default: runs/train-<domain>]
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Run the paper's section 6.6 validations: safety monotonicity in lambda, inner linear
    /// convergence and the accountability bound; writes theory.md, theory.json and plots.
    Theory {
        #[command(flatten)]
        args: TrainArgs,
        /// Output directory [default: runs/theory-<domain>]
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Outer steps per fixed-lambda training run of the monotonicity sweep.
        #[arg(long, default_value_t = 500)]
        sweep_outer_steps: usize,
        /// Training samples of the full-batch convergence run.
        #[arg(long, default_value_t = 512)]
        convergence_samples: usize,
        /// Inner steps whose distance to pi* is fitted.
        #[arg(long, default_value_t = 200)]
        convergence_steps: usize,
        /// Gradient steps along the path before pi* is solved for from where they end.
        #[arg(long, default_value_t = 4000)]
        reference_steps: usize,
        /// Most L-BFGS iterations spent solving pi* to a gradient norm of 1e-6 (each one a
        /// full-batch gradient of pi, and more in its line search); F4 gives no verdict where
        /// pi* is not reached.
        #[arg(long, default_value_t = 2000)]
        reference_iterations: usize,
        /// Random chains per chain length for the accountability bound.
        #[arg(long, default_value_t = 10_000)]
        chains: usize,
        /// Small sizes for a smoke run: width 32, B 64, T_in 10, 20 sweep steps, 300 reference
        /// steps, 1,000 chains.
        #[arg(long)]
        quick: bool,
    },
}

/// The built-in demo scenarios.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DemoName {
    /// policies/scenarios/demo.json on policies/default.toml: every verdict kind.
    RefundChain,
    /// policies/scenarios/risk-depth.json on policies/risk-depth.toml: risk-tightened
    /// authority, the same hop allowed when calm and escalated under stress.
    RiskDepth,
}

/// How a command prints its result.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// JSON, for programs.
    Json,
    /// Text, for people.
    Text,
}

/// The documents `sbd schema` prints.
#[derive(Clone, Copy, ValueEnum)]
enum SchemaName {
    /// One delegation request.
    Request,
    /// A batch of requests.
    Requests,
    /// A verdict.
    Verdict,
    /// A mandate.
    Mandate,
    /// A policy configuration.
    Policy,
    /// A scenario file.
    Scenario,
}

impl SchemaName {
    fn name(self) -> &'static str {
        match self {
            SchemaName::Request => "request",
            SchemaName::Requests => "requests",
            SchemaName::Verdict => "verdict",
            SchemaName::Mandate => "mandate",
            SchemaName::Policy => "policy",
            SchemaName::Scenario => "scenario",
        }
    }
}

/// The domains of `sbd experiment`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ExperimentDomain {
    /// Finance, medical (with the MIMIC-IV demo check) and education.
    All,
    /// S&P 500 constituents, 2010-2022 (real).
    Finance,
    /// SUPPORT2 and the MIMIC-IV demo (real).
    Medical,
    /// ASSISTments skill-builder format (SYNTHETIC).
    Education,
    /// Finance, rolling origins: one test year at a time, each with its own train and
    /// validation years, random search and runs; methods compared across years.
    FinanceRolling,
}

/// Test years of `--origins`.
#[derive(Clone, Debug)]
struct Years(Vec<u16>);

/// Parses a comma-separated list of years and FIRST-LAST ranges: `2016-2022`,
/// `2008,2016,2020` or `2000-2002,2008`.
fn parse_years(text: &str) -> Result<Years, String> {
    let year = |t: &str| t.trim().parse::<u16>().map_err(|_| format!("`{}` is not a year", t.trim()));
    let mut years = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (year(first)?, year(last)?);
                if first > last {
                    return Err(format!("{first}-{last}: the first year is after the last"));
                }
                years.extend(first..=last);
            }
            None => years.push(year(part)?),
        }
    }
    Ok(Years(years))
}

/// The readings of the projection's caps in `sbd experiment` (`CapReading`).
#[derive(Clone, Copy, clap::ValueEnum)]
enum CapsArg {
    /// Each regime's cap is its unsafe threshold, so the projection removes the regime's risk
    /// (the paper's reading).
    Threshold,
    /// No regime cap: the projected methods do not project, and every method must learn the
    /// regime's risk.
    Uncapped,
}

/// The training domains.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Domain {
    /// S&P 500 constituents, 2010-2022 (SBD 6.3).
    Finance,
}

/// Hyperparameters of a training run; defaults are SBD section 6.1.
#[derive(Args)]
struct TrainArgs {
    /// The domain to train on.
    #[arg(long, value_enum)]
    domain: Domain,
    /// Directory with the domain's data files instead of the embedded copy.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed of initialisation and sampling (runs are deterministic for a seed and a backend).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// T_out: outer steps.
    #[arg(long, default_value_t = 500)]
    outer_steps: usize,
    /// T_in: inner steps per outer step.
    #[arg(long, default_value_t = 50)]
    inner_steps: usize,
    /// B: mini-batch size.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Hidden width of phi and pi.
    #[arg(long, default_value_t = 256)]
    width: usize,
    /// eta_out: outer step size.
    #[arg(long, default_value_t = 1e-3)]
    eta_out: f64,
    /// eta_in: inner step size.
    #[arg(long, default_value_t = 5e-4)]
    eta_in: f64,
    /// delta: risk tolerance of the constraint P(safe) >= 1 - delta.
    #[arg(long, default_value_t = 0.05)]
    delta: f64,
    /// Weight of the mini-batch penalty rho * max(0, mean unsafe - delta)^2.
    #[arg(long, default_value_t = 10.0)]
    penalty: f64,
    /// Temperature of the sigmoid surrogate of the safety indicator.
    #[arg(long, default_value_t = 0.02)]
    temperature: f64,
    /// Outer update: plain SGD as in Algorithm 1, or Adam.
    #[arg(long, value_enum, default_value_t = Optimizer::Sgd)]
    outer_optimizer: Optimizer,
    /// What runs the arithmetic: the CPU trainer, the GPU kernels (any Vulkan adapter), or
    /// auto: a discrete GPU if there is one, else the CPU. On an NVIDIA H200 a paper-size run
    /// took 22.5 s on the GPU against 76.2 s on the CPU trainer of the same machine, with the
    /// same test figures (docs/performance.md).
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// No progress bar or banner.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackendArg {
    Cpu,
    Gpu,
    Auto,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Optimizer {
    Sgd,
    Adam,
}

impl TrainArgs {
    fn config(&self) -> TrainConfig {
        TrainConfig {
            seed: self.seed,
            outer_steps: self.outer_steps,
            inner_steps: self.inner_steps,
            batch: self.batch,
            width: self.width,
            eta_out: self.eta_out,
            eta_in: self.eta_in,
            objective: Objective {
                temperature: self.temperature,
                project: true,
                delta: self.delta,
                penalty: self.penalty,
                ..Objective::default()
            },
            outer_optimizer: match self.outer_optimizer {
                Optimizer::Sgd => OuterOptimizer::Sgd,
                Optimizer::Adam => OuterOptimizer::Adam,
            },
            ..TrainConfig::default()
        }
    }

    fn domain_name(&self) -> &'static str {
        match self.domain {
            Domain::Finance => "finance",
        }
    }
}

/// Which policy to run.
#[derive(Args)]
struct PolicyArgs {
    /// Policy configuration (TOML); default: the embedded policies/default.toml.
    #[arg(long, short)]
    policy: Option<PathBuf>,
    /// Policy component (.wasm); default: the embedded component built from guest/.
    #[arg(long)]
    component: Option<PathBuf>,
    /// Keep precompiled components here and reuse them on later runs.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

impl PolicyArgs {
    fn source(self) -> PolicySource {
        PolicySource { config: self.policy, component: self.component, cache: self.cache_dir }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            // One line, whatever the causes' own formatting: scripts read the first line.
            eprintln!("error: {}", sbd_cli::output::one_line(&error));
            ExitCode::from(sbd_cli::output::EXIT_ERROR)
        }
    }
}

/// Runs one command; the exit status on success (see [`sbd_cli::output`]).
fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Keygen(args) => sbd_cli::bundle::keygen(&args).map(|()| EXIT_OK),
        Command::Bundle { command } => sbd_cli::bundle::run_bundle(command).map(|()| EXIT_OK),
        Command::Token { command } => sbd_cli::bundle::run_token(command),
        Command::Trace { command } => sbd_cli::trace::run(command).map(|()| EXIT_OK),
        Command::Serve(args) => sbd_cli::serve::run(args).map(|()| EXIT_OK),
        Command::Demo { scenario, json, format, now } => {
            let json = json || format == Format::Json;
            match scenario {
                DemoName::RefundChain => {
                    let scenario = Scenario::from_json(DEMO_SCENARIO_JSON)?;
                    replay(PolicySource::default(), None, &scenario, json, now)?;
                }
                DemoName::RiskDepth => {
                    let scenario = Scenario::from_json(RISK_DEPTH_SCENARIO_JSON)?;
                    let config = parse_config(RISK_DEPTH_POLICY_TOML, "policies/risk-depth.toml")?;
                    replay(PolicySource::default(), Some(&config), &scenario, json, now)?;
                }
            }
            Ok(EXIT_OK)
        }
        Command::Eval { policy, request, format } => {
            let (_runtime, policy) = load_policy(&policy.source())?;
            let name = input_name(&request);
            let text = read_text(&request)?;
            let value: serde_json::Value =
                sbd_runtime::json::from_str(&text).with_context(|| format!("`{name}` is not JSON"))?;
            let (verdicts, batch) = if value.is_array() {
                let requests: Vec<Request> = sbd_runtime::json::from_value(value)
                    .with_context(|| format!("`{name}` is not an array of delegation requests"))?;
                (policy.evaluate_batch(&requests), true)
            } else {
                let one: Request = sbd_runtime::json::from_value(value)
                    .with_context(|| format!("`{name}` is not a delegation request"))?;
                (vec![policy.evaluate(&one)], false)
            };
            match (format, batch) {
                (Format::Json, true) => outln!("{}", serde_json::to_string_pretty(&verdicts)?)?,
                (Format::Json, false) => outln!("{}", serde_json::to_string_pretty(&verdicts[0])?)?,
                (Format::Text, _) => {
                    for (i, verdict) in verdicts.iter().enumerate() {
                        if batch {
                            outln!("request {}:", i + 1)?;
                        }
                        sbd_cli::output::print(&render::verdict(verdict, None))?;
                    }
                }
            }
            Ok(verdict_status(&verdicts))
        }
        Command::Replay { policy, scenario, json, format, now } => {
            let parsed = Scenario::from_json(&read_text(&scenario)?)
                .with_context(|| format!("in `{}`", input_name(&scenario)))?;
            replay(policy.source(), None, &parsed, json || format == Format::Json, now)?;
            Ok(EXIT_OK)
        }
        Command::Info { policy, format } => {
            let (_runtime, policy) = load_policy(&policy.source())?;
            let info = policy.info();
            match format {
                Format::Json => {
                    let value = serde_json::json!({
                        "policy": info,
                        "component_sha256": policy.component_digest(),
                    });
                    outln!("{}", serde_json::to_string_pretty(&value)?)?;
                }
                Format::Text => {
                    outln!("policy             {} {}", info.name, info.version)?;
                    outln!("configuration      sha256 {}", info.config_digest)?;
                    outln!("component          sha256 {}", policy.component_digest())?;
                    outln!("max depth          {}", info.max_depth)?;
                    outln!("wire version       {}", info.wire_version)?;
                }
            }
            Ok(EXIT_OK)
        }
        Command::Reasons { format } => {
            match format {
                Format::Json => {
                    let list: Vec<serde_json::Value> = Reason::ALL
                        .iter()
                        .map(|r| {
                            serde_json::json!({
                                "code": r.code(),
                                "name": r.name(),
                                "kind": format!("{:?}", r.kind()).to_lowercase(),
                                "summary": r.summary(),
                            })
                        })
                        .collect();
                    outln!("{}", serde_json::to_string_pretty(&list)?)?;
                }
                Format::Text => {
                    outln!("{:>5}  {:<28} {:<9} summary", "code", "name", "kind")?;
                    for reason in Reason::ALL {
                        outln!(
                            "{:>5}  {:<28} {:<9} {}",
                            reason.code(),
                            reason.name(),
                            format!("{:?}", reason.kind()),
                            reason.summary()
                        )?;
                    }
                }
            }
            Ok(EXIT_OK)
        }
        Command::Check { files, trust_store, format } => {
            let results: Vec<_> =
                files.iter().map(|f| sbd_cli::check::check(f, trust_store.as_deref())).collect();
            match format {
                Format::Json => outln!("{}", serde_json::to_string_pretty(&results)?)?,
                Format::Text => {
                    for r in &results {
                        let kind = serde_json::to_value(r.kind)?.as_str().unwrap_or("?").to_string();
                        outln!("{} {:<9} {}: {}", if r.ok { "ok  " } else { "FAIL" }, kind, r.file, r.detail)?;
                    }
                }
            }
            Ok(if results.iter().all(|r| r.ok) { EXIT_OK } else { EXIT_FAILED })
        }
        Command::Test { policy, files, now, quiet, format } => {
            let (_runtime, policy) = load_policy(&policy.source())?;
            let mut cases = Vec::new();
            for file in &files {
                let name = input_name(file);
                let scenario = Scenario::from_json(&read_text(file)?).with_context(|| format!("in `{name}`"))?;
                let now = match now {
                    Some(at) => Some(at),
                    None if scenario.rebase_to_now => Some(unix_ms()?),
                    None => None,
                };
                cases.extend(sbd_cli::check::test_scenario(&name, &scenario, now, |r| policy.evaluate(r))?);
            }
            let failed = cases.iter().filter(|c| !c.passed).count();
            match format {
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "passed": cases.len() - failed,
                        "failed": failed,
                        "cases": cases,
                    }))?
                )?,
                Format::Text => {
                    for c in &cases {
                        match &c.failure {
                            Some(why) => outln!("FAIL {} hop {}: {} ({})", c.file, c.hop, why, c.note)?,
                            None if !quiet => outln!("PASS {} hop {}: {}", c.file, c.hop, c.note)?,
                            None => {}
                        }
                    }
                    outln!("{} passed, {failed} failed", cases.len() - failed)?;
                }
            }
            Ok(if failed == 0 { EXIT_OK } else { EXIT_FAILED })
        }
        Command::Schema { name, out } => {
            match (out, name) {
                (Some(dir), _) => {
                    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
                    for name in sbd_cli::schema::NAMES {
                        let text = sbd_cli::schema::render(name).context("a schema name without a schema")?;
                        let path = dir.join(format!("{name}.schema.json"));
                        std::fs::write(&path, text).with_context(|| format!("cannot write `{}`", path.display()))?;
                        outln!("wrote {}", path.display())?;
                    }
                }
                (None, Some(name)) => {
                    sbd_cli::output::print(&sbd_cli::schema::render(name.name()).context("no such schema")?)?;
                }
                (None, None) => anyhow::bail!("name a schema or give --out"),
            }
            Ok(EXIT_OK)
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "sbd", &mut script);
            sbd_cli::output::print(&String::from_utf8_lossy(&script))?;
            Ok(EXIT_OK)
        }
        Command::Experiment { domain, origins, out, quick, jobs, seeds, deltas, tuning_budget, outer_steps, width, caps, fresh, quiet } => {
            let (choice, name) = match domain {
                ExperimentDomain::All => (DomainChoice::All, "all"),
                ExperimentDomain::Finance | ExperimentDomain::FinanceRolling => (DomainChoice::Finance, "finance"),
                ExperimentDomain::Medical => (DomainChoice::Medical, "medical"),
                ExperimentDomain::Education => (DomainChoice::Education, "education"),
            };
            let rolling = matches!(domain, ExperimentDomain::FinanceRolling);
            if origins.is_some() && !rolling {
                anyhow::bail!("--origins needs --domain finance-rolling");
            }
            let mut config = if quick { ExperimentConfig::quick() } else { ExperimentConfig::default() };
            config.jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
            if let Some(n) = seeds {
                config.seeds = (0..n).collect();
            }
            if let Some(t) = outer_steps {
                config.train.outer_steps = t;
                // the F3 sweep's fixed-lambda runs at the same size
                config.theory.sweep_outer_steps = t;
            }
            if rolling && deltas.is_some() {
                anyhow::bail!("--deltas does not apply to --domain finance-rolling: it runs and reports delta 0.05 only");
            }
            if let Some(d) = deltas {
                config.deltas = d;
            } else if rolling {
                config.deltas = vec![config.headline_delta];
            }
            if let Some(b) = tuning_budget {
                config.tuning_budget = b;
            }
            if let Some(w) = width {
                config.train.width = w;
                config.theory.train.width = w;
            }
            config.caps = match caps {
                CapsArg::Threshold => CapReading::Threshold,
                CapsArg::Uncapped => CapReading::Uncapped,
            };
            let command = std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect::<Vec<_>>().join(" ");
            if rolling {
                config.theory_checks = false;
                let years = origins.map_or_else(|| sbd_train::eval::rolling::DEFAULT_ORIGINS.collect(), |y| y.0);
                let out = out.unwrap_or_else(|| train::default_out("experiment", "finance-rolling"));
                let outcome = sbd_cli::experiment::run_rolling(&years, &config, quick, &out, command, fresh, quiet)?;
                outln!("{} runs over {} origins in {:.1} min", outcome.runs, years.len(), outcome.seconds / 60.0)?;
                for c in &outcome.analysis.comparisons {
                    outln!(
                        "  {:<22} vs {:<20} Sharpe {:<26} won {} of {}, Holm p {:.3}",
                        c.ours.name(),
                        c.other.name(),
                        c.difference.show(4),
                        c.wins,
                        years.len(),
                        c.p_holm
                    )?;
                }
                outln!("wrote {}/{{{}}}", out.display(), outcome.files.join(", "))?;
                return Ok(EXIT_OK);
            }
            let out = out.unwrap_or_else(|| train::default_out("experiment", name));
            let outcome = sbd_cli::experiment::run_experiment(choice, &config, quick, &out, command, fresh, quiet)?;
            outln!("{} runs in {:.1} min", outcome.runs, outcome.seconds / 60.0)?;
            for (id, domain, holds) in &outcome.verdicts {
                outln!("  {:<22} {:<20} {}", id, domain, if *holds { "holds" } else { "FAILS" })?;
            }
            outln!("wrote {}/{{{}}}", out.display(), outcome.files.join(", "))?;
            Ok(EXIT_OK)
        }
        Command::Train { args, out } => {
            let out = out.unwrap_or_else(|| train::default_out("train", args.domain_name()));
            let options = FinanceOptions::default();
            let backend = match args.backend {
                BackendArg::Cpu => train::BackendChoice::Cpu,
                BackendArg::Gpu => train::BackendChoice::Gpu,
                BackendArg::Auto => train::BackendChoice::Auto,
            };
            let summary = train::train_finance(
                args.config(),
                backend,
                &options,
                args.data.as_deref(),
                &out,
                args.quiet,
            )?;
            let t = &summary.test;
            outln!(
                "trained {} outer steps in {:.1} s ({:.3} s per outer step) on {}",
                summary.outer_steps,
                summary.training_seconds,
                summary.seconds_per_outer_step,
                summary.backend
            )?;
            outln!(
                "test 2020-2022: Safety Rate {:.4}, Task Efficiency {:.4} (Sharpe {:.3}), max drawdown {:.3}, mean alpha {:.3}, mean lambda {:.3}",
                t.sbd.safety_rate,
                t.sbd.task_efficiency,
                t.sbd.sharpe,
                t.sbd.max_drawdown,
                t.mean_alpha,
                t.mean_lambda
            )?;
            outln!(
                "lambda: COVID window {:.3} vs calm 2018 {:.3} (difference {:+.3}, Cohen's d {:.2})",
                t.covid_mean_lambda, t.calm_mean_lambda, t.lambda_difference, t.cohens_d
            )?;
            outln!(
                "wrote {}/{{log.jsonl, loss.png, model.postcard, policy.toml, summary.json}}",
                out.display()
            )?;
            Ok(EXIT_OK)
        }
        Command::Theory {
            args,
            out,
            sweep_outer_steps,
            convergence_samples,
            convergence_steps,
            reference_steps,
            reference_iterations,
            chains,
            quick,
        } => {
            if matches!(args.backend, BackendArg::Gpu) {
                anyhow::bail!("`sbd theory` runs on the CPU trainer; `--backend gpu` applies to `sbd train`");
            }
            let out = out.unwrap_or_else(|| train::default_out("theory", args.domain_name()));
            let mut config = TheoryConfig {
                train: args.config(),
                sweep_outer_steps,
                convergence_samples,
                convergence_steps,
                reference_steps,
                reference_iterations,
                chains,
                ..TheoryConfig::default()
            };
            if quick {
                config.train.width = 32;
                config.train.batch = 64;
                config.train.inner_steps = 10;
                config.sweep_outer_steps = 20;
                config.convergence_samples = 128;
                config.convergence_steps = 50;
                config.reference_steps = 300;
                config.chains = 1000;
            }
            let report = train::theory_finance(
                &config,
                &FinanceOptions::default(),
                args.data.as_deref(),
                &out,
                args.quiet,
            )?;
            sbd_cli::output::print(&train::theory_markdown(&report, &config))?;
            outln!(
                "\nwrote {}/{{theory.md, theory.json, convergence.png, monotonicity.png}}",
                out.display()
            )?;
            Ok(EXIT_OK)
        }
    }
}

/// Replays `scenario` on the policy `source` names, or on `config` with `source`'s component.
fn replay(
    source: PolicySource,
    config: Option<&PolicyConfig>,
    scenario: &Scenario,
    json: bool,
    now: Option<u64>,
) -> anyhow::Result<()> {
    let (_runtime, policy) = match config {
        Some(config) => load_policy_with(config, &source)?,
        None => load_policy(&source)?,
    };
    let now = match now {
        Some(at) => Some(at),
        None if scenario.rebase_to_now => Some(unix_ms()?),
        None => None,
    };
    let moved;
    let scenario = match now {
        Some(at) => {
            moved = scenario.rebased(at)?;
            &moved
        }
        None => scenario,
    };
    let trace = scenario.replay(|request| policy.evaluate(request))?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&trace)?)?;
        return Ok(());
    }
    let info = policy.info();
    outln!("scenario `{}`: {}", scenario.name, scenario.description)?;
    outln!(
        "policy `{}` {} (configuration sha256 {}), component sha256 {}\n",
        info.name,
        info.version,
        &info.config_digest[..12.min(info.config_digest.len())],
        &policy.component_digest()[..12.min(policy.component_digest().len())]
    )?;
    let notes: Vec<String> = scenario.hops.iter().map(|h| h.note.clone()).collect();
    sbd_cli::output::print(&render::trace(&trace, &notes))?;
    Ok(())
}

/// The current time in Unix milliseconds.
fn unix_ms() -> anyhow::Result<u64> {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    u64::try_from(elapsed.as_millis()).context("the system clock is past the u64 range")
}

#[cfg(test)]
mod tests {
    use super::parse_years;

    #[test]
    fn origins_parse_as_lists_and_ranges() {
        let years = |text: &str| parse_years(text).map(|y| y.0);
        assert_eq!(years("2016-2018"), Ok(vec![2016, 2017, 2018]));
        assert_eq!(years(" 2008, 2016 "), Ok(vec![2008, 2016]));
        assert_eq!(years("2000-2001,2008"), Ok(vec![2000, 2001, 2008]));
        assert_eq!(years("2022-2016"), Err("2022-2016: the first year is after the last".into()));
        assert_eq!(years(""), Err("`` is not a year".into()));
        assert_eq!(years("20x0"), Err("`20x0` is not a year".into()));
    }
}

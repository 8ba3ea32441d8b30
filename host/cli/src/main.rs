//! `sbd`: evaluate delegations against a policy component, replay multi-hop scenarios, and run
//! the built-in demo.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sbd_cli::scenario::Scenario;
use sbd_cli::{DEMO_SCENARIO_JSON, PolicySource, load_policy, read_text, render, train};
use sbd_policy::{Reason, Request};
use sbd_train::experiment::{DomainChoice, ExperimentConfig};
use sbd_train::finance::FinanceOptions;
use sbd_train::objective::Objective;
use sbd_train::theory::TheoryConfig;
use sbd_train::trainer::{OuterOptimizer, TrainConfig};

/// The runtime safety layer for agent-to-agent delegation.
#[derive(Parser)]
#[command(name = "sbd", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay the built-in five-agent scenario on the default policy and component.
    Demo {
        /// Print the trace as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Decide one request (a JSON object) or a batch (a JSON array); prints JSON verdicts.
    Eval {
        #[command(flatten)]
        policy: PolicyArgs,
        /// The request file.
        #[arg(long, short)]
        request: PathBuf,
    },
    /// Replay a multi-hop scenario file and print each hop's verdict and the trace.
    Replay {
        #[command(flatten)]
        policy: PolicyArgs,
        /// The scenario file (see policies/scenarios/demo.json).
        #[arg(long, short)]
        scenario: PathBuf,
        /// Print the trace as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a policy's name, version, configuration digest and component digest.
    Info {
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// List every reason code a verdict can carry.
    Reasons,
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
        /// Number of seeds (0, 1, ...) [default: 3, or 2 with --quick].
        #[arg(long)]
        seeds: Option<u64>,
        /// T_out of every trained run [default: 300, or 8 with --quick].
        #[arg(long)]
        outer_steps: Option<usize>,
        /// Hidden width of phi and pi [default: 32, or 16 with --quick].
        #[arg(long)]
        width: Option<usize>,
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
        /// Inner steps run to approximate pi*.
        #[arg(long, default_value_t = 4000)]
        reference_steps: usize,
        /// Random chains per chain length for the accountability bound.
        #[arg(long, default_value_t = 10_000)]
        chains: usize,
        /// Small sizes for a smoke run: width 32, B 64, T_in 10, 20 sweep steps, 300 reference
        /// steps, 1,000 chains.
        #[arg(long)]
        quick: bool,
    },
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
    /// Seed of initialisation and sampling (runs are deterministic for a seed).
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
    /// auto: a discrete GPU if there is one, else the CPU.
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
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, whatever the causes' own formatting: scripts read the first line.
            let message = format!("{error:#}");
            let one_line: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            eprintln!("error: {}", one_line.join(" "));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen(args) => sbd_cli::bundle::keygen(&args),
        Command::Bundle { command } => sbd_cli::bundle::run_bundle(command),
        Command::Token { command } => sbd_cli::bundle::run_token(command),
        Command::Trace { command } => sbd_cli::trace::run(command),
        Command::Serve(args) => sbd_cli::serve::run(args),
        Command::Demo { json } => {
            let scenario = Scenario::from_json(DEMO_SCENARIO_JSON)?;
            replay(PolicySource::default(), &scenario, json)
        }
        Command::Eval { policy, request } => {
            let (_runtime, policy) = load_policy(&policy.source())?;
            let text = read_text(&request)?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("`{}` is not JSON", request.display()))?;
            let output = if value.is_array() {
                let requests: Vec<Request> = serde_json::from_value(value).with_context(|| {
                    format!("`{}` is not an array of delegation requests", request.display())
                })?;
                serde_json::to_string_pretty(&policy.evaluate_batch(&requests))?
            } else {
                let one: Request = serde_json::from_value(value)
                    .with_context(|| format!("`{}` is not a delegation request", request.display()))?;
                serde_json::to_string_pretty(&policy.evaluate(&one))?
            };
            println!("{output}");
            Ok(())
        }
        Command::Replay { policy, scenario, json } => {
            let parsed = Scenario::from_json(&read_text(&scenario)?)
                .with_context(|| format!("in `{}`", scenario.display()))?;
            replay(policy.source(), &parsed, json)
        }
        Command::Info { policy } => {
            let (_runtime, policy) = load_policy(&policy.source())?;
            let info = serde_json::json!({
                "policy": policy.info(),
                "component_sha256": policy.component_digest(),
            });
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(())
        }
        Command::Reasons => {
            println!("{:>5}  {:<28} {:<9} summary", "code", "name", "kind");
            for reason in Reason::ALL {
                println!(
                    "{:>5}  {:<28} {:<9} {}",
                    reason.code(),
                    reason.name(),
                    format!("{:?}", reason.kind()),
                    reason.summary()
                );
            }
            Ok(())
        }
        Command::Experiment { domain, out, quick, jobs, seeds, outer_steps, width, quiet } => {
            let (choice, name) = match domain {
                ExperimentDomain::All => (DomainChoice::All, "all"),
                ExperimentDomain::Finance => (DomainChoice::Finance, "finance"),
                ExperimentDomain::Medical => (DomainChoice::Medical, "medical"),
                ExperimentDomain::Education => (DomainChoice::Education, "education"),
            };
            let mut config = if quick { ExperimentConfig::quick() } else { ExperimentConfig::default() };
            config.jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
            if let Some(n) = seeds {
                config.seeds = (0..n).collect();
            }
            if let Some(t) = outer_steps {
                config.train.outer_steps = t;
            }
            if let Some(w) = width {
                config.train.width = w;
                config.theory.train.width = w;
            }
            let out = out.unwrap_or_else(|| train::default_out("experiment", name));
            let command = std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect::<Vec<_>>().join(" ");
            let outcome = sbd_cli::experiment::run_experiment(choice, &config, quick, &out, command, quiet)?;
            println!("{} runs in {:.1} min", outcome.runs, outcome.seconds / 60.0);
            for (id, domain, holds) in &outcome.verdicts {
                println!("  {:<22} {:<20} {}", id, domain, if *holds { "holds" } else { "FAILS" });
            }
            println!("wrote {}/{{{}}}", out.display(), outcome.files.join(", "));
            Ok(())
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
            println!(
                "trained {} outer steps in {:.1} s ({:.3} s per outer step) on {}",
                summary.outer_steps,
                summary.training_seconds,
                summary.seconds_per_outer_step,
                summary.backend
            );
            println!(
                "test 2020-2022: Safety Rate {:.4}, Task Efficiency {:.4} (Sharpe {:.3}), max drawdown {:.3}, mean alpha {:.3}, mean lambda {:.3}",
                t.sbd.safety_rate,
                t.sbd.task_efficiency,
                t.sbd.sharpe,
                t.sbd.max_drawdown,
                t.mean_alpha,
                t.mean_lambda
            );
            println!(
                "lambda: COVID window {:.3} vs calm 2018 {:.3} (difference {:+.3}, Cohen's d {:.2})",
                t.covid_mean_lambda, t.calm_mean_lambda, t.lambda_difference, t.cohens_d
            );
            println!(
                "wrote {}/{{log.jsonl, loss.png, model.postcard, policy.toml, summary.json}}",
                out.display()
            );
            Ok(())
        }
        Command::Theory {
            args,
            out,
            sweep_outer_steps,
            convergence_samples,
            convergence_steps,
            reference_steps,
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
            print!("{}", train::theory_markdown(&report, &config));
            println!(
                "\nwrote {}/{{theory.md, theory.json, convergence.png, monotonicity.png}}",
                out.display()
            );
            Ok(())
        }
    }
}

fn replay(source: PolicySource, scenario: &Scenario, json: bool) -> anyhow::Result<()> {
    let (_runtime, policy) = load_policy(&source)?;
    let trace = scenario.replay(|request| policy.evaluate(request))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&trace)?);
        return Ok(());
    }
    let info = policy.info();
    println!("scenario `{}`: {}", scenario.name, scenario.description);
    println!(
        "policy `{}` {} (configuration sha256 {}), component sha256 {}\n",
        info.name,
        info.version,
        &info.config_digest[..12.min(info.config_digest.len())],
        &policy.component_digest()[..12.min(policy.component_digest().len())]
    );
    let notes: Vec<String> = scenario.hops.iter().map(|h| h.note.clone()).collect();
    print!("{}", render::trace(&trace, &notes));
    Ok(())
}

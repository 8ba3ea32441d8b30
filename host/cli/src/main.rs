//! `sbd`: evaluate delegations against a policy component, replay multi-hop scenarios, and run
//! the built-in demo.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sbd_cli::scenario::Scenario;
use sbd_cli::{DEMO_SCENARIO_JSON, PolicySource, load_policy, read_text, render};
use sbd_policy::{Reason, Request};

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

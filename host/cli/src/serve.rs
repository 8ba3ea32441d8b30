//! `sbd serve`: runs the edge gateway (`sbd-gateway`) with zero setup: an embedded SQLite
//! store in the data directory (or Redis with `--store`), the embedded default policy, an
//! optional configuration file.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Arguments of `sbd serve`; each overrides the configuration file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The data directory (SQLite file, admin key, component cache) [default: ./sbd-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A TOML gateway configuration (every key optional; see host/gateway/src/config.rs).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the state lives instead of the embedded SQLite file: `redis://HOST:PORT[/DB]`, or
    /// `redis+cluster://HOST:PORT,HOST:PORT` for a Redis Cluster. Gateways on the same Redis
    /// (and `--store-prefix`) serve one state together.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The key prefix of the state on Redis [default: sbd].
    #[arg(long, value_name = "PREFIX")]
    pub store_prefix: Option<String>,
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// A TOML policy configuration instead of the embedded default policy.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Log warnings and errors only.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Installs the log subscriber the gateway would, but coloured only when stderr is a terminal
/// and `NO_COLOR` is unset, so redirected logs carry no ANSI escapes. The gateway's own set-up
/// then finds a subscriber installed and leaves it.
fn init_logging(config: &sbd_gateway::Config) {
    use std::io::IsTerminal;
    use std::str::FromStr;
    let level = tracing_subscriber::filter::LevelFilter::from_str(&config.log_level)
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    let color = crate::output::color(std::io::stderr().is_terminal());
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(color)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        sbd_gateway::config::LogFormat::Json => builder.json().flatten_event(true).try_init(),
        sbd_gateway::config::LogFormat::Text => builder.try_init(),
    };
}

/// Runs the gateway until Ctrl-C or SIGTERM; requests in flight finish first.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => sbd_gateway::Config::from_file(path)?,
        None => sbd_gateway::Config::default(),
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if args.store.is_some() {
        config.store = args.store;
    }
    if let Some(p) = args.store_prefix {
        config.store_prefix = p;
    }
    if let Some(a) = args.addr {
        config.addr = a;
    }
    if let Some(p) = args.policy {
        config.policy = Some(p);
    }
    if args.quiet {
        config.log_level = "warn".into();
    }
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(sbd_gateway::serve::run(config))?;
    Ok(())
}

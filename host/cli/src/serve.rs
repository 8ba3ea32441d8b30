//! `sbd serve`: runs the edge gateway (`sbd-gateway`) with zero setup: an embedded SQLite
//! store in the data directory, the embedded default policy, an optional configuration file.

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
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// A TOML policy configuration instead of the embedded default policy.
    #[arg(long)]
    pub policy: Option<PathBuf>,
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
    if let Some(a) = args.addr {
        config.addr = a;
    }
    if let Some(p) = args.policy {
        config.policy = Some(p);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(sbd_gateway::serve::run(config))?;
    Ok(())
}

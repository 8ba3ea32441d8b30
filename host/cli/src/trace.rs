//! `sbd trace`: check a chain export (the body of the gateway's `GET /v1/chains/{id}`) offline
//! against the gateway's public key.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use sbd_bundle::PublicKey;
use serde_json::{Value, json};

use crate::read_text;

/// `sbd trace` subcommands.
#[derive(Subcommand)]
pub enum TraceCommand {
    /// Verify a chain export offline: every event's hash chain, its audit path to a signed
    /// seal (or, for events from before seals, its signed head) and the stored head, with the
    /// gateway's public key. Prints the result as JSON; exits 1 naming
    /// the first bad event (edited, deleted, inserted, reordered, or a bad/missing signature).
    Verify {
        /// The export: the JSON body of `GET /v1/chains/{chain_id}`.
        #[arg(long)]
        export: PathBuf,
        /// The gateway's public key file (or its `gateway.key`, of which only the public half
        /// is read). The key named inside the export is never trusted.
        #[arg(long)]
        public_key: PathBuf,
    },
}

/// Runs one `sbd trace` subcommand.
pub fn run(command: TraceCommand) -> anyhow::Result<()> {
    match command {
        TraceCommand::Verify { export, public_key } => {
            let key = PublicKey::read(&public_key).context("the gateway's public key")?;
            let text = read_text(&export)?;
            let value: Value =
                serde_json::from_str(&text).with_context(|| format!("`{}` is not JSON", export.display()))?;
            match sbd_gateway::traces::verify_export(&value, &key) {
                Ok(events) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&json!({
                            "ok": true,
                            "chain_id": value["chain_id"],
                            "events": events,
                            "key_id": key.id().to_string(),
                        }))?
                    );
                    Ok(())
                }
                Err(b) => {
                    println!("{}", serde_json::to_string_pretty(&json!({"ok": false, "break": b}))?);
                    bail!("the trace of chain {} is {b}", value["chain_id"])
                }
            }
        }
    }
}

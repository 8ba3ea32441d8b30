//! The service configuration: an optional TOML file; every field has a default, so
//! `sbd serve` runs with none.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::limits::Limits;
use crate::store::SyncMode;

/// Everything `sbd serve` can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where to listen [default 127.0.0.1:7878, the port the Cycles clients default to].
    pub addr: SocketAddr,
    /// The data directory: the SQLite file, the admin key file, the component cache.
    pub data_dir: PathBuf,
    /// A TOML policy configuration; the embedded `policies/default.toml` when absent.
    pub policy: Option<PathBuf>,
    /// The bootstrap admin key (`X-Admin-API-Key`). Absent: `SBD_ADMIN_KEY` from the
    /// environment, else a random key minted on first start and written to
    /// `<data_dir>/admin.key` (mode 0600). Only its SHA-256 is stored.
    pub admin_key: Option<String>,
    /// Signed-bundle mode: a trust-store file (sbd-bundle format) of the keys that may sign
    /// policy bundles. Set, the policy comes from a verified bundle (`bundle`, or the
    /// last-known-good in `<data_dir>/bundles`) and `/v1/policies` manages bundles; unset,
    /// `policy` (or the embedded default) serves and `/v1/policies` answers 404.
    pub bundle_trust: Option<PathBuf>,
    /// The bundle directory to start from in signed-bundle mode.
    pub bundle: Option<PathBuf>,
    /// A trust-store file (sbd-bundle format) of other gateways whose delegation tokens this
    /// one accepts; its own key (`<data_dir>/gateway.key`) is always trusted.
    pub token_trust: Option<PathBuf>,
    /// Where the state lives: absent (the default), the embedded SQLite file in `data_dir`;
    /// `redis://HOST:PORT[/DB]` for one Redis server, or `redis+cluster://HOST:PORT,HOST:PORT`
    /// for a Redis Cluster (the nodes to start from). Gateways given the same Redis and
    /// `store_prefix` serve one state together.
    pub store: Option<String>,
    /// The key prefix of the state on Redis [default `sbd`]; no `{` or `}`.
    pub store_prefix: String,
    /// SQLite's sync mode: `normal` (survives a process crash; the default) or `full` (also a
    /// power loss).
    pub synchronous: SyncMode,
    /// How often the expiry sweeper runs, milliseconds.
    pub sweep_interval_ms: u64,
    /// Default TTL of an escalation request, milliseconds (the Vorion default: 5 minutes).
    pub escalation_ttl_ms: i64,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
    /// Every bound the gateway enforces (`[limits]`), the policy runtime's included.
    pub limits: Limits,
    /// Log level filter: `error`, `warn`, `info`, `debug`, `trace`.
    pub log_level: String,
    /// Webhook delivery (`[webhooks]`): where webhooks may point and how they are sent.
    pub webhooks: crate::webhooks::WebhookSettings,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 7878)),
            data_dir: PathBuf::from("sbd-data"),
            policy: None,
            admin_key: None,
            token_trust: None,
            bundle_trust: None,
            bundle: None,
            store: None,
            store_prefix: "sbd".into(),
            synchronous: SyncMode::Normal,
            limits: Limits::default(),
            sweep_interval_ms: 1000,
            escalation_ttl_ms: 5 * 60 * 1000,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            webhooks: crate::webhooks::WebhookSettings::default(),
        }
    }
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("`{path}` is not a valid gateway configuration: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads `path`; relative paths inside it stay relative to the working directory.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Config::from_toml(&text).map_err(|message| ConfigError::Parse { path: path.into(), message })
    }

    /// Parses TOML text and checks the limits.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e: toml::de::Error| e.message().trim().to_string())?;
        config.limits.validate()?;
        config.webhooks.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults_and_unknown_keys_are_refused() {
        let c = Config::from_toml("").unwrap_or_default();
        assert_eq!(c.addr.port(), 7878);
        assert_eq!(c.escalation_ttl_ms, 300_000);
        assert!(Config::from_toml("adr = \"x\"").is_err());
        let c = Config::from_toml("synchronous = \"full\"\n[limits]\nmax_body_bytes = 4096\n[limits.runtime]\ncall_timeout_ms = 20")
            .unwrap_or_default();
        assert_eq!(c.synchronous, SyncMode::Full);
        assert_eq!(c.limits.max_body_bytes, 4096);
        assert_eq!(c.limits.runtime.to_runtime().call_timeout, std::time::Duration::from_millis(20));
        let e = Config::from_toml("[limits]\nmax_body_bytes = 10").unwrap_err();
        assert!(e.contains("`limits.max_body_bytes`"), "{e}");
        assert!(Config::from_toml("[limits.request]\nmax_txt_bytes = 10").is_err(), "unknown limit refused");
        let c = Config::from_toml("[webhooks]\nallow_http = true\nblocked_cidr_ranges = []").unwrap_or_default();
        assert!(c.webhooks.allow_http && c.webhooks.blocked_cidr_ranges.is_empty());
        let e = Config::from_toml("[webhooks]\nblocked_cidr_ranges = [\"10.0.0.0/99\"]").unwrap_err();
        assert!(e.contains("`webhooks.blocked_cidr_ranges`"), "{e}");
        let e = Config::from_toml("[webhooks]\npoll_interval_ms = 0").unwrap_err();
        assert!(e.contains("`webhooks.poll_interval_ms`"), "{e}");
    }
}

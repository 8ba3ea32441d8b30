//! Starting the service: configuration, logging, the store, the bootstrap admin key, the
//! policy, the listener, the sweeper, and a graceful shutdown that lets requests in flight
//! finish.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::{Config, LogFormat};
use crate::metrics::Metrics;
use crate::policy::{parse_config, PolicyHandle, StaticPolicy, DEFAULT_POLICY_TOML};
use crate::server::{app, load_keys, spawn_sweeper, AppState, Shared};
use crate::backend::{Backend, ADMIN_KEY_SETTING, SIGNING_KEY_SETTING};
use crate::store::{self, Store};
use crate::util::{random_hex, sha256_hex};

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyLoadError),
    /// Reading a file failed.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the admin key file failed.
    #[error("cannot write the admin key to `{path}`: {source}")]
    AdminKey {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A limit of the configuration is out of its range.
    #[error("configuration: {0}")]
    Limits(String),
    /// A startup query failed.
    #[error("store: {0}")]
    Startup(crate::error::GatewayError),
    /// The token keys could not be set up.
    #[error(transparent)]
    Tokens(#[from] crate::tokens::TokenSetupError),
    /// Signed-bundle mode could not start (fails closed: nothing to serve).
    #[error("signed-bundle mode: {0}")]
    Bundle(String),
    /// Metrics registration failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Binding or serving failed.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Installs the global log subscriber per `config` (once; later calls are no-ops).
pub fn init_logging(config: &Config) {
    let level = config.log_level.parse::<tracing::Level>().unwrap_or(tracing::Level::INFO);
    let builder = tracing_subscriber::fmt().with_max_level(level).with_target(false).with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The admin key: from the configuration, `SBD_ADMIN_KEY`, the stored hash, or minted on
/// first start (printed once on stderr and written to `<data_dir>/admin.key`, mode 0600).
async fn admin_key_hash(config: &Config, store: &Backend) -> Result<String, ServeError> {
    let given = config.admin_key.clone().or_else(|| std::env::var("SBD_ADMIN_KEY").ok().filter(|k| !k.is_empty()));
    if let Some(key) = given {
        let hash = sha256_hex(key.as_bytes());
        store.set_setting(ADMIN_KEY_SETTING, hash.clone()).await.map_err(ServeError::Startup)?;
        return Ok(hash);
    }
    if let Some(hash) = store.setting(ADMIN_KEY_SETTING).await.map_err(ServeError::Startup)? {
        return Ok(hash);
    }
    let key = format!("sbd_admin_{}", random_hex(24));
    let hash = sha256_hex(key.as_bytes());
    // gateways starting at once on one Redis agree on the first key minted; one whose key lost
    // neither writes nor shows it (the winner's data directory has the key)
    let kept = store.claim_setting(ADMIN_KEY_SETTING, hash.clone()).await.map_err(ServeError::Startup)?;
    if kept != hash {
        return Ok(kept);
    }
    let path = config.data_dir.join("admin.key");
    if let Err(source) = write_private(&path, &key) {
        // no one would know the key the store now names: undo the claim, so the next start
        // mints one again
        store.unclaim_setting(ADMIN_KEY_SETTING, hash).await.map_err(ServeError::Startup)?;
        return Err(ServeError::AdminKey { path: path.display().to_string(), source });
    }
    eprintln!("sbd: minted the admin key (X-Admin-API-Key), shown once and saved to {}:\n{key}", path.display());
    Ok(hash)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}

fn start_hot(config: &Config, trust_path: &Path, cache: &Path) -> Result<crate::hot::HotBundles, ServeError> {
    let trust = sbd_bundle::TrustStore::read(trust_path).map_err(|e| ServeError::Bundle(e.to_string()))?;
    let runtime = sbd_runtime::PolicyRuntime::new(config.limits.runtime.to_runtime())
        .map_err(|e| ServeError::Bundle(e.to_string()))?;
    let options = sbd_bundle::HotOptions {
        state_dir: Some(config.data_dir.join("bundles")),
        cache: Some(sbd_runtime::ComponentCache::new(cache)),
    };
    let hot = match &config.bundle {
        Some(dir) => {
            let (hot, refused) = sbd_bundle::HotPolicy::start_with(runtime, trust, options, dir)
                .map_err(|e| ServeError::Bundle(e.to_string()))?;
            if let Some(e) = refused {
                tracing::warn!(error = %e, bundle = %dir.display(), "the configured bundle was refused; serving the last-known-good");
            }
            hot
        }
        None => sbd_bundle::HotPolicy::start(runtime, trust, options).map_err(|e| ServeError::Bundle(e.to_string()))?,
    };
    Ok(crate::hot::HotBundles::new(hot))
}

/// Opens the configured backend: Redis when `store` names one, else the embedded SQLite file
/// in the data directory (created if needed).
fn open_backend(config: &Config) -> Result<Backend, ServeError> {
    match config.store.as_deref() {
        None => Ok(Backend::Sqlite(Store::open(&config.data_dir, config.synchronous)?)),
        Some(url) if url.starts_with("redis://") || url.starts_with(crate::ledger::redis::CLUSTER_SCHEME) => {
            let redis = crate::ledger::redis::RedisLedger::open(url, &config.store_prefix).map_err(ServeError::Startup)?;
            // the data directory still holds the admin key file, the token key and the caches
            std::fs::create_dir_all(&config.data_dir)
                .map_err(|source| ServeError::Store(store::StoreError::DataDir { path: config.data_dir.clone(), source }))?;
            Ok(Backend::Redis(Arc::new(redis)))
        }
        Some(other) => Err(ServeError::Limits(format!(
            "`store`: `{}` is not a store URL (expected `redis://HOST:PORT` (no TLS: `rediss://` is not supported), or `{}HOST:PORT,HOST:PORT` for a Cluster; leave it unset for the embedded SQLite store)",
            crate::ledger::redis::hide_password(other),
            crate::ledger::redis::CLUSTER_SCHEME
        ))),
    }
}

/// Refuses to start a gateway whose signing key differs from the one the state's trace is
/// sealed with: gateways sharing one Redis must share the key (seals, receipts and chain
/// exports verify against it). The first gateway on a state records its key's public half.
async fn check_signing_key(store: &Backend, tokens: &crate::tokens::TokenAuthority) -> Result<(), ServeError> {
    let mine = crate::util::hex(&tokens.public_key().to_bytes());
    let recorded = store.claim_setting(SIGNING_KEY_SETTING, mine.clone()).await.map_err(ServeError::Startup)?;
    if recorded != mine {
        return Err(ServeError::Startup(crate::error::GatewayError::invalid(format!(
            "this gateway's signing key (`gateway.key` in the data directory, public key {mine}) is not the key the state is sealed with ({recorded}): gateways that share a store must share `gateway.key`"
        ))));
    }
    Ok(())
}

/// Builds the shared state: store, keys, trust scores, policy, metrics.
pub async fn build_state(config: Config) -> Result<Shared, ServeError> {
    // A configuration built in code (not read from a file) is checked here too.
    config.limits.validate().map_err(ServeError::Limits)?;
    let store = open_backend(&config)?;
    store.ping().await.map_err(ServeError::Startup)?;
    let admin_key_hash = admin_key_hash(&config, &store).await?;
    let keys = load_keys(&store).await.map_err(ServeError::Startup)?;
    let policy_config = match &config.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ServeError::Read { path: path.display().to_string(), source })?;
            parse_config(&text, &path.display().to_string())?
        }
        None => parse_config(DEFAULT_POLICY_TOML, "policies/default.toml")?,
    };
    let cache = config.data_dir.join("component-cache");
    let (policy, bundles): (Arc<dyn PolicyHandle>, Option<Arc<dyn crate::bundles::BundleManager>>) =
        match &config.bundle_trust {
            None => (Arc::new(StaticPolicy::load(&policy_config, Some(&cache), config.limits.runtime.to_runtime())?), None),
            Some(trust_path) => {
                let hot = Arc::new(start_hot(&config, trust_path, &cache)?);
                (Arc::clone(&hot) as Arc<dyn PolicyHandle>, Some(hot as Arc<dyn crate::bundles::BundleManager>))
            }
        };
    let metrics = Metrics::new()?;
    metrics.set_policy(&policy.version());
    let tokens = crate::tokens::TokenAuthority::load_or_create(&config.data_dir, config.token_trust.as_deref())?;
    check_signing_key(&store, &tokens).await?;
    let webhooks = crate::dispatch::Sender::new(config.webhooks.clone()).map_err(ServeError::Limits)?;
    Ok(Arc::new(AppState {
        store,
        policy,
        metrics,
        admin_key_hash,
        keys: RwLock::new(keys),
        key_changes: std::sync::atomic::AtomicU64::new(0),
        config,
        tokens,
        bundles,
        webhooks,
    }))
}

/// Serves until Ctrl-C or SIGTERM; requests in flight finish before it returns.
pub async fn run(config: Config) -> Result<(), ServeError> {
    init_logging(&config);
    let addr = config.addr;
    let sweep = Duration::from_millis(config.sweep_interval_ms.max(10));
    let state = build_state(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io { addr: addr.to_string(), source })?;
    let local = listener.local_addr().map_err(|source| ServeError::Io { addr: addr.to_string(), source })?;
    let sweeper = spawn_sweeper(Arc::clone(&state), sweep);
    let dispatcher = crate::dispatch::spawn(state.store.clone(), state.webhooks.clone());
    let v = state.policy.version();
    tracing::info!(
        addr = %local,
        store = %state.store.describe(),
        policy = %v.label(),
        "sbd gateway listening"
    );
    // A line tests and scripts can wait for.
    eprintln!("sbd: listening on http://{local}");
    axum::serve(listener, app(Arc::clone(&state)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|source| ServeError::Io { addr: local.to_string(), source })?;
    sweeper.abort();
    dispatcher.abort();
    tracing::info!("sbd gateway stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}


/// A running gateway started by [`start`].
pub struct Running {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its state.
    pub state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown; waits for requests in flight.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Starts a gateway on the current tokio runtime (for tests, benchmarks and embedding):
/// bind `config.addr` (port 0 picks one), serve, sweep.
pub async fn start(config: Config) -> Result<Running, ServeError> {
    let addr = config.addr;
    let sweep = Duration::from_millis(config.sweep_interval_ms.max(10));
    let state = build_state(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io { addr: addr.to_string(), source })?;
    let local = listener.local_addr().map_err(|source| ServeError::Io { addr: addr.to_string(), source })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = app(Arc::clone(&state));
    let sweeper_state = Arc::clone(&state);
    let task = tokio::spawn(async move {
        let dispatcher = crate::dispatch::spawn(sweeper_state.store.clone(), sweeper_state.webhooks.clone());
        let sweeper = spawn_sweeper(sweeper_state, sweep);
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        sweeper.abort();
        dispatcher.abort();
    });
    Ok(Running { addr: local, state, stop: Some(tx), task })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// A first start whose admin key cannot be written (a stale `admin.key` beside an empty
    /// store) fails, and leaves no digest of an unknown key in the store: the next start, the
    /// stale file gone, mints a key that is written and accepted.
    #[tokio::test]
    async fn a_minted_admin_key_that_cannot_be_written_is_not_kept() {
        if std::env::var("SBD_ADMIN_KEY").is_ok_and(|k| !k.is_empty()) {
            panic!("SBD_ADMIN_KEY is set in the test's environment; this test mints a key");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.key"), "stale\n").unwrap();
        let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        let Err(ServeError::AdminKey { .. }) = build_state(config.clone()).await else {
            panic!("the start went on without writing its admin key");
        };
        std::fs::remove_file(dir.path().join("admin.key")).unwrap();
        let state = build_state(config).await.unwrap();
        let written = std::fs::read_to_string(dir.path().join("admin.key")).unwrap();
        assert_eq!(state.admin_key_hash, sha256_hex(written.trim().as_bytes()), "the key on disk is the one the store names");
    }
}

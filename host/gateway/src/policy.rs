//! The gateway's view of the policy: the active [`LoadedPolicy`] and its version behind one
//! small trait, so the decision path does not care whether the policy came from a file or a
//! signed bundle with hot swap.

use std::path::Path;
use std::sync::{Arc, RwLock};

use sbd_policy::{Outcome, PolicyConfig, Request, TrustDelta, Verdict};
use sbd_runtime::{ComponentCache, LoadedPolicy, PolicyRuntime, RuntimeLimits, DEFAULT_COMPONENT};
use serde::Serialize;

/// The default policy configuration, embedded (`policies/default.toml`).
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../../policies/default.toml");

/// What identifies the policy that made a decision; every trace event records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyVersion {
    /// Name from the configuration.
    pub name: String,
    /// Version from the configuration.
    pub version: String,
    /// Hex SHA-256 of the configuration bytes.
    pub config_digest: String,
    /// Hex SHA-256 of the component.
    pub component_digest: String,
}

impl PolicyVersion {
    /// `name@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// The active policy as the gateway uses it.
pub trait PolicyHandle: Send + Sync + 'static {
    /// Decides `request` with the active policy; never fails (a fault is a deny). Returns the
    /// version that decided.
    fn evaluate(&self, request: &Request) -> (Verdict, PolicyVersion);
    /// Penalty propagation of the active policy; a fault is an error (the caller changes
    /// nothing).
    fn trust_deltas(&self, chain: &[String], outcome: Outcome) -> Result<Vec<TrustDelta>, String>;
    /// The active version.
    fn version(&self) -> PolicyVersion;
}

/// Errors loading a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyLoadError {
    /// The TOML configuration is not valid.
    #[error("`{origin}` is not a valid policy configuration: {message}")]
    Config {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The runtime refused the component or configuration.
    #[error("cannot load the policy component: {0}")]
    Runtime(#[from] sbd_runtime::RuntimeError),
}

/// Parses and validates a TOML policy configuration.
pub fn parse_config(text: &str, origin: &str) -> Result<PolicyConfig, PolicyLoadError> {
    let config: PolicyConfig = toml::from_str(text)
        .map_err(|e| PolicyLoadError::Config { origin: origin.into(), message: e.message().trim().to_string() })?;
    config.validate().map_err(|e| PolicyLoadError::Config { origin: origin.into(), message: e.to_string() })?;
    Ok(config)
}

struct Active {
    policy: LoadedPolicy,
    version: PolicyVersion,
}

/// A policy loaded once (the default component with a TOML configuration); it can be replaced
/// with [`StaticPolicy::replace`].
pub struct StaticPolicy {
    runtime: PolicyRuntime,
    active: RwLock<Arc<Active>>,
}

impl StaticPolicy {
    /// Loads `config` into the embedded default component, run under `limits`; `cache_dir`
    /// keeps the precompiled component between starts.
    pub fn load(config: &PolicyConfig, cache_dir: Option<&Path>, limits: RuntimeLimits) -> Result<StaticPolicy, PolicyLoadError> {
        let runtime = PolicyRuntime::new(limits)?;
        let component = match cache_dir {
            Some(dir) => runtime.load_cached(DEFAULT_COMPONENT, &ComponentCache::new(dir))?,
            None => runtime.load_component(DEFAULT_COMPONENT)?,
        };
        let bytes = config
            .to_bytes()
            .map_err(|e| PolicyLoadError::Config { origin: "configuration".into(), message: e.to_string() })?;
        let policy = runtime.instantiate(&component, &bytes)?;
        let active = Arc::new(Active { version: version_of(&policy), policy });
        Ok(StaticPolicy { runtime, active: RwLock::new(active) })
    }

    /// The runtime, for loading more components.
    pub fn runtime(&self) -> &PolicyRuntime {
        &self.runtime
    }

    /// Makes `policy` the active one.
    pub fn replace(&self, policy: LoadedPolicy) {
        let active = Arc::new(Active { version: version_of(&policy), policy });
        match self.active.write() {
            Ok(mut guard) => *guard = active,
            Err(poisoned) => *poisoned.into_inner() = active,
        }
    }

    fn current(&self) -> Arc<Active> {
        match self.active.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// The version of a loaded policy.
pub fn version_of(policy: &LoadedPolicy) -> PolicyVersion {
    let info = policy.info();
    PolicyVersion {
        name: info.name.clone(),
        version: info.version.clone(),
        config_digest: info.config_digest.clone(),
        component_digest: policy.component_digest().to_string(),
    }
}

impl PolicyHandle for StaticPolicy {
    fn evaluate(&self, request: &Request) -> (Verdict, PolicyVersion) {
        let active = self.current();
        (active.policy.evaluate(request), active.version.clone())
    }

    fn trust_deltas(&self, chain: &[String], outcome: Outcome) -> Result<Vec<TrustDelta>, String> {
        self.current().policy.trust_deltas(chain, outcome).map_err(|e| e.to_string())
    }

    fn version(&self) -> PolicyVersion {
        self.current().version.clone()
    }
}

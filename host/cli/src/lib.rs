//! The library behind the `sbd` command: loading a policy (configuration plus component),
//! scenarios, and rendering verdicts for people.

pub mod bundle;
pub mod check;
pub mod experiment;
pub mod output;
pub mod render;
pub mod scenario;
pub mod schema;
pub mod serve;
pub mod trace;
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::Context;
use sbd_policy::PolicyConfig;
use sbd_policy::learned::LearnedModel;
use sbd_runtime::{ComponentCache, LoadedPolicy, PolicyRuntime, RuntimeLimits};

/// The default policy configuration, embedded.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../../policies/default.toml");

/// The demo scenario, embedded.
pub const DEMO_SCENARIO_JSON: &str = include_str!("../../../policies/scenarios/demo.json");

/// The risk-tightened authority policy (`sbd.risk_bands`), embedded for `sbd demo risk-depth`.
pub const RISK_DEPTH_POLICY_TOML: &str = include_str!("../../../policies/risk-depth.toml");

/// The risk-tightened authority scenario, embedded for `sbd demo risk-depth`.
pub const RISK_DEPTH_SCENARIO_JSON: &str = include_str!("../../../policies/scenarios/risk-depth.json");

/// Where a policy comes from.
#[derive(Debug, Clone, Default)]
pub struct PolicySource {
    /// A TOML configuration; the embedded default when `None`.
    pub config: Option<PathBuf>,
    /// A component file; the embedded default component when `None`.
    pub component: Option<PathBuf>,
    /// A precompile cache directory; no cache when `None`.
    pub cache: Option<PathBuf>,
}

/// Parses a TOML policy configuration and validates it. Errors are one line: the file, the
/// position and what is wrong there (toml's own rendering spans several lines).
///
/// `sbd.model_file`, if present, names a postcard [`LearnedModel`] (written by `sbd train`)
/// relative to `base_dir`; it is read and carried inside the configuration.
pub fn parse_config_at(text: &str, origin: &str, base_dir: &Path) -> anyhow::Result<PolicyConfig> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| toml_error(text, origin, &e))?;
    let model_file = match table.get_mut("sbd").and_then(toml::Value::as_table_mut) {
        Some(sbd) => match sbd.remove("model_file") {
            Some(toml::Value::String(file)) => Some(file),
            Some(_) => anyhow::bail!("`{origin}`: `sbd.model_file` must be a string (a file path)"),
            None => None,
        },
        None => None,
    };
    let Some(model_file) = model_file else {
        return parse_config(text, origin);
    };
    let mut config: PolicyConfig = table.try_into().map_err(|e: toml::de::Error| {
        anyhow::anyhow!("`{origin}` is not a valid policy configuration: {}", e.message().trim())
    })?;
    let path = base_dir.join(&model_file);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("cannot read the model `{}` named by `{origin}`", path.display()))?;
    let model: LearnedModel = postcard::from_bytes(&bytes)
        .map_err(|e| anyhow::anyhow!("`{}` is not a trained SBD model (postcard): {e}", path.display()))?;
    config.sbd.model = Some(model);
    config.validate().with_context(|| format!("`{origin}` is not a valid policy configuration"))?;
    Ok(config)
}

fn toml_error(text: &str, origin: &str, e: &toml::de::Error) -> anyhow::Error {
    let position = e.span().map_or_else(String::new, |span| {
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!(" at line {line}, column {column}")
    });
    anyhow::anyhow!("`{origin}` is not a valid policy configuration{position}: {}", e.message().trim())
}

/// Parses a self-contained TOML policy configuration (no model file) and validates it.
pub fn parse_config(text: &str, origin: &str) -> anyhow::Result<PolicyConfig> {
    let config: PolicyConfig = toml::from_str(text).map_err(|e| toml_error(text, origin, &e))?;
    config.validate().with_context(|| format!("`{origin}` is not a valid policy configuration"))?;
    Ok(config)
}

/// Loads the configuration and component named by `source` into a running policy.
pub fn load_policy(source: &PolicySource) -> anyhow::Result<(PolicyRuntime, LoadedPolicy)> {
    let config = match &source.config {
        Some(path) => parse_config_at(
            &read_text(path)?,
            &path.display().to_string(),
            path.parent().unwrap_or_else(|| Path::new(".")),
        )?,
        None => parse_config(DEFAULT_POLICY_TOML, "policies/default.toml")?,
    };
    load_policy_with(&config, source)
}

/// Loads `config` (instead of the one `source` names) with the component and cache `source`
/// names into a running policy.
pub fn load_policy_with(
    config: &PolicyConfig,
    source: &PolicySource,
) -> anyhow::Result<(PolicyRuntime, LoadedPolicy)> {
    let component_bytes = match &source.component {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read component `{}`", path.display()))?
        }
        None => sbd_runtime::DEFAULT_COMPONENT.to_vec(),
    };
    let runtime = PolicyRuntime::new(RuntimeLimits::default())?;
    let component = match &source.cache {
        Some(dir) => runtime.load_cached(&component_bytes, &ComponentCache::new(dir))?,
        None => runtime.load_component(&component_bytes)?,
    };
    let policy = runtime.instantiate(&component, &config.to_bytes()?)?;
    Ok((runtime, policy))
}

/// Reads a UTF-8 file, naming it in the error; `-` reads standard input.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
            .context("cannot read standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))
}

/// The name of an input in messages: the path, or `standard input` for `-`.
pub fn input_name(path: &Path) -> String {
    if path.as_os_str() == "-" { "standard input".to_string() } else { path.display().to_string() }
}

//! Policy configuration: depth limits, trust requirements, escalation targets and the SBD
//! constraint set. Written as TOML by people, carried to the component as postcard bytes.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

use crate::learned::LearnedModel;
use crate::model::{RiskLevel, TrustTier};

/// One value per risk level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RiskTable<T> {
    /// For low-risk tasks.
    pub low: T,
    /// For medium-risk tasks.
    pub medium: T,
    /// For high-risk tasks.
    pub high: T,
    /// For critical tasks.
    pub critical: T,
}

impl<T: Copy> RiskTable<T> {
    /// The value for `risk`.
    pub fn get(&self, risk: RiskLevel) -> T {
        match risk {
            RiskLevel::Low => self.low,
            RiskLevel::Medium => self.medium,
            RiskLevel::High => self.high,
            RiskLevel::Critical => self.critical,
        }
    }

    fn each(&self) -> [(&'static str, T); 4] {
        [("low", self.low), ("medium", self.medium), ("high", self.high), ("critical", self.critical)]
    }
}

/// Depth governance (AG-396 4.1, 4.8-4.10, 4.12).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct DepthConfig {
    /// Maximum hops from the originator (4.1). Default 5, as in Vorion.
    pub max_depth: u8,
    /// Lower maxima per task risk (4.8); the effective limit is the smaller of the two.
    pub max_depth_by_risk: RiskTable<u8>,
    /// Warn once a hop reaches this fraction of the limit (4.9). Default 0.75.
    pub warning_ratio: f64,
    /// The most extra hops a human-approved exception may add (4.12).
    pub max_exception_extra: u8,
    /// Who may approve a depth exception besides `escalation.human` (4.12).
    pub exception_approvers: Vec<String>,
    /// Wall-clock limit for the whole chain, from its first hop (4.10). Default 15 minutes.
    pub chain_deadline_ms: u64,
}

impl Default for DepthConfig {
    fn default() -> Self {
        DepthConfig {
            max_depth: 5,
            // AG-396 section 5: financial chains of 3, clinical and physical chains of 2.
            max_depth_by_risk: RiskTable { low: 5, medium: 4, high: 3, critical: 2 },
            warning_ratio: 0.75,
            max_exception_extra: 2,
            exception_approvers: Vec::new(),
            chain_deadline_ms: 15 * 60 * 1000,
        }
    }
}

/// What to do when the executor's tier is below the task's requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum InsufficientTrust {
    /// Refuse with `trust-insufficient`.
    Deny,
    /// Escalate upward to a qualified agent, or a human when none qualifies.
    Escalate,
}

/// Trust requirements (Vorion delegation docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// The lowest executor tier that may perform a task of each risk.
    pub required_tier: RiskTable<TrustTier>,
    /// Deny or escalate when the executor falls short.
    pub on_insufficient: InsufficientTrust,
    /// On failure, penalise every agent in the chain (true) or only the executor (false).
    pub penalty_propagation: bool,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            // Vorion: a HIGH-risk action requires T4+.
            required_tier: RiskTable {
                low: TrustTier::T1,
                medium: TrustTier::T3,
                high: TrustTier::T4,
                critical: TrustTier::T5,
            },
            on_insufficient: InsufficientTrust::Escalate,
            penalty_propagation: true,
        }
    }
}

/// An agent registered to receive upward escalations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EscalationAgent {
    /// Identifier.
    pub id: String,
    /// Its own trust score.
    pub trust: u16,
}

/// Where escalations go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct EscalationConfig {
    /// The designated human authority (AG-396 4.4).
    pub human: String,
    /// Agents that accept upward escalations, tried highest trust first.
    pub agents: Vec<EscalationAgent>,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig { human: "human-oversight".to_string(), agents: Vec::new() }
    }
}

/// One clause of the safe set: when `state[feature] > above`, alpha may not exceed `alpha_max`
/// (SBD section 5.3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AlphaCap {
    /// Index into the state vector.
    pub feature: u32,
    /// The threshold above which the cap applies.
    pub above: f64,
    /// The cap, in [0, 1].
    pub alpha_max: f64,
}

/// One band of risk-tightened authority (`sbd.risk_bands`): in a state whose risk signal
/// `rho(s) = max(lambda(s), 1 - alpha_max(s))` is at least `at_least`, the maximum depth is at
/// most `max_depth` and the review threshold at least `review_threshold` (AG-396 Advanced,
/// dynamic depth adjustment based on risk signals), as computed by `sbd::tighten`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RiskBand {
    /// The band applies when the risk signal rho(s) is at least this, in [0, 1].
    pub at_least: f64,
    /// The maximum depth in the band, 1 to `depth.max_depth`; none: the depth is not tightened.
    #[serde(default)]
    pub max_depth: Option<u8>,
    /// The review threshold in the band, from `sbd.review_threshold` to 1; none: not raised.
    #[serde(default)]
    pub review_threshold: Option<f64>,
}

/// The SBD runtime pieces: degree and safety weight per risk tier (used until trained
/// networks exist), the trained networks when they do, the safe set, and the review threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct SbdConfig {
    /// Delegation degree alpha proposed per risk level.
    pub alpha: RiskTable<f64>,
    /// Safety weight lambda per risk level.
    pub lambda: RiskTable<f64>,
    /// A projected alpha below this goes to a human reviewer.
    pub review_threshold: f64,
    /// Required state-vector length, if fixed.
    pub state_dim: Option<u32>,
    /// The safe set as alpha caps on the state (SBD 5.3).
    pub alpha_caps: Vec<AlphaCap>,
    /// Trained phi and pi networks. When present they give lambda, the sub-agent and alpha
    /// (before projection) instead of the per-risk tables, and the state must match their
    /// input length.
    pub model: Option<LearnedModel>,
    /// Risk-tightened authority: bands, from calm to stressed, that lower the maximum depth and
    /// raise the review threshold as the state's risk signal rises. Empty (the default): off.
    pub risk_bands: Vec<RiskBand>,
}

impl Default for SbdConfig {
    fn default() -> Self {
        SbdConfig {
            alpha: RiskTable { low: 0.9, medium: 0.7, high: 0.5, critical: 0.3 },
            lambda: RiskTable { low: 0.2, medium: 0.4, high: 0.7, critical: 0.9 },
            review_threshold: 0.25,
            state_dim: None,
            alpha_caps: Vec::new(),
            model: None,
            risk_bands: Vec::new(),
        }
    }
}

/// The text formats [`PolicyConfig::from_text`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// JSON, in the form of `schema/policy.schema.json`.
    Json,
    /// TOML, as in `policies/*.toml`.
    Toml,
}

/// Refuses a NaN or infinite float anywhere in a TOML value, naming its JSON path.
fn finite_floats(value: &toml::Value, at: &str) -> Result<(), ConfigError> {
    match value {
        toml::Value::Float(x) if !x.is_finite() => {
            Err(ConfigError::new(format!("{at}: {x} is not a finite number")))
        }
        toml::Value::Array(items) => {
            items.iter().enumerate().try_for_each(|(i, item)| finite_floats(item, &format!("{at}[{i}]")))
        }
        toml::Value::Table(table) => {
            table.iter().try_for_each(|(key, item)| finite_floats(item, &format!("{at}.{key}")))
        }
        _ => Ok(()),
    }
}

/// A TOML error on one line: the position, then what is wrong there (toml's own rendering
/// spans several lines).
fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let position = e.span().map_or_else(String::new, |span| {
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("at line {line}, column {column}: ")
    });
    ConfigError::new(format!("{position}{}", e.message().trim()))
}

/// A whole policy configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy name.
    pub name: String,
    /// Policy version.
    pub version: String,
    /// Depth governance.
    #[serde(default)]
    pub depth: DepthConfig,
    /// Trust requirements.
    #[serde(default)]
    pub trust: TrustConfig,
    /// Escalation targets.
    #[serde(default)]
    pub escalation: EscalationConfig,
    /// SBD runtime pieces.
    #[serde(default)]
    pub sbd: SbdConfig,
}

impl PolicyConfig {
    /// A configuration with every default and this name and version.
    pub fn named(name: &str, version: &str) -> PolicyConfig {
        PolicyConfig {
            name: name.to_string(),
            version: version.to_string(),
            depth: DepthConfig::default(),
            trust: TrustConfig::default(),
            escalation: EscalationConfig::default(),
            sbd: SbdConfig::default(),
        }
    }

    /// The postcard bytes the component is built from.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ConfigError> {
        postcard::to_allocvec(self).map_err(|e| ConfigError::new(format!("cannot encode configuration: {e}")))
    }

    /// Decodes and validates postcard bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<PolicyConfig, ConfigError> {
        let config: PolicyConfig = postcard::from_bytes(bytes).map_err(|e| {
            ConfigError::new(format!("configuration bytes are not a postcard policy configuration: {e}"))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a configuration as people write it, strictly (an unknown key is refused, and an
    /// error names where it is), and validates it: TOML (`policies/*.toml`), or JSON in the
    /// form of `schema/policy.schema.json`.
    ///
    /// `sbd.model_file`, the path of a trained model (`sbd train` writes it), is answered by
    /// `model`: the postcard bytes of that file, which the caller reads (relative to the
    /// configuration; this crate does no I/O). One without the other is an error.
    pub fn from_text(text: &str, format: ConfigFormat, model: Option<&[u8]>) -> Result<PolicyConfig, ConfigError> {
        let (mut config, names_model) = match format {
            ConfigFormat::Toml => {
                let mut table: toml::Table = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
                let names_model = match table.get_mut("sbd").and_then(toml::Value::as_table_mut) {
                    Some(sbd) => match sbd.remove("model_file") {
                        Some(toml::Value::String(_)) => true,
                        Some(_) => return Err(ConfigError::new("`sbd.model_file` must be a string (a file path)")),
                        None => false,
                    },
                    None => false,
                };
                // JSON has no NaN or infinity: converted, they would become null, which reads
                // as "absent" for an optional number. Refuse them here, naming where.
                table.iter().try_for_each(|(key, item)| finite_floats(item, &format!("$.{key}")))?;
                // Read through the JSON value form, so a TOML error names its path as a JSON one
                // does (`$.sbd.alpha: ...`) and the component carries one reader per type.
                let value = serde_json::to_value(&table).map_err(|e| ConfigError::new(e.to_string()))?;
                let config: PolicyConfig =
                    crate::json::from_value(value).map_err(|e| ConfigError::new(e.to_string()))?;
                (config, names_model)
            }
            ConfigFormat::Json => {
                let mut value: serde_json::Value =
                    crate::json::from_str(text).map_err(|e| ConfigError::new(e.to_string()))?;
                let names_model = match value.get_mut("sbd").and_then(serde_json::Value::as_object_mut) {
                    Some(sbd) => match sbd.remove("model_file") {
                        Some(serde_json::Value::String(_)) => true,
                        Some(_) => {
                            return Err(ConfigError::new("$.sbd.model_file: must be a string (a file path)"));
                        }
                        None => false,
                    },
                    None => false,
                };
                let config: PolicyConfig =
                    crate::json::from_value(value).map_err(|e| ConfigError::new(e.to_string()))?;
                (config, names_model)
            }
        };
        match (names_model, model) {
            (true, Some(bytes)) => {
                let model: LearnedModel = postcard::from_bytes(bytes).map_err(|e| {
                    ConfigError::new(format!("the bytes given for `sbd.model_file` are not a trained SBD model (postcard): {e}"))
                })?;
                config.sbd.model = Some(model);
            }
            (false, None) => {}
            (true, None) => {
                return Err(ConfigError::new(
                    "the configuration names `sbd.model_file`: pass the bytes of that file with it",
                ));
            }
            (false, Some(_)) => {
                return Err(ConfigError::new(
                    "model bytes were given, but the configuration names no `sbd.model_file`",
                ));
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.depth;
        if self.name.is_empty() {
            return Err(ConfigError::new("`name` must not be empty"));
        }
        if !(1..=32).contains(&d.max_depth) {
            return Err(ConfigError::new(format!("`depth.max_depth` must be 1-32, got {}", d.max_depth)));
        }
        for (risk, max) in d.max_depth_by_risk.each() {
            if max > d.max_depth {
                return Err(ConfigError::new(format!(
                    "`depth.max_depth_by_risk.{risk}` ({max}) exceeds `depth.max_depth` ({})",
                    d.max_depth
                )));
            }
        }
        unit_interval("depth.warning_ratio", d.warning_ratio)?;
        if d.chain_deadline_ms == 0 {
            return Err(ConfigError::new("`depth.chain_deadline_ms` must be positive"));
        }
        if self.escalation.human.is_empty() {
            return Err(ConfigError::new("`escalation.human` must name a human authority"));
        }
        for agent in &self.escalation.agents {
            if agent.id.is_empty() || agent.trust > 1000 {
                return Err(ConfigError::new(format!(
                    "escalation agent `{}` needs a non-empty id and a trust score of 0-1000",
                    agent.id
                )));
            }
        }
        let s = &self.sbd;
        for (risk, alpha) in s.alpha.each() {
            unit_interval(&format!("sbd.alpha.{risk}"), alpha)?;
        }
        for (risk, lambda) in s.lambda.each() {
            unit_interval(&format!("sbd.lambda.{risk}"), lambda)?;
        }
        unit_interval("sbd.review_threshold", s.review_threshold)?;
        if let Some(model) = &s.model {
            model.validate()?;
            if s.state_dim.is_some_and(|dim| dim != model.state_dim) {
                return Err(ConfigError::new(format!(
                    "`sbd.state_dim` disagrees with the learned model's input length {}",
                    model.state_dim
                )));
            }
        }
        let state_dim = s.state_dim.or(s.model.as_ref().map(|m| m.state_dim));
        for (i, cap) in s.alpha_caps.iter().enumerate() {
            unit_interval(&format!("sbd.alpha_caps[{i}].alpha_max"), cap.alpha_max)?;
            if !cap.above.is_finite() {
                return Err(ConfigError::new(format!("`sbd.alpha_caps[{i}].above` must be finite")));
            }
            if let Some(dim) = state_dim
                && cap.feature >= dim
            {
                return Err(ConfigError::new(format!(
                    "`sbd.alpha_caps[{i}].feature` ({}) is outside the state vector of length {dim}",
                    cap.feature
                )));
            }
        }
        self.validate_risk_bands()
    }

    /// The risk bands: each in range and tightening something, listed from calm to stressed
    /// (strictly rising `at_least`), and monotone: a band never allows a deeper chain or a lower
    /// review threshold than a band of lower risk.
    fn validate_risk_bands(&self) -> Result<(), ConfigError> {
        let bands = &self.sbd.risk_bands;
        if bands.len() > MAX_RISK_BANDS {
            return Err(ConfigError::new(format!(
                "`sbd.risk_bands` has {} bands; at most {MAX_RISK_BANDS} are allowed",
                bands.len()
            )));
        }
        for (i, band) in bands.iter().enumerate() {
            let field = |name: &str| format!("sbd.risk_bands[{i}].{name}");
            unit_interval(&field("at_least"), band.at_least)?;
            if band.max_depth.is_none() && band.review_threshold.is_none() {
                return Err(ConfigError::new(format!(
                    "`sbd.risk_bands[{i}]` tightens nothing: set `max_depth`, `review_threshold` or both"
                )));
            }
            if let Some(depth) = band.max_depth
                && !(1..=self.depth.max_depth).contains(&depth)
            {
                return Err(ConfigError::new(format!(
                    "`{}` must be 1-{} (`depth.max_depth`), got {depth}",
                    field("max_depth"),
                    self.depth.max_depth
                )));
            }
            if let Some(threshold) = band.review_threshold {
                unit_interval(&field("review_threshold"), threshold)?;
                if threshold < self.sbd.review_threshold {
                    return Err(ConfigError::new(format!(
                        "`{}` ({threshold}) is below `sbd.review_threshold` ({}): a band may only raise it",
                        field("review_threshold"),
                        self.sbd.review_threshold
                    )));
                }
            }
            let Some(j) = i.checked_sub(1) else { continue };
            let calmer = &bands[..i];
            if let Some(previous) = bands.get(j)
                && band.at_least <= previous.at_least
            {
                return Err(ConfigError::new(format!(
                    "`{}` ({}) must be above `sbd.risk_bands[{j}].at_least` ({}): list the bands from calm to stressed",
                    field("at_least"),
                    band.at_least,
                    previous.at_least
                )));
            }
            if let Some(depth) = band.max_depth
                && let Some((k, deeper)) =
                    calmer.iter().enumerate().find_map(|(k, b)| b.max_depth.filter(|&d| d < depth).map(|d| (k, d)))
            {
                return Err(ConfigError::new(format!(
                    "`{}` ({depth}) is above `sbd.risk_bands[{k}].max_depth` ({deeper}), a band of lower risk: higher risk may not allow a deeper chain",
                    field("max_depth")
                )));
            }
            if let Some(threshold) = band.review_threshold
                && let Some((k, higher)) = calmer
                    .iter()
                    .enumerate()
                    .find_map(|(k, b)| b.review_threshold.filter(|&t| t > threshold).map(|t| (k, t)))
            {
                return Err(ConfigError::new(format!(
                    "`{}` ({threshold}) is below `sbd.risk_bands[{k}].review_threshold` ({higher}), a band of lower risk: higher risk may not lower the review threshold",
                    field("review_threshold")
                )));
            }
        }
        Ok(())
    }
}

/// The most risk bands a configuration may list.
pub const MAX_RISK_BANDS: usize = 32;

fn unit_interval(field: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(format!("`{field}` must be in [0, 1], got {value}")))
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> ConfigError {
        ConfigError { message: message.into() }
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        ConfigError { message }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip_through_postcard() {
        let config = PolicyConfig::named("default", "1");
        assert_eq!(config.validate(), Ok(()));
        let bytes = config.to_bytes().unwrap_or_default();
        assert_eq!(PolicyConfig::from_bytes(&bytes), Ok(config));
    }

    #[test]
    fn out_of_range_fields_are_named() {
        let mut config = PolicyConfig::named("p", "1");
        config.depth.max_depth_by_risk.high = 9;
        let err = config.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("depth.max_depth_by_risk.high"), "{err}");

        let mut config = PolicyConfig::named("p", "1");
        config.sbd.alpha.low = 1.5;
        let err = config.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("sbd.alpha.low"), "{err}");

        let mut config = PolicyConfig::named("p", "1");
        config.sbd.state_dim = Some(2);
        config.sbd.alpha_caps.push(AlphaCap { feature: 2, above: 0.0, alpha_max: 0.5 });
        let err = config.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("alpha_caps[0].feature"), "{err}");
    }

    fn band(at_least: f64, max_depth: Option<u8>, review_threshold: Option<f64>) -> RiskBand {
        RiskBand { at_least, max_depth, review_threshold }
    }

    /// The error for the default configuration with these risk bands, or "" when it validates.
    fn band_error(bands: &[RiskBand]) -> String {
        let mut config = PolicyConfig::named("p", "1");
        config.sbd.risk_bands = bands.to_vec();
        config.validate().err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn risk_bands_are_off_by_default_and_round_trip() {
        let config = PolicyConfig::named("p", "1");
        assert!(config.sbd.risk_bands.is_empty());
        let mut banded = config.clone();
        banded.sbd.risk_bands = alloc::vec![band(0.5, Some(3), None), band(0.8, Some(2), Some(0.4))];
        assert_eq!(banded.validate(), Ok(()));
        let bytes = banded.to_bytes().unwrap_or_default();
        assert_eq!(PolicyConfig::from_bytes(&bytes), Ok(banded));
        // Equal depths or thresholds in a riskier band are allowed: monotone, not strictly.
        assert_eq!(band_error(&[band(0.5, Some(3), Some(0.3)), band(0.6, Some(3), Some(0.3))]), "");
    }

    #[test]
    fn risk_bands_out_of_range_name_their_field_and_bound() {
        let cases: [(&[RiskBand], &[&str]); 7] = [
            (&[band(1.5, Some(2), None)], &["sbd.risk_bands[0].at_least", "[0, 1]"]),
            (&[band(f64::NAN, Some(2), None)], &["sbd.risk_bands[0].at_least"]),
            (&[band(0.5, None, None)], &["sbd.risk_bands[0]", "tightens nothing"]),
            (&[band(0.5, Some(0), None)], &["sbd.risk_bands[0].max_depth", "1-5", "depth.max_depth"]),
            (&[band(0.5, Some(6), None)], &["sbd.risk_bands[0].max_depth", "1-5", "got 6"]),
            (&[band(0.5, None, Some(1.2))], &["sbd.risk_bands[0].review_threshold", "[0, 1]"]),
            (&[band(0.5, None, Some(0.1))], &["sbd.risk_bands[0].review_threshold", "sbd.review_threshold"]),
        ];
        for (bands, parts) in cases {
            let err = band_error(bands);
            for part in parts {
                assert!(err.contains(part), "{bands:?}: `{err}` should name {part}");
            }
        }
    }

    #[test]
    fn risk_bands_that_loosen_with_risk_are_refused() {
        // Out of order: the bands go from calm to stressed.
        let err = band_error(&[band(0.8, Some(2), None), band(0.5, Some(3), None)]);
        assert!(err.contains("sbd.risk_bands[1].at_least") && err.contains("calm to stressed"), "{err}");
        let err = band_error(&[band(0.5, Some(2), None), band(0.5, Some(2), None)]);
        assert!(err.contains("sbd.risk_bands[1].at_least"), "{err}");
        // A deeper chain at a higher risk, also across a band that sets no depth.
        let err = band_error(&[band(0.5, Some(2), None), band(0.6, None, Some(0.3)), band(0.8, Some(3), None)]);
        assert!(
            err.contains("sbd.risk_bands[2].max_depth") && err.contains("sbd.risk_bands[0].max_depth"),
            "{err}"
        );
        // A lower review threshold at a higher risk.
        let err = band_error(&[band(0.5, None, Some(0.5)), band(0.8, Some(2), Some(0.4))]);
        assert!(
            err.contains("sbd.risk_bands[1].review_threshold")
                && err.contains("sbd.risk_bands[0].review_threshold"),
            "{err}"
        );
        let too_many: alloc::vec::Vec<RiskBand> =
            (0..=MAX_RISK_BANDS).map(|i| band(i as f64 / 100.0, Some(5), None)).collect();
        assert!(band_error(&too_many).contains("at most 32"));
    }

    #[test]
    fn garbage_bytes_are_rejected_not_panicked_on() {
        assert!(PolicyConfig::from_bytes(&[0xff, 0xff, 0xff]).is_err());
        assert!(PolicyConfig::from_bytes(&[]).is_err());
    }
}

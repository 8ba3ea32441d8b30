//! `sbd check` (validate files without deciding anything) and `sbd test` (scenario files whose
//! `expect` entries are assertions, as `opa test` runs a policy's tests).

use std::path::Path;

use anyhow::{Context, bail};
use sbd_bundle::{Canary, TrustStore, UnverifiedBundle};
use sbd_policy::{Request, Verdict};
use serde::Serialize;

use crate::scenario::Scenario;
use crate::{input_name, parse_config_at, read_text};

/// What a checked file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A TOML policy configuration.
    Policy,
    /// A scenario (JSON with `hops`).
    Scenario,
    /// One delegation request.
    Request,
    /// An array of requests.
    Requests,
    /// A canary file (JSON with `cases`).
    Canary,
    /// A bundle directory.
    Bundle,
    /// Not recognised.
    Unknown,
}

/// The result for one file.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The file as given.
    pub file: String,
    /// What it is.
    pub kind: Kind,
    /// Whether it is valid.
    pub ok: bool,
    /// A summary when valid, the error when not.
    pub detail: String,
}

/// Validates one file (or bundle directory): parses it strictly as what it appears to be
/// (by extension, then content) and runs that kind's own checks.
pub fn check(path: &Path, trust_store: Option<&Path>) -> Checked {
    let file = input_name(path);
    let (kind, result) = classify_and_check(path, trust_store);
    match result {
        Ok(detail) => Checked { file, kind, ok: true, detail },
        Err(error) => Checked { file, kind, ok: false, detail: crate::output::one_line(&error) },
    }
}

fn classify_and_check(path: &Path, trust_store: Option<&Path>) -> (Kind, anyhow::Result<String>) {
    if path.is_dir() {
        return (Kind::Bundle, check_bundle(path, trust_store));
    }
    let text = match read_text(path) {
        Ok(text) => text,
        Err(e) => return (Kind::Unknown, Err(e)),
    };
    let name = input_name(path);
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    if is_toml || (path.as_os_str() == "-" && !text.trim_start().starts_with(['{', '['])) {
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let result = parse_config_at(&text, &name, base)
            .map(|c| format!("policy `{}` {}", c.name, c.version));
        return (Kind::Policy, result);
    }
    let value: serde_json::Value = match sbd_runtime::json::from_str(&text) {
        Ok(value) => value,
        Err(e) => return (Kind::Unknown, Err(anyhow::anyhow!("not JSON or TOML: {e}"))),
    };
    match &value {
        serde_json::Value::Object(o) if o.contains_key("hops") => (Kind::Scenario, check_scenario(&text)),
        serde_json::Value::Object(o) if o.contains_key("cases") => (
            Kind::Canary,
            Canary::from_json(text.as_bytes())
                .map(|c| format!("{} cases", c.cases.len()))
                .map_err(anyhow::Error::from),
        ),
        serde_json::Value::Array(_) => (
            Kind::Requests,
            sbd_runtime::json::from_value::<Vec<Request>>(value)
                .map(|r| format!("{} requests", r.len()))
                .map_err(anyhow::Error::from),
        ),
        serde_json::Value::Object(_) => (
            Kind::Request,
            sbd_runtime::json::from_value::<Request>(value)
                .map(|r| format!("request `{}` from `{}` to `{}`", r.task.id, r.from.id, r.to.id))
                .map_err(anyhow::Error::from),
        ),
        _ => (
            Kind::Unknown,
            Err(anyhow::anyhow!(
                "a JSON {} is none of: a scenario, a canary, a request, an array of requests",
                if value.is_string() { "string" } else { "scalar" }
            )),
        ),
    }
}

fn check_scenario(text: &str) -> anyhow::Result<String> {
    let scenario = Scenario::from_json(text)?;
    let known = |id: &str| id == scenario.originator.id || scenario.trust.contains_key(id);
    for (i, hop) in scenario.hops.iter().enumerate() {
        for id in [&hop.from, &hop.to] {
            if !known(id) {
                bail!("$.hops[{i}]: `{id}` is neither the originator nor in `trust`");
            }
        }
    }
    let expectations = scenario.hops.iter().filter(|h| h.expect.is_some()).count();
    Ok(format!("scenario `{}`: {} hops, {expectations} with `expect`", scenario.name, scenario.hops.len()))
}

fn check_bundle(dir: &Path, trust_store: Option<&Path>) -> anyhow::Result<String> {
    let bundle = UnverifiedBundle::open(dir)?;
    let manifest = bundle.manifest_unverified()?;
    let signatures = bundle.signatures_unverified()?;
    match trust_store {
        Some(path) => {
            let trust = TrustStore::read(path)?;
            let verified = bundle.verify(&trust)?;
            Ok(format!(
                "bundle `{}` {}: signatures, digests, configuration and canary verified ({} canary cases)",
                manifest.name,
                manifest.version,
                verified.canary().cases.len()
            ))
        }
        None => Ok(format!(
            "bundle `{}` {}: manifest readable, {} signatures (not verified: give --trust-store)",
            manifest.name,
            manifest.version,
            signatures.signatures.len()
        )),
    }
}

/// One `expect` entry checked against its hop's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct TestCase {
    /// The scenario file.
    pub file: String,
    /// The hop, from 1.
    pub hop: usize,
    /// The hop's note.
    pub note: String,
    /// Whether the verdict met the expectation.
    pub passed: bool,
    /// What differed, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Replays `scenario` (read from `name`), moved to `now` when given, through `decide` and
/// checks every hop's `expect`. A scenario without any `expect` is an error: it would pass
/// whatever the policy does.
pub fn test_scenario(
    name: &str,
    scenario: &Scenario,
    now: Option<u64>,
    decide: impl FnMut(&Request) -> Verdict,
) -> anyhow::Result<Vec<TestCase>> {
    if scenario.hops.iter().all(|h| h.expect.is_none()) {
        bail!("`{name}` has no `expect` entries, so there is nothing to test");
    }
    let moved;
    let scenario = match now {
        Some(at) => {
            moved = scenario.rebased(at)?;
            &moved
        }
        None => scenario,
    };
    let trace = scenario.replay(decide).with_context(|| format!("in `{name}`"))?;
    Ok(scenario
        .hops
        .iter()
        .zip(&trace)
        .enumerate()
        .filter_map(|(i, (hop, event))| {
            let expect = hop.expect.as_ref()?;
            let failure = expect.mismatch(&event.verdict);
            Some(TestCase { file: name.to_string(), hop: i + 1, note: hop.note.clone(), passed: failure.is_none(), failure })
        })
        .collect())
}

//! The published contract: JSON Schema (draft 2020-12) of every JSON document sbd reads or
//! writes, generated from the Rust types (schemars over their serde attributes) and committed
//! under `schema/`. A unit test fails when the committed files differ from what the types
//! generate; `sbd schema --out schema` (or `SBD_BLESS=1` on that test) rewrites them.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Value, json};

use crate::scenario::Scenario;

/// Where the committed files live, relative to the repository root.
pub const SCHEMA_DIR: &str = "schema";

/// The documents, by name: the file is `schema/<name>.schema.json`.
pub const NAMES: [&str; 6] = ["request", "requests", "verdict", "mandate", "policy", "scenario"];

fn generate<T: JsonSchema>(id: &str, title: &str, description: &str) -> Schema {
    let mut schema = SchemaGenerator::default().into_root_schema_for::<T>();
    schema.insert("$id".into(), json!(format!("https://sbd.dev/schema/{id}.schema.json")));
    schema.insert("title".into(), json!(title));
    schema.insert("description".into(), json!(description));
    schema
}

/// The schema named `name` (one of [`NAMES`]), or `None`.
pub fn schema(name: &str) -> Option<Value> {
    let schema = match name {
        "request" => generate::<sbd_policy::Request>(
            "request",
            "Request",
            "One delegation to decide (sbd eval, POST /v1/delegations `request`, the bindings' JSON entry points). Unknown fields are refused.",
        ),
        "requests" => generate::<Vec<sbd_policy::Request>>(
            "requests",
            "Requests",
            "A batch of delegations for sbd eval; the answer is an array of verdicts in the same order.",
        ),
        "verdict" => generate::<sbd_policy::Verdict>(
            "verdict",
            "Verdict",
            "The decision on one delegation: exactly one of allow (with the grant), escalate or deny.",
        ),
        "mandate" => generate::<sbd_policy::Mandate>(
            "mandate",
            "Mandate",
            "The authority an agent holds; every hop may only narrow it.",
        ),
        "policy" => policy_schema(),
        "scenario" => generate::<Scenario>(
            "scenario",
            "Scenario",
            "A multi-hop scenario for sbd replay, sbd test and sbd bundle canary.",
        ),
        _ => return None,
    };
    Some(schema.to_value())
}

/// The policy configuration, as TOML files write it: besides the inline `sbd.model` the
/// loader accepts `sbd.model_file`, a path to the postcard model `sbd train` writes.
fn policy_schema() -> Schema {
    let mut schema = generate::<sbd_policy::PolicyConfig>(
        "policy",
        "PolicyConfig",
        "A policy configuration (TOML, or JSON of the same shape). Unknown keys are refused.",
    );
    if let Some(props) = schema
        .get_mut("$defs")
        .and_then(|defs| defs.get_mut("SbdConfig"))
        .and_then(|sbd| sbd.get_mut("properties"))
        .and_then(Value::as_object_mut)
    {
        props.insert(
            "model_file".into(),
            json!({
                "type": "string",
                "description": "A trained model (postcard, as `sbd train` writes it), relative to the configuration file; read into `model`."
            }),
        );
    }
    schema
}

/// The committed text of schema `name`: pretty JSON and a final newline.
pub fn render(name: &str) -> Option<String> {
    let value = schema(name)?;
    serde_json::to_string_pretty(&value).ok().map(|text| text + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(SCHEMA_DIR)
    }

    #[test]
    fn the_committed_schemas_are_what_the_types_generate() {
        let bless = std::env::var_os("SBD_BLESS").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for name in NAMES {
            let path = dir().join(format!("{name}.schema.json"));
            let Some(text) = render(name) else { unreachable!("{name} has no schema") };
            if bless {
                std::fs::write(&path, &text).unwrap_or_else(|e| unreachable!("{}: {e}", path.display()));
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "{stale:#?} differ from the types; regenerate with `cargo run --release --bin sbd -- schema --out schema`"
        );
    }

    #[test]
    fn the_request_schema_is_closed_and_documents_the_state_rule() {
        let Some(request) = schema("request") else { unreachable!() };
        assert_eq!(request["additionalProperties"], false);
        let state = request["properties"]["state"]["description"].as_str().unwrap_or_default();
        assert!(state.contains("state-invalid"), "{state}");
        let task = &request["$defs"]["Task"];
        assert_eq!(task["additionalProperties"], false);
        let risk = &request["$defs"]["RiskLevel"];
        assert!(risk.to_string().contains("critical"), "{risk}");
    }

    #[test]
    fn the_verdict_schema_gives_codes_and_reasons() {
        let Some(verdict) = schema("verdict") else { unreachable!() };
        let text = verdict.to_string();
        for needle in ["allow", "deny", "escalate", "\"code\"", "\"reason\"", "accountability_ceiling"] {
            assert!(text.contains(needle), "no {needle} in {text}");
        }
        assert!(schema("nope").is_none());
    }
}

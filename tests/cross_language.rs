//! The shared cross-language corpus in `bindings/shared/`: the requests every binding (Rust,
//! Python, JavaScript) decides, the verdicts they must all give, and the configuration bytes
//! they build the policy from.
//!
//! * `configs/<name>.postcard`: postcard bytes of an `sbd_policy::PolicyConfig`, what the
//!   component's `create` takes. `default` is `policies/default.toml`; `strict` is the `strict`
//!   configuration of `sbd_e2e::configs()` (trust denials instead of escalation, a two-feature
//!   safe set, risk bands), which reaches the reasons the default policy never gives.
//! * `requests.json`: `{"configs": {name: file}, "cases": [{"config": name, "request": R}]}`,
//!   `R` in the JSON form of `sbd_policy::Request`, one case per line.
//! * `expected.json`: verdict i answers case i, in the JSON form of `sbd_policy::Verdict` (the
//!   canonical shape the Python and JavaScript tests convert their verdicts to).
//!
//! These tests regenerate all of it from the Rust sources (`cross_language_corpus.rs`) and fail
//! when a committed file differs; `SBD_BLESS=1 cargo test --release -p sbd-e2e --test
//! cross_language -- shared_files` rewrites them. They then decide every case natively and through wasmtime on
//! the typed and the encoded path, one by one and in batches, and require each verdict to
//! serialize to exactly its line of `expected.json`; and they require the corpus to reach every
//! verdict kind, escalation target and reason code.
#![allow(clippy::expect_used, clippy::panic, reason = "test set-up fails loudly")]

#[path = "cross_language_corpus.rs"]
mod corpus;

use std::collections::{BTreeMap, BTreeSet};

use corpus::{
    MAX_SAFE_INTEGER, build_cases, by_config, expected_json, labels, requests_json, required_labels,
    shared_configs, shared_dir, verdict_line,
};
use sbd_policy::{Request, Verdict};
use sbd_runtime::{CallPath, PolicyRuntime, RuntimeLimits};
use serde_json::Value;

/// Compares `contents` with the committed file, or writes it when `SBD_BLESS=1`. Returns the
/// name of a stale file.
fn check_or_bless(relative: &str, contents: &[u8]) -> Option<String> {
    let path = shared_dir().join(relative);
    if std::env::var_os("SBD_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create bindings/shared");
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return None;
    }
    match std::fs::read(&path) {
        Ok(committed) if committed == contents => None,
        Ok(_) => Some(format!("bindings/shared/{relative} differs from what the Rust sources give")),
        Err(e) => Some(format!("bindings/shared/{relative} cannot be read: {e}")),
    }
}

#[test]
fn shared_files_are_what_the_rust_sources_give() {
    let cases = build_cases();
    let mut stale: Vec<String> = shared_configs()
        .iter()
        .filter_map(|(name, config)| {
            check_or_bless(&format!("configs/{name}.postcard"), &config.to_bytes().expect("encode"))
        })
        .collect();
    stale.extend(check_or_bless("requests.json", requests_json(&cases).as_bytes()));
    stale.extend(check_or_bless("expected.json", expected_json(&cases).as_bytes()));
    assert!(
        stale.is_empty(),
        "{stale:#?}\nregenerate with: SBD_BLESS=1 cargo test --release -p sbd-e2e --test cross_language -- shared_files"
    );
}

/// The lines of a committed file (one JSON value per line inside a top-level array).
fn committed_lines(relative: &str) -> Vec<String> {
    let path = shared_dir().join(relative);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines().filter(|l| l.starts_with('{')).map(|l| l.trim_end_matches(',').to_string()).collect()
}

#[test]
fn native_and_both_wasmtime_paths_give_the_expected_verdicts() {
    let cases = build_cases();
    assert!(cases.len() >= 200, "{} cases; the corpus needs at least 200", cases.len());
    let expected = committed_lines("expected.json");
    assert_eq!(expected.len(), cases.len(), "bindings/shared/expected.json has one verdict per case");
    let runtime = PolicyRuntime::new(RuntimeLimits::default()).expect("engine");
    let component = runtime.load_component(sbd_runtime::DEFAULT_COMPONENT).expect("default component");
    for corpus::ConfigCases { name, native, bytes, cases: mine } in by_config(&cases) {
        let loaded = runtime.instantiate(&component, &bytes).expect("instantiate");
        let requests: Vec<Request> = mine.iter().map(|(_, r)| r.clone()).collect();
        let batches =
            [CallPath::Typed, CallPath::Encoded, CallPath::Json].map(|p| (p, loaded.evaluate_batch_via(p, &requests)));
        for (k, (i, request)) in mine.iter().enumerate() {
            let mut answers = vec![("native".to_string(), native.evaluate(request))];
            for path in [CallPath::Typed, CallPath::Encoded, CallPath::Json] {
                answers.push((format!("wasmtime {path:?}"), loaded.evaluate_via(path, request)));
            }
            for (path, batch) in &batches {
                answers.push((format!("wasmtime {path:?} batch"), batch[k].clone()));
            }
            for (how, verdict) in answers {
                assert_eq!(verdict_line(&verdict), expected[*i], "case {i} (config `{name}`), {how}");
            }
        }
        assert_eq!(loaded.stats().faults, 0, "config `{name}`: no call faulted");
    }
}

#[test]
fn the_corpus_reaches_every_verdict_kind_and_reason() {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in committed_lines("expected.json") {
        let verdict: Verdict = serde_json::from_str(&line).expect("a verdict");
        for label in labels(&verdict) {
            *seen.entry(label).or_default() += 1;
        }
    }
    let missing: Vec<String> = required_labels().into_iter().filter(|l| !seen.contains_key(l)).collect();
    assert!(missing.is_empty(), "the corpus never gives {missing:?}; it gives {seen:?}");
    let requests: Value =
        serde_json::from_str(&std::fs::read_to_string(shared_dir().join("requests.json")).expect("read"))
            .expect("requests.json is JSON");
    let used: BTreeSet<&str> =
        requests["cases"].as_array().expect("cases").iter().filter_map(|c| c["config"].as_str()).collect();
    let known: BTreeSet<&str> =
        requests["configs"].as_object().expect("configs").keys().map(String::as_str).collect();
    assert_eq!(used, known, "every case names a known configuration and every configuration is used");
}

/// JavaScript reads JSON numbers as doubles: every integer in the corpus must be exact there.
#[test]
fn every_integer_in_the_corpus_is_exact_in_javascript() {
    fn walk(value: &Value, at: &str, bad: &mut Vec<String>) {
        match value {
            Value::Number(n) if n.as_u64().is_some_and(|u| u > MAX_SAFE_INTEGER) => {
                bad.push(format!("{at}: {n}"))
            }
            Value::Array(items) => {
                items.iter().enumerate().for_each(|(i, v)| walk(v, &format!("{at}[{i}]"), bad))
            }
            Value::Object(fields) => fields.iter().for_each(|(k, v)| walk(v, &format!("{at}.{k}"), bad)),
            _ => {}
        }
    }
    let cases = build_cases();
    let mut bad = Vec::new();
    walk(&serde_json::from_str(&requests_json(&cases)).expect("json"), "requests", &mut bad);
    walk(&serde_json::from_str(&expected_json(&cases)).expect("json"), "expected", &mut bad);
    assert!(bad.is_empty(), "integers above 2^53 - 1: {bad:?}");
}

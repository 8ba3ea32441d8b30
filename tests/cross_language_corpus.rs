//! The cross-language corpus (`bindings/shared/`) as the Rust sources define it: the
//! configurations, the requests and the verdicts of the native rules. Included with `#[path]`
//! by `cross_language.rs` (which checks the committed files against it) and by
//! `cross_language_bench.rs`.
//!
//! The Rust side works from these in-memory values, never from the committed JSON: serde_json
//! without its `float_roundtrip` feature may read a float one ulp off (it read
//! `0.21000000000000002` as `0.21`), while Python's and JavaScript's parsers are exact. The
//! committed files are checked byte for byte against what these functions write, so the
//! in-memory requests are exactly the ones the other languages read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sbd_e2e::{allowed_request, configs, sample_requests};
use sbd_policy::{EscalationTarget, Policy, PolicyConfig, Reason, Request, Verdict};
use serde_json::Value;

/// Cases taken per label (verdict reason, warning, escalation target) before any other.
const QUOTA_PER_LABEL: usize = 6;
/// Cases in the corpus: room for every label's quota (44 labels since the registry rule)
/// before the cap.
const TOTAL_CASES: usize = 300;
/// The largest integer JavaScript's `JSON.parse` reads exactly (2^53 - 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings/shared")
}

/// The configurations of the corpus, by name, in file order.
pub fn shared_configs() -> Vec<(&'static str, PolicyConfig)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default.toml");
    let text = std::fs::read_to_string(&path).expect("policies/default.toml");
    let default: PolicyConfig = toml::from_str(&text).expect("policies/default.toml is a policy");
    default.validate().expect("policies/default.toml is valid");
    let strict =
        configs().into_iter().find(|c| c.name == "strict").expect("a `strict` fixture configuration");
    vec![("default", default), ("strict", strict)]
}

/// What a verdict shows: `allow`, its reason's name, its warnings' names, and for escalations
/// `escalate-to-human` or `escalate-to-agent`.
pub fn labels(verdict: &Verdict) -> Vec<String> {
    let mut labels = vec![verdict.reason().map_or("allow", Reason::name).to_string()];
    match verdict {
        Verdict::Allow(grant) => labels.extend(grant.warnings.iter().map(|w| w.reason.name().to_string())),
        Verdict::Escalate(e) => labels.push(match e.target {
            EscalationTarget::Human(_) => "escalate-to-human".into(),
            EscalationTarget::Agent(_) => "escalate-to-agent".into(),
        }),
        Verdict::Deny(_) => labels.push("deny".into()),
    }
    labels
}

/// Every label the corpus must reach: every reason the rules give (not those only a host gives,
/// such as `policy-fault`), every verdict kind and both escalation targets.
pub fn required_labels() -> BTreeSet<String> {
    Reason::ALL
        .iter()
        .filter(|r| !r.decided_by_host())
        .map(|r| r.name().to_string())
        .chain(["allow", "deny", "escalate-to-human", "escalate-to-agent"].map(String::from))
        .collect()
}

/// Hand-made requests the random generator does not make: large integers up to the JSON-safe
/// limit, non-ASCII identifiers, empty strings.
fn edge_requests() -> Vec<Request> {
    let mut large = allowed_request();
    for mandate in [&mut large.parent_mandate, &mut large.requested_mandate] {
        mandate.value_ceiling = MAX_SAFE_INTEGER;
        for budget in &mut mandate.budgets {
            budget.amount = MAX_SAFE_INTEGER - 1;
        }
    }
    large.task.value = MAX_SAFE_INTEGER - 2;
    let mut unicode = allowed_request();
    unicode.from.id = "ledger-agent-ü".into();
    unicode.chain[1].to = unicode.from.id.clone();
    unicode.to.id = "fx-agent-✓-東京".into();
    unicode.task.id = "タスク-4821".into();
    unicode.chain[0].reason = "remboursement n°4821 €".into();
    let mut empty = allowed_request();
    empty.task.id = String::new();
    empty.chain[1].reason = String::new();
    empty.state = Vec::new();
    let mut requests = vec![allowed_request(), large, unicode, empty];
    // Agent ids without a canonical form (sbd_policy::identity), one per reason, and one that
    // respells the delegator (still allowed, the grant naming it canonically).
    for bad in [
        "x".repeat(129),
        "agent-b ".to_string(),
        "agent\u{0}b".to_string(),
        "agent\u{200b}-b".to_string(),
        "\u{430}gent-b".to_string(),
        "agent-\u{e000}".to_string(),
        "ＦＸ-Ａｇｅｎｔ".to_string(),
    ] {
        let mut request = allowed_request();
        request.to.id = bad;
        requests.push(request);
    }
    // A human-approved depth exception that applies (a warning the random requests, which now
    // also exercise agent ids, reach too rarely for the corpus).
    let mut excepted = allowed_request();
    excepted.depth_exception = Some(sbd_policy::DepthException {
        approved_by: "risk-officer".into(),
        justification: "quarter close".into(),
        extra_depth: 1,
        expires_at: excepted.now + 60_000,
    });
    requests.push(excepted);
    // A stress state (feature 0 above 0.25) on a third hop: the strict policy's risk bands cut
    // the depth to 2 there (`risk-depth-escalation`), which random requests reach too rarely.
    let mut stressed = allowed_request();
    stressed.state = vec![0.3, 0.3];
    requests.push(stressed);
    let mut duplicated = allowed_request();
    let unit = duplicated.requested_mandate.budgets[0];
    duplicated.requested_mandate.budgets.push(unit);
    requests.push(duplicated);
    requests
}

/// The corpus: for each configuration, the edge requests, then random requests (fixed seed)
/// taken while one of their labels has fewer than [`QUOTA_PER_LABEL`] cases, then the rest in
/// generator order, alternating configurations, up to [`TOTAL_CASES`].
pub fn build_cases() -> Vec<(&'static str, Request)> {
    let configs = shared_configs();
    let policies: Vec<Policy> =
        configs.iter().map(|(_, c)| Policy::new(c.clone()).expect("valid configuration")).collect();
    let mut candidates = edge_requests();
    let edges = candidates.len();
    candidates.extend(sample_requests(6_000, 21));

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut taken = BTreeSet::new();
    let mut cases = Vec::new();
    for (index, request) in candidates.iter().enumerate() {
        for (slot, ((name, _), policy)) in configs.iter().zip(&policies).enumerate() {
            let verdict_labels = labels(&policy.evaluate(request));
            let wanted = index < edges
                || verdict_labels.iter().any(|l| counts.get(l).copied().unwrap_or(0) < QUOTA_PER_LABEL);
            if wanted && cases.len() < TOTAL_CASES {
                for label in verdict_labels {
                    *counts.entry(label).or_default() += 1;
                }
                taken.insert((index, slot));
                cases.push((*name, request.clone()));
            }
        }
    }
    let mut rest = candidates.iter().enumerate().filter(|(index, _)| *index >= edges);
    let mut slot = 0;
    while cases.len() < TOTAL_CASES {
        let (index, request) = rest.next().expect("enough random requests to fill the corpus");
        if taken.insert((index, slot)) {
            cases.push((configs[slot].0, request.clone()));
        }
        slot = (slot + 1) % configs.len();
    }
    cases
}

/// One JSON value per line inside a top-level array: stable, readable diffs.
pub fn json_lines(values: &[Value]) -> String {
    let lines: Vec<String> = values.iter().map(|v| serde_json::to_string(v).expect("json")).collect();
    format!("[\n{}\n]\n", lines.join(",\n"))
}

pub fn requests_json(cases: &[(&str, Request)]) -> String {
    let configs: Vec<String> =
        shared_configs().iter().map(|(name, _)| format!("{name:?}: \"configs/{name}.postcard\"")).collect();
    let values: Vec<Value> = cases
        .iter()
        .map(|(config, request)| serde_json::json!({"config": config, "request": request}))
        .collect();
    format!("{{\n\"configs\": {{{}}},\n\"cases\": {}}}\n", configs.join(", "), json_lines(&values).trim_end())
}

pub fn expected_json(cases: &[(&str, Request)]) -> String {
    let policies: BTreeMap<&str, Policy> = shared_configs()
        .into_iter()
        .map(|(name, c)| (name, Policy::new(c).expect("valid configuration")))
        .collect();
    let values: Vec<Value> = cases
        .iter()
        .map(|(config, request)| serde_json::to_value(policies[config].evaluate(request)).expect("json"))
        .collect();
    json_lines(&values)
}

/// One verdict as a line of `expected.json` writes it.
pub fn verdict_line(verdict: &Verdict) -> String {
    serde_json::to_string(&serde_json::to_value(verdict).expect("json")).expect("json")
}

/// The cases of one configuration.
pub struct ConfigCases {
    /// The configuration's name in `requests.json`.
    pub name: &'static str,
    /// The native rules with that configuration.
    pub native: Policy,
    /// Its postcard bytes, as `configs/<name>.postcard` holds them.
    pub bytes: Vec<u8>,
    /// Its cases: the index in the corpus and the request.
    pub cases: Vec<(usize, Request)>,
}

/// The cases grouped by configuration, in the order of [`shared_configs`].
pub fn by_config(cases: &[(&'static str, Request)]) -> Vec<ConfigCases> {
    shared_configs()
        .into_iter()
        .map(|(name, config)| ConfigCases {
            name,
            bytes: config.to_bytes().expect("encode"),
            cases: cases
                .iter()
                .enumerate()
                .filter(|(_, (c, _))| *c == name)
                .map(|(i, (_, r))| (i, r.clone()))
                .collect(),
            native: Policy::new(config).expect("valid configuration"),
        })
        .collect()
}

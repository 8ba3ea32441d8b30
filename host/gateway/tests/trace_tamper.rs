//! The tamper-evident trace (issue 14 item 9): real delegations through the gateway, then the
//! gateway is stopped, the SQLite file is opened directly, the append-only triggers are
//! dropped, and history is rewritten: an event edited, deleted, inserted, moved in from another
//! chain, reordered (seqs swapped), the tail cut, the head removed. Each time both the
//! gateway's `GET /v1/chains/{id}` and the offline verifier (what `sbd trace verify` runs)
//! name the first bad event; an untouched chain verifies. Also: the 75% depth warning is a
//! trace event, a Prometheus counter and an entry of `GET /v1/warnings`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::Http;
use reqwest::{Method, StatusCode};
use rusqlite::Connection;
use sbd_bundle::PublicKey;
use sbd_gateway::traces::{self, ClientReceipt, Receipt};
use serde_json::{json, Value};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn expiry() -> u64 {
    static EXPIRY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *EXPIRY.get_or_init(|| now() + 3_600_000)
}

fn mandate(budget: u64, depth: u8) -> Value {
    json!({
        "value_ceiling": 50_000_000_000u64,
        "action_kinds": ["payment.*"],
        "counterparties": ["acme", "globex"],
        "budgets": [{"unit": "USD_MICROCENTS", "amount": budget}],
        "remaining_depth": depth,
        "expires_at": expiry(),
    })
}

fn hop(from: (&str, u16), to: (&str, u16), parent: Value, requested: Value, chain: Value) -> Value {
    json!({
        "from": {"id": from.0, "trust": from.1},
        "to": {"id": to.0, "trust": to.1},
        "task": {"id": "refund-4821", "action_kind": "payment.refund", "risk": "medium", "value": 1_000_000, "counterparty": "acme"},
        "parent_mandate": parent,
        "requested_mandate": requested,
        "chain": chain,
        "state": [0.12],
    })
}

async fn delegate(http: &Http, key: &str, body: Value) -> Value {
    let r = http.delegate(key, body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

/// What the pristine run leaves: the chain id, its events' seqs by role, and the receipts.
struct Run {
    chain: String,
    other_chain_seq: i64,
    seqs: Vec<i64>,
    receipts: Vec<Receipt>,
}

/// Chain A: allow, (chain B's first hop), allow, allow at depth 3 of 4 (+ a `warning` event),
/// a cycle denied, an outcome report.
async fn record_chains(http: &Http, key: &str) -> Run {
    http.budget(key, "tenant:acme", "USD_MICROCENTS", 10_000_000_000, json!({})).await;
    for (agent, trust) in [("orchestrator", 900.0), ("refund-agent", 720.0), ("ledger-agent", 700.0), ("fx-agent", 700.0), ("planner", 900.0), ("writer", 720.0)] {
        http.register(key, agent, trust).await;
    }
    let mut receipts = Vec::new();
    let root = mandate(5_000_000_000, 4);
    let grant = http.root_grant(key, "orchestrator", root.clone()).await;
    let r1 = delegate(http, key, json!({"token": grant["token"], "request": hop(("orchestrator", 0), ("refund-agent", 0), root.clone(), mandate(900_000_000, 3), json!([]))})).await;
    assert_eq!(r1["decision"], "allow", "{r1}");
    let chain = r1["chain_id"].as_str().unwrap().to_string();
    receipts.push(serde_json::from_value::<Receipt>(r1["receipt"].clone()).unwrap());

    // Another chain in between, so chain A's seqs are not contiguous.
    let grant_b = http.root_grant(key, "planner", root.clone()).await;
    let b = delegate(http, key, json!({"token": grant_b["token"], "request": hop(("planner", 0), ("writer", 0), root, mandate(100_000_000, 1), json!([]))})).await;
    let other_chain_seq = b["seq"].as_i64().unwrap();

    let g1 = &r1["verdict"]["allow"];
    let r2 = delegate(http, key, json!({"token": r1["child_token"], "request": hop(("refund-agent", 0), ("ledger-agent", 0), g1["child_mandate"].clone(), mandate(600_000_000, 2), json!([]))})).await;
    assert_eq!(r2["decision"], "allow", "{r2}");
    receipts.push(serde_json::from_value::<Receipt>(r2["receipt"].clone()).unwrap());

    let g2 = &r2["verdict"]["allow"];
    let r3 = delegate(http, key, json!({"token": r2["child_token"], "request": hop(("ledger-agent", 0), ("fx-agent", 0), g2["child_mandate"].clone(), mandate(300_000_000, 1), json!([]))})).await;
    assert_eq!(r3["decision"], "allow", "{r3}");
    let warnings = r3["verdict"]["allow"]["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w["code"] == 1101), "hop 3 of at most 4 warns: {r3}");
    receipts.push(serde_json::from_value::<Receipt>(r3["receipt"].clone()).unwrap());

    let g3 = &r3["verdict"]["allow"];
    let r4 = delegate(http, key, json!({"token": r3["child_token"], "request": hop(("fx-agent", 0), ("orchestrator", 0), g3["child_mandate"].clone(), mandate(100_000_000, 0), json!([]))})).await;
    assert_eq!(r4["decision"], "deny", "{r4}");
    assert_eq!(r4["verdict"]["deny"]["code"], 1002);
    receipts.push(serde_json::from_value::<Receipt>(r4["receipt"].clone()).unwrap());

    let o = http.tenant(&http.operator(key), Method::POST, &format!("/v1/chains/{chain}/outcome"), Some(json!({"outcome": "success", "magnitude": 5.0}))).await;
    assert_eq!(o.status, StatusCode::OK, "{:?}", o.body);
    receipts.push(serde_json::from_value::<Receipt>(o.body["receipt"].clone()).unwrap());

    // The root grant is the chain's first event.
    let events = http.tenant(key, Method::GET, &format!("/v1/chains/{chain}"), None).await;
    let root_seq = events.body["events"][0]["seq"].as_i64().unwrap();
    let seqs: Vec<i64> = vec![
        root_seq,
        receipts[0].seq,
        receipts[1].seq,
        receipts[2].seq,
        receipts[2].seq + 1, // the warning event right after the allow it belongs to
        receipts[3].seq,
        receipts[4].seq,
    ];
    Run { chain, other_chain_seq, seqs, receipts }
}

/// The receipts as a client keeps them.
fn kept(run: &Run) -> Vec<ClientReceipt> {
    run.receipts.iter().cloned().map(ClientReceipt::Sealed).collect()
}

async fn get_chain(http: &Http, key: &str, chain: &str) -> Value {
    let r = http.tenant(key, Method::GET, &format!("/v1/chains/{chain}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// The SQL that inserts `r` as a row.
fn insert_sql(r: &traces::Record) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    format!(
        "INSERT INTO trace_events (seq, tenant_id, chain_id, delegator, delegate, depth, at_ms, decision, reason_code, \
         policy_version, body, pos, prev_hash, hash, key_id, signature, seal_id, leaf) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, NULL, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        r.seq,
        q(&r.tenant),
        q(&r.chain_id),
        q(&r.delegator),
        q(&r.delegate),
        r.depth,
        r.at_ms,
        q(&r.decision),
        q(&r.policy_version),
        q(&r.body),
        r.pos,
        q(&r.prev_hash),
        q(&r.hash),
        q(&r.key_id),
        q(&r.signature),
        r.seal_id.map_or("NULL".into(), |v| v.to_string()),
        r.leaf.map_or("NULL".into(), |v| v.to_string())
    )
}

/// A copy of the pristine store with `tamper` applied (triggers dropped first).
fn tampered_copy(pristine: &Path, into: &Path, tamper: &str) {
    std::fs::create_dir_all(into).unwrap();
    std::fs::copy(pristine.join("gateway.key"), into.join("gateway.key")).unwrap();
    let src = Connection::open(pristine.join("sbd.sqlite3")).unwrap();
    src.execute("VACUUM INTO ?1", [into.join("sbd.sqlite3").to_str().unwrap()]).unwrap();
    drop(src);
    let db = Connection::open(into.join("sbd.sqlite3")).unwrap();
    db.execute_batch(
        "DROP TRIGGER trace_events_no_update; DROP TRIGGER trace_events_no_delete; \
         DROP TRIGGER trace_seals_no_update; DROP TRIGGER trace_seals_no_delete;",
    )
    .unwrap();
    db.execute_batch(tamper).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_database_edits_are_named_by_the_gateway_and_the_offline_verifier() {
    if common::sqlite_only("it edits rows of the SQLite file") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let pristine = root.path().join("pristine");
    let gw = common::gateway(&pristine).await;
    let http = Http::new(gw.url());
    let key = http.provision("acme").await;
    // The operator key, kept: each tampered copy below is served by a new gateway and client.
    let operator = http.operator(&key);
    let run = record_chains(&http, &key).await;
    let public = PublicKey::read(&pristine.join("gateway.key")).unwrap();

    // Untouched: the gateway and the offline verifier agree it is whole; every receipt matches.
    let export = get_chain(&http, &key, &run.chain).await;
    assert_eq!(export["integrity"], "ok", "{export}");
    assert_eq!(export["format"], "sbd-trace-v2");
    assert_eq!(export["proof"]["key_id"], public.id().to_string());
    let seqs: Vec<i64> = export["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, run.seqs);
    let kinds: Vec<&str> = export["events"].as_array().unwrap().iter().map(|e| e["decision"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["root-grant", "allow", "allow", "allow", "warning", "deny", "outcome"]);
    let text = serde_json::to_string_pretty(&export).unwrap();
    let reread: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(traces::verify_export(&reread, &public), Ok(7));
    assert_eq!(traces::verify_receipts(&reread, &public, &kept(&run)), Ok(()));
    // The export checked with another key: refused at the first event.
    let stranger = sbd_bundle::KeyPair::from_secret(&[7; 32]).public();
    assert_eq!(traces::verify_export(&reread, &stranger).unwrap_err().kind, "unsigned");
    // The trigger still refuses edits through SQL while the triggers exist.
    let db = Connection::open(pristine.join("sbd.sqlite3")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    assert!(db.execute("UPDATE trace_events SET delegate = 'x' WHERE seq = 1", []).is_err());
    drop(db);
    gw.stop().await;

    let [_s_root, s_hop1, s_hop2, s_hop3, _s_warning, s_deny, s_outcome] = run.seqs[..] else { panic!("seven events") };
    // A fake allow appended after the last event, by someone who knows the format: the next
    // position, the right prev_hash, a correctly computed hash, and the last real event's seal
    // and leaf (the key is not in the database). And a cruder one with a made-up hash.
    let records: Vec<traces::Record> = serde_json::from_value(export["proof"]["records"].clone()).unwrap();
    let last = records.last().unwrap().clone();
    let mut fake = traces::Record {
        seq: s_outcome + 100,
        pos: 8,
        delegator: "orchestrator".into(),
        delegate: "mallory".into(),
        depth: 1,
        decision: "allow".into(),
        reason_code: None,
        body: "{}".into(),
        prev_hash: last.hash.clone(),
        ..last.clone()
    };
    fake.hash = hex(&traces::event_hash(&unhex32(&last.hash), &fake));
    let raw = traces::Record { seq: s_outcome + 101, hash: "00".repeat(32), ..fake.clone() };
    let other = run.other_chain_seq;
    // (name, SQL, expected seq named, expected kind, expected position)
    let cases: Vec<(&str, String, Option<i64>, &str, i64)> = vec![
        ("update", format!("UPDATE trace_events SET delegate = 'mallory' WHERE seq = {s_hop1}"), Some(s_hop1), "edited", 2),
        ("update-body", format!("UPDATE trace_events SET body = replace(body, '\"deny\"', '\"allow\"') WHERE seq = {s_deny}"), Some(s_deny), "edited", 6),
        ("delete", format!("DELETE FROM trace_events WHERE seq = {s_deny}"), Some(s_outcome), "deleted", 6),
        ("insert", insert_sql(&fake), Some(fake.seq), "unsigned", 8),
        ("insert-raw", insert_sql(&raw), Some(raw.seq), "edited", 8),
        ("move-in", format!("UPDATE trace_events SET chain_id = '{}' WHERE seq = {other}", run.chain), Some(other), "edited", 3),
        (
            "reorder",
            format!(
                "UPDATE trace_events SET seq = -1 WHERE seq = {s_hop2}; UPDATE trace_events SET seq = {s_hop2} WHERE seq = {s_hop3}; \
                 UPDATE trace_events SET seq = {s_hop3} WHERE seq = -1"
            ),
            Some(s_hop2),
            "edited",
            3,
        ),
        ("truncate", format!("DELETE FROM trace_events WHERE seq = {s_outcome}"), None, "truncated", 7),
        ("head", format!("DELETE FROM trace_heads WHERE chain_id = '{}'", run.chain), None, "head", 8),
        // A seal's root or signature rewritten: every event under it is unsigned, the first
        // of them named.
        (
            "seal-root",
            format!("UPDATE trace_seals SET root = '{}' WHERE seal_id = (SELECT seal_id FROM trace_events WHERE seq = {s_hop2})", "ab".repeat(32)),
            Some(s_hop2),
            "unsigned",
            3,
        ),
        // Values of another column type (found by a live attack: the export was a 500).
        ("body-as-blob", format!("UPDATE trace_events SET body = CAST(body AS BLOB) WHERE seq = {s_hop1}"), Some(s_hop1), "edited", 2),
        ("at-ms-real", format!("UPDATE trace_events SET at_ms = at_ms + 0.5 WHERE seq = {s_deny}"), Some(s_deny), "edited", 6),
        (
            "seal-leaves-text",
            format!("UPDATE trace_seals SET leaves = leaves || zeroblob(32) WHERE seal_id = (SELECT seal_id FROM trace_events WHERE seq = {s_hop2})"),
            Some(s_hop2),
            "unsigned",
            3,
        ),
        ("seal-delete", format!("DELETE FROM trace_seals WHERE seal_id = (SELECT seal_id FROM trace_events WHERE seq = {s_hop3})"), Some(s_hop3), "unsigned", 4),
        (
            "seal-swap",
            format!(
                "UPDATE trace_events SET seal_id = (SELECT seal_id FROM trace_events WHERE seq = {s_hop1}), \
                 leaf = (SELECT leaf FROM trace_events WHERE seq = {s_hop1}) WHERE seq = {s_deny}"
            ),
            Some(s_deny),
            "unsigned",
            6,
        ),
    ];
    for (name, sql, seq, kind, pos) in cases {
        let dir = root.path().join(name);
        tampered_copy(&pristine, &dir, &sql);
        let gw = common::gateway(&dir).await;
        let http = Http::new(gw.url());
        let served = get_chain(&http, &key, &run.chain).await;
        let b = &served["integrity_break"];
        assert_eq!(
            (b["seq"].as_i64(), b["kind"].as_str(), b["pos"].as_i64()),
            (seq, Some(kind), Some(pos)),
            "{name}: the gateway names the first bad event: {}",
            served["integrity"]
        );
        let text = served["integrity"].as_str().unwrap();
        assert!(text.starts_with("broken at "), "{name}: {text}");
        if let Some(s) = seq {
            assert!(text.starts_with(&format!("broken at seq {s} ")), "{name}: {text}");
        }
        // Offline, from the export as served: the same first bad event.
        let offline = traces::verify_export(&served, &public).unwrap_err();
        assert_eq!((offline.seq, offline.kind.as_str(), offline.pos), (seq, kind, pos), "{name}: offline");
        // Nothing is decided on altered history: an outcome report is refused.
        let o = http
            .tenant(&operator, Method::POST, &format!("/v1/chains/{}/outcome", run.chain), Some(json!({"outcome": "failure", "magnitude": 5.0})))
            .await;
        assert_eq!(o.status, StatusCode::INTERNAL_SERVER_ERROR, "{name}: {:?}", o.body);
        assert!(o.body["message"].as_str().unwrap().contains("broken at"), "{name}: {:?}", o.body);
        let metrics = http.client.get(format!("{}/metrics", gw.url())).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("sbd_trace_integrity_failures_total 1"), "{name}: {metrics}");
        gw.stop().await;
    }

    // A rollback that also restores an older signed head (taken from the row it kept) hides
    // the cut from the stored data alone; the client's receipt proves it.
    let dir = root.path().join("rollback");
    tampered_copy(
        &pristine,
        &dir,
        &format!(
            "DELETE FROM trace_events WHERE seq = {s_outcome}; \
             UPDATE trace_heads SET count = 6, head_hash = (SELECT hash FROM trace_events WHERE seq = {s_deny}), \
             signature = (SELECT signature FROM trace_events WHERE seq = {s_deny}) WHERE chain_id = '{}'",
            run.chain
        ),
    );
    let gw = common::gateway(&dir).await;
    let http = Http::new(gw.url());
    let served = get_chain(&http, &key, &run.chain).await;
    assert_eq!(served["integrity"], "ok", "a consistent prefix verifies on its own");
    let b = traces::verify_receipts(&served, &public, &kept(&run)).unwrap_err();
    assert_eq!((b.seq, b.kind.as_str(), b.pos), (Some(s_outcome), "rolled-back", 7), "{b}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_depth_warning_is_an_operator_event_and_a_metric() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let key = http.provision("acme").await;
    let run = record_chains(&http, &key).await;
    let w = http.tenant(&http.operator(&key), Method::GET, "/v1/warnings", None).await;
    assert_eq!(w.status, StatusCode::OK, "{:?}", w.body);
    let items = w.body["warnings"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{:?}", w.body);
    assert_eq!(items[0]["reason_code"], 1101);
    assert_eq!(items[0]["warning"], "depth-warning");
    assert_eq!(items[0]["chain_id"], run.chain.as_str());
    assert_eq!(items[0]["of_seq"], run.receipts[2].seq);
    assert_eq!((items[0]["delegator"].as_str(), items[0]["depth"].as_i64()), (Some("ledger-agent"), Some(3)));
    let metrics = http.client.get(format!("{}/metrics", gw.url())).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("sbd_delegation_warnings_total{reason=\"depth-warning\"} 1"), "{metrics}");
    // Another tenant sees none of them.
    let other = http.provision("globex").await;
    let w = http.tenant(&other, Method::GET, "/v1/warnings", None).await;
    assert_eq!(w.body["warnings"], json!([]));
    let bad = http.tenant(&key, Method::GET, "/v1/warnings?limit=0", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    gw.stop().await;
}

//! The delegation API: policy verdicts, sub-budget reservations, traces (append-only, kept
//! across restarts), escalations (queue, targets, decisions, TTL), outcomes feeding trust,
//! toolset action masks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Http;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// One expiry for every mandate of the process, so children never outlive parents.
fn expiry() -> u64 {
    static EXPIRY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *EXPIRY.get_or_init(|| now() + 3_600_000)
}

fn mandate(budget: u64, kinds: &[&str], depth: u8) -> Value {
    json!({
        "value_ceiling": 50_000_000_000u64,
        "action_kinds": kinds,
        "counterparties": ["acme", "globex"],
        "budgets": [{"unit": "USD_MICROCENTS", "amount": budget}],
        "remaining_depth": depth,
        "expires_at": expiry(),
    })
}

fn hop(from: (&str, u16), to: (&str, u16), risk: &str, parent: Value, requested: Value, chain: Value, state: f64) -> Value {
    json!({
        "from": {"id": from.0, "trust": from.1},
        "to": {"id": to.0, "trust": to.1},
        "task": {"id": "refund-4821", "action_kind": "payment.refund", "risk": risk, "value": 1_000_000, "counterparty": "acme"},
        "parent_mandate": parent,
        "requested_mandate": requested,
        "chain": chain,
        "state": [state],
    })
}

async fn delegate(http: &Http, key: &str, body: Value) -> Value {
    let r = http.tenant(key, Method::POST, "/v1/delegations", Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegations_decide_reserve_trace_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let key = http.provision("acme").await;
    http.budget(&key, "tenant:acme", "USD_MICROCENTS", 10_000_000_000, json!({})).await;

    // Hop 1: allowed and narrowed; the child's $5 is held in the ledger on its scope.
    let root = mandate(5_000_000_000, &["crm.*", "payment.*"], 4);
    let r1 = delegate(&http, &key, json!({"request": hop(("orchestrator", 900), ("refund-agent", 720), "medium", root, mandate(500_000_000, &["payment.refund"], 3), json!([]), 0.12)})).await;
    assert_eq!(r1["decision"], "allow", "{r1}");
    assert_eq!(r1["policy_version"], "default@0.1.0");
    let chain_id = r1["chain_id"].as_str().unwrap().to_string();
    let res = &r1["reservations"][0];
    assert_eq!(res["scope_path"], "tenant:acme/agent:refund-agent");
    let rid = res["reservation_id"].as_str().unwrap();
    let got = http.tenant(&key, Method::GET, &format!("/v1/reservations/{rid}"), None).await;
    assert_eq!(got.body["reserved"]["amount"], 500_000_000);
    let b = http.balance(&key, "acme", "tenant:acme").await;
    assert_eq!(b["reserved"]["amount"], 500_000_000);

    // Hop 2 continues the chain with the granted child mandate.
    let grant = &r1["verdict"]["allow"];
    let link1 = json!([{"from": "orchestrator", "to": "refund-agent", "depth": 1, "alpha": grant["alpha"], "at": now() - 10}]);
    let hop2 = hop(("refund-agent", 720), ("ledger-agent", 680), "medium", grant["child_mandate"].clone(), mandate(200_000_000, &["payment.refund"], 2), link1.clone(), 0.12);
    let token1 = r1["child_token"].as_str().expect("an allowed hop returns the child's token").to_string();
    // Without the token, with a tampered one, or presented by someone else: refused, nothing recorded.
    let r = http.tenant(&key, Method::POST, "/v1/delegations", Some(json!({"request": hop2}))).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED")), "{:?}", r.body);
    let mut tampered = token1.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let r = http.tenant(&key, Method::POST, "/v1/delegations", Some(json!({"request": hop2, "token": String::from_utf8(tampered).unwrap()}))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    let mut stolen = hop2.clone();
    stolen["from"]["id"] = json!("ledger-agent");
    stolen["to"]["id"] = json!("fx-agent");
    let r = http.tenant(&key, Method::POST, "/v1/delegations", Some(json!({"request": stolen, "token": token1}))).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")), "{:?}", r.body);
    let r2 = delegate(&http, &key, json!({"chain_id": chain_id, "request": hop2, "token": token1})).await;
    assert_eq!(r2["decision"], "allow", "{r2}");
    assert_eq!(r2["chain_id"], chain_id.as_str());

    // Hop 3 closes a cycle: the component denies 1002; nothing is reserved.
    let mut links = link1.as_array().unwrap().clone();
    links.push(json!({"from": "refund-agent", "to": "ledger-agent", "depth": 2, "alpha": r2["verdict"]["allow"]["alpha"], "at": now() - 5}));
    let r3 = delegate(&http, &key, json!({"token": r2["child_token"], "request": hop(("ledger-agent", 680), ("orchestrator", 900), "medium", r2["verdict"]["allow"]["child_mandate"].clone(), mandate(100_000_000, &["payment.refund"], 1), json!(links), 0.12)})).await;
    assert_eq!(r3["decision"], "deny");
    assert_eq!(r3["verdict"]["deny"]["code"], 1002);
    assert_eq!(r3["reservations"].as_array().unwrap().len(), 0);

    // The chain, in order, with delegator, delegate, depth, time, task, verdict, policy version.
    let chain = http.tenant(&key, Method::GET, &format!("/v1/chains/{chain_id}"), None).await;
    let events = chain.body["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 3);
    let summary: Vec<(String, String, i64, String)> = events
        .iter()
        .map(|e| (e["delegator"].as_str().unwrap().into(), e["delegate"].as_str().unwrap().into(), e["depth"].as_i64().unwrap(), e["decision"].as_str().unwrap().into()))
        .collect();
    assert_eq!(summary, [
        ("orchestrator".into(), "refund-agent".into(), 1, "allow".into()),
        ("refund-agent".into(), "ledger-agent".into(), 2, "allow".into()),
        ("ledger-agent".into(), "orchestrator".into(), 3, "deny".into()),
    ]);
    for e in &events {
        assert_eq!(e["policy_version"], "default@0.1.0");
        assert_eq!(e["task"]["id"], "refund-4821");
        assert!(e["at_ms"].as_i64().unwrap() > 0);
        assert!(e["verdict"].is_object());
    }
    // Another tenant cannot see it; an unknown chain is 404.
    let other = http.provision("globex").await;
    assert_eq!(http.tenant(&other, Method::GET, &format!("/v1/chains/{chain_id}"), None).await.status, StatusCode::NOT_FOUND);

    // Outcome: a failure penalises every agent of the executed chain (penalty propagation).
    let r = http.tenant(&key, Method::POST, &format!("/v1/chains/{chain_id}/outcome"), Some(json!({"outcome": "failure", "magnitude": 50.0, "reported_by": "auditor"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["chain"], json!(["orchestrator", "refund-agent", "ledger-agent"]));
    let t = http.tenant(&key, Method::GET, "/v1/agents/refund-agent/trust", None).await;
    assert_eq!(t.body["score"], 670.0);
    // The stored score replaces what the caller claims on the next delegation.
    let r4 = delegate(&http, &key, json!({"request": hop(("orchestrator", 900), ("refund-agent", 999), "medium", mandate(5_000_000_000, &["payment.*"], 4), mandate(100_000_000, &["payment.refund"], 3), json!([]), 0.12)})).await;
    let c4 = http.tenant(&key, Method::GET, &format!("/v1/chains/{}", r4["chain_id"].as_str().unwrap()), None).await;
    assert_eq!(c4.body["events"][0]["delegate_trust"], 670);
    assert_eq!(c4.body["events"][0]["delegator_trust"], 850);

    // Restart on the same data directory: the trace and the trust scores are still there.
    let before = chain.body.clone();
    gw.stop().await;
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let after = http.tenant(&key, Method::GET, &format!("/v1/chains/{chain_id}"), None).await;
    let after_events = after.body["events"].as_array().unwrap();
    assert_eq!(&after_events[..3], &before["events"].as_array().unwrap()[..]);
    assert_eq!(after_events[3]["decision"], "outcome");
    let t = http.tenant(&key, Method::GET, "/v1/agents/ledger-agent/trust", None).await;
    assert_eq!(t.body["score"], 630.0);
    gw.stop().await;

    // Append-only: the store itself refuses to rewrite or delete a trace event.
    let conn = rusqlite::Connection::open(dir.path().join("sbd.sqlite3")).unwrap();
    assert!(conn.execute("UPDATE trace_events SET decision = 'allow' WHERE decision = 'deny'", []).is_err());
    assert!(conn.execute("DELETE FROM trace_events", []).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalations_queue_targets_and_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let key = http.provision("acme").await;
    let op = http.operator(&key);
    // Decisions are made by approver keys; the decider is the key's principal.
    let alice = http.key("acme", "approver", "alice@risk").await;
    let supervisor = http.key("acme", "approver", "supervisor-bot").await;
    let carol = http.key("acme", "approver", "carol").await;
    http.budget(&key, "tenant:acme", "USD_MICROCENTS", 10_000_000_000, json!({})).await;
    for (id, caps, trust, max) in [("junior-bot", json!(["*"]), 700, 5), ("senior-bot", json!(["payment.*"]), 850, 1), ("crm-bot", json!(["crm.*"]), 990, 5)] {
        let r = http.tenant(&op, Method::POST, "/v1/escalation-targets", Some(json!({"agent_id": id, "capabilities": caps, "trust": trust, "tier": "T4", "max_concurrent": max}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let targets = http.tenant(&op, Method::GET, "/v1/escalation-targets", None).await;
    let order: Vec<&str> = targets.body["targets"].as_array().unwrap().iter().map(|t| t["agent_id"].as_str().unwrap()).collect();
    assert_eq!(order, ["crm-bot", "senior-bot", "junior-bot"]);

    // 38% volatility caps alpha under the review threshold: the component escalates to the human.
    let root = mandate(5_000_000_000, &["payment.*"], 4);
    let r = delegate(&http, &key, json!({"request": hop(("orchestrator", 900), ("refund-agent", 720), "medium", root.clone(), mandate(500_000_000, &["payment.refund"], 3), json!([]), 0.38)})).await;
    assert_eq!(r["decision"], "escalate", "{r}");
    let esc = &r["escalation"];
    assert_eq!(esc["status"], "PENDING");
    assert_eq!(esc["assignee"], "risk-officer");
    // Multipath: the named human, then capable agents by descending trust (crm-bot cannot).
    let paths: Vec<&str> = esc["paths"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(paths, ["risk-officer", "senior-bot", "junior-bot"]);
    let ttl = esc["expires_at_ms"].as_i64().unwrap() - esc["created_at_ms"].as_i64().unwrap();
    assert_eq!(ttl, 300_000, "default TTL is 5 minutes");
    let id = esc["id"].as_str().unwrap().to_string();
    let q = http.tenant(&alice, Method::GET, "/v1/escalations?status=PENDING", None).await;
    assert_eq!(q.body["escalations"].as_array().unwrap().len(), 1);
    // Approve with constraints: who and when are recorded.
    let a = http.tenant(&alice, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({"constraints": {"max_value": 100}}))).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["decision"], "APPROVED_WITH_CONSTRAINTS");
    assert_eq!(a.body["decided_by"], "alice@risk");
    assert!(a.body["decided_at_ms"].as_i64().unwrap() > 0);
    let again = http.tenant(&carol, Method::POST, &format!("/v1/escalations/{id}/deny"), Some(json!({}))).await;
    assert_eq!((again.status, again.body["error"].as_str()), (StatusCode::CONFLICT, Some("ESCALATION_CLOSED")));
    // The decision is in the chain's trace.
    let chain = http.tenant(&key, Method::GET, &format!("/v1/chains/{}", r["chain_id"].as_str().unwrap()), None).await;
    let last = chain.body["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["decision"], "escalation-decision");
    assert_eq!(last["decided_by"], "alice@risk");

    // Upward trust escalation to an agent; approve without constraints, deny, delegate.
    let mut decisions = Vec::new();
    for (verb, decider, body) in [
        ("approve", &supervisor, json!({})),
        ("deny", &carol, json!({"note": "no"})),
        ("delegate", &carol, json!({"to": "senior-bot"})),
    ] {
        let r = delegate(&http, &key, json!({"request": hop(("orchestrator", 900), ("intern-bot", 300), "high", root.clone(), mandate(100_000_000, &["payment.refund"], 3), json!([]), 0.12)})).await;
        assert_eq!(r["decision"], "escalate", "{r}");
        assert_eq!(r["escalation"]["target"], json!({"kind": "agent", "id": "supervisor-bot"}));
        let id = r["escalation"]["id"].as_str().unwrap();
        let d = http.tenant(decider, Method::POST, &format!("/v1/escalations/{id}/{verb}"), Some(body)).await;
        assert_eq!(d.status, StatusCode::OK, "{:?}", d.body);
        decisions.push(d.body["decision"].as_str().unwrap().to_string());
        if verb == "delegate" {
            let next = d.body["next_escalation_id"].as_str().unwrap();
            let n = http.tenant(decider, Method::GET, &format!("/v1/escalations/{next}"), None).await;
            assert_eq!((n.body["status"].as_str(), n.body["assignee"].as_str()), (Some("PENDING"), Some("senior-bot")));
        }
    }
    assert_eq!(decisions, ["APPROVED_AND_EXECUTED", "DENIED", "DELEGATED"]);
    // Bad decisions change nothing.
    let r = http.tenant(&alice, Method::POST, "/v1/escalations/esc_missing/approve", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = http.tenant(&op, Method::POST, "/v1/escalation-targets", Some(json!({"agent_id": "x", "capabilities": [], "trust": 2000, "tier": "T9", "max_concurrent": 0}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalations_expire_after_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.escalation_ttl_ms = 300;
    let gw = sbd_gateway::serve::start(config).await.unwrap();
    let http = Http::new(gw.url());
    let key = http.provision("acme").await;
    let approver = http.key("acme", "approver", "late-reviewer").await;
    let r = delegate(&http, &key, json!({"request": hop(("orchestrator", 900), ("refund-agent", 720), "medium", mandate(5_000_000_000, &["payment.*"], 4), mandate(500_000_000, &["payment.refund"], 3), json!([]), 0.38)})).await;
    let id = r["escalation"]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let e = http.tenant(&approver, Method::GET, &format!("/v1/escalations/{id}"), None).await;
    assert_eq!((e.body["status"].as_str(), e.body["decision"].as_str()), (Some("EXPIRED"), Some("EXPIRED")), "{:?}", e.body);
    let a = http.tenant(&approver, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({}))).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toolset_risk_points_budgets_are_action_masks() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let key = http.provision("acme").await;
    http.budget(&key, "tenant:acme", "USD_MICROCENTS", 10_000_000_000, json!({})).await;
    let body = || json!({"request": hop(("orchestrator", 900), ("refund-agent", 720), "medium", mandate(5_000_000_000, &["payment.*"], 4), mandate(100_000_000, &["payment.refund"], 3), json!([]), 0.12)});
    // No masks configured: allowed.
    assert_eq!(delegate(&http, &key, body()).await["decision"], "allow");
    // A RISK_POINTS budget on another toolset switches masks on: no payment budget, no action.
    http.budget(&key, "tenant:acme/toolset:crm", "RISK_POINTS", 10, json!({})).await;
    let r = delegate(&http, &key, body()).await;
    assert_eq!(r["decision"], "deny", "{r}");
    assert_eq!(r["ledger_refusal"]["error"], "FORBIDDEN");
    // 3 points on payment: one medium task (2 points) fits, the second does not.
    http.budget(&key, "tenant:acme/toolset:payment", "RISK_POINTS", 3, json!({})).await;
    let r = delegate(&http, &key, body()).await;
    assert_eq!(r["decision"], "allow", "{r}");
    assert_eq!(r["reservations"].as_array().unwrap().len(), 2);
    let r = delegate(&http, &key, body()).await;
    assert_eq!(r["decision"], "deny");
    assert_eq!(r["ledger_refusal"]["error"], "BUDGET_EXCEEDED");
    // The refused hop left no USD hold behind (all or nothing).
    let b = http.balance(&key, "acme", "tenant:acme").await;
    assert_eq!(b["reserved"]["amount"], 200_000_000);
    gw.stop().await;
}

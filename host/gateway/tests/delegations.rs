//! The delegation API: verdicts from the policy component, escrowed sub-budgets, traces
//! (append-only, kept across restarts), escalations (queue, targets, decisions that perform the
//! delegation, TTL), outcomes feeding the registry's trust, toolset action masks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{expiry, Http};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

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

fn hop(token: &Value, from: &str, to: &str, risk: &str, parent: Value, requested: Value, state: f64) -> Value {
    json!({"token": token, "request": {
        "from": {"id": from, "trust": 0},
        "to": {"id": to, "trust": 0},
        "task": {"id": "refund-4821", "action_kind": "payment.refund", "risk": risk, "value": 1_000_000, "counterparty": "acme"},
        "parent_mandate": parent,
        "requested_mandate": requested,
        "state": [state],
    }})
}

async fn delegate(http: &Http, key: &str, body: Value) -> Value {
    let r = http.delegate(key, body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

/// A tenant with $10 of USD budget and the demo's agents registered.
async fn tenant(http: &Http, name: &str) -> String {
    let key = http.provision(name).await;
    http.budget(&key, &format!("tenant:{name}"), "USD_MICROCENTS", 10_000_000_000, json!({})).await;
    for (agent, trust) in [("orchestrator", 900.0), ("refund-agent", 720.0), ("ledger-agent", 680.0), ("intern-bot", 300.0), ("fx-agent", 700.0)] {
        http.register(&key, agent, trust).await;
    }
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegations_decide_escrow_trace_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let key = tenant(&http, "acme").await;

    // The operator's root grant: $5 held from the tenant's $10.
    let root = mandate(5_000_000_000, &["crm.*", "payment.*"], 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let chain_id = grant["chain_id"].as_str().unwrap().to_string();
    assert_eq!(http.balance(&key, "acme", "tenant:acme").await["reserved"]["amount"], 5_000_000_000i64);

    // Hop 1: allowed and narrowed; the child's $0.50 is carved from the root's hold.
    let r1 = delegate(&http, &key, hop(&grant["token"], "orchestrator", "refund-agent", "medium", root.clone(), mandate(500_000_000, &["payment.refund"], 3), 0.12)).await;
    assert_eq!(r1["decision"], "allow", "{r1}");
    assert_eq!(r1["policy_version"], "default@0.1.0");
    assert_eq!(r1["chain_id"], chain_id.as_str());
    assert_eq!(r1["escrow"], json!([{"unit": "USD_MICROCENTS", "amount": 500_000_000}]));
    let root_node = http.tenant(&key, Method::GET, &format!("/v1/grants/{}", grant["grant_id"].as_str().unwrap()), None).await;
    assert_eq!(root_node.body["units"][0]["carved"], 500_000_000, "{:?}", root_node.body);
    assert_eq!(http.balance(&key, "acme", "tenant:acme").await["reserved"]["amount"], 5_000_000_000i64, "held once, at the root");

    // Hop 2 continues the chain with the granted child mandate and the child's token.
    let child = r1["verdict"]["allow"]["child_mandate"].clone();
    let hop2 = hop(&r1["child_token"], "refund-agent", "ledger-agent", "medium", child.clone(), mandate(200_000_000, &["payment.refund"], 2), 0.12);
    // Without the token, with a tampered one, or presented by someone else: refused, nothing recorded.
    let mut bare = hop2.clone();
    bare.as_object_mut().unwrap().remove("token");
    let r = http.delegate(&key, bare).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let token1 = r1["child_token"].as_str().unwrap().to_string();
    let mut tampered = token1.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let mut t = hop2.clone();
    t["token"] = json!(String::from_utf8(tampered).unwrap());
    let r = http.delegate(&key, t).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    let mut stolen = hop2.clone();
    stolen["request"]["from"]["id"] = json!("ledger-agent");
    stolen["request"]["to"]["id"] = json!("fx-agent");
    let r = http.delegate(&key, stolen).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")), "{:?}", r.body);
    let r2 = delegate(&http, &key, hop2).await;
    assert_eq!(r2["decision"], "allow", "{r2}");
    assert_eq!(r2["chain_id"], chain_id.as_str());

    // Hop 3 closes a cycle: the component denies 1002; nothing is carved.
    let r3 = delegate(&http, &key, hop(&r2["child_token"], "ledger-agent", "orchestrator", "medium", r2["verdict"]["allow"]["child_mandate"].clone(), mandate(100_000_000, &["payment.refund"], 1), 0.12)).await;
    assert_eq!(r3["decision"], "deny");
    assert_eq!(r3["verdict"]["deny"]["code"], 1002);
    assert!(r3.get("grant_id").is_none(), "{r3}");

    // The chain, in order: the root grant, then every hop with its verdict and policy version.
    let chain = http.tenant(&key, Method::GET, &format!("/v1/chains/{chain_id}"), None).await;
    let events = chain.body["events"].as_array().unwrap().clone();
    let summary: Vec<(String, String, i64, String)> = events
        .iter()
        .map(|e| (e["delegator"].as_str().unwrap().into(), e["delegate"].as_str().unwrap().into(), e["depth"].as_i64().unwrap(), e["decision"].as_str().unwrap().into()))
        .collect();
    assert_eq!(summary, [
        ("operator:test operator".into(), "orchestrator".into(), 0, "root-grant".into()),
        ("orchestrator".into(), "refund-agent".into(), 1, "allow".into()),
        ("refund-agent".into(), "ledger-agent".into(), 2, "allow".into()),
        ("ledger-agent".into(), "orchestrator".into(), 3, "deny".into()),
    ]);
    for e in &events[1..] {
        assert_eq!(e["policy_version"], "default@0.1.0");
        assert_eq!(e["task"]["id"], "refund-4821");
        assert!(e["at_ms"].as_i64().unwrap() > 0);
        assert!(e["verdict"].is_object());
    }
    // Another tenant cannot see it.
    let other = http.provision("globex").await;
    assert_eq!(http.tenant(&other, Method::GET, &format!("/v1/chains/{chain_id}"), None).await.status, StatusCode::NOT_FOUND);

    // Outcome: a failure penalises every agent of the executed chain in the registry.
    let r = http.tenant(&http.operator(&key), Method::POST, &format!("/v1/chains/{chain_id}/outcome"), Some(json!({"outcome": "failure", "magnitude": 50.0}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["chain"], json!(["orchestrator", "refund-agent", "ledger-agent"]));
    let t = http.tenant(&key, Method::GET, "/v1/agents/refund-agent/trust", None).await;
    assert_eq!(t.body["score"], 670.0);
    // The registry's score, never the caller's, decides the next delegation.
    let grant2 = http.root_grant(&key, "orchestrator", root.clone()).await;
    let mut claim = hop(&grant2["token"], "orchestrator", "refund-agent", "medium", root.clone(), mandate(100_000_000, &["payment.refund"], 3), 0.12);
    claim["request"]["to"]["trust"] = json!(999);
    let r4 = delegate(&http, &key, claim).await;
    let c4 = http.tenant(&key, Method::GET, &format!("/v1/chains/{}", r4["chain_id"].as_str().unwrap()), None).await;
    assert_eq!(c4.body["events"][1]["delegate_trust"], 670);
    assert_eq!(c4.body["events"][1]["delegator_trust"], 850);

    // Restart on the same data directory: the trace, the escrow and the scores are still there,
    // and the child's token still delegates.
    let before = chain.body.clone();
    gw.stop().await;
    let gw = common::gateway(dir.path()).await;
    let http = http.at(gw.url());
    let after = http.tenant(&key, Method::GET, &format!("/v1/chains/{chain_id}"), None).await;
    let after_events = after.body["events"].as_array().unwrap();
    assert_eq!(&after_events[..4], &before["events"].as_array().unwrap()[..]);
    assert_eq!(after_events[4]["decision"], "outcome");
    let t = http.tenant(&key, Method::GET, "/v1/agents/ledger-agent/trust", None).await;
    assert_eq!(t.body["score"], 630.0);
    let r = delegate(&http, &key, hop(&r1["child_token"], "refund-agent", "fx-agent", "medium", child, mandate(100_000_000, &["payment.refund"], 2), 0.12)).await;
    assert_eq!(r["decision"], "allow", "{r}");
    gw.stop().await;

    // Append-only: the store itself refuses to rewrite or delete a trace event.
    if common::sqlite_only("SQLite's append-only triggers on the trace") {
        return;
    }
    let conn = rusqlite::Connection::open(dir.path().join("sbd.sqlite3")).unwrap();
    assert!(conn.execute("UPDATE trace_events SET decision = 'allow' WHERE decision = 'deny'", []).is_err());
    assert!(conn.execute("DELETE FROM trace_events", []).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalations_queue_targets_and_decisions_that_perform_the_delegation() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let key = tenant(&http, "acme").await;
    for (id, caps, trust, max) in [("junior-bot", json!(["*"]), 700, 5), ("senior-bot", json!(["payment.*"]), 850, 1), ("crm-bot", json!(["crm.*"]), 990, 5)] {
        let r = http.tenant(&http.operator(&key), Method::POST, "/v1/escalation-targets", Some(json!({"agent_id": id, "capabilities": caps, "trust": trust, "tier": "T4", "max_concurrent": max}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let targets = http.tenant(&http.operator(&key), Method::GET, "/v1/escalation-targets", None).await;
    let order: Vec<&str> = targets.body["targets"].as_array().unwrap().iter().map(|t| t["agent_id"].as_str().unwrap()).collect();
    assert_eq!(order, ["crm-bot", "senior-bot", "junior-bot"]);

    // 38% volatility caps alpha under the review threshold: the component escalates to the human.
    let root = mandate(5_000_000_000, &["payment.*"], 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let r = delegate(&http, &key, hop(&grant["token"], "orchestrator", "refund-agent", "medium", root.clone(), mandate(500_000_000, &["payment.refund"], 3), 0.38)).await;
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
    // Decisions are made by approver keys; the decider is the key's principal and must be the
    // one the escalation is assigned to.
    let risk_officer = http.key("acme", "approver", "risk-officer").await;
    let supervisor = http.key("acme", "approver", "supervisor-bot").await;
    let carol = http.key("acme", "approver", "carol").await;
    let q = http.tenant(&risk_officer, Method::GET, "/v1/escalations?status=PENDING", None).await;
    assert_eq!(q.body["escalations"].as_array().unwrap().len(), 1);
    // Constraints that would widen the mandate are refused.
    let forged = http.tenant(&risk_officer, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({"decided_by": "someone-else"}))).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST, "decided_by is never a body field: {:?}", forged.body);
    let other = http.tenant(&carol, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({}))).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "assigned to risk-officer: {:?}", other.body);
    let as_agent = http.tenant(&key, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({}))).await;
    assert_eq!(as_agent.status, StatusCode::FORBIDDEN, "{:?}", as_agent.body);
    let wide = http.tenant(&risk_officer, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({"constraints": {"value_ceiling": 90_000_000_000u64}}))).await;
    assert_eq!(wide.status, StatusCode::BAD_REQUEST, "{:?}", wide.body);
    // Approving with constraints performs the delegation: token, escrow, narrowed mandate.
    let a = http.tenant(&risk_officer, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({"constraints": {"value_ceiling": 100}}))).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["decision"], "APPROVED_WITH_CONSTRAINTS");
    assert_eq!(a.body["decided_by"], "risk-officer");
    assert!(a.body["decided_at_ms"].as_i64().unwrap() > 0);
    let performed = &a.body["delegation"];
    assert_eq!(performed["mandate"]["value_ceiling"], 100, "{performed}");
    assert_eq!(performed["escrow"], json!([{"unit": "USD_MICROCENTS", "amount": 500_000_000}]));
    let child_grant = http.tenant(&key, Method::GET, &format!("/v1/grants/{}", performed["grant_id"].as_str().unwrap()), None).await;
    assert_eq!(child_grant.body["status"], "ACTIVE", "{:?}", child_grant.body);
    // The approved child can delegate with the token the approval issued.
    let next = delegate(&http, &key, hop(&performed["child_token"], "refund-agent", "ledger-agent", "medium", performed["mandate"].clone(),
        json!({"value_ceiling": 100, "action_kinds": ["payment.refund"], "counterparties": ["acme"], "budgets": [{"unit": "USD_MICROCENTS", "amount": 1_000}], "remaining_depth": 1, "expires_at": expiry()}), 0.12)).await;
    assert_ne!(next["decision"], Value::Null, "{next}");
    let again = http.tenant(&carol, Method::POST, &format!("/v1/escalations/{id}/deny"), Some(json!({}))).await;
    assert_eq!((again.status, again.body["error"].as_str()), (StatusCode::CONFLICT, Some("ESCALATION_CLOSED")));
    // The decision and the performed hop are in the chain's trace.
    let chain = http.tenant(&key, Method::GET, &format!("/v1/chains/{}", r["chain_id"].as_str().unwrap()), None).await;
    let kinds: Vec<&str> = chain.body["events"].as_array().unwrap().iter().map(|e| e["decision"].as_str().unwrap()).collect();
    assert!(kinds.windows(2).any(|w| w == ["allow", "escalation-decision"]), "{kinds:?}");

    // Upward trust escalation to an agent; approve without constraints, deny, delegate.
    let mut decisions = Vec::new();
    for (verb, body) in [("approve", json!({})), ("deny", json!({"note": "no"})), ("delegate", json!({"to": "senior-bot"}))] {
        let mut h = hop(&grant["token"], "orchestrator", "intern-bot", "high", root.clone(), mandate(100_000_000, &["payment.refund"], 3), 0.12);
        h["request"]["task"]["id"] = json!(format!("task-{verb}"));
        let r = delegate(&http, &key, h).await;
        assert_eq!(r["decision"], "escalate", "{r}");
        assert_eq!(r["escalation"]["target"], json!({"kind": "agent", "id": "supervisor-bot"}));
        let id = r["escalation"]["id"].as_str().unwrap();
        let d = http.tenant(&supervisor, Method::POST, &format!("/v1/escalations/{id}/{verb}"), Some(body)).await;
        assert_eq!(d.status, StatusCode::OK, "{:?}", d.body);
        decisions.push(d.body["decision"].as_str().unwrap().to_string());
        if verb == "delegate" {
            let next = d.body["next_escalation_id"].as_str().unwrap();
            let n = http.tenant(&supervisor, Method::GET, &format!("/v1/escalations/{next}"), None).await;
            assert_eq!((n.body["status"].as_str(), n.body["assignee"].as_str()), (Some("PENDING"), Some("senior-bot")));
        }
    }
    assert_eq!(decisions, ["APPROVED_AND_EXECUTED", "DENIED", "DELEGATED"]);
    // Bad decisions change nothing.
    let r = http.tenant(&supervisor, Method::POST, "/v1/escalations/esc_missing/approve", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = http.tenant(&http.operator(&key), Method::POST, "/v1/escalation-targets", Some(json!({"agent_id": "x", "capabilities": [], "trust": 2000, "tier": "T9", "max_concurrent": 0}))).await;
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
    let key = tenant(&http, "acme").await;
    let root = mandate(5_000_000_000, &["payment.*"], 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let r = delegate(&http, &key, hop(&grant["token"], "orchestrator", "refund-agent", "medium", root, mandate(500_000_000, &["payment.refund"], 3), 0.38)).await;
    let id = r["escalation"]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let risk_officer = http.key("acme", "approver", "risk-officer").await;
    let e = http.tenant(&risk_officer, Method::GET, &format!("/v1/escalations/{id}"), None).await;
    assert_eq!((e.body["status"].as_str(), e.body["decision"].as_str()), (Some("EXPIRED"), Some("EXPIRED")), "{:?}", e.body);
    let a = http.tenant(&risk_officer, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({}))).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toolset_risk_points_budgets_are_action_masks() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let key = tenant(&http, "acme").await;
    let root = mandate(5_000_000_000, &["payment.*"], 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let body = |task: &str| {
        let mut h = hop(&grant["token"], "orchestrator", "refund-agent", "medium", root.clone(), mandate(100_000_000, &["payment.refund"], 3), 0.12);
        h["request"]["task"]["id"] = json!(task);
        h
    };
    // No masks configured: allowed.
    assert_eq!(delegate(&http, &key, body("t1")).await["decision"], "allow");
    // A RISK_POINTS budget on another toolset switches masks on: no payment budget, no action.
    // The policy component decides it, on the gateway's facts, with its reason code.
    http.budget(&key, "tenant:acme/toolset:crm", "RISK_POINTS", 10, json!({})).await;
    let r = http.delegate(&key, body("t2")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!((r.body["decision"].as_str(), r.body["verdict"]["deny"]["code"].as_u64()), (Some("deny"), Some(6004)), "{:?}", r.body);
    // 3 points on payment: one medium task (2 points) fits, the second does not.
    http.budget(&key, "tenant:acme/toolset:payment", "RISK_POINTS", 3, json!({})).await;
    let r = delegate(&http, &key, body("t3")).await;
    assert_eq!(r["decision"], "allow", "{r}");
    assert_eq!(r["reservations"].as_array().unwrap().len(), 1);
    assert_eq!(r["reservations"][0]["spent"]["amount"], 2, "the cost the rule checked is the cost spent");
    let r = http.delegate(&key, body("t4")).await;
    assert_eq!(r.body["reason"], "action-mask-exhausted", "{:?}", r.body);
    assert!(r.body["verdict"]["deny"]["message"].as_str().unwrap().contains("1 risk points left"), "{:?}", r.body);
    // A caller cannot supply its own mask: the gateway's facts replace it.
    let mut forged = body("t5");
    forged["request"]["action_mask"] = json!({"toolsets": [{"toolset": "payment", "remaining": 1000}], "cost": 0});
    let r = http.delegate(&key, forged).await;
    assert_eq!(r.body["reason"], "action-mask-exhausted", "{:?}", r.body);
    // The refused hops carved nothing (all or nothing): two children of $1 each.
    let root_node = http.tenant(&key, Method::GET, &format!("/v1/grants/{}", grant["grant_id"].as_str().unwrap()), None).await;
    assert_eq!(root_node.body["units"][0]["carved"], 200_000_000, "{:?}", root_node.body);
    gw.stop().await;
}

/// The mask's points are spent on exactly the toolset budget its facts came from: naming other
/// budgeting levels (`subject.workspace`) does not move the charge elsewhere, and the points do
/// not come back when the child's grant expires (review finding: the hold landed on
/// `tenant:T/workspace:W/toolset:X` and only ever expired).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_mask_spends_on_its_toolset_whatever_the_subject_names() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let key = tenant(&http, "acme").await;
    http.budget(&key, "tenant:acme", "RISK_POINTS", 100, json!({})).await;
    http.budget(&key, "tenant:acme/workspace:x", "RISK_POINTS", 100, json!({})).await;
    http.budget(&key, "tenant:acme/toolset:payment", "RISK_POINTS", 3, json!({})).await;
    let root = mandate(5_000_000_000, &["payment.*"], 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let body = |task: &str, expires_at: u64| {
        let mut requested = mandate(100_000_000, &["payment.refund"], 3);
        requested["expires_at"] = json!(expires_at);
        let mut h = hop(&grant["token"], "orchestrator", "refund-agent", "medium", root.clone(), requested, 0.12);
        h["request"]["task"]["id"] = json!(task);
        h["subject"] = json!({"workspace": "x"});
        h
    };
    // a child that expires in a second: under the old hold its points came back with it
    let soon = u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap() + 1_000;
    let r = delegate(&http, &key, body("t1", soon)).await;
    assert_eq!(r["decision"], "allow", "{r}");
    let toolset = http.balance(&key, "acme", "tenant:acme/toolset:payment").await;
    assert_eq!((toolset["spent"]["amount"].as_i64(), toolset["reserved"]["amount"].as_i64()), (Some(2), Some(0)), "{toolset}");
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let r = http.delegate(&key, body("t2", expiry())).await;
    assert_eq!((r.body["decision"].as_str(), r.body["reason"].as_str()), (Some("deny"), Some("action-mask-exhausted")), "{:?}", r.body);
    gw.stop().await;
}

/// An approval overrides the escalating rule, not the action mask: the rule runs again on the
/// facts at the approval (a structural escalation never reached it), and an approved hop spends
/// its points like an allowed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_meets_the_action_mask_on_the_facts_of_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let key = tenant(&http, "acme").await;
    http.budget(&key, "tenant:acme/toolset:payment", "RISK_POINTS", 3, json!({})).await;
    let root = mandate(5_000_000_000, &["payment.*"], 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let escalating = |task: &str| {
        let mut h = hop(&grant["token"], "orchestrator", "refund-agent", "medium", root.clone(), mandate(500_000_000, &["payment.refund"], 3), 0.38);
        h["request"]["task"]["id"] = json!(task);
        h
    };
    let first = delegate(&http, &key, escalating("t1")).await;
    let second = delegate(&http, &key, escalating("t2")).await;
    assert_eq!((first["decision"].as_str(), second["decision"].as_str()), (Some("escalate"), Some("escalate")), "{first} {second}");
    let risk_officer = http.key("acme", "approver", "risk-officer").await;
    let approve = |id: &Value| {
        let path = format!("/v1/escalations/{}/approve", id.as_str().unwrap());
        let (http, key) = (&http, risk_officer.clone());
        async move { http.tenant(&key, Method::POST, &path, Some(json!({}))).await }
    };
    // the first approval spends 2 of the 3 points
    let a = approve(&first["escalation"]["id"]).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["delegation"]["reservations"][0]["spent"]["amount"], 2, "{:?}", a.body);
    let toolset = http.balance(&key, "acme", "tenant:acme/toolset:payment").await;
    assert_eq!(toolset["spent"]["amount"], 2, "{toolset}");
    // the second finds 1 point left: refused with the rule's code, nothing performed
    let b = approve(&second["escalation"]["id"]).await;
    assert_eq!((b.status, b.body["error"].as_str()), (StatusCode::CONFLICT, Some("BUDGET_EXCEEDED")), "{:?}", b.body);
    assert!(b.body["message"].as_str().unwrap().contains("6005 action-mask-exhausted"), "{:?}", b.body);
    let root_node = http.tenant(&key, Method::GET, &format!("/v1/grants/{}", grant["grant_id"].as_str().unwrap()), None).await;
    assert_eq!(root_node.body["units"][0]["carved"], 500_000_000, "one approved child only: {:?}", root_node.body);
    gw.stop().await;
}

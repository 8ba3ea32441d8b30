//! Outcome reports and open roots, from an adversarial review of the outcome rule: who may
//! move a registry trust score, once, and on what; and reads that see one committed state.
//! The tests marked "found by the review" failed on 58e032a.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{hop, mandate, Http};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// An authority tenant with open roots on.
async fn setup() -> (tempfile::TempDir, sbd_gateway::serve::Running, Http, String) {
    let (dir, gw, http, key) = common::authority_gateway().await;
    let r = http.tenant(&http.operator(&key), Method::PUT, "/v1/authority/settings", Some(json!({"open_roots": true}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    (dir, gw, http, key)
}

async fn trust(http: &Http, key: &str, agent: &str) -> f64 {
    let t = http.tenant(&http.operator(key), Method::GET, &format!("/v1/agents/{agent}/trust"), None).await;
    t.body["score"].as_f64().unwrap()
}

/// An open root of `from` handing a low-risk task to `to`; returns the new chain id.
async fn open_root(http: &Http, key: &str, from: &str, to: &str, task: &str) -> String {
    let mut body = hop("x", from, to, &mandate(2_500, 5), mandate(10, 4));
    body.as_object_mut().unwrap().remove("token");
    body["request"]["task"]["id"] = json!(task);
    body["request"]["task"]["risk"] = json!("low");
    let r = http.delegate(key, body).await;
    assert_eq!((r.status, r.body["decision"].as_str()), (StatusCode::OK, Some("allow")), "{:?}", r.body);
    r.body["chain_id"].as_str().unwrap().to_string()
}

/// Found by the review: with `open_roots`, every agent key originates chains at will, and the
/// originator could report any magnitude: agent `a` alone zeroed `orchestrator`'s trust
/// (900 -> 0) without it taking part in anything, and two colluding keys lifted each other to
/// 1000. "Once per chain" bounds nothing when chains are free, so an agent key reports only on
/// a root an operator granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_root_does_not_let_an_agent_set_another_agents_trust() {
    let (_dir, _gw, http, key) = setup().await;
    let before = trust(&http, &key, "orchestrator").await;
    let chain = open_root(&http, &key, "a", "orchestrator", "grief-1").await;
    let a_key = http.agent_key(&key, "a").await;
    let r = http
        .tenant(&a_key, Method::POST, &format!("/v1/chains/{chain}/outcome"), Some(json!({"outcome": "failure", "magnitude": 1000.0})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let after = trust(&http, &key, "orchestrator").await;
    assert_eq!(
        after, before,
        "agent `a`'s self-opened chain let its key move orchestrator's trust from {before} to {after} (report: {:?} {:?})",
        r.status, r.body
    );
}

/// Colluding pair: `a` opens a -> b and reports success 1000, `b` opens b -> a and does the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agent_keys_cannot_lift_each_other_with_open_roots() {
    let (_dir, _gw, http, key) = setup().await;
    for (from, to) in [("a", "b"), ("b", "a")] {
        let chain = open_root(&http, &key, from, to, &format!("lift-{from}")).await;
        let k = http.agent_key(&key, from).await;
        let r = http
            .tenant(&k, Method::POST, &format!("/v1/chains/{chain}/outcome"), Some(json!({"outcome": "success", "magnitude": 1000.0})))
            .await;
        let _ = r;
    }
    let (a, b) = (trust(&http, &key, "a").await, trust(&http, &key, "b").await);
    assert!(a < 1000.0 && b < 1000.0, "two agent keys lifted each other from 720 to a={a} b={b}");
}

/// Found by the review: `limits.max_root_grant_ms` (24 h) bounded operator root grants only;
/// an open root's mandate (the caller's own parent mandate) was never checked against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_root_is_bounded_by_max_root_grant_ms() {
    let (_dir, _gw, http, key) = setup().await;
    let mut parent = mandate(2_500, 5);
    let far = common::expiry() + 30 * 86_400_000; // 30 days past the usual expiry
    parent["expires_at"] = json!(far);
    let mut body = hop("x", "a", "b", &parent, mandate(10, 4));
    body.as_object_mut().unwrap().remove("token");
    body["request"]["task"]["risk"] = json!("low");
    let r = http.delegate(&key, body).await;
    if r.body["decision"] == "allow" {
        let chain = r.body["chain_id"].as_str().unwrap();
        let tree = http.tenant(&http.operator(&key), Method::GET, &format!("/v1/chains/{chain}/grants"), None).await;
        panic!("an open root lasting 30+ days was recorded (limit 24 h): {:?}", tree.body["grants"][0]);
    }
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
}

/// Sixteen concurrent reports by the originator record exactly one outcome; another tenant's
/// agent of the same name and a reader key cannot report.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_outcome_reports_record_one() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let r = http.delegate(&key, hop(grant["token"].as_str().unwrap(), "orchestrator", "a", &root, mandate(100, 3))).await;
    assert_eq!(r.body["decision"], "allow", "{:?}", r.body);
    let chain = grant["chain_id"].as_str().unwrap().to_string();
    let orch = http.agent_key(&key, "orchestrator").await;
    let path = format!("/v1/chains/{chain}/outcome");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, orch, path) = (http.clone(), orch.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            http.tenant(&orch, Method::POST, &path, Some(json!({"outcome": "success", "magnitude": 10.0}))).await.status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == StatusCode::OK || s == StatusCode::CONFLICT, "{s}");
        ok += usize::from(s == StatusCode::OK);
    }
    assert_eq!(ok, 1);
    assert_eq!(trust(&http, &key, "a").await, 730.0);
    // Another tenant's agent of the same name cannot report on it: in its tenant the chain has
    // no root it originated.
    let other = http.authority_tenant("globex", 1_000_000).await;
    let g_orch = http.agent_key(&other, "orchestrator").await;
    let r = http.tenant(&g_orch, Method::POST, &path, Some(json!({"outcome": "failure", "magnitude": 1000.0}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(trust(&http, &key, "a").await, 730.0);
    // A reader key cannot report.
    let reader = http.key("acme", "reader", "r").await;
    let r = http.tenant(&reader, Method::POST, &path, Some(json!({"outcome": "failure", "magnitude": 1000.0}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
}

/// An approver (a named human of the tenant) may report on any chain, as the threat model
/// says, and the first report stands: the originator's later one is a 409. Found by the
/// review: the holder of a revoked root grant could still report; now it cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_reports_once_for_all_and_a_revoked_originator_cannot() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let r = http.delegate(&key, hop(grant["token"].as_str().unwrap(), "orchestrator", "a", &root, mandate(100, 3))).await;
    assert_eq!(r.body["decision"], "allow", "{:?}", r.body);
    let path = format!("/v1/chains/{}/outcome", grant["chain_id"].as_str().unwrap());
    let approver = http.key("acme", "approver", "some-approver").await;
    let r = http.tenant(&approver, Method::POST, &path, Some(json!({"outcome": "failure", "magnitude": 100.0}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(trust(&http, &key, "a").await, 620.0);
    let orch = http.agent_key(&key, "orchestrator").await;
    let r = http.tenant(&orch, Method::POST, &path, Some(json!({"outcome": "success", "magnitude": 1.0}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "one report per chain: {:?}", r.body);

    let grant = http.root_grant(&key, "b", root.clone()).await;
    let r = http.delegate(&key, hop(grant["token"].as_str().unwrap(), "b", "c", &root, mandate(100, 3))).await;
    assert_eq!(r.body["decision"], "allow", "{:?}", r.body);
    let gid = grant["grant_id"].as_str().unwrap();
    let r = http.tenant(&http.operator(&key), Method::POST, &format!("/v1/grants/{gid}/revoke"), Some(json!({}))).await;
    assert!(r.status.is_success(), "revoke: {:?} {:?}", r.status, r.body);
    let b = http.agent_key(&key, "b").await;
    let path = format!("/v1/chains/{}/outcome", grant["chain_id"].as_str().unwrap());
    let r = http.tenant(&b, Method::POST, &path, Some(json!({"outcome": "failure", "magnitude": 1000.0}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(trust(&http, &key, "c").await, 720.0);
}

/// Found by the review: reads on a reader connection ran each statement on its own, so a
/// chain's events and its signed head could come from two commits, and a sound trace read
/// while hops were appended looked broken (a 500 and a false tamper alarm). `Store::read` now
/// runs in one read transaction; `GET /v1/chains/{id}` reads that way while denied hops append
/// events to the same chain, and every answer must verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chain_read_while_hops_append_is_never_torn() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let tok = grant["token"].as_str().unwrap().to_string();
    let r = http.delegate(&key, hop(&tok, "orchestrator", "a", &root, mandate(100, 3))).await;
    assert_eq!(r.body["decision"], "allow", "{:?}", r.body);
    let path = format!("/v1/chains/{}", grant["chain_id"].as_str().unwrap());
    // Denied hops (over the parent's budget) each append an event to the chain.
    let writer = {
        let (http, key, tok, root) = (http.clone(), key.clone(), tok.clone(), root.clone());
        tokio::spawn(async move {
            for i in 0..300 {
                let mut b = hop(&tok, "orchestrator", "b", &root, mandate(1_000_000, 3));
                b["request"]["task"]["id"] = json!(format!("deny-{i}"));
                let r = http.delegate(&key, b).await;
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            }
        })
    };
    let reader = http.key("acme", "reader", "auditor").await;
    let mut reads = 0;
    while !writer.is_finished() {
        let r = http.tenant(&reader, Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["integrity"], "ok", "read {reads}: {}", r.body["integrity"]);
        reads += 1;
    }
    writer.await.unwrap();
    assert!(reads > 0);
}

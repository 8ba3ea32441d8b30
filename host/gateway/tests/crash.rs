//! kill -9 during a load, restart, and the ledger and traces are consistent: every
//! acknowledged commit is there exactly once, holds equal the ACTIVE reservations, every
//! acknowledged trace event is there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, reserve_body, spawn, wait_ready, Http};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn hop_request(token: &str, parent: &Value, i: usize) -> Value {
    let mut body = common::hop(token, "orchestrator", &format!("worker-{}", i % 16), parent, common::mandate(1, 3));
    body["request"]["task"]["id"] = json!(format!("t{i}"));
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_under_load_loses_no_commit_and_applies_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn(dir.path(), port);
    let http = Http::new(format!("http://127.0.0.1:{port}"));
    wait_ready(&http).await;
    let key = http.provision("acme").await;
    http.budget(&key, "tenant:acme", "USD_MICROCENTS", 1_000_000_000, json!({})).await;
    http.budget(&key, "tenant:acme", "TOKENS", 1_000_000_000, json!({})).await;
    http.register(&key, "orchestrator", 900.0).await;
    for w in 0..16 {
        http.register(&key, &format!("worker-{w}"), 720.0).await;
    }
    let root = common::mandate(1_000_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let root_token = grant["token"].as_str().unwrap().to_string();
    let orchestrator = http.agent_key(&key, "orchestrator").await;

    // Load: 16 workers reserve+commit (and delegate) until the process dies under them.
    type Acked = Arc<Mutex<Vec<(String, String, i64, Value)>>>;
    let acked_commits: Acked = Arc::default();
    let acked_hops: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..16usize {
        let (http, key, commits, hops) = (http.clone(), key.clone(), Arc::clone(&acked_commits), Arc::clone(&acked_hops));
        let (root_token, root, orchestrator) = (root_token.clone(), root.clone(), orchestrator.clone());
        workers.push(tokio::spawn(async move {
            for i in 0.. {
                let n = w * 1_000_000 + i;
                let req = http.client.post(format!("{}/v1/reservations", http.base)).header("x-cycles-api-key", &key).json(&reserve_body(&format!("r{n}"), "acme", 100));
                let Ok(resp) = req.send().await else { return };
                let Ok(body) = resp.json::<Value>().await else { return };
                let Some(id) = body["reservation_id"].as_str().map(String::from) else { return };
                let actual = (n % 100) as i64 + 1;
                let ck = format!("c{n}");
                let req = http.client.post(format!("{}/v1/reservations/{id}/commit", http.base)).header("x-cycles-api-key", &key)
                    .json(&json!({"idempotency_key": ck, "actual": {"unit": "USD_MICROCENTS", "amount": actual}}));
                let Ok(resp) = req.send().await else { return };
                if resp.status() != StatusCode::OK {
                    return;
                }
                let Ok(body) = resp.json::<Value>().await else { return };
                commits.lock().unwrap().push((id, ck, actual, body));
                if i % 4 == 0 {
                    let req = http.client.post(format!("{}/v1/delegations", http.base)).header("x-cycles-api-key", &orchestrator).json(&hop_request(&root_token, &root, n));
                    let Ok(resp) = req.send().await else { return };
                    let Ok(body) = resp.json::<Value>().await else { return };
                    if let (Some(c), Some(seq), Some("allow")) = (body["chain_id"].as_str(), body["seq"].as_i64(), body["decision"].as_str()) {
                        hops.lock().unwrap().push((c.to_string(), seq));
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    child.kill().expect("SIGKILL"); // std's Child::kill is SIGKILL on unix
    let _ = child.wait();
    for w in workers {
        let _ = w.await;
    }
    let commits = acked_commits.lock().unwrap().clone();
    let hops = acked_hops.lock().unwrap().clone();
    assert!(commits.len() > 50, "the load ran: {} commits acknowledged", commits.len());

    // Restart on the same directory.
    let mut child = spawn(dir.path(), port);
    wait_ready(&http).await;

    // Every acknowledged commit is COMMITTED with the charged amount.
    for (id, _, actual, _) in commits.iter().step_by(7) {
        let r = http.tenant(&key, Method::GET, &format!("/v1/reservations/{id}"), None).await;
        assert_eq!(r.body["status"], "COMMITTED", "{id}: {:?}", r.body);
        assert_eq!(r.body["committed"]["amount"], *actual);
    }
    // The ledger equals its reservations: spent = sum of COMMITTED, reserved = sum of ACTIVE.
    let (mut committed_sum, mut active_sum, mut committed_n) = (0i64, 0i64, 0usize);
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/reservations?limit=1000&cursor={c}"),
            None => "/v1/reservations?limit=1000".to_string(),
        };
        let r = http.tenant(&key, Method::GET, &path, None).await;
        for res in r.body["reservations"].as_array().unwrap() {
            if res["reserved"]["unit"] != "USD_MICROCENTS" {
                continue;
            }
            match res["status"].as_str().unwrap() {
                "COMMITTED" => {
                    committed_sum += res["committed"]["amount"].as_i64().unwrap();
                    committed_n += 1;
                }
                "ACTIVE" => active_sum += res["reserved"]["amount"].as_i64().unwrap(),
                _ => {}
            }
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert!(committed_n >= commits.len(), "an acknowledged commit was lost: {committed_n} < {}", commits.len());
    let b = http.balance(&key, "acme", "tenant:acme").await;
    let usd = http.tenant(&key, Method::GET, "/v1/balances?tenant=acme", None).await.body["balances"]
        .as_array().unwrap().iter().find(|b| b["spent"]["unit"] == "USD_MICROCENTS").cloned().unwrap();
    let _ = b;
    assert_eq!(usd["spent"]["amount"].as_i64().unwrap(), committed_sum, "ledger mismatch: {usd}");
    assert_eq!(usd["reserved"]["amount"].as_i64().unwrap(), active_sum, "hold mismatch: {usd}");

    // Replaying acknowledged commits returns the original answer and charges nothing more.
    for (id, ck, actual, body) in commits.iter().take(30) {
        let r = http.tenant(&key, Method::POST, &format!("/v1/reservations/{id}/commit"),
            Some(json!({"idempotency_key": ck, "actual": {"unit": "USD_MICROCENTS", "amount": actual}}))).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&r.body, body);
    }
    let usd2 = http.tenant(&key, Method::GET, "/v1/balances?tenant=acme", None).await.body["balances"]
        .as_array().unwrap().iter().find(|b| b["spent"]["unit"] == "USD_MICROCENTS").cloned().unwrap();
    assert_eq!(usd2["spent"], usd["spent"], "a replay was applied twice");

    // Every acknowledged delegation has its trace event and its escrowed grant, and the escrow
    // is sound after the crash.
    if let Some((chain, _)) = hops.first() {
        let r = http.tenant(&key, Method::GET, &format!("/v1/chains/{chain}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{chain}");
        let seqs: std::collections::HashSet<i64> = r.body["events"].as_array().unwrap().iter().filter(|e| e["decision"] == "allow").map(|e| e["seq"].as_i64().unwrap()).collect();
        for (_, seq) in &hops {
            assert!(seqs.contains(seq), "acknowledged delegation {seq} lost");
        }
        let tree = http.tenant(&key, Method::GET, &format!("/v1/chains/{chain}/grants"), None).await;
        assert_eq!(tree.body["grants"].as_array().unwrap().len(), seqs.len() + 1, "one grant per allowed hop, plus the root");
        // A kill -9 leaves the chain's hash chain and signed head whole.
        assert_eq!(r.body["integrity"], "ok", "{chain}: {}", r.body["integrity"]);
    }
    let audit = http.tenant(&http.operator(&key), Method::GET, "/v1/escrow/audit", None).await;
    assert_eq!(audit.body["sound"], true, "{:?}", audit.body);
    child.kill().unwrap();
    let _ = child.wait();
}

//! Property over HTTP, many concurrent clients: random trees of delegations, commits,
//! releases and revocations never let a node's descendants exceed its grant, and the tenant's
//! Cycles hold equals the live root grants, before and after a kill -9 and restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, spawn, wait_ready, Http};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const AGENTS: usize = 12;

/// A small deterministic generator (xorshift64*), one per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A live node a client may act on: its token, holder, mandate and grant id.
#[derive(Clone)]
struct Node {
    token: String,
    holder: String,
    mandate: Value,
    grant_id: String,
}

/// What the clients were told: every allowed delegation's grant id.
type Acked = Arc<Mutex<Vec<String>>>;

/// The keys the clients use: each agent's own, and the operator's for revocations.
#[derive(Clone)]
struct Keys {
    agents: std::collections::HashMap<String, String>,
    operator: String,
}

async fn run_clients(http: &Http, keys: &Keys, nodes: Arc<Mutex<Vec<Node>>>, acked: Acked, clients: usize, ops: usize, seed: u64) {
    let root_id = nodes.lock().unwrap()[0].grant_id.clone();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, keys, nodes, acked, root_id) = (http.clone(), keys.clone(), Arc::clone(&nodes), Arc::clone(&acked), root_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed ^ (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            for i in 0..ops {
                let node = {
                    let n = nodes.lock().unwrap();
                    if n.is_empty() {
                        return;
                    }
                    n[rng.below(n.len() as u64) as usize].clone()
                };
                // The root settles only at the end; every other node may be settled any time.
                let roll = if node.holder == "n0" && node.grant_id == root_id { rng.below(70) } else { rng.below(100) };
                let sent = if roll < 70 {
                    // Delegate from the node to a random agent, asking a random share (often
                    // more than is left: the escrow must refuse those).
                    let to = format!("n{}", rng.below(AGENTS as u64));
                    let held = node.mandate["budgets"][0]["amount"].as_u64().unwrap_or(0);
                    let depth = node.mandate["remaining_depth"].as_u64().unwrap_or(0).saturating_sub(1);
                    let ask = rng.below(held / 2 + 2);
                    let mut requested = common::mandate(ask, depth as u8);
                    requested["expires_at"] = node.mandate["expires_at"].clone();
                    let mut body = common::hop(&node.token, &node.holder, &to, &node.mandate, requested);
                    body["request"]["task"]["id"] = json!(format!("c{c}-{i}"));
                    body["request"]["task"]["risk"] = json!("low");
                    let req = http.client.post(format!("{}/v1/delegations", http.base)).header("x-cycles-api-key", &keys.agents[&node.holder]).json(&body);
                    match req.send().await {
                        Ok(r) => {
                            let Ok(v) = r.json::<Value>().await else { return };
                            if v["decision"] == "allow" {
                                let grant = v["grant_id"].as_str().unwrap().to_string();
                                acked.lock().unwrap().push(grant.clone());
                                nodes.lock().unwrap().push(Node {
                                    token: v["child_token"].as_str().unwrap().to_string(),
                                    holder: to,
                                    mandate: v["verdict"]["allow"]["child_mandate"].clone(),
                                    grant_id: grant,
                                });
                            }
                            true
                        }
                        Err(_) => false,
                    }
                } else {
                    let (path, body) = match roll {
                        70..=84 => {
                            let held = node.mandate["budgets"][0]["amount"].as_u64().unwrap_or(0);
                            ("commit", json!({"spent": [{"unit": "TOKENS", "amount": rng.below(held + 2)}]}))
                        }
                        85..=94 => ("release", json!({})),
                        _ => ("revoke", json!({})),
                    };
                    let url = format!("{}/v1/grants/{}/{path}", http.base, node.grant_id);
                    let key = if path == "revoke" { &keys.operator } else { &keys.agents[&node.holder] };
                    http.client.post(url).header("x-cycles-api-key", key).json(&body).send().await.is_ok()
                };
                if !sent {
                    return; // the gateway is gone (killed)
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// The escrow is sound, and the tenant's TOKENS hold equals what its live root grants hold.
async fn check_sound(http: &Http, key: &str, root: &str) {
    let audit = http.tenant(&http.operator(key), Method::GET, "/v1/escrow/audit", None).await;
    assert_eq!(audit.body["sound"], true, "{:?}", audit.body);
    let g = http.tenant(key, Method::GET, &format!("/v1/grants/{root}"), None).await;
    let held = if g.body["status"] == "ACTIVE" { g.body["units"][0]["granted"].as_i64().unwrap() } else { 0 };
    let tokens_reserved = http.tenant(key, Method::GET, "/v1/balances?tenant=acme", None).await.body["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["reserved"]["unit"] == "TOKENS")
        .map(|b| b["reserved"]["amount"].as_i64().unwrap())
        .unwrap_or(0);
    assert_eq!(tokens_reserved, held, "the tenant's hold is the live root grant's: {:?}", g.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_trees_never_exceed_a_grant_even_across_a_kill_dash_nine() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn(dir.path(), port);
    let http = Http::new(format!("http://127.0.0.1:{port}"));
    wait_ready(&http).await;
    let key = http.provision("acme").await;
    http.budget(&key, "tenant:acme", "TOKENS", 1_000_000, json!({})).await;
    for a in 0..AGENTS {
        http.register(&key, &format!("n{a}"), 720.0).await;
    }
    let root_mandate = common::mandate(100_000, 5);
    let grant = http.root_grant(&key, "n0", root_mandate.clone()).await;
    let root_id = grant["grant_id"].as_str().unwrap().to_string();
    let nodes = Arc::new(Mutex::new(vec![Node {
        token: grant["token"].as_str().unwrap().to_string(),
        holder: "n0".into(),
        mandate: root_mandate,
        grant_id: root_id.clone(),
    }]));
    let acked: Acked = Arc::default();
    let mut agents = std::collections::HashMap::new();
    for a in 0..AGENTS {
        let name = format!("n{a}");
        agents.insert(name.clone(), http.agent_key(&key, &name).await);
    }
    let keys = Keys { agents, operator: http.operator(&key) };

    // Phase 1: 24 clients, 60 random operations each, then the invariants.
    run_clients(&http, &keys, Arc::clone(&nodes), Arc::clone(&acked), 24, 60, 0x5bd1_e995).await;
    let allowed = acked.lock().unwrap().len();
    assert!(allowed > 20, "the load made a tree: {allowed} allowed delegations");
    check_sound(&http, &key, &root_id).await;

    // Phase 2: the same load, killed with SIGKILL in the middle, then restarted.
    let load = {
        let (http, keys, nodes, acked) = (http.clone(), keys.clone(), Arc::clone(&nodes), Arc::clone(&acked));
        tokio::spawn(async move { run_clients(&http, &keys, nodes, acked, 24, 10_000, 0xdead_beef).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    load.await.unwrap();
    let mut child = spawn(dir.path(), port);
    wait_ready(&http).await;
    check_sound(&http, &key, &root_id).await;
    // Every delegation a client was told is allowed has its grant.
    let acked = acked.lock().unwrap().clone();
    for g in acked.iter().step_by(3) {
        let r = http.tenant(&key, Method::GET, &format!("/v1/grants/{g}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "acknowledged grant {g} lost: {:?}", r.body);
    }
    child.kill().unwrap();
    let _ = child.wait();
}

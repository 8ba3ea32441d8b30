//! Several gateways for real (issue 15): three `sbd-gateway` processes on one Redis, and on a
//! three-node Redis Cluster, serve one tenant at once over HTTP. Clients spread reservations,
//! commits, releases, delegation hops and decisions over them; one gateway is killed with
//! SIGKILL under load and started again. A client that gets no answer (or a 5xx) sends the
//! same request, with the same idempotency key or the same hop, to the next gateway, as a
//! client behind a load balancer would. Afterwards the ledger and the delegation tree must be
//! exactly what the clients were told: every reservation and grant once (none lost at the
//! kill, none made twice by a resend), every outcome as told, the budget and the root grant
//! never oversubscribed, and every gateway reporting the same balances.
//!
//! [`OPS_VAR`] sets the operations per deployment: 100,000 in `.ci/run`, [`DEFAULT_OPS`]
//! otherwise. Without `redis-server` (and `redis-cli`) the test says so and skips, unless
//! `SBD_REQUIRE_REDIS=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::test_redis::{redis_deployments, RedisDeployment};
use common::{free_port, spawn_on, wait_ready, Http};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The variable that sets how many operations (HTTP requests, resends not counted) the
/// clients send per Redis deployment.
const OPS_VAR: &str = "SBD_SEVERAL_PROCESSES_OPS";

/// Operations per deployment when [`OPS_VAR`] is not set.
const DEFAULT_OPS: usize = 12_000;

/// Gateway processes per deployment.
const GATEWAYS: usize = 3;

/// Concurrent clients, spread evenly over the gateways.
const CLIENTS: usize = 48;

/// What each reservation holds, and what a commit charges.
const HOLD: i64 = 10;
const CHARGE: i64 = 7;

/// The gateway processes of one deployment, over one data directory (the token key and the
/// admin key are shared, as by gateways deployed from one secret store).
struct Fleet {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    store: Vec<String>,
    children: Mutex<Vec<Child>>,
    client: reqwest::Client,
}

impl Fleet {
    async fn start(redis: &RedisDeployment) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let store = vec!["--store".into(), redis.url.clone(), "--store-prefix".into(), redis.prefix.clone()];
        let ports: Vec<u16> = (0..GATEWAYS).map(|_| free_port()).collect();
        // past every wait a request can have inside a gateway (the tenant's lock: 10 s), so a
        // first attempt is never still running when its resend is answered
        let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).pool_max_idle_per_host(CLIENTS).build().unwrap();
        let fleet = Fleet { dir, ports, store, children: Mutex::new(Vec::new()), client };
        // the first makes the data directory's keys; the others start on them
        for g in 0..GATEWAYS {
            let child = spawn_on(fleet.dir.path(), fleet.ports[g], &fleet.store);
            fleet.children.lock().unwrap().push(child);
            wait_ready(&fleet.http(g)).await;
        }
        fleet
    }

    fn base(&self, g: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[g])
    }

    fn http(&self, g: usize) -> Http {
        Http::new(self.base(g))
    }

    fn kill(&self, g: usize) {
        let mut children = self.children.lock().unwrap();
        children[g].kill().expect("SIGKILL"); // std's Child::kill is SIGKILL on unix
        let _ = children[g].wait();
    }

    /// Starts gateway `g` again on its port (after [`Fleet::kill`]).
    fn restart(&self, g: usize) {
        self.children.lock().unwrap()[g] = spawn_on(self.dir.path(), self.ports[g], &self.store);
    }

    /// `POST path` with `body` under `key`, first to gateway `home`; while no gateway answers
    /// or one answers 5xx, the same request again to the next. Returns the answer.
    async fn post(&self, home: usize, key: &str, path: &str, body: &Value, stats: &Stats) -> (StatusCode, Value) {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut at = home;
        loop {
            let sent = self.client.post(format!("{}{path}", self.base(at))).header("x-cycles-api-key", key).json(body).send().await;
            match sent {
                Ok(r) if r.status().is_server_error() => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    stats.server_errors.lock().unwrap().entry(format!("{status} {}", error_code(&text))).and_modify(|n| *n += 1).or_insert(1);
                }
                Ok(r) => {
                    let status = r.status();
                    if let Ok(text) = r.text().await {
                        stats.ops.fetch_add(1, Relaxed);
                        return (status, serde_json::from_str(&text).unwrap_or(Value::String(text)));
                    }
                }
                Err(_) => {}
            }
            assert!(Instant::now() < deadline, "{path}: no gateway answered within 300 s");
            stats.resends.fetch_add(1, Relaxed);
            at = (at + 1) % GATEWAYS;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in self.children.get_mut().unwrap().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn error_code(text: &str) -> String {
    serde_json::from_str::<Value>(text).ok().and_then(|v| v["error"].as_str().map(String::from)).unwrap_or_default()
}

/// Counted over all clients.
#[derive(Default)]
struct Stats {
    /// Requests answered (resends not counted).
    ops: AtomicUsize,
    /// Requests sent again to another gateway.
    resends: AtomicUsize,
    /// The 5xx answers that made a client resend, by status and error code.
    server_errors: Mutex<BTreeMap<String, usize>>,
}

/// What one client was told.
#[derive(Default)]
struct Told {
    /// Every reservation id handed out.
    reserved: Vec<String>,
    /// Those committed (charged [`CHARGE`]).
    committed: HashSet<String>,
    /// Those released.
    released: HashSet<String>,
    /// Reservations refused for lack of budget.
    refused: usize,
    /// The grant ids of allowed hops.
    allowed: Vec<String>,
    /// Hops not allowed, by decision.
    not_allowed: BTreeMap<String, usize>,
    /// Decisions (`POST /v1/decide`) answered.
    decided: usize,
}

/// The tenant's keys and the root grant the clients delegate from.
#[derive(Clone)]
struct Tenant {
    key: String,
    orchestrator: String,
    root_token: String,
    root_mandate: Value,
}

/// One client: reserve, then commit, release or leave the hold (in turn); every fourth round a
/// hop from the root grant, every eighth a decision; until the clients have sent `ops` in all.
async fn client(fleet: Arc<Fleet>, tenant: Tenant, c: usize, ops: usize, stats: Arc<Stats>) -> Told {
    let home = c % GATEWAYS;
    let mut told = Told::default();
    for i in 0.. {
        if stats.ops.load(Relaxed) >= ops {
            break;
        }
        let mut reserve = common::reserve_body(&format!("r{c}-{i}"), "acme", HOLD);
        reserve["ttl_ms"] = json!(3_600_000);
        let (status, body) = fleet.post(home, &tenant.key, "/v1/reservations", &reserve, &stats).await;
        if status == StatusCode::CONFLICT && body["error"] == "BUDGET_EXCEEDED" {
            told.refused += 1;
        } else {
            assert!(status.is_success(), "reserve: {status} {body}");
            let id = body["reservation_id"].as_str().unwrap_or_else(|| panic!("reserve: {body}")).to_string();
            told.reserved.push(id.clone());
            let settle = match i % 3 {
                0 => Some(("commit", json!({"idempotency_key": format!("c{c}-{i}"), "actual": {"unit": "USD_MICROCENTS", "amount": CHARGE}}))),
                1 => Some(("release", json!({"idempotency_key": format!("x{c}-{i}")}))),
                _ => None,
            };
            if let Some((verb, body)) = settle {
                let (status, answer) = fleet.post(home, &tenant.key, &format!("/v1/reservations/{id}/{verb}"), &body, &stats).await;
                assert_eq!(status, StatusCode::OK, "{verb} {id}: {answer}");
                if verb == "commit" {
                    told.committed.insert(id);
                } else {
                    told.released.insert(id);
                }
            }
        }
        if i % 4 == 0 {
            let worker = format!("worker-{}", (c + i) % 8);
            let mut hop = common::hop(&tenant.root_token, "orchestrator", &worker, &tenant.root_mandate, common::mandate(1, 3));
            hop["request"]["task"]["id"] = json!(format!("t{c}-{i}"));
            let (status, answer) = fleet.post(home, &tenant.orchestrator, "/v1/delegations", &hop, &stats).await;
            assert_eq!(status, StatusCode::OK, "hop: {answer}");
            match answer["decision"].as_str() {
                Some("allow") => told.allowed.push(answer["grant_id"].as_str().unwrap().to_string()),
                Some(other) => *told.not_allowed.entry(other.to_string()).or_default() += 1,
                None => panic!("hop: no decision in {answer}"),
            }
        }
        if i % 8 == 0 {
            let decide = common::reserve_body(&format!("d{c}-{i}"), "acme", HOLD);
            let (status, answer) = fleet.post(home, &tenant.key, "/v1/decide", &decide, &stats).await;
            assert_eq!(status, StatusCode::OK, "decide: {answer}");
            told.decided += 1;
        }
    }
    told
}

/// Every USD reservation of the tenant: id -> (status, committed amount).
async fn stored_reservations(http: &Http, key: &str) -> HashMap<String, (String, i64)> {
    let mut out = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/reservations?limit=1000&cursor={c}"),
            None => "/v1/reservations?limit=1000".to_string(),
        };
        let r = http.tenant(key, Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        for res in r.body["reservations"].as_array().unwrap() {
            if res["reserved"]["unit"] != "USD_MICROCENTS" {
                continue; // the root grant's hold of TOKENS
            }
            let id = res["reservation_id"].as_str().unwrap().to_string();
            let entry = (res["status"].as_str().unwrap().to_string(), res["committed"]["amount"].as_i64().unwrap_or(0));
            assert!(out.insert(id.clone(), entry).is_none(), "{id} listed twice");
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    out
}

/// The tenant's USD balance as gateway `http` reports it.
async fn usd_balance(http: &Http, key: &str) -> Value {
    let r = http.tenant(key, Method::GET, "/v1/balances?tenant=acme", None).await;
    r.body["balances"].as_array().unwrap().iter().find(|b| b["spent"]["unit"] == "USD_MICROCENTS").cloned().expect("a USD balance")
}

async fn serve_one_tenant_across_a_kill(name: &str, redis: &RedisDeployment, ops: usize) {
    let fleet = Arc::new(Fleet::start(redis).await);
    let http = fleet.http(1);
    let key = http.provision("acme").await;
    // the budget runs out about half-way (a round holds or charges 17 every three rounds),
    // and so does the root grant (a hop every fourth round asks for 1)
    let allocated = i64::try_from(ops).unwrap() * 2;
    let root_tokens = (ops / 16) as u64;
    http.budget(&key, "tenant:acme", "USD_MICROCENTS", allocated, json!({})).await;
    http.budget(&key, "tenant:acme", "TOKENS", i64::try_from(root_tokens).unwrap(), json!({})).await;
    http.register(&key, "orchestrator", 900.0).await;
    for w in 0..8 {
        http.register(&key, &format!("worker-{w}"), 720.0).await;
    }
    let root_mandate = common::mandate(root_tokens, 4);
    let root = http.root_grant(&key, "orchestrator", root_mandate.clone()).await;
    let tenant = Tenant {
        key: key.clone(),
        orchestrator: http.agent_key(&key, "orchestrator").await,
        root_token: root["token"].as_str().unwrap().to_string(),
        root_mandate,
    };
    let (root_id, chain_id) = (root["grant_id"].as_str().unwrap().to_string(), root["chain_id"].as_str().unwrap().to_string());

    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS).map(|c| tokio::spawn(client(Arc::clone(&fleet), tenant.clone(), c, ops, Arc::clone(&stats)))).collect();
    // SIGKILL gateway 0 a third of the way, and start it again a second later (under load)
    while stats.ops.load(Relaxed) < ops / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fleet.kill(0);
    let killed_at = stats.ops.load(Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    fleet.restart(0);
    wait_ready(&fleet.http(0)).await;
    let mut told = Vec::new();
    for c in clients {
        told.push(c.await.expect("a client"));
    }
    let elapsed = started.elapsed();

    // The reservations: each one told is stored once, with the outcome told; none other is.
    let stored = stored_reservations(&fleet.http(0), &key).await;
    let reserved: Vec<&String> = told.iter().flat_map(|t| &t.reserved).collect();
    let reserved_set: HashSet<&String> = reserved.iter().copied().collect();
    assert_eq!(reserved_set.len(), reserved.len(), "a reservation id was handed out twice");
    let stored_set: HashSet<&String> = stored.keys().collect();
    assert_eq!(stored_set.len(), reserved_set.len(), "{name}: {} stored, {} told", stored_set.len(), reserved_set.len());
    assert!(stored_set == reserved_set, "{name}: the stored reservations are not those told");
    let (mut commits, mut active) = (0i64, 0i64);
    for t in &told {
        for id in &t.reserved {
            let (status, committed) = &stored[id];
            let expected = if t.committed.contains(id) {
                assert_eq!(*committed, CHARGE, "{id}");
                commits += 1;
                "COMMITTED"
            } else if t.released.contains(id) {
                "RELEASED"
            } else {
                active += 1;
                "ACTIVE"
            };
            assert_eq!(status, expected, "{name}: {id} was told {expected}");
        }
    }
    // The ledger: spent is exactly the commits told, reserved the holds left, nothing over.
    let balance = usd_balance(&fleet.http(0), &key).await;
    assert_eq!(balance["spent"]["amount"].as_i64(), Some(commits * CHARGE), "{name}: ledger mismatch {balance}");
    assert_eq!(balance["reserved"]["amount"].as_i64(), Some(active * HOLD), "{name}: hold mismatch {balance}");
    assert_eq!(balance["allocated"]["amount"].as_i64(), Some(allocated), "{balance}");
    assert!(balance["remaining"]["amount"].as_i64().unwrap() >= 0 && balance["debt"]["amount"].as_i64() == Some(0), "{name}: oversubscribed {balance}");
    let refused: usize = told.iter().map(|t| t.refused).sum();
    assert!(refused > 0, "{name}: the budget never ran out; the test checks no oversubscription");
    for g in 1..GATEWAYS {
        assert_eq!(usd_balance(&fleet.http(g), &key).await, balance, "{name}: gateway {g} reports another balance");
    }

    // The delegation tree: each allowed hop's grant once, under the root, none other; the root
    // never carved past its grant; the escrow audit finds nothing.
    let allowed: Vec<&String> = told.iter().flat_map(|t| &t.allowed).collect();
    let allowed_set: HashSet<&String> = allowed.iter().copied().collect();
    assert_eq!(allowed_set.len(), allowed.len(), "a grant was handed out twice");
    let grants = http.tenant(&key, Method::GET, &format!("/v1/chains/{chain_id}/grants"), None).await;
    assert_eq!(grants.status, StatusCode::OK, "{:?}", grants.body);
    let children: HashSet<String> = grants.body["grants"].as_array().unwrap().iter()
        .filter(|g| g["grant_id"] != root_id.as_str())
        .map(|g| {
            assert_eq!(g["parent_id"], root_id.as_str(), "{g}");
            g["grant_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(children.iter().collect::<HashSet<_>>() == allowed_set, "{name}: {} child grants stored, {} told", children.len(), allowed_set.len());
    // the root ran out: exactly its grant was handed out, one token a hop, and every hop
    // after was denied
    assert_eq!(allowed.len() as u64, root_tokens, "{name}: {} hops of 1 under a root of {root_tokens}", allowed.len());
    let not_allowed: usize = told.iter().flat_map(|t| t.not_allowed.values()).sum();
    assert!(not_allowed > 0, "{name}: the root grant never ran out; the test checks the escrow");
    assert!(told.iter().all(|t| t.not_allowed.keys().all(|d| d == "deny")), "{name}: a hop escalated");
    let audit = http.tenant(&http.operator(&key), Method::GET, "/v1/escrow/audit", None).await;
    assert_eq!(audit.body["sound"], true, "{name}: {:?}", audit.body);
    // the chain's signed trace survived the kill whole: every hop told is in it, verified
    let chain = http.tenant(&http.operator(&key), Method::GET, &format!("/v1/chains/{chain_id}"), None).await;
    assert_eq!((chain.status, chain.body["integrity"].as_str()), (StatusCode::OK, Some("ok")), "{name}: {}", chain.body["integrity"]);
    let hops_traced = chain.body["events"].as_array().unwrap().iter().filter(|e| e["decision"] == "allow").count();
    assert_eq!(hops_traced, allowed.len(), "{name}: the trace's allowed hops");
    // the kill cut requests off: some were sent again
    assert!(stats.resends.load(Relaxed) > 0, "{name}: no request was cut off by the kill");

    let ops_done = stats.ops.load(Relaxed);
    let decided: usize = told.iter().map(|t| t.decided).sum();
    let mut refusals = BTreeMap::new();
    for t in &told {
        for (k, v) in &t.not_allowed {
            *refusals.entry(k.clone()).or_insert(0) += v;
        }
    }
    // straight to the stderr handle: the harness captures `eprintln!` of a passing test
    let _ = writeln!(
        std::io::stderr(),
        "{name}: {ops_done} operations over {GATEWAYS} gateway processes in {:.1} s ({:.0}/s), gateway 0 killed at {killed_at} and restarted; \
         {} reservations ({commits} committed, {active} held, {refused} refused), {} hops allowed, not allowed {refusals:?}, {decided} decisions; \
         {} resends, 5xx {:?}",
        elapsed.as_secs_f64(),
        ops_done as f64 / elapsed.as_secs_f64(),
        reserved.len(),
        allowed.len(),
        stats.resends.load(Relaxed),
        stats.server_errors.lock().unwrap(),
    );
    assert!(ops_done >= ops, "{ops_done} of {ops}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_processes_on_one_redis_lose_nothing_to_a_kill_9() {
    if common::test_store().is_some() {
        // it starts Redis deployments of its own; the first pass ran it
        let _ = writeln!(std::io::stderr(), "skipped on {}: starts its own Redis deployments", common::STORE_VAR);
        return;
    }
    let ops: usize = std::env::var(OPS_VAR).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{OPS_VAR}: a count"))).unwrap_or(DEFAULT_OPS);
    for (name, redis) in redis_deployments() {
        serve_one_tenant_across_a_kill(name, &redis, ops).await;
    }
}

//! Shared test harness: a gateway on a free port over a temporary data directory, and a
//! small JSON client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use std::sync::{Arc, Mutex};

use reqwest::{Client, Method, StatusCode};
use sbd_gateway::serve::{start, Running};
use sbd_gateway::Config;
use serde_json::{json, Value};

pub const ADMIN: &str = "test-admin-key";

/// A `redis-server`, or a three-node Redis Cluster, of a test's own (the library's own tests'
/// helper: one source).
#[path = "../../src/test_redis.rs"]
pub mod test_redis;

/// The variable that runs the HTTP suites on Redis instead of the embedded SQLite store: a
/// store URL (`.ci/run` starts a `redis-server` and runs the suites again with it set).
pub const STORE_VAR: &str = "SBD_TEST_STORE";

/// The store URL the suites run on, if not the embedded default ([`STORE_VAR`]).
pub fn test_store() -> Option<String> {
    std::env::var(STORE_VAR).ok().filter(|url| !url.trim().is_empty())
}

/// The key prefix of the gateway over data directory `dir` on a shared Redis: each test's
/// gateways get a state of their own, named after their directory's path (the test's own).
fn store_prefix(dir: &Path) -> String {
    let path: String = dir.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    format!("sbd-http{path}")
}

/// The `sbd-gateway` arguments that put the gateway over `dir` on the test store, when the
/// suites run on one ([`STORE_VAR`]); none on the embedded default.
pub fn store_args(dir: &Path) -> Vec<String> {
    match test_store() {
        Some(url) => vec!["--store".into(), url, "--store-prefix".into(), store_prefix(dir)],
        None => Vec::new(),
    }
}

pub fn config(dir: &Path) -> Config {
    let store = test_store();
    let prefix = store_prefix(dir);
    Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        admin_key: Some(ADMIN.into()),
        sweep_interval_ms: 50,
        log_level: "warn".into(),
        store,
        store_prefix: prefix,
        ..Config::default()
    }
}

/// Says on stderr that a test ran only on the embedded store, where the suites run on Redis
/// ([`STORE_VAR`]); `true` then (the caller returns).
pub fn sqlite_only(why: &str) -> bool {
    if test_store().is_none() {
        return false;
    }
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "skipped on {STORE_VAR}: {why}");
    true
}

pub async fn gateway(dir: &Path) -> Running {
    start(config(dir)).await.expect("gateway starts")
}

/// A gateway over a fresh directory with tenant `acme` set up by [`Http::authority_tenant`]
/// (a TOKENS budget of 10^9, registered agents); returns the directory, the gateway, the client
/// and the tenant's key.
pub async fn authority_gateway() -> (tempfile::TempDir, Running, Http, String) {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let key = http.authority_tenant("acme", 1_000_000_000).await;
    (dir, gw, http, key)
}

#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub client: Client,
    /// The operator key [`Http::provision`] minted next to each agent key.
    operators: Arc<Mutex<HashMap<String, String>>>,
    /// The tenant of each key [`Http::provision`] minted.
    tenants: Arc<Mutex<HashMap<String, String>>>,
    /// Agent keys by (tenant, agent id), minted on first use by [`Http::agent_key`].
    agents: Arc<Mutex<HashMap<(String, String), String>>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Http {
    pub fn new(base: String) -> Self {
        Http {
            base,
            client: Client::builder().pool_max_idle_per_host(64).build().unwrap(),
            operators: Arc::default(),
            tenants: Arc::default(),
            agents: Arc::default(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    pub async fn raw(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, &[("x-admin-api-key", ADMIN)], body).await
    }

    pub async fn tenant(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, &[("x-cycles-api-key", key)], body).await
    }

    /// Creates `tenant`, a key for it with the default role (`agent`) and an operator key
    /// ([`Http::operator`]); returns the agent key.
    pub async fn provision(&self, tenant: &str) -> String {
        let r = self.admin(Method::POST, "/v1/admin/tenants", Some(json!({"tenant_id": tenant, "name": tenant}))).await;
        assert!(r.status.is_success(), "{:?}", r.body);
        let r = self
            .admin(Method::POST, "/v1/admin/api-keys", Some(json!({"tenant_id": tenant, "name": "test key"})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let agent = r.body["key_secret"].as_str().unwrap().to_string();
        let operator = self.key(tenant, "operator", "test operator").await;
        self.operators.lock().unwrap().insert(agent.clone(), operator);
        self.tenants.lock().unwrap().insert(agent.clone(), tenant.to_string());
        agent
    }

    /// A new key of `tenant` with `role` for principal `name` (made with the admin key).
    pub async fn key(&self, tenant: &str, role: &str, name: &str) -> String {
        let r = self
            .admin(Method::POST, "/v1/admin/api-keys", Some(json!({"tenant_id": tenant, "name": name, "role": role})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["key_secret"].as_str().unwrap().to_string()
    }

    /// The operator key minted with the agent key `key` by [`Http::provision`] (`key` itself
    /// when it was not made there).
    pub fn operator(&self, key: &str) -> String {
        self.operators.lock().unwrap().get(key).cloned().unwrap_or_else(|| key.to_string())
    }

    /// A budget at `scope` in `unit`.
    pub async fn budget(&self, key: &str, scope: &str, unit: &str, allocated: i64, extra: Value) -> Value {
        let mut body = json!({"scope": scope, "unit": unit, "allocated": {"unit": unit, "amount": allocated}});
        if let Some(o) = extra.as_object() {
            for (k, v) in o {
                body[k] = v.clone();
            }
        }
        let r = self.tenant(&self.operator(key), Method::POST, "/v1/admin/budgets", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body
    }

    /// The balance of exactly `scope`.
    pub async fn balance(&self, key: &str, tenant: &str, scope: &str) -> Value {
        let r = self.tenant(key, Method::GET, &format!("/v1/balances?tenant={tenant}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["balances"].as_array().unwrap().iter().find(|b| b["scope"] == scope).cloned().expect("scope has a balance")
    }
}

pub fn reserve_body(key: &str, tenant: &str, amount: i64) -> Value {
    json!({
        "idempotency_key": key,
        "subject": {"tenant": tenant, "agent": "bot"},
        "action": {"kind": "llm.completion", "name": "gpt"},
        "estimate": {"unit": "USD_MICROCENTS", "amount": amount},
    })
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// One expiry for every mandate of the process, so children never outlive parents.
pub fn expiry() -> u64 {
    static EXPIRY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *EXPIRY.get_or_init(|| now_ms() + 3_600_000)
}

/// A mandate over payments with `tokens` TOKENS and `depth` further hops.
pub fn mandate(tokens: u64, depth: u8) -> Value {
    json!({
        "value_ceiling": 1_000_000_000u64,
        "action_kinds": ["payment.*", "crm.read"],
        "counterparties": ["acme", "globex"],
        "budgets": [{"unit": "TOKENS", "amount": tokens}],
        "remaining_depth": depth,
        "expires_at": expiry(),
    })
}

/// A delegation request body: `from` hands a medium-risk refund to `to`, asking `requested`
/// under the parent mandate `parent`, presenting `token`.
pub fn hop(token: &str, from: &str, to: &str, parent: &Value, requested: Value) -> Value {
    json!({"token": token, "request": {
        "from": {"id": from, "trust": 0}, "to": {"id": to, "trust": 0},
        "task": {"id": format!("task-{from}-{to}"), "action_kind": "payment.refund", "risk": "medium", "value": 1_000, "counterparty": "acme"},
        "parent_mandate": parent, "requested_mandate": requested, "state": [0.1]}})
}

impl Http {
    /// The same client and keys, talking to a gateway at `base` (after a restart).
    pub fn at(&self, base: String) -> Http {
        Http { base, ..self.clone() }
    }

    /// The agent key of `agent` in the tenant of `key` (minted once, with the admin key).
    pub async fn agent_key(&self, key: &str, agent: &str) -> String {
        let tenant = self.tenants.lock().unwrap().get(key).cloned().expect("a key made by provision");
        if let Some(k) = self.agents.lock().unwrap().get(&(tenant.clone(), agent.to_string())) {
            return k.clone();
        }
        let k = self.key(&tenant, "agent", agent).await;
        self.agents.lock().unwrap().insert((tenant, agent.to_string()), k.clone());
        k
    }

    /// Registers `agent` with `trust` in the tenant's registry.
    pub async fn register(&self, key: &str, agent: &str, trust: f64) {
        let r = self.tenant(&self.operator(key), Method::POST, "/v1/agents", Some(json!({"agent_id": agent, "trust": trust}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }

    /// A root grant of `mandate` to `agent`; returns the response (token, chain_id, grant_id).
    pub async fn root_grant(&self, key: &str, agent: &str, mandate: Value) -> Value {
        let r = self.tenant(&self.operator(key), Method::POST, "/v1/root-grants", Some(json!({"agent_id": agent, "mandate": mandate}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body
    }

    /// A tenant with a TOKENS budget of `tokens` and registered agents `orchestrator` (900),
    /// `a`..`h` (720); returns its key.
    pub async fn authority_tenant(&self, tenant: &str, tokens: i64) -> String {
        let key = self.provision(tenant).await;
        self.budget(&key, &format!("tenant:{tenant}"), "TOKENS", tokens, json!({})).await;
        self.register(&key, "orchestrator", 900.0).await;
        for a in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            self.register(&key, a, 720.0).await;
        }
        key
    }

    /// POST /v1/delegations with the agent key of the request's delegator (in the tenant of
    /// `key`); returns status and body.
    pub async fn delegate(&self, key: &str, body: Value) -> Reply {
        let from = body["request"]["from"]["id"].as_str().unwrap_or("nobody").to_string();
        let agent = self.agent_key(key, &from).await;
        self.tenant(&agent, Method::POST, "/v1/delegations", Some(body)).await
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `sbd-gateway` binary serving `dir` on `port` (a real process, for kill -9 tests).
pub fn spawn(dir: &std::path::Path, port: u16) -> Child {
    spawn_on(dir, port, &store_args(dir))
}

/// The `sbd-gateway` binary serving `dir` on `port` with `store` arguments of the caller's
/// (`--store URL --store-prefix P`).
pub fn spawn_on(dir: &std::path::Path, port: u16, store: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sbd-gateway"))
        .args(["--data-dir", dir.to_str().unwrap(), "--addr", &format!("127.0.0.1:{port}")])
        .args(store)
        .env("SBD_ADMIN_KEY", ADMIN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the gateway binary starts")
}

/// Waits until the gateway answers `/healthz`.
pub async fn wait_ready(http: &Http) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = http.client.get(format!("{}/healthz", http.base)).send().await
            && r.status() == StatusCode::OK {
                return;
            }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway did not become ready");
}

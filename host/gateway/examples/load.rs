//! A bounded load test on loopback: reservations per second and delegation decisions per
//! second with p50/p99 latency.
//!
//! Run with `cargo run --release -p sbd-gateway --example load -- [--seconds 10] [--clients 50]
//! [--tenants 1] [--redis redis://127.0.0.1:6379/] [--client hyper|reqwest]`. It starts a gateway in this process on a
//! temporary data directory (so client and server share the machine's cores), provisions the
//! tenants (the clients spread over them), then runs
//! each phase for the given time with `clients` concurrent keep-alive connections. With
//! `--redis`, the same phases run again in the same process on that Redis (under a key prefix
//! of their own), first with one gateway, then with two gateways on it, the clients spread
//! over both: the two backends and the scaling to two gateways, measured in one run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Phase {
    name: &'static str,
    ok: usize,
    errors: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// How the load generator's clients speak HTTP/1.1. Both keep one connection per client
/// open and send the same bytes; they differ only in what the client itself costs, which on
/// this machine's two cores is CPU the gateway does not get.
#[derive(Clone, Copy, PartialEq)]
enum Transport {
    /// hyper's connection API directly: one connection per client, nothing between the
    /// request and the socket (the default).
    Hyper,
    /// reqwest (a pool, a URL parser, redirect and retry layers): the client of the earlier
    /// sessions' figures, kept to compare against.
    Reqwest,
}

/// A client's connection: sends one POST of a JSON body and answers the status and body.
enum Connection {
    Hyper(hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>),
    Reqwest(reqwest::Client),
}

impl Connection {
    /// Opens a client's connection to the gateway that `url` names (reqwest: a handle on the
    /// phase's one pooled client, as the earlier figures were taken).
    async fn open(transport: Transport, url: &str, pooled: &reqwest::Client) -> Connection {
        match transport {
            Transport::Reqwest => Connection::Reqwest(pooled.clone()),
            Transport::Hyper => {
                let uri: hyper::Uri = url.parse().unwrap();
                let stream = tokio::net::TcpStream::connect(uri.authority().unwrap().as_str()).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
                tokio::spawn(connection);
                Connection::Hyper(sender)
            }
        }
    }

    async fn post(&mut self, url: &str, key: &str, body: &Value) -> Result<(hyper::StatusCode, hyper::body::Bytes), String> {
        match self {
            Connection::Reqwest(client) => {
                let resp = client.post(url).header("x-cycles-api-key", key).json(body).send().await.map_err(|e| e.to_string())?;
                let status = resp.status();
                Ok((hyper::StatusCode::from_u16(status.as_u16()).unwrap(), resp.bytes().await.map_err(|e| e.to_string())?))
            }
            Connection::Hyper(sender) => {
                use http_body_util::BodyExt;
                let uri: hyper::Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?;
                let request = hyper::Request::post(uri.path())
                    .header(hyper::header::HOST, uri.authority().map(|a| a.as_str()).unwrap_or_default())
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .header("x-cycles-api-key", key)
                    .body(http_body_util::Full::new(hyper::body::Bytes::from(serde_json::to_vec(body).unwrap())))
                    .unwrap();
                sender.ready().await.map_err(|e| e.to_string())?;
                let resp = sender.send_request(request).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                Ok((status, resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes()))
            }
        }
    }
}

/// Runs `clients` clients for `seconds`; client `c` sends request `make(c, i)` (its URL and
/// body) with key `keys[c % keys.len()]`, over a connection of its own.
async fn run_phase<F>(name: &'static str, transport: Transport, clients: usize, seconds: u64, keys: Vec<String>, make: F) -> Phase
where
    F: Fn(usize, usize) -> (String, Value) + Send + Sync + Clone + 'static,
{
    let pooled = reqwest::Client::builder().pool_max_idle_per_host(clients).tcp_nodelay(true).build().unwrap();
    let mut connections = Vec::with_capacity(clients);
    for c in 0..clients {
        connections.push(Connection::open(transport, &make(c, 0).0, &pooled).await);
    }
    let stop = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, mut connection) in connections.into_iter().enumerate() {
        let (make, key) = (make.clone(), keys[c % keys.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let (mut ok, mut errors) = (0usize, 0usize);
            let mut i = 0usize;
            while Instant::now() < stop {
                let (url, body) = make(c, i);
                i += 1;
                let t = Instant::now();
                match connection.post(&url, &key, &body).await {
                    Ok((status, _)) if status.is_success() => {
                        lat.push(t.elapsed());
                        ok += 1;
                    }
                    Ok((status, text)) => {
                        if errors == 0 {
                            eprintln!("{name}: HTTP {status} {}", String::from_utf8_lossy(&text));
                        }
                        errors += 1;
                    }
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("{name}: {e}");
                        }
                        errors += 1;
                    }
                }
            }
            (ok, errors, lat)
        }));
    }
    let mut phase = Phase { name, ok: 0, errors: 0, seconds: 0.0, latencies: Vec::new() };
    for t in tasks {
        let (ok, errors, lat) = t.await.unwrap();
        phase.ok += ok;
        phase.errors += errors;
        phase.latencies.extend(lat);
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase.latencies.sort();
    phase
}


/// The phases measured on one deployment: the ledger alone, reservations, delegations.
struct Run {
    label: String,
    phases: Vec<Phase>,
    writer: Option<String>,
}

/// One tenant of a run: its name, the keys its clients use and the root grant they delegate
/// from.
struct Tenant {
    name: String,
    key: String,
    orchestrator: String,
    token: String,
}

/// The delegation mandate every run uses, expiring an hour after `now`.
fn mandate(now: u64, amount: u64, depth: u8) -> Value {
    json!({"value_ceiling": 1_000_000u64, "action_kinds": ["payment.*"], "counterparties": ["acme"],
        "budgets": [{"unit": "TOKENS", "amount": amount}], "remaining_depth": depth, "expires_at": now + 3_600_000})
}

/// Provisions tenant `name` at the gateway at `base`: keys, budgets, the registry (the
/// orchestrator and `workers` workers) and a root grant to the orchestrator.
async fn provision(base: &str, name: &str, workers: usize, now: u64) -> Tenant {
    let admin = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let request = admin.post(format!("{base}{path}")).header("x-admin-api-key", "load-admin").json(&body).send();
        async move { request.await.and_then(reqwest::Response::error_for_status) }
    };
    post("/v1/admin/tenants", json!({"tenant_id": name, "name": name})).await.unwrap();
    let mint = |key_name: &str, role: &str| post("/v1/admin/api-keys", json!({"tenant_id": name, "name": key_name, "role": role}));
    let secret = |v: Value| v["key_secret"].as_str().unwrap().to_string();
    let key = secret(mint("load", "agent").await.unwrap().json().await.unwrap());
    let operator = secret(mint("load operator", "operator").await.unwrap().json().await.unwrap());
    let orchestrator = secret(mint("orchestrator", "agent").await.unwrap().json().await.unwrap());
    let tenant_post = |path: &str, body: Value| {
        let request = admin.post(format!("{base}{path}")).header("x-cycles-api-key", &operator).json(&body).send();
        async move { request.await.and_then(reqwest::Response::error_for_status) }
    };
    for unit in ["USD_MICROCENTS", "TOKENS"] {
        let budget = json!({"scope": format!("tenant:{name}"), "unit": unit, "allocated": {"unit": unit, "amount": 9_000_000_000_000_000i64}});
        tenant_post("/v1/admin/budgets", budget).await.unwrap();
    }
    tenant_post("/v1/agents", json!({"agent_id": "orchestrator", "trust": 900})).await.unwrap();
    for w in 0..workers {
        tenant_post("/v1/agents", json!({"agent_id": format!("worker-{w}"), "trust": 720})).await.unwrap();
    }
    let grant: Value = tenant_post("/v1/root-grants", json!({"agent_id": "orchestrator", "mandate": mandate(now, 1_000_000_000_000, 4)}))
        .await.unwrap().json().await.unwrap();
    let token = grant["token"].as_str().expect("root grant").to_string();
    Tenant { name: name.to_string(), key, orchestrator, token }
}

/// Starts `gateways` gateways on `store` (`None`: each on SQLite in its own directory; one
/// gateway then), provisions `tenants` tenants and runs the three phases against them:
/// client `c` acts for tenant `c mod tenants` through gateway `(c / tenants) mod gateways`
/// (so each tenant is served by every gateway).
async fn measure(label: String, transport: Transport, store: Option<&str>, gateways: usize, tenants: usize, clients: usize, seconds: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("sbd-load-{}", std::process::id()) + &format!("-{}", sbd_gateway::util::now_ms());
    let mut running = Vec::new();
    for _ in 0..gateways {
        let config = sbd_gateway::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            admin_key: Some("load-admin".into()),
            log_level: "warn".into(),
            store: store.map(str::to_string),
            store_prefix: prefix.clone(),
            ..sbd_gateway::Config::default()
        };
        running.push(sbd_gateway::serve::start(config).await.unwrap());
    }
    let bases: Vec<String> = running.iter().map(|gw| gw.url()).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut made = Vec::new();
    for t in 0..tenants {
        let name = if tenants == 1 { "acme".to_string() } else { format!("acme-{t}") };
        made.push(provision(&bases[0], &name, clients.div_ceil(tenants), now).await);
    }
    let made = std::sync::Arc::new(made);
    let tenant_of = move |c: usize| c % tenants;
    let gateway_of = move |c: usize| (c / tenants) % gateways;

    // The ledger alone: the same reservations straight into the store, no HTTP (the first
    // gateway's state).
    let ledger = {
        let stop = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let state = std::sync::Arc::clone(&running[0].state);
            let tenant = made[tenant_of(c)].name.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0usize;
                while Instant::now() < stop {
                    let req: sbd_gateway::cycles::ReserveRequest = serde_json::from_value(json!({
                        "idempotency_key": format!("L{c}-{i}"),
                        "subject": {"tenant": tenant, "workspace": "prod", "agent": format!("a{c}")},
                        "action": {"kind": "llm.completion", "name": "gpt"},
                        "estimate": {"unit": "USD_MICROCENTS", "amount": 1000},
                    })).unwrap();
                    i += 1;
                    let t = Instant::now();
                    let hash = sbd_gateway::ledger::request_hash(&req, "").unwrap();
                    let now = sbd_gateway::util::now_ms();
                    let owner = tenant.clone();
                    state.store.unit(&tenant, move |conn| sbd_gateway::ledger::reserve(conn, &owner, &req, &hash, now)).await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut phase = Phase { name: "ledger only (the store, no HTTP)", ok: 0, errors: 0, seconds: 0.0, latencies: Vec::new() };
        for t in tasks {
            let lat = t.await.unwrap();
            phase.ok += lat.len();
            phase.latencies.extend(lat);
        }
        phase.seconds = started.elapsed().as_secs_f64();
        phase.latencies.sort();
        phase
    };

    // client c's key: its tenant's (the run_phase keys are indexed by c mod their number)
    let keys: Vec<String> = (0..clients).map(|c| made[tenant_of(c)].key.clone()).collect();
    let urls = |path: &'static str| -> Vec<String> { bases.iter().map(|b| format!("{b}{path}")).collect() };
    let url = urls("/v1/reservations");
    let tenants_now = std::sync::Arc::clone(&made);
    let reservations = run_phase("reservations (POST /v1/reservations)", transport, clients, seconds, keys, move |c, i| {
        (url[gateway_of(c)].clone(), json!({
            "idempotency_key": format!("k{c}-{i}"),
            "subject": {"tenant": tenants_now[tenant_of(c)].name, "workspace": "prod", "agent": format!("a{c}")},
            "action": {"kind": "llm.completion", "name": "gpt"},
            "estimate": {"unit": "USD_MICROCENTS", "amount": 1000},
        }))
    })
    .await;

    // Delegations: every client delegates a fresh task from its tenant's root grant to the
    // orchestrator (token verification, registry, escrow carve, signed child token, trace
    // event and idempotency record per decision).
    let keys: Vec<String> = (0..clients).map(|c| made[tenant_of(c)].orchestrator.clone()).collect();
    let url = urls("/v1/delegations");
    let tenants_now = std::sync::Arc::clone(&made);
    let decisions = run_phase("delegation decisions (POST /v1/delegations)", transport, clients, seconds, keys, move |c, i| {
        (url[gateway_of(c)].clone(), json!({"token": tenants_now[tenant_of(c)].token, "request": {
            "from": {"id": "orchestrator", "trust": 0}, "to": {"id": format!("worker-{}", c / tenants), "trust": 0},
            "task": {"id": format!("t{c}-{i}"), "action_kind": "payment.refund", "risk": "low", "value": 10, "counterparty": "acme"},
            "parent_mandate": mandate(now, 1_000_000_000_000, 4), "requested_mandate": mandate(now, 1, 3), "state": [0.1]}}))
    })
    .await;

    let writer = running[0].state.store.sqlite().map(|sqlite| {
        use std::sync::atomic::Ordering::Relaxed;
        let st = sqlite.stats();
        let (jobs, batches) = (st.jobs.load(Relaxed), st.batches.load(Relaxed));
        format!(
            "store writer: {jobs} jobs in {batches} transactions ({:.1} per commit), {:.1} us per job, {:.1} us per commit, the WAL started over {} times ({:.1} ms per restart)",
            jobs as f64 / batches.max(1) as f64,
            st.job_nanos.load(Relaxed) as f64 / jobs.max(1) as f64 / 1000.0,
            st.commit_nanos.load(Relaxed) as f64 / batches.max(1) as f64 / 1000.0,
            st.wal_restarts.load(Relaxed),
            st.wal_restart_nanos.load(Relaxed) as f64 / st.wal_restarts.load(Relaxed).max(1) as f64 / 1e6
        )
    });
    for gw in running {
        gw.stop().await;
    }
    Run { label, phases: vec![ledger, reservations, decisions], writer }
}

#[tokio::main]
async fn main() {
    let mut seconds = 10u64;
    let mut clients = 50usize;
    let mut tenants = 1usize;
    let mut redis: Option<String> = None;
    let mut transport = Transport::Hyper;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--clients" => clients = args.next().and_then(|s| s.parse().ok()).unwrap_or(clients),
            "--tenants" => tenants = args.next().and_then(|s| s.parse().ok()).filter(|&n| n >= 1).expect("--tenants N (at least 1)"),
            "--redis" => redis = args.next(),
            "--client" => {
                transport = match args.next().as_deref() {
                    Some("hyper") => Transport::Hyper,
                    Some("reqwest") => Transport::Reqwest,
                    _ => panic!("--client hyper|reqwest"),
                }
            }
            other => panic!("unknown argument {other} (expected --seconds N, --clients N, --tenants N, --redis URL, --client hyper|reqwest)"),
        }
    }
    println!(
        "sbd gateway load test: {clients} clients over {tenants} tenant(s), {seconds} s per phase, loopback, clients and gateways in one process, {} client",
        if transport == Transport::Hyper { "hyper" } else { "reqwest" }
    );
    let mut runs = vec![measure("SQLite, one gateway".into(), transport, None, 1, tenants, clients, seconds).await];
    if let Some(url) = &redis {
        runs.push(measure("Redis, one gateway".into(), transport, Some(url), 1, tenants, clients, seconds).await);
        runs.push(measure("Redis, two gateways".into(), transport, Some(url), 2, tenants, clients, seconds).await);
    }
    for run in &runs {
        if let Some(writer) = &run.writer {
            println!("{}: {writer}", run.label);
        }
    }
    println!("| backend | phase | ok | errors | seconds | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|---|");
    for run in &runs {
        for p in &run.phases {
            println!(
                "| {} | {} | {} | {} | {:.1} | {:.0} | {:.2} | {:.2} |",
                run.label,
                p.name,
                p.ok,
                p.errors,
                p.seconds,
                p.ok as f64 / p.seconds,
                pct(&p.latencies, 0.50),
                pct(&p.latencies, 0.99)
            );
        }
    }
}

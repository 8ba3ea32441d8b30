//! A bounded load test on loopback: reservations per second and delegation decisions per
//! second with p50/p99 latency.
//!
//! Run with `cargo run --release -p sbd-gateway --example load -- [--seconds 10] [--clients 50]
//! [--redis redis://127.0.0.1:6379/]`. It starts a gateway in this process on a temporary data
//! directory (so client and server share the machine's cores), provisions a tenant, then runs
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

async fn run_phase<F>(name: &'static str, clients: usize, seconds: u64, key: String, make: F) -> Phase
where
    F: Fn(usize, usize) -> (String, Value) + Send + Sync + Clone + 'static,
{
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).tcp_nodelay(true).build().unwrap();
    let stop = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, make, key) = (client.clone(), make.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let (mut ok, mut errors) = (0usize, 0usize);
            let mut i = 0usize;
            while Instant::now() < stop {
                let (url, body) = make(c, i);
                i += 1;
                let t = Instant::now();
                let r = client.post(&url).header("x-cycles-api-key", key.as_str()).json(&body).send().await;
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                        lat.push(t.elapsed());
                        ok += 1;
                    }
                    Ok(resp) => {
                        if errors == 0 {
                            eprintln!("{name}: HTTP {} {}", resp.status(), resp.text().await.unwrap_or_default());
                        }
                        errors += 1;
                    }
                    Err(_) => errors += 1,
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

/// Starts `gateways` gateways on `store` (`None`: each on SQLite in its own directory; one
/// gateway then), provisions tenant `acme` and runs the three phases against them.
async fn measure(label: String, store: Option<&str>, gateways: usize, clients: usize, seconds: u64) -> Run {
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
    let base = bases[0].clone();
    let admin = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        admin.post(format!("{base}{path}")).header("x-admin-api-key", "load-admin").json(&body).send()
    };
    post("/v1/admin/tenants", json!({"tenant_id": "acme", "name": "acme"})).await.unwrap();
    let key: Value = post("/v1/admin/api-keys", json!({"tenant_id": "acme", "name": "load"})).await.unwrap().json().await.unwrap();
    let key = key["key_secret"].as_str().unwrap().to_string();
    let mint = |name: &str, role: &str| post("/v1/admin/api-keys", json!({"tenant_id": "acme", "name": name, "role": role}));
    let operator: Value = mint("load operator", "operator").await.unwrap().json().await.unwrap();
    let operator = operator["key_secret"].as_str().unwrap().to_string();
    let orchestrator: Value = mint("orchestrator", "agent").await.unwrap().json().await.unwrap();
    let orchestrator = orchestrator["key_secret"].as_str().unwrap().to_string();
    for unit in ["USD_MICROCENTS", "TOKENS"] {
        admin
            .post(format!("{base}/v1/admin/budgets"))
            .header("x-cycles-api-key", &operator)
            .json(&json!({"scope": "tenant:acme", "unit": unit, "allocated": {"unit": unit, "amount": 9_000_000_000_000_000i64}}))
            .send()
            .await
            .unwrap();
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;

    // The ledger alone: the same reservations straight into the store, no HTTP (the first
    // gateway's state).
    let ledger = {
        let stop = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let state = std::sync::Arc::clone(&running[0].state);
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0usize;
                while Instant::now() < stop {
                    let req: sbd_gateway::cycles::ReserveRequest = serde_json::from_value(json!({
                        "idempotency_key": format!("L{c}-{i}"),
                        "subject": {"tenant": "acme", "workspace": "prod", "agent": format!("a{c}")},
                        "action": {"kind": "llm.completion", "name": "gpt"},
                        "estimate": {"unit": "USD_MICROCENTS", "amount": 1000},
                    })).unwrap();
                    i += 1;
                    let t = Instant::now();
                    let hash = sbd_gateway::ledger::request_hash(&req, "").unwrap();
                    let now = sbd_gateway::util::now_ms();
                    state.store.unit("acme", move |conn| sbd_gateway::ledger::reserve(conn, "acme", &req, &hash, now)).await.unwrap();
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

    // client c talks to gateway c mod n
    let urls = |path: &'static str| -> Vec<String> { bases.iter().map(|b| format!("{b}{path}")).collect() };
    let url = urls("/v1/reservations");
    let reservations = run_phase("reservations (POST /v1/reservations)", clients, seconds, key.clone(), move |c, i| {
        (url[c % url.len()].clone(), json!({
            "idempotency_key": format!("k{c}-{i}"),
            "subject": {"tenant": "acme", "workspace": "prod", "agent": format!("a{c}")},
            "action": {"kind": "llm.completion", "name": "gpt"},
            "estimate": {"unit": "USD_MICROCENTS", "amount": 1000},
        }))
    })
    .await;

    // Delegations: an operator's root grant to the orchestrator, then every client delegates a
    // fresh task from it (token verification, registry, escrow carve, signed child token,
    // trace event and idempotency record per decision).
    let tenant_post = |path: &str, body: Value| admin.post(format!("{base}{path}")).header("x-cycles-api-key", &operator).json(&body).send();
    tenant_post("/v1/agents", json!({"agent_id": "orchestrator", "trust": 900})).await.unwrap();
    for c in 0..clients {
        tenant_post("/v1/agents", json!({"agent_id": format!("worker-{c}"), "trust": 720})).await.unwrap();
    }
    let mandate = move |amount: u64, depth: u8| json!({"value_ceiling": 1_000_000u64, "action_kinds": ["payment.*"], "counterparties": ["acme"],
        "budgets": [{"unit": "TOKENS", "amount": amount}], "remaining_depth": depth, "expires_at": now + 3_600_000});
    let grant: Value = tenant_post("/v1/root-grants", json!({"agent_id": "orchestrator", "mandate": mandate(1_000_000_000_000, 4)}))
        .await.unwrap().json().await.unwrap();
    let token = grant["token"].as_str().expect("root grant").to_string();
    let url = urls("/v1/delegations");
    let decisions = run_phase("delegation decisions (POST /v1/delegations)", clients, seconds, orchestrator.clone(), move |c, i| {
        (url[c % url.len()].clone(), json!({"token": token, "request": {
            "from": {"id": "orchestrator", "trust": 0}, "to": {"id": format!("worker-{c}"), "trust": 0},
            "task": {"id": format!("t{c}-{i}"), "action_kind": "payment.refund", "risk": "low", "value": 10, "counterparty": "acme"},
            "parent_mandate": mandate(1_000_000_000_000, 4), "requested_mandate": mandate(1, 3), "state": [0.1]}}))
    })
    .await;

    let writer = running[0].state.store.sqlite().map(|sqlite| {
        use std::sync::atomic::Ordering::Relaxed;
        let st = sqlite.stats();
        let (jobs, batches) = (st.jobs.load(Relaxed), st.batches.load(Relaxed));
        format!(
            "store writer: {jobs} jobs in {batches} transactions ({:.1} per commit), {:.1} us per job, {:.1} us per commit",
            jobs as f64 / batches.max(1) as f64,
            st.job_nanos.load(Relaxed) as f64 / jobs.max(1) as f64 / 1000.0,
            st.commit_nanos.load(Relaxed) as f64 / batches.max(1) as f64 / 1000.0
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
    let mut redis: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--clients" => clients = args.next().and_then(|s| s.parse().ok()).unwrap_or(clients),
            "--redis" => redis = args.next(),
            other => panic!("unknown argument {other} (expected --seconds N, --clients N, --redis URL)"),
        }
    }
    println!("sbd gateway load test: {clients} clients, {seconds} s per phase, loopback, clients and gateways in one process");
    let mut runs = vec![measure("SQLite, one gateway".into(), None, 1, clients, seconds).await];
    if let Some(url) = &redis {
        runs.push(measure("Redis, one gateway".into(), Some(url), 1, clients, seconds).await);
        runs.push(measure("Redis, two gateways".into(), Some(url), 2, clients, seconds).await);
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

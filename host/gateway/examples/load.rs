//! A bounded load test on loopback: reservations per second and delegation decisions per
//! second with p50/p99 latency.
//!
//! Run with `cargo run --release -p sbd-gateway --example load -- [--seconds 10] [--clients 50]`.
//! It starts a gateway in this process on a temporary data directory (so client and server
//! share the machine's cores), provisions a tenant, then runs each phase for the given time
//! with `clients` concurrent keep-alive connections.
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

async fn run_phase<F>(name: &'static str, clients: usize, seconds: u64, make: F) -> Phase
where
    F: Fn(usize, usize) -> (String, Value) + Send + Sync + Clone + 'static,
{
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).tcp_nodelay(true).build().unwrap();
    let stop = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, make) = (client.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let (mut ok, mut errors) = (0usize, 0usize);
            let mut i = 0usize;
            while Instant::now() < stop {
                let (url, body) = make(c, i);
                i += 1;
                let t = Instant::now();
                let r = client.post(&url).header("x-cycles-api-key", KEY.get().unwrap().as_str()).json(&body).send().await;
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

static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[tokio::main]
async fn main() {
    let mut seconds = 10u64;
    let mut clients = 50usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--clients" => clients = args.next().and_then(|s| s.parse().ok()).unwrap_or(clients),
            other => panic!("unknown argument {other}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = sbd_gateway::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        admin_key: Some("load-admin".into()),
        log_level: "warn".into(),
        ..sbd_gateway::Config::default()
    };
    let gw = sbd_gateway::serve::start(config).await.unwrap();
    let base = gw.url();
    let admin = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        admin.post(format!("{base}{path}")).header("x-admin-api-key", "load-admin").json(&body).send()
    };
    post("/v1/admin/tenants", json!({"tenant_id": "acme", "name": "acme"})).await.unwrap();
    let key: Value = post("/v1/admin/api-keys", json!({"tenant_id": "acme", "name": "load"})).await.unwrap().json().await.unwrap();
    let key = key["key_secret"].as_str().unwrap().to_string();
    KEY.set(key.clone()).unwrap();
    // Budgets are an operator's (or the admin key's) to create; the load key is an agent key.
    for unit in ["USD_MICROCENTS", "TOKENS"] {
        let r = post(
            "/v1/admin/budgets",
            json!({"tenant_id": "acme", "scope": "tenant:acme", "unit": unit, "allocated": {"unit": unit, "amount": 9_000_000_000_000_000i64}}),
        )
        .await
        .unwrap();
        assert!(r.status().is_success(), "budget: {}", r.status());
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    println!("sbd gateway load test: {clients} clients, {seconds} s per phase, loopback, client and server in one process");

    // The ledger alone: the same reservations straight into the store's writer, no HTTP.
    let ledger = {
        let stop = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let state = std::sync::Arc::clone(&gw.state);
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
                    state.store.run(move |conn| sbd_gateway::ledger::reserve(conn, "acme", &req, &hash, now)).await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut phase = Phase { name: "ledger only (store writer, no HTTP)", ok: 0, errors: 0, seconds: 0.0, latencies: Vec::new() };
        for t in tasks {
            let lat = t.await.unwrap();
            phase.ok += lat.len();
            phase.latencies.extend(lat);
        }
        phase.seconds = started.elapsed().as_secs_f64();
        phase.latencies.sort();
        phase
    };

    let url = format!("{base}/v1/reservations");
    let reservations = run_phase("reservations (POST /v1/reservations)", clients, seconds, move |c, i| {
        (url.clone(), json!({
            "idempotency_key": format!("k{c}-{i}"),
            "subject": {"tenant": "acme", "workspace": "prod", "agent": format!("a{c}")},
            "action": {"kind": "llm.completion", "name": "gpt"},
            "estimate": {"unit": "USD_MICROCENTS", "amount": 1000},
        }))
    })
    .await;

    let url = format!("{base}/v1/delegations");
    let mandate = move |amount: u64, depth: u8| json!({"value_ceiling": 1_000_000u64, "action_kinds": ["payment.*"], "counterparties": ["acme"],
        "budgets": [{"unit": "TOKENS", "amount": amount}], "remaining_depth": depth, "expires_at": now + 3_600_000});
    let decisions = run_phase("delegation decisions (POST /v1/delegations)", clients, seconds, move |c, i| {
        (url.clone(), json!({"request": {
            "from": {"id": "orchestrator", "trust": 900}, "to": {"id": format!("worker-{c}-{i}"), "trust": 720},
            "task": {"id": format!("t{c}-{i}"), "action_kind": "payment.refund", "risk": "low", "value": 10, "counterparty": "acme"},
            "parent_mandate": mandate(1000, 4), "requested_mandate": mandate(1, 3), "chain": [], "state": [0.1]}}))
    })
    .await;

    {
        use std::sync::atomic::Ordering::Relaxed;
        let st = gw.state.store.stats();
        let (jobs, batches) = (st.jobs.load(Relaxed), st.batches.load(Relaxed));
        println!(
            "store writer: {jobs} jobs in {batches} transactions ({:.1} per commit), {:.1} us per job, {:.1} us per commit",
            jobs as f64 / batches.max(1) as f64,
            st.job_nanos.load(Relaxed) as f64 / jobs.max(1) as f64 / 1000.0,
            st.commit_nanos.load(Relaxed) as f64 / batches.max(1) as f64 / 1000.0
        );
    }
    println!("| phase | ok | errors | seconds | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    for p in [&ledger, &reservations, &decisions] {
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {:.2} | {:.2} |",
            p.name,
            p.ok,
            p.errors,
            p.seconds,
            p.ok as f64 / p.seconds,
            pct(&p.latencies, 0.50),
            pct(&p.latencies, 0.99)
        );
    }
    gw.stop().await;
}

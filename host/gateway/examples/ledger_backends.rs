//! The ledger's two backends under the same load, in one run: reserve-then-commit pairs per
//! second (and p50/p99 of a pair) with `clients` concurrent clients on one tenant, on the
//! embedded SQLite store (its writer thread, as `sbd serve` uses it) and on Redis, plus how
//! many attempts Redis needed per operation (an attempt runs again when its tenant lock lapsed
//! before it committed).
//!
//! `cargo run --release -p sbd-gateway --example ledger_backends -- [--seconds 5] [--clients 50]
//!  [--tenants 1] [--gateways G] [--redis redis://127.0.0.1:6379/ | --redis redis+cluster://HOST:PORT,...]`
//!
//! On Redis the clients share `--gateways` ledgers (client i uses ledger i mod G), each as one
//! gateway process has it: its own connections, and its own gate per tenant through which its
//! operations pass one at a time and hand the tenant's lock on. The default is one ledger per
//! client, the worst case: every client is a gateway of its own and every operation takes the
//! lock afresh.
//!
//! Without `--redis` it starts a `redis-server` of its own on a free loopback port (and stops
//! it at the end). Every reservation holds on its tenant's root budget, so the clients of one
//! tenant contend on one budget, as every reservation of a tenant does; `--tenants N` spreads
//! the clients over N tenants (client i works for tenant i mod N).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sbd_gateway::cycles::{CommitRequest, ReserveRequest, Unit};
use sbd_gateway::ledger::redis::RedisLedger;
use sbd_gateway::ledger::{self, BudgetRow, LedgerStore};
use sbd_gateway::store::{Store, SyncMode};
use serde_json::json;

/// The tenant client `client` works for, of `tenants`.
fn tenant_of(client: usize, tenants: usize) -> String {
    format!("t{}", client % tenants.max(1))
}

fn budget(tenant: &str) -> BudgetRow {
    BudgetRow::active(format!("tenant:{tenant}"), Unit::UsdMicrocents, "ldg_load", i64::MAX / 4, 0)
}

fn requests(tenant: &str, client: usize, i: usize) -> (ReserveRequest, CommitRequest) {
    let reserve = serde_json::from_value(json!({
        "idempotency_key": format!("r-{client}-{i}"),
        "subject": {"tenant": tenant, "workspace": "prod"},
        "action": {"kind": "llm.call", "name": "load"},
        "estimate": {"unit": "USD_MICROCENTS", "amount": 10},
    }))
    .unwrap();
    let commit = serde_json::from_value(json!({
        "idempotency_key": format!("c-{client}-{i}"),
        "actual": {"unit": "USD_MICROCENTS", "amount": 7},
    }))
    .unwrap();
    (reserve, commit)
}

/// What one phase measured.
struct Phase {
    pairs: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Phase {
    fn print(&self, name: &str, extra: &str) {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| l.get(((l.len().max(1) - 1) as f64 * p).round() as usize).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        println!(
            "{name:<8} {:>8.0} pairs/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} pairs in {:.1} s){extra}",
            self.pairs as f64 / self.seconds,
            pct(0.5),
            pct(0.99),
            self.pairs,
            self.seconds
        );
    }
}

fn sqlite_phase(clients: usize, tenants: usize, seconds: u64) -> Phase {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::open(dir.path(), SyncMode::Normal).unwrap();
        for t in 0..tenants.max(1) {
            let tenant = tenant_of(t, tenants);
            store.run(move |c| c.insert_budget(&tenant, &budget(&tenant))).await.unwrap();
        }
        let stop = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let store = store.clone();
                let tenant = tenant_of(client, tenants);
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut i = 0;
                    while Instant::now() < stop {
                        let (reserve, commit) = requests(&tenant, client, i);
                        let t = Instant::now();
                        let (tenant_r, tenant_c) = (tenant.clone(), tenant.clone());
                        let id = store
                            .run(move |c| {
                                let hash = ledger::request_hash(&reserve, "")?;
                                ledger::reserve(c, &tenant_r, &reserve, &hash, sbd_gateway::util::now_ms())
                            })
                            .await
                            .unwrap()
                            .reservation_id
                            .unwrap();
                        store
                            .run(move |c| {
                                let hash = ledger::request_hash(&commit, &id)?;
                                ledger::commit(c, &tenant_c, &id, &commit, &hash, sbd_gateway::util::now_ms())
                            })
                            .await
                            .and_then(ledger::Finished::into_result)
                            .unwrap();
                        latencies.push(t.elapsed());
                        i += 1;
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        Phase { pairs: latencies.len(), seconds: started.elapsed().as_secs_f64(), latencies }
    })
}

/// The phase, attempts per operation, and the share of attempts that started under a lock
/// handed on by the operation before.
fn redis_phase(url: &str, prefix: &str, clients: usize, tenants: usize, gateways: usize, seconds: u64) -> (Phase, f64, f64) {
    let setup = RedisLedger::open(url, prefix).unwrap();
    let gateways: Vec<RedisLedger> = (0..gateways.clamp(1, clients.max(1))).map(|_| RedisLedger::open(url, prefix).unwrap()).collect();
    for t in 0..tenants.max(1) {
        let tenant = tenant_of(t, tenants);
        setup.run(&tenant, |s| s.insert_budget(&tenant, &budget(&tenant))).unwrap();
    }
    let attempts = Arc::new(AtomicU64::new(0));
    let operations = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|client| {
                let (attempts, operations) = (Arc::clone(&attempts), Arc::clone(&operations));
                let gateway = &gateways[client % gateways.len()];
                scope.spawn(move || {
                    let tenant = tenant_of(client, tenants);
                    let mut latencies = Vec::new();
                    let mut i = 0;
                    while Instant::now() < stop {
                        let (reserve, commit) = requests(&tenant, client, i);
                        let t = Instant::now();
                        let hash = ledger::request_hash(&reserve, "").unwrap();
                        let reserved = gateway
                            .run(&tenant, |s| {
                                attempts.fetch_add(1, Ordering::Relaxed);
                                ledger::reserve(s, &tenant, &reserve, &hash, sbd_gateway::util::now_ms())
                            })
                            .unwrap();
                        let id = reserved.reservation_id.unwrap();
                        let hash = ledger::request_hash(&commit, &id).unwrap();
                        gateway
                            .run(&tenant, |s| {
                                attempts.fetch_add(1, Ordering::Relaxed);
                                ledger::commit(s, &tenant, &id, &commit, &hash, sbd_gateway::util::now_ms())
                            })
                            .and_then(ledger::Finished::into_result)
                            .unwrap();
                        operations.fetch_add(2, Ordering::Relaxed);
                        latencies.push(t.elapsed());
                        i += 1;
                    }
                    latencies
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let attempts = attempts.load(Ordering::Relaxed) as f64;
    let per_operation = attempts / operations.load(Ordering::Relaxed).max(1) as f64;
    let handed_on = gateways.iter().map(RedisLedger::handed_on).sum::<u64>() as f64 / attempts.max(1.0);
    (Phase { pairs: latencies.len(), seconds: started.elapsed().as_secs_f64(), latencies }, per_operation, handed_on)
}

/// The example's own `redis-server`, stopped when dropped (also on a panic).
struct OwnServer(std::process::Child);

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    // the ledger's internal errors are logged, not returned in full
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let seconds: u64 = value("--seconds").map_or(5, |s| s.parse().expect("--seconds: a number"));
    let clients: usize = value("--clients").map_or(50, |s| s.parse().expect("--clients: a number"));
    let tenants: usize = value("--tenants").map_or(1, |s| s.parse().expect("--tenants: a number"));
    let gateways: usize = value("--gateways").map_or(clients, |s| s.parse().expect("--gateways: a number")).clamp(1, clients.max(1));
    let mut own_server = None;
    let url = match value("--redis") {
        Some(url) => url,
        None => {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("redis-server is not installed: install it, or pass --redis URL");
            own_server = Some(OwnServer(child));
            std::thread::sleep(Duration::from_millis(300));
            format!("redis://127.0.0.1:{port}/")
        }
    };
    println!(
        "{clients} clients over {tenants} tenant(s) and, on Redis, {gateways} gateway ledger(s); {seconds} s per phase; a pair is one reserve and one commit"
    );
    sqlite_phase(clients, tenants, seconds).print("sqlite", "");
    let prefix = format!("sbd-load-{}", std::process::id());
    let (phase, attempts, handed_on) = redis_phase(&url, &prefix, clients, tenants, gateways, seconds);
    phase.print("redis", &format!("  {attempts:.2} attempts per operation, {:.0}% under a handed-on lock", handed_on * 100.0));
    drop(own_server);
}

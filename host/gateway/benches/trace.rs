//! The cost of the tamper-evident trace per append: sealing an event (SHA-256 chain hash and
//! an Ed25519 signature of the new head), the sealed append into SQLite (the event row plus the
//! signed head), and, as the reference in the same run, the unsealed insert the trace used
//! before (the same row without proof columns).
//!
//! Run with `cargo bench -p sbd-gateway --bench trace`.
#![allow(clippy::expect_used, clippy::panic, missing_docs, reason = "benchmark set-up fails loudly")]

use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::{Connection, params};
use sbd_bundle::KeyPair;
use sbd_gateway::traces::{self, NewEvent, Record};
use serde_json::json;

fn body() -> String {
    json!({
        "task": {"id": "refund-4821", "action_kind": "payment.refund", "risk": "medium", "value": 1_000_000, "counterparty": "acme"},
        "delegator_trust": 720,
        "delegate_trust": 680,
        "verdict": {"allow": {"alpha": 0.5, "warnings": []}},
        "reservations": [{"kind": "sub-budget", "reservation_id": "rsv_0123456789abcdef", "reserved": {"unit": "USD_MICROCENTS", "amount": 500_000_000}}],
        "request_id": "req_0123456789",
        "trace_id": "0123456789abcdef0123456789abcdef",
    })
    .to_string()
}

fn db() -> Connection {
    let conn = Connection::open_in_memory().expect("sqlite");
    conn.execute_batch(sbd_gateway::store::SCHEMA).expect("schema");
    conn
}

fn trace(c: &mut Criterion) {
    let key = KeyPair::from_secret(&[3; 32]);
    let body = body();
    let event = |chain: &'static str| NewEvent {
        tenant: "acme",
        chain_id: chain,
        delegator: "refund-agent",
        delegate: "ledger-agent",
        depth: 2,
        at_ms: 1_764_000_000_000,
        decision: "allow",
        reason_code: None,
        policy_version: "default@0.1.0",
        body: body.clone(),
    };
    let mut group = c.benchmark_group("trace");
    let mut record = Record {
        seq: 1,
        pos: 1,
        tenant: "acme".into(),
        chain_id: "0123456789abcdef0123456789abcdef".into(),
        delegator: "refund-agent".into(),
        delegate: "ledger-agent".into(),
        depth: 2,
        at_ms: 1_764_000_000_000,
        decision: "allow".into(),
        reason_code: None,
        policy_version: "default@0.1.0".into(),
        body: body.clone(),
        prev_hash: String::new(),
        hash: String::new(),
        key_id: String::new(),
        signature: String::new(),
        seal_id: None,
        leaf: None,
    };
    let prev = [7u8; 32];
    group.bench_function("sign one event (the format before seals)", |b| b.iter(|| traces::seal(&mut record, &prev, &key)));
    group.bench_function("hash only", |b| b.iter(|| traces::event_hash(&prev, &record)));

    // Appends into one transaction per 1,000 events, sealed every 32 events like the writer's
    // group commits (about 30 delegations each under load).
    let conn = db();
    conn.execute_batch("BEGIN").expect("begin");
    let mut n = 0u64;
    group.bench_function("append sealed (row + a 32-event batch's seal)", |b| {
        b.iter(|| {
            traces::append(&conn, &event("0123456789abcdef0123456789abcdef"), &key).expect("append");
            n += 1;
            if n.is_multiple_of(32) {
                traces::seal_pending(&conn, 0).expect("seal");
            }
            if n.is_multiple_of(1000) {
                traces::seal_pending(&conn, 0).expect("seal");
                conn.execute_batch("COMMIT; BEGIN").expect("commit");
            }
        })
    });
    traces::seal_pending(&conn, 0).expect("seal");
    conn.execute_batch("COMMIT").expect("commit");

    let conn = db();
    conn.execute_batch("BEGIN").expect("begin");
    let mut n = 0u64;
    group.bench_function("append unsealed (reference: the former insert)", |b| {
        b.iter(|| {
            let e = event("0123456789abcdef0123456789abcdef");
            conn.prepare_cached(
                "INSERT INTO trace_events (tenant_id, chain_id, delegator, delegate, depth, at_ms, decision, reason_code, \
                 policy_version, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .expect("prepare")
            .execute(params![
                e.tenant,
                e.chain_id,
                e.delegator,
                e.delegate,
                e.depth,
                e.at_ms,
                e.decision,
                e.reason_code,
                e.policy_version,
                e.body
            ])
            .expect("insert");
            n += 1;
            if n.is_multiple_of(1000) {
                conn.execute_batch("COMMIT; BEGIN").expect("commit");
            }
        })
    });
    conn.execute_batch("COMMIT").expect("commit");
    group.finish();
}

criterion_group!(benches, trace);
criterion_main!(benches);

//! Gateways (`serve::start`, real sockets) on one Redis and on a three-node Redis Cluster,
//! serving one tenant at once: a key made at one works at another at once and stops there
//! after its revocation; concurrent reservations through both never oversubscribe a budget,
//! and both report the same ledger. (The HTTP suites in `tests/` run on one gateway on Redis
//! when `.ci/run` sets `SBD_TEST_STORE`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::config::Config;
use crate::serve::{start, Running};
use crate::test_redis::{redis_deployments, RedisDeployment};

const ADMIN: &str = "several-gateways-admin";

/// A gateway on `redis`, over the data directory the gateways share (the token key and the
/// admin key are the same for both, as for gateways deployed from one secret store).
async fn gateway(redis: &RedisDeployment, dir: &std::path::Path, sweep_interval_ms: u64) -> Running {
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        admin_key: Some(ADMIN.into()),
        store: Some(redis.url.clone()),
        store_prefix: redis.prefix.clone(),
        sweep_interval_ms,
        log_level: "warn".into(),
        ..Config::default()
    };
    start(config).await.expect("a gateway on Redis starts")
}

async fn call(gw: &Running, method: Method, path: &str, header: (&str, &str), body: Option<Value>) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method, format!("{}{path}", gw.url())).header(header.0, header.1);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn admin(gw: &Running, method: Method, path: &str, body: Value) -> Value {
    let (status, body) = call(gw, method, path, ("x-admin-api-key", ADMIN), Some(body)).await;
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

fn reservation(i: usize, amount: i64) -> Value {
    json!({
        "idempotency_key": format!("r-{i}"),
        "subject": {"tenant": "acme", "agent": "bot"},
        "action": {"kind": "llm.completion", "name": "gpt"},
        "estimate": {"unit": "USD_MICROCENTS", "amount": amount},
    })
}

async fn gateways_serve_one_tenant(redis: &RedisDeployment) {
    let dir = tempfile::tempdir().unwrap();
    let a = gateway(redis, dir.path(), 50).await;
    let b = gateway(redis, dir.path(), 50).await;
    // C reloads its key cache only every ten minutes: a key works there through the lookup
    // of a key the cache does not hold
    let c = gateway(redis, dir.path(), 600_000).await;

    admin(&a, Method::POST, "/v1/admin/tenants", json!({"tenant_id": "acme", "name": "Acme"})).await;
    let made = admin(&a, Method::POST, "/v1/admin/api-keys", json!({"tenant_id": "acme", "name": "ops", "role": "operator"})).await;
    let operator = made["key_secret"].as_str().unwrap().to_string();
    let made = admin(&a, Method::POST, "/v1/admin/api-keys", json!({"tenant_id": "acme", "name": "bot"})).await;
    let key = made["key_secret"].as_str().unwrap().to_string();
    let key_id = made["key_id"].as_str().unwrap().to_string();
    // made at A, used at C at once (C's cache has never seen them)
    let budget = json!({"scope": "tenant:acme", "unit": "USD_MICROCENTS", "allocated": {"unit": "USD_MICROCENTS", "amount": 10_000}});
    let (status, body) = call(&c, Method::POST, "/v1/admin/budgets", ("x-cycles-api-key", &operator), Some(budget)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // 40 reservations of 500 against 10,000, alternating gateways, all at once: exactly 20 fit
    let mut racing = Vec::new();
    for i in 0..40 {
        let gw = if i % 2 == 0 { a.url() } else { b.url() };
        let key = key.clone();
        racing.push(tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(format!("{gw}/v1/reservations"))
                .header("x-cycles-api-key", key)
                .json(&reservation(i, 500))
                .send()
                .await
                .expect("the gateway answers");
            let status = response.status();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let (mut granted, mut refused) = (0, 0);
    for r in racing {
        let (status, body) = r.await.unwrap();
        match status {
            StatusCode::OK => granted += 1,
            StatusCode::CONFLICT => {
                assert_eq!(body["error"], "BUDGET_EXCEEDED", "{body}");
                refused += 1;
            }
            other => panic!("a reservation answered {other}: {body}"),
        }
    }
    assert_eq!((granted, refused), (20, 20), "no oversubscription, no refusal while room was left");
    for gw in [&a, &b] {
        let (status, body) = call(gw, Method::GET, "/v1/balances?tenant=acme", ("x-cycles-api-key", &key), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let balance = &body["balances"][0];
        assert_eq!(
            (balance["reserved"]["amount"].as_i64(), balance["remaining"]["amount"].as_i64()),
            (Some(10_000), Some(0)),
            "both gateways report one ledger: {body}"
        );
    }

    // revoked at A: refused at B within a few of its key-cache reloads
    let (status, body) = call(&a, Method::DELETE, &format!("/v1/admin/api-keys/{key_id}"), ("x-admin-api-key", ADMIN), None).await;
    assert!(status.is_success(), "{status} {body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = call(&b, Method::GET, "/v1/balances?tenant=acme", ("x-cycles-api-key", &key), None).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "the key revoked at A still works at B after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for gw in [a, b, c] {
        gw.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateways_on_one_redis_serve_one_tenant_without_oversubscription() {
    for (name, redis) in redis_deployments() {
        eprintln!("on {name}");
        gateways_serve_one_tenant(&redis).await;
    }
}

/// A gateway with a signing key of its own (another data directory) is refused on a state
/// sealed with another key: its seals and receipts would not verify at the other gateways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_another_signing_key_is_refused_on_a_shared_state() {
    for (name, redis) in redis_deployments() {
        let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = gateway(&redis, first_dir.path(), 50).await;
        let config = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: second_dir.path().to_path_buf(),
            admin_key: Some(ADMIN.into()),
            store: Some(redis.url.clone()),
            store_prefix: redis.prefix.clone(),
            ..Config::default()
        };
        let Err(refused) = start(config).await else { panic!("{name}: a gateway with another signing key started") };
        assert!(refused.to_string().contains("must share `gateway.key`"), "{name}: {refused}");
        first.stop().await;
    }
}

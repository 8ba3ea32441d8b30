//! The ledger over HTTP: concurrency (never oversubscribed, zero ledger mismatch), tenant
//! isolation, bad input that changes nothing, idempotency, overage policies, expiry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{reserve_body, Http};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn setup(dir: &std::path::Path) -> (sbd_gateway::serve::Running, Http, String) {
    let gw = common::gateway(dir).await;
    let http = Http::new(gw.url());
    let key = http.provision("acme").await;
    (gw, http, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_reservations_never_oversubscribe_and_balances_equal_the_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, http, key) = setup(dir.path()).await;
    // 1,000 units; 400 clients each try to reserve 7 and commit a pseudo-random 0..=7.
    http.budget(&key, "tenant:acme", "USD_MICROCENTS", 1_000, json!({})).await;
    let mut tasks = Vec::new();
    for i in 0..400i64 {
        let (http, key) = (http.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(reserve_body(&format!("r{i}"), "acme", 7))).await;
            match r.status {
                StatusCode::OK => {
                    let id = r.body["reservation_id"].as_str().unwrap().to_string();
                    let actual = (i * 37) % 8;
                    let c = http
                        .tenant(
                            &key,
                            Method::POST,
                            &format!("/v1/reservations/{id}/commit"),
                            Some(json!({"idempotency_key": format!("c{i}"), "actual": {"unit": "USD_MICROCENTS", "amount": actual}})),
                        )
                        .await;
                    assert_eq!(c.status, StatusCode::OK, "{:?}", c.body);
                    (1, c.body["charged"]["amount"].as_i64().unwrap())
                }
                StatusCode::CONFLICT => {
                    assert_eq!(r.body["error"], "BUDGET_EXCEEDED", "{:?}", r.body);
                    (0, 0)
                }
                s => panic!("unexpected {s}: {:?}", r.body),
            }
        }));
    }
    let (mut granted, mut charged) = (0i64, 0i64);
    for t in tasks {
        let (g, c) = t.await.unwrap();
        granted += g;
        charged += c;
    }
    let b = http.balance(&key, "acme", "tenant:acme").await;
    assert!(granted >= 142, "the budget fits at least 142 holds of 7 at once, got {granted}");
    assert_eq!(b["spent"]["amount"].as_i64().unwrap(), charged, "ledger mismatch: {b}");
    assert_eq!(b["reserved"]["amount"].as_i64().unwrap(), 0);
    assert_eq!(b["remaining"]["amount"].as_i64().unwrap(), 1_000 - charged);
    assert!(b["remaining"]["amount"].as_i64().unwrap() >= 0);

    // Holds only (no commits): exactly floor(1000 / 7) succeed at once.
    http.budget(&key, "tenant:acme/workspace:w", "TOKENS", 1_000, json!({})).await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (http, key) = (http.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({
                "idempotency_key": format!("h{i}"),
                "subject": {"tenant": "acme", "workspace": "w"},
                "action": {"kind": "llm.completion", "name": "x"},
                "estimate": {"unit": "TOKENS", "amount": 7},
            });
            http.tenant(&key, Method::POST, "/v1/reservations", Some(body)).await.status == StatusCode::OK
        }));
    }
    let mut held = 0;
    for t in tasks {
        held += i64::from(t.await.unwrap());
    }
    assert_eq!(held, 1_000 / 7);
    let b = http.balance(&key, "acme", "tenant:acme/workspace:w").await;
    assert_eq!(b["reserved"]["amount"].as_i64().unwrap(), 7 * held);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_one_tenant_cannot_read_or_change_another_tenants_state() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, http, a) = setup(dir.path()).await;
    let b = http.provision("globex").await;
    http.budget(&a, "tenant:acme", "USD_MICROCENTS", 1_000, json!({})).await;
    http.budget(&b, "tenant:globex", "USD_MICROCENTS", 1_000, json!({})).await;
    let r = http.tenant(&b, Method::POST, "/v1/reservations", Some(reserve_body("k1", "globex", 100))).await;
    let id = r.body["reservation_id"].as_str().unwrap().to_string();

    // A reads or mutates B's reservation: 403, and B's state is unchanged.
    for (method, path, body) in [
        (Method::GET, format!("/v1/reservations/{id}"), None),
        (Method::POST, format!("/v1/reservations/{id}/commit"), Some(json!({"idempotency_key": "x", "actual": {"unit": "USD_MICROCENTS", "amount": 1}}))),
        (Method::POST, format!("/v1/reservations/{id}/release"), Some(json!({"idempotency_key": "y"}))),
        (Method::POST, format!("/v1/reservations/{id}/extend"), Some(json!({"idempotency_key": "z", "extend_by_ms": 1000}))),
    ] {
        let r = http.tenant(&a, method, &path, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {:?}", r.body);
        assert_eq!(r.body["error"], "FORBIDDEN");
    }
    // A names B as subject or as balance filter: 403.
    let r = http.tenant(&a, Method::POST, "/v1/reservations", Some(reserve_body("k2", "globex", 1))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = http.tenant(&a, Method::GET, "/v1/balances?tenant=globex", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = http.tenant(&a, Method::POST, "/v1/events", Some(json!({
        "idempotency_key": "e", "subject": {"tenant": "globex"}, "action": {"kind": "a", "name": "b"},
        "actual": {"unit": "USD_MICROCENTS", "amount": 5}}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A budget for B's scope through A's (operator) key: refused.
    let r = http.tenant(&http.operator(&a), Method::POST, "/v1/admin/budgets", Some(json!({
        "scope": "tenant:globex/workspace:x", "unit": "TOKENS", "allocated": {"unit": "TOKENS", "amount": 5}}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Lists and budgets show nothing of B.
    let r = http.tenant(&a, Method::GET, "/v1/reservations", None).await;
    assert_eq!(r.body["reservations"].as_array().unwrap().len(), 0);
    let r = http.tenant(&http.operator(&a), Method::GET, "/v1/admin/budgets", None).await;
    assert!(r.body["ledgers"].as_array().unwrap().iter().all(|l| l["tenant_id"] == "acme"));
    // The same workspace name in both tenants stays two ledgers.
    let r = http.tenant(&a, Method::GET, "/v1/balances?workspace=prod", None).await;
    assert_eq!(r.body["balances"].as_array().unwrap().len(), 0);
    // B's reservation is intact.
    let r = http.tenant(&b, Method::GET, &format!("/v1/reservations/{id}"), None).await;
    assert_eq!(r.body["status"], "ACTIVE");
    let bal = http.balance(&b, "globex", "tenant:globex").await;
    assert_eq!(bal["reserved"]["amount"], 100);
    // No key, a wrong key: 401.
    let r = http.call(Method::GET, "/v1/balances?tenant=acme", &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = http.tenant("cyc_live_wrong", Method::GET, "/v1/balances?tenant=acme", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, http, key) = setup(dir.path()).await;
    http.budget(&key, "tenant:acme", "USD_MICROCENTS", 1_000, json!({})).await;
    let before = http.balance(&key, "acme", "tenant:acme").await;
    let h = [("x-cycles-api-key", key.as_str()), ("content-type", "application/json")];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "invalid JSON body"),
        (b"".to_vec(), "empty"),
        (br#"{"idempotency_key":"a","subject":{"tenant":"acme"},"action":{"kind":"a","name":"b"},"estimate":{"unit":"USD_MICROCENTS","amount":"ten"}}"#.to_vec(), "invalid type"),
        (br#"{"idempotency_key":"a","subject":{"tenant":"acme"},"action":{"kind":"a","name":"b"}}"#.to_vec(), "missing field `estimate`"),
        (br#"{"idempotency_key":"a","subject":{"tenant":"acme"},"action":{"kind":"a","name":"b"},"estimate":{"unit":"DOGECOIN","amount":1}}"#.to_vec(), "unknown variant `DOGECOIN`"),
        (br#"{"idempotency_key":"a","subject":{"tenant":"acme"},"action":{"kind":"a","name":"b"},"estimate":{"unit":"USD_MICROCENTS","amount":-5}}"#.to_vec(), "must be >= 0"),
        (br#"{"idempotency_key":"a","subject":{"dimensions":{"x":"y"}},"action":{"kind":"a","name":"b"},"estimate":{"unit":"USD_MICROCENTS","amount":1}}"#.to_vec(), "at least one of"),
        (br#"{"idempotency_key":"a","subject":{"tenant":"ac me"},"action":{"kind":"a","name":"b"},"estimate":{"unit":"USD_MICROCENTS","amount":1}}"#.to_vec(), "must match"),
        (br#"{"idempotency_key":"a","subject":{"tenant":"acme"},"action":{"kind":"a","name":"b"},"estimate":{"unit":"USD_MICROCENTS","amount":1},"ttl_ms":5}"#.to_vec(), "ttl_ms"),
        (br#"{"idempotency_key":"a","subject":{"tenant":"acme"},"action":{"kind":"a","name":"b"},"estimate":{"unit":"USD_MICROCENTS","amount":1},"surprise":true}"#.to_vec(), "unknown field `surprise`"),
        (br#"[1,2,3]"#.to_vec(), "invalid JSON body"),
    ];
    for (body, expect) in cases {
        let r = http.raw(Method::POST, "/v1/reservations", &h, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}: {:?}", String::from_utf8_lossy(&body), r.body);
        assert_eq!(r.body["error"], "INVALID_REQUEST");
        let msg = r.body["message"].as_str().unwrap();
        assert!(msg.contains(expect), "`{msg}` should mention `{expect}`");
        assert!(r.body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(r.body["trace_id"].as_str().map(str::len), Some(32));
    }
    // A huge body: 413 in the same error shape.
    // (Just over the 256 KiB limit: the server answers before reading the body, and a much
    // larger body could still be in flight when it closes the connection.)
    let huge = format!(r#"{{"idempotency_key":"a","pad":"{}"}}"#, "x".repeat(300 * 1024));
    let r = http.raw(Method::POST, "/v1/reservations", &h, huge.into_bytes()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
    assert_eq!(r.body["error"], "INVALID_REQUEST");
    // Header and body idempotency keys disagree.
    let r = http
        .call(Method::POST, "/v1/reservations", &[("x-cycles-api-key", &key), ("x-idempotency-key", "other")], Some(reserve_body("a", "acme", 1)))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Bad query parameters and units elsewhere.
    let r = http.tenant(&key, Method::GET, "/v1/balances", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = http.tenant(&key, Method::GET, "/v1/reservations?limit=lots", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "INVALID_REQUEST");
    let r = http.tenant(&http.operator(&key), Method::POST, "/v1/admin/budgets/fund?scope=tenant:acme&unit=BEANS", Some(json!({"operation": "CREDIT", "amount": {"unit": "TOKENS", "amount": 1}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = http.tenant(&key, Method::POST, "/v1/delegations", Some(json!({"request": {"from": 1}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["message"].as_str().unwrap().contains("invalid `request`"), "{:?}", r.body);
    // Strict parsing names the JSON path: a type error deep in the request, an unknown key (a
    // typo) in the request and in the body itself.
    for (body, path, what) in [
        (json!({"request": {"from": {"id": "a", "trust": "high"}}}), "$.request.from.trust", "invalid type"),
        (json!({"request": {"frmo": {"id": "a", "trust": 1}}}), "$.request", "unknown field `frmo`"),
        (json!({"request": {}, "chian_id": "x"}), "$", "unknown field `chian_id`"),
    ] {
        let r = http.tenant(&key, Method::POST, "/v1/delegations", Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let msg = r.body["message"].as_str().unwrap();
        assert!(msg.contains(path) && msg.contains(what), "`{msg}` should name `{path}` and `{what}`");
    }
    let r = http.raw(Method::POST, "/v1/reservations", &h, br#"{"idempotency_key":"a","subject":{"tenant":"acme"},"action":{"kind":"a","name":"b"},"estimate":{"unit":"USD_MICROCENTS","amount":"ten"}}"#.to_vec()).await;
    assert!(r.body["message"].as_str().unwrap().contains("$.estimate.amount"), "{:?}", r.body);
    // Nothing changed.
    let after = http.balance(&key, "acme", "tenant:acme").await;
    assert_eq!(before, after);
    let r = http.tenant(&key, Method::GET, "/v1/reservations", None).await;
    assert_eq!(r.body["reservations"].as_array().unwrap().len(), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_replays_and_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, http, key) = setup(dir.path()).await;
    http.budget(&key, "tenant:acme", "USD_MICROCENTS", 1_000, json!({})).await;
    let first = http.tenant(&key, Method::POST, "/v1/reservations", Some(reserve_body("same", "acme", 100))).await;
    let again = http.tenant(&key, Method::POST, "/v1/reservations", Some(reserve_body("same", "acme", 100))).await;
    assert_eq!(first.body["reservation_id"], again.body["reservation_id"]);
    let bal = http.balance(&key, "acme", "tenant:acme").await;
    assert_eq!(bal["reserved"]["amount"], 100, "a replay must not reserve twice");
    let other = http.tenant(&key, Method::POST, "/v1/reservations", Some(reserve_body("same", "acme", 101))).await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(other.body["error"], "IDEMPOTENCY_MISMATCH");
    let id = first.body["reservation_id"].as_str().unwrap();
    let commit = json!({"idempotency_key": "c", "actual": {"unit": "USD_MICROCENTS", "amount": 60}});
    let c1 = http.tenant(&key, Method::POST, &format!("/v1/reservations/{id}/commit"), Some(commit.clone())).await;
    let c2 = http.tenant(&key, Method::POST, &format!("/v1/reservations/{id}/commit"), Some(commit)).await;
    assert_eq!(c1.status, StatusCode::OK);
    assert_eq!(c1.body, c2.body, "the replay returns the original response");
    let bal = http.balance(&key, "acme", "tenant:acme").await;
    assert_eq!(bal["spent"]["amount"], 60, "a replayed commit must not settle twice");
    let c3 = http
        .tenant(&key, Method::POST, &format!("/v1/reservations/{id}/commit"), Some(json!({"idempotency_key": "c-new", "actual": {"unit": "USD_MICROCENTS", "amount": 60}})))
        .await;
    assert_eq!(c3.status, StatusCode::CONFLICT);
    assert_eq!(c3.body["error"], "RESERVATION_FINALIZED");
    let r = http.tenant(&key, Method::POST, "/v1/reservations/rsv_nope/commit", Some(json!({"idempotency_key": "n", "actual": {"unit": "USD_MICROCENTS", "amount": 1}}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    gw.stop().await;
}

async fn commit(http: &Http, key: &str, id: &str, k: &str, amount: i64) -> common::Reply {
    http.tenant(key, Method::POST, &format!("/v1/reservations/{id}/commit"), Some(json!({"idempotency_key": k, "actual": {"unit": "USD_MICROCENTS", "amount": amount}}))).await
}

async fn reserve_with(http: &Http, key: &str, k: &str, amount: i64, policy: &str) -> String {
    let mut body = reserve_body(k, "acme", amount);
    body["overage_policy"] = json!(policy);
    let r = http.tenant(key, Method::POST, "/v1/reservations", Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["reservation_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overage_policies_units_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, http, key) = setup(dir.path()).await;
    http.budget(&key, "tenant:acme", "USD_MICROCENTS", 1_000, json!({"overdraft_limit": {"unit": "USD_MICROCENTS", "amount": 300}})).await;
    // REJECT: an overage beyond remaining is refused; the reservation stays open.
    let id = reserve_with(&http, &key, "a", 900, "REJECT").await;
    let r = commit(&http, &key, &id, "ca", 1_200).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::CONFLICT, Some("BUDGET_EXCEEDED")));
    let r = commit(&http, &key, &id, "ca2", 950).await;
    assert_eq!(r.status, StatusCode::OK, "50 more fits the remaining 100: {:?}", r.body);
    assert_eq!(r.body["charged"]["amount"], 950);
    // ALLOW_WITH_OVERDRAFT: 50 remaining, commit 200 over a 100 hold -> 100 delta, 50 debt.
    let id = reserve_with(&http, &key, "b", 50, "ALLOW_WITH_OVERDRAFT").await;
    let r = commit(&http, &key, &id, "cb", 200).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let b = http.balance(&key, "acme", "tenant:acme").await;
    assert_eq!(b["debt"]["amount"], 150);
    assert_eq!(b["remaining"]["amount"], -150);
    assert_eq!(
        b["remaining"]["amount"].as_i64().unwrap(),
        b["allocated"]["amount"].as_i64().unwrap() - b["spent"]["amount"].as_i64().unwrap()
            - b["reserved"]["amount"].as_i64().unwrap() - b["debt"]["amount"].as_i64().unwrap()
    );
    // Debt within the limit blocks nothing by DEBT_OUTSTANDING, but remaining is negative.
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(reserve_body("c", "acme", 1))).await;
    assert_eq!(r.body["error"], "BUDGET_EXCEEDED", "{:?}", r.body);
    // /decide says DENY with a reason, never 409.
    let r = http.tenant(&key, Method::POST, "/v1/decide", Some(json!({"idempotency_key": "d", "subject": {"tenant": "acme"}, "action": {"kind": "a", "name": "b"}, "estimate": {"unit": "USD_MICROCENTS", "amount": 1}}))).await;
    assert_eq!((r.status, r.body["decision"].as_str(), r.body["reason_code"].as_str()), (StatusCode::OK, Some("DENY"), Some("BUDGET_EXCEEDED")));
    // Fund: CREDIT repays the debt first.
    let r = http.tenant(&http.operator(&key), Method::POST, "/v1/admin/budgets/fund?scope=tenant:acme&unit=USD_MICROCENTS", Some(json!({"operation": "CREDIT", "amount": {"unit": "USD_MICROCENTS", "amount": 1_000}}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["new_debt"]["amount"], 0);
    assert_eq!(r.body["new_remaining"]["amount"], 850);
    // ALLOW_IF_AVAILABLE: the overage is capped to remaining and the scope goes over limit.
    let id = reserve_with(&http, &key, "e", 800, "ALLOW_IF_AVAILABLE").await;
    let r = commit(&http, &key, &id, "ce", 1_000).await;
    assert_eq!(r.body["charged"]["amount"], 850, "{:?}", r.body);
    let b = http.balance(&key, "acme", "tenant:acme").await;
    assert_eq!(b["is_over_limit"], true);
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(reserve_body("f", "acme", 0))).await;
    assert_eq!(r.body["error"], "OVERDRAFT_LIMIT_EXCEEDED");
    // Units: commit in another unit, reserve in a unit without a budget, no budget at all.
    http.budget(&key, "tenant:acme/workspace:w", "TOKENS", 10, json!({})).await;
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(json!({"idempotency_key": "g", "subject": {"tenant": "acme", "workspace": "w"}, "action": {"kind": "a", "name": "b"}, "estimate": {"unit": "TOKENS", "amount": 1}}))).await;
    let tid = r.body["reservation_id"].as_str().unwrap().to_string();
    let r = commit(&http, &key, &tid, "cg", 1).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("UNIT_MISMATCH")));
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(json!({"idempotency_key": "h", "subject": {"tenant": "acme", "workspace": "w"}, "action": {"kind": "a", "name": "b"}, "estimate": {"unit": "CREDITS", "amount": 1}}))).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("UNIT_MISMATCH")));
    assert_eq!(r.body["details"]["requested_unit"], "CREDITS");
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(json!({"idempotency_key": "i", "subject": {"workspace": "nowhere"}, "action": {"kind": "a", "name": "b"}, "estimate": {"unit": "CREDITS", "amount": 1}}))).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")));
    // Dry run: a decision, no reservation id, nothing held.
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(json!({"idempotency_key": "j", "subject": {"tenant": "acme", "workspace": "w"}, "action": {"kind": "a", "name": "b"}, "estimate": {"unit": "TOKENS", "amount": 5}, "dry_run": true}))).await;
    assert_eq!(r.body["decision"], "ALLOW");
    assert!(r.body.get("reservation_id").is_none());
    let b = http.balance(&key, "acme", "tenant:acme/workspace:w").await;
    assert_eq!(b["reserved"]["amount"], 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_expire_after_ttl_plus_grace_and_free_their_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, http, key) = setup(dir.path()).await;
    http.budget(&key, "tenant:acme", "USD_MICROCENTS", 1_000, json!({})).await;
    let mut body = reserve_body("t", "acme", 400);
    body["ttl_ms"] = json!(1000);
    body["grace_period_ms"] = json!(200);
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(body)).await;
    let id = r.body["reservation_id"].as_str().unwrap().to_string();
    assert!(r.body["remaining_ttl_ms"].as_i64().unwrap() <= 1000);
    // Extend is refused after expires_at; commit within the grace still works.
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    let r = http.tenant(&key, Method::POST, &format!("/v1/reservations/{id}/extend"), Some(json!({"idempotency_key": "x", "extend_by_ms": 1000}))).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::GONE, Some("RESERVATION_EXPIRED")), "{:?}", r.body);
    // A second one is left to the sweeper.
    let mut body = reserve_body("t2", "acme", 300);
    body["ttl_ms"] = json!(1000);
    body["grace_period_ms"] = json!(0);
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(body)).await;
    let id2 = r.body["reservation_id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1400)).await;
    let r = commit(&http, &key, &id, "late", 10).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::GONE, Some("RESERVATION_EXPIRED")));
    let r = http.tenant(&key, Method::GET, &format!("/v1/reservations/{id2}"), None).await;
    assert_eq!(r.status, StatusCode::GONE, "{:?}", r.body);
    let b = http.balance(&key, "acme", "tenant:acme").await;
    assert_eq!(b["reserved"]["amount"], 0, "{b}");
    assert_eq!(b["spent"]["amount"], 0);
    let r = http.tenant(&key, Method::GET, "/v1/reservations?status=EXPIRED", None).await;
    assert_eq!(r.body["reservations"].as_array().map(Vec::len), Some(2));
    let _: Value = r.body;
    gw.stop().await;
}

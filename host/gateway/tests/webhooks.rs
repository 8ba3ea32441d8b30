//! The Cycles event stream and webhooks end to end, against a real HTTP receiver on
//! loopback: events emitted by ledger and admin operations, signed delivery, the subscription
//! invariants on every provisioning path, retries, auto-disable, resume, replay, the test
//! probe, tenant isolation and the SSRF guard.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use common::{reserve_body, Http};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

/// What the receiver got: headers and body of each POST.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver.status.store(200, Ordering::SeqCst);
        let r = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let r = r.clone();
                async move {
                    r.got.lock().unwrap().push((headers, body));
                    axum::http::StatusCode::from_u16(r.status.load(Ordering::SeqCst)).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    async fn wait_for(&self, n: usize) {
        let start = Instant::now();
        while self.count() < n {
            assert!(start.elapsed() < Duration::from_secs(20), "{} deliveries of {n} arrived", self.count());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn gateway(dir: &std::path::Path) -> sbd_gateway::serve::Running {
    let mut config = common::config(dir);
    config.webhooks.allow_http = true;
    config.webhooks.blocked_cidr_ranges = vec![];
    config.webhooks.poll_interval_ms = 20;
    sbd_gateway::serve::start(config).await.unwrap()
}

fn hmac_hex(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

async fn wait_until(http: &Http, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let r = http.admin(Method::GET, path, None).await;
        if done(&r.body) {
            return r.body;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{path}: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_signed_webhook_and_replay_resends_them() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let (receiver, url) = Receiver::start().await;
    let agent = http.provision("acme").await;
    let op = http.operator(&agent);
    http.budget(&agent, "tenant:acme", "TOKENS", 100, json!({})).await;

    let r = http
        .tenant(&op, Method::POST, "/v1/webhooks", Some(json!({"url": url, "event_types": ["reservation.denied", "budget.exhausted"], "name": "ops"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let secret = r.body["signing_secret"].as_str().unwrap().to_string();
    let sub = r.body["subscription"].clone();
    let id = sub["subscription_id"].as_str().unwrap().to_string();
    assert_eq!((sub["status"].as_str(), sub["tenant_id"].as_str()), (Some("ACTIVE"), Some("acme")));
    assert!(sub.get("signing_secret").is_none(), "the secret is shown once: {sub:?}");

    // The reservation that takes the last token exhausts the budget; the next is denied.
    let mut reserve = reserve_body("r1", "acme", 100);
    reserve["estimate"]["unit"] = json!("TOKENS");
    let r = http.tenant(&agent, Method::POST, "/v1/reservations", Some(reserve.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    reserve["idempotency_key"] = json!("r2");
    reserve["estimate"]["amount"] = json!(1);
    let r = http.tenant(&agent, Method::POST, "/v1/reservations", Some(reserve)).await;
    assert_eq!(r.body["error"], "BUDGET_EXCEEDED", "{:?}", r.body);
    let detail = &r.body["details"]["deny_detail"];
    assert_eq!((detail["reason_code"].as_str(), detail["budget_remaining"].as_i64()), (Some("BUDGET_EXCEEDED"), Some(0)), "{:?}", r.body);
    assert_eq!(detail["suggested_fix"], "Fund tenant:acme by at least 1 TOKENS");
    // The admin plane's getBalances: BudgetLedger items under a scope prefix, in a unit.
    let r = http.tenant(&op, Method::GET, "/v1/balances?tenant_id=acme&scope_prefix=tenant:acme&unit=TOKENS", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let ledger = &r.body["balances"][0];
    assert!(ledger["ledger_id"].as_str().unwrap().starts_with("ldg_"), "{:?}", r.body);
    assert_eq!((ledger["remaining"]["amount"].as_i64(), ledger["reserved"]["amount"].as_i64()), (Some(0), Some(100)));
    let r = http.tenant(&op, Method::GET, "/v1/balances?tenant_id=globex", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = http.tenant(&op, Method::GET, "/v1/balances?tenant_id=acme&workspace=w", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    receiver.wait_for(2).await;
    let got = receiver.got.lock().unwrap().clone();
    let mut types = Vec::new();
    for (headers, body) in &got {
        let event: Value = serde_json::from_str(body).unwrap();
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(header("x-cycles-signature"), format!("sha256={}", hmac_hex(&secret, body)), "signed over the exact body");
        assert_eq!(header("x-cycles-event-id"), event["event_id"].as_str().unwrap());
        assert_eq!(header("x-cycles-event-type"), event["event_type"].as_str().unwrap());
        assert_eq!(header("content-type"), "application/json");
        let trace = event["trace_id"].as_str().expect("the originating request's trace");
        assert_eq!(header("x-cycles-trace-id"), trace);
        assert!(header("traceparent").starts_with(&format!("00-{trace}-")), "{}", header("traceparent"));
        assert_eq!(event["tenant_id"], "acme");
        assert_eq!(event["source"], "sbd-gateway");
        assert!(event["request_id"].as_str().unwrap().starts_with("req_"));
        assert_eq!(event["actor"]["type"], "api_key");
        types.push(event["event_type"].as_str().unwrap().to_string());
        if event["event_type"] == "reservation.denied" {
            assert_eq!(event["data"]["reason_code"], "BUDGET_EXCEEDED");
            assert_eq!(event["data"]["requested_amount"], 1);
            assert_eq!(event["data"]["remaining"], 0);
            assert_eq!(event["data"]["deny_detail"]["blocked_by_scope"], "tenant:acme");
            assert_eq!(event["scope"], "tenant:acme");
        } else {
            assert_eq!(event["data"]["threshold"], 1.0);
            assert_eq!(event["data"]["remaining"], 0);
        }
    }
    types.sort();
    assert_eq!(types, ["budget.exhausted", "reservation.denied"]);

    // The tenant reads its own stream (operators hold events:read), never admin-only events.
    let r = http.tenant(&op, Method::GET, "/v1/events?limit=100", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let tenant_types: Vec<&str> = r.body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert!(tenant_types.contains(&"reservation.denied") && tenant_types.contains(&"budget.created"), "{tenant_types:?}");
    assert!(tenant_types.iter().all(|t| t.starts_with("budget.") || t.starts_with("reservation.") || t.starts_with("tenant.")));
    assert_eq!(r.body["has_more"], false);
    let r = http.tenant(&op, Method::GET, "/v1/events?category=api_key", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = http.tenant(&op, Method::GET, "/v1/events?limit=101", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    // The agent key lacks events:read.
    let r = http.tenant(&agent, Method::GET, "/v1/events", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The admin sees every category, and one event by id as delivered.
    let r = http.admin(Method::GET, "/v1/admin/events?tenant_id=acme&category=api_key", None).await;
    assert!(r.body["events"].as_array().unwrap().iter().all(|e| e["event_type"].as_str().unwrap().starts_with("api_key.")));
    assert!(!r.body["events"].as_array().unwrap().is_empty(), "{:?}", r.body);
    let (_, body) = &got[0];
    let event: Value = serde_json::from_str(body).unwrap();
    let r = http.admin(Method::GET, &format!("/v1/admin/events/{}", event["event_id"].as_str().unwrap()), None).await;
    assert_eq!(r.body, event);
    let r = http.admin(Method::GET, "/v1/admin/events/evt_nope", None).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::NOT_FOUND, Some("EVENT_NOT_FOUND")));
    let r = http.admin(Method::GET, "/v1/admin/events?correlation_id=webhook_create:".to_string().as_str(), None).await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 0);
    let r = http.admin(Method::GET, &format!("/v1/admin/events?correlation_id=webhook_create:{id}"), None).await;
    assert_eq!(r.body["events"][0]["event_type"], "webhook.created", "{:?}", r.body);

    // Deliveries are listed, newest first, as SUCCESS.
    let r = http.tenant(&op, Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None).await;
    let deliveries = r.body["deliveries"].as_array().unwrap().clone();
    assert_eq!(deliveries.len(), 2, "{:?}", r.body);
    assert!(deliveries.iter().all(|d| d["status"] == "SUCCESS" && d["attempts"] == 1 && d["response_status"] == 200));

    // Replay resends the window's events (new deliveries of the same events); a window with
    // more than max_events of them is refused whole.
    let r = http.admin(Method::POST, &format!("/v1/admin/webhooks/{id}/replay"), Some(json!({"max_events": 1}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = http.admin(Method::POST, &format!("/v1/admin/webhooks/{id}/replay"), Some(json!({}))).await;
    assert_eq!((r.status, r.body["events_queued"].as_u64()), (StatusCode::ACCEPTED, Some(2)), "{:?}", r.body);
    receiver.wait_for(4).await;
    let ids: Vec<String> = receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h.get("x-cycles-event-id").unwrap().to_str().unwrap().to_string())
        .collect();
    assert!(ids[2] == ids[0] || ids[2] == ids[1], "{ids:?}");

    // The test probe reaches a tenant-owned subscription's endpoint (the spec's carve-out).
    let r = http.tenant(&op, Method::POST, &format!("/v1/webhooks/{id}/test"), Some(json!({}))).await;
    assert_eq!((r.body["success"].as_bool(), r.body["response_status"].as_u64()), (Some(true), Some(200)), "{:?}", r.body);
    receiver.wait_for(5).await;
    let last: Value = serde_json::from_str(&receiver.got.lock().unwrap()[4].1).unwrap();
    assert_eq!(last["event_type"], "system.webhook_test");

    // Another tenant learns nothing of this subscription.
    let other = http.provision("globex").await;
    let other_op = http.operator(&other);
    for (m, p) in [(Method::GET, format!("/v1/webhooks/{id}")), (Method::DELETE, format!("/v1/webhooks/{id}")), (Method::GET, format!("/v1/webhooks/{id}/deliveries"))] {
        let r = http.tenant(&other_op, m, &p, None).await;
        assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::NOT_FOUND, Some("WEBHOOK_NOT_FOUND")), "{p}");
    }
    gw.stop().await;
}

/// A system-wide subscription's replay resends every tenant's events of its window (on Redis
/// each tenant's deliveries are queued in that tenant's unit), a window holding more than
/// `max_events` of them is refused whole, and a second replay while the first's deliveries
/// are still owed in the tenants' slots is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_subscriptions_replay_resends_every_tenants_events() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let (receiver, url) = Receiver::start().await;
    let mut made = Vec::new();
    for tenant in ["acme", "globex", "initech"] {
        let key = http.provision(tenant).await;
        http.budget(&key, &format!("tenant:{tenant}"), "TOKENS", 100, json!({})).await;
        made.push(tenant);
    }
    // created after the budgets: only a replay delivers their events
    let retry = json!({"max_retries": 10, "initial_delay_ms": 500, "backoff_multiplier": 1.0, "max_delay_ms": 1000});
    let r = http.admin(Method::POST, "/v1/admin/webhooks", Some(json!({"url": url, "event_types": ["budget.created"], "retry_policy": retry}))).await;
    assert_eq!((r.status, r.body["subscription"]["tenant_id"].as_str()), (StatusCode::CREATED, Some("__system__")), "{:?}", r.body);
    let id = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    let r = http.admin(Method::POST, &format!("/v1/admin/webhooks/{id}/replay"), Some(json!({"max_events": 2}))).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_REQUEST")), "3 events, at most 2: {:?}", r.body);
    // the endpoint fails the first attempts: the replay's deliveries stay owed, to be retried
    receiver.status.store(500, Ordering::SeqCst);
    let r = http.admin(Method::POST, &format!("/v1/admin/webhooks/{id}/replay"), Some(json!({}))).await;
    assert_eq!((r.status, r.body["events_queued"].as_u64()), (StatusCode::ACCEPTED, Some(3)), "{:?}", r.body);
    receiver.wait_for(3).await;
    let r = http.admin(Method::POST, &format!("/v1/admin/webhooks/{id}/replay"), Some(json!({}))).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::CONFLICT, Some("REPLAY_IN_PROGRESS")), "{:?}", r.body);
    receiver.status.store(200, Ordering::SeqCst);
    let mut tenants: Vec<String> = receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .take(3)
        .map(|(_, body)| {
            let event: Value = serde_json::from_str(body).unwrap();
            assert_eq!(event["event_type"], "budget.created", "{event}");
            event["tenant_id"].as_str().unwrap().to_string()
        })
        .collect();
    tenants.sort();
    assert_eq!(tenants, made);
    // each replayed delivery is listed under the subscription, once per event
    let sent: std::collections::BTreeSet<String> = receiver.got.lock().unwrap().iter().map(|(h, _)| h["x-cycles-event-id"].to_str().unwrap().to_string()).collect();
    let r = wait_until(&http, &format!("/v1/admin/webhooks/{id}/deliveries"), |b| {
        b["deliveries"].as_array().is_some_and(|d| d.len() == 3 && d.iter().all(|d| d["status"] == "SUCCESS"))
    })
    .await;
    let listed: std::collections::BTreeSet<String> = r["deliveries"].as_array().unwrap().iter().map(|d| d["event_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, sent, "{r}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provisioning_path_keeps_the_subscription_invariants() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let agent = http.provision("acme").await;
    let op = http.operator(&agent);
    let url = "http://127.0.0.1:9/hook";
    // INVARIANT 2 on the tenant path, the admin path for a tenant, by type and by category.
    for body in [json!({"url": url, "event_types": ["api_key.created"]}), json!({"url": url, "event_types": ["budget.created"], "event_categories": ["system"]})] {
        let r = http.tenant(&op, Method::POST, "/v1/webhooks", Some(body.clone())).await;
        assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_REQUEST")), "{:?}", r.body);
        let r = http.admin(Method::POST, "/v1/admin/webhooks?tenant_id=acme", Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        // A system-wide subscription may carry them.
        let r = http.admin(Method::POST, "/v1/admin/webhooks", Some(body)).await;
        assert_eq!((r.status, r.body["subscription"]["tenant_id"].as_str()), (StatusCode::CREATED, Some("__system__")), "{:?}", r.body);
        let system = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
        let r = http.admin(Method::POST, &format!("/v1/admin/webhooks/{system}/replay"), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    }
    let r = http.tenant(&op, Method::POST, "/v1/webhooks", Some(json!({"url": url, "event_types": []}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "create needs an event type: {:?}", r.body);
    let r = http.tenant(&op, Method::POST, "/v1/webhooks", Some(json!({"url": url, "event_types": ["budget.created"]}))).await;
    let id = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    // INVARIANT 1 on the merged result of a PATCH, on both paths.
    let r = http.tenant(&op, Method::PATCH, &format!("/v1/webhooks/{id}"), Some(json!({"event_types": []}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = http.admin(Method::PATCH, &format!("/v1/admin/webhooks/{id}"), Some(json!({"event_types": []}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = http.tenant(&op, Method::PATCH, &format!("/v1/webhooks/{id}"), Some(json!({"event_types": [], "event_categories": ["budget"]}))).await;
    assert_eq!((r.status, r.body["event_types"].clone()), (StatusCode::OK, json!([])), "category-only is allowed: {:?}", r.body);
    // INVARIANT 2 on PATCH by the admin key of a tenant's subscription.
    let r = http.admin(Method::PATCH, &format!("/v1/admin/webhooks/{id}"), Some(json!({"event_categories": ["webhook"]}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    // The stored state never changed on a refusal.
    let r = http.admin(Method::GET, &format!("/v1/admin/webhooks/{id}"), None).await;
    assert_eq!((r.body["event_types"].clone(), r.body["event_categories"].clone()), (json!([]), json!(["budget"])));
    // Exactly one lifecycle event per effective change; none for a no-op PATCH.
    let r = http.tenant(&op, Method::PATCH, &format!("/v1/webhooks/{id}"), Some(json!({"event_categories": ["budget"]}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = http.tenant(&op, Method::PATCH, &format!("/v1/webhooks/{id}"), Some(json!({"status": "PAUSED"}))).await;
    assert_eq!(r.body["status"], "PAUSED");
    let r = http.admin(Method::GET, "/v1/admin/events?category=webhook&tenant_id=acme&sort_dir=asc", None).await;
    let kinds: Vec<&str> = r.body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["webhook.created", "webhook.updated", "webhook.paused"], "{:?}", r.body);
    assert_eq!(r.body["events"][1]["data"]["changed_fields"], json!(["event_types", "event_categories"]));
    // DISABLED is the dispatcher's to set.
    let r = http.tenant(&op, Method::PATCH, &format!("/v1/webhooks/{id}"), Some(json!({"status": "DISABLED"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    // Deleting emits webhook.deleted and answers 204.
    let r = http.tenant(&op, Method::DELETE, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = http.admin(Method::GET, &format!("/v1/admin/events?correlation_id=webhook_delete:{id}"), None).await;
    assert_eq!(r.body["events"][0]["data"]["previous_status"], "PAUSED", "{:?}", r.body);

    // A closed tenant's subscriptions are disabled by the cascade and read-only after.
    let r = http.tenant(&op, Method::POST, "/v1/webhooks", Some(json!({"url": url, "event_types": ["budget.created"]}))).await;
    let id = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    let r = http.admin(Method::PATCH, "/v1/admin/tenants/acme", Some(json!({"status": "CLOSED"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = http.admin(Method::GET, &format!("/v1/admin/webhooks/{id}"), None).await;
    assert_eq!(r.body["status"], "DISABLED");
    let r = http.admin(Method::PATCH, &format!("/v1/admin/webhooks/{id}"), Some(json!({"status": "ACTIVE"}))).await;
    assert_eq!(r.body["error"], "TENANT_CLOSED", "{:?}", r.body);
    let r = http
        .admin(Method::POST, "/v1/admin/budgets/fund?tenant_id=acme&scope=tenant:acme&unit=TOKENS", Some(json!({"operation": "CREDIT", "amount": {"unit": "TOKENS", "amount": 1}})))
        .await;
    assert_eq!(r.body["error"], "TENANT_CLOSED", "{:?}", r.body);
    let r = http.admin(Method::GET, "/v1/admin/events?tenant_id=acme&event_type=webhook.disabled_via_tenant_cascade", None).await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1, "{:?}", r.body);
    let correlation = r.body["events"][0]["correlation_id"].as_str().unwrap().to_string();
    let r = http.admin(Method::GET, &format!("/v1/admin/events?correlation_id={correlation}"), None).await;
    let kinds: Vec<&str> = r.body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"tenant.closed"), "the cascade shares tenant.closed's correlation id: {kinds:?}");

    // Introspection: the admin key, and a tenant key's derived capabilities.
    let r = http.admin(Method::GET, "/v1/auth/introspect", None).await;
    assert_eq!((r.body["auth_type"].as_str(), r.body["permissions"].clone()), (Some("admin"), json!(["*"])));
    assert!(r.body.get("tenant_id").is_none());
    let other = http.provision("globex").await;
    let r = http.tenant(&http.operator(&other), Method::GET, "/v1/auth/introspect", None).await;
    assert_eq!((r.body["auth_type"].as_str(), r.body["tenant_id"].as_str()), (Some("tenant"), Some("globex")));
    let caps = &r.body["capabilities"];
    assert_eq!((caps["view_webhooks"].as_bool(), caps["manage_webhooks"].as_bool(), caps["view_tenants"].as_bool()), (Some(true), Some(true), Some(false)));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_retried_then_disabled_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let (receiver, url) = Receiver::start().await;
    receiver.status.store(503, Ordering::SeqCst);
    let agent = http.provision("acme").await;
    let body = json!({
        "url": url,
        "event_types": ["budget.created"],
        "retry_policy": {"max_retries": 1, "initial_delay_ms": 100, "backoff_multiplier": 1.0, "max_delay_ms": 1000},
        "disable_after_failures": 2,
    });
    let r = http.admin(Method::POST, "/v1/admin/webhooks?tenant_id=acme", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    http.budget(&agent, "tenant:acme", "TOKENS", 1, json!({})).await;
    http.budget(&agent, "tenant:acme/app:a", "TOKENS", 1, json!({})).await;
    // Two events, each tried twice (one retry), each failing: two consecutive failures.
    let sub = wait_until(&http, &format!("/v1/admin/webhooks/{id}"), |s| s["status"] == "DISABLED").await;
    assert_eq!(sub["consecutive_failures"], 2);
    assert_eq!(receiver.count(), 4, "1 + max_retries attempts per event");
    let r = http.admin(Method::GET, &format!("/v1/admin/webhooks/{id}/deliveries?status=FAILED"), None).await;
    let failed = r.body["deliveries"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{:?}", r.body);
    assert!(failed.iter().all(|d| d["attempts"] == 2 && d["response_status"] == 503 && d.get("completed_at").is_some()));
    let r = http.admin(Method::GET, "/v1/admin/events?event_type=system.webhook_delivery_failed", None).await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 2, "{:?}", r.body);
    assert_eq!(r.body["events"][0]["tenant_id"], "__system__");
    let r = http.admin(Method::GET, "/v1/admin/events?event_type=webhook.disabled", None).await;
    let disabled = &r.body["events"][0];
    assert_eq!(disabled["data"]["disable_reason"], "consecutive_failures_exceeded_threshold", "{:?}", r.body);
    assert!(disabled["correlation_id"].as_str().unwrap().starts_with(&format!("webhook_auto_disable:{id}:")));
    // While disabled, nothing is queued; resuming resets the count and delivers new events.
    http.budget(&agent, "tenant:acme/app:b", "TOKENS", 1, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 4);
    receiver.status.store(204, Ordering::SeqCst);
    let r = http.admin(Method::PATCH, &format!("/v1/admin/webhooks/{id}"), Some(json!({"status": "ACTIVE"}))).await;
    assert_eq!((r.body["status"].as_str(), r.body["consecutive_failures"].as_u64()), (Some("ACTIVE"), Some(0)), "{:?}", r.body);
    http.budget(&agent, "tenant:acme/app:c", "TOKENS", 1, json!({})).await;
    receiver.wait_for(5).await;
    let sub = wait_until(&http, &format!("/v1/admin/webhooks/{id}"), |s| s.get("last_success_at").is_some()).await;
    assert_eq!(sub["consecutive_failures"], 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_inside_blocked_ranges_or_over_http_are_refused_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let gw = sbd_gateway::serve::start(common::config(dir.path())).await.unwrap();
    let http = Http::new(gw.url());
    let urls = [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://10.0.0.8/x",
        "https://user:pw@example.com/",
        "ftp://example.com/",
        // review findings: the unspecified address (Linux connects `::` to loopback) and IPv6
        // forms that carry a blocked IPv4 address
        "https://[::]/hook",
        "https://0.0.0.0/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::7f00:1]/hook",
        "https://[64:ff9b::a00:8]/hook",
        "https://100.64.0.1/hook",
        "https://[ff02::1]/hook",
    ];
    for url in urls {
        let r = http.admin(Method::POST, "/v1/admin/webhooks", Some(json!({"url": url, "event_types": ["budget.created"]}))).await;
        assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("WEBHOOK_URL_INVALID")), "{url}: {:?}", r.body);
    }
    // A reserved delivery header cannot be overridden.
    let r = http
        .admin(Method::POST, "/v1/admin/webhooks", Some(json!({"url": "https://[::1]/", "event_types": ["budget.created"], "headers": {"X-Cycles-Signature": "forged"}})))
        .await;
    assert_eq!(r.body["error"], "INVALID_REQUEST", "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("headers.X-Cycles-Signature"), "{:?}", r.body);
    // The refusal does not name the address a host resolves to.
    let r = http.admin(Method::POST, "/v1/admin/webhooks", Some(json!({"url": "https://localhost/hook", "event_types": ["budget.created"]}))).await;
    assert_eq!(r.body["error"], "WEBHOOK_URL_INVALID", "{:?}", r.body);
    assert!(!r.body["message"].as_str().unwrap().contains("127.0.0.1"), "{:?}", r.body);
    // A cursor past what SQLite's offset can hold is refused, not wrapped.
    let r = http.admin(Method::GET, "/v1/admin/webhooks?cursor=18446744073709551615", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    // The system tenant's id is reserved.
    let r = http.admin(Method::POST, "/v1/admin/tenants", Some(json!({"tenant_id": "__system__", "name": "x"}))).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_REQUEST")), "{:?}", r.body);
    gw.stop().await;
}

/// kill -9 with deliveries still owed, restart: every acknowledged change's event is in the log
/// once, and every one is delivered (the outbox is committed with the change it reports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_no_event_and_no_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    // A delivery in flight at the kill is leased for its timeout plus 5 s: 7 s here.
    std::fs::write(&config, "[webhooks]\nallow_http = true\nblocked_cidr_ranges = []\npoll_interval_ms = 20\ndelivery_timeout_ms = 2000\n").unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sbd-gateway"))
            .args(["--config", config.to_str().unwrap(), "--data-dir", data.to_str().unwrap(), "--addr", &format!("127.0.0.1:{port}")])
            .args(common::store_args(&data))
            .env("SBD_ADMIN_KEY", common::ADMIN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    let http = Http::new(format!("http://127.0.0.1:{port}"));
    common::wait_ready(&http).await;
    let (receiver, url) = Receiver::start().await;
    receiver.status.store(503, Ordering::SeqCst);
    let agent = http.provision("acme").await;
    let body = json!({
        "url": url,
        "event_types": ["budget.created"],
        "retry_policy": {"max_retries": 10, "initial_delay_ms": 100, "backoff_multiplier": 1.0, "max_delay_ms": 1000},
    });
    let r = http.admin(Method::POST, "/v1/admin/webhooks?tenant_id=acme", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    for i in 0..20 {
        http.budget(&agent, &format!("tenant:acme/app:a{i}"), "TOKENS", 1, json!({})).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    receiver.got.lock().unwrap().clear();
    receiver.status.store(200, Ordering::SeqCst);

    let mut child = spawn();
    common::wait_ready(&http).await;
    let start = Instant::now();
    let delivered = loop {
        let ids: std::collections::BTreeSet<String> = receiver
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h.get("x-cycles-event-id").unwrap().to_str().unwrap().to_string())
            .collect();
        if ids.len() >= 20 || start.elapsed() > Duration::from_secs(30) {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = http.admin(Method::GET, "/v1/admin/events?tenant_id=acme&event_type=budget.created&limit=100", None).await;
    let logged: std::collections::BTreeSet<String> =
        r.body["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(r.body["events"].as_array().unwrap().len(), 20, "each acknowledged change logged once");
    assert_eq!(delivered, logged, "every logged event delivered after the restart");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// v0.1.26 observe mode: evaluated fully, nothing held, the decision reported as an event; by
/// request or by tenant setting; the gateway's own holds (a root grant) stay enforced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_mode_evaluates_without_holding_and_reports_the_decision() {
    let (_dir, gw, http, key) = common::authority_gateway().await;
    let balance = |http: Http, key: String| async move { http.balance(&key, "acme", "tenant:acme").await["reserved"]["amount"].as_i64().unwrap() };
    let mut observed = reserve_body("o1", "acme", 5);
    observed["estimate"]["unit"] = json!("TOKENS");
    observed["observe_mode"] = json!("OBSERVE");
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(observed.clone())).await;
    assert_eq!((r.status, r.body["decision"].as_str()), (StatusCode::OK, Some("ALLOW")), "{:?}", r.body);
    assert!(r.body.get("reservation_id").is_none() && r.body.get("expires_at_ms").is_none(), "{:?}", r.body);
    assert!(r.body["affected_scopes"].as_array().is_some_and(|a| !a.is_empty()));
    assert_eq!(balance(http.clone(), key.clone()).await, 0, "nothing held");
    observed["idempotency_key"] = json!("o2");
    observed["estimate"]["amount"] = json!(2_000_000_000_i64);
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(observed)).await;
    assert_eq!((r.status, r.body["decision"].as_str()), (StatusCode::OK, Some("DENY")), "{:?}", r.body);
    assert_eq!(r.body["deny_detail"]["reason_code"], "BUDGET_EXCEEDED", "{:?}", r.body);
    let r = http.admin(Method::GET, "/v1/admin/events?tenant_id=acme&category=reservation&sort_dir=asc", None).await;
    let kinds: Vec<&str> = r.body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reservation.observed_allowed", "reservation.observed_denied"], "no reservation.denied for an observed denial");
    let denied = &r.body["events"][1];
    assert_eq!(denied["data"]["would_have_blocked_at"], "tenant:acme");
    assert_eq!(denied["correlation_id"].as_str().map(str::len), Some(64), "a deterministic hash");

    // The tenant's setting: a settings_changed event; a reservation without a mode is observed,
    // one asking ENFORCE is held; a root grant's hold is the gateway's and always enforced.
    let r = http.admin(Method::PATCH, "/v1/admin/tenants/acme", Some(json!({"observe_mode": "OBSERVE"}))).await;
    assert_eq!(r.body["observe_mode"], "OBSERVE", "{:?}", r.body);
    let r = http.admin(Method::GET, "/v1/admin/events?tenant_id=acme&event_type=tenant.settings_changed", None).await;
    assert_eq!(r.body["events"][0]["data"]["changed_fields"], json!(["observe_mode"]), "{:?}", r.body);
    let mut plain = reserve_body("p1", "acme", 5);
    plain["estimate"]["unit"] = json!("TOKENS");
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(plain.clone())).await;
    assert!(r.body.get("reservation_id").is_none(), "observed by the tenant's setting: {:?}", r.body);
    assert_eq!(balance(http.clone(), key.clone()).await, 0);
    plain["idempotency_key"] = json!("p2");
    plain["observe_mode"] = json!("ENFORCE");
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(plain)).await;
    assert!(r.body["reservation_id"].as_str().is_some(), "the request's mode wins: {:?}", r.body);
    assert_eq!(balance(http.clone(), key.clone()).await, 5);
    http.root_grant(&key, "orchestrator", common::mandate(100, 2)).await;
    assert_eq!(balance(http.clone(), key.clone()).await, 105, "the root grant's hold is enforced");
    // A suspended tenant is read-only: an observed reservation gets enforcement's 403, not ALLOW.
    let r = http.admin(Method::PATCH, "/v1/admin/tenants/acme", Some(json!({"status": "SUSPENDED"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let mut suspended = reserve_body("s1", "acme", 5);
    suspended["estimate"]["unit"] = json!("TOKENS");
    let r = http.tenant(&key, Method::POST, "/v1/reservations", Some(suspended)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    gw.stop().await;
}

/// A tenant holds at most `max_subscriptions_per_tenant` subscriptions (each event fans out to
/// every one, inside the transaction that records it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_hold_more_subscriptions_than_the_gateway_allows() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.webhooks.allow_http = true;
    config.webhooks.blocked_cidr_ranges = vec![];
    config.webhooks.max_subscriptions_per_tenant = 2;
    let gw = sbd_gateway::serve::start(config).await.unwrap();
    let http = Http::new(gw.url());
    let agent = http.provision("acme").await;
    let op = http.operator(&agent);
    let body = json!({"url": "http://127.0.0.1:9/hook", "event_types": ["budget.created"]});
    for _ in 0..2 {
        let r = http.tenant(&op, Method::POST, "/v1/webhooks", Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let r = http.tenant(&op, Method::POST, "/v1/webhooks", Some(body.clone())).await;
    assert_eq!((r.status, r.body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_REQUEST")), "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("max_subscriptions_per_tenant"), "{:?}", r.body);
    // the admin path for the tenant meets the same cap
    let r = http.admin(Method::POST, "/v1/admin/webhooks?tenant_id=acme", Some(body)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    gw.stop().await;
}

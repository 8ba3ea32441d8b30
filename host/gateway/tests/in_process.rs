//! The handlers tested in process, without a socket: `server::app(state)` is a tower service,
//! and each request is one `oneshot` call. The same provisioning and delegation as the
//! socket tests, from an empty data directory to an allowed, narrowed and traced hop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

mod common;

const ADMIN: &str = "in-process-admin";

struct App {
    router: axum::Router,
}

impl App {
    async fn start(dir: &std::path::Path) -> App {
        // the suites' configuration (its store: SQLite, or Redis when they run on one)
        let config = sbd_gateway::Config { admin_key: Some(ADMIN.into()), ..common::config(dir) };
        let state = sbd_gateway::serve::build_state(config).await.expect("the gateway's state");
        App { router: sbd_gateway::server::app(state) }
    }

    /// One request through the router: (status, JSON body).
    async fn call(&self, method: Method, path: &str, header: (&str, &str), body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path).header(header.0, header.1);
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let response = self.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn admin(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.call(Method::POST, path, ("x-admin-api-key", ADMIN), Some(body)).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// A GET with the admin key.
    async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, ("x-admin-api-key", ADMIN), None).await
    }

    /// The status of a GET with tenant key `key`.
    async fn status_of(&self, key: &str, path: &str) -> StatusCode {
        self.call(Method::GET, path, ("x-cycles-api-key", key), None).await.0
    }

    async fn key(&self, role: &str, name: &str) -> String {
        let k = self.admin("/v1/admin/api-keys", json!({"tenant_id": "acme", "name": name, "role": role})).await;
        k["key_secret"].as_str().unwrap().to_string()
    }
}

fn mandate(tokens: u64, depth: u8, now: u64) -> Value {
    json!({"value_ceiling": 1_000_000u64, "action_kinds": ["payment.*"], "counterparties": ["acme"],
           "budgets": [{"unit": "TOKENS", "amount": tokens}], "remaining_depth": depth, "expires_at": now + 3_600_000})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegation_through_the_router_without_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path()).await;
    let (status, health) = app.call(Method::GET, "/healthz", ("accept", "*/*"), None).await;
    assert_eq!(status, StatusCode::OK, "{health}");

    app.admin("/v1/admin/tenants", json!({"tenant_id": "acme", "name": "Acme"})).await;
    let operator = app.key("operator", "ops").await;
    let orchestrator = app.key("agent", "orchestrator").await;
    let op = |path: &'static str, body: Value| {
        let (app, operator) = (&app, operator.clone());
        async move {
            let (status, body) = app.call(Method::POST, path, ("x-cycles-api-key", &operator), Some(body)).await;
            assert!(status.is_success(), "{path}: {status} {body}");
            body
        }
    };
    op("/v1/admin/budgets", json!({"scope": "tenant:acme", "unit": "TOKENS", "allocated": {"unit": "TOKENS", "amount": 1_000_000}})).await;
    op("/v1/agents", json!({"agent_id": "orchestrator", "trust": 900})).await;
    op("/v1/agents", json!({"agent_id": "refunds", "trust": 720})).await;
    let now = sbd_gateway::util::now_ms() as u64;
    let root = op("/v1/root-grants", json!({"agent_id": "orchestrator", "mandate": mandate(10_000, 3, now)})).await;

    let hop = json!({"token": root["token"], "request": {
        "from": {"id": "orchestrator", "trust": 0}, "to": {"id": "refunds", "trust": 0},
        "task": {"id": "t-1", "action_kind": "payment.refund", "risk": "low", "value": 10, "counterparty": "acme"},
        "parent_mandate": mandate(10_000, 3, now), "requested_mandate": mandate(500, 2, now), "state": [0.1]}});
    let (status, r) = app.call(Method::POST, "/v1/delegations", ("x-cycles-api-key", &orchestrator), Some(hop.clone())).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["decision"], "allow", "{r}");
    assert_eq!(r["escrow"], json!([{"unit": "TOKENS", "amount": 500}]), "{r}");
    assert!(r["child_token"].is_string());

    // The same request again: the original answer, no second grant.
    let (_, again) = app.call(Method::POST, "/v1/delegations", ("x-cycles-api-key", &orchestrator), Some(hop)).await;
    assert_eq!(again, r);

    // The trace, read through the router too: the root grant, then the allowed hop, verified.
    let chain = r["chain_id"].as_str().unwrap();
    let (status, trace) = app.call(Method::GET, &format!("/v1/chains/{chain}"), ("x-cycles-api-key", &operator), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(trace["integrity"], "ok", "{trace}");
    let decisions: Vec<&str> = trace["events"].as_array().unwrap().iter().map(|e| e["decision"].as_str().unwrap()).collect();
    assert_eq!(decisions, ["root-grant", "allow"]);

    // A refusal through the router is the same typed error as over a socket.
    let (status, e) = app.call(Method::POST, "/v1/root-grants", ("x-cycles-api-key", &orchestrator), Some(json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["error"], "FORBIDDEN");
}

/// The admin lists through the router: listTenants and listBudgets read their filters, sorts
/// and pages from the query string, and a parameter that is not of its type is a 400 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_lists_read_their_filters_from_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path()).await;
    let admin = ("x-admin-api-key", ADMIN);
    for (id, name) in [("acme", "Acme"), ("globex", "Umbrella")] {
        app.admin("/v1/admin/tenants", json!({"tenant_id": id, "name": name})).await;
        for (scope, amount) in [(format!("tenant:{id}"), 1_000), (format!("tenant:{id}/workspace:prod"), 10)] {
            let budget = json!({"tenant_id": id, "scope": scope, "unit": "TOKENS", "allocated": {"unit": "TOKENS", "amount": amount}});
            app.admin("/v1/admin/budgets", budget).await;
        }
    }
    let get = |path: &'static str| app.call(Method::GET, path, admin, None);
    let (status, page) = get("/v1/admin/tenants?search=umbr").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["tenants"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["tenants"][0]["tenant_id"], "globex");
    let (_, page) = get("/v1/admin/tenants?sort_by=tenant_id&limit=1").await;
    assert_eq!((page["tenants"][0]["tenant_id"].as_str(), page["next_cursor"].as_str()), (Some("globex"), Some("1")), "{page}");
    let (_, page) = get("/v1/admin/budgets?scope_prefix=tenant:globex&sort_by=scope&sort_dir=asc").await;
    let scopes: Vec<&str> = page["ledgers"].as_array().unwrap().iter().map(|l| l["scope"].as_str().unwrap()).collect();
    assert_eq!(scopes, ["tenant:globex", "tenant:globex/workspace:prod"], "{page}");
    let (_, page) = get("/v1/admin/budgets?limit=3").await;
    assert_eq!((page["ledgers"].as_array().unwrap().len(), page["has_more"].as_bool()), (3, Some(true)), "{page}");
    for (path, name) in [
        ("/v1/admin/budgets?utilization_min=abc", "utilization_min"),
        ("/v1/admin/budgets?has_debt=maybe", "has_debt"),
        ("/v1/admin/budgets?utilization_min=0.9&utilization_max=0.1", "utilization_min"),
        ("/v1/admin/tenants?status=GONE", "status"),
        ("/v1/admin/tenants?limit=x", "limit"),
    ] {
        let (status, e) = get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {e}");
        assert!(e["message"].as_str().unwrap().contains(name), "{path}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_listed_with_filters_changed_in_place_and_revoked_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path()).await;
    let admin = ("x-admin-api-key", ADMIN);
    for (id, name) in [("acme", "Acme"), ("globex", "Globex")] {
        app.admin("/v1/admin/tenants", json!({"tenant_id": id, "name": name})).await;
    }
    // A scope filter would narrow a key; this server does not enforce one, so asking for one is
    // refused instead of answered with a key that reaches the whole tenant.
    let narrow = json!({"tenant_id": "acme", "name": "narrow", "role": "agent", "scope_filter": ["workspace:eng"]});
    let (status, e) = app.call(Method::POST, "/v1/admin/api-keys", admin, Some(narrow)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(e["message"].as_str().unwrap().contains("scope_filter"), "{e}");

    // created out of name order, so the ids' (random) order cannot pass for a sort by name
    app.key("reader", "carol-reader").await;
    let alpha = app.key("agent", "alpha-agent").await;
    app.key("reader", "beta-reader").await;
    app.admin("/v1/admin/api-keys", json!({"tenant_id": "globex", "name": "gamma", "role": "agent"})).await;
    let (status, all) = app.admin_get("/v1/admin/api-keys").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let keys = all["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4, "the refused key was not stored: {all}");
    assert!(keys.iter().all(|k| k["status"] == "ACTIVE" && k["key_prefix"].as_str().unwrap().starts_with("cyc_live_")));
    assert!(keys.iter().all(|k| k.get("key_secret").is_none() && k.get("scope_filter").is_none()), "{all}");
    let alpha_id = keys.iter().find(|k| k["name"] == "alpha-agent").unwrap()["key_id"].as_str().unwrap().to_string();

    let (_, page) = app.admin_get("/v1/admin/api-keys?search=BETA").await;
    assert_eq!(page["keys"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["keys"][0]["name"], "beta-reader");
    let names = |page: &Value| -> Vec<String> {
        page["keys"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_string()).collect()
    };
    let (_, page) = app.admin_get("/v1/admin/api-keys?tenant_id=acme&sort_by=name&sort_dir=asc&limit=2").await;
    assert_eq!((names(&page), page["has_more"].as_bool()), (vec!["alpha-agent".into(), "beta-reader".into()], Some(true)), "{page}");
    let next = format!("/v1/admin/api-keys?tenant_id=acme&sort_by=name&sort_dir=asc&limit=2&cursor={}", page["next_cursor"].as_str().unwrap());
    let (_, page) = app.admin_get(&next).await;
    assert_eq!((names(&page), page["has_more"].as_bool()), (vec!["carol-reader".to_string()], Some(false)), "{page}");
    // descending is the default direction of a sort
    let (_, page) = app.admin_get("/v1/admin/api-keys?tenant_id=acme&sort_by=name").await;
    assert_eq!(names(&page), ["carol-reader", "beta-reader", "alpha-agent"], "{page}");
    for (path, name) in [
        ("/v1/admin/api-keys?status=LOST", "status"),
        ("/v1/admin/api-keys?sort_by=secret", "sort_by"),
        ("/v1/admin/api-keys?limit=0", "limit"),
    ] {
        let (status, e) = app.admin_get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {e}");
        assert!(e["message"].as_str().unwrap().contains(name), "{path}: {e}");
    }

    // updateApiKey: a narrower permission set takes effect on the key's next request
    const BALANCES: &str = "/v1/balances?tenant=acme";
    assert_eq!(app.status_of(&alpha, BALANCES).await, StatusCode::OK);
    let path = format!("/v1/admin/api-keys/{alpha_id}");
    let change = json!({"name": "alpha-renamed", "description": "settles refunds", "permissions": ["reservations:list"]});
    let (status, changed) = app.call(Method::PATCH, &path, admin, Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!((changed["name"].as_str(), changed["description"].as_str()), (Some("alpha-renamed"), Some("settles refunds")));
    assert_eq!(changed["permissions"], json!(["reservations:list"]));
    assert_eq!(app.status_of(&alpha, BALANCES).await, StatusCode::FORBIDDEN, "the cached key lost balances:read");
    for (body, name) in [
        (json!({"permissions": ["admin:write"]}), "permissions"),
        (json!({"scope_filter": ["agent:*"]}), "scope_filter"),
        (json!({"tenant_id": "globex"}), "tenant_id"),
        (json!({"name": ""}), "name"),
    ] {
        let (status, e) = app.call(Method::PATCH, &path, admin, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert!(e["message"].as_str().unwrap().contains(name), "{body}: {e}");
    }

    // revokeApiKey keeps the reason; a second revocation answers the same record
    let (status, revoked) = app.call(Method::DELETE, &format!("{path}?reason=rotated"), admin, None).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!((revoked["status"].as_str(), revoked["revoked_reason"].as_str()), (Some("REVOKED"), Some("rotated")));
    let (_, again) = app.call(Method::DELETE, &path, admin, None).await;
    assert_eq!(again, revoked);
    assert_eq!(app.status_of(&alpha, BALANCES).await, StatusCode::UNAUTHORIZED);
    let (status, e) = app.call(Method::PATCH, &path, admin, Some(json!({"name": "back"}))).await;
    assert_eq!((status, e["error"].as_str()), (StatusCode::CONFLICT, Some("KEY_REVOKED")), "{e}");
    let (_, page) = app.admin_get("/v1/admin/api-keys?status=REVOKED").await;
    assert_eq!(page["keys"].as_array().unwrap().len(), 1, "{page}");
    let (status, _) = app.call(Method::PATCH, "/v1/admin/api-keys/key_missing", admin, Some(json!({"name": "x"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Closing a tenant revokes its keys like any revocation: stamped, with a reason and an event.
    let (status, e) = app.call(Method::PATCH, "/v1/admin/tenants/globex", admin, Some(json!({"status": "CLOSED"}))).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    let (_, page) = app.admin_get("/v1/admin/api-keys?tenant_id=globex").await;
    let gamma = &page["keys"][0];
    assert_eq!((gamma["status"].as_str(), gamma["revoked_reason"].as_str()), (Some("REVOKED"), Some("tenant closed")), "{page}");
    assert!(gamma["revoked_at"].is_string(), "{page}");
    let (_, events) = app.admin_get("/v1/admin/events?event_type=api_key.revoked_via_tenant_cascade").await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0]["tenant_id"].as_str(), events[0]["data"]["key_id"].as_str()), (Some("globex"), gamma["key_id"].as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_periods_and_rollovers_this_server_does_not_keep_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path()).await;
    let admin = ("x-admin-api-key", ADMIN);
    app.admin("/v1/admin/tenants", json!({"tenant_id": "acme", "name": "Acme"})).await;
    let budget = |extra: Value| {
        let mut b = json!({"tenant_id": "acme", "scope": "tenant:acme", "unit": "TOKENS", "allocated": {"unit": "TOKENS", "amount": 100}});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    for (extra, field) in [
        (json!({"rollover_policy": "CARRY_FORWARD"}), "rollover_policy"),
        (json!({"rollover_policy": "CAP_AT_ALLOCATED"}), "rollover_policy"),
        (json!({"rollover_policy": "SOMETIMES"}), "rollover_policy"),
        (json!({"period_start": "2026-12-01T00:00:00Z"}), "period_start"),
        (json!({"rollover_policy": "NONE", "period_end": "2026-12-31T00:00:00Z"}), "period_end"),
    ] {
        let (status, e) = app.call(Method::POST, "/v1/admin/budgets", admin, Some(budget(extra.clone()))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {e}");
        assert!(e["message"].as_str().unwrap().contains(field), "{extra}: {e}");
    }
    let (_, none) = app.admin_get("/v1/admin/budgets?tenant_id=acme").await;
    assert_eq!(none["ledgers"].as_array().unwrap().len(), 0, "nothing was created: {none}");
    // NONE is what this server does, and is accepted
    let (status, created) = app.call(Method::POST, "/v1/admin/budgets", admin, Some(budget(json!({"rollover_policy": "NONE"})))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

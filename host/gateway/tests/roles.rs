//! Principals and roles: the role x endpoint matrix over every route of the router (each pair
//! allowed by design, or refused 403 naming the permission), the issue's "permissions stored,
//! not enforced" bypasses, and checked arithmetic in the ledger and admin operations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{reserve_body, Http, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Who calls: a tenant key of a role, the admin key, or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Operator,
    Approver,
    Agent,
    Reader,
    Admin,
}

const O: u8 = 1;
const P: u8 = 2; // approver
const G: u8 = 4; // agent
const R: u8 = 8; // reader
const A: u8 = 16; // the admin key
const ALL_ROLES: u8 = O | P | G | R;
const PUBLIC: u8 = 32; // no credential needed

/// THE matrix: `(method, route, permission, who is allowed)`. Written out here on purpose,
/// independently of `auth::route_access`, so a change to either shows up as a failure.
const MATRIX: &[(&str, &str, &str, u8)] = &[
    ("GET", "/healthz", "", PUBLIC),
    ("GET", "/metrics", "", PUBLIC),
    ("GET", "/openapi.yaml", "", PUBLIC),
    ("POST", "/v1/reservations", "reservations:create", G),
    ("GET", "/v1/reservations", "reservations:list", ALL_ROLES),
    ("GET", "/v1/reservations/{reservation_id}", "reservations:list", ALL_ROLES),
    ("POST", "/v1/reservations/{reservation_id}/commit", "reservations:commit", G),
    ("POST", "/v1/reservations/{reservation_id}/release", "reservations:release", O | G),
    ("POST", "/v1/reservations/{reservation_id}/extend", "reservations:extend", G),
    ("POST", "/v1/decide", "reservations:create", G),
    ("GET", "/v1/balances", "balances:read", ALL_ROLES),
    ("POST", "/v1/events", "events:create", G),
    ("GET", "/v1/auth/introspect", "", ALL_ROLES | A),
    ("GET", "/v1/events", "events:read", O | R),
    ("GET", "/v1/admin/events", "admin:events:read", A),
    ("GET", "/v1/admin/events/{event_id}", "admin:events:read", A),
    ("POST", "/v1/admin/webhooks", "admin:webhooks:write", A),
    ("GET", "/v1/admin/webhooks", "admin:webhooks:write", A),
    ("GET", "/v1/admin/webhooks/{subscription_id}", "admin:webhooks:write", A),
    ("PATCH", "/v1/admin/webhooks/{subscription_id}", "admin:webhooks:write", A),
    ("DELETE", "/v1/admin/webhooks/{subscription_id}", "admin:webhooks:write", A),
    ("POST", "/v1/admin/webhooks/{subscription_id}/test", "admin:webhooks:write", A),
    ("POST", "/v1/admin/webhooks/{subscription_id}/replay", "admin:webhooks:write", A),
    ("GET", "/v1/admin/webhooks/{subscription_id}/deliveries", "admin:webhooks:write", A),
    ("POST", "/v1/webhooks", "webhooks:write", O),
    ("GET", "/v1/webhooks", "webhooks:read", O | A),
    ("GET", "/v1/webhooks/{subscription_id}", "webhooks:read", O | A),
    ("PATCH", "/v1/webhooks/{subscription_id}", "webhooks:write", O | A),
    ("DELETE", "/v1/webhooks/{subscription_id}", "webhooks:write", O | A),
    ("POST", "/v1/webhooks/{subscription_id}/test", "webhooks:write", O | A),
    ("GET", "/v1/webhooks/{subscription_id}/deliveries", "webhooks:read", O | A),
    ("POST", "/v1/admin/tenants", "admin:tenants:write", A),
    ("GET", "/v1/admin/tenants", "admin:tenants:read", A),
    ("GET", "/v1/admin/tenants/{tenant_id}", "admin:tenants:read", A),
    ("PATCH", "/v1/admin/tenants/{tenant_id}", "admin:tenants:write", A),
    ("POST", "/v1/admin/budgets", "budgets:write", O | A),
    ("GET", "/v1/admin/budgets", "budgets:read", O | P | R | A),
    ("POST", "/v1/admin/budgets/fund", "budgets:fund", O | A),
    ("POST", "/v1/admin/budgets/freeze", "budgets:write", O | A),
    ("POST", "/v1/admin/budgets/unfreeze", "budgets:write", O | A),
    ("POST", "/v1/admin/api-keys", "admin:apikeys:write", O | A),
    ("GET", "/v1/admin/api-keys", "admin:apikeys:read", O | A),
    ("DELETE", "/v1/admin/api-keys/{key_id}", "admin:apikeys:write", O | A),
    ("PATCH", "/v1/admin/api-keys/{key_id}", "admin:apikeys:write", O | A),
    ("POST", "/v1/delegations", "delegations:create", G),
    ("GET", "/v1/chains/{chain_id}", "chains:read", ALL_ROLES),
    ("POST", "/v1/chains/{chain_id}/outcome", "outcomes:write", O | P | G),
    ("GET", "/v1/agents/{agent_id}/trust", "trust:read", ALL_ROLES),
    ("GET", "/v1/escalations", "escalations:read", O | P | R),
    ("GET", "/v1/escalations/{escalation_id}", "escalations:read", O | P | R),
    ("POST", "/v1/escalations/{escalation_id}/approve", "escalations:decide", P),
    ("POST", "/v1/escalations/{escalation_id}/deny", "escalations:decide", P),
    ("POST", "/v1/escalations/{escalation_id}/delegate", "escalations:decide", P),
    ("POST", "/v1/escalation-targets", "escalation-targets:write", O),
    ("GET", "/v1/escalation-targets", "escalation-targets:read", O | P | R),
    ("POST", "/v1/policies", "admin:policies:write", A),
    ("GET", "/v1/policies/active", "policies:read", O | R | A),
    ("POST", "/v1/policies/roll-forward", "admin:policies:write", A),
    ("GET", "/v1/warnings", "chains:read", ALL_ROLES),
    ("POST", "/v1/root-grants", "grants:write", O),
    ("GET", "/v1/grants/{grant_id}", "chains:read", ALL_ROLES),
    ("POST", "/v1/grants/{grant_id}/commit", "grants:settle", O | G),
    ("POST", "/v1/grants/{grant_id}/release", "grants:settle", O | G),
    ("POST", "/v1/grants/{grant_id}/revoke", "grants:write", O),
    ("GET", "/v1/chains/{chain_id}/grants", "chains:read", ALL_ROLES),
    ("GET", "/v1/escrow/audit", "grants:write", O),
    ("POST", "/v1/agents", "agents:write", O),
    ("GET", "/v1/agents", "agents:read", O | P | R),
    ("GET", "/v1/authority/settings", "agents:read", O | P | R),
    ("PUT", "/v1/authority/settings", "grants:write", O),
    ("POST", "/v1/depth-exceptions", "depth-exceptions:create", P),
];

fn concrete(path: &str) -> String {
    path.replace("{reservation_id}", "rsv_nope")
        .replace("{tenant_id}", "nobody")
        .replace("{key_id}", "key_nope")
        .replace("{chain_id}", "chn_nope")
        .replace("{agent_id}", "a")
        .replace("{escalation_id}", "esc_nope")
        .replace("{grant_id}", "grant_nope")
        .replace("{event_id}", "evt_nope")
        .replace("{subscription_id}", "whsub_nope")
}

fn bit(w: Who) -> u8 {
    match w {
        Who::Operator => O,
        Who::Approver => P,
        Who::Agent => G,
        Who::Reader => R,
        Who::Admin => A,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_by_endpoint_matrix_covers_every_route() {
    // Every documented operation (the OpenAPI test proves each is routed) is in the matrix,
    // and every matrix row is documented and known to the gateway's permission table.
    let documented = sbd_gateway::openapi::documented_operations();
    let mut rows: Vec<(String, String)> = MATRIX.iter().map(|(m, p, _, _)| (m.to_string(), p.to_string())).collect();
    let mut docs = documented.clone();
    rows.sort();
    docs.sort();
    assert_eq!(rows, docs, "the matrix must list exactly the router's operations");
    for (m, p, _, _) in MATRIX {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        assert!(sbd_gateway::auth::route_access(&method, p).is_some(), "{m} {p} has no permission");
    }

    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let agent = http.provision("acme").await;
    let keys = [
        (Who::Operator, http.operator(&agent)),
        (Who::Approver, http.key("acme", "approver", "alice").await),
        (Who::Agent, agent.clone()),
        (Who::Reader, http.key("acme", "reader", "dashboard").await),
        (Who::Admin, ADMIN.to_string()),
    ];
    let mut checked = 0;
    for (m, p, perm, allowed) in MATRIX {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let path = concrete(p);
        // Bodies are deliberately empty objects: an allowed call may be a 400/404, but never
        // a 401/403; a refused one is a 403 before the body is read.
        let body = if *m == "GET" || *m == "DELETE" { None } else { Some(json!({})) };
        // Nobody: public routes answer, every other one is 401.
        let r = http.call(method.clone(), &path, &[], body.clone()).await;
        if *allowed & PUBLIC != 0 {
            assert!(r.status.is_success(), "{m} {p} without a key: {}", r.status);
            continue;
        }
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m} {p} without a key: {:?}", r.body);
        for (who, key) in &keys {
            let header = if *who == Who::Admin { "x-admin-api-key" } else { "x-cycles-api-key" };
            let r = http.call(method.clone(), &path, &[(header, key)], body.clone()).await;
            let ok = allowed & bit(*who) != 0;
            if ok {
                assert!(
                    r.status != StatusCode::UNAUTHORIZED && r.status != StatusCode::FORBIDDEN,
                    "{who:?} on {m} {p} is allowed by design but got {}: {:?}",
                    r.status,
                    r.body
                );
            } else if *who == Who::Admin {
                // The admin key is no tenant key: tenant routes do not accept it.
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "admin on {m} {p}: {:?}", r.body);
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{who:?} on {m} {p} must be refused: {:?}", r.body);
                assert_eq!(r.body["error"], "FORBIDDEN");
                assert_eq!(r.body["details"]["required_permission"], *perm, "{who:?} on {m} {p}: {:?}", r.body);
                assert!(r.body["message"].as_str().unwrap().contains(perm), "{:?}", r.body);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, (MATRIX.len() - 3) * 5);
    gw.stop().await;
}

async fn fund(http: &Http, key: &str, scope: &str, unit: &str, body: Value) -> common::Reply {
    http.tenant(key, Method::POST, &format!("/v1/admin/budgets/fund?scope={scope}&unit={unit}"), Some(body)).await
}

fn assert_forbidden(r: &common::Reply, permission: &str, what: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {:?}", r.body);
    assert_eq!(r.body["details"]["required_permission"], permission, "{what}: {:?}", r.body);
}

/// The issue's "permissions stored, not enforced" list, each now refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balances_read_key_cannot_reserve_fund_reset_create_unfreeze_or_approve() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let agent = http.provision("acme").await;
    let op = http.operator(&agent);
    http.budget(&agent, "tenant:acme", "USD_MICROCENTS", 1_000_000, json!({})).await;
    let r = http
        .admin(Method::POST, "/v1/admin/api-keys", Some(json!({"tenant_id": "acme", "name": "ro", "permissions": ["balances:read"]})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["permissions"], json!(["balances:read"]));
    let ro = r.body["key_secret"].as_str().unwrap().to_string();

    // It reads balances, and introspection says what it is.
    let before = http.balance(&ro, "acme", "tenant:acme").await;
    let me = http.tenant(&ro, Method::GET, "/v1/auth/introspect", None).await;
    assert_eq!((me.body["role"].as_str(), me.body["permissions"].clone()), (Some("agent"), json!(["balances:read"])));

    // Reserve.
    let r = http.tenant(&ro, Method::POST, "/v1/reservations", Some(reserve_body("r1", "acme", 5))).await;
    assert_forbidden(&r, "reservations:create", "reserve");
    // CREDIT 10^15, RESET_SPENT to 0.
    let r = fund(&http, &ro, "tenant:acme", "USD_MICROCENTS", json!({"operation": "CREDIT", "amount": {"unit": "USD_MICROCENTS", "amount": 1_000_000_000_000_000_i64}})).await;
    assert_forbidden(&r, "budgets:fund", "credit");
    let r = fund(&http, &ro, "tenant:acme", "USD_MICROCENTS", json!({"operation": "RESET_SPENT", "amount": {"unit": "USD_MICROCENTS", "amount": 1_000_000}, "spent": {"unit": "USD_MICROCENTS", "amount": 0}})).await;
    assert_forbidden(&r, "budgets:fund", "reset spent");
    // Create a budget.
    let r = http.tenant(&ro, Method::POST, "/v1/admin/budgets", Some(json!({"scope": "tenant:acme/workspace:x", "unit": "TOKENS", "allocated": {"unit": "TOKENS", "amount": 5}}))).await;
    assert_forbidden(&r, "budgets:write", "create budget");
    // Unfreeze a budget the admin froze.
    let r = http.admin(Method::POST, "/v1/admin/budgets/freeze?tenant_id=acme&scope=tenant:acme&unit=USD_MICROCENTS", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    for k in [&ro, &agent] {
        let r = http.tenant(k, Method::POST, "/v1/admin/budgets/unfreeze?scope=tenant:acme&unit=USD_MICROCENTS", None).await;
        assert_forbidden(&r, "budgets:write", "unfreeze");
    }
    let listed = http.tenant(&op, Method::GET, "/v1/admin/budgets", None).await;
    assert_eq!(listed.body["ledgers"][0]["status"], "FROZEN");
    // The operator lifts it.
    let r = http.tenant(&op, Method::POST, "/v1/admin/budgets/unfreeze?scope=tenant:acme&unit=USD_MICROCENTS", None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("ACTIVE")), "{:?}", r.body);
    // Approve an escalation.
    let r = http.tenant(&ro, Method::POST, "/v1/escalations/esc_x/approve", Some(json!({}))).await;
    assert_forbidden(&r, "escalations:decide", "approve");
    // A full agent key cannot fund either.
    let r = fund(&http, &agent, "tenant:acme", "USD_MICROCENTS", json!({"operation": "CREDIT", "amount": {"unit": "USD_MICROCENTS", "amount": 1}})).await;
    assert_forbidden(&r, "budgets:fund", "agent credit");
    // Nothing changed.
    let after = http.balance(&ro, "acme", "tenant:acme").await;
    assert_eq!(before["allocated"], after["allocated"]);
    assert_eq!(before["spent"], after["spent"]);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_cannot_touch_another_keys_reservation_but_an_operator_may_release_it() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let a = http.provision("acme").await;
    let op = http.operator(&a);
    let b = http.key("acme", "agent", "other-agent").await;
    http.budget(&a, "tenant:acme", "USD_MICROCENTS", 1_000, json!({})).await;
    let r = http.tenant(&a, Method::POST, "/v1/reservations", Some(reserve_body("r1", "acme", 100))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let id = r.body["reservation_id"].as_str().unwrap().to_string();
    for (verb, body) in [
        ("commit", json!({"idempotency_key": "c", "actual": {"unit": "USD_MICROCENTS", "amount": 1}})),
        ("release", json!({"idempotency_key": "r"})),
        ("extend", json!({"idempotency_key": "e", "extend_by_ms": 1000})),
    ] {
        let r = http.tenant(&b, Method::POST, &format!("/v1/reservations/{id}/{verb}"), Some(body)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{verb}: {:?}", r.body);
        assert!(r.body["message"].as_str().unwrap().contains("another API key"), "{:?}", r.body);
    }
    assert_eq!(http.balance(&a, "acme", "tenant:acme").await["reserved"]["amount"], 100);
    // The operator releases it.
    let r = http.tenant(&op, Method::POST, &format!("/v1/reservations/{id}/release"), Some(json!({"idempotency_key": "op"}))).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("RELEASED")), "{:?}", r.body);
    // The owner still works on its own.
    let r = http.tenant(&a, Method::POST, "/v1/reservations", Some(reserve_body("r2", "acme", 10))).await;
    let id = r.body["reservation_id"].as_str().unwrap().to_string();
    let r = http.tenant(&a, Method::POST, &format!("/v1/reservations/{id}/commit"), Some(json!({"idempotency_key": "c2", "actual": {"unit": "USD_MICROCENTS", "amount": 7}}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decided_by_cannot_be_forged_and_only_approvers_decide() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let agent = http.provision("acme").await;
    let op = http.operator(&agent);
    let bob = http.key("acme", "approver", "bob").await;
    let officer = http.key("acme", "approver", "risk-officer").await;
    http.budget(&agent, "tenant:acme", "USD_MICROCENTS", 10_000_000_000, json!({})).await;
    // An escalating hop (38% volatility caps alpha under the review threshold).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mandate = |v: u64, d: u8| json!({"value_ceiling": 50_000_000_000u64, "action_kinds": ["payment.*"],
        "counterparties": ["acme"], "budgets": [{"unit": "USD_MICROCENTS", "amount": v}], "remaining_depth": d,
        "expires_at": now + 3_600_000});
    http.register(&agent, "orchestrator", 900.0).await;
    http.register(&agent, "refund-agent", 720.0).await;
    let grant = http.root_grant(&agent, "orchestrator", mandate(5_000_000_000, 4)).await;
    let req = json!({"token": grant["token"], "request": {
        "from": {"id": "orchestrator", "trust": 900}, "to": {"id": "refund-agent", "trust": 720},
        "task": {"id": "t1", "action_kind": "payment.refund", "risk": "medium", "value": 1_000_000, "counterparty": "acme"},
        "parent_mandate": mandate(5_000_000_000, 4), "requested_mandate": mandate(500_000_000, 3),
        "chain": [], "state": [0.38],
    }});
    let r = http.delegate(&agent, req).await;
    assert_eq!(r.body["decision"], "escalate", "{:?}", r.body);
    let id = r.body["escalation"]["id"].as_str().unwrap().to_string();
    // The agent that asked, the operator and a forged body cannot decide.
    for k in [&agent, &op] {
        let r = http.tenant(k, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({}))).await;
        assert_forbidden(&r, "escalations:decide", "non-approver approves");
    }
    let r = http.tenant(&bob, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({"decided_by": "risk-officer"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("decided_by"));
    // Another approver is not the one it is assigned to.
    let r = http.tenant(&bob, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    // The assigned approver decides, under its own name.
    let r = http.tenant(&officer, Method::POST, &format!("/v1/escalations/{id}/approve"), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["decided_by"], "risk-officer");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_mint_non_operator_keys_of_their_own_tenant_only() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let agent = http.provision("acme").await;
    let op = http.operator(&agent);
    let _ = http.provision("globex").await;
    let create = |tenant: &str, role: &str| json!({"tenant_id": tenant, "name": format!("{role}-1"), "role": role});
    let r = http.tenant(&op, Method::POST, "/v1/admin/api-keys", Some(create("acme", "operator"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = http.tenant(&op, Method::POST, "/v1/admin/api-keys", Some(create("globex", "agent"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = http.tenant(&op, Method::POST, "/v1/admin/api-keys", Some(create("acme", "approver"))).await;
    assert_eq!((r.status, r.body["role"].as_str()), (StatusCode::CREATED, Some("approver")), "{:?}", r.body);
    let approver = r.body["key_secret"].as_str().unwrap().to_string();
    let approver_id = r.body["key_id"].as_str().unwrap().to_string();
    let me = http.tenant(&approver, Method::GET, "/v1/auth/introspect", None).await;
    assert_eq!(me.body["principal"], "approver-1");
    assert!(me.body["permissions"].as_array().unwrap().contains(&json!("escalations:decide")));
    // A permission the role does not grant is refused at creation.
    let r = http
        .tenant(&op, Method::POST, "/v1/admin/api-keys", Some(json!({"tenant_id": "acme", "name": "x", "role": "reader", "permissions": ["budgets:fund"]})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    // Unknown role.
    let r = http.admin(Method::POST, "/v1/admin/api-keys", Some(create("acme", "root"))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The operator changes its tenant's non-operator keys in place, within their role only.
    let path = format!("/v1/admin/api-keys/{approver_id}");
    let r = http.tenant(&op, Method::PATCH, &path, Some(json!({"permissions": ["budgets:fund"]}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = http.tenant(&op, Method::PATCH, &path, Some(json!({"name": "approver-renamed"}))).await;
    assert_eq!((r.status, r.body["name"].as_str()), (StatusCode::OK, Some("approver-renamed")), "{:?}", r.body);
    let me = http.tenant(&approver, Method::GET, "/v1/auth/introspect", None).await;
    assert_eq!(me.body["principal"], "approver-renamed", "the cached key has its new name");
    // ... but not another tenant's key (as if it did not exist) nor another operator key.
    let globex = http.admin(Method::GET, "/v1/admin/api-keys?tenant_id=globex", None).await;
    let globex_id = globex.body["keys"][0]["key_id"].as_str().unwrap().to_string();
    let r = http.tenant(&op, Method::PATCH, &format!("/v1/admin/api-keys/{globex_id}"), Some(json!({"name": "mine"}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let other = http.admin(Method::POST, "/v1/admin/api-keys", Some(json!({"tenant_id": "acme", "name": "op-2", "role": "operator"}))).await;
    let other_id = other.body["key_id"].as_str().unwrap().to_string();
    let r = http.tenant(&op, Method::PATCH, &format!("/v1/admin/api-keys/{other_id}"), Some(json!({"name": "mine"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    // An operator's name is who it acts as (the issuer of its grants): it cannot rename itself
    // into another principal; the admin key, which minted it, can.
    let op_id = http.tenant(&op, Method::GET, "/v1/auth/introspect", None).await.body["key_id"].as_str().unwrap().to_string();
    let r = http.tenant(&op, Method::PATCH, &format!("/v1/admin/api-keys/{op_id}"), Some(json!({"name": "op-2"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = http.admin(Method::PATCH, &format!("/v1/admin/api-keys/{op_id}"), Some(json!({"name": "ops-lead"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // The operator lists only its tenant's keys, and revokes the approver.
    let r = http.tenant(&op, Method::GET, "/v1/admin/api-keys", None).await;
    assert!(r.body["keys"].as_array().unwrap().iter().all(|k| k["tenant_id"] == "acme"), "{:?}", r.body);
    let r = http.tenant(&op, Method::GET, "/v1/admin/api-keys?tenant_id=globex", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = http.tenant(&op, Method::DELETE, &format!("/v1/admin/api-keys/{approver_id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = http.tenant(&approver, Method::GET, "/v1/auth/introspect", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    gw.stop().await;
}

/// The issue's arithmetic cases: no wrap, a 400 naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_and_admin_arithmetic_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let agent = http.provision("acme").await;
    let op = http.operator(&agent);
    let u = "USD_MICROCENTS";
    http.budget(&agent, "tenant:acme", u, 1_000, json!({"overdraft_limit": {"unit": u, "amount": i64::MAX}, "commit_overage_policy": "ALLOW_WITH_OVERDRAFT"})).await;

    // CREDIT 2^63-1 on 1000 allocated.
    let r = fund(&http, &op, "tenant:acme", u, json!({"operation": "CREDIT", "amount": {"unit": u, "amount": i64::MAX}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.body["error"], "INVALID_REQUEST");
    let m = r.body["message"].as_str().unwrap();
    assert!(m.contains("`amount.amount`") && m.contains("allocated") && m.contains("9223372036854775807"), "{m}");
    assert_eq!(http.balance(&agent, "acme", "tenant:acme").await["allocated"]["amount"], 1_000);

    // RESET_SPENT to -1000.
    let r = fund(&http, &op, "tenant:acme", u, json!({"operation": "RESET_SPENT", "amount": {"unit": u, "amount": 1_000}, "spent": {"unit": u, "amount": -1_000}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("`spent.amount`"), "{:?}", r.body);
    // Negative amounts anywhere.
    let r = fund(&http, &op, "tenant:acme", u, json!({"operation": "CREDIT", "amount": {"unit": u, "amount": -5}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);

    // Two overdraft events of 2^63-1: the first lands as debt, the second would overflow it.
    let event = |k: &str| json!({"idempotency_key": k, "subject": {"tenant": "acme"}, "action": {"kind": "a", "name": "b"},
        "actual": {"unit": u, "amount": i64::MAX}, "overage_policy": "ALLOW_WITH_OVERDRAFT"});
    let r = http.tenant(&agent, Method::POST, "/v1/events", Some(event("e1"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = http.tenant(&agent, Method::POST, "/v1/events", Some(event("e2"))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let m = r.body["message"].as_str().unwrap();
    assert!(m.contains("`actual.amount`") && m.contains("debt"), "{m}");
    let b = http.balance(&agent, "acme", "tenant:acme").await;
    assert_eq!(b["debt"]["amount"], i64::MAX - 1_000, "{b}");
    assert!(b["spent"]["amount"].as_i64().unwrap() >= 0 && b["remaining"]["amount"].as_i64().unwrap() < 0, "{b}");
    // REPAY_DEBT of 2^63-1 moves the debt to spent without wrapping spent.
    let r = fund(&http, &op, "tenant:acme", u, json!({"operation": "REPAY_DEBT", "amount": {"unit": u, "amount": i64::MAX}})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = fund(&http, &op, "tenant:acme", u, json!({"operation": "CREDIT", "amount": {"unit": u, "amount": i64::MAX}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let b = http.balance(&agent, "acme", "tenant:acme").await;
    for f in ["allocated", "spent", "reserved", "debt"] {
        assert!(b[f]["amount"].as_i64().unwrap() >= 0, "{f} went negative: {b}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_arrays_are_refused_where_objects_are_expected() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let agent = http.provision("acme").await;
    let op = http.operator(&agent);
    http.budget(&agent, "tenant:acme", "USD_MICROCENTS", 1_000, json!({})).await;
    let h = |k: &str| vec![("x-cycles-api-key".to_string(), k.to_string()), ("content-type".into(), "application/json".into())];
    // A whole body as an array (serde reads structs positionally from arrays).
    let positional = json!(["k1", {"tenant": "acme"}, {"kind": "a", "name": "b"}, {"unit": "USD_MICROCENTS", "amount": 5}]);
    let hv = h(&agent);
    let hr: Vec<(&str, &str)> = hv.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let r = http.raw(Method::POST, "/v1/reservations", &hr, serde_json::to_vec(&positional).unwrap()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    // An amount as an array inside an object.
    let mut body = reserve_body("k2", "acme", 5);
    body["estimate"] = json!(["USD_MICROCENTS", 5]);
    let r = http.tenant(&agent, Method::POST, "/v1/reservations", Some(body)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = http
        .tenant(&op, Method::POST, "/v1/admin/budgets/fund?scope=tenant:acme&unit=USD_MICROCENTS", Some(json!(["CREDIT", {"unit": "USD_MICROCENTS", "amount": 5}])))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = http
        .tenant(&op, Method::POST, "/v1/admin/budgets/fund?scope=tenant:acme&unit=USD_MICROCENTS", Some(json!({"operation": "CREDIT", "amount": ["USD_MICROCENTS", 5]})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(http.balance(&agent, "acme", "tenant:acme").await["allocated"]["amount"], 1_000);
    assert_eq!(http.balance(&agent, "acme", "tenant:acme").await["reserved"]["amount"], 0);
    gw.stop().await;
}

/// A database from before roles: its keys have no role column; on open the columns are added
/// and the old keys work as `agent` keys (the Cycles runtime surface), not as operators.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_before_roles_are_agent_keys_after_the_migration() {
    if common::sqlite_only("a migration of SQLite stores from before roles") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("sbd.sqlite3")).unwrap();
        conn.execute_batch(
            "CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, \
             status TEXT NOT NULL, expires_at_ms INTEGER NOT NULL, body TEXT NOT NULL) WITHOUT ROWID;",
        )
        .unwrap();
        let secret = "cyc_live_legacy000000000000000000000000000000";
        let hash = {
            use sha2::Digest;
            let d = sha2::Sha256::digest(secret.as_bytes());
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let body = json!({"key_id": "key_old", "tenant_id": "acme", "name": "old key",
            "permissions": sbd_gateway::admin_api::DEFAULT_PERMISSIONS});
        conn.execute(
            "INSERT INTO api_keys VALUES ('key_old', 'acme', ?1, 'ACTIVE', ?2, ?3)",
            rusqlite::params![hash, i64::MAX, body.to_string()],
        )
        .unwrap();
        // and one whose stored record is not JSON at all
        conn.execute(
            "INSERT INTO api_keys VALUES ('key_bad', 'acme', ?1, 'ACTIVE', ?2, 'not json')",
            rusqlite::params![BAD_HASH, i64::MAX],
        )
        .unwrap();
    }
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let r = http.tenant("cyc_live_legacy000000000000000000000000000000", Method::GET, "/v1/auth/introspect", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["role"], "agent");
    assert!(r.body["permissions"].as_array().unwrap().contains(&json!("reservations:create")));
    let r = http
        .tenant("cyc_live_legacy000000000000000000000000000000", Method::POST, "/v1/admin/budgets", Some(json!({"scope": "tenant:acme", "unit": "TOKENS", "allocated": {"unit": "TOKENS", "amount": 5}})))
        .await;
    assert_forbidden(&r, "budgets:write", "legacy key creates a budget");
    // A record that is not JSON disables its key (read as no record, it would have meant the
    // role's whole permission set).
    let r = http.tenant(BAD_SECRET, Method::GET, "/v1/auth/introspect", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    // The old record lacks the spec's display fields, and is still changed and revoked.
    let r = http.admin(Method::PATCH, "/v1/admin/api-keys/key_old", Some(json!({"description": "from before roles"}))).await;
    assert_eq!((r.status, r.body["description"].as_str()), (StatusCode::OK, Some("from before roles")), "{:?}", r.body);
    let r = http.admin(Method::DELETE, "/v1/admin/api-keys/key_old", None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("REVOKED")), "{:?}", r.body);
    let r = http.tenant("cyc_live_legacy000000000000000000000000000000", Method::GET, "/v1/auth/introspect", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // And the unreadable record does not stop its tenant from closing: it is revoked by its
    // status column.
    let r = http.admin(Method::POST, "/v1/admin/tenants", Some(json!({"tenant_id": "acme", "name": "Acme"}))).await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = http.admin(Method::PATCH, "/v1/admin/tenants/acme", Some(json!({"status": "CLOSED"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let conn = rusqlite::Connection::open(dir.path().join("sbd.sqlite3")).unwrap();
    let status: String = conn.query_row("SELECT status FROM api_keys WHERE key_id = 'key_bad'", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "REVOKED");
    gw.stop().await;
}

const BAD_SECRET: &str = "cyc_live_unreadable0000000000000000000000000000";
/// SHA-256 of `BAD_SECRET`, hex.
const BAD_HASH: &str = "828baf1bf62501229d2a08f1d49fab2f9955079945aaa88f93f4ece2b6467731";

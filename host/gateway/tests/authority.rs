//! Anchored authority: one regression test per bypass found by trying the gateway from outside
//! (issue 14). Each attack below succeeded on the gateway before root grants, escrow, the
//! registry, bound tokens and idempotent delegations; each is now refused with a reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{hop, mandate, Http};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::authority_gateway as setup;

fn token(v: &Value) -> String {
    v["token"].as_str().or_else(|| v["child_token"].as_str()).expect("a token").to_string()
}

async fn audit_sound(http: &Http, key: &str) {
    let r = http.tenant(&http.operator(key), Method::GET, "/v1/escrow/audit", None).await;
    assert_eq!(r.body["sound"], true, "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_hop_without_a_root_grant_is_refused_and_chain_ids_are_never_reused() {
    let (_dir, _gw, http, key) = setup().await;
    // Re-rooting: an empty chain, no token, a parent mandate the caller made up.
    let mut body = hop("x", "orchestrator", "a", &mandate(2_500, 5), mandate(10, 4));
    body.as_object_mut().unwrap().remove("token");
    let r = http.delegate(&key, body.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("root grant"), "{:?}", r.body);

    // A tenant that opts into open roots still never reuses a chain id.
    let r = http.tenant(&http.operator(&key), Method::PUT, "/v1/authority/settings", Some(json!({"open_roots": true}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let first = http.delegate(&key, body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.body["decision"], "allow", "{:?}", first.body);
    let chain = first.body["chain_id"].as_str().unwrap().to_string();
    body["chain_id"] = json!(chain);
    body["request"]["task"]["id"] = json!("another-task");
    let again = http.delegate(&key, body).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "a first hop posted with an existing chain id: {:?}", again.body);
    // Two root grants, two chains.
    let g1 = http.root_grant(&key, "orchestrator", mandate(100, 4)).await;
    let g2 = http.root_grant(&key, "orchestrator", mandate(100, 4)).await;
    assert_ne!(g1["chain_id"], g2["chain_id"]);
    audit_sound(&http, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_widening_is_refused_scenario_b() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(2_500, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    // The parent holds 2,500 and gives 2,500 to each of three children with the same token.
    let mut allowed = 0;
    for child in ["a", "b", "c"] {
        let r = http.delegate(&key, hop(&token(&grant), "orchestrator", child, &root, mandate(2_500, 3))).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        if r.body["decision"] == "allow" {
            allowed += 1;
        } else {
            assert_eq!(r.body["verdict"]["deny"]["code"], 2001, "budget-widened against what is left: {:?}", r.body);
        }
    }
    assert_eq!(allowed, 1, "2,500 can be handed down once");
    let tree = http.tenant(&key, Method::GET, &format!("/v1/chains/{}/grants", grant["chain_id"].as_str().unwrap()), None).await;
    let root_units = &tree.body["grants"][0]["units"][0];
    assert_eq!((root_units["carved"].as_i64(), root_units["available"].as_i64()), (Some(2_500), Some(0)), "{:?}", tree.body);
    // Held from the tenant once, at the root grant.
    let b = http.balance(&key, "acme", "tenant:acme").await;
    assert_eq!(b["reserved"]["amount"], 2_500, "{b}");
    audit_sound(&http, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_delegation_returns_the_original_response_with_no_second_hold() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let body = hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3));
    let first = http.delegate(&key, body.clone()).await;
    assert_eq!(first.body["decision"], "allow", "{:?}", first.body);
    for _ in 0..4 {
        let again = http.delegate(&key, body.clone()).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.body, first.body, "the same token and request: the original response");
    }
    let tree = http.tenant(&key, Method::GET, &format!("/v1/chains/{}/grants", grant["chain_id"].as_str().unwrap()), None).await;
    assert_eq!(tree.body["grants"].as_array().unwrap().len(), 2, "one root, one child: {:?}", tree.body);
    // An explicit idempotency key reused with another request is a conflict.
    let keyed = |task: &str| {
        let mut b = body.clone();
        b["request"]["task"]["id"] = json!(task);
        b
    };
    let orchestrator = http.agent_key(&key, "orchestrator").await;
    let h = [("x-cycles-api-key", orchestrator.as_str()), ("x-idempotency-key", "k-1")];
    let r1 = http.call(Method::POST, "/v1/delegations", &h, Some(keyed("t-1"))).await;
    assert_eq!(r1.status, StatusCode::OK, "{:?}", r1.body);
    let r2 = http.call(Method::POST, "/v1/delegations", &h, Some(keyed("t-2"))).await;
    assert_eq!((r2.status, r2.body["error"].as_str()), (StatusCode::CONFLICT, Some("IDEMPOTENCY_MISMATCH")), "{:?}", r2.body);
    audit_sound(&http, &key).await;
}

/// An explicit idempotency key belongs to the API key that sent it: another key of the tenant
/// naming the same key is not refused as a mismatch (it could otherwise take the names others
/// are about to use), and each sender's retry is still its own replay. Fails on `030022c`,
/// where the names were the tenant's: the second sender got 409 IDEMPOTENCY_MISMATCH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_idempotency_key_is_its_senders_own() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let task = |id: &str| {
        let mut b = hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3));
        b["request"]["task"]["id"] = json!(id);
        b
    };
    // Two API keys of the tenant (here both for the orchestrator, so both may delegate its hops).
    let orchestrator = http.agent_key(&key, "orchestrator").await;
    let second_key = http.key("acme", "agent", "orchestrator").await;
    let by_agent = [("x-cycles-api-key", orchestrator.as_str()), ("x-idempotency-key", "shared-name")];
    let by_second_key = [("x-cycles-api-key", second_key.as_str()), ("x-idempotency-key", "shared-name")];
    let first = http.call(Method::POST, "/v1/delegations", &by_agent, Some(task("t-agent"))).await;
    assert_eq!((first.status, first.body["decision"].as_str()), (StatusCode::OK, Some("allow")), "{:?}", first.body);
    let second = http.call(Method::POST, "/v1/delegations", &by_second_key, Some(task("t-second-key"))).await;
    assert_eq!((second.status, second.body["decision"].as_str()), (StatusCode::OK, Some("allow")), "another key's name is not this one's: {:?}", second.body);
    assert_ne!(first.body["grant_id"], second.body["grant_id"], "two hops, two grants");
    for (headers, task_id, original) in [(&by_agent, "t-agent", &first), (&by_second_key, "t-second-key", &second)] {
        let again = http.call(Method::POST, "/v1/delegations", headers, Some(task(task_id))).await;
        assert_eq!(again.body, original.body, "each sender's retry replays its own answer");
    }
    let mismatch = http.call(Method::POST, "/v1/delegations", &by_agent, Some(task("t-other"))).await;
    assert_eq!((mismatch.status, mismatch.body["error"].as_str()), (StatusCode::CONFLICT, Some("IDEMPOTENCY_MISMATCH")), "{:?}", mismatch.body);
    audit_sound(&http, &key).await;
}

/// A root grant's Cycles hold settles only with its grant tree. Before it had an owner, any
/// key of the tenant with reservation permissions could release, commit or extend it through
/// `/v1/reservations/{id}/...`: the tenant's budget got the hold back while the escrow tree
/// stayed ACTIVE and went on carving (found by an adversarial review; fails on `6cf5ba8`,
/// where the other agent's release answers 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_grants_hold_settles_only_with_its_grant() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let chain = grant["chain_id"].as_str().unwrap().to_string();
    let tree = http.tenant(&key, Method::GET, &format!("/v1/chains/{chain}/grants"), None).await;
    let hold = tree.body["grants"][0]["units"][0]["reservation_id"].as_str().expect("a root grant's hold").to_string();
    let bystander = http.agent_key(&key, "a").await;
    let holder = http.agent_key(&key, "orchestrator").await;
    let operator = http.operator(&key);
    for (who, k) in [("another agent", bystander.as_str()), ("the holder", holder.as_str()), ("an operator", operator.as_str())] {
        for (verb, body) in [
            ("release", json!({"idempotency_key": format!("r-{who}")})),
            ("commit", json!({"idempotency_key": format!("c-{who}"), "actual": {"unit": "TOKENS", "amount": 1}})),
            ("extend", json!({"idempotency_key": format!("e-{who}"), "extend_by_ms": 1000})),
        ] {
            let r = http.tenant(k, Method::POST, &format!("/v1/reservations/{hold}/{verb}"), Some(body)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{who} may not {verb} a root grant's hold: {:?}", r.body);
        }
    }
    let listed = http.tenant(&key, Method::GET, &format!("/v1/reservations/{hold}"), None).await;
    assert_eq!(listed.body["status"], "ACTIVE", "{:?}", listed.body);
    // The tree still works, and settles its hold itself.
    let child = http.delegate(&key, hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3))).await;
    assert_eq!(child.body["decision"], "allow", "{:?}", child.body);
    audit_sound(&http, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_token_is_refused() {
    let (_dir, _gw, http, key) = setup().await;
    let other = http.authority_tenant("globex", 1_000_000).await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&other, "orchestrator", root.clone()).await;
    let r = http.delegate(&key, hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("another tenant"), "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_asserted_facts_are_refused_or_replaced() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    // A depth exception written into the request by the caller.
    let mut body = hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3));
    body["request"]["depth_exception"] = json!({"approved_by": "risk-officer", "justification": "x", "extra_depth": 2, "expires_at": common::expiry()});
    let r = http.delegate(&key, body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("depth_exception_id"), "{:?}", r.body);
    // A trust score the caller claims: the registry's is used (a low one escalates).
    http.register(&key, "low", 100.0).await;
    let mut body = hop(&token(&grant), "orchestrator", "low", &root, mandate(100, 3));
    body["request"]["to"]["trust"] = json!(1000);
    body["request"]["task"]["risk"] = json!("high");
    let r = http.delegate(&key, body).await;
    assert_ne!(r.body["decision"], "allow", "trust 100 from the registry, not the claimed 1000: {:?}", r.body);
    assert_eq!(r.body["verdict"]["escalate"]["code"].as_u64().map(|c| c / 1000), Some(5), "{:?}", r.body);
    // An agent the registry does not know.
    let r = http.delegate(&key, hop(&token(&grant), "orchestrator", "stranger", &root, mandate(100, 3))).await;
    assert_eq!((r.body["decision"].as_str(), r.body["verdict"]["deny"]["code"].as_u64()), (Some("deny"), Some(6001)), "{:?}", r.body);
}

/// The registry's refusals are the policy component's, on the gateway's facts: a caller's own
/// `registry` claim is replaced, and each tenant setting reaches the rule that decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registrys_facts_are_the_gateways_and_its_rule_decides() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let settings = |body: Value| {
        let (http, operator) = (&http, http.operator(&key));
        async move {
            let r = http.tenant(&operator, Method::PUT, "/v1/authority/settings", Some(body)).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
    };
    // A caller claiming that the stranger is registered and listed.
    let mut body = hop(&token(&grant), "orchestrator", "stranger", &root, mandate(100, 3));
    body["request"]["registry"] = json!({"delegator_registered": true, "delegate_registered": true, "reviewer": "me", "delegate_listed": true});
    let r = http.delegate(&key, body).await;
    assert_eq!((r.body["decision"].as_str(), r.body["verdict"]["deny"]["code"].as_u64()), (Some("deny"), Some(6001)), "{:?}", r.body);
    assert!(r.body["verdict"]["deny"]["message"].as_str().unwrap().contains("`stranger`"), "{:?}", r.body);
    // The tenant escalates unregistered agents to its reviewer.
    settings(json!({"unregistered": "escalate", "reviewer": "registry-desk"})).await;
    let r = http.delegate(&key, hop(&token(&grant), "orchestrator", "stranger", &root, mandate(100, 3))).await;
    assert_eq!(r.body["decision"], "escalate", "{:?}", r.body);
    assert_eq!(r.body["verdict"]["escalate"]["code"].as_u64(), Some(5010), "{:?}", r.body);
    assert_eq!(r.body["verdict"]["escalate"]["target"]["human"], "registry-desk", "{:?}", r.body);
    // Explicit delegation: the delegator's entry must list the delegate.
    settings(json!({"require_explicit_delegation": true})).await;
    let r = http.delegate(&key, hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3))).await;
    assert_eq!(r.body["verdict"]["deny"]["code"].as_u64(), Some(6002), "{:?}", r.body);
    let r = http
        .tenant(&http.operator(&key), Method::POST, "/v1/agents", Some(json!({"agent_id": "orchestrator", "trust": 900.0, "delegates": ["a"]})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = http.delegate(&key, hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3))).await;
    assert_eq!(r.body["decision"], "allow", "{:?}", r.body);
    audit_sound(&http, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_timestamps_are_bound_to_the_token() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let r1 = http.delegate(&key, hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3))).await;
    assert_eq!(r1.body["decision"], "allow", "{:?}", r1.body);
    let child = r1.body["verdict"]["allow"]["child_mandate"].clone();
    // Rewriting link 1's time (to dodge the chain deadline) is refused. Five seconds later
    // than the signed time: "now" could fall in the same millisecond as the hop.
    let mut body = hop(&token(&r1.body), "a", "b", &child, mandate(10, 2));
    body["request"]["chain"] = json!([{"from": "orchestrator", "to": "a", "depth": 1, "alpha": 0.7, "at": common::now_ms() + 5_000}]);
    let r = http.delegate(&key, body).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    // Omitted, the chain comes from the token.
    let r = http.delegate(&key, hop(&token(&r1.body), "a", "b", &child, mandate(10, 2))).await;
    assert_eq!(r.body["decision"], "allow", "{:?}", r.body);
    // The token's holder is the only delegator it admits.
    let r = http.delegate(&key, hop(&token(&r1.body), "c", "b", &child, mandate(10, 2))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    // An agent's key delegates only as that agent, even with another agent's token.
    let c_key = http.agent_key(&key, "c").await;
    let r = http.tenant(&c_key, Method::POST, "/v1/delegations", Some(hop(&token(&r1.body), "a", "d", &child, mandate(10, 2)))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("speaks for agent"), "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_variants_are_one_agent_and_close_a_cycle() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "Orchestrator", root.clone()).await;
    assert_eq!(grant["agent_id"], "orchestrator");
    let r1 = http.delegate(&key, hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3))).await;
    assert_eq!(r1.body["decision"], "allow", "{:?}", r1.body);
    let child = r1.body["verdict"]["allow"]["child_mandate"].clone();
    // A -> B -> Agent-A: the cycle rule sees one agent.
    let r = http.delegate(&key, hop(&token(&r1.body), "A", "ORCHESTRATOR", &child, mandate(10, 2))).await;
    assert_eq!(r.body["verdict"]["deny"]["code"], 1002, "{:?}", r.body);
    // Ids the canonical form refuses never reach a scope or a trace.
    for bad in ["a ", "a\u{200b}", "a\u{0000}"] {
        let r = http.delegate(&key, hop(&token(&r1.body), "a", bad, &child, mandate(10, 2))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {:?}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_misshapen_requests_change_nothing() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let chain = grant["chain_id"].as_str().unwrap().to_string();
    let long = "x".repeat(100_000);
    let r = http.delegate(&key, hop(&token(&grant), "orchestrator", &long, &root, mandate(100, 3))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let mut body = hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3));
    body["request"]["task"]["id"] = json!(long);
    assert_eq!(http.delegate(&key, body).await.status, StatusCode::BAD_REQUEST);
    let mut body = hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3));
    body["request"] = json!([]);
    assert_eq!(http.delegate(&key, body).await.status, StatusCode::BAD_REQUEST);
    // Nothing held, nothing traced beyond the root grant.
    let tree = http.tenant(&key, Method::GET, &format!("/v1/chains/{chain}/grants"), None).await;
    assert_eq!(tree.body["grants"].as_array().unwrap().len(), 1, "{:?}", tree.body);
    let events = http.tenant(&key, Method::GET, &format!("/v1/chains/{chain}"), None).await;
    assert_eq!(events.body["events"].as_array().unwrap().len(), 1, "{:?}", events.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_node_voids_its_subtree_and_returns_its_budget() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let r1 = http.delegate(&key, hop(&token(&grant), "orchestrator", "a", &root, mandate(600, 3))).await;
    let child = r1.body["verdict"]["allow"]["child_mandate"].clone();
    let r2 = http.delegate(&key, hop(&token(&r1.body), "a", "b", &child, mandate(500, 2))).await;
    assert_eq!(r2.body["decision"], "allow", "{:?}", r2.body);
    let grandchild = r2.body["verdict"]["allow"]["child_mandate"].clone();
    let a_grant = r1.body["grant_id"].as_str().unwrap();
    // Only an operator revokes; the holder of another branch cannot.
    let r = http.tenant(&http.agent_key(&key, "d").await, Method::POST, &format!("/v1/grants/{a_grant}/revoke"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = http.tenant(&http.operator(&key), Method::POST, &format!("/v1/grants/{a_grant}/revoke"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["settled"].as_array().unwrap().len(), 2, "{:?}", r.body);
    // Every descendant token is void at once.
    let r = http.delegate(&key, hop(&token(&r2.body), "b", "c", &grandchild, mandate(10, 1))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("REVOKED"), "{:?}", r.body);
    // The 600 is back at the root: a sibling can take it.
    let r = http.delegate(&key, hop(&token(&grant), "orchestrator", "d", &root, mandate(1_000, 3))).await;
    assert_eq!(r.body["decision"], "allow", "{:?}", r.body);
    audit_sound(&http, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_return_the_rest_up_the_tree_and_settle_the_root_hold() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let r1 = http.delegate(&key, hop(&token(&grant), "orchestrator", "a", &root, mandate(600, 3))).await;
    let a = r1.body["grant_id"].as_str().unwrap().to_string();
    let root_id = grant["grant_id"].as_str().unwrap().to_string();
    // Spending more than was granted is refused; a parent with live children cannot settle.
    let (a_key, o_key) = (http.agent_key(&key, "a").await, http.agent_key(&key, "orchestrator").await);
    let over = http.tenant(&a_key, Method::POST, &format!("/v1/grants/{a}/commit"), Some(json!({"spent": [{"unit": "TOKENS", "amount": 601}]}))).await;
    assert_eq!(over.status, StatusCode::CONFLICT, "{:?}", over.body);
    let early = http.tenant(&o_key, Method::POST, &format!("/v1/grants/{root_id}/commit"), Some(json!({"spent": []}))).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{:?}", early.body);
    // Another agent cannot settle a's grant.
    let foreign = http.tenant(&o_key, Method::POST, &format!("/v1/grants/{a}/commit"), Some(json!({"spent": []}))).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{:?}", foreign.body);
    let ok = http.tenant(&a_key, Method::POST, &format!("/v1/grants/{a}/commit"), Some(json!({"spent": [{"unit": "TOKENS", "amount": 250}]}))).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let g = http.tenant(&key, Method::GET, &format!("/v1/grants/{root_id}"), None).await;
    assert_eq!(g.body["units"][0]["available"], 750, "{:?}", g.body);
    let done = http.tenant(&o_key, Method::POST, &format!("/v1/grants/{root_id}/commit"), Some(json!({"spent": [{"unit": "TOKENS", "amount": 50}]}))).await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert_eq!(done.body["root_reservations"][0]["consumed"], 300, "{:?}", done.body);
    let b = http.balance(&key, "acme", "tenant:acme").await;
    assert_eq!((b["reserved"]["amount"].as_i64(), b["spent"]["amount"].as_i64()), (Some(0), Some(300)), "{b}");
    audit_sound(&http, &key).await;
}

/// `hop` at low risk (maximum depth 5 in the default policy).
fn low(mut body: Value) -> Value {
    body["request"]["task"]["risk"] = json!("low");
    body
}

/// A first hop with no token, the way a chain was opened before root grants.
fn rootless(from: &str, to: &str, parent: &Value, requested: Value) -> Value {
    let mut body = hop("x", from, to, parent, requested);
    body.as_object_mut().unwrap().remove("token");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_at_its_depth_limit_cannot_continue_as_a_new_chain() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 6);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let (mut token, mut parent, mut from) = (token(&grant), root, "orchestrator".to_string());
    for (i, to) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        let depth = parent["remaining_depth"].as_u64().unwrap().saturating_sub(1) as u8;
        let r = http.delegate(&key, low(hop(&token, &from, to, &parent, mandate(900 - 100 * i as u64, depth)))).await;
        assert_eq!(r.body["decision"], "allow", "hop {}: {:?}", i + 1, r.body);
        token = r.body["child_token"].as_str().unwrap().to_string();
        parent = r.body["verdict"]["allow"]["child_mandate"].clone();
        from = to.to_string();
    }
    // e holds depth 5 of 5: the sixth hop with its token is stopped by the rules.
    let r = http.delegate(&key, low(hop(&token, "e", "f", &parent, mandate(10, 0)))).await;
    assert_ne!(r.body["decision"], "allow", "{:?}", r.body);
    // Re-rooting: e's key opens a "new" chain at depth 1 with a mandate it makes up.
    let r = http.delegate(&key, low(rootless("e", "f", &mandate(1_000, 5), mandate(10, 4)))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("root grant"), "{:?}", r.body);
    // Nor can e grant itself a root.
    let e_key = http.agent_key(&key, "e").await;
    let r = http.tenant(&e_key, Method::POST, "/v1/root-grants", Some(json!({"agent_id": "e", "mandate": mandate(10, 4)}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    audit_sound(&http, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_cannot_close_through_a_new_chain() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let r1 = http.delegate(&key, hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3))).await;
    let m1 = r1.body["verdict"]["allow"]["child_mandate"].clone();
    let r2 = http.delegate(&key, hop(&token(&r1.body), "a", "b", &m1, mandate(50, 2))).await;
    assert_eq!(r2.body["decision"], "allow", "{:?}", r2.body);
    let m2 = r2.body["verdict"]["allow"]["child_mandate"].clone();
    // b -> orchestrator with b's token: a cycle, refused by the rules.
    let r = http.delegate(&key, hop(&token(&r2.body), "b", "orchestrator", &m2, mandate(10, 1))).await;
    assert_eq!(r.body["verdict"]["deny"]["code"], 1002, "{:?}", r.body);
    // The same hop as the first hop of a fresh chain: refused before any rule runs.
    let r = http.delegate(&key, rootless("b", "orchestrator", &m2, mandate(10, 1))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("root grant"), "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mandate_listing_a_unit_twice_is_refused_with_no_hold() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let mut twice = mandate(100, 3);
    twice["budgets"] = json!([{"unit": "TOKENS", "amount": 100}, {"unit": "TOKENS", "amount": 100}]);
    let r = http.delegate(&key, hop(&token(&grant), "orchestrator", "a", &root, twice.clone())).await;
    assert_eq!((r.body["decision"].as_str(), r.body["verdict"]["deny"]["code"].as_u64()), (Some("deny"), Some(2011)), "{:?}", r.body);
    let tree = http.tenant(&key, Method::GET, &format!("/v1/chains/{}/grants", grant["chain_id"].as_str().unwrap()), None).await;
    assert_eq!(tree.body["grants"].as_array().unwrap().len(), 1, "no child grant: {:?}", tree.body);
    // A root grant listing a unit twice is refused before anything is held.
    let r = http.tenant(&http.operator(&key), Method::POST, "/v1/root-grants", Some(json!({"agent_id": "orchestrator", "mandate": twice}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(http.balance(&key, "acme", "tenant:acme").await["reserved"]["amount"], 1_000);
    audit_sound(&http, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_variants_of_an_agent_are_one_agent_or_refused() {
    let (_dir, _gw, http, key) = setup().await;
    http.register(&key, "agent-\u{e9}", 720.0).await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let r1 = http.delegate(&key, hop(&token(&grant), "orchestrator", "agent-\u{e9}", &root, mandate(100, 3))).await;
    assert_eq!(r1.body["decision"], "allow", "{:?}", r1.body);
    let m1 = r1.body["verdict"]["allow"]["child_mandate"].clone();
    let r2 = http.delegate(&key, hop(&token(&r1.body), "agent-\u{e9}", "b", &m1, mandate(50, 2))).await;
    assert_eq!(r2.body["decision"], "allow", "{:?}", r2.body);
    let m2 = r2.body["verdict"]["allow"]["child_mandate"].clone();
    // NFD (e + COMBINING ACUTE) and fullwidth letters are agent-é: the hop back is a cycle.
    for same in ["agent-e\u{301}", "\u{ff41}\u{ff47}\u{ff45}\u{ff4e}\u{ff54}-\u{e9}", "AGENT-\u{c9}"] {
        let r = http.delegate(&key, hop(&token(&r2.body), "b", same, &m2, mandate(10, 1))).await;
        assert_eq!(r.body["verdict"]["deny"]["code"], 1002, "{same:?}: {:?}", r.body);
    }
    // A Cyrillic а (U+0430) in a Latin id is refused as mixed-script, never a new agent.
    let r = http.delegate(&key, hop(&token(&r2.body), "b", "\u{430}gent-\u{e9}", &m2, mandate(10, 1))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("agent-id-mixed-script (1014)"), "{:?}", r.body);
}

/// The "JSON arrays are accepted where objects are expected", inside the delegation
/// request: serde reads a struct positionally from an array, and `request` is parsed from a
/// JSON value after the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_inside_a_delegation_request_are_refused() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let mut task = hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3));
    task["request"]["task"] = json!(["t-array", "payment.refund", "medium", 1_000, "acme", true]);
    let mut requested = hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3));
    requested["request"]["requested_mandate"] =
        json!([1_000_000_000u64, ["payment.*"], ["acme"], [["TOKENS", 100]], 3, common::expiry()]);
    let mut to = hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3));
    to["request"]["to"] = json!(["a", 0]);
    for (what, body, path) in [("task", task, "$.request.task"), ("mandate", requested, "$.request.requested_mandate"), ("to", to, "$.request.to")] {
        let r = http.delegate(&key, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {:?}", r.body);
        assert!(r.body["message"].as_str().unwrap().contains(path), "{what}: {:?}", r.body);
    }
    let tree = http.tenant(&key, Method::GET, &format!("/v1/chains/{}/grants", grant["chain_id"].as_str().unwrap()), None).await;
    assert_eq!(tree.body["grants"].as_array().unwrap().len(), 1, "nothing carved: {:?}", tree.body);
}

/// Found by host/gateway/attacks/bypasses.py: a registered agent's trust was moved by an
/// outcome report from any agent key of the tenant, with the magnitude it chose, so one
/// `success` of 1000 lifted a T1 agent to T7 and a high-risk hop to it was allowed instead of
/// escalated (the caller-sent trust score of issue 14 through another door). Now an outcome is
/// reported by an operator, an approver or the chain's originator, once per chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_raise_its_own_trust_with_an_outcome_report() {
    let (_dir, _gw, http, key) = setup().await;
    http.register(&key, "low", 300.0).await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let mut first = hop(&token(&grant), "orchestrator", "low", &root, mandate(100, 3));
    first["request"]["task"]["risk"] = json!("low");
    assert_eq!(http.delegate(&key, first).await.body["decision"], "allow");
    let mut risky = hop(&token(&grant), "orchestrator", "low", &root, mandate(100, 3));
    risky["request"]["task"]["risk"] = json!("high");
    risky["request"]["task"]["id"] = json!("risky-1");
    assert_eq!(http.delegate(&key, risky.clone()).await.body["decision"], "escalate");
    let low_key = http.agent_key(&key, "low").await;
    let chain = grant["chain_id"].as_str().unwrap();
    let report = |k: String, outcome: &'static str| {
        let http = &http;
        let path = format!("/v1/chains/{chain}/outcome");
        async move { http.tenant(&k, Method::POST, &path, Some(json!({"outcome": outcome, "magnitude": 1000.0}))).await }
    };
    let own = report(low_key.clone(), "success").await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "a delegate reporting on its own work: {:?}", own.body);
    // A key of the tenant that is not the originator (here the provisioning agent key) either.
    assert_eq!(report(key.clone(), "success").await.status, StatusCode::FORBIDDEN);
    let t = http.tenant(&http.operator(&key), Method::GET, "/v1/agents/low/trust", None).await;
    assert!(t.body["score"].as_f64().unwrap() < 500.0, "its own report moved it to {:?}", t.body);
    risky["request"]["task"]["id"] = json!("risky-2");
    assert_ne!(http.delegate(&key, risky).await.body["decision"], "allow");
    // The originator reports once; a second report of its own is refused, and so is one after
    // a human's (the_originator_cannot_preempt_a_human_outcome_report covers the other order).
    let orchestrator = http.agent_key(&key, "orchestrator").await;
    let first = report(orchestrator.clone(), "failure").await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert!(first.body["receipt"].is_object());
    let r = report(orchestrator, "success").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    let events = http.tenant(&key, Method::GET, &format!("/v1/chains/{chain}"), None).await;
    let reports: Vec<&Value> = events.body["events"].as_array().unwrap().iter().filter(|e| e["decision"] == "outcome").collect();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["delegator"], "agent:orchestrator", "the reporter is the key's principal");
}

/// An adversarial review found that the chain's originator could report a success of 1000
/// right after its first hop and so take the chain's one report: every agent of the chain
/// gained trust, and the operator's or approver's later `failure` was refused 409 for good.
/// A human's report may now follow the originator's, once. Fails on `6cf5ba8` (409).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_originator_cannot_preempt_a_human_outcome_report() {
    let (_dir, _gw, http, key) = setup().await;
    http.register(&key, "low", 300.0).await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let mut first = hop(&token(&grant), "orchestrator", "low", &root, mandate(100, 3));
    first["request"]["task"]["risk"] = json!("low");
    assert_eq!(http.delegate(&key, first).await.body["decision"], "allow");
    let chain = grant["chain_id"].as_str().unwrap();
    let report = |k: String, outcome: &'static str| {
        let http = &http;
        let path = format!("/v1/chains/{chain}/outcome");
        async move { http.tenant(&k, Method::POST, &path, Some(json!({"outcome": outcome, "magnitude": 1000.0}))).await }
    };
    let trust = || async { http.tenant(&http.operator(&key), Method::GET, "/v1/agents/low/trust", None).await.body["score"].as_f64().unwrap() };
    let orchestrator = http.agent_key(&key, "orchestrator").await;
    let own = report(orchestrator.clone(), "success").await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
    let lifted = trust().await;
    let human = report(http.operator(&key), "failure").await;
    assert_eq!(human.status, StatusCode::OK, "an operator's report after the originator's: {:?}", human.body);
    assert!(trust().await < lifted, "the failure's penalty applies");
    for again in [http.operator(&key), orchestrator] {
        assert_eq!(report(again, "success").await.status, StatusCode::CONFLICT, "each reports once");
    }
}

/// Found by host/gateway/attacks/bypasses.py: issue 14 asks that "the same token and request
/// (or the same idempotency key) returns the original response, with no second hold or
/// token". An explicit `X-Idempotency-Key` used to replace the implicit (token, request) key,
/// so the replay with a fresh header each time got five allows, five holds and five
/// child tokens (each carved from the parent's escrow, so never beyond its grant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_a_new_idempotency_key_returns_the_original_response() {
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let body = hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3));
    let orchestrator = http.agent_key(&key, "orchestrator").await;
    let mut responses = Vec::new();
    for i in 0..5 {
        let k = format!("replay-{i}");
        let h = [("x-cycles-api-key", orchestrator.as_str()), ("x-idempotency-key", k.as_str())];
        let r = http.call(Method::POST, "/v1/delegations", &h, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        responses.push(r.body);
    }
    assert!(responses.iter().all(|r| r == &responses[0]), "five different responses to one request");
    let plain = http.delegate(&key, body.clone()).await;
    assert_eq!(plain.body, responses[0], "without a key: the original response");
    let tree = http.tenant(&key, Method::GET, &format!("/v1/chains/{}/grants", grant["chain_id"].as_str().unwrap()), None).await;
    assert_eq!(tree.body["grants"].as_array().unwrap().len(), 2, "one root, one child: {:?}", tree.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_twins_of_one_delegation_get_one_grant_and_one_response() {
    // Twins race: all read their facts before the first commits, so each finds out at its
    // idempotency insert that another got there first, and answers with that one's response.
    let (_dir, _gw, http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let body = hop(&token(&grant), "orchestrator", "a", &root, mandate(100, 3));
    let orchestrator = http.agent_key(&key, "orchestrator").await;
    let mut twins = Vec::new();
    for i in 0..24 {
        let (http, body, agent) = (http.clone(), body.clone(), orchestrator.clone());
        twins.push(tokio::spawn(async move {
            // Every third twin names its own idempotency key: a fresh key is still a replay.
            let k = format!("twin-{i}");
            let mut headers = vec![("x-cycles-api-key", agent.as_str())];
            if i % 3 == 0 {
                headers.push(("x-idempotency-key", k.as_str()));
            }
            http.call(Method::POST, "/v1/delegations", &headers, Some(body)).await
        }));
    }
    let mut bodies = Vec::new();
    for t in twins {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        bodies.push(r.body);
    }
    assert_eq!(bodies[0]["decision"], "allow", "{:?}", bodies[0]);
    assert!(bodies.iter().all(|b| b == &bodies[0]), "twins got different responses");
    let tree = http.tenant(&key, Method::GET, &format!("/v1/chains/{}/grants", grant["chain_id"].as_str().unwrap()), None).await;
    assert_eq!(tree.body["grants"].as_array().unwrap().len(), 2, "one root, one child: {:?}", tree.body);
    let chain = http.tenant(&key, Method::GET, &format!("/v1/chains/{}", grant["chain_id"].as_str().unwrap()), None).await;
    let allows = chain.body["events"].as_array().unwrap().iter().filter(|e| e["decision"] == "allow").count();
    assert_eq!(allows, 1, "one allow in the trace: {:?}", chain.body);
    audit_sound(&http, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_twins_of_an_open_root_get_one_chain_and_one_response() {
    // Found by review: a twin refused by a write (here the one-root-per-chain index) after
    // the first twin committed must answer with the first one's response, not a 409.
    let (dir, _gw, http, key) = setup().await;
    let r = http.tenant(&http.operator(&key), Method::PUT, "/v1/authority/settings", Some(json!({"open_roots": true}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let mut body = rootless("orchestrator", "a", &mandate(1_000, 4), mandate(100, 3));
    body["chain_id"] = json!("0123456789abcdef0123456789abcdef");
    let agent = http.agent_key(&key, "orchestrator").await;
    // Hold the store's write lock while the twins arrive: each reads its facts (WAL readers
    // are not blocked) and finds no stored answer, and all their writes land in one batch
    // once the lock is released. (On Redis the twins race for the tenant's lock instead.)
    let lock = common::test_store().is_none().then(|| {
        let lock = rusqlite::Connection::open(dir.path().join("sbd.sqlite3")).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        lock
    });
    let mut twins = Vec::new();
    for _ in 0..8 {
        let (http, body, agent) = (http.clone(), body.clone(), agent.clone());
        twins.push(tokio::spawn(async move { http.call(Method::POST, "/v1/delegations", &[("x-cycles-api-key", agent.as_str())], Some(body)).await }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    if let Some(lock) = lock {
        lock.execute_batch("COMMIT").unwrap();
    }
    let mut bodies = Vec::new();
    for t in twins {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        bodies.push(r.body);
    }
    assert_eq!(bodies[0]["decision"], "allow", "{:?}", bodies[0]);
    assert!(bodies.iter().all(|b| b == &bodies[0]), "twins got different responses");
    let tree = http.tenant(&key, Method::GET, "/v1/chains/0123456789abcdef0123456789abcdef/grants", None).await;
    assert_eq!(tree.body["grants"].as_array().unwrap().len(), 2, "one root, one child: {:?}", tree.body);
    audit_sound(&http, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_stored_under_the_former_id_form_is_still_found() {
    // A store from before time-ordered grant ids keeps a grant under its bare block hash; the
    // token issued then must keep working after the upgrade.
    if common::sqlite_only("the former id form exists only in SQLite stores from before time-ordered ids") {
        return;
    }
    let (dir, gw, mut http, key) = setup().await;
    let root = mandate(1_000, 4);
    let grant = http.root_grant(&key, "orchestrator", root.clone()).await;
    let root_token = token(&grant);
    gw.stop().await;
    let tenant = sbd_bundle::token::UnverifiedToken::decode(&root_token).unwrap().blocks().last().unwrap().tenant.clone();
    let authority = sbd_gateway::tokens::TokenAuthority::load_or_create(dir.path(), None).unwrap();
    let verified = authority.verify(&root_token, &tenant, common::now_ms()).unwrap();
    let (current, former) = (sbd_gateway::tokens::grant_id(&verified), sbd_gateway::tokens::block_hash_id(&verified));
    assert_eq!(grant["grant_id"], current.as_str());
    let db = rusqlite::Connection::open(dir.path().join("sbd.sqlite3")).unwrap();
    db.execute_batch(&format!(
        "UPDATE grants SET grant_id = '{former}' WHERE grant_id = '{current}'; \
         UPDATE grant_units SET grant_id = '{former}' WHERE grant_id = '{current}';"
    ))
    .unwrap();
    drop(db);

    let gw = common::gateway(dir.path()).await;
    http.base = gw.url();
    let r = http.delegate(&key, hop(&root_token, "orchestrator", "a", &root, mandate(100, 3))).await;
    assert_eq!(r.body["decision"], "allow", "{:?}", r.body);
    assert_eq!(r.body["parent_grant_id"], former.as_str(), "carved from the grant under its former id");
    let tree = http.tenant(&key, Method::GET, &format!("/v1/chains/{}/grants", grant["chain_id"].as_str().unwrap()), None).await;
    assert_eq!(tree.body["grants"].as_array().unwrap().len(), 2, "{:?}", tree.body);
    audit_sound(&http, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_roots_chain_id_is_its_tenants_own() {
    // Found by review: chain ids were unique across all tenants, so a 409 on an open root told
    // a caller that some other tenant had a chain of that id, and a tenant could take an id
    // another tenant was about to use. Each tenant now has its own namespace of chain ids.
    let (_dir, _gw, http, acme) = setup().await;
    let globex = http.authority_tenant("globex", 1_000_000).await;
    for key in [&acme, &globex] {
        let r = http.tenant(&http.operator(key), Method::PUT, "/v1/authority/settings", Some(json!({"open_roots": true}))).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let id = "00112233445566778899aabbccddeeff";
    let mut body = rootless("orchestrator", "a", &mandate(1_000, 4), mandate(100, 3));
    body["chain_id"] = json!(id);
    for key in [&globex, &acme] {
        let r = http.delegate(key, body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "the same chain id in another tenant: {:?}", r.body);
        assert_eq!((r.body["decision"].as_str(), r.body["chain_id"].as_str()), (Some("allow"), Some(id)), "{:?}", r.body);
    }
    // Each tenant sees its own chain, and within a tenant the id is still never reused.
    for key in [&acme, &globex] {
        let tree = http.tenant(key, Method::GET, &format!("/v1/chains/{id}/grants"), None).await;
        assert_eq!(tree.body["grants"].as_array().map(Vec::len), Some(2), "one root, one child: {:?}", tree.body);
        let mut again = body.clone();
        again["request"]["task"]["id"] = json!("another-task");
        let r = http.delegate(key, again).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        audit_sound(&http, key).await;
    }
}

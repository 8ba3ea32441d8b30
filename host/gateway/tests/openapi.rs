//! The committed OpenAPI document is what the server serves, and every operation it
//! declares is routed (not answered by the 404 fallback or a 405).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use reqwest::{Method, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_document_equals_the_committed_file_and_every_operation_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = common::Http::new(gw.url());
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
    let served = http.client.get(format!("{}/openapi.yaml", gw.url())).send().await.unwrap().text().await.unwrap();
    assert_eq!(served, committed);

    let ops = sbd_gateway::openapi::documented_operations();
    assert!(ops.len() >= 35, "{} operations parsed", ops.len());
    for (method, path) in ops {
        let concrete = path
            .replace("{reservation_id}", "rsv_x")
            .replace("{tenant_id}", "t")
            .replace("{key_id}", "key_x")
            .replace("{chain_id}", "chn_x")
            .replace("{agent_id}", "a")
            .replace("{escalation_id}", "esc_x")
            .replace("{grant_id}", "grant_x")
            .replace("{event_id}", "evt_x")
            .replace("{subscription_id}", "whsub_x");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = http.call(m, &concrete, &[], None).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is not routed");
        if r.status == StatusCode::NOT_FOUND {
            assert_ne!(r.body["message"], "no such endpoint", "{method} {path} is not routed");
        }
    }
    // An undocumented path is answered by the fallback.
    let r = http.call(Method::GET, "/v1/nope", &[], None).await;
    assert_eq!((r.status, r.body["message"].as_str()), (StatusCode::NOT_FOUND, Some("no such endpoint")));

    // Metrics and health.
    let h = http.call(Method::GET, "/healthz", &[], None).await;
    assert_eq!(h.body["status"], "ok");
    let m = http.client.get(format!("{}/metrics", gw.url())).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("sbd_policy_active{config_digest="), "{m}");
    assert!(m.contains("sbd_http_request_seconds_bucket"), "{m}");
    gw.stop().await;
}

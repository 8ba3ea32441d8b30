//! Policies over HTTP in signed-bundle mode: upload (verify, stage), see the active one,
//! roll forward (rollback check, canary, swap); refusals change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use common::Http;
use reqwest::{Method, StatusCode};
use sbd_bundle::bundle::{self, BundleSources};
use sbd_bundle::{KeyPair, TrustStore};
use serde_json::{json, Value};

const DEFAULT_TOML: &str = include_str!("../../../policies/default.toml");
const CANARY: &[u8] = include_bytes!("../../../policies/canary/default.json");

fn signed_bundle(root: &Path, version: &str, key: &KeyPair) -> std::path::PathBuf {
    let config_toml = DEFAULT_TOML.replacen("version = \"0.1.0\"", &format!("version = \"{version}\""), 1);
    let sources = BundleSources {
        config_toml,
        weights: None,
        component: sbd_runtime::DEFAULT_COMPONENT.to_vec(),
        canary_json: CANARY.to_vec(),
        key_id: key.id(),
        created_at: 1_790_000_000_000,
    };
    let out = root.join(format!("bundle-{version}"));
    bundle::build(&sources, &out).expect("builds");
    bundle::sign(&out, key).expect("signs");
    out
}

fn upload_body(dir: &Path) -> Value {
    let mut files = BTreeMap::new();
    for item in std::fs::read_dir(dir).unwrap() {
        let item = item.unwrap();
        let bytes = std::fs::read(item.path()).unwrap();
        files.insert(item.file_name().to_string_lossy().into_owned(), base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    json!({"files": files})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_activate_and_refuse_signed_bundles_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let publisher = KeyPair::from_secret(&[7; 32]);
    let stranger = KeyPair::from_secret(&[9; 32]);
    let trust_path = work.path().join("trust.json");
    TrustStore::with_keys([&publisher.public()]).write(&trust_path).unwrap();
    let v1 = signed_bundle(work.path(), "0.1.0", &publisher);
    let v2 = signed_bundle(work.path(), "0.2.0", &publisher);
    let bad = signed_bundle(work.path(), "0.3.0", &stranger);

    let mut config = common::config(dir.path());
    config.bundle_trust = Some(trust_path.clone());
    config.bundle = Some(v1.clone());
    let gw = sbd_gateway::serve::start(config).await.expect("starts from the signed bundle");
    let http = Http::new(gw.url());
    let active = http.admin(Method::GET, "/v1/policies/active", None).await;
    assert_eq!(active.body["active"]["version"], "0.1.0", "{:?}", active.body);

    // Upload v2: verified and staged; v1 still serves.
    let up = http.admin(Method::POST, "/v1/policies", Some(upload_body(&v2))).await;
    assert_eq!(up.status, StatusCode::OK, "{:?}", up.body);
    assert_eq!(up.body["staged"]["version"], "0.2.0");
    assert_eq!(http.call(Method::GET, "/healthz", &[], None).await.body["policy"]["version"], "0.1.0");
    // Roll forward: v2 serves, and decisions carry its version.
    let rf = http.admin(Method::POST, "/v1/policies/roll-forward", None).await;
    assert_eq!(rf.status, StatusCode::OK, "{:?}", rf.body);
    assert_eq!(rf.body["replaced"]["version"], "0.1.0");
    assert_eq!(http.call(Method::GET, "/healthz", &[], None).await.body["policy"]["version"], "0.2.0");
    let m = http.client.get(format!("{}/metrics", gw.url())).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("version=\"0.2.0\""), "{m}");

    // A signature by an untrusted key, a tampered file, a rollback: refused, v2 keeps serving.
    let r = http.admin(Method::POST, "/v1/policies", Some(upload_body(&bad))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let mut tampered = upload_body(&v2);
    let toml = DEFAULT_TOML.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1).replacen("max_depth = 5", "max_depth = 9", 1);
    tampered["files"]["policy.toml"] = json!(base64::engine::general_purpose::STANDARD.encode(toml));
    let r = http.admin(Method::POST, "/v1/policies", Some(tampered)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let r = http.admin(Method::POST, "/v1/policies", Some(upload_body(&v1))).await;
    assert_eq!(r.status, StatusCode::OK, "v1 still verifies: {:?}", r.body);
    let r = http.admin(Method::POST, "/v1/policies/roll-forward", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "a rollback is refused: {:?}", r.body);
    let r = http.admin(Method::POST, "/v1/policies/roll-forward", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "nothing is staged any more: {:?}", r.body);
    assert_eq!(r.body["error"], "INVALID_REQUEST", "{:?}", r.body);
    assert_eq!(http.call(Method::GET, "/healthz", &[], None).await.body["policy"]["version"], "0.2.0");
    let r = http.admin(Method::POST, "/v1/policies", Some(json!({"files": {"manifest.json": "%%%"}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Tenants cannot manage policies, operators included: the bundle is gateway-wide.
    let key = http.provision("acme").await;
    for k in [key.clone(), http.operator(&key)] {
        let r = http.tenant(&k, Method::POST, "/v1/policies/roll-forward", None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
        assert_eq!(r.body["details"]["required_permission"], "admin:policies:write");
    }
    gw.stop().await;

    // A restart with no bundle configured starts from the last-known-good (v2).
    let mut config = common::config(dir.path());
    config.bundle_trust = Some(trust_path);
    let gw = sbd_gateway::serve::start(config).await.expect("starts from the last-known-good");
    let http = Http::new(gw.url());
    assert_eq!(http.call(Method::GET, "/healthz", &[], None).await.body["policy"]["version"], "0.2.0");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bundle_mode_the_policy_endpoints_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = Http::new(gw.url());
    let r = http.admin(Method::GET, "/v1/policies/active", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body["message"].as_str().unwrap().contains("not enabled"));
    gw.stop().await;
}

//! `sbd trace verify`: an export sealed with the gateway's trace functions verifies with the
//! right public key; an edited, deleted, reordered or re-signed one, or the wrong key, exits
//! non-zero naming the first bad event.
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::Path;
use std::process::{Command, Output};

use sbd_bundle::KeyPair;
use sbd_e2e::ScratchDir;
use sbd_gateway::traces::{self, Record};
use serde_json::Value;

fn sbd_verify(export: &Path, key: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sbd"))
        .args(["trace", "verify", "--export"])
        .arg(export)
        .arg("--public-key")
        .arg(key)
        .output()
        .expect("run sbd")
}

/// A sealed chain of `n` events of tenant `acme`, chain `c1`, seqs 10, 20, ...
fn sealed(n: i64, key: &KeyPair) -> Value {
    let mut prev = [0u8; 32];
    let mut records = Vec::new();
    let mut head = None;
    for pos in 1..=n {
        let mut r = Record {
            seq: pos * 10,
            pos,
            tenant: "acme".into(),
            chain_id: "c1".into(),
            delegator: format!("agent-{pos}"),
            delegate: format!("agent-{}", pos + 1),
            depth: pos,
            at_ms: 1_000 + pos,
            decision: "allow".into(),
            reason_code: None,
            policy_version: "default@0.1.0".into(),
            body: format!("{{\"task\":{{\"id\":\"t{pos}\"}}}}"),
            prev_hash: String::new(),
            hash: String::new(),
            key_id: String::new(),
            signature: String::new(),
            seal_id: None,
            leaf: None,
        };
        head = Some(traces::seal(&mut r, &prev, key));
        prev = traces::event_hash(&prev, &r);
        records.push(r);
    }
    let export = traces::export(&records, head, traces::Inclusions::default(), "acme", "c1", &key.public());
    serde_json::to_value(&export).expect("an export serialises")
}

fn check(dir: &ScratchDir, name: &str, export: &Value, key: &Path) -> (bool, String, String) {
    let path = dir.write(name, &serde_json::to_string_pretty(export).expect("json"));
    let out = sbd_verify(&path, key);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sbd_trace_verify_accepts_a_whole_chain_and_names_the_first_bad_event() {
    let dir = ScratchDir::new("trace-verify");
    let gateway = KeyPair::from_secret(&[5; 32]);
    let key = dir.write("gateway.pub", &gateway.public().to_file_text());
    let export = sealed(4, &gateway);
    assert_eq!(export["integrity"], "ok");

    let (ok, stdout, stderr) = check(&dir, "good.json", &export, &key);
    assert!(ok, "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!((report["ok"].as_bool(), report["events"].as_i64()), (Some(true), Some(4)));

    // Edited (record and readable view both changed): named at seq 20.
    let mut edited = export.clone();
    edited["proof"]["records"][1]["delegate"] = "mallory".into();
    edited["events"][1]["delegate"] = "mallory".into();
    let (ok, stdout, stderr) = check(&dir, "edited.json", &edited, &key);
    assert!(!ok);
    assert!(stderr.contains("broken at seq 20 (position 2): edited"), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["break"]["seq"], 20);

    // Only the readable view changed: named too.
    let mut view = export.clone();
    view["events"][2]["decision"] = "deny".into();
    let (ok, _, stderr) = check(&dir, "view.json", &view, &key);
    assert!(!ok && stderr.contains("broken at seq 30 (position 3): view"), "{stderr}");

    // Deleted: the event after the gap.
    let mut deleted = export.clone();
    deleted["proof"]["records"].as_array_mut().expect("records").remove(1);
    deleted["events"].as_array_mut().expect("events").remove(1);
    let (ok, _, stderr) = check(&dir, "deleted.json", &deleted, &key);
    assert!(!ok && stderr.contains("broken at seq 30 (position 2): deleted"), "{stderr}");

    // Reordered.
    let mut reordered = export.clone();
    reordered["proof"]["records"].as_array_mut().expect("records").swap(1, 2);
    reordered["events"].as_array_mut().expect("events").swap(1, 2);
    let (ok, _, stderr) = check(&dir, "reordered.json", &reordered, &key);
    assert!(!ok && stderr.contains("broken at seq 30 (position 2): reordered"), "{stderr}");

    // Truncated: the signed head counts four.
    let mut truncated = export.clone();
    truncated["proof"]["records"].as_array_mut().expect("records").pop();
    truncated["events"].as_array_mut().expect("events").pop();
    let (ok, _, stderr) = check(&dir, "truncated.json", &truncated, &key);
    assert!(!ok && stderr.contains("broken at position 4: truncated"), "{stderr}");

    // No head signature.
    let mut headless = export.clone();
    headless["proof"]["head"] = Value::Null;
    let (ok, _, stderr) = check(&dir, "headless.json", &headless, &key);
    assert!(!ok && stderr.contains(": head:"), "{stderr}");

    // Re-sealed with another key (a forger's): refused against the gateway's key.
    let forger = KeyPair::from_secret(&[6; 32]);
    let (ok, _, stderr) = check(&dir, "forged.json", &sealed(4, &forger), &key);
    assert!(!ok && stderr.contains("broken at seq 10 (position 1): unsigned"), "{stderr}");
    // The export's own key is never trusted: the forged export names the forger's key.
    assert_eq!(sealed(1, &forger)["proof"]["key_id"], forger.id().to_string());
}

//! End-to-end tests of `sbd keygen`, `sbd bundle ...` and `sbd token ...`: the whole publishing
//! flow, each refusal as one `error: ` line naming the cause, the last-known-good surviving a
//! refused update, and a token chain issued hop by hop.
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sbd_e2e::{NOW, ScratchDir, allowed_request};
use serde_json::Value;

fn sbd<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_sbd")).args(args).output().expect("run sbd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

/// Runs `sbd args`, expects success, returns stdout as JSON.
fn succeed(args: &[&str]) -> Value {
    let output = sbd(args);
    assert!(
        output.status.success(),
        "sbd {args:?}: status {:?}, stderr:\n{}",
        output.status,
        text(&output.stderr)
    );
    serde_json::from_str(&text(&output.stdout))
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(&output.stdout)))
}

/// Runs `sbd args`, expects exit status 1 and one `error: ` line mentioning every `mention`.
fn fail(args: &[&str], mentions: &[&str]) -> String {
    let output = sbd(args);
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "sbd {args:?} should fail; stderr:\n{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for mention in mentions {
        assert!(lines[0].contains(mention), "stderr does not mention `{mention}`:\n{err}");
    }
    err
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// The default policy at another version, written next to the others.
fn policy_at(dir: &Path, version: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("policies/default.toml")).expect("default.toml");
    let path = dir.join(format!("policy-{version}.toml"));
    std::fs::write(&path, text.replacen("version = \"0.1.0\"", &format!("version = \"{version}\""), 1))
        .expect("write");
    path
}

#[test]
fn keygen_build_sign_verify_inspect_activate() {
    let scratch = ScratchDir::new("cli-bundle");
    let dir = scratch.path();
    let (trust, state, canary) =
        (dir.join("trust.json"), dir.join("state"), root().join("policies/canary/default.json"));
    let key = succeed(&["keygen", "--out", p(&dir.join("publisher")), "--trust-store", p(&trust)]);
    let key_id = key["key_id"].as_str().expect("key id").to_string();
    succeed(&["keygen", "--out", p(&dir.join("next"))]);
    fail(&["keygen", "--out", p(&dir.join("publisher"))], &["publisher"]);

    // Build with the public key (unsigned), then sign with the secret key.
    let v1 = dir.join("v1");
    let policy_v1 = policy_at(dir, "1.0.0");
    let built = succeed(&[
        "bundle",
        "build",
        "--policy",
        p(&policy_v1),
        "--canary",
        p(&canary),
        "--key",
        p(&dir.join("publisher.pub")),
        "--out",
        p(&v1),
        "--created-at",
        "1790000000000",
    ]);
    assert_eq!((built["version"].as_str(), built["signed"].as_bool()), (Some("1.0.0"), Some(false)));
    fail(&["bundle", "verify", "--bundle", p(&v1), "--trust-store", p(&trust)], &["v1", "not signed"]);
    succeed(&["bundle", "sign", "--bundle", p(&v1), "--key", p(&dir.join("publisher.key"))]);
    let verified = succeed(&["bundle", "verify", "--bundle", p(&v1), "--trust-store", p(&trust)]);
    assert_eq!(verified["signed_by"], serde_json::json!([key_id]));
    assert_eq!(verified["canary_cases_passed"].as_u64(), Some(8));
    let inspected = succeed(&["bundle", "inspect", "--bundle", p(&v1), "--trust-store", p(&trust)]);
    assert_eq!(inspected["manifest"]["name"].as_str(), Some("default"));
    assert_eq!(inspected["verification"]["ok"].as_bool(), Some(true));

    // A key the trust store does not hold; a changed byte in the component.
    let stranger = dir.join("stranger");
    let policy_v2 = policy_at(dir, "1.1.0");
    succeed(&[
        "bundle",
        "build",
        "--policy",
        p(&policy_v2),
        "--canary",
        p(&canary),
        "--key",
        p(&dir.join("next.key")),
        "--out",
        p(&stranger),
    ]);
    fail(
        &["bundle", "verify", "--bundle", p(&stranger), "--trust-store", p(&trust)],
        &["no signature is by a trusted key"],
    );
    let v2 = dir.join("v2");
    succeed(&[
        "bundle",
        "build",
        "--policy",
        p(&policy_v2),
        "--canary",
        p(&canary),
        "--key",
        p(&dir.join("publisher.key")),
        "--out",
        p(&v2),
    ]);
    let tampered = dir.join("tampered");
    std::fs::create_dir_all(&tampered).expect("mkdir");
    for item in std::fs::read_dir(&v2).expect("read") {
        let item = item.expect("entry");
        std::fs::copy(item.path(), tampered.join(item.file_name())).expect("copy");
    }
    let mut component = std::fs::read(tampered.join("component.wasm")).expect("read");
    component[500] ^= 0x10;
    std::fs::write(tampered.join("component.wasm"), component).expect("write");
    fail(
        &["bundle", "verify", "--bundle", p(&tampered), "--trust-store", p(&trust)],
        &["component.wasm", "changed"],
    );

    // Activation: v1, then v2; the tampered copy and a rollback to v1 are refused and v2 stays.
    let activate = |bundle: &Path| -> Vec<String> {
        ["bundle", "activate", "--bundle", p(bundle), "--state-dir", p(&state), "--trust-store", p(&trust)]
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let run = |args: Vec<String>| succeed(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(run(activate(&v1))["active"]["version"].as_str(), Some("1.0.0"));
    assert_eq!(run(activate(&v2))["active"]["version"].as_str(), Some("1.1.0"));
    assert_eq!(run(activate(&v2))["unchanged"].as_bool(), Some(true));
    let args = activate(&tampered);
    fail(&args.iter().map(String::as_str).collect::<Vec<_>>(), &["component.wasm", "1.1.0 stays active"]);
    let args = activate(&v1);
    fail(&args.iter().map(String::as_str).collect::<Vec<_>>(), &["rollback refused", "1.1.0 stays active"]);
    let lkg = succeed(&["bundle", "inspect", "--bundle", p(&state.join("active"))]);
    assert_eq!(lkg["manifest"]["version"].as_str(), Some("1.1.0"));

    // The watcher, one pass: a newer bundle activates, an unsigned one is reported refused.
    let watched = dir.join("watched");
    std::fs::create_dir_all(&watched).expect("mkdir");
    let policy_v3 = policy_at(dir, "1.2.0");
    succeed(&[
        "bundle",
        "build",
        "--policy",
        p(&policy_v3),
        "--canary",
        p(&canary),
        "--key",
        p(&dir.join("publisher.key")),
        "--out",
        p(&watched.join("v3")),
    ]);
    let output = sbd([
        "bundle",
        "watch",
        "--dir",
        p(&watched),
        "--state-dir",
        p(&state),
        "--trust-store",
        p(&trust),
        "--once",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("\"version\":\"1.2.0\""), "{}", text(&output.stdout));
    let lkg = succeed(&["bundle", "inspect", "--bundle", p(&state.join("active"))]);
    assert_eq!(lkg["manifest"]["version"].as_str(), Some("1.2.0"));
}

#[test]
fn tokens_are_issued_hop_by_hop_and_verified() {
    let scratch = ScratchDir::new("cli-token");
    let dir = scratch.path();
    let trust = dir.join("trust.json");
    succeed(&["keygen", "--out", p(&dir.join("gateway")), "--trust-store", p(&trust)]);
    let key = dir.join("gateway.key");

    // Hop 1: the originator delegates (no chain yet) -> a root token.
    let mut first = allowed_request();
    first.from.id = "orchestrator".into();
    first.from.trust = 900;
    first.to.id = "refund-agent".into();
    first.chain.clear();
    let first_path = dir.join("first.json");
    std::fs::write(&first_path, serde_json::to_string(&first).expect("json")).expect("write");
    let root = succeed(&["token", "issue", "--request", p(&first_path), "--key", p(&key)]);
    let root_token = root["token"].as_str().expect("token").to_string();
    assert_eq!(root["chain"]["depth"].as_u64(), Some(1));
    assert_eq!(root["chain"]["holder"].as_str(), Some("refund-agent"));

    // Hop 2: the holder delegates further, presenting its token; its mandate becomes the parent.
    let mut second = first.clone();
    second.from = first.to.clone();
    second.to.id = "ledger-agent".into();
    second.chain = vec![sbd_policy::Link {
        from: "orchestrator".into(),
        to: "refund-agent".into(),
        depth: 1,
        alpha: 0.7,
        at: NOW - 5_000,
        reason: "refund-4821".into(),
    }];
    second.requested_mandate.budgets[0].amount /= 2;
    second.requested_mandate.remaining_depth = 1;
    // Later than hop 1: the default lifetime from this `now` would outlive the parent's block,
    // which verification refuses; the new block is capped at the parent's expiry instead.
    second.now = NOW + 5_000;
    let second_path = dir.join("second.json");
    std::fs::write(&second_path, serde_json::to_string(&second).expect("json")).expect("write");
    let child = succeed(&[
        "token",
        "issue",
        "--request",
        p(&second_path),
        "--key",
        p(&key),
        "--token",
        &root_token,
        "--trust-store",
        p(&trust),
    ]);
    let child_token = child["token"].as_str().expect("token").to_string();
    assert_eq!(child["chain"]["depth"].as_u64(), Some(2));
    let now = (NOW + 5_001).to_string();
    let verified =
        succeed(&["token", "verify", "--token", &child_token, "--trust-store", p(&trust), "--now", &now]);
    assert_eq!(verified["chain"]["holder"].as_str(), Some("ledger-agent"));
    assert_eq!(verified["chain"]["blocks"].as_array().map(Vec::len), Some(2));

    // Refusals: a token presented by someone it was not granted to; a changed character; a
    // store without the gateway's key; an expired token.
    let mut impostor = second.clone();
    impostor.from.id = "mallory".into();
    std::fs::write(&second_path, serde_json::to_string(&impostor).expect("json")).expect("write");
    fail(
        &[
            "token",
            "issue",
            "--request",
            p(&second_path),
            "--key",
            p(&key),
            "--token",
            &root_token,
            "--trust-store",
            p(&trust),
        ],
        &["mallory", "refund-agent"],
    );
    let mut changed: Vec<char> = child_token.chars().collect();
    let middle = changed.len() / 2;
    changed[middle] = if changed[middle] == 'A' { 'B' } else { 'A' };
    let changed: String = changed.into_iter().collect();
    fail(
        &["token", "verify", "--token", &changed, "--trust-store", p(&trust), "--now", &now],
        &["token refused"],
    );
    succeed(&["keygen", "--out", p(&dir.join("other")), "--trust-store", p(&dir.join("other-trust.json"))]);
    fail(
        &[
            "token",
            "verify",
            "--token",
            &child_token,
            "--trust-store",
            p(&dir.join("other-trust.json")),
            "--now",
            &now,
        ],
        &["not in the trust store"],
    );
    let late = (NOW + 24 * 3_600_000).to_string();
    fail(
        &["token", "verify", "--token", &child_token, "--trust-store", p(&trust), "--now", &late],
        &["expired"],
    );
}

//! Fixtures for the bundle tests: deterministic keys, the default policy at any version, its
//! canary recorded on the native rules, and signed bundles built from them.
#![allow(dead_code, clippy::expect_used, clippy::panic, reason = "test fixtures fail loudly")]

use std::path::{Path, PathBuf};

use sbd_bundle::bundle::{self, BundleSources};
use sbd_bundle::{Canary, KeyPair};
use sbd_policy::{Policy, Request};

/// The default policy, as committed.
pub const DEFAULT_TOML: &str = include_str!("../../../../policies/default.toml");

/// A test-only key from a fixed seed.
pub fn key(seed: u8) -> KeyPair {
    KeyPair::from_secret(&[seed; 32])
}

/// The default policy renamed to version `version`; `strict` raises the review threshold so
/// the allowed request escalates instead.
pub fn policy_toml(version: &str, strict: bool) -> String {
    let text = DEFAULT_TOML.replacen("version = \"0.1.0\"", &format!("version = \"{version}\""), 1);
    assert!(text.contains(version), "default.toml changed its version line");
    if strict { text.replacen("review_threshold = 0.25", "review_threshold = 0.95", 1) } else { text }
}

/// The golden requests: an allowed third hop, a self-delegation, a cycle.
pub fn golden_requests() -> Vec<(String, Request)> {
    let allowed = sbd_e2e::allowed_request();
    let mut itself = allowed.clone();
    itself.to.id = itself.from.id.clone();
    let mut cycle = allowed.clone();
    cycle.to.id = "orchestrator".into();
    vec![("allowed third hop".into(), allowed), ("self-delegation".into(), itself), ("cycle".into(), cycle)]
}

/// A canary recorded on the native rules with `toml`.
pub fn canary_for(toml: &str) -> Vec<u8> {
    let config = bundle::parse_config(toml, None).expect("fixture policy parses");
    let policy = Policy::new(config).expect("fixture policy is valid");
    Canary::record(&golden_requests(), |r| policy.evaluate(r)).to_json().into_bytes()
}

/// The sources of a bundle of the default policy at `version`.
pub fn sources(version: &str, strict: bool, signer: &KeyPair) -> BundleSources {
    let config_toml = policy_toml(version, strict);
    BundleSources {
        canary_json: canary_for(&config_toml),
        config_toml,
        weights: None,
        component: sbd_runtime::DEFAULT_COMPONENT.to_vec(),
        key_id: signer.id(),
        created_at: 1_790_000_000_000,
    }
}

/// Builds `sources` into `dir/name` and signs it with every key of `signers`.
pub fn build_signed(dir: &Path, name: &str, sources: &BundleSources, signers: &[&KeyPair]) -> PathBuf {
    let out = dir.join(name);
    bundle::build(sources, &out).expect("fixture bundle builds");
    for key in signers {
        bundle::sign(&out, key).expect("fixture bundle signs");
    }
    out
}

/// Copies a bundle directory (flat) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for item in std::fs::read_dir(from).expect("read bundle") {
        let item = item.expect("entry");
        std::fs::copy(item.path(), to.join(item.file_name())).expect("copy file");
    }
}

//! Bundles end to end: build, sign, verify, load; every refusal the issue lists, each with its
//! own reason; single-byte tampering of every bundle file; key rotation; rollback; the
//! last-known-good across a refused update and a restart.
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{build_signed, copy_dir, key, sources};
use sbd_bundle::bundle;
use sbd_bundle::manifest::{COMPONENT_FILE, MANIFEST_FILE, SIGNATURES_FILE};
use sbd_bundle::{BundleError, HotOptions, HotPolicy, TrustStore, UnverifiedBundle};
use sbd_e2e::ScratchDir;
use sbd_runtime::{ComponentCache, PolicyRuntime, RuntimeLimits};

fn verify(dir: &Path, trust: &TrustStore) -> Result<sbd_bundle::VerifiedBundle, BundleError> {
    UnverifiedBundle::open(dir)?.verify(trust)
}

fn runtime() -> PolicyRuntime {
    PolicyRuntime::new(RuntimeLimits::default()).expect("runtime")
}

fn read_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read bundle")
        .map(|item| {
            let item = item.expect("entry");
            (item.file_name().to_string_lossy().into_owned(), std::fs::read(item.path()).expect("read file"))
        })
        .collect()
}

#[test]
fn a_signed_bundle_verifies_loads_and_passes_its_canary() {
    let scratch = ScratchDir::new("bundle-ok");
    let signer = key(1);
    let dir = build_signed(scratch.path(), "b", &sources("1.0.0", false, &signer), &[&signer]);
    let verified = verify(&dir, &TrustStore::with_keys([&signer.public()])).expect("verifies");
    assert_eq!(verified.manifest().name, "default");
    assert_eq!(verified.manifest().version, "1.0.0");
    assert_eq!(verified.signers(), &[signer.id()]);
    let policy = verified.load(&runtime(), None).expect("loads and passes the canary");
    assert!(policy.evaluate(&sbd_e2e::allowed_request()).is_allow());
}

#[test]
fn each_refusal_has_its_reason() {
    let scratch = ScratchDir::new("bundle-refusals");
    let (signer, stranger) = (key(1), key(2));
    let trust = TrustStore::with_keys([&signer.public()]);
    let src = sources("1.0.0", false, &signer);

    let unsigned = scratch.path().join("unsigned");
    bundle::build(&src, &unsigned).expect("builds");
    assert!(matches!(verify(&unsigned, &trust), Err(BundleError::Unsigned)));

    let unknown = build_signed(scratch.path(), "unknown", &src, &[&stranger]);
    match verify(&unknown, &trust) {
        Err(BundleError::UnknownKey { key_ids }) => assert_eq!(key_ids, stranger.id().to_string()),
        other => panic!("expected UnknownKey, got {other:?}"),
    }

    let extra = build_signed(scratch.path(), "extra", &src, &[&signer]);
    std::fs::write(extra.join("notes.txt"), "hello").expect("write");
    assert!(
        matches!(verify(&extra, &trust), Err(BundleError::ManifestMismatch(m)) if m.contains("notes.txt"))
    );

    let missing = build_signed(scratch.path(), "missing", &src, &[&signer]);
    std::fs::remove_file(missing.join(COMPONENT_FILE)).expect("remove");
    assert!(
        matches!(verify(&missing, &trust), Err(BundleError::ManifestMismatch(m)) if m.contains(COMPONENT_FILE))
    );

    // A manifest re-signed by the trusted key that names another policy than its files do.
    let renamed = build_signed(scratch.path(), "renamed", &src, &[]);
    let manifest = std::fs::read_to_string(renamed.join(MANIFEST_FILE)).expect("read");
    std::fs::write(
        renamed.join(MANIFEST_FILE),
        manifest.replace("\"name\": \"default\"", "\"name\": \"other\""),
    )
    .expect("write");
    bundle::sign(&renamed, &signer).expect("sign");
    assert!(
        matches!(verify(&renamed, &trust), Err(BundleError::ManifestMismatch(m)) if m.contains("`name`"))
    );

    let changed = build_signed(scratch.path(), "changed", &src, &[&signer]);
    let mut component = std::fs::read(changed.join(COMPONENT_FILE)).expect("read");
    component[1000] ^= 1;
    std::fs::write(changed.join(COMPONENT_FILE), component).expect("write");
    assert!(
        matches!(verify(&changed, &trust), Err(BundleError::DigestMismatch { file, .. }) if file == COMPONENT_FILE)
    );

    let resigned = build_signed(scratch.path(), "bad-signature", &src, &[&signer]);
    let manifest = std::fs::read_to_string(resigned.join(MANIFEST_FILE)).expect("read");
    std::fs::write(resigned.join(MANIFEST_FILE), manifest.replace("1790000000000", "1790000000001"))
        .expect("write");
    assert!(
        matches!(verify(&resigned, &trust), Err(BundleError::BadSignature { key_id }) if key_id == signer.id())
    );
}

/// Every position of every small file, changed two ways (+1 and the top bit), is refused; for
/// the 140 KB component, 2,000 positions spread over the file plus its first and last 64 bytes.
#[test]
fn every_single_byte_change_in_any_bundle_file_is_refused() {
    let scratch = ScratchDir::new("bundle-bytes");
    let signer = key(1);
    let trust = TrustStore::with_keys([&signer.public()]);
    let dir = build_signed(scratch.path(), "b", &sources("1.0.0", false, &signer), &[&signer]);
    let files = read_files(&dir);
    assert!(UnverifiedBundle::from_files(&dir, files.clone()).and_then(|b| b.verify(&trust)).is_ok());
    let mut tried = 0usize;
    for (name, bytes) in &files {
        let positions: Vec<usize> = if bytes.len() <= 32 * 1024 {
            (0..bytes.len()).collect()
        } else {
            let step = bytes.len() / 2000;
            let mut p: Vec<usize> = (0..bytes.len()).step_by(step).collect();
            p.extend(0..64);
            p.extend(bytes.len() - 64..bytes.len());
            p
        };
        for at in positions {
            for change in [|b: u8| b.wrapping_add(1), |b: u8| b ^ 0x80] {
                let mut tampered = files.clone();
                let file = tampered.get_mut(name).expect("file");
                file[at] = change(file[at]);
                let outcome = UnverifiedBundle::from_files(&dir, tampered).and_then(|b| b.verify(&trust));
                assert!(outcome.is_err(), "changing byte {at} of `{name}` was accepted");
                tried += 1;
            }
        }
    }
    assert!(tried > 10_000, "only {tried} mutations");
}

#[test]
fn several_signatures_and_key_rotation() {
    let scratch = ScratchDir::new("bundle-rotation");
    let (old, new) = (key(1), key(3));
    let both = build_signed(scratch.path(), "both", &sources("1.0.0", false, &old), &[&old, &new]);
    let only_old = TrustStore::with_keys([&old.public()]);
    let only_new = TrustStore::with_keys([&new.public()]);
    let rotating = TrustStore::with_keys([&old.public(), &new.public()]);
    // Hosts that trust either key, or both, accept a bundle signed by both.
    assert_eq!(verify(&both, &only_old).expect("old").signers(), &[old.id()]);
    assert_eq!(verify(&both, &only_new).expect("new").signers(), &[new.id()]);
    assert_eq!(verify(&both, &rotating).expect("both").signers().len(), 2);
    // After the old key is retired, bundles signed by the new key alone verify on updated
    // hosts, and not on hosts that never learnt the new key.
    let new_only = build_signed(scratch.path(), "new", &sources("1.0.1", false, &new), &[&new]);
    assert!(verify(&new_only, &only_new).is_ok());
    assert!(matches!(verify(&new_only, &only_old), Err(BundleError::UnknownKey { .. })));
    // Signing again with the same key replaces its signature rather than adding one.
    bundle::sign(&new_only, &new).expect("re-sign");
    assert_eq!(verify(&new_only, &rotating).expect("re-signed").signers(), &[new.id()]);
}

#[test]
fn rollback_canary_failure_and_the_last_known_good_across_a_restart() {
    let scratch = ScratchDir::new("bundle-lkg");
    let signer = key(1);
    let trust = TrustStore::with_keys([&signer.public()]);
    let state = scratch.path().join("state");
    let options = || HotOptions {
        state_dir: Some(state.clone()),
        cache: Some(ComponentCache::new(scratch.path().join("cache"))),
    };
    let v1 = build_signed(scratch.path(), "v1", &sources("1.0.0", false, &signer), &[&signer]);
    let v2 = build_signed(scratch.path(), "v2", &sources("1.1.0", true, &signer), &[&signer]);

    assert!(matches!(
        HotPolicy::start(runtime(), trust.clone(), options()),
        Err(BundleError::NoActiveBundle(_))
    ));
    let (hot, refusal) = HotPolicy::start_with(runtime(), trust.clone(), options(), &v1).expect("starts");
    assert!(refusal.is_none());
    let activation = hot.activate(&v2).expect("v2 activates");
    assert_eq!((activation.version.as_str(), activation.generation), ("1.1.0", 2));
    assert!(!hot.evaluate(&sbd_e2e::allowed_request()).is_allow(), "v2 escalates the allowed request");

    // Rollback to 1.0.0, the same version with other contents, the same bundle again.
    assert!(
        matches!(hot.activate(&v1), Err(BundleError::Rollback { offered, active, .. }) if offered == "1.0.0" && active == "1.1.0")
    );
    let reused = build_signed(scratch.path(), "reused", &sources("1.1.0", false, &signer), &[&signer]);
    assert!(matches!(hot.activate(&reused), Err(BundleError::VersionReused { .. })));
    assert!(matches!(hot.activate(&v2), Err(BundleError::AlreadyActive { .. })));

    // A bundle whose canary expects the v1 verdicts on the v2 rules: refused by its canary.
    let mut lying = sources("1.2.0", true, &signer);
    lying.canary_json = common::canary_for(&common::policy_toml("1.2.0", false));
    let lying = build_signed(scratch.path(), "lying", &lying, &[&signer]);
    assert!(matches!(hot.activate(&lying), Err(BundleError::CanaryFailed(_))));
    // A tampered update: refused, nothing changes.
    let tampered = scratch.path().join("tampered");
    copy_dir(&build_signed(scratch.path(), "v3", &sources("1.3.0", false, &signer), &[&signer]), &tampered);
    std::fs::write(tampered.join(SIGNATURES_FILE), "{\"signatures\": []}").expect("write");
    assert!(matches!(hot.activate(&tampered), Err(BundleError::Unsigned)));
    assert_eq!(hot.current().manifest().version, "1.1.0");
    drop(hot);

    // A restart comes up with the last-known-good (v2), and still refuses the rollback.
    let restarted = HotPolicy::start(runtime(), trust.clone(), options()).expect("restarts");
    assert_eq!(restarted.current().manifest().version, "1.1.0");
    assert!(!restarted.evaluate(&sbd_e2e::allowed_request()).is_allow());
    assert!(matches!(restarted.activate(&v1), Err(BundleError::Rollback { .. })));
    // start_with on a host with a last-known-good offers the bundle as an update.
    drop(restarted);
    let (again, refusal) = HotPolicy::start_with(runtime(), trust.clone(), options(), &v1).expect("starts");
    assert!(matches!(refusal, Some(BundleError::Rollback { .. })));
    assert_eq!(again.current().manifest().version, "1.1.0");
    drop(again);

    // A last-known-good whose key is no longer trusted does not start (fail closed).
    assert!(matches!(
        HotPolicy::start(runtime(), TrustStore::with_keys([&key(9).public()]), options()),
        Err(BundleError::UnknownKey { .. })
    ));
}

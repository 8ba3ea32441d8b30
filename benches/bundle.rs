//! Delegation tokens and hot swap: verifying a token of 1 to 8 levels (decode included), one
//! bare Ed25519 verification as the reference of the same run, issuing a block, reading the
//! active policy, and activating a new signed bundle while a policy is active.
//!
//! Run with `cargo bench -p sbd-benches --bench bundle`, then `python3 benches/report.py`.
//! With `--features peers` the same run verifies Biscuit tokens (`biscuit-auth` 6) of the same
//! depths beside sbd's: an authority block and one attenuation block per further level, each
//! with one check.
#![allow(clippy::expect_used, clippy::panic, reason = "test and benchmark set-up fails loudly")]

use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use sbd_bundle::bundle::{self, BundleSources};
use sbd_bundle::{
    ChainId, Delegation, HotOptions, HotPolicy, KeyPair, TrustStore, UnverifiedToken, VerifiedPrefixes,
    VerifiedToken,
};
use sbd_policy::{Budget, BudgetUnit, Mandate};
use sbd_runtime::{ComponentCache, PolicyRuntime, RuntimeLimits};

const NOW: u64 = 1_790_000_000_000;
const AGENTS: [&str; 9] = ["orchestrator", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"];

fn hop(level: usize) -> Delegation {
    Delegation {
        tenant: String::new(),
        alpha: 0.7,
        approved_by: String::new(),
        from: AGENTS[level].into(),
        to: AGENTS[level + 1].into(),
        mandate: Mandate {
            value_ceiling: 500 * 100_000_000,
            action_kinds: vec!["payment.*".into(), "crm.read".into()],
            counterparties: vec!["acme".into(), "globex".into()],
            budgets: vec![
                Budget { unit: BudgetUnit::UsdMicrocents, amount: (50 - level as u64) * 100_000_000 },
                Budget { unit: BudgetUnit::Tokens, amount: 100_000 - level as u64 },
            ],
            remaining_depth: 8 - u8::try_from(level).expect("small"),
            expires_at: NOW + 3_600_000,
        },
        max_depth: 9,
        issued_at: NOW - 1_000,
        expires_at: NOW + 3_600_000 - level as u64,
    }
}

fn chain(levels: usize, key: &KeyPair) -> VerifiedToken {
    let mut token = VerifiedToken::issue(key, ChainId([9; 16]), hop(0)).expect("root");
    for level in 1..levels {
        token = token.append(key, hop(level)).expect("append");
    }
    token
}

fn tokens(c: &mut Criterion) {
    let key = KeyPair::from_secret(&[1; 32]);
    let trust = TrustStore::with_keys([&key.public()]);
    let mut group = c.benchmark_group("token");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));

    // The reference: one Ed25519 verification (strict) of a message the size of a block.
    let block_len = chain(1, &key).to_bytes().len() - 2 - 2 - 64;
    let message = vec![7u8; block_len];
    let signature = key.sign(&message);
    let public = key.public();
    group.bench_function("ed25519-verify", |b| b.iter(|| assert!(public.verify(&message, &signature))));

    for levels in 1..=8 {
        let text = chain(levels, &key).encode();
        group.bench_with_input(BenchmarkId::new("verify", levels), &text, |b, text| {
            b.iter(|| UnverifiedToken::decode(text).and_then(|t| t.verify(&trust, NOW)).expect("verifies"))
        });
    }
    // Depth 8 when the depth-7 prefix was verified before (a child presenting the token its
    // parent presented): one new signature.
    let deep = chain(8, &key).encode();
    let prefix = chain(7, &key).encode();
    group.bench_function("verify-extending-cached/8", |b| {
        b.iter_batched(
            || {
                let cache = VerifiedPrefixes::new(64);
                UnverifiedToken::decode(&prefix)
                    .and_then(|t| t.verify_cached(&trust, NOW, &cache))
                    .expect("prefix");
                cache
            },
            |cache| {
                UnverifiedToken::decode(&deep)
                    .and_then(|t| t.verify_cached(&trust, NOW, &cache))
                    .expect("verifies")
            },
            BatchSize::SmallInput,
        )
    });
    let parent = chain(3, &key);
    group.bench_function("append", |b| b.iter(|| parent.append(&key, hop(3)).expect("appends")));
    #[cfg(feature = "peers")]
    biscuit::tokens(&mut group);
    group.finish();
}

/// Biscuit tokens of 1, 2, 4 and 8 levels beside sbd's: the authority block grants the
/// delegation with a budget and an expiry, and each attenuation block adds one check (the
/// budget, narrowed per level, as sbd's levels narrow it). Verifying decodes the base64 text,
/// checks every block's signature, and runs the authorizer with the request's facts.
#[cfg(feature = "peers")]
mod biscuit {
    use biscuit_auth::builder::{AuthorizerBuilder, BlockBuilder};
    use biscuit_auth::{Biscuit, KeyPair};
    use criterion::{BenchmarkGroup, BenchmarkId, measurement::WallTime};

    fn token(levels: usize, root: &KeyPair) -> String {
        let authority = format!(
            "right(\"delegate\"); budget_limit({}); expires({});",
            50 * 100_000_000u64,
            super::NOW + 3_600_000
        );
        let mut token =
            Biscuit::builder().code(authority.as_str()).expect("authority").build(root).expect("token");
        for level in 1..levels {
            let limit = (50 - level as u64) * 100_000_000;
            let block = BlockBuilder::new()
                .code(format!("check if budget($b), $b <= {limit};").as_str())
                .expect("block");
            token = token.append(block).expect("append");
        }
        token.to_base64().expect("encodes")
    }

    fn verify(text: &str, root: &KeyPair) {
        let token = Biscuit::from_base64(text, root.public()).expect("verifies");
        let facts = format!(
            "operation(\"delegate\"); budget({}); now({}); allow if right($op), operation($op);",
            10 * 100_000_000u64,
            super::NOW
        );
        let mut authorizer =
            AuthorizerBuilder::new().code(facts.as_str()).expect("authorizer").build(&token).expect("builds");
        authorizer.authorize().expect("authorized");
    }

    pub(super) fn tokens(group: &mut BenchmarkGroup<'_, WallTime>) {
        let root = KeyPair::new();
        for levels in [1, 2, 4, 8] {
            let text = token(levels, &root);
            verify(&text, &root);
            group.bench_with_input(BenchmarkId::new("biscuit", levels), &text, |b, text| {
                b.iter(|| verify(std::hint::black_box(text), &root))
            });
        }
    }
}

/// Token verification against one bare Ed25519 verification, interleaved round by round so
/// both see the same machine load (this machine is shared): prints the medians and the ratio
/// per chain level.
fn interleaved(_: &mut Criterion) {
    let key = KeyPair::from_secret(&[1; 32]);
    let trust = TrustStore::with_keys([&key.public()]);
    let block_len = chain(1, &key).to_bytes().len() - 2 - 2 - 64;
    let message = vec![7u8; block_len];
    let signature = key.sign(&message);
    let public = key.public();
    let median = |mut v: Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    println!(
        "interleaved: levels, median verify, median bare ed25519 verify, per level, per level / bare verify"
    );
    for levels in [1, 2, 4, 8] {
        let text = chain(levels, &key).encode();
        let (mut bare, mut token) = (Vec::new(), Vec::new());
        for _ in 0..600 {
            let started = Instant::now();
            assert!(public.verify(std::hint::black_box(&message), &signature));
            bare.push(started.elapsed());
            let started = Instant::now();
            UnverifiedToken::decode(std::hint::black_box(&text))
                .and_then(|t| t.verify(&trust, NOW))
                .expect("verifies");
            token.push(started.elapsed());
        }
        let (bare, token) = (median(bare), median(token));
        let per_level = token / levels as u32;
        println!(
            "interleaved: {levels} {token:?} {bare:?} {per_level:?} {:.2}",
            per_level.as_secs_f64() / bare.as_secs_f64()
        );
    }
}

fn sources(version: &str, key: &KeyPair, canary: &[u8]) -> BundleSources {
    let toml = include_str!("../policies/default.toml").replacen(
        "version = \"0.1.0\"",
        &format!("version = \"{version}\""),
        1,
    );
    BundleSources {
        config_toml: toml,
        weights: None,
        component: sbd_runtime::DEFAULT_COMPONENT.to_vec(),
        canary_json: canary.to_vec(),
        key_id: key.id(),
        created_at: NOW,
    }
}

fn build(dir: &Path, version: &str, key: &KeyPair, canary: &[u8]) -> std::path::PathBuf {
    let out = dir.join(version);
    bundle::build(&sources(version, key, canary), &out).expect("builds");
    bundle::sign(&out, key).expect("signs");
    out
}

fn swap(c: &mut Criterion) {
    let key = KeyPair::from_secret(&[1; 32]);
    let trust = TrustStore::with_keys([&key.public()]);
    let canary = include_bytes!("../policies/canary/default.json");
    let dir = std::env::temp_dir().join(format!("sbd-bench-swap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let first = build(&dir, "1.0.0", &key, canary);
    let mut group = c.benchmark_group("swap");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));

    for persist in [false, true] {
        let options = HotOptions {
            state_dir: persist.then(|| dir.join("state")),
            cache: Some(ComponentCache::new(dir.join("cache"))),
        };
        let runtime = PolicyRuntime::new(RuntimeLimits::default()).expect("engine");
        let (hot, _) = HotPolicy::start_with(runtime, trust.clone(), options, &first).expect("starts");
        let next = Cell::new(1u64);
        let name = if persist { "activate-persisted" } else { "activate" };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                // Fresh bundles, each a higher version, built outside the timed part.
                let bundles: Vec<_> = (0..iters)
                    .map(|_| {
                        let minor = next.get();
                        next.set(minor + 1);
                        build(&dir.join(name), &format!("1.{minor}.0"), &key, canary)
                    })
                    .collect();
                let started = Instant::now();
                for bundle in &bundles {
                    hot.activate(bundle).expect("activates");
                }
                let elapsed = started.elapsed();
                for bundle in bundles {
                    let _ = std::fs::remove_dir_all(bundle);
                }
                elapsed
            })
        });
        if !persist {
            group.bench_function("current", |b| b.iter(|| hot.current().generation()));
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, tokens, interleaved, swap);
criterion_main!(benches);

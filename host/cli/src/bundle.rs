//! `sbd keygen`, `sbd bundle ...` and `sbd token ...`: keys, signed policy bundles, their
//! activation (explicit or by a watched directory), and delegation tokens.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sbd_bundle::bundle::{self, BundleSources};
use sbd_bundle::{
    Canary, ChainId, Delegation, DirectoryScanner, HotOptions, HotPolicy, KeyPair, PublicKey, TrustStore,
    UnverifiedBundle, UnverifiedToken, VerifiedToken,
};
use sbd_policy::{Request, Verdict};
use sbd_runtime::{ComponentCache, PolicyRuntime, RuntimeLimits};
use serde_json::json;

use crate::scenario::Scenario;
use crate::{PolicySource, load_policy, read_text};

/// `sbd keygen`: a new Ed25519 signing key.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Writes OUT.key (the secret key, owner-only) and OUT.pub (the public key).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Also trust the new key in this trust store file (created if missing).
    #[arg(long)]
    pub trust_store: Option<PathBuf>,
    /// A note stored with the key in the trust store.
    #[arg(long, default_value = "")]
    pub comment: String,
}

/// `sbd bundle ...`.
#[derive(Subcommand, Debug)]
pub enum BundleCommand {
    /// Build an unsigned bundle directory from a policy, a component and a canary (signed too
    /// when --key is a secret key).
    Build {
        /// Policy configuration (TOML); its name and version become the bundle's. Weights named
        /// by `sbd.model_file` are included.
        #[arg(long, short)]
        policy: PathBuf,
        /// Policy component (.wasm); default: the embedded component.
        #[arg(long)]
        component: Option<PathBuf>,
        /// Canary file: golden requests and their expected verdicts (see `sbd bundle canary`).
        #[arg(long)]
        canary: PathBuf,
        /// The publisher's key file (public or secret; a secret key also signs).
        #[arg(long, short)]
        key: PathBuf,
        /// Output directory (must not exist or be empty).
        #[arg(long, short)]
        out: PathBuf,
        /// Creation time in Unix milliseconds [default: now] (fixed for reproducible builds).
        #[arg(long)]
        created_at: Option<u64>,
    },
    /// Add (or replace) a signature over the bundle's manifest.
    Sign {
        /// The bundle directory.
        #[arg(long, short)]
        bundle: PathBuf,
        /// The secret key file.
        #[arg(long, short)]
        key: PathBuf,
    },
    /// Verify signatures and digests against a trust store, then load the policy and run the
    /// canary; exits 1 with the reason if anything fails.
    Verify {
        /// The bundle directory.
        #[arg(long, short)]
        bundle: PathBuf,
        /// The trust store file.
        #[arg(long, short)]
        trust_store: PathBuf,
        /// Check signatures and files only; do not load the component or run the canary.
        #[arg(long)]
        no_load: bool,
        /// Keep precompiled components here.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Print a bundle's manifest and signers as JSON (and the verification result with
    /// --trust-store).
    Inspect {
        /// The bundle directory.
        #[arg(long, short)]
        bundle: PathBuf,
        /// Also verify against this trust store.
        #[arg(long, short)]
        trust_store: Option<PathBuf>,
    },
    /// Activate a bundle for the host whose state directory is given: verified, rollback
    /// checked and canary-tested, then persisted as its last-known-good. A refused bundle
    /// leaves the last-known-good as it was.
    Activate {
        /// The bundle directory.
        #[arg(long, short)]
        bundle: PathBuf,
        /// The host's state directory.
        #[arg(long)]
        state_dir: PathBuf,
        /// The trust store file.
        #[arg(long, short)]
        trust_store: PathBuf,
        /// Keep precompiled components here.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Watch a directory for bundle directories and activate each new or changed one, printing
    /// one JSON line per attempt. Starts from the state directory's last-known-good.
    Watch {
        /// The watched directory.
        #[arg(long)]
        dir: PathBuf,
        /// The host's state directory (must hold a last-known-good; see `activate`).
        #[arg(long)]
        state_dir: PathBuf,
        /// The trust store file.
        #[arg(long, short)]
        trust_store: PathBuf,
        /// Polling interval in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// One pass, then exit (status 1 if any bundle was refused).
        #[arg(long)]
        once: bool,
        /// Keep precompiled components here.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Record a canary: the verdicts a policy gives now to a scenario's hops or to a file of
    /// requests become the expected verdicts.
    Canary {
        /// A scenario file (see policies/scenarios/demo.json); each hop is a case.
        #[arg(long, short, conflicts_with = "requests", required_unless_present = "requests")]
        scenario: Option<PathBuf>,
        /// A JSON array of requests; each is a case.
        #[arg(long, short)]
        requests: Option<PathBuf>,
        /// Policy configuration (TOML); default: the embedded policies/default.toml.
        #[arg(long, short)]
        policy: Option<PathBuf>,
        /// Policy component (.wasm); default: the embedded component.
        #[arg(long)]
        component: Option<PathBuf>,
        /// Output canary file.
        #[arg(long, short)]
        out: PathBuf,
    },
}

/// `sbd token ...`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Decide a request and, when it is allowed, print the child's token: a new chain's root,
    /// or the parent's token (--token) with one more block. The parent token is verified
    /// first, and its mandate and holder replace the request's parent mandate and delegator.
    Issue {
        /// The request file (one JSON request).
        #[arg(long, short)]
        request: PathBuf,
        /// Policy configuration (TOML); default: the embedded policies/default.toml.
        #[arg(long, short)]
        policy: Option<PathBuf>,
        /// The signing key (secret key file) of this gateway.
        #[arg(long, short)]
        key: PathBuf,
        /// The delegator's token (text form), when it is not the originator.
        #[arg(long)]
        token: Option<String>,
        /// The trust store the parent token is verified against (required with --token).
        #[arg(long, short)]
        trust_store: Option<PathBuf>,
        /// Lifetime of the new block in milliseconds (capped by the child mandate's expiry and
        /// by the parent token's: a block never outlives the one above it).
        #[arg(long, default_value_t = 900_000)]
        ttl_ms: u64,
    },
    /// Verify a token against a trust store and print its chain as JSON; exits 1 with the
    /// reason when it is refused.
    Verify {
        /// The token (text form).
        #[arg(long)]
        token: String,
        /// The trust store file.
        #[arg(long, short)]
        trust_store: PathBuf,
        /// Verification time in Unix milliseconds [default: now].
        #[arg(long)]
        now: Option<u64>,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn trust_store(path: &Path) -> anyhow::Result<TrustStore> {
    Ok(TrustStore::read(path)?)
}

fn secret_key(path: &Path) -> anyhow::Result<KeyPair> {
    Ok(KeyPair::read(path)?)
}

fn with_extension(path: &Path, extension: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    crate::outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// `sbd keygen`.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let pair = KeyPair::generate()?;
    let (secret, public) = (with_extension(&args.out, "key"), with_extension(&args.out, "pub"));
    if public.exists() {
        bail!("`{}` exists; refusing to overwrite a key", public.display());
    }
    pair.write(&secret)?;
    std::fs::write(&public, pair.public().to_file_text())
        .with_context(|| format!("cannot write `{}`", public.display()))?;
    if let Some(path) = &args.trust_store {
        let mut store = if path.exists() { TrustStore::read(path)? } else { TrustStore::new() };
        store.add(pair.public(), args.comment.clone());
        store.write(path)?;
    }
    print_json(&json!({
        "key_id": pair.id().to_string(),
        "secret_key": secret.display().to_string(),
        "public_key": public.display().to_string(),
        "trust_store": args.trust_store.as_ref().map(|p| p.display().to_string()),
    }))
}

fn cache(dir: Option<&PathBuf>) -> Option<ComponentCache> {
    dir.map(ComponentCache::new)
}

/// Runs one `sbd bundle` subcommand.
pub fn run_bundle(command: BundleCommand) -> anyhow::Result<()> {
    match command {
        BundleCommand::Build { policy, component, canary, key, out, created_at } => {
            let publisher = PublicKey::read(&key)?;
            let sources = BundleSources::read(
                &policy,
                component.as_deref(),
                &canary,
                publisher.id(),
                created_at.unwrap_or_else(now_ms),
            )
            .with_context(|| format!("cannot build a bundle from `{}`", policy.display()))?;
            let manifest = bundle::build(&sources, &out)
                .with_context(|| format!("cannot build a bundle from `{}`", policy.display()))?;
            let signed = match KeyPair::read(&key) {
                Ok(pair) => {
                    bundle::sign(&out, &pair)?;
                    true
                }
                Err(_) => false,
            };
            print_json(&json!({
                "bundle": out.display().to_string(),
                "name": manifest.name,
                "version": manifest.version,
                "key_id": manifest.key_id,
                "signed": signed,
            }))
        }
        BundleCommand::Sign { bundle: dir, key } => {
            let pair = secret_key(&key)?;
            let manifest =
                bundle::sign(&dir, &pair).with_context(|| format!("cannot sign `{}`", dir.display()))?;
            print_json(&json!({
                "bundle": dir.display().to_string(),
                "name": manifest.name,
                "version": manifest.version,
                "signed_by": pair.id().to_string(),
            }))
        }
        BundleCommand::Verify { bundle: dir, trust_store: store, no_load, cache_dir } => {
            let trust = trust_store(&store)?;
            let refused = || format!("bundle `{}` refused", dir.display());
            let verified =
                UnverifiedBundle::open(&dir).and_then(|b| b.verify(&trust)).with_context(refused)?;
            if !no_load {
                let runtime = PolicyRuntime::new(RuntimeLimits::default())?;
                verified.load(&runtime, cache(cache_dir.as_ref()).as_ref()).with_context(refused)?;
            }
            let manifest = verified.manifest();
            print_json(&json!({
                "ok": true,
                "name": manifest.name,
                "version": manifest.version,
                "digest": verified.digest(),
                "signed_by": verified.signers().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "canary_cases_passed": if no_load { None } else { Some(verified.canary().cases.len()) },
            }))
        }
        BundleCommand::Inspect { bundle: dir, trust_store: store } => {
            let unverified =
                UnverifiedBundle::open(&dir).with_context(|| format!("cannot read `{}`", dir.display()))?;
            let manifest = unverified.manifest_unverified()?;
            let signatures = unverified.signatures_unverified()?;
            let verification = match store {
                Some(path) => {
                    let trust = trust_store(&path)?;
                    Some(match unverified.verify(&trust) {
                        Ok(verified) => {
                            json!({"ok": true, "signed_by": verified.signers().iter().map(ToString::to_string).collect::<Vec<_>>()})
                        }
                        Err(e) => json!({"ok": false, "error": e.to_string()}),
                    })
                }
                None => None,
            };
            print_json(&json!({
                "manifest": manifest,
                "signatures": signatures.signatures.iter().map(|s| json!({"key_id": s.key_id, "algorithm": s.algorithm})).collect::<Vec<_>>(),
                "verification": verification,
            }))
        }
        BundleCommand::Activate { bundle: dir, state_dir, trust_store: store, cache_dir } => {
            let trust = trust_store(&store)?;
            let runtime = PolicyRuntime::new(RuntimeLimits::default())?;
            let options = HotOptions { state_dir: Some(state_dir.clone()), cache: cache(cache_dir.as_ref()) };
            let (hot, refusal) = HotPolicy::start_with(runtime, trust, options, &dir)
                .with_context(|| format!("bundle `{}` refused", dir.display()))?;
            let active = hot.current();
            let unchanged = matches!(refusal, Some(sbd_bundle::BundleError::AlreadyActive { .. }));
            if let Some(refusal) = refusal.filter(|_| !unchanged) {
                bail!(
                    "bundle `{}` refused: {refusal}; `{}` {} stays active",
                    dir.display(),
                    active.manifest().name,
                    active.manifest().version
                );
            }
            print_json(&json!({
                "active": {"name": active.manifest().name, "version": active.manifest().version, "digest": active.digest()},
                "unchanged": unchanged,
                "state_dir": state_dir.display().to_string(),
            }))
        }
        BundleCommand::Watch { dir, state_dir, trust_store: store, interval_ms, once, cache_dir } => {
            let trust = trust_store(&store)?;
            let runtime = PolicyRuntime::new(RuntimeLimits::default())?;
            let options = HotOptions { state_dir: Some(state_dir), cache: cache(cache_dir.as_ref()) };
            let hot = HotPolicy::start(runtime, trust, options)?;
            let mut scanner = DirectoryScanner::new(dir);
            loop {
                let mut refused = 0;
                for event in scanner.scan(&hot) {
                    let line = match &event.outcome {
                        Ok(a) => {
                            json!({"bundle": event.bundle.display().to_string(), "activated": {"name": a.name, "version": a.version, "generation": a.generation}})
                        }
                        Err(e) => {
                            refused += 1;
                            json!({"bundle": event.bundle.display().to_string(), "refused": e.to_string()})
                        }
                    };
                    crate::outln!("{line}")?;
                }
                if once {
                    if refused > 0 {
                        bail!("{refused} bundle(s) refused; see the lines above");
                    }
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(interval_ms.max(10)));
            }
        }
        BundleCommand::Canary { scenario, requests, policy, component, out } => {
            let (_runtime, loaded) = load_policy(&PolicySource { config: policy, component, cache: None })?;
            let cases: Vec<(String, Request)> = match (scenario, requests) {
                (Some(path), _) => {
                    let parsed = Scenario::from_json(&read_text(&path)?)
                        .with_context(|| format!("in `{}`", path.display()))?;
                    let trace = parsed.replay(|r| loaded.evaluate(r))?;
                    trace
                        .into_iter()
                        .map(|e| (format!("hop {}: {} -> {}", e.hop, e.from, e.to), e.request))
                        .collect()
                }
                (None, Some(path)) => {
                    let list: Vec<Request> = sbd_runtime::json::from_str(&read_text(&path)?).with_context(|| {
                        format!("`{}` is not a JSON array of delegation requests", path.display())
                    })?;
                    list.into_iter()
                        .enumerate()
                        .map(|(i, r)| (format!("request {}: {}", i + 1, r.task.id), r))
                        .collect()
                }
                (None, None) => bail!("give --scenario or --requests"),
            };
            if cases.is_empty() {
                bail!("no requests to record");
            }
            let canary = Canary::record(&cases, |r| loaded.evaluate(r));
            std::fs::write(&out, canary.to_json())
                .with_context(|| format!("cannot write `{}`", out.display()))?;
            print_json(&json!({"canary": out.display().to_string(), "cases": canary.cases.len()}))
        }
    }
}

/// The chain of a verified token as JSON.
fn chain_json(token: &VerifiedToken) -> serde_json::Value {
    json!({
        "chain_id": token.chain_id().to_string(),
        "depth": token.depth(),
        "max_depth": token.max_depth(),
        "holder": token.holder(),
        "expires_at": token.expires_at(),
        "mandate": token.mandate(),
        "blocks": token.blocks().map(|b| json!({
            "depth": b.depth, "from": b.from, "to": b.to, "signer": b.signer.to_string(),
            "issued_at": b.issued_at, "expires_at": b.expires_at,
        })).collect::<Vec<_>>(),
    })
}

/// Runs one `sbd token` subcommand; the exit status: `issue` reflects the verdict (0 allow
/// with the token printed, 3 escalate, 4 deny, no token), `verify` 0 (a refused token is an
/// error).
pub fn run_token(command: TokenCommand) -> anyhow::Result<u8> {
    match command {
        TokenCommand::Issue { request, policy, key, token, trust_store: store, ttl_ms } => {
            let signer = secret_key(&key)?;
            let mut parsed: Request = sbd_runtime::json::from_str(&read_text(&request)?)
                .with_context(|| format!("`{}` is not a delegation request", crate::input_name(&request)))?;
            let parent = match &token {
                Some(text) => {
                    let Some(store) = &store else { bail!("--token needs --trust-store to verify it") };
                    let trust = trust_store(store)?;
                    let verified = UnverifiedToken::decode(text)
                        .and_then(|t| t.verify(&trust, parsed.now))
                        .context("the parent token is refused")?;
                    if verified.holder() != parsed.from.id {
                        bail!(
                            "`{}`: `from.id` is `{}` but the token was granted to `{}`",
                            request.display(),
                            parsed.from.id,
                            verified.holder()
                        );
                    }
                    parsed.parent_mandate = verified.mandate().clone();
                    Some(verified)
                }
                None => None,
            };
            let (_runtime, loaded) =
                load_policy(&PolicySource { config: policy, component: None, cache: None })?;
            let verdict = loaded.evaluate(&parsed);
            let Verdict::Allow(grant) = &verdict else {
                print_json(&json!({"verdict": verdict, "token": null}))?;
                return Ok(crate::output::verdict_status([&verdict]));
            };
            let mut expires_at = parsed.now.saturating_add(ttl_ms);
            if let Some(p) = &parent {
                expires_at = expires_at.min(p.expires_at());
            }
            let delegation = Delegation::from_grant(&parsed, grant, expires_at);
            let child = match parent {
                Some(parent) => parent.append(&signer, delegation)?,
                None => VerifiedToken::issue(&signer, ChainId::random()?, delegation)?,
            };
            print_json(&json!({"verdict": verdict, "token": child.encode(), "chain": chain_json(&child)}))?;
            Ok(crate::output::EXIT_OK)
        }
        TokenCommand::Verify { token, trust_store: store, now } => {
            let trust = trust_store(&store)?;
            let verified = UnverifiedToken::decode(&token)
                .and_then(|t| t.verify(&trust, now.unwrap_or_else(now_ms)))
                .context("token refused")?;
            print_json(&json!({"ok": true, "chain": chain_json(&verified)}))?;
            Ok(crate::output::EXIT_OK)
        }
    }
}

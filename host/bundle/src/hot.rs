//! Hot swap while serving: the active policy behind an atomic pointer, activation of a new
//! bundle only after verification, a rollback check and a passing canary, a last-known-good
//! copy in a state directory, and a polling directory watcher.
//!
//! ```text
//! HotPolicy::current()  -> Arc<ActivePolicy>  lock-free (arc-swap); a decision keeps the policy
//!                                             it started on alive until it finishes
//! HotPolicy::activate(dir)                    verify -> rollback check -> load -> canary
//!                                             -> persist last-known-good -> swap
//! HotPolicy::watch(dir, interval, on_event)   polls dir for bundle directories, activates them
//! ```
//!
//! A refused bundle changes nothing: the active policy keeps serving and the state directory
//! keeps the last-known-good copy, which [`HotPolicy::start`] verifies and loads after a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use sbd_policy::{Request, Verdict};
use sbd_runtime::{ComponentCache, LoadedPolicy, PolicyRuntime};
use serde::{Deserialize, Serialize};

use crate::bundle::{BundleError, UnverifiedBundle, VerifiedBundle};
use crate::fsutil::write_atomic;
use crate::keys::{KeyId, TrustStore};
use crate::manifest::{MANIFEST_FILE, Manifest};

/// The last-known-good bundle's directory name inside the state directory.
pub const ACTIVE_DIR: &str = "active";
/// The previous last-known-good, kept while a new one replaces it.
pub const PREVIOUS_DIR: &str = "previous";
/// The state file: the highest version activated per policy name (rollback protection).
pub const STATE_FILE: &str = "state.json";

/// A policy that is serving: the loaded component and the bundle it came from.
pub struct ActivePolicy {
    policy: LoadedPolicy,
    manifest: Manifest,
    digest: String,
    signers: Vec<KeyId>,
    generation: u64,
    activated_at: SystemTime,
}

impl ActivePolicy {
    /// Decides one delegation on this policy (never fails; see [`LoadedPolicy::evaluate`]).
    pub fn evaluate(&self, request: &Request) -> Verdict {
        self.policy.evaluate(request)
    }

    /// The loaded policy, for everything else it offers (batches, `narrow`, trust deltas).
    pub fn policy(&self) -> &LoadedPolicy {
        &self.policy
    }

    /// The bundle's manifest: name, version, digests.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Hex SHA-256 of the bundle's manifest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The trusted keys that signed the bundle.
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }

    /// Counts activations of this [`HotPolicy`]: 1 for the first policy, +1 per swap.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When it was activated.
    pub fn activated_at(&self) -> SystemTime {
        self.activated_at
    }
}

/// What an activation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// Name of the policy now active.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Hex SHA-256 of its manifest.
    pub digest: String,
    /// Its generation.
    pub generation: u64,
    /// Name and version of the policy it replaced, if any.
    pub replaced: Option<(String, String)>,
}

/// Where a [`HotPolicy`] keeps state and compiled components.
#[derive(Debug, Clone, Default)]
pub struct HotOptions {
    /// The state directory: last-known-good bundle and rollback high-water marks. Without one
    /// nothing survives a restart.
    pub state_dir: Option<PathBuf>,
    /// A precompile cache for components (private to this host).
    pub cache: Option<ComponentCache>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// The highest version activated, per policy name.
    high_water: BTreeMap<String, String>,
}

/// The active policy of a host, swapped atomically while serving. `Send + Sync`: share it in an
/// `Arc` between request handlers and the watcher.
pub struct HotPolicy {
    runtime: PolicyRuntime,
    options: HotOptions,
    trust: ArcSwap<TrustStore>,
    current: ArcSwap<ActivePolicy>,
    generation: AtomicU64,
    /// Serialises activations and holds the high-water marks.
    activation: Mutex<State>,
}

impl std::fmt::Debug for HotPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.current();
        f.debug_struct("HotPolicy")
            .field("name", &current.manifest.name)
            .field("version", &current.manifest.version)
            .field("generation", &current.generation)
            .finish_non_exhaustive()
    }
}

fn state_error(path: &Path, why: impl std::fmt::Display) -> BundleError {
    BundleError::State { path: path.to_path_buf(), why: why.to_string() }
}

fn read_state(state_dir: &Path) -> Result<State, BundleError> {
    let path = state_dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| state_error(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(state_error(&path, e)),
    }
}

impl HotPolicy {
    /// Starts from the last-known-good bundle in `options.state_dir`, verified against `trust`
    /// and checked by its canary as any new bundle is. Fails closed: with no state directory,
    /// no last-known-good bundle, or one that no longer verifies, there is nothing to serve.
    pub fn start(
        runtime: PolicyRuntime,
        trust: TrustStore,
        options: HotOptions,
    ) -> Result<HotPolicy, BundleError> {
        let Some(state_dir) = options.state_dir.clone() else {
            return Err(BundleError::NoActiveBundle(PathBuf::from("(none configured)")));
        };
        let state = read_state(&state_dir)?;
        let active = state_dir.join(ACTIVE_DIR);
        let previous = state_dir.join(PREVIOUS_DIR);
        // A crash between the two renames of a swap leaves only `previous`.
        let lkg = if active.join(MANIFEST_FILE).is_file() {
            active
        } else if previous.join(MANIFEST_FILE).is_file() {
            previous
        } else {
            return Err(BundleError::NoActiveBundle(state_dir));
        };
        let verified = UnverifiedBundle::open(&lkg)?.verify(&trust)?;
        let policy = verified.load(&runtime, options.cache.as_ref())?;
        let first = ActivePolicy::new(policy, &verified, 1);
        Ok(HotPolicy {
            runtime,
            options,
            trust: ArcSwap::from_pointee(trust),
            current: ArcSwap::from_pointee(first),
            generation: AtomicU64::new(1),
            activation: Mutex::new(state),
        })
    }

    /// Starts from the bundle in `bundle_dir`, unless the state directory holds a
    /// last-known-good bundle: then that one starts and `bundle_dir` is offered as an update.
    /// The second value is that update's refusal, if it was refused (the host serves anyway).
    pub fn start_with(
        runtime: PolicyRuntime,
        trust: TrustStore,
        options: HotOptions,
        bundle_dir: &Path,
    ) -> Result<(HotPolicy, Option<BundleError>), BundleError> {
        let has_lkg = options.state_dir.as_ref().is_some_and(|d| {
            d.join(ACTIVE_DIR).join(MANIFEST_FILE).is_file()
                || d.join(PREVIOUS_DIR).join(MANIFEST_FILE).is_file()
        });
        if has_lkg {
            let hot = HotPolicy::start(runtime, trust, options)?;
            let refusal = hot.activate(bundle_dir).err();
            return Ok((hot, refusal));
        }
        let verified = UnverifiedBundle::open(bundle_dir)?.verify(&trust)?;
        let policy = verified.load(&runtime, options.cache.as_ref())?;
        let mut state = match &options.state_dir {
            Some(dir) => read_state(dir)?,
            None => State::default(),
        };
        check_version(&state, &verified, None)?;
        if let Some(dir) = &options.state_dir {
            persist(dir, &verified, &mut state)?;
        }
        Ok((
            HotPolicy {
                runtime,
                options,
                trust: ArcSwap::from_pointee(trust),
                current: ArcSwap::from_pointee(ActivePolicy::new(policy, &verified, 1)),
                generation: AtomicU64::new(1),
                activation: Mutex::new(state),
            },
            None,
        ))
    }

    /// The active policy: one atomic load, no lock. Hold the `Arc` for the whole decision so a
    /// concurrent swap cannot change the policy under it.
    pub fn current(&self) -> Arc<ActivePolicy> {
        self.current.load_full()
    }

    /// Decides one delegation on the active policy.
    pub fn evaluate(&self, request: &Request) -> Verdict {
        self.current.load().evaluate(request)
    }

    /// The trust store in force.
    pub fn trust_store(&self) -> Arc<TrustStore> {
        self.trust.load_full()
    }

    /// Replaces the trust store (key rotation). The active policy keeps serving; later
    /// activations and restarts are checked against the new store.
    pub fn set_trust_store(&self, trust: TrustStore) {
        self.trust.store(Arc::new(trust));
    }

    /// The runtime policies are loaded into.
    pub fn runtime(&self) -> &PolicyRuntime {
        &self.runtime
    }

    /// Verifies the bundle in `dir` against the trust store, refuses a rollback (a version lower
    /// than the highest activated for its name, or the same version with other contents), loads
    /// it, runs its canary, persists it as last-known-good, and only then swaps it in. Decisions
    /// already running finish on the old policy; later ones get the new one. On any error the
    /// active policy and the last-known-good copy are unchanged.
    pub fn activate(&self, dir: &Path) -> Result<Activation, BundleError> {
        let verified = UnverifiedBundle::open(dir)?.verify(&self.trust.load())?;
        self.activate_verified(&verified)
    }

    /// [`HotPolicy::activate`] for a bundle already verified (against this host's trust store).
    pub fn activate_verified(&self, verified: &VerifiedBundle) -> Result<Activation, BundleError> {
        let mut state = self.activation.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.current.load_full();
        check_version(&state, verified, Some(&current))?;
        let policy = verified.load(&self.runtime, self.options.cache.as_ref())?;
        if let Some(dir) = &self.options.state_dir {
            persist(dir, verified, &mut state)?;
        } else {
            state.high_water.insert(verified.manifest().name.clone(), verified.manifest().version.clone());
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let next = ActivePolicy::new(policy, verified, generation);
        let activation = Activation {
            name: next.manifest.name.clone(),
            version: next.manifest.version.clone(),
            digest: next.digest.clone(),
            generation,
            replaced: Some((current.manifest.name.clone(), current.manifest.version.clone())),
        };
        self.current.store(Arc::new(next));
        Ok(activation)
    }

    /// Watches `dir` for bundle directories (any subdirectory with a `manifest.json`) every
    /// `interval` on a background thread, activating each new or changed one (lowest version
    /// first, so the highest valid one ends active) and reporting every attempt to `on_event`.
    /// Polling rather than file-system notifications: a bundle is several files written one
    /// after another, so events would need debouncing anyway; polling also works on network
    /// and container-mounted directories where notifications are lost. Stops when the returned
    /// [`Watcher`] is dropped.
    pub fn watch(
        self: &Arc<Self>,
        dir: PathBuf,
        interval: Duration,
        mut on_event: impl FnMut(WatchEvent) + Send + 'static,
    ) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let hot = Arc::clone(self);
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut scanner = DirectoryScanner::new(dir);
            while !flag.load(Ordering::Acquire) {
                for event in scanner.scan(&hot) {
                    on_event(event);
                }
                std::thread::park_timeout(interval);
            }
        });
        Watcher { stop, thread: Some(thread) }
    }
}

impl ActivePolicy {
    fn new(policy: LoadedPolicy, verified: &VerifiedBundle, generation: u64) -> ActivePolicy {
        ActivePolicy {
            policy,
            manifest: verified.manifest().clone(),
            digest: verified.digest(),
            signers: verified.signers().to_vec(),
            generation,
            activated_at: SystemTime::now(),
        }
    }
}

fn check_version(
    state: &State,
    verified: &VerifiedBundle,
    current: Option<&ActivePolicy>,
) -> Result<(), BundleError> {
    let manifest = verified.manifest();
    let offered = manifest.semver().map_err(|e| BundleError::MalformedManifest(e.to_string()))?;
    let Some(high) = state.high_water.get(&manifest.name) else {
        return Ok(());
    };
    let high_version = semver::Version::parse(high).map_err(|e| BundleError::State {
        path: PathBuf::from(STATE_FILE),
        why: format!("`high_water.{}` `{high}`: {e}", manifest.name),
    })?;
    if offered < high_version {
        return Err(BundleError::Rollback {
            name: manifest.name.clone(),
            offered: manifest.version.clone(),
            active: high.clone(),
        });
    }
    if offered == high_version {
        if current.is_some_and(|c| c.digest == verified.digest()) {
            return Err(BundleError::AlreadyActive {
                name: manifest.name.clone(),
                version: manifest.version.clone(),
            });
        }
        return Err(BundleError::VersionReused {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
        });
    }
    Ok(())
}

/// Writes `verified` as the last-known-good copy and records its version, so that a crash at
/// any point leaves either the old or the new bundle to start from.
fn persist(state_dir: &Path, verified: &VerifiedBundle, state: &mut State) -> Result<(), BundleError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| BundleError::Io { path, cause }
    };
    std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
    let incoming = state_dir.join("incoming");
    let active = state_dir.join(ACTIVE_DIR);
    let previous = state_dir.join(PREVIOUS_DIR);
    // Leftovers of an interrupted swap: a half-written copy, and a previous copy that is not
    // needed while the active one is complete.
    if incoming.exists() {
        std::fs::remove_dir_all(&incoming).map_err(io(&incoming))?;
    }
    if previous.exists() && active.join(MANIFEST_FILE).is_file() {
        std::fs::remove_dir_all(&previous).map_err(io(&previous))?;
    }
    verified.write_to(&incoming)?;
    if active.exists() {
        std::fs::rename(&active, &previous).map_err(io(&active))?;
    }
    std::fs::rename(&incoming, &active).map_err(io(&incoming))?;
    let mut next = State { high_water: state.high_water.clone() };
    next.high_water.insert(verified.manifest().name.clone(), verified.manifest().version.clone());
    let text = serde_json::to_string_pretty(&next).map_err(|e| state_error(state_dir, e))? + "\n";
    let state_path = state_dir.join(STATE_FILE);
    write_atomic(&state_path, text.as_bytes()).map_err(io(&state_path))?;
    *state = next;
    if previous.exists() {
        std::fs::remove_dir_all(&previous).map_err(io(&previous))?;
    }
    Ok(())
}

/// One activation attempt by the watcher.
#[derive(Debug)]
pub struct WatchEvent {
    /// The bundle directory tried.
    pub bundle: PathBuf,
    /// What happened.
    pub outcome: Result<Activation, BundleError>,
}

/// Stops the watcher thread when dropped.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Stops the watcher and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One pass of the watcher, usable without a thread: remembers what it has tried, so a bundle
/// is tried again only once its files change.
#[derive(Debug)]
pub struct DirectoryScanner {
    dir: PathBuf,
    seen: BTreeMap<PathBuf, Vec<(String, u64, Option<SystemTime>)>>,
}

impl DirectoryScanner {
    /// A scanner of `dir`'s subdirectories.
    pub fn new(dir: PathBuf) -> DirectoryScanner {
        DirectoryScanner { dir, seen: BTreeMap::new() }
    }

    /// Offers every new or changed bundle directory to `hot`, lowest version first. An
    /// unreadable watched directory yields no events (it may not exist yet).
    pub fn scan(&mut self, hot: &HotPolicy) -> Vec<WatchEvent> {
        let Ok(items) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut candidates = Vec::new();
        for item in items.flatten() {
            let path = item.path();
            if !path.join(MANIFEST_FILE).is_file() {
                continue;
            }
            let fingerprint = fingerprint(&path);
            if self.seen.get(&path) == Some(&fingerprint) {
                continue;
            }
            self.seen.insert(path.clone(), fingerprint);
            let version = std::fs::read(path.join(MANIFEST_FILE))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok())
                .and_then(|m| m.semver().ok());
            candidates.push((version, path));
        }
        candidates.sort();
        candidates
            .into_iter()
            .map(|(_, bundle)| WatchEvent { outcome: hot.activate(&bundle), bundle })
            .collect()
    }
}

/// Name, size and modification time of every file in `dir`.
fn fingerprint(dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|items| {
            items
                .flatten()
                .filter_map(|item| {
                    let meta = item.metadata().ok()?;
                    Some((item.file_name().to_string_lossy().into_owned(), meta.len(), meta.modified().ok()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_policy_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<HotPolicy>();
        shared::<Arc<ActivePolicy>>();
    }
}

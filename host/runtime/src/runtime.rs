//! The wasmtime engine, its epoch ticker, and loading components.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::cache::ComponentCache;
use crate::convert::{DelegationPolicyComponentPre, HostState};
use crate::error::RuntimeError;
use crate::limits::RuntimeLimits;
use crate::policy::LoadedPolicy;

/// The host side of policy execution: one engine for every component it loads.
///
/// Cloning is cheap and shares the engine. The epoch ticker that enforces call timeouts stops
/// when the last clone (and every policy loaded through it) is dropped.
#[derive(Clone)]
pub struct PolicyRuntime {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) limits: RuntimeLimits,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            // The ticker wakes every tick, so this returns within one tick.
            let _ = ticker.join();
        }
    }
}

/// A compiled policy component, ready to instantiate.
#[derive(Clone)]
pub struct PolicyComponent {
    pub(crate) pre: DelegationPolicyComponentPre<HostState>,
    digest: String,
}

impl PolicyComponent {
    /// Hex SHA-256 of the component's bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

impl PolicyRuntime {
    /// An engine with Cranelift, the component model, epoch interruption and no async support,
    /// after checking `limits`.
    pub fn new(limits: RuntimeLimits) -> Result<PolicyRuntime, RuntimeError> {
        limits.validate().map_err(RuntimeError::InvalidLimits)?;
        let mut config = Config::new();
        config.epoch_interruption(true);
        // For profiling only: `SBD_WASM_PERFMAP=1` makes wasmtime write /tmp/perf-PID.map so
        // `perf report` names the guest's functions (docs/performance.md, "Profiling").
        if std::env::var_os("SBD_WASM_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(RuntimeError::Engine)?;
        let mut linker = Linker::new(&engine);
        // The policy imports only the type-only `types` interface; give it an empty instance.
        linker.instance("sbd:delegation/types@0.1.0").map_err(RuntimeError::Engine)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = Arc::clone(&stop);
            let tick = limits.epoch_tick;
            std::thread::Builder::new()
                .name("sbd-epoch-ticker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RuntimeError::Engine(wasmtime::Error::from(e)))?
        };
        Ok(PolicyRuntime { shared: Arc::new(Shared { engine, linker, limits, stop, ticker: Some(ticker) }) })
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &RuntimeLimits {
        &self.shared.limits
    }

    /// The wasmtime engine (for precompiling).
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Compiles a component from its bytes (binary or, for tests, never text).
    pub fn load_component(&self, bytes: &[u8]) -> Result<PolicyComponent, RuntimeError> {
        let component = Component::new(&self.shared.engine, bytes).map_err(RuntimeError::InvalidComponent)?;
        self.prepare(component, hex_sha256(bytes))
    }

    /// Loads a component through a precompile cache: the first load compiles and stores a
    /// `.cwasm`; later loads deserialize it (tens of microseconds instead of milliseconds).
    pub fn load_cached(&self, bytes: &[u8], cache: &ComponentCache) -> Result<PolicyComponent, RuntimeError> {
        let digest = hex_sha256(bytes);
        let component = cache.load_or_compile(&self.shared.engine, bytes, &digest)?;
        self.prepare(component, digest)
    }

    fn prepare(&self, component: Component, digest: String) -> Result<PolicyComponent, RuntimeError> {
        let instance_pre =
            self.shared.linker.instantiate_pre(&component).map_err(RuntimeError::WrongInterface)?;
        let pre = DelegationPolicyComponentPre::new(instance_pre).map_err(RuntimeError::WrongInterface)?;
        Ok(PolicyComponent { pre, digest })
    }

    /// Builds a policy from `config` (postcard bytes of an `sbd_policy::PolicyConfig`) inside a
    /// first instance, so a bad configuration is reported here rather than at decision time.
    pub fn instantiate(
        &self,
        component: &PolicyComponent,
        config: &[u8],
    ) -> Result<LoadedPolicy, RuntimeError> {
        LoadedPolicy::new(Arc::clone(&self.shared), component.clone(), config.to_vec())
    }
}

/// Hex SHA-256, the digest used for components and configurations alike.
pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

//! The precompile cache: compiled components stored as `.cwasm` files keyed by the component's
//! digest and the engine's compatibility hash, so a restart loads in microseconds.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::RuntimeError;

/// A directory of precompiled components.
///
/// The directory must be private to this host: loading a `.cwasm` runs native code compiled
/// from it, so anyone who can write there can run code in the host.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// A cache in `dir`, created on first store.
    pub fn new(dir: impl Into<PathBuf>) -> ComponentCache {
        ComponentCache { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the compiled form of the component with `digest` lives for `engine`.
    pub fn entry_path(&self, engine: &Engine, digest: &str) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    }

    /// Deserializes the cached compilation if there is a usable one; otherwise compiles `bytes`
    /// and stores the result (atomically, via a temporary file and a rename).
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> Result<Component, RuntimeError> {
        let path = self.entry_path(engine, digest);
        if path.is_file() {
            // SAFETY: the entry was written by `Engine::precompile_component` for an engine with
            // the same compatibility hash, into a directory the host owns (see the type docs).
            // wasmtime still checks the header; a stale or corrupt entry is recompiled below.
            #[allow(unsafe_code)]
            let cached = unsafe { Component::deserialize_file(engine, &path) };
            if let Ok(component) = cached {
                return Ok(component);
            }
        }
        let compiled = engine.precompile_component(bytes).map_err(RuntimeError::InvalidComponent)?;
        let cache_error = |source| RuntimeError::Cache { path: path.clone(), source };
        std::fs::create_dir_all(&self.dir).map_err(cache_error)?;
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, &compiled).map_err(cache_error)?;
        std::fs::rename(&temporary, &path).map_err(cache_error)?;
        // SAFETY: these bytes were produced by `precompile_component` on this very engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &compiled) };
        component.map_err(RuntimeError::InvalidComponent)
    }
}

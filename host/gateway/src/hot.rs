//! Signed-bundle mode: the active policy is `sbd-bundle`'s [`HotPolicy`] (verified bundles,
//! rollback protection, canary, last-known-good across restarts), and `/v1/policies` uploads,
//! shows and rolls forward bundles through it. Upload verifies and stages; roll-forward
//! activates the staged bundle (rollback check, canary, swap). A refusal never changes what
//! is serving.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use sbd_bundle::{ActivePolicy, HotPolicy, UnverifiedBundle, VerifiedBundle};
use sbd_policy::{Outcome, Request, TrustDelta, Verdict};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{GatewayError, GatewayResult};
use crate::policy::{PolicyHandle, PolicyVersion};

/// A [`HotPolicy`] as the gateway's policy and bundle manager.
pub struct HotBundles {
    hot: Arc<HotPolicy>,
    staged: Mutex<Option<VerifiedBundle>>,
}

impl HotBundles {
    /// Wraps a started [`HotPolicy`].
    pub fn new(hot: HotPolicy) -> HotBundles {
        HotBundles { hot: Arc::new(hot), staged: Mutex::new(None) }
    }
}

fn version_of(active: &ActivePolicy) -> PolicyVersion {
    let m = active.manifest();
    PolicyVersion {
        name: m.name.clone(),
        version: m.version.clone(),
        config_digest: active.policy().info().config_digest.clone(),
        component_digest: active.policy().component_digest().to_string(),
    }
}

fn describe(active: &ActivePolicy) -> Value {
    let m = active.manifest();
    let activated = active
        .activated_at()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!({
        "name": m.name,
        "version": m.version,
        "digest": active.digest(),
        "generation": active.generation(),
        "signers": active.signers().iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        "activated_at_ms": activated,
    })
}

impl PolicyHandle for HotBundles {
    fn evaluate(&self, request: &Request) -> (Verdict, PolicyVersion) {
        let active = self.hot.current();
        (active.evaluate(request), version_of(&active))
    }

    fn trust_deltas(&self, chain: &[String], outcome: Outcome) -> Result<Vec<TrustDelta>, String> {
        self.hot.current().policy().trust_deltas(chain, outcome).map_err(|e| e.to_string())
    }

    fn version(&self) -> PolicyVersion {
        version_of(&self.hot.current())
    }
}

/// The upload body: every file of the bundle directory, base64.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Upload {
    files: BTreeMap<String, String>,
}

/// What the gateway needs from signed-bundle management.
pub trait BundleManager: Send + Sync + 'static {
    /// Verifies and stages (or activates, per its canary rules) an uploaded bundle.
    fn upload(&self, bytes: &[u8]) -> GatewayResult<Value>;
    /// The active bundle and its state.
    fn active(&self) -> Value;
    /// Promotes the staged bundle; INVALID_REQUEST when none is staged or the bundle manager
    /// refuses it (answered as 409: the request is well formed, the gateway's state refuses it).
    fn roll_forward(&self) -> GatewayResult<Value>;
}

impl BundleManager for HotBundles {
    fn upload(&self, bytes: &[u8]) -> GatewayResult<Value> {
        let upload: Upload = serde_json::from_slice(bytes)
            .map_err(|e| GatewayError::invalid(format!("invalid JSON body (expected {{\"files\": {{name: base64}}}}): {e}")))?;
        let mut files = BTreeMap::new();
        for (name, text) in upload.files {
            let data = base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|e| GatewayError::invalid(format!("file `{name}` is not base64: {e}")))?;
            files.insert(name, data);
        }
        let verified = UnverifiedBundle::from_files(Path::new("upload"), files)
            .and_then(|b| b.verify(&self.hot.trust_store()))
            .map_err(|e| GatewayError::invalid(format!("bundle refused: {e}")))?;
        let m = verified.manifest();
        let staged = json!({
            "name": m.name,
            "version": m.version,
            "digest": verified.digest(),
            "signers": verified.signers().iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        });
        *self.staged.lock().map_err(|_| GatewayError::internal("staging lock poisoned"))? = Some(verified);
        Ok(json!({"staged": staged, "active": describe(&self.hot.current())}))
    }

    fn active(&self) -> Value {
        let staged = self.staged.lock().ok().and_then(|s| {
            s.as_ref().map(|v| json!({"name": v.manifest().name, "version": v.manifest().version, "digest": v.digest()}))
        });
        json!({"active": describe(&self.hot.current()), "staged": staged})
    }

    fn roll_forward(&self) -> GatewayResult<Value> {
        let staged = self
            .staged
            .lock()
            .map_err(|_| GatewayError::internal("staging lock poisoned"))?
            .take()
            .ok_or_else(|| GatewayError::invalid("no bundle is staged; upload one first"))?;
        let activation =
            self.hot.activate_verified(&staged).map_err(|e| GatewayError::invalid(format!("roll-forward refused: {e}")))?;
        Ok(json!({
            "name": activation.name,
            "version": activation.version,
            "digest": activation.digest,
            "generation": activation.generation,
            "replaced": activation.replaced.map(|(n, v)| json!({"name": n, "version": v})),
        }))
    }
}

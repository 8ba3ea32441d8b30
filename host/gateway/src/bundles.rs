//! Policies over HTTP: upload a signed bundle, see the active one, roll forward. The
//! signature, rollback and canary rules live in the bundle crate behind [`BundleManager`];
//! this module only speaks HTTP.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use crate::api_error::{ApiError, ApiResult};
use crate::error::ErrorCode;
use crate::server::{Admin, Caller, Shared};

pub use crate::hot::BundleManager;

fn manager(state: &Shared) -> ApiResult<&dyn BundleManager> {
    state
        .bundles
        .as_deref()
        .ok_or_else(|| ApiError::not_found("signed-bundle management is not enabled on this gateway"))
}

/// `POST /v1/policies`: the body is the bundle file.
pub async fn upload(State(state): State<Shared>, _admin: Admin, body: Bytes) -> ApiResult<Json<Value>> {
    let out = manager(&state)?.upload(&body)?;
    state.metrics.set_policy(&state.policy.version());
    Ok(Json(out))
}

/// `GET /v1/policies/active`: the admin key or a key with `policies:read`.
pub async fn active(State(state): State<Shared>, _caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(manager(&state)?.active()))
}

/// `POST /v1/policies/roll-forward`.
pub async fn roll_forward(State(state): State<Shared>, _admin: Admin) -> ApiResult<Json<Value>> {
    let out = manager(&state)?.roll_forward().map_err(|e| {
        let refused = e.code == ErrorCode::InvalidRequest;
        let e = ApiError::from(e);
        if refused { e.with_status(StatusCode::CONFLICT) } else { e }
    })?;
    state.metrics.set_policy(&state.policy.version());
    Ok(Json(out))
}

//! The HTTP service: shared state, the router, request ids and trace ids, authentication
//! extractors, JSON body and query extractors with spec-shaped errors, the background
//! sweeper, and graceful shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::context::RequestContext;
use crate::config::Config;
use crate::api_error::{ApiError, ApiResult};
use crate::error::{ErrorCode, GatewayResult};
use crate::metrics::Metrics;
use crate::policy::PolicyHandle;
use crate::backend::Backend;
use crate::events::SYSTEM_TENANT;
use crate::util::{now_ms, random_hex, sha256_hex};
use crate::{admin_api, authority, cycles_api, delegations_api, escalations_api, events_api, openapi};

/// A key the gateway accepts for a tenant (cached from the `api_keys` table).
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The key's id.
    pub key_id: String,
    /// The tenant it authenticates.
    pub tenant: String,
    /// When it stops working.
    pub expires_at_ms: i64,
    /// The principal's role.
    pub role: crate::auth::Role,
    /// The principal's name.
    pub name: String,
    /// What the key may do (its role's permissions, narrowed by the key's own list).
    pub permissions: Vec<crate::auth::Permission>,
}

/// Everything a handler needs.
pub struct AppState {
    /// The state: the embedded SQLite store or Redis.
    pub store: Backend,
    /// The active policy.
    pub policy: Arc<dyn PolicyHandle>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// SHA-256 of the admin key.
    pub admin_key_hash: String,
    /// SHA-256 of each ACTIVE tenant key -> what it authenticates. Changed through
    /// [`AppState::change_keys`] (this gateway's own changes) and
    /// [`AppState::reload_keys_if_unchanged`] (the store's).
    pub keys: RwLock<HashMap<String, KeyInfo>>,
    /// How many changes this gateway has made to [`AppState::keys`]: a reload or lookup that
    /// read the store before one of them must not overwrite it.
    pub key_changes: AtomicU64,
    /// The configuration.
    pub config: Config,
    /// Delegation tokens: verify presented ones, issue children's.
    pub tokens: crate::tokens::TokenAuthority,
    /// Bundle management, when the signed-bundle crate is wired in.
    pub bundles: Option<Arc<dyn crate::bundles::BundleManager>>,
    /// Sends webhook deliveries and test probes.
    pub webhooks: crate::dispatch::Sender,
}

impl AppState {
    /// Applies one of this gateway's own key changes to the cache (after its commit).
    pub fn change_keys(&self, change: impl FnOnce(&mut HashMap<String, KeyInfo>)) {
        let mut keys = self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut keys);
        self.key_changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The count of this gateway's own key changes so far, taken before reading keys from the
    /// store for [`AppState::reload_keys_if_unchanged`].
    pub fn key_change_count(&self) -> u64 {
        self.key_changes.load(Ordering::SeqCst)
    }

    /// Applies keys read from the store (`update`) unless this gateway changed the cache after
    /// `seen` (what [`AppState::key_change_count`] said before the read): a read that began
    /// before a revocation here committed must not bring the revoked key back. Answers whether
    /// it applied them.
    pub fn reload_keys_if_unchanged(&self, seen: u64, update: impl FnOnce(&mut HashMap<String, KeyInfo>)) -> bool {
        let mut keys = self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.key_changes.load(Ordering::SeqCst) != seen {
            return false;
        }
        update(&mut keys);
        true
    }
}

/// Shared state as handlers receive it.
pub type Shared = Arc<AppState>;

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);
static BOOT_PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn next_request_id() -> String {
    let prefix = BOOT_PREFIX.get_or_init(|| random_hex(6));
    format!("req_{prefix}{:010x}", REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn is_trace_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) && s.bytes().any(|b| b != b'0')
}

/// CORRELATION AND TRACING: `traceparent` first, then `X-Cycles-Trace-Id`, else a new one.
pub fn trace_id_of(headers: &HeaderMap) -> String {
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        let parts: Vec<&str> = tp.split('-').collect();
        if parts.len() == 4
            && parts[0] == "00"
            && is_trace_id(parts[1])
            && parts[2].len() == 16
            && parts[2].bytes().all(|b| b.is_ascii_hexdigit())
            && parts[2].bytes().any(|b| b != b'0')
        {
            return parts[1].to_string();
        }
    }
    if let Some(t) = headers.get("x-cycles-trace-id").and_then(|v| v.to_str().ok())
        && is_trace_id(t) {
            return t.to_string();
        }
    loop {
        let t = random_hex(16);
        if is_trace_id(&t) {
            return t;
        }
    }
}

async fn correlate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().clone();
    let context = Arc::new(RequestContext::new(next_request_id(), trace_id_of(request.headers())));
    let mut response = RequestContext::scope(Arc::clone(&context), next.run(request)).await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&context.request_id) {
        headers.insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&context.trace_id) {
        headers.insert("x-cycles-trace-id", v);
    }
    if let Some(t) = context.tenant()
        && let Ok(v) = HeaderValue::from_str(&t) {
            headers.insert("x-cycles-tenant", v);
        }
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.observe_request(&route, method.as_str(), status, elapsed);
    tracing::debug!(
        request_id = %context.request_id,
        trace_id = %context.trace_id,
        method = %method,
        route = %route,
        status,
        micros = elapsed.as_micros() as u64,
        "request"
    );
    response
}

/// An authenticated tenant (`X-Cycles-API-Key`).
#[derive(Debug, Clone)]
pub struct Tenant(pub String);

impl FromRequestParts<Shared> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let p = crate::auth::Principal::from_request_parts(parts, state).await?;
        RequestContext::note_tenant(&p.tenant);
        Ok(Tenant(p.tenant))
    }
}

/// The operator (`X-Admin-API-Key`).
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<Shared> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get("x-admin-api-key")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing X-Admin-API-Key header"))?;
        if !constant_time_eq(sha256_hex(key.as_bytes()).as_bytes(), state.admin_key_hash.as_bytes()) {
            return Err(ApiError::new(ErrorCode::Unauthorized, "wrong admin key"));
        }
        Ok(Admin)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Either credential, for the dual-auth admin operations (budgets, keys).
#[derive(Debug, Clone)]
pub enum Caller {
    /// A tenant key, and who holds it.
    Key(crate::auth::Principal),
    /// The admin key.
    Admin,
}

impl Caller {
    /// The tenant of a tenant key; `None` for the admin key.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Caller::Key(p) => Some(&p.tenant),
            Caller::Admin => None,
        }
    }

    /// The key's holder; `None` for the admin key.
    pub fn principal(&self) -> Option<&crate::auth::Principal> {
        match self {
            Caller::Key(p) => Some(p),
            Caller::Admin => None,
        }
    }

    /// 403 naming `p` unless the caller holds it (the admin key holds every permission).
    pub fn require(&self, p: crate::auth::Permission) -> ApiResult<()> {
        match self {
            Caller::Key(k) => Ok(k.require(p)?),
            Caller::Admin => Ok(()),
        }
    }
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        if parts.headers.contains_key("x-admin-api-key") {
            Admin::from_request_parts(parts, state).await.map(|_| Caller::Admin)
        } else {
            crate::auth::Principal::from_request_parts(parts, state).await.map(Caller::Key)
        }
    }
}

/// A JSON body parsed with serde; any failure is a 400 (413 over the size limit) in the spec's
/// error shape, naming what is wrong.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::invalid("the request body is larger than this server accepts")
                    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
            } else {
                ApiError::invalid(format!("cannot read the request body: {rejection}"))
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::invalid("the request body is empty; a JSON object is required"));
        }
        // Every body of this API is a JSON object; serde would also read a struct from an array
        // (positionally), which is refused here and, inside the body, by `strict_json`.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::invalid("invalid JSON body: the request body must be a JSON object"));
        }
        crate::strict_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
    }
}

/// Query parameters; a bad one is a 400 in the spec's error shape.
#[derive(Debug)]
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(query).map(Q)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> ApiResult<T> {
    axum::extract::Query::<T>::try_from_uri(&format!("/?{query}").parse::<axum::http::Uri>().map_err(|_| ApiError::invalid("bad query"))?)
        .map(|q| q.0)
        .map_err(|e| ApiError::invalid(format!("invalid query parameters: {}", e.body_text())))
}

/// The `X-Idempotency-Key` header, if any.
pub fn idempotency_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-idempotency-key").and_then(|v| v.to_str().ok())
}

async fn healthz(State(state): State<Shared>) -> ApiResult<axum::Json<serde_json::Value>> {
    state.store.ping().await?;
    Ok(axum::Json(serde_json::json!({"status": "ok", "policy": state.policy.version()})))
}

async fn metrics_text(State(state): State<Shared>) -> Response {
    state.metrics.set_policy(&state.policy.version());
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// The router with every endpoint; tests drive it directly or through a socket.
pub fn app(state: Shared) -> Router {
    let limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.yaml", get(openapi::serve))
        .route("/v1/reservations", post(cycles_api::create_reservation).get(cycles_api::list_reservations))
        .route("/v1/reservations/{reservation_id}", get(cycles_api::get_reservation))
        .route("/v1/reservations/{reservation_id}/commit", post(cycles_api::commit_reservation))
        .route("/v1/reservations/{reservation_id}/release", post(cycles_api::release_reservation))
        .route("/v1/reservations/{reservation_id}/extend", post(cycles_api::extend_reservation))
        .route("/v1/decide", post(cycles_api::decide))
        .route("/v1/balances", get(cycles_api::get_balances))
        .route("/v1/events", post(cycles_api::create_event).get(events_api::list_tenant))
        .route("/v1/admin/events", get(events_api::list_admin))
        .route("/v1/admin/events/{event_id}", get(events_api::get_admin))
        .route("/v1/admin/webhooks", post(events_api::admin_create).get(events_api::admin_list))
        .route(
            "/v1/admin/webhooks/{subscription_id}",
            get(events_api::admin_get).patch(events_api::admin_update).delete(events_api::admin_delete),
        )
        .route("/v1/admin/webhooks/{subscription_id}/test", post(events_api::admin_test))
        .route("/v1/admin/webhooks/{subscription_id}/replay", post(events_api::admin_replay))
        .route("/v1/admin/webhooks/{subscription_id}/deliveries", get(events_api::admin_deliveries))
        .route("/v1/webhooks", post(events_api::tenant_create).get(events_api::tenant_list))
        .route(
            "/v1/webhooks/{subscription_id}",
            get(events_api::tenant_get).patch(events_api::tenant_update).delete(events_api::tenant_delete),
        )
        .route("/v1/webhooks/{subscription_id}/test", post(events_api::tenant_test))
        .route("/v1/webhooks/{subscription_id}/deliveries", get(events_api::tenant_deliveries))
        .route("/v1/auth/introspect", get(admin_api::introspect))
        .route("/v1/admin/tenants", post(admin_api::create_tenant).get(admin_api::list_tenants))
        .route("/v1/admin/tenants/{tenant_id}", get(admin_api::get_tenant).patch(admin_api::update_tenant))
        .route("/v1/admin/budgets", post(admin_api::create_budget).get(admin_api::list_budgets))
        .route("/v1/admin/budgets/fund", post(admin_api::fund_budget))
        .route("/v1/admin/budgets/freeze", post(admin_api::freeze_budget))
        .route("/v1/admin/budgets/unfreeze", post(admin_api::unfreeze_budget))
        .route("/v1/admin/api-keys", post(admin_api::create_api_key).get(admin_api::list_api_keys))
        .route(
            "/v1/admin/api-keys/{key_id}",
            axum::routing::delete(admin_api::revoke_api_key).patch(admin_api::update_api_key),
        )
        .route("/v1/delegations", post(delegations_api::create))
        .route("/v1/root-grants", post(authority::create_root_grant))
        .route("/v1/grants/{grant_id}", get(authority::get_grant))
        .route("/v1/grants/{grant_id}/commit", post(authority::commit_grant))
        .route("/v1/grants/{grant_id}/release", post(authority::release_grant))
        .route("/v1/grants/{grant_id}/revoke", post(authority::revoke_grant))
        .route("/v1/chains/{chain_id}/grants", get(authority::chain_grants))
        .route("/v1/escrow/audit", get(authority::audit))
        .route("/v1/agents", post(authority::register_agent).get(authority::list_agents))
        .route("/v1/authority/settings", get(authority::get_settings).put(authority::put_settings))
        .route("/v1/depth-exceptions", post(authority::create_depth_exception))
        .route("/v1/chains/{chain_id}", get(delegations_api::get_chain))
        .route("/v1/chains/{chain_id}/outcome", post(delegations_api::report_outcome))
        .route("/v1/warnings", get(delegations_api::list_warnings))
        .route("/v1/agents/{agent_id}/trust", get(delegations_api::get_trust))
        .route("/v1/escalations", get(escalations_api::list))
        .route("/v1/escalations/{escalation_id}", get(escalations_api::get_one))
        .route("/v1/escalations/{escalation_id}/approve", post(escalations_api::approve))
        .route("/v1/escalations/{escalation_id}/deny", post(escalations_api::deny))
        .route("/v1/escalations/{escalation_id}/delegate", post(escalations_api::delegate))
        .route("/v1/escalation-targets", post(escalations_api::register_target).get(escalations_api::list_targets))
        .route("/v1/policies", post(crate::bundles::upload).layer(DefaultBodyLimit::max(64 * 1024 * 1024)))
        .route("/v1/policies/active", get(crate::bundles::active))
        .route("/v1/policies/roll-forward", post(crate::bundles::roll_forward))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), crate::auth::authorize))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), correlate))
        .with_state(state)
}

/// Loads the key cache from the store: every ACTIVE key that [`key_info`] accepts.
pub async fn load_keys(store: &Backend) -> GatewayResult<HashMap<String, KeyInfo>> {
    store
        .read(SYSTEM_TENANT, |tx| {
            let keys = tx.api_keys(None)?;
            Ok(keys.iter().filter(|k| k.status == "ACTIVE").filter_map(|k| Some((k.key_hash.clone(), key_info(k)?))).collect())
        })
        .await
}

/// What authentication knows of a stored key, or `None` (the key is refused, and why is
/// logged) when its record or role cannot be read. A key stored without a role (created
/// before roles existed) is an `agent` key; its stored permission list narrows the role's set,
/// except the old default list, which means "the role's set".
pub fn key_info(stored: &crate::repo::StoredApiKey) -> Option<KeyInfo> {
    let key_id = &stored.key_id;
    // An unreadable record fails closed: read as no record, its permission list would be
    // missing, which means the role's whole set.
    let body: serde_json::Value = match serde_json::from_str(&stored.body) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(key_id = %key_id, error = %e, "an API key whose stored record is not JSON; it is disabled");
            return None;
        }
    };
    let role = match stored.role.as_deref() {
        None => crate::auth::DEFAULT_ROLE,
        // An unreadable role fails closed: the key gets no permission.
        Some(r) => match crate::auth::Role::parse(r) {
            Some(r) => r,
            None => {
                tracing::error!(key_id = %key_id, role = r, "an API key with an unknown role; it is disabled");
                return None;
            }
        },
    };
    let listed: Option<Vec<String>> = body
        .get("permissions")
        .and_then(|p| p.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()));
    let legacy_default = listed.as_ref().is_some_and(|s| {
        s.len() == crate::admin_api::DEFAULT_PERMISSIONS.len() && s.iter().zip(crate::admin_api::DEFAULT_PERMISSIONS).all(|(a, b)| a == b)
    });
    let permissions = match listed {
        Some(s) if !legacy_default => role.permissions().iter().copied().filter(|p| s.iter().any(|n| n == p.as_str())).collect(),
        _ => role.permissions().to_vec(),
    };
    let name = stored
        .principal
        .clone()
        .or_else(|| body.get("name").and_then(|n| n.as_str()).map(String::from))
        .unwrap_or_else(|| key_id.clone());
    Some(KeyInfo { key_id: key_id.clone(), tenant: stored.tenant_id.clone(), expires_at_ms: stored.expires_at_ms, role, name, permissions })
}

/// Starts the sweeper: expired reservations and escalations, finished webhook deliveries past
/// their retention and, on Redis, a reload of the API key cache, every `interval`.
pub fn spawn_sweeper(state: Shared, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = now_ms();
            match state.store.sweep_reservations(now, 10_000).await {
                Ok(n) if n > 0 => {
                    state.metrics.reservations.with_label_values(&["expired"]).inc_by(n as u64);
                    tracing::info!(expired = n, "sweeper: reservations expired");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeper: reservation sweep failed"),
            }
            let signer = state.tokens.signing_key().clone();
            match state.store.sweep_escalations(now, signer).await {
                Ok(n) if n > 0 => {
                    state.metrics.escalations.with_label_values(&["EXPIRED"]).inc_by(n as u64);
                    tracing::info!(expired = n, "sweeper: escalations expired");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeper: escalation sweep failed"),
            }
            // On Redis other gateways create and revoke keys too: the cache is reloaded each
            // sweep, so their changes reach this gateway within one interval.
            if matches!(state.store, Backend::Redis(_)) {
                let seen = state.key_change_count();
                match load_keys(&state.store).await {
                    // a change made here while the keys were read wins until the next reload
                    Ok(loaded) => drop(state.reload_keys_if_unchanged(seen, |keys| *keys = loaded)),
                    Err(e) => tracing::warn!(error = %e, "sweeper: reloading the API keys failed; the cache is kept"),
                }
            }
            let kept = i64::try_from(state.webhooks.settings().delivery_retention_ms).unwrap_or(i64::MAX);
            let before = now.saturating_sub(kept);
            match state.store.sweep_deliveries(before, 10_000).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "sweeper: finished webhook deliveries past their retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeper: delivery retention sweep failed"),
            }
        }
    })
}

//! Principals, roles and permissions: who an API key speaks for and what it may do.
//!
//! Every tenant API key (`X-Cycles-API-Key`) belongs to a *principal* with one [`Role`]:
//!
//! - **operator**: runs a tenant: budgets (create, fund, freeze, unfreeze), API keys of the
//!   other roles, escalation targets, agents and root grants; may release any reservation of
//!   its tenant. Only operators fund budgets or lift a freeze.
//! - **approver**: a named human who decides escalations and depth exceptions; reads.
//! - **agent**: an agent runtime: delegates, reserves/commits/releases/extends its own
//!   reservations, reports outcomes; reads.
//! - **reader**: reads only.
//!
//! A role grants a fixed set of [`Permission`]s ([`Role::permissions`], one table, pinned by a
//! test). A key created with an explicit `permissions` list holds the intersection of that
//! list and its role's set, so a key minted with only `balances:read` can do nothing else.
//! The super-admin key (`X-Admin-API-Key`) holds every permission, including the
//! `admin:*` ones no role has (tenants, operator keys, gateway-wide policy bundles).
//!
//! Every route of the router is gated by [`route_access`] in the [`authorize`] middleware; a
//! route missing from that table is refused (fail closed), so a new endpoint must name its
//! permission there. Permission names are those of the Cycles governance admin spec
//! (`Permission` schema) where one exists; the gateway's own operations use the same
//! `resource:verb` form.

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api_error::{ApiError, ApiResult};
use crate::error::ErrorCode;
use crate::server::{Shared, AppState};
use crate::util::{now_ms, sha256_hex};

pub use crate::principal::{effective_permissions, forbidden_for, Permission, Principal, Role, DEFAULT_ROLE};

/// Authenticates an `X-Cycles-API-Key` against the key cache.
pub fn principal_of_key(state: &AppState, key: &str) -> ApiResult<Principal> {
    let hash = sha256_hex(key.as_bytes());
    let keys = state.keys.read().map_err(|_| ApiError::internal("key cache poisoned"))?;
    match keys.get(&hash) {
        Some(info) if info.expires_at_ms > now_ms() => Ok(Principal {
            tenant: info.tenant.clone(),
            key_id: info.key_id.clone(),
            name: info.name.clone(),
            role: info.role,
            permissions: info.permissions.clone(),
        }),
        Some(_) => Err(ApiError::new(ErrorCode::Unauthorized, "the API key has expired")),
        None => Err(ApiError::new(ErrorCode::Unauthorized, "unknown or revoked API key")),
    }
}

/// Looks the request's key up in the store (a key the cache does not hold) and caches it if it
/// is ACTIVE and readable; the cache is then asked again. A key that is not found is not
/// remembered: each such request of the minted form costs one lookup (on Redis two GETs,
/// under no lock).
async fn look_up_key(state: &AppState, parts: &Parts) -> ApiResult<()> {
    let Some(key) = parts.headers.get("x-cycles-api-key").and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    // only what this gateway could have minted is looked up (`cyc_live_` and 48 hex digits),
    // and only a key the cache does not hold (an expired one stays refused)
    let minted = key.strip_prefix(crate::admin_api::KEY_SECRET_PREFIX).is_some_and(|rest| rest.len() == 48 && rest.bytes().all(|b| b.is_ascii_hexdigit()));
    let hash = sha256_hex(key.as_bytes());
    if !minted || state.keys.read().map_err(|_| ApiError::internal("key cache poisoned"))?.contains_key(&hash) {
        return Ok(());
    }
    let seen = state.key_change_count();
    if let Some(stored) = state.store.api_key_by_hash(hash.clone()).await?
        && stored.status == "ACTIVE"
        && let Some(info) = crate::server::key_info(&stored)
    {
        // not over a revocation or close made here while the key was read
        state.reload_keys_if_unchanged(seen, |keys| {
            keys.insert(hash, info);
        });
    }
    Ok(())
}

fn principal_from_headers(parts: &Parts, state: &AppState) -> ApiResult<Principal> {
    let key = parts
        .headers
        .get("x-cycles-api-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing X-Cycles-API-Key header"))?;
    principal_of_key(state, key)
}

impl FromRequestParts<Shared> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let p = principal_from_headers(parts, state)?;
        crate::context::RequestContext::note_tenant(&p.tenant);
        Ok(p)
    }
}

/// How a route is authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (health, metrics, the OpenAPI document).
    Public,
    /// Any valid tenant key, or the admin key (introspection).
    AnyKey,
    /// A tenant key holding the permission.
    Key(Permission),
    /// The admin key, or a tenant key holding the permission.
    AdminOrKey(Permission),
}

/// The authorisation of `(method, route)` (`route` as the router matched it); `None` for a
/// route this table does not know, which [`authorize`] refuses.
pub fn route_access(method: &Method, route: &str) -> Option<Access> {
    use Access::*;
    use Permission as P;
    let m = method.as_str();
    Some(match (m, route) {
        ("GET", "/healthz" | "/metrics" | "/openapi.yaml") => Public,
        ("POST", "/v1/reservations") => Key(P::ReservationsCreate),
        ("GET", "/v1/reservations" | "/v1/reservations/{reservation_id}") => Key(P::ReservationsList),
        ("POST", "/v1/reservations/{reservation_id}/commit") => Key(P::ReservationsCommit),
        ("POST", "/v1/reservations/{reservation_id}/release") => Key(P::ReservationsRelease),
        ("POST", "/v1/reservations/{reservation_id}/extend") => Key(P::ReservationsExtend),
        ("POST", "/v1/decide") => Key(P::ReservationsCreate),
        ("GET", "/v1/balances") => Key(P::BalancesRead),
        ("POST", "/v1/events") => Key(P::EventsCreate),
        ("GET", "/v1/auth/introspect") => AnyKey,
        ("GET", "/v1/events") => Key(P::EventsRead),
        ("GET", "/v1/admin/events" | "/v1/admin/events/{event_id}") => AdminOrKey(P::AdminEventsRead),
        (
            "POST" | "GET" | "PATCH" | "DELETE",
            "/v1/admin/webhooks"
            | "/v1/admin/webhooks/{subscription_id}"
            | "/v1/admin/webhooks/{subscription_id}/test"
            | "/v1/admin/webhooks/{subscription_id}/replay"
            | "/v1/admin/webhooks/{subscription_id}/deliveries",
        ) => AdminOrKey(P::AdminWebhooksWrite),
        // Creating one is a tenant's own act (the admin creates through /v1/admin/webhooks).
        ("POST", "/v1/webhooks") => Key(P::WebhooksWrite),
        ("GET", "/v1/webhooks" | "/v1/webhooks/{subscription_id}" | "/v1/webhooks/{subscription_id}/deliveries") => {
            AdminOrKey(P::WebhooksRead)
        }
        ("PATCH" | "DELETE", "/v1/webhooks/{subscription_id}") | ("POST", "/v1/webhooks/{subscription_id}/test") => {
            AdminOrKey(P::WebhooksWrite)
        }
        ("POST", "/v1/admin/tenants") | ("PATCH", "/v1/admin/tenants/{tenant_id}") => AdminOrKey(P::TenantsWrite),
        ("GET", "/v1/admin/tenants" | "/v1/admin/tenants/{tenant_id}") => AdminOrKey(P::TenantsRead),
        ("POST", "/v1/admin/budgets" | "/v1/admin/budgets/freeze" | "/v1/admin/budgets/unfreeze") => {
            AdminOrKey(P::BudgetsWrite)
        }
        ("GET", "/v1/admin/budgets") => AdminOrKey(P::BudgetsRead),
        ("POST", "/v1/admin/budgets/fund") => AdminOrKey(P::BudgetsFund),
        ("POST", "/v1/admin/api-keys")
        | ("PATCH" | "DELETE", "/v1/admin/api-keys/{key_id}") => AdminOrKey(P::ApiKeysWrite),
        ("GET", "/v1/admin/api-keys") => AdminOrKey(P::ApiKeysRead),
        ("POST", "/v1/delegations") => Key(P::DelegationsCreate),
        ("GET", "/v1/chains/{chain_id}" | "/v1/warnings") => Key(P::ChainsRead),
        ("POST", "/v1/chains/{chain_id}/outcome") => Key(P::OutcomesWrite),
        ("GET", "/v1/agents/{agent_id}/trust") => Key(P::TrustRead),
        ("GET", "/v1/escalations" | "/v1/escalations/{escalation_id}") => Key(P::EscalationsRead),
        (
            "POST",
            "/v1/escalations/{escalation_id}/approve"
            | "/v1/escalations/{escalation_id}/deny"
            | "/v1/escalations/{escalation_id}/delegate",
        ) => Key(P::EscalationsDecide),
        ("POST", "/v1/escalation-targets") => Key(P::EscalationTargetsWrite),
        ("GET", "/v1/escalation-targets") => Key(P::EscalationTargetsRead),
        ("POST", "/v1/root-grants" | "/v1/grants/{grant_id}/revoke") => Key(P::GrantsWrite),
        ("PUT", "/v1/authority/settings") | ("GET", "/v1/escrow/audit") => Key(P::GrantsWrite),
        // The holder settles its own grant (checked in the handler); operators any.
        ("POST", "/v1/grants/{grant_id}/commit" | "/v1/grants/{grant_id}/release") => Key(P::GrantsSettle),
        ("GET", "/v1/grants/{grant_id}" | "/v1/chains/{chain_id}/grants") => Key(P::ChainsRead),
        ("POST", "/v1/agents") => Key(P::AgentsWrite),
        ("GET", "/v1/agents" | "/v1/authority/settings") => Key(P::AgentsRead),
        ("POST", "/v1/depth-exceptions") => Key(P::DepthExceptionsCreate),
        ("POST", "/v1/policies" | "/v1/policies/roll-forward") => AdminOrKey(P::PoliciesAdminWrite),
        ("GET", "/v1/policies/active") => AdminOrKey(P::PoliciesRead),
        _ => return None,
    })
}

/// Marks a request authenticated by the admin key.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuthenticated;

/// The middleware on every route: authenticates and checks [`route_access`] before the
/// handler runs; an authenticated key's [`Principal`] is put in the request extensions.
pub async fn authorize(State(state): State<Shared>, request: Request, next: Next) -> Response {
    match check(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

async fn check(state: &Arc<AppState>, request: Request) -> ApiResult<Request> {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let access = route_access(request.method(), &route).ok_or_else(|| {
        tracing::error!(route = %route, method = %request.method(), "a route without a permission in auth::route_access");
        ApiError::forbidden(format!("no permission is defined for {} {route}; refused", request.method()))
    })?;
    let (mut parts, body) = request.into_parts();
    match access {
        Access::Public => {}
        Access::AdminOrKey(_) | Access::AnyKey if parts.headers.contains_key("x-admin-api-key") => {
            crate::server::Admin::from_request_parts(&mut parts, state).await?;
            crate::context::RequestContext::note_actor(crate::events::Actor {
                kind: crate::events::ActorType::Admin,
                key_id: None,
            });
            parts.extensions.insert(AdminAuthenticated);
        }
        Access::AnyKey | Access::Key(_) | Access::AdminOrKey(_) => {
            let p = match principal_from_headers(&parts, state) {
                Err(e) if e.code == ErrorCode::Unauthorized && matches!(state.store, crate::backend::Backend::Redis(_)) => {
                    // maybe a key another gateway created since the cache was loaded
                    look_up_key(state, &parts).await?;
                    principal_from_headers(&parts, state)?
                }
                found => found?,
            };
            crate::context::RequestContext::note_tenant(&p.tenant);
            crate::context::RequestContext::note_actor(crate::events::Actor {
                kind: crate::events::ActorType::ApiKey,
                key_id: Some(p.key_id.clone()),
            });
            if let Access::Key(perm) | Access::AdminOrKey(perm) = access {
                p.require(perm)?;
            }
            parts.extensions.insert(p);
        }
    }
    Ok(Request::from_parts(parts, body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The role table, pinned: a change here is a change of the security model and must be
    /// made on purpose (and documented in docs/gateway.md).
    #[test]
    fn role_table_is_pinned() {
        let table: Vec<(&str, Vec<&str>)> =
            Role::ALL.iter().map(|r| (r.as_str(), r.permissions().iter().map(|p| p.as_str()).collect())).collect();
        let expected: Vec<(&str, Vec<&str>)> = vec![
            (
                "operator",
                vec![
                    "budgets:read",
                    "budgets:write",
                    "budgets:fund",
                    "balances:read",
                    "reservations:list",
                    "reservations:release",
                    "reservations:release-others",
                    "admin:apikeys:read",
                    "admin:apikeys:write",
                    "policies:read",
                    "chains:read",
                    "trust:read",
                    "escalations:read",
                    "escalation-targets:read",
                    "escalation-targets:write",
                    "agents:read",
                    "agents:write",
                    "grants:write",
                    "grants:settle",
                    "outcomes:write",
                    "events:read",
                    "webhooks:read",
                    "webhooks:write",
                ],
            ),
            (
                "approver",
                vec![
                    "escalations:read",
                    "escalations:decide",
                    "depth-exceptions:create",
                    "escalation-targets:read",
                    "outcomes:write",
                    "chains:read",
                    "trust:read",
                    "agents:read",
                    "balances:read",
                    "budgets:read",
                    "reservations:list",
                ],
            ),
            (
                "agent",
                vec![
                    "reservations:create",
                    "reservations:commit",
                    "reservations:release",
                    "reservations:extend",
                    "reservations:list",
                    "balances:read",
                    "events:create",
                    "delegations:create",
                    "grants:settle",
                    "outcomes:write",
                    "chains:read",
                    "trust:read",
                ],
            ),
            (
                "reader",
                vec![
                    "balances:read",
                    "budgets:read",
                    "reservations:list",
                    "policies:read",
                    "chains:read",
                    "trust:read",
                    "escalations:read",
                    "escalation-targets:read",
                    "agents:read",
                    "events:read",
                ],
            ),
        ];
        assert_eq!(table, expected);
    }

    #[test]
    fn only_operators_fund_or_unfreeze_and_only_approvers_decide() {
        for r in Role::ALL {
            assert_eq!(r.grants(Permission::BudgetsFund), r == Role::Operator);
            assert_eq!(r.grants(Permission::BudgetsWrite), r == Role::Operator);
            assert_eq!(r.grants(Permission::EscalationsDecide), r == Role::Approver);
            assert_eq!(r.grants(Permission::DepthExceptionsCreate), r == Role::Approver);
        }
        for p in [
            Permission::TenantsRead,
            Permission::TenantsWrite,
            Permission::PoliciesAdminWrite,
            Permission::AdminEventsRead,
            Permission::AdminWebhooksWrite,
        ] {
            assert!(p.admin_only(), "{p}");
        }
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
        }
        let mut names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Permission::ALL.len());
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn requested_permissions_narrow_the_role() {
        let p = effective_permissions(Role::Agent, Some(&["balances:read".to_string()])).unwrap();
        assert_eq!(p, vec![Permission::BalancesRead]);
        assert!(effective_permissions(Role::Agent, Some(&["budgets:fund".to_string()])).is_err());
        assert!(effective_permissions(Role::Agent, Some(&["nope".to_string()])).is_err());
        assert_eq!(effective_permissions(Role::Reader, None).unwrap(), Role::Reader.permissions());
    }
}

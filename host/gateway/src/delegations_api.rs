//! The delegation endpoints: HTTP in and out over the gateway's side of a delegation in
//! [`crate::delegations`], whose policy component decides.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::auth::Principal;
use crate::context::RequestContext;
use crate::delegations::{
    DelegationBody, DelegationCall, Delegations, OutcomeBody, OutcomeReport, TrustScore, WarningList, WarningsQuery,
};
use crate::traces::ChainExport;
use crate::api_error::ApiResult;
use crate::server::{idempotency_header, AppState, Body, Shared, Tenant, Q};

/// The delegation service over the gateway's state.
fn service(state: &AppState) -> Delegations<'_> {
    Delegations {
        store: &state.store,
        policy: state.policy.as_ref(),
        tokens: &state.tokens,
        config: &state.config,
        metrics: &state.metrics,
    }
}

/// `POST /v1/delegations`: the decision point.
pub async fn create(
    State(state): State<Shared>,
    principal: Principal,
    headers: HeaderMap,
    Body(body): Body<DelegationBody>,
) -> ApiResult<Response> {
    let idempotency_key = idempotency_header(&headers).map(str::to_string);
    let ctx = RequestContext::current();
    let call = DelegationCall {
        body,
        idempotency_key,
        request_id: ctx.as_ref().map(|c| c.request_id.clone()),
        trace_id: ctx.map(|c| c.trace_id),
    };
    let answer = service(&state).delegate(&principal, call).await?;
    // The stored JSON text as it is, so a first answer and its replays are the same bytes.
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}

/// `GET /v1/chains/{chain_id}`: the full chain, oldest event first.
pub async fn get_chain(State(state): State<Shared>, Tenant(tenant): Tenant, Path(chain_id): Path<String>) -> ApiResult<Json<ChainExport>> {
    Ok(Json(service(&state).chain(tenant, chain_id).await?))
}

/// `POST /v1/chains/{chain_id}/outcome`: who reports is the key's principal, never a body
/// field ([`Delegations::report_outcome`]).
pub async fn report_outcome(
    State(state): State<Shared>,
    principal: Principal,
    Path(chain_id): Path<String>,
    Body(body): Body<OutcomeBody>,
) -> ApiResult<Json<OutcomeReport>> {
    Ok(Json(service(&state).report_outcome(&principal, chain_id, body).await?))
}

/// `GET /v1/agents/{agent_id}/trust`: the registry's score.
pub async fn get_trust(State(state): State<Shared>, Tenant(tenant): Tenant, Path(agent): Path<String>) -> ApiResult<Json<TrustScore>> {
    Ok(Json(service(&state).trust(tenant, agent).await?))
}

/// `GET /v1/warnings`: the tenant's latest warning trace events, newest first.
pub async fn list_warnings(State(state): State<Shared>, Tenant(tenant): Tenant, Q(q): Q<WarningsQuery>) -> ApiResult<Json<WarningList>> {
    Ok(Json(service(&state).warnings(tenant, q).await?))
}

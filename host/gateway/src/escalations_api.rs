//! The escalation endpoints (the Vorion seed's human review queue): HTTP in and out over the
//! rules in [`crate::escalations`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::api_error::{ApiError, ApiResult};
use crate::error::{ErrorCode, ErrorDetails};
use crate::escalations::{self, Decision, DecisionBody, EscalationRecord, Ruling, Status, TargetBody, Verb};
use crate::server::{Body, Shared, Tenant, Q};
use crate::util::now_ms;

/// Query of the queue.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// PENDING, DECIDED or EXPIRED.
    pub status: Option<String>,
    /// Only those assigned to this reviewer or agent.
    pub assignee: Option<String>,
}

/// The review queue.
#[derive(Debug, Serialize)]
pub struct EscalationList {
    /// Oldest first.
    pub escalations: Vec<EscalationRecord>,
}

/// The registered agent escalation targets.
#[derive(Debug, Serialize)]
pub struct TargetList {
    /// By descending trust.
    pub targets: Vec<TargetBody>,
}

/// `GET /v1/escalations`: the review queue, oldest first.
pub async fn list(State(state): State<Shared>, Tenant(tenant): Tenant, Q(q): Q<ListQuery>) -> ApiResult<Json<EscalationList>> {
    let status = match q.status.as_deref() {
        None => None,
        Some(name) => {
            Some(Status::parse(name).ok_or_else(|| ApiError::invalid("`status` must be PENDING, DECIDED or EXPIRED"))?)
        }
    };
    let now = now_ms();
    let signer = state.tokens.signing_key().clone();
    Ok(state
        .store
        .unit(&tenant.clone(), move |conn| {
            let escalations = escalations::queue(conn, &tenant, status, q.assignee.as_deref(), now, &signer)?;
            Ok(Json(EscalationList { escalations }))
        })
        .await?)
}

/// `GET /v1/escalations/{id}`.
pub async fn get_one(State(state): State<Shared>, Tenant(tenant): Tenant, Path(id): Path<String>) -> ApiResult<Json<EscalationRecord>> {
    let now = now_ms();
    let signer = state.tokens.signing_key().clone();
    Ok(state.store.unit(&tenant.clone(), move |conn| escalations::get(conn, &tenant, &id, now, &signer).map(Json)).await?)
}

async fn decide(state: Shared, who: Principal, id: String, body: DecisionBody, verb: Verb) -> ApiResult<Json<EscalationRecord>> {
    let ruling = Ruling::new(verb, body)?;
    let (now, ttl) = (now_ms(), state.config.escalation_ttl_ms);
    let authority = Arc::clone(&state);
    let result = state
        .store
        .unit(&who.tenant.clone(), move |conn| escalations::decide(conn, &authority.tokens, &who.tenant, &id, &who.name, ruling.clone(), now, ttl))
        .await?;
    let closed_as = result.decision.unwrap_or(Decision::Expired);
    state.metrics.escalations.with_label_values(&[closed_as.as_str()]).inc();
    if closed_as == Decision::Expired {
        return Err(ApiError::new(ErrorCode::EscalationClosed, "the escalation expired before this decision (EXPIRED)")
            .with_details(ErrorDetails::Escalation(Box::new(result))));
    }
    Ok(Json(result))
}

/// `POST /v1/escalations/{id}/approve`.
pub async fn approve(
    State(s): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<DecisionBody>,
) -> ApiResult<Json<EscalationRecord>> {
    decide(s, p, id, b, Verb::Approve).await
}

/// `POST /v1/escalations/{id}/deny`.
pub async fn deny(
    State(s): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<DecisionBody>,
) -> ApiResult<Json<EscalationRecord>> {
    decide(s, p, id, b, Verb::Deny).await
}

/// `POST /v1/escalations/{id}/delegate`.
pub async fn delegate(
    State(s): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    Body(b): Body<DecisionBody>,
) -> ApiResult<Json<EscalationRecord>> {
    decide(s, p, id, b, Verb::Delegate).await
}

/// `POST /v1/escalation-targets`: registers or replaces a target.
pub async fn register_target(
    State(state): State<Shared>,
    Tenant(tenant): Tenant,
    Body(b): Body<TargetBody>,
) -> ApiResult<(StatusCode, Json<TargetBody>)> {
    let target = b.clone();
    state.store.unit(&tenant.clone(), move |conn| escalations::register_target(conn, &tenant, &target)).await?;
    Ok((StatusCode::CREATED, Json(b)))
}

/// `GET /v1/escalation-targets`: by descending trust.
pub async fn list_targets(State(state): State<Shared>, Tenant(tenant): Tenant) -> ApiResult<Json<TargetList>> {
    Ok(state.store.unit(&tenant.clone(), move |conn| Ok(Json(TargetList { targets: conn.escalation_targets(&tenant)? }))).await?)
}

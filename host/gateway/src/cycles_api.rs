//! The Cycles runtime endpoints (`cycles-protocol-v0.yaml` paths): thin handlers that validate,
//! authenticate, and run one ledger operation on the store.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use crate::cycles::{
    check_idempotency_key, BalancesResponse, CommitRequest, CommitResponse, DecisionRequest, DecisionResponse, EventCreateResponse,
    EventRequest, ExtendRequest, ExtendResponse, ReleaseRequest, ReleaseResponse, ReservationCreateResponse,
    ReservationDetail, ReservationListResponse, ReserveRequest,
};
use crate::api_error::ApiResult;
use crate::error::ErrorCode;
use crate::ledger::{self, BalanceFilter, ListFilter};
use crate::auth::{Permission, Principal};
use crate::ledger::OwnerAction;
use crate::server::{idempotency_header, Body, Shared, Tenant, Q};
use crate::util::now_ms;

/// `POST /v1/reservations` (createReservation).
pub async fn create_reservation(
    State(state): State<Shared>,
    p: Principal,
    headers: HeaderMap,
    Body(req): Body<ReserveRequest>,
) -> ApiResult<Json<ReservationCreateResponse>> {
    check_idempotency_key(&req.idempotency_key, idempotency_header(&headers))?;
    req.validate()?;
    let hash = ledger::request_hash(&req, "")?;
    let now = now_ms();
    let (tenant, owner) = (p.tenant, p.key_id);
    let result = state
        .store
        .unit(&tenant.clone(), move |c| match ledger::reserve_as(c, &tenant, Some(&owner), &req, &hash, now) {
            // A denial is reported as an event: undo whatever the refused reservation wrote,
            // record the event, and answer the refusal once the event is committed.
            Err(e) if ledger::is_denial(&e) => {
                crate::repo::UnitOfWork::rollback(c)?;
                ledger::emit_denied(c, &tenant, &req.subject, &req.action, &req.estimate, &e, now)?;
                Ok(Err(e))
            }
            outcome => outcome.map(Ok),
        })
        .await
        .and_then(|outcome| outcome);
    let outcome = match &result {
        Ok(r) if r.reservation_id.is_some() => "created",
        Ok(_) => "dry_run",
        Err(e) if e.code == ErrorCode::InternalError => "error",
        Err(_) => "denied",
    };
    state.metrics.reservations.with_label_values(&[outcome]).inc();
    Ok(Json(result?.response))
}

/// `POST /v1/reservations/{id}/commit` (commitReservation).
pub async fn commit_reservation(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(req): Body<CommitRequest>,
) -> ApiResult<Json<CommitResponse>> {
    check_idempotency_key(&req.idempotency_key, idempotency_header(&headers))?;
    req.actual.validate("actual")?;
    let hash = ledger::request_hash(&req, &id)?;
    let now = now_ms();
    let (tenant, key_id, others) = (p.tenant.clone(), p.key_id.clone(), p.has(Permission::ReservationsReleaseOthers));
    let body = state
        .store
        .unit(&tenant.clone(), move |c| {
            ledger::check_owner(c, &tenant, &id, &key_id, others, OwnerAction::Commit)?;
            ledger::commit(c, &tenant, &id, &req, &hash, now)
        })
        .await?;
    let body = body.into_result()?;
    state.metrics.reservations.with_label_values(&["committed"]).inc();
    Ok(Json(body))
}

/// `POST /v1/reservations/{id}/release` (releaseReservation).
pub async fn release_reservation(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(req): Body<ReleaseRequest>,
) -> ApiResult<Json<ReleaseResponse>> {
    check_idempotency_key(&req.idempotency_key, idempotency_header(&headers))?;
    if req.reason.as_ref().is_some_and(|r| r.len() > 256) {
        return Err(crate::api_error::ApiError::invalid("`reason` is longer than 256 characters"));
    }
    let hash = ledger::request_hash(&req, &id)?;
    let now = now_ms();
    let (tenant, key_id, others) = (p.tenant.clone(), p.key_id.clone(), p.has(Permission::ReservationsReleaseOthers));
    let body = state
        .store
        .unit(&tenant.clone(), move |c| {
            ledger::check_owner(c, &tenant, &id, &key_id, others, OwnerAction::Release)?;
            ledger::release(c, &tenant, &id, &req, &hash, now)
        })
        .await?;
    let body = body.into_result()?;
    state.metrics.reservations.with_label_values(&["released"]).inc();
    Ok(Json(body))
}

/// `POST /v1/reservations/{id}/extend` (extendReservation).
pub async fn extend_reservation(
    State(state): State<Shared>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(req): Body<ExtendRequest>,
) -> ApiResult<Json<ExtendResponse>> {
    check_idempotency_key(&req.idempotency_key, idempotency_header(&headers))?;
    let hash = ledger::request_hash(&req, &id)?;
    let now = now_ms();
    let (tenant, key_id, others) = (p.tenant.clone(), p.key_id.clone(), p.has(Permission::ReservationsReleaseOthers));
    let body = state
        .store
        .unit(&tenant.clone(), move |c| {
            ledger::check_owner(c, &tenant, &id, &key_id, others, OwnerAction::Extend)?;
            ledger::extend(c, &tenant, &id, &req, &hash, now)
        })
        .await?;
    let body = body.into_result()?;
    state.metrics.reservations.with_label_values(&["extended"]).inc();
    Ok(Json(body))
}

/// `GET /v1/reservations` (listReservations).
pub async fn list_reservations(
    State(state): State<Shared>,
    Tenant(tenant): Tenant,
    Q(filter): Q<ListFilter>,
) -> ApiResult<Json<ReservationListResponse>> {
    Ok(Json(state.store.unit(&tenant.clone(), move |c| ledger::list_reservations(c, &tenant, &filter)).await?))
}

/// `GET /v1/reservations/{id}` (getReservation): an EXPIRED reservation answers 410.
pub async fn get_reservation(
    State(state): State<Shared>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<ReservationDetail>> {
    let r = state.store.unit(&tenant.clone(), move |c| ledger::owned_reservation(c, &tenant, &id)).await?;
    if r.status == "EXPIRED" {
        return Err(crate::api_error::ApiError::new(
            ErrorCode::ReservationExpired,
            format!("reservation `{}` has expired", r.id),
        ));
    }
    Ok(Json(ledger::reservation_detail(&r, true)))
}

/// `POST /v1/decide` (decide).
pub async fn decide(
    State(state): State<Shared>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Body(req): Body<DecisionRequest>,
) -> ApiResult<Json<DecisionResponse>> {
    check_idempotency_key(&req.idempotency_key, idempotency_header(&headers))?;
    req.subject.validate()?;
    req.action.validate()?;
    req.estimate.validate("estimate")?;
    let hash = ledger::request_hash(&req, "")?;
    Ok(Json(state.store.unit(&tenant.clone(), move |c| ledger::decide(c, &tenant, &req, &hash)).await?))
}

/// `GET /v1/balances` (getBalances).
pub async fn get_balances(
    State(state): State<Shared>,
    Tenant(tenant): Tenant,
    Q(filter): Q<BalanceFilter>,
) -> ApiResult<Json<BalancesResponse>> {
    Ok(Json(state.store.unit(&tenant.clone(), move |c| ledger::get_balances(c, &tenant, &filter)).await?))
}

/// `POST /v1/events` (createEvent): 201 APPLIED.
pub async fn create_event(
    State(state): State<Shared>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Body(req): Body<EventRequest>,
) -> ApiResult<(StatusCode, Json<EventCreateResponse>)> {
    check_idempotency_key(&req.idempotency_key, idempotency_header(&headers))?;
    req.subject.validate()?;
    req.action.validate()?;
    req.actual.validate("actual")?;
    let hash = ledger::request_hash(&req, "")?;
    let now = now_ms();
    let body = state.store.unit(&tenant.clone(), move |c| ledger::event(c, &tenant, &req, &hash, now)).await?;
    Ok((StatusCode::CREATED, Json(body)))
}

//! The HTTP surface of the event stream and webhooks (Cycles v0.1.25 Pillar 4): the three
//! event lists, the admin and tenant webhook subscription operations, the test probe, replay
//! and the delivery lists. Handlers parse and authorise; [`crate::events`] and
//! [`crate::webhooks`] decide and store.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api_error::{ApiError, ApiResult};
use crate::error::{ErrorCode, GatewayError, GatewayResult};
use crate::events::{self, ActorType, EventCategory, EventData, EventFilter, EventType, NewEvent, SortBy, SortDir, SYSTEM_TENANT};
use crate::ledger::{tenant_state, TenantState};
use crate::context::RequestContext;
use crate::server::{Admin, Body, Caller, Shared, Tenant, Q};
use crate::util::{new_id, now_ms, page_size, rfc3339};
use crate::webhooks::{
    self, CreateRequest, DeliveryFilter, DeliveryPage, ReplayRequest, Subscription, SubscriptionDraft, SubscriptionPage,
    SubscriptionStatus, SubscriptionView, UpdateRequest,
};

fn event_type(field: &str, value: Option<&str>) -> ApiResult<Option<EventType>> {
    value
        .map(|v| EventType::parse(v).ok_or_else(|| ApiError::invalid(format!("`{field}` `{v}` is not an event type"))))
        .transpose()
}

fn category(value: Option<&str>) -> ApiResult<Option<EventCategory>> {
    value
        .map(|v| EventCategory::parse(v).ok_or_else(|| ApiError::invalid(format!("`category` `{v}` is not an event category"))))
        .transpose()
}

fn time(field: &str, value: Option<&str>) -> GatewayResult<Option<i64>> {
    value.map(|v| events::parse_time(field, v)).transpose()
}

/// The query of `GET /v1/admin/events`. Like every list's query, a parameter this gateway does
/// not know is ignored (the spec adds parameters and asks servers that do not know one to
/// ignore it); a known one with a bad value is a 400 naming it.
#[derive(Debug, Default, Deserialize)]
#[allow(missing_docs)]
pub struct AdminEventQuery {
    pub tenant_id: Option<String>,
    pub event_type: Option<String>,
    pub category: Option<String>,
    pub scope: Option<String>,
    pub correlation_id: Option<String>,
    pub trace_id: Option<String>,
    pub request_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub search: Option<String>,
    pub sort_by: Option<SortBy>,
    pub sort_dir: Option<SortDir>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

fn json_text(body: String) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /v1/admin/events` (listEvents): every tenant's events, newest first.
pub async fn list_admin(State(state): State<Shared>, _admin: Admin, Q(q): Q<AdminEventQuery>) -> ApiResult<Response> {
    let search = q.search.filter(|s| !s.is_empty());
    if search.as_ref().is_some_and(|s| s.chars().count() > 128) {
        return Err(ApiError::invalid("`search` is longer than 128 characters"));
    }
    let filter = EventFilter {
        tenant_id: q.tenant_id,
        tenant_accessible_only: false,
        event_type: event_type("event_type", q.event_type.as_deref())?,
        category: category(q.category.as_deref())?,
        scope_prefix: q.scope,
        correlation_id: q.correlation_id,
        trace_id: q.trace_id,
        request_id: q.request_id,
        from_ms: time("from", q.from.as_deref())?,
        to_ms: time("to", q.to.as_deref())?,
        search,
        sort_by: q.sort_by.unwrap_or_default(),
        sort_dir: q.sort_dir.unwrap_or_default(),
        limit: page_size(q.limit)?,
        cursor: q.cursor,
    };
    let reading = filter.tenant_id.clone().unwrap_or_else(|| SYSTEM_TENANT.into());
    let page = state.store.read(&reading, move |c| events::list(c, &filter)).await?;
    Ok(json_text(page.to_json()))
}

/// `GET /v1/admin/events/{event_id}` (getEvent).
pub async fn get_admin(State(state): State<Shared>, _admin: Admin, Path(id): Path<String>) -> ApiResult<Response> {
    let wanted = id.clone();
    let event = state.store.read(SYSTEM_TENANT, move |c| events::get(c, &wanted)).await?.ok_or_else(|| events::not_found(&id))?;
    Ok(json_text(event.body))
}

/// The query of `GET /v1/events`.
#[derive(Debug, Default, Deserialize)]
#[allow(missing_docs)]
pub struct TenantEventQuery {
    pub event_type: Option<String>,
    pub category: Option<String>,
    pub scope: Option<String>,
    pub correlation_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// `GET /v1/events` (listTenantEvents): the key's tenant's budget, reservation and tenant
/// events; asking for an admin-only type or category is a 400.
pub async fn list_tenant(State(state): State<Shared>, Tenant(tenant): Tenant, Q(q): Q<TenantEventQuery>) -> ApiResult<Response> {
    let event_type = event_type("event_type", q.event_type.as_deref())?;
    let category = category(q.category.as_deref())?;
    if let Some(t) = event_type.filter(|t| !t.category().tenant_accessible()) {
        return Err(ApiError::invalid(format!("event type `{}` is admin-only; a tenant reads budget, reservation and tenant events", t.as_str())));
    }
    if let Some(c) = category.filter(|c| !c.tenant_accessible()) {
        return Err(ApiError::invalid(format!("category `{}` is admin-only; a tenant reads budget, reservation and tenant events", c.as_str())));
    }
    let filter = EventFilter {
        tenant_id: Some(tenant.clone()),
        tenant_accessible_only: true,
        event_type,
        category,
        scope_prefix: q.scope,
        correlation_id: q.correlation_id,
        from_ms: time("from", q.from.as_deref())?,
        to_ms: time("to", q.to.as_deref())?,
        limit: page_size(q.limit)?,
        cursor: q.cursor,
        ..EventFilter::default()
    };
    let page = state.store.read(&tenant, move |c| events::list(c, &filter)).await?;
    Ok(json_text(page.to_json()))
}

/// 409 TENANT_CLOSED when `owner` is a closed tenant (CASCADE Rule 2: a closed tenant's
/// subscriptions are read-only).
fn guard_open(conn: &dyn crate::ledger::LedgerStore, owner: &str) -> GatewayResult<()> {
    if owner != SYSTEM_TENANT && tenant_state(conn, owner)? == TenantState::Closed {
        return Err(GatewayError::new(ErrorCode::TenantClosed, format!("tenant `{owner}` is closed; its webhooks are read-only")));
    }
    Ok(())
}

fn lifecycle(sub: &Subscription, previous: Option<&'static str>, new: Option<&'static str>, changed: Vec<String>) -> EventData {
    EventData::WebhookLifecycle {
        subscription_id: sub.subscription_id.clone(),
        tenant_id: sub.tenant_id.clone(),
        previous_status: previous,
        new_status: new,
        changed_fields: changed,
        disable_reason: None,
    }
}

/// Creates a subscription owned by `owner`: validates (the invariants included), checks the
/// URL resolves outside the blocked ranges, stores it and emits `webhook.created`.
async fn create(state: Shared, owner: String, req: CreateRequest) -> ApiResult<(StatusCode, Json<Value>)> {
    if req.event_types.is_empty() {
        return Err(ApiError::invalid("`event_types` must name at least one event type"));
    }
    let url = state.webhooks.settings().check_form(&req.url)?;
    let now = now_ms();
    let sub = Subscription {
        subscription_id: new_id("whsub_"),
        tenant_id: owner,
        name: req.name,
        description: req.description,
        url: req.url,
        event_types: req.event_types,
        event_categories: req.event_categories.unwrap_or_default(),
        scope_filter: req.scope_filter,
        thresholds: req.thresholds,
        signing_secret: req.signing_secret.unwrap_or_else(webhooks::new_secret),
        headers: req.headers.unwrap_or_default(),
        status: SubscriptionStatus::Active,
        retry_policy: req.retry_policy.unwrap_or_default(),
        disable_after_failures: req.disable_after_failures.unwrap_or(10),
        consecutive_failures: 0,
        created_at_ms: now,
        updated_at_ms: now,
        last_triggered_at_ms: None,
        last_success_at_ms: None,
        last_failure_at_ms: None,
        metadata: req.metadata,
    };
    draft(&sub).validate()?;
    webhooks::check_resolved(state.webhooks.settings(), &url).await?;
    let max_subscriptions = state.webhooks.settings().max_subscriptions_per_tenant;
    let secret = sub.signing_secret.clone();
    let body = state
        .store
        .unit(&sub.tenant_id.clone(), move |conn| {
            guard_open(conn, &sub.tenant_id)?;
            let held = webhooks::count_for(conn, &sub.tenant_id)?;
            if held >= max_subscriptions {
                return Err(GatewayError::invalid(format!(
                    "tenant `{}` already has {held} webhook subscriptions, the most this gateway allows (`webhooks.max_subscriptions_per_tenant`)",
                    sub.tenant_id
                )));
            }
            webhooks::save(conn, &sub)?;
            let event = NewEvent::new(EventType::WebhookCreated, sub.tenant_id.clone(), lifecycle(&sub, None, Some("ACTIVE"), vec![]))
                .correlation(format!("webhook_create:{}", sub.subscription_id));
            events::emit(conn, event, now)?;
            Ok(sub.view())
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"subscription": body, "signing_secret": secret}))))
}

fn draft(s: &Subscription) -> SubscriptionDraft<'_> {
    SubscriptionDraft {
        tenant_id: &s.tenant_id,
        event_types: &s.event_types,
        event_categories: &s.event_categories,
        name: s.name.as_deref(),
        description: s.description.as_deref(),
        scope_filter: s.scope_filter.as_deref(),
        signing_secret: &s.signing_secret,
        headers: &s.headers,
        retry_policy: &s.retry_policy,
        disable_after_failures: s.disable_after_failures,
        thresholds: s.thresholds.as_ref(),
    }
}

/// Applies `req` to `sub`; returns the changed fields (status aside) and the status change.
fn apply(sub: &mut Subscription, req: UpdateRequest) -> (Vec<String>, Option<(SubscriptionStatus, SubscriptionStatus)>) {
    let mut changed = Vec::new();
    macro_rules! set {
        ($field:ident, $value:expr) => {
            if let Some(v) = $value {
                if sub.$field != v {
                    sub.$field = v;
                    changed.push(stringify!($field).to_string());
                }
            }
        };
    }
    set!(name, req.name.map(Some));
    set!(description, req.description.map(Some));
    set!(url, req.url);
    set!(event_types, req.event_types);
    set!(event_categories, req.event_categories);
    set!(scope_filter, req.scope_filter.map(Some));
    set!(thresholds, req.thresholds.map(Some));
    set!(signing_secret, req.signing_secret);
    set!(headers, req.headers);
    set!(retry_policy, req.retry_policy);
    set!(disable_after_failures, req.disable_after_failures);
    set!(metadata, req.metadata.map(Some));
    let wanted = req.status.map(|s| match s {
        webhooks::SettableStatus::Active => SubscriptionStatus::Active,
        webhooks::SettableStatus::Paused => SubscriptionStatus::Paused,
    });
    let transition = wanted.filter(|w| *w != sub.status).map(|w| (sub.status, w));
    if let Some((_, to)) = transition {
        sub.status = to;
        if to == SubscriptionStatus::Active {
            sub.consecutive_failures = 0;
        }
    }
    (changed, transition)
}

/// Updates subscription `id` (of `tenant` when a tenant key asks): the merged state must pass
/// the invariants; emits exactly one of `webhook.updated`, `webhook.paused`, `webhook.resumed`
/// (none for a PATCH that changes nothing).
async fn update(state: Shared, id: String, tenant: Option<String>, req: UpdateRequest) -> ApiResult<Json<SubscriptionView>> {
    let new_url = match &req.url {
        Some(u) => Some(state.webhooks.settings().check_form(u)?),
        None => None,
    };
    if let Some(url) = &new_url {
        webhooks::check_resolved(state.webhooks.settings(), url).await?;
    }
    let request_id = RequestContext::current().map(|c| c.request_id).unwrap_or_default();
    let now = now_ms();
    let owner = owner_of(&state, &id, tenant.as_deref()).await?;
    let body = state
        .store
        .unit(&owner, move |conn| {
            let mut sub = webhooks::load_for(conn, &id, tenant.as_deref())?;
            guard_open(conn, &sub.tenant_id)?;
            let (changed, transition) = apply(&mut sub, req.clone());
            draft(&sub).validate()?;
            if changed.is_empty() && transition.is_none() {
                return Ok(sub.view());
            }
            sub.updated_at_ms = now;
            webhooks::save(conn, &sub)?;
            let (event_type, previous, new) = match transition {
                Some((from, SubscriptionStatus::Paused)) => (EventType::WebhookPaused, from, SubscriptionStatus::Paused),
                Some((from, to)) => (EventType::WebhookResumed, from, to),
                None => (EventType::WebhookUpdated, sub.status, sub.status),
            };
            let data = lifecycle(&sub, Some(previous.as_str()), Some(new.as_str()), changed);
            let event = NewEvent::new(event_type, sub.tenant_id.clone(), data)
                .correlation(format!("webhook_update:{}:{request_id}", sub.subscription_id));
            events::emit(conn, event, now)?;
            Ok(sub.view())
        })
        .await?;
    Ok(Json(body))
}

/// Deletes subscription `id` with its undelivered deliveries; emits `webhook.deleted`.
async fn delete(state: Shared, id: String, tenant: Option<String>) -> ApiResult<StatusCode> {
    let now = now_ms();
    let owner = owner_of(&state, &id, tenant.as_deref()).await?;
    state
        .store
        .unit(&owner, move |conn| {
            let sub = webhooks::load_for(conn, &id, tenant.as_deref())?;
            guard_open(conn, &sub.tenant_id)?;
            webhooks::delete(conn, &sub)?;
            let event = NewEvent::new(EventType::WebhookDeleted, sub.tenant_id.clone(), lifecycle(&sub, Some(sub.status.as_str()), None, vec![]))
                .correlation(format!("webhook_delete:{id}"));
            events::emit(conn, event, now)?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends the synthetic `system.webhook_test` event to the subscription's endpoint, signed,
/// outside the queue (it does not count toward auto-disable); answers `WebhookTestResponse`.
async fn test(state: Shared, id: String, tenant: Option<String>) -> ApiResult<Json<Value>> {
    let owner = owner_of(&state, &id, tenant.as_deref()).await?;
    let sub = state
        .store
        .read(&owner, move |c| {
            let sub = webhooks::load_for(c, &id, tenant.as_deref())?;
            guard_open(c, &sub.tenant_id)?;
            Ok(sub)
        })
        .await?;
    let now = now_ms();
    let origin = events::Origin::capture();
    let event = events::Event {
        event_id: new_id("evt_"),
        event_type: EventType::SystemWebhookTest,
        category: EventCategory::System,
        timestamp: rfc3339(now),
        tenant_id: sub.tenant_id.clone(),
        scope: None,
        actor: origin.actor,
        source: events::SOURCE,
        data: EventData::System {
            component: "webhook_dispatcher",
            message: "a test delivery".into(),
            severity: "info",
            details: json!({"subscription_id": sub.subscription_id}),
        },
        correlation_id: Some(format!("webhook_test:{}", sub.subscription_id)),
        request_id: origin.request_id,
        trace_id: origin.trace_id.clone(),
    };
    let body = serde_json::to_string(&event).map_err(ApiError::internal)?;
    let attempt = state.webhooks.send(&sub, &body, &event.event_id, event.event_type.as_str(), origin.trace_id.as_deref()).await;
    let event_id = event.event_id.clone();
    let recorded = attempt.clone();
    let at = now_ms();
    state.store.unit(&sub.tenant_id.clone(), move |c| webhooks::record_test(c, &sub, &event_id, &recorded, at)).await?;
    let mut out = json!({"success": attempt.succeeded(), "response_time_ms": attempt.elapsed_ms, "event_id": event.event_id});
    if let Some(s) = attempt.status {
        out["response_status"] = json!(s);
    }
    if let Some(e) = attempt.error {
        out["error_message"] = json!(e);
    }
    Ok(Json(out))
}

/// The query of the delivery lists.
#[derive(Debug, Default, Deserialize)]
#[allow(missing_docs)]
pub struct DeliveryQuery {
    pub status: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

async fn deliveries(state: &Shared, id: &str, tenant: Option<&str>, q: DeliveryQuery) -> ApiResult<Json<DeliveryPage>> {
    let filter = DeliveryFilter {
        status: q.status,
        from_ms: time("from", q.from.as_deref())?,
        to_ms: time("to", q.to.as_deref())?,
        limit: page_size(q.limit)?,
        cursor: q.cursor,
    };
    let owner = owner_of(state, id, tenant).await?;
    let (id, tenant) = (id.to_string(), tenant.map(str::to_string));
    Ok(Json(
        state
            .store
            .read(&owner, move |c| {
                let sub = webhooks::load_for(c, &id, tenant.as_deref())?;
                webhooks::list_deliveries(c, &sub, &filter)
            })
            .await?,
    ))
}

/// The query of `POST /v1/admin/webhooks`.
#[derive(Debug, Default, Deserialize)]
#[allow(missing_docs)]
pub struct OwnerQuery {
    pub tenant_id: Option<String>,
}

/// `POST /v1/admin/webhooks` (createWebhookSubscription): for `tenant_id`, or system-wide.
pub async fn admin_create(State(state): State<Shared>, _admin: Admin, Q(q): Q<OwnerQuery>, Body(req): Body<CreateRequest>) -> ApiResult<(StatusCode, Json<Value>)> {
    create(state, q.tenant_id.unwrap_or_else(|| SYSTEM_TENANT.into()), req).await
}

/// The query of the subscription lists.
#[derive(Debug, Default, Deserialize)]
#[allow(missing_docs)]
pub struct SubscriptionQuery {
    pub tenant_id: Option<String>,
    pub tenant: Option<String>,
    pub status: Option<SubscriptionStatus>,
    pub event_type: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// `GET /v1/admin/webhooks` (listWebhookSubscriptions).
pub async fn admin_list(State(state): State<Shared>, _admin: Admin, Q(q): Q<SubscriptionQuery>) -> ApiResult<Json<SubscriptionPage>> {
    let filter = webhooks::ListFilter {
        tenant_id: q.tenant_id,
        status: q.status,
        event_type: event_type("event_type", q.event_type.as_deref())?,
        limit: page_size(q.limit)?,
        cursor: q.cursor,
    };
    let reading = filter.tenant_id.clone().unwrap_or_else(|| SYSTEM_TENANT.into());
    Ok(Json(state.store.read(&reading, move |c| webhooks::list(c, &filter)).await?))
}

/// `GET /v1/admin/webhooks/{id}`.
pub async fn admin_get(State(state): State<Shared>, _admin: Admin, Path(id): Path<String>) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(state.store.read(SYSTEM_TENANT, move |c| webhooks::load_for(c, &id, None)).await?.view()))
}

/// `PATCH /v1/admin/webhooks/{id}`.
pub async fn admin_update(State(state): State<Shared>, _admin: Admin, Path(id): Path<String>, Body(req): Body<UpdateRequest>) -> ApiResult<Json<SubscriptionView>> {
    update(state, id, None, req).await
}

/// `DELETE /v1/admin/webhooks/{id}`: 204.
pub async fn admin_delete(State(state): State<Shared>, _admin: Admin, Path(id): Path<String>) -> ApiResult<StatusCode> {
    delete(state, id, None).await
}

/// `POST /v1/admin/webhooks/{id}/test`.
pub async fn admin_test(State(state): State<Shared>, _admin: Admin, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    test(state, id, None).await
}

/// `GET /v1/admin/webhooks/{id}/deliveries` (listWebhookDeliveries).
pub async fn admin_deliveries(State(state): State<Shared>, _admin: Admin, Path(id): Path<String>, Q(q): Q<DeliveryQuery>) -> ApiResult<Json<DeliveryPage>> {
    deliveries(&state, &id, None, q).await
}

/// `POST /v1/admin/webhooks/{id}/replay` (replayEvents): 202 with the replay's id and how
/// many deliveries were queued.
pub async fn admin_replay(State(state): State<Shared>, _admin: Admin, Path(id): Path<String>, Body(req): Body<ReplayRequest>) -> ApiResult<(StatusCode, Json<Value>)> {
    let now = now_ms();
    let from = time("from", req.from.as_deref())?.unwrap_or(0);
    let to = time("to", req.to.as_deref())?.unwrap_or(now);
    if from > to {
        return Err(ApiError::invalid("`from` is after `to`"));
    }
    let max = match req.max_events {
        None => 100,
        Some(n @ 1..=1000) => n as usize,
        Some(n) => return Err(ApiError::invalid(format!("`max_events` must be 1 to 1000, not {n}"))),
    };
    let window = webhooks::ReplayWindow { from_ms: from, to_ms: to, only: req.event_types, max_events: max };
    let owner = owner_of(&state, &id, None).await?;
    let (replay_id, queued) = if owner == SYSTEM_TENANT {
        // its events belong to many tenants: on Redis, one unit per tenant
        state.store.replay_system(id, window, now).await?
    } else {
        state
            .store
            .unit(&owner, move |conn| {
                let sub = webhooks::load_for(conn, &id, None)?;
                guard_open(conn, &sub.tenant_id)?;
                webhooks::replay(conn, &sub, &window, now)
            })
            .await?
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"replay_id": replay_id, "events_queued": queued, "estimated_completion_seconds": queued.div_ceil(32).max(1)})),
    ))
}

/// The tenant whose unit of work changes subscription `id`: `tenant` when the caller is a
/// tenant's key, else the subscription's owner (not found when there is no such
/// subscription; the unit loads it again).
async fn owner_of(state: &Shared, id: &str, tenant: Option<&str>) -> ApiResult<String> {
    if let Some(tenant) = tenant {
        return Ok(tenant.to_string());
    }
    let id = id.to_string();
    let sub = state.store.read(SYSTEM_TENANT, move |c| webhooks::load_for(c, &id, None)).await?;
    Ok(sub.tenant_id)
}

/// The tenant a webhook operation acts for: a tenant key's own, or — for the admin key, which
/// may act on any tenant's subscription — none (the owner comes from the record); the admin
/// is then recorded as acting on the tenant's behalf.
fn acting(caller: &Caller) -> Option<String> {
    match caller {
        Caller::Key(p) => Some(p.tenant.clone()),
        Caller::Admin => {
            RequestContext::note_actor(events::Actor { kind: ActorType::AdminOnBehalfOf, key_id: None });
            None
        }
    }
}

/// `POST /v1/webhooks` (createTenantWebhook): owned by the key's tenant.
pub async fn tenant_create(State(state): State<Shared>, Tenant(tenant): Tenant, Body(req): Body<CreateRequest>) -> ApiResult<(StatusCode, Json<Value>)> {
    create(state, tenant, req).await
}

/// `GET /v1/webhooks` (listTenantWebhooks); the admin key names the tenant with `tenant`.
pub async fn tenant_list(State(state): State<Shared>, caller: Caller, Q(q): Q<SubscriptionQuery>) -> ApiResult<Json<SubscriptionPage>> {
    let tenant = match (&caller, q.tenant) {
        (Caller::Key(p), Some(t)) if t != p.tenant => {
            return Err(ApiError::forbidden("the `tenant` filter does not match the tenant of the API key"));
        }
        (Caller::Key(p), _) => p.tenant.clone(),
        (Caller::Admin, Some(t)) => t,
        (Caller::Admin, None) => {
            return Err(ApiError::invalid("tenant query parameter is required when using admin key authentication"));
        }
    };
    let filter = webhooks::ListFilter {
        tenant_id: Some(tenant.clone()),
        status: q.status,
        event_type: event_type("event_type", q.event_type.as_deref())?,
        limit: page_size(q.limit)?,
        cursor: q.cursor,
    };
    Ok(Json(state.store.read(&tenant, move |c| webhooks::list(c, &filter)).await?))
}

/// `GET /v1/webhooks/{id}` (getTenantWebhook): another tenant's is a 404.
pub async fn tenant_get(State(state): State<Shared>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<SubscriptionView>> {
    let tenant = acting(&caller);
    let reading = tenant.clone().unwrap_or_else(|| SYSTEM_TENANT.into());
    Ok(Json(state.store.read(&reading, move |c| webhooks::load_for(c, &id, tenant.as_deref())).await?.view()))
}

/// `PATCH /v1/webhooks/{id}` (updateTenantWebhook).
pub async fn tenant_update(State(state): State<Shared>, caller: Caller, Path(id): Path<String>, Body(req): Body<UpdateRequest>) -> ApiResult<Json<SubscriptionView>> {
    let tenant = acting(&caller);
    update(state, id, tenant, req).await
}

/// `DELETE /v1/webhooks/{id}` (deleteTenantWebhook): 204.
pub async fn tenant_delete(State(state): State<Shared>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let tenant = acting(&caller);
    delete(state, id, tenant).await
}

/// `POST /v1/webhooks/{id}/test` (testTenantWebhook).
pub async fn tenant_test(State(state): State<Shared>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let tenant = acting(&caller);
    test(state, id, tenant).await
}

/// `GET /v1/webhooks/{id}/deliveries` (listTenantWebhookDeliveries).
pub async fn tenant_deliveries(State(state): State<Shared>, caller: Caller, Path(id): Path<String>, Q(q): Q<DeliveryQuery>) -> ApiResult<Json<DeliveryPage>> {
    let tenant = acting(&caller);
    deliveries(&state, &id, tenant.as_deref(), q).await
}

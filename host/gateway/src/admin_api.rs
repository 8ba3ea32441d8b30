//! Provisioning: the tenant, budget and API-key operations of
//! `cycles-governance-admin-v0.1.25.yaml` (request and response shapes as there), plus
//! `GET /v1/auth/introspect`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::cycles::{
    parse_scope, valid_scope_value, Amount, ApiKey, ApiKeyCreated, ApiKeyList, ApiKeyStatus, BudgetLedger,
    FundingResponse, LedgerList, ObserveMode, OveragePolicy, Tenant, TenantList, TenantStatus, Unit,
};
use crate::api_error::{ApiError, ApiResult};
use crate::error::{ErrorCode, ErrorDetails, GatewayError, GatewayResult};
use crate::events::{self, EventData, EventType, NewEvent, SYSTEM_TENANT};
use crate::ledger::{self, BudgetRow, LedgerStore};
use crate::repo::StoredApiKey;
use crate::auth::{self, Role};
use crate::server::{Admin, Body, Caller, KeyInfo, Shared, Q};
use crate::tenancy::{close_cascade, key_for_change, store_key, stored_key, tenant_update_correlation};
use crate::util::{new_id, now_ms, random_hex, rfc3339, sha256_hex, ListControls};

/// `TenantCreateRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct TenantCreateRequest {
    pub tenant_id: String,
    pub name: String,
    #[serde(default)]
    pub parent_tenant_id: Option<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub default_commit_overage_policy: Option<OveragePolicy>,
    #[serde(default)]
    pub default_reservation_ttl_ms: Option<i64>,
    #[serde(default)]
    pub max_reservation_ttl_ms: Option<i64>,
    #[serde(default)]
    pub max_reservation_extensions: Option<i64>,
    #[serde(default)]
    pub reservation_expiry_policy: Option<String>,
}


/// `POST /v1/admin/tenants` (createTenant): 201, or 200 with the existing tenant.
pub async fn create_tenant(
    State(state): State<Shared>,
    _admin: Admin,
    Body(req): Body<TenantCreateRequest>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    if !valid_scope_value(&req.tenant_id) {
        return Err(ApiError::invalid("`tenant_id` must match ^[a-zA-Z0-9_.-]+$ and be 1-128 characters"));
    }
    if req.tenant_id == crate::events::SYSTEM_TENANT {
        // system events and system webhook subscriptions live under this id
        return Err(ApiError::invalid(format!("`tenant_id` `{}` is reserved", crate::events::SYSTEM_TENANT)));
    }
    if req.name.is_empty() || req.name.len() > 256 {
        return Err(ApiError::invalid("`name` must be 1-256 characters"));
    }
    if let Some(ttl) = req.default_reservation_ttl_ms
        && !(1000..=86_400_000).contains(&ttl) {
            return Err(ApiError::invalid("`default_reservation_ttl_ms` must be 1000-86400000"));
        }
    let tenant = Tenant {
        tenant_id: req.tenant_id.clone(),
        name: req.name,
        status: TenantStatus::Active,
        parent_tenant_id: req.parent_tenant_id,
        default_commit_overage_policy: req.default_commit_overage_policy.unwrap_or_default(),
        default_reservation_ttl_ms: req.default_reservation_ttl_ms.unwrap_or(ledger::DEFAULT_TTL_MS),
        max_reservation_ttl_ms: req.max_reservation_ttl_ms.unwrap_or(3_600_000),
        max_reservation_extensions: req.max_reservation_extensions.unwrap_or(ledger::MAX_EXTENSIONS),
        reservation_expiry_policy: req.reservation_expiry_policy,
        metadata: req.metadata,
        observe_mode: None,
        created_at: rfc3339(now_ms()),
        updated_at: None,
        suspended_at: None,
        closed_at: None,
    };
    Ok(state
        .store
        .unit(&tenant.tenant_id.clone(), move |conn| match conn.tenant_record(&tenant.tenant_id)? {
            Some(existing) => Ok((StatusCode::OK, Json(existing))),
            None => {
                conn.save_tenant_record(&tenant)?;
                let data = EventData::TenantLifecycle {
                    tenant_id: tenant.tenant_id.clone(),
                    previous_status: None,
                    new_status: TenantStatus::Active.as_str().into(),
                    changed_fields: vec![],
                };
                let event = NewEvent::new(EventType::TenantCreated, tenant.tenant_id.clone(), data)
                    .scope(format!("tenant:{}", tenant.tenant_id));
                events::emit(conn, event, now_ms())?;
                Ok((StatusCode::CREATED, Json(tenant.clone())))
            }
        })
        .await?)
}

/// Query of listTenants (`cycles-governance-admin-v0.1.25.yaml`): the filters combine with AND
/// and apply before the page is cut.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TenantListQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only children of this tenant.
    pub parent_tenant_id: Option<String>,
    /// Only tenants in this observe mode (one without a mode is in ENFORCE).
    pub observe_mode: Option<String>,
    /// A case-insensitive substring of the tenant id or name (empty: no filter; at most 128
    /// characters).
    pub search: Option<String>,
    /// `tenant_id`, `name`, `status` or `created_at`; absent: by tenant id.
    pub sort_by: Option<String>,
    /// `asc` or `desc` (the default when `sort_by` is given).
    pub sort_dir: Option<String>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
}

/// One page of `tenants` (in tenant-id order) that pass `q`'s filters, in `q`'s order.
fn tenant_page(tenants: Vec<Tenant>, q: &TenantListQuery) -> GatewayResult<TenantList> {
    let status = q.status.as_deref().map(|s| TenantStatus::parse(s, "status")).transpose()?;
    let mode = match q.observe_mode.as_deref() {
        None => None,
        Some("OBSERVE") => Some(ObserveMode::Observe),
        Some("ENFORCE" | "DISABLED") => Some(ObserveMode::Enforce),
        Some(other) => return Err(GatewayError::invalid(format!("`observe_mode` must be OBSERVE, ENFORCE or DISABLED, got `{other}`"))),
    };
    let controls = ListControls::read(q.search.as_deref(), q.sort_dir.as_deref(), q.cursor.as_deref(), q.limit)?;
    let key: Option<fn(&Tenant, &Tenant) -> std::cmp::Ordering> = match q.sort_by.as_deref() {
        None => None,
        Some("tenant_id") => Some(|a, b| a.tenant_id.cmp(&b.tenant_id)),
        Some("name") => Some(|a, b| a.name.cmp(&b.name)),
        Some("status") => Some(|a, b| a.status.as_str().cmp(b.status.as_str())),
        // RFC 3339 in UTC with a fixed width orders as the instants do
        Some("created_at") => Some(|a, b| a.created_at.cmp(&b.created_at)),
        Some(other) => {
            return Err(GatewayError::invalid(format!("`sort_by` must be one of tenant_id, name, status, created_at, not `{other}`")));
        }
    };
    let kept: Vec<Tenant> = tenants
        .into_iter()
        .filter(|t| {
            status.is_none_or(|s| t.status == s)
                && q.parent_tenant_id.as_deref().is_none_or(|p| t.parent_tenant_id.as_deref() == Some(p))
                && mode.is_none_or(|m| t.mode() == m)
                && (controls.matches(&t.tenant_id) || controls.matches(&t.name))
        })
        .collect();
    // ties keep the tenant-id order
    let page = controls.page(kept, key);
    Ok(TenantList { tenants: page.balances, has_more: page.has_more, next_cursor: page.next_cursor })
}

/// `GET /v1/admin/tenants` (listTenants).
pub async fn list_tenants(State(state): State<Shared>, _admin: Admin, Q(q): Q<TenantListQuery>) -> ApiResult<Json<TenantList>> {
    Ok(state
        .store
        .read(SYSTEM_TENANT, move |conn| tenant_page(conn.tenant_records()?, &q).map(Json))
        .await?)
}

/// `GET /v1/admin/tenants/{tenant_id}` (getTenant).
pub async fn get_tenant(State(state): State<Shared>, _admin: Admin, Path(id): Path<String>) -> ApiResult<Json<Tenant>> {
    Ok(state
        .store
        .read(SYSTEM_TENANT, move |conn| {
            conn.tenant_record(&id)?
                .map(Json)
                .ok_or_else(|| GatewayError::not_found(format!("tenant `{id}` not found")))
        })
        .await?)
}

/// `TenantUpdateRequest` (the fields this server honours).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct TenantUpdateRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// v0.1.26 `Tenant.observe_mode` (the governance extension's field; set here instead of
    /// its separate PATCH endpoint, which the spec allows).
    #[serde(default)]
    pub observe_mode: Option<crate::cycles::ObserveMode>,
}

/// `PATCH /v1/admin/tenants/{tenant_id}` (updateTenant). CLOSED is terminal and cascades:
/// budgets CLOSED, keys REVOKED, open reservations RELEASED.
pub async fn update_tenant(
    State(state): State<Shared>,
    _admin: Admin,
    Path(id): Path<String>,
    Body(req): Body<TenantUpdateRequest>,
) -> ApiResult<Json<Tenant>> {
    let new_status = req.status.as_deref().map(|s| TenantStatus::parse(s, "status")).transpose()?;
    let now = now_ms();
    let cache = state.clone();
    let tenant = state
        .store
        .unit_then(&id.clone(), move |conn| {
            let mut t = conn.tenant_record(&id)?.ok_or_else(|| GatewayError::not_found(format!("tenant `{id}` not found")))?;
            if t.status == TenantStatus::Closed {
                return Err(GatewayError::new(ErrorCode::TenantClosed, format!("tenant `{id}` is closed")));
            }
            let previous = t.status;
            let mut changed = Vec::new();
            if let Some(n) = req.name.clone() {
                if t.name != n {
                    changed.push("name".to_string());
                }
                t.name = n;
            }
            if let Some(m) = req.metadata.clone() {
                if t.metadata.as_ref() != Some(&m) {
                    changed.push("metadata".to_string());
                }
                t.metadata = Some(m);
            }
            if let Some(mode) = req.observe_mode {
                if t.observe_mode.unwrap_or(ObserveMode::Enforce).as_str() != mode.as_str() {
                    changed.push("observe_mode".to_string());
                }
                t.observe_mode = Some(mode);
            }
            if let Some(s) = new_status {
                if s != previous {
                    changed.push("status".to_string());
                    match s {
                        TenantStatus::Suspended => t.suspended_at = Some(rfc3339(now)),
                        TenantStatus::Closed => t.closed_at = Some(rfc3339(now)),
                        TenantStatus::Active => {}
                    }
                }
                t.status = s;
            }
            t.updated_at = Some(rfc3339(now));
            conn.save_tenant_record(&t)?;
            if !changed.is_empty() {
                let event_type = match (previous, t.status) {
                    (_, TenantStatus::Closed) if previous != TenantStatus::Closed => EventType::TenantClosed,
                    (TenantStatus::Active, TenantStatus::Suspended) => EventType::TenantSuspended,
                    (TenantStatus::Suspended, TenantStatus::Active) => EventType::TenantReactivated,
                    // v0.1.26: an observe-mode change is a settings change.
                    _ if changed == ["observe_mode"] => EventType::TenantSettingsChanged,
                    _ => EventType::TenantUpdated,
                };
                let data = EventData::TenantLifecycle {
                    tenant_id: id.clone(),
                    previous_status: Some(previous.as_str().into()),
                    new_status: t.status.as_str().into(),
                    changed_fields: changed,
                };
                let event = NewEvent::new(event_type, id.clone(), data)
                    .scope(format!("tenant:{id}"))
                    .correlation(tenant_update_correlation(&id, now));
                events::emit(conn, event, now)?;
            }
            // after `tenant.closed`, so each cascade event follows the one that caused it
            if t.status == TenantStatus::Closed && previous != TenantStatus::Closed {
                close_cascade(conn, &id, now)?;
            }
            Ok(t)
        }, move |t: &Tenant| {
            // the close cascade revoked the tenant's keys: drop them from the cache in commit order
            if t.status == TenantStatus::Closed {
                cache.change_keys(|keys| keys.retain(|_, k| k.tenant != t.tenant_id));
            }
        })
        .await?;
    Ok(Json(tenant))
}

/// `BudgetCreateRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct BudgetCreateRequest {
    #[serde(default)]
    pub tenant_id: Option<String>,
    pub scope: String,
    pub unit: Unit,
    pub allocated: Amount,
    #[serde(default)]
    pub overdraft_limit: Option<Amount>,
    #[serde(default)]
    pub commit_overage_policy: Option<OveragePolicy>,
    #[serde(default)]
    pub rollover_policy: Option<String>,
    #[serde(default)]
    pub period_start: Option<String>,
    #[serde(default)]
    pub period_end: Option<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// The tenant an admin-plane call acts on: the key's tenant (a `tenant_id` in the request is
/// refused), or for the admin key the required `tenant_id`.
fn acting_tenant(caller: &Caller, tenant_id: Option<&str>) -> ApiResult<String> {
    match (caller, tenant_id) {
        (Caller::Key(_), Some(_)) => {
            Err(ApiError::invalid("`tenant_id` must not be set when calling with a tenant API key"))
        }
        (Caller::Key(p), None) => Ok(p.tenant.clone()),
        (Caller::Admin, Some(t)) => Ok(t.to_string()),
        (Caller::Admin, None) => Err(ApiError::invalid("`tenant_id` is required when calling with the admin key")),
    }
}

/// The spec's budget periods and rollover, which this server does not keep: a budget here has
/// no period, so unused allocation never rolls over. `rollover_policy: NONE` says exactly that
/// and is accepted; a rollover or a period is refused, naming the field, rather than accepted
/// and silently not honoured.
fn refuse_budget_periods(req: &BudgetCreateRequest) -> ApiResult<()> {
    match req.rollover_policy.as_deref() {
        None | Some("NONE") => {}
        Some(p @ ("CARRY_FORWARD" | "CAP_AT_ALLOCATED")) => {
            return Err(ApiError::invalid(format!(
                "`rollover_policy` {p} is not supported by this server: budgets have no periods here; send NONE or omit it"
            )));
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "`rollover_policy` must be NONE, CARRY_FORWARD or CAP_AT_ALLOCATED, got `{other}`"
            )));
        }
    }
    for (field, value) in [("period_start", &req.period_start), ("period_end", &req.period_end)] {
        if value.is_some() {
            return Err(ApiError::invalid(format!(
                "`{field}` is not supported by this server: budgets have no periods here; omit it"
            )));
        }
    }
    Ok(())
}

fn check_scope_for(tenant: &str, scope: &str) -> ApiResult<()> {
    let levels = parse_scope(scope)?;
    if let Some((_, t)) = levels.iter().find(|(l, _)| *l == "tenant")
        && t != tenant {
            return Err(ApiError::forbidden(format!("scope `{scope}` names another tenant")));
        }
    Ok(())
}

/// `POST /v1/admin/budgets` (createBudget): 201 BudgetLedger; 409 DUPLICATE_RESOURCE.
pub async fn create_budget(
    State(state): State<Shared>,
    caller: Caller,
    Body(req): Body<BudgetCreateRequest>,
) -> ApiResult<(StatusCode, Json<BudgetLedger>)> {
    let tenant = acting_tenant(&caller, req.tenant_id.as_deref())?;
    check_scope_for(&tenant, &req.scope)?;
    refuse_budget_periods(&req)?;
    req.allocated.validate("allocated")?;
    if req.allocated.unit != req.unit || req.overdraft_limit.is_some_and(|o| o.unit != req.unit) {
        return Err(ApiError::new(ErrorCode::UnitMismatch, "`allocated` and `overdraft_limit` must be in `unit`"));
    }
    if let Some(o) = &req.overdraft_limit {
        o.validate("overdraft_limit")?;
    }
    let now = now_ms();
    Ok(state
        .store
        .unit(&tenant.clone(), move |conn| {
            if ledger::tenant_state(conn, &tenant)? == ledger::TenantState::Closed {
                return Err(GatewayError::new(ErrorCode::TenantClosed, format!("tenant `{tenant}` is closed")));
            }
            if conn.budget(&tenant, &req.scope, req.unit)?.is_some() {
                return Err(GatewayError::new(
                    ErrorCode::DuplicateResource,
                    format!("a {} budget already exists at `{}`", req.unit.as_str(), req.scope),
                ));
            }
            let b = BudgetRow {
                overdraft_limit: req.overdraft_limit.map_or(0, |o| o.amount),
                commit_overage_policy: req.commit_overage_policy,
                ..BudgetRow::active(req.scope.clone(), req.unit, new_id("ldg_"), req.allocated.amount, now)
            };
            conn.insert_budget(&tenant, &b)?;
            ledger::emit_budget_lifecycle(conn, &tenant, EventType::BudgetCreated, "CREATE", None, &b, now)?;
            Ok((StatusCode::CREATED, Json(b.ledger(&tenant))))
        })
        .await?)
}

/// `GET /v1/admin/budgets` (listBudgets): an API key lists its own tenant's budgets, the admin
/// key any one tenant's or every tenant's ([`ledger::list_budgets`]).
pub async fn list_budgets(State(state): State<Shared>, caller: Caller, Q(q): Q<ledger::BudgetListQuery>) -> ApiResult<Json<LedgerList>> {
    let tenant = match (&caller, &q.tenant_id) {
        (Caller::Key(p), Some(x)) if *x != p.tenant => return Err(ApiError::forbidden("`tenant_id` is not your tenant")),
        (Caller::Key(p), _) => Some(p.tenant.clone()),
        (Caller::Admin, t) => t.clone(),
    };
    let reading = tenant.clone().unwrap_or_else(|| SYSTEM_TENANT.into());
    Ok(state.store.read(&reading, move |conn| ledger::list_budgets(conn, tenant.as_deref(), &q).map(Json)).await?)
}

/// The `(scope, unit)` a budget operation targets.
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct BudgetTarget {
    pub tenant_id: Option<String>,
    pub scope: String,
    pub unit: String,
}

/// `BudgetFundingRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct FundingRequest {
    pub operation: String,
    pub amount: Amount,
    #[serde(default)]
    pub spent: Option<Amount>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

fn target_budget(conn: &dyn LedgerStore, tenant: &str, scope: &str, unit: Unit) -> GatewayResult<BudgetRow> {
    conn.budget(tenant, scope, unit)?
        .ok_or_else(|| GatewayError::not_found(format!("no {} budget at `{scope}`", unit.as_str())))
}

/// `POST /v1/admin/budgets/fund` (fundBudget): CREDIT, DEBIT, RESET, REPAY_DEBT, RESET_SPENT.
pub async fn fund_budget(
    State(state): State<Shared>,
    caller: Caller,
    Q(target): Q<BudgetTarget>,
    Body(req): Body<FundingRequest>,
) -> ApiResult<Json<FundingResponse>> {
    let tenant = acting_tenant(&caller, target.tenant_id.as_deref())?;
    let unit = Unit::parse(&target.unit).ok_or_else(|| ApiError::invalid(format!("unknown unit `{}`", target.unit)))?;
    req.amount.validate("amount")?;
    if let Some(s) = &req.spent {
        s.validate("spent")?;
    }
    if req.amount.unit != unit || req.spent.is_some_and(|s| s.unit != unit) {
        return Err(ApiError::new(ErrorCode::UnitMismatch, format!("amounts must be in {}", unit.as_str())));
    }
    if !matches!(req.operation.as_str(), "CREDIT" | "DEBIT" | "RESET" | "REPAY_DEBT" | "RESET_SPENT") {
        return Err(ApiError::invalid(format!(
            "`operation` must be CREDIT, DEBIT, RESET, REPAY_DEBT or RESET_SPENT, got `{}`",
            req.operation
        )));
    }
    let now = now_ms();
    Ok(state
        .store
        .unit(&tenant.clone(), move |conn| {
            if ledger::tenant_state(conn, &tenant)? == ledger::TenantState::Closed {
                return Err(GatewayError::new(ErrorCode::TenantClosed, format!("tenant `{tenant}` is closed")));
            }
            let mut b = target_budget(conn, &tenant, &target.scope, unit)?;
            let before = b.clone();
            let a = req.amount.amount;
            let over = |what: &str| {
                GatewayError::invalid(format!("`amount.amount` would overflow the budget's {what} ({} max)", i64::MAX))
            };
            match req.operation.as_str() {
                "CREDIT" => {
                    // Debt is repaid first, then the rest raises the allocation.
                    let repay = a.min(b.debt);
                    b.allocated = b.allocated.checked_add(a).ok_or_else(|| over("allocated"))?;
                    b.debt = ledger::checked_sub(b.debt, repay, "debt")?;
                    b.spent = b.spent.checked_add(repay).ok_or_else(|| over("spent"))?;
                }
                "DEBIT" => {
                    if b.remaining() < a {
                        return Err(GatewayError::new(
                            ErrorCode::BudgetExceeded,
                            format!("DEBIT of {a} would make remaining negative ({})", b.remaining()),
                        ));
                    }
                    b.allocated = b.allocated.checked_sub(a).ok_or_else(|| over("allocated"))?;
                }
                "RESET" => b.allocated = a,
                "REPAY_DEBT" => {
                    let repay = a.min(b.debt);
                    b.debt = ledger::checked_sub(b.debt, repay, "debt")?;
                    b.spent = b.spent.checked_add(repay).ok_or_else(|| over("spent"))?;
                }
                _ => {
                    b.allocated = a;
                    b.spent = req.spent.map_or(0, |s| s.amount);
                }
            }
            b.is_over_limit = b.overdraft_limit > 0 && b.debt > b.overdraft_limit;
            conn.save_budget(&tenant, &b, now)?;
            let (event_type, operation) = match req.operation.as_str() {
                "CREDIT" => (EventType::BudgetFunded, "CREDIT"),
                "DEBIT" => (EventType::BudgetDebited, "DEBIT"),
                "RESET" => (EventType::BudgetReset, "RESET"),
                "REPAY_DEBT" => (EventType::BudgetDebtRepaid, "REPAY_DEBT"),
                _ => (EventType::BudgetResetSpent, "RESET_SPENT"),
            };
            ledger::emit_budget_lifecycle(conn, &tenant, event_type, operation, Some(&before), &b, now)?;
            let amt = |n| Amount::new(unit, n);
            Ok(Json(FundingResponse {
                operation: req.operation.clone(),
                previous_allocated: amt(before.allocated),
                new_allocated: amt(b.allocated),
                previous_remaining: amt(before.remaining()),
                new_remaining: amt(b.remaining()),
                previous_debt: amt(before.debt),
                new_debt: amt(b.debt),
                previous_spent: amt(before.spent),
                new_spent: amt(b.spent),
                timestamp: rfc3339(now),
            }))
        })
        .await?)
}

async fn set_budget_status(state: Shared, caller: Caller, target: BudgetTarget, status: &'static str) -> ApiResult<Json<BudgetLedger>> {
    let tenant = acting_tenant(&caller, target.tenant_id.as_deref())?;
    let unit = Unit::parse(&target.unit).ok_or_else(|| ApiError::invalid(format!("unknown unit `{}`", target.unit)))?;
    let now = now_ms();
    Ok(state
        .store
        .unit(&tenant.clone(), move |conn| {
            let mut b = target_budget(conn, &tenant, &target.scope, unit)?;
            if b.status == "CLOSED" {
                return Err(GatewayError::new(ErrorCode::BudgetClosed, format!("budget at `{}` is closed", b.scope)));
            }
            let before = b.clone();
            b.status = status.into();
            conn.save_budget(&tenant, &b, now)?;
            b.updated_at_ms = now;
            if before.status != b.status {
                let event_type = if status == "FROZEN" { EventType::BudgetFrozen } else { EventType::BudgetUnfrozen };
                ledger::emit_budget_lifecycle(conn, &tenant, event_type, "STATUS_CHANGE", Some(&before), &b, now)?;
            }
            Ok(Json(b.ledger(&tenant)))
        })
        .await?)
}

/// `POST /v1/admin/budgets/freeze` (freezeBudget).
pub async fn freeze_budget(State(state): State<Shared>, caller: Caller, Q(t): Q<BudgetTarget>) -> ApiResult<Json<BudgetLedger>> {
    set_budget_status(state, caller, t, "FROZEN").await
}

/// `POST /v1/admin/budgets/unfreeze` (unfreezeBudget).
pub async fn unfreeze_budget(State(state): State<Shared>, caller: Caller, Q(t): Q<BudgetTarget>) -> ApiResult<Json<BudgetLedger>> {
    set_budget_status(state, caller, t, "ACTIVE").await
}

/// `ApiKeyCreateRequest`, plus the principal's `role` (`name` is the principal's name).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ApiKeyCreateRequest {
    pub tenant_id: String,
    pub name: String,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    #[serde(default)]
    pub scope_filter: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// The permission list keys were created with before roles existed (the spec's default); a
/// stored key carrying exactly this list holds its role's full set.
pub const DEFAULT_PERMISSIONS: &[&str] = &[
    "reservations:create",
    "reservations:commit",
    "reservations:release",
    "reservations:extend",
    "reservations:list",
    "balances:read",
    "budgets:read",
    "budgets:write",
    "policies:read",
    "policies:write",
];

/// Keys live a year unless told otherwise (`expires_at` is required in the response).
const KEY_LIFETIME_MS: i64 = 365 * 24 * 3600 * 1000;

/// `name` of a key: 1-256 characters, no control characters.
fn check_key_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name.chars().count() > 256 {
        return Err(ApiError::invalid("`name` must be 1-256 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid("`name` must not contain control characters"));
    }
    Ok(())
}

/// `description` of a key: at most 1,024 characters, no control characters but line breaks
/// and tabs.
fn check_key_description(description: Option<&str>) -> ApiResult<()> {
    let Some(d) = description else { return Ok(()) };
    if d.chars().count() > 1024 {
        return Err(ApiError::invalid("`description` must be at most 1024 characters"));
    }
    if d.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(ApiError::invalid("`description` must not contain control characters"));
    }
    Ok(())
}

/// A scope filter would restrict what a key reaches; this server does not enforce one, so it
/// refuses to create or change a key with one instead of handing out a wider key than asked.
fn refuse_scope_filter(scope_filter: Option<&[String]>) -> ApiResult<()> {
    if scope_filter.is_some_and(|f| !f.is_empty()) {
        return Err(ApiError::invalid(
            "`scope_filter` is not supported by this server: keys reach their whole tenant; use a role and \
             `permissions` to narrow a key",
        ));
    }
    Ok(())
}

/// `POST /v1/admin/api-keys` (createApiKey): the secret is returned once; only its SHA-256 is
/// stored. An operator key may create approver, agent and reader keys of its own tenant; an
/// operator key needs the admin key.
pub async fn create_api_key(
    State(state): State<Shared>,
    caller: Caller,
    Body(req): Body<ApiKeyCreateRequest>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    check_key_name(&req.name)?;
    check_key_description(req.description.as_deref())?;
    refuse_scope_filter(req.scope_filter.as_deref())?;
    let role = match req.role.as_deref() {
        None => auth::DEFAULT_ROLE,
        Some(r) => Role::parse(r).ok_or_else(|| {
            ApiError::invalid(format!("`role` must be operator, approver, agent or reader, got `{r}`"))
        })?,
    };
    if let Caller::Key(p) = &caller {
        if p.tenant != req.tenant_id {
            return Err(ApiError::forbidden("an operator key creates keys of its own tenant only"));
        }
        if role == Role::Operator {
            return Err(ApiError::forbidden("only the admin key (X-Admin-API-Key) creates operator keys")
                .with_details(ErrorDetails::Permission {
                    required_permission: "admin:apikeys:write".into(),
                    role: Some(p.role.as_str().to_string()),
                }));
        }
    }
    let effective = auth::effective_permissions(role, req.permissions.as_deref())?;
    if req.expires_at.is_some() {
        return Err(ApiError::invalid(
            "`expires_at` is not supported by this server; keys expire one year after creation",
        ));
    }
    let now = now_ms();
    let secret = format!("{KEY_SECRET_PREFIX}{}", random_hex(24));
    let hash = sha256_hex(secret.as_bytes());
    let expires = now + KEY_LIFETIME_MS;
    let key = ApiKey {
        key_id: new_id("key_"),
        tenant_id: req.tenant_id.clone(),
        key_prefix: secret.chars().take(15).collect(),
        name: req.name.clone(),
        description: req.description.clone(),
        role: Some(role.as_str().to_string()),
        permissions: effective.iter().map(|p| p.as_str().to_string()).collect(),
        status: ApiKeyStatus::Active,
        created_at: rfc3339(now),
        expires_at: rfc3339(expires),
        revoked_at: None,
        revoked_reason: None,
        metadata: req.metadata.clone(),
    };
    let (stored_hash, stored) = (hash.clone(), key.clone());
    let (cache, cached) = (
        state.clone(),
        KeyInfo {
            key_id: key.key_id.clone(),
            tenant: key.tenant_id.clone(),
            expires_at_ms: expires,
            role,
            name: key.name.clone(),
            permissions: effective,
        },
    );
    state
        .store
        .unit_then(&stored.tenant_id.clone(), move |conn| {
            let tenant = &stored.tenant_id;
            match ledger::tenant_state(conn, tenant)? {
                ledger::TenantState::Unknown => {
                    return Err(GatewayError::not_found(format!("tenant `{tenant}` not found")));
                }
                ledger::TenantState::Closed => {
                    return Err(GatewayError::new(ErrorCode::TenantClosed, format!("tenant `{tenant}` is closed")));
                }
                _ => {}
            }
            conn.insert_api_key(&StoredApiKey {
                key_id: stored.key_id.clone(),
                tenant_id: tenant.clone(),
                key_hash: stored_hash.clone(),
                status: ApiKeyStatus::Active.as_str().into(),
                expires_at_ms: expires,
                role: Some(role.as_str().into()),
                principal: Some(stored.name.clone()),
                body: serde_json::to_string(&stored).map_err(GatewayError::internal)?,
            })?;
            let data = EventData::ApiKey {
                key_id: stored.key_id.clone(),
                key_name: Some(stored.name.clone()),
                previous_status: None,
                new_status: "ACTIVE",
                permissions: stored.permissions.clone(),
            };
            events::emit(conn, NewEvent::new(EventType::ApiKeyCreated, tenant.clone(), data), now_ms())?;
            Ok(())
        }, move |_| {
            // in commit order, so a revocation or a tenant close that commits after this
            // creation cannot be overtaken by this insert
            cache.change_keys(|keys| {
                keys.insert(hash, cached);
            });
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            key_id: key.key_id,
            key_secret: secret,
            key_prefix: key.key_prefix,
            tenant_id: key.tenant_id,
            name: key.name,
            role: role.as_str().to_string(),
            permissions: key.permissions,
            created_at: key.created_at,
            expires_at: key.expires_at,
        }),
    ))
}

/// Query of listApiKeys.
#[derive(Debug, Default, Deserialize)]
pub struct KeyQuery {
    /// Only this tenant's keys (an operator key's own tenant whatever it says).
    pub tenant_id: Option<String>,
    /// Only keys in this status.
    pub status: Option<String>,
    /// A case-insensitive substring of the key id or name (empty: no filter; at most 128
    /// characters).
    pub search: Option<String>,
    /// `key_id`, `name`, `tenant_id`, `status`, `created_at` or `expires_at`; absent: by key id.
    pub sort_by: Option<String>,
    /// `asc` or `desc` (the default when `sort_by` is given).
    pub sort_dir: Option<String>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
}

/// One page of `keys` (in key-id order) that pass `q`'s filters, in `q`'s order.
fn key_page(keys: Vec<ApiKey>, q: &KeyQuery) -> GatewayResult<ApiKeyList> {
    let status = q.status.as_deref().map(|s| ApiKeyStatus::parse(s, "status")).transpose()?;
    let controls = ListControls::read(q.search.as_deref(), q.sort_dir.as_deref(), q.cursor.as_deref(), q.limit)?;
    let key: Option<fn(&ApiKey, &ApiKey) -> std::cmp::Ordering> = match q.sort_by.as_deref() {
        None => None,
        Some("key_id") => Some(|a, b| a.key_id.cmp(&b.key_id)),
        Some("name") => Some(|a, b| a.name.cmp(&b.name)),
        Some("tenant_id") => Some(|a, b| a.tenant_id.cmp(&b.tenant_id)),
        Some("status") => Some(|a, b| a.status.as_str().cmp(b.status.as_str())),
        // RFC 3339 in UTC with a fixed width orders as the instants do
        Some("created_at") => Some(|a, b| a.created_at.cmp(&b.created_at)),
        Some("expires_at") => Some(|a, b| a.expires_at.cmp(&b.expires_at)),
        Some(other) => {
            return Err(GatewayError::invalid(format!(
                "`sort_by` must be one of key_id, name, tenant_id, status, created_at, expires_at, not `{other}`"
            )));
        }
    };
    let kept: Vec<ApiKey> = keys
        .into_iter()
        .filter(|k| status.is_none_or(|s| k.status == s) && (controls.matches(&k.key_id) || controls.matches(&k.name)))
        .collect();
    // ties keep the key-id order
    let page = controls.page(kept, key);
    Ok(ApiKeyList { keys: page.balances, has_more: page.has_more, next_cursor: page.next_cursor })
}

/// `GET /v1/admin/api-keys` (listApiKeys): an operator key sees its own tenant's keys.
pub async fn list_api_keys(State(state): State<Shared>, caller: Caller, Q(mut q): Q<KeyQuery>) -> ApiResult<Json<ApiKeyList>> {
    if let Caller::Key(p) = &caller {
        if q.tenant_id.as_ref().is_some_and(|t| *t != p.tenant) {
            return Err(ApiError::forbidden("`tenant_id` is not your tenant"));
        }
        q.tenant_id = Some(p.tenant.clone());
    }
    let now = now_ms();
    Ok(state
        .store
        .read(&q.tenant_id.clone().unwrap_or_else(|| SYSTEM_TENANT.into()), move |conn| {
            // a record this server cannot read fails the list, naming it
            let keys = conn.api_keys(q.tenant_id.as_deref())?.iter().map(|k| stored_key(k, now)).collect::<GatewayResult<Vec<ApiKey>>>()?;
            key_page(keys, &q).map(Json)
        })
        .await?)
}

/// What every API key secret this gateway mints starts with (48 hex digits follow).
pub const KEY_SECRET_PREFIX: &str = "cyc_live_";

/// The tenant whose unit of work changes key `id`: the caller's own, or for the admin key the
/// key's (not found when there is no such key; the unit checks the key again).
async fn key_tenant(state: &Shared, caller: &Caller, id: &str) -> ApiResult<String> {
    match caller {
        Caller::Key(p) => Ok(p.tenant.clone()),
        Caller::Admin => {
            let wanted = id.to_string();
            let key = state.store.read(SYSTEM_TENANT, move |conn| conn.api_key(&wanted)).await?;
            key.map(|k| k.tenant_id).ok_or_else(|| ApiError::not_found(format!("API key `{id}` not found")))
        }
    }
}

/// Query of revokeApiKey.
#[derive(Debug, Default, Deserialize)]
pub struct RevokeQuery {
    /// Why (at most 512 characters), kept as `revoked_reason`.
    pub reason: Option<String>,
}

/// `DELETE /v1/admin/api-keys/{key_id}` (revokeApiKey): an operator key revokes approver,
/// agent and reader keys of its own tenant (and itself); other operator keys need the admin
/// key. Revoking a revoked key answers it unchanged.
pub async fn revoke_api_key(
    State(state): State<Shared>,
    caller: Caller,
    Path(key_id): Path<String>,
    Q(q): Q<RevokeQuery>,
) -> ApiResult<Json<ApiKey>> {
    if q.reason.as_deref().is_some_and(|r| r.chars().count() > 512) {
        return Err(ApiError::invalid("`reason` must be at most 512 characters"));
    }
    let now = now_ms();
    let id = key_id.clone();
    let cache = state.clone();
    let key = state
        .store
        .unit_then(&key_tenant(&state, &caller, &key_id).await?, move |conn| {
            let (mut key, _) = key_for_change(conn, caller.principal(), &id, now)?;
            if key.status == ApiKeyStatus::Revoked {
                return Ok(key);
            }
            let previous = key.status;
            key.status = ApiKeyStatus::Revoked;
            key.revoked_at = Some(rfc3339(now));
            key.revoked_reason = q.reason.clone().filter(|r| !r.is_empty());
            store_key(conn, &key, ApiKeyStatus::Revoked)?;
            let data = EventData::ApiKey {
                key_id: id.clone(),
                key_name: Some(key.name.clone()),
                previous_status: Some(previous.as_str()),
                new_status: "REVOKED",
                permissions: key.permissions.clone(),
            };
            events::emit(conn, NewEvent::new(EventType::ApiKeyRevoked, key.tenant_id.clone(), data), now)?;
            Ok(key)
        }, move |_| {
            cache.change_keys(|keys| keys.retain(|_, k| k.key_id != key_id));
        })
        .await?;
    Ok(Json(key))
}

/// updateApiKey's body: the mutable fields, each replaced when present.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyUpdateRequest {
    /// A new name (1-256 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// A new description (at most 1,024 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// The whole new permission set, within the key's role.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// Refused unless empty (see `refuse_scope_filter`).
    #[serde(default)]
    pub scope_filter: Option<Vec<String>>,
    /// New key-value pairs, replacing the old.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// `PATCH /v1/admin/api-keys/{key_id}` (updateApiKey): name, description, permissions and
/// metadata change in place; the secret, tenant, role and expiry do not. A revoked or expired
/// key is 409. New permissions stay within the key's role and take effect on the key's next
/// request; a change of permissions emits `api_key.permissions_changed`. Who may change which
/// key is as for revocation.
pub async fn update_api_key(
    State(state): State<Shared>,
    caller: Caller,
    Path(key_id): Path<String>,
    Body(req): Body<ApiKeyUpdateRequest>,
) -> ApiResult<Json<ApiKey>> {
    if let Some(name) = &req.name {
        check_key_name(name)?;
    }
    check_key_description(req.description.as_deref())?;
    refuse_scope_filter(req.scope_filter.as_deref())?;
    let now = now_ms();
    let id = key_id.clone();
    let cache = state.clone();
    let by_admin = matches!(caller, Caller::Admin);
    let (key, _) = state
        .store
        .unit_then(&key_tenant(&state, &caller, &key_id).await?, move |conn| {
            let (mut key, role) = key_for_change(conn, caller.principal(), &id, now)?;
            let closed = match key.status {
                ApiKeyStatus::Active => None,
                ApiKeyStatus::Revoked => Some(ErrorCode::KeyRevoked),
                ApiKeyStatus::Expired => Some(ErrorCode::KeyExpired),
            };
            if let Some(code) = closed {
                return Err(GatewayError::new(code, format!("API key `{id}` is {} and cannot be changed", key.status.as_str())));
            }
            // an operator's name is who it acts as (grant issuers, outcome reporters): only the
            // admin key, which mints operator keys, renames one
            if req.name.is_some() && role == Role::Operator && !by_admin {
                return Err(GatewayError::forbidden("only the admin key renames an operator key"));
            }
            let effective = match &req.permissions {
                Some(names) => Some(auth::effective_permissions(role, Some(names))?),
                None => None,
            };
            let before = key.permissions.clone();
            if let Some(p) = &effective {
                key.permissions = p.iter().map(|p| p.as_str().to_string()).collect();
            }
            if let Some(name) = req.name.clone() {
                key.name = name;
            }
            if let Some(description) = req.description.clone() {
                key.description = Some(description);
            }
            if let Some(metadata) = req.metadata.clone() {
                key.metadata = Some(metadata);
            }
            store_key(conn, &key, ApiKeyStatus::Active)?;
            let as_set = |p: &[String]| p.iter().cloned().collect::<std::collections::BTreeSet<String>>();
            if as_set(&key.permissions) != as_set(&before) {
                let data = EventData::ApiKey {
                    key_id: id.clone(),
                    key_name: Some(key.name.clone()),
                    previous_status: Some("ACTIVE"),
                    new_status: "ACTIVE",
                    permissions: key.permissions.clone(),
                };
                events::emit(conn, NewEvent::new(EventType::ApiKeyPermissionsChanged, key.tenant_id.clone(), data), now)?;
            }
            Ok((key, effective))
        }, move |(key, effective)| {
            // in commit order: two changes of one key leave the cache holding the later one
            cache.change_keys(|keys| {
                for cached in keys.values_mut().filter(|k| k.key_id == key.key_id) {
                    cached.name = key.name.clone();
                    if let Some(p) = effective {
                        cached.permissions = p.clone();
                    }
                }
            });
        })
        .await?;
    Ok(Json(key))
}

/// `GET /v1/auth/introspect` (introspectAuth): who the presented key is. The admin key is
/// `auth_type: admin` with every capability; a tenant key is `auth_type: tenant` with its
/// tenant, permissions and the capabilities the spec derives from them (the admin-plane ones
/// are false for any tenant key), plus this gateway's key id, principal and role.
pub async fn introspect(caller: Caller) -> ApiResult<Json<Value>> {
    const ADMIN_PLANE: [&str; 6] =
        ["view_tenants", "view_api_keys", "view_audit", "view_overview", "manage_tenants", "manage_api_keys"];
    // AuthIntrospectResponse's derivation table: a capability holds when the key has any of
    // its permissions.
    const DERIVED: [(&str, &[&str]); 9] = [
        ("view_budgets", &["budgets:read", "admin:read", "admin:budgets:read"]),
        ("view_policies", &["policies:read", "admin:read", "admin:policies:read"]),
        ("view_webhooks", &["webhooks:read", "admin:read", "admin:webhooks:read"]),
        ("view_events", &["events:read", "admin:read", "admin:events:read"]),
        (
            "view_reservations",
            &["reservations:list", "reservations:create", "reservations:commit", "reservations:release", "reservations:extend", "admin:read"],
        ),
        ("manage_budgets", &["budgets:write", "admin:write", "admin:budgets:write"]),
        ("manage_policies", &["policies:write", "admin:write", "admin:policies:write"]),
        ("manage_webhooks", &["webhooks:write", "admin:write", "admin:webhooks:write"]),
        (
            "manage_reservations",
            &["reservations:create", "reservations:commit", "reservations:release", "reservations:extend", "admin:write"],
        ),
    ];
    let p = match caller {
        Caller::Admin => {
            let mut capabilities = serde_json::Map::new();
            for name in DERIVED.iter().map(|(n, _)| *n).chain(ADMIN_PLANE) {
                capabilities.insert(name.into(), json!(true));
            }
            return Ok(Json(json!({
                "authenticated": true,
                "auth_type": "admin",
                "permissions": ["*"],
                "capabilities": capabilities,
            })));
        }
        Caller::Key(p) => p,
    };
    let permissions: Vec<&str> = p.permissions.iter().map(|x| x.as_str()).collect();
    let mut capabilities = serde_json::Map::new();
    for (name, any_of) in DERIVED {
        capabilities.insert(name.into(), json!(any_of.iter().any(|q| permissions.contains(q))));
    }
    for name in ADMIN_PLANE {
        capabilities.insert(name.into(), json!(false));
    }
    Ok(Json(json!({
        "authenticated": true,
        "auth_type": "tenant",
        "tenant_id": p.tenant,
        "permissions": permissions,
        "capabilities": capabilities,
        "key_id": p.key_id,
        "principal": p.name,
        "role": p.role.as_str(),
    })))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    /// A tenant as the untyped code stored it (`json!`), suspended and in observe mode.
    fn stored_before_the_types(id: &str, name: &str, created_at: &str) -> Value {
        json!({
            "tenant_id": id, "name": name, "status": "SUSPENDED",
            "default_commit_overage_policy": "ALLOW_IF_AVAILABLE", "default_reservation_ttl_ms": 60_000,
            "max_reservation_ttl_ms": 3_600_000, "max_reservation_extensions": 10,
            "created_at": created_at, "parent_tenant_id": "holding", "metadata": {"team": "ops"},
            "observe_mode": "OBSERVE", "updated_at": "2026-11-02T00:00:00.000Z",
        })
    }

    fn tenant(id: &str, name: &str, created_at: &str) -> Tenant {
        serde_json::from_value(stored_before_the_types(id, name, created_at)).expect("the stored shape reads")
    }

    #[test]
    fn a_tenant_stored_before_the_types_reads_and_writes_back_unchanged() {
        let stored = stored_before_the_types("acme", "Acme", "2026-11-01T00:00:00.000Z");
        let t: Tenant = serde_json::from_value(stored.clone()).expect("reads");
        assert_eq!((t.status, t.mode()), (TenantStatus::Suspended, ObserveMode::Observe));
        assert_eq!(serde_json::to_value(&t).unwrap(), stored);
        // the minimal record a create wrote: no optional field appears
        let mut minimal = stored;
        for k in ["parent_tenant_id", "metadata", "observe_mode", "updated_at"] {
            minimal.as_object_mut().unwrap().remove(k);
        }
        let t: Tenant = serde_json::from_value(minimal.clone()).expect("reads");
        assert_eq!(t.mode(), ObserveMode::Enforce);
        assert_eq!(serde_json::to_value(&t).unwrap(), minimal);
    }

    #[test]
    fn listing_tenants_filters_sorts_and_pages() {
        let mut tenants = vec![
            tenant("acme", "Acme", "2026-11-03T00:00:00.000Z"),
            tenant("globex", "Umbrella", "2026-11-01T00:00:00.000Z"),
            tenant("initech", "Initech", "2026-11-02T00:00:00.000Z"),
        ];
        tenants[1].status = TenantStatus::Active;
        tenants[1].observe_mode = None;
        tenants[2].parent_tenant_id = None;
        let ids = |q: TenantListQuery| -> Vec<String> {
            tenant_page(tenants.clone(), &q).expect("listed").tenants.into_iter().map(|t| t.tenant_id).collect()
        };
        let q = TenantListQuery::default;
        assert_eq!(ids(q()), ["acme", "globex", "initech"]);
        assert_eq!(ids(TenantListQuery { status: Some("ACTIVE".into()), ..q() }), ["globex"]);
        assert_eq!(ids(TenantListQuery { parent_tenant_id: Some("holding".into()), ..q() }), ["acme", "globex"]);
        assert_eq!(ids(TenantListQuery { observe_mode: Some("ENFORCE".into()), ..q() }), ["globex"]);
        assert_eq!(ids(TenantListQuery { observe_mode: Some("OBSERVE".into()), ..q() }), ["acme", "initech"]);
        assert_eq!(ids(TenantListQuery { search: Some("TECH".into()), ..q() }), ["initech"]);
        // the search matches the id or the name, each on its own
        assert_eq!(ids(TenantListQuery { search: Some("umbr".into()), ..q() }), ["globex"]);
        assert_eq!(ids(TenantListQuery { search: Some("GLOB".into()), ..q() }), ["globex"]);
        let by_name = TenantListQuery { sort_by: Some("name".into()), sort_dir: Some("asc".into()), ..q() };
        assert_eq!(ids(by_name), ["acme", "initech", "globex"]);
        assert_eq!(ids(TenantListQuery { sort_by: Some("created_at".into()), ..q() }), ["acme", "initech", "globex"]);
        let asc = TenantListQuery { sort_by: Some("created_at".into()), sort_dir: Some("asc".into()), ..q() };
        assert_eq!(ids(asc), ["globex", "initech", "acme"]);
        let first = tenant_page(tenants.clone(), &TenantListQuery { limit: Some(2), ..q() }).expect("a page");
        assert_eq!((first.tenants.len(), first.has_more, first.next_cursor.as_deref()), (2, true, Some("2")));
        let last = tenant_page(tenants.clone(), &TenantListQuery { limit: Some(2), cursor: Some("2".into()), ..q() }).expect("a page");
        assert_eq!((last.tenants.len(), last.has_more, last.next_cursor), (1, false, None));
        for (bad, name) in [
            (TenantListQuery { status: Some("GONE".into()), ..q() }, "status"),
            (TenantListQuery { observe_mode: Some("SHADOW".into()), ..q() }, "observe_mode"),
            (TenantListQuery { search: Some("x".repeat(129)), ..q() }, "search"),
            (TenantListQuery { sort_by: Some("size".into()), ..q() }, "sort_by"),
            (TenantListQuery { sort_dir: Some("up".into()), ..q() }, "sort_dir"),
            (TenantListQuery { limit: Some(101), ..q() }, "limit"),
            (TenantListQuery { cursor: Some("x".into()), ..q() }, "cursor"),
        ] {
            let refused = tenant_page(tenants.clone(), &bad).expect_err(name);
            assert_eq!(refused.code, ErrorCode::InvalidRequest, "{name}");
            assert!(refused.message.contains(&format!("`{name}`")), "{name}: {}", refused.message);
        }
    }
}

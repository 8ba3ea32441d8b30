//! The authority ledger: the Cycles reservation lifecycle on the store (reserve, commit,
//! release, extend, decide, events, expiry), atomic across every derived scope.
//!
//! The rules are written once against [`LedgerStore`], the rows they read and write, and know
//! nothing of SQL or HTTP's framing. Each operation runs as one atomic unit of work of its
//! backend: on the embedded store ([`sqlite`]) inside one savepoint on the writer thread
//! ([`crate::store::Store::run`]), so operations are serialised and concurrent reservations
//! can never oversubscribe a budget. Checks come before writes; an error leaves nothing behind.

#[cfg(test)]
mod memory;
pub mod redis;
pub mod sqlite;
pub mod store;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::Value;

use crate::cycles::{
    Action, Amount, AnswerStatus, Balance, BalancePage, BalancesResponse, BudgetDecision, BudgetLedger, CommitRequest, CommitResponse, DecisionRequest, DenyDetail, LedgerList,
    DecisionResponse, EventCreateResponse, EventRequest, ExtendRequest, ExtendResponse, ObserveMode, OveragePolicy,
    ReleaseRequest, ReleaseResponse, ReservationCreateResponse, ReservationDetail, ReservationListResponse,
    ReserveRequest, Subject, TenantStatus, Unit,
};
use crate::error::{ErrorCode, ErrorDetails, GatewayError, GatewayResult};
use crate::events::{self, EventData, EventType, NewEvent};
use crate::util::{new_id, rfc3339, sha256_hex};
pub use store::LedgerStore;
use store::{Debit, ReservationScan};

/// Default reservation TTL (`ttl_ms` default in the spec).
pub const DEFAULT_TTL_MS: i64 = 60_000;
/// Default grace period (`grace_period_ms` default in the spec).
pub const DEFAULT_GRACE_MS: i64 = 5_000;

/// One `(tenant, scope, unit)` budget row.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[allow(missing_docs)]
pub struct BudgetRow {
    pub scope: String,
    pub unit: Unit,
    pub ledger_id: String,
    pub allocated: i64,
    pub reserved: i64,
    pub spent: i64,
    pub debt: i64,
    pub overdraft_limit: i64,
    pub is_over_limit: bool,
    pub status: String,
    pub commit_overage_policy: Option<OveragePolicy>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl BudgetRow {
    /// A new ACTIVE budget of `allocated` at `scope` in `unit`: nothing held, spent or owed, no
    /// overdraft, the default overage policy, created and updated `at_ms`.
    pub fn active(scope: impl Into<String>, unit: Unit, ledger_id: impl Into<String>, allocated: i64, at_ms: i64) -> BudgetRow {
        BudgetRow {
            scope: scope.into(),
            unit,
            ledger_id: ledger_id.into(),
            allocated,
            reserved: 0,
            spent: 0,
            debt: 0,
            overdraft_limit: 0,
            is_over_limit: false,
            status: "ACTIVE".into(),
            commit_overage_policy: None,
            created_at_ms: at_ms,
            updated_at_ms: at_ms,
        }
    }

    /// `remaining = allocated - spent - reserved - debt` (LEDGER INVARIANT), computed without
    /// overflow (in i128) and saturated to the i64 range.
    pub fn remaining(&self) -> i64 {
        let r = i128::from(self.allocated) - i128::from(self.spent) - i128::from(self.reserved) - i128::from(self.debt);
        i64::try_from(r).unwrap_or(if r < 0 { i64::MIN } else { i64::MAX })
    }

    /// The spec's `Balance`.
    pub fn balance(&self) -> Balance {
        let a = |n| Amount::new(self.unit, n);
        Balance {
            scope: self.scope.clone(),
            scope_path: self.scope.clone(),
            remaining: a(self.remaining()),
            reserved: a(self.reserved),
            spent: a(self.spent),
            allocated: a(self.allocated),
            debt: a(self.debt),
            overdraft_limit: a(self.overdraft_limit),
            is_over_limit: self.is_over_limit,
        }
    }

    /// The admin plane's `BudgetLedger` of this budget of `tenant`.
    pub fn ledger(&self, tenant: &str) -> BudgetLedger {
        let Balance { scope, scope_path, remaining, reserved, spent, allocated, debt, overdraft_limit, is_over_limit } =
            self.balance();
        BudgetLedger {
            ledger_id: self.ledger_id.clone(),
            tenant_id: tenant.to_string(),
            scope,
            scope_path,
            unit: self.unit,
            allocated,
            remaining,
            reserved,
            spent,
            debt,
            overdraft_limit,
            is_over_limit,
            status: self.status.clone(),
            commit_overage_policy: self.commit_overage_policy,
            created_at: rfc3339(self.created_at_ms),
            updated_at: rfc3339(self.updated_at_ms),
        }
    }
}

/// `a + b` for a budget counter, or 400 INVALID_REQUEST naming the request `field` whose
/// amount would overflow the budget's `counter`.
pub fn checked_add(a: i64, b: i64, field: &str, counter: &str) -> GatewayResult<i64> {
    a.checked_add(b).filter(|v| *v >= 0).ok_or_else(|| {
        GatewayError::invalid(format!("`{field}` would overflow the budget's {counter} ({} max)", i64::MAX))
            .with_details(ErrorDetails::Overflow { field: field.to_string(), counter: counter.to_string() })
    })
}

/// `a - b` for a counter that must stay non-negative: a negative result means the stored
/// ledger is inconsistent, a 500 (never a silent wrap).
pub fn checked_sub(a: i64, b: i64, counter: &str) -> GatewayResult<i64> {
    a.checked_sub(b)
        .filter(|v| *v >= 0)
        .ok_or_else(|| GatewayError::internal(format!("ledger counter `{counter}` would go negative ({a} - {b})")))
}

/// The budgets of the derived `scopes` in `unit`, canonical order. None at all: 400
/// UNIT_MISMATCH when some scope has a budget in another unit, else 404 NOT_FOUND.
pub fn budgets_for(store: &dyn LedgerStore, tenant: &str, scopes: &[String], unit: Unit) -> GatewayResult<Vec<BudgetRow>> {
    let out: Vec<BudgetRow> = store.budgets(tenant, scopes, unit)?.into_iter().flatten().collect();
    if out.is_empty() {
        return Err(no_budget_error(store, tenant, scopes, unit)?);
    }
    Ok(out)
}

fn no_budget_error(store: &dyn LedgerStore, tenant: &str, scopes: &[String], unit: Unit) -> GatewayResult<GatewayError> {
    for scope in scopes.iter().rev() {
        let units = store.budget_units(tenant, scope)?;
        if !units.is_empty() {
            return Ok(GatewayError::new(
                ErrorCode::UnitMismatch,
                format!("no {} budget at scope `{scope}`; it has budgets in {}", unit.as_str(), units.join(", ")),
            )
            .with_details(ErrorDetails::UnitMismatch { scope: scope.clone(), requested_unit: unit, expected_units: units }));
        }
    }
    let deepest = scopes.last().map(String::as_str).unwrap_or("");
    Ok(GatewayError::not_found(format!("Budget not found for provided scope: {deepest}")))
}

/// `ErrorResponse.details` of a budget-state refusal at `b`: the blocking scope, what it has
/// left, and the v0.1.26 `DenyDetail` (a SHOULD there; `details` is open in v0.1.25, so the
/// extra key is allowed).
fn deny_details(code: ErrorCode, b: &BudgetRow, requested: i64) -> ErrorDetails {
    let suggested_fix = match code {
        ErrorCode::BudgetExceeded => format!(
            "Fund {} by at least {} {}",
            b.scope,
            (i128::from(requested) - i128::from(b.remaining())).max(0),
            b.unit.as_str()
        ),
        ErrorCode::BudgetFrozen => format!("Unfreeze the budget at {}", b.scope),
        ErrorCode::DebtOutstanding | ErrorCode::OverdraftLimitExceeded => {
            format!("Repay the debt of {} {} at {}", b.debt, b.unit.as_str(), b.scope)
        }
        _ => format!("The budget at {} is closed", b.scope),
    };
    ErrorDetails::Budget {
        scope: b.scope.clone(),
        remaining: b.remaining(),
        requested,
        deny_detail: DenyDetail {
            reason_code: code.as_str().to_string(),
            blocked_by_scope: Some(b.scope.clone()),
            budget_remaining: Some(b.remaining()),
            suggested_fix: Some(suggested_fix),
        },
    }
}

/// The `DenyDetail` of a reservation refused with `e`: the budget refusal's own, or one that
/// names only the error's code.
fn deny_detail_of(e: &GatewayError) -> DenyDetail {
    match e.details.as_deref() {
        Some(ErrorDetails::Budget { deny_detail, .. }) => deny_detail.clone(),
        _ => DenyDetail::reason(e.code.as_str()),
    }
}

/// A budget-state refusal: the error code (409 on the persisting surface) doubling as the
/// `reason_code` of a DENY decision.
fn check_budgets(budgets: &[BudgetRow], amount: i64) -> Result<(), GatewayError> {
    for b in budgets {
        match b.status.as_str() {
            "FROZEN" => {
                return Err(GatewayError::new(ErrorCode::BudgetFrozen, format!("budget at `{}` is frozen", b.scope))
                    .with_details(deny_details(ErrorCode::BudgetFrozen, b, amount)));
            }
            "CLOSED" => {
                return Err(GatewayError::new(ErrorCode::BudgetClosed, format!("budget at `{}` is closed", b.scope))
                    .with_details(deny_details(ErrorCode::BudgetClosed, b, amount)));
            }
            _ => {}
        }
    }
    // Over-limit takes precedence over DEBT_OUTSTANDING (ERROR SEMANTICS).
    if let Some(b) = budgets.iter().find(|b| b.is_over_limit || (b.overdraft_limit > 0 && b.debt > b.overdraft_limit)) {
        return Err(GatewayError::new(
            ErrorCode::OverdraftLimitExceeded,
            format!("scope `{}` is over its overdraft limit (debt {}, limit {})", b.scope, b.debt, b.overdraft_limit),
        )
        .with_details(deny_details(ErrorCode::OverdraftLimitExceeded, b, amount)));
    }
    if let Some(b) = budgets.iter().find(|b| b.debt > 0 && b.overdraft_limit == 0) {
        return Err(GatewayError::new(
            ErrorCode::DebtOutstanding,
            format!("scope `{}` has outstanding debt {}", b.scope, b.debt),
        )
        .with_details(deny_details(ErrorCode::DebtOutstanding, b, amount)));
    }
    if let Some(b) = budgets.iter().find(|b| b.remaining() < amount) {
        return Err(GatewayError::new(
            ErrorCode::BudgetExceeded,
            format!("Insufficient remaining budget for scope {}: remaining {}, requested {amount}", b.scope, b.remaining()),
        )
        .with_details(deny_details(ErrorCode::BudgetExceeded, b, amount)));
    }
    Ok(())
}

/// What [`budget_events`] compares of a budget before a change (no allocation on the hot path).
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    remaining: i64,
    debt: i64,
    is_over_limit: bool,
}

/// The events a budget's change causes (`cycles-protocol-v0.yaml` §WEBHOOK EVENT GUIDANCE):
/// `budget.exhausted` when its remaining reaches zero, `budget.debt_incurred` when its debt
/// grows, `budget.over_limit_entered` when it goes over its overdraft limit. Runs in the job
/// that saves `after`.
fn budget_events(
    store: &dyn LedgerStore,
    tenant: &str,
    before: Snapshot,
    after: &BudgetRow,
    reservation_id: Option<&str>,
    policy: OveragePolicy,
    now: i64,
) -> GatewayResult<()> {
    let unit = after.unit.as_str();
    if before.remaining > 0 && after.remaining() <= 0 {
        let used = i128::from(after.spent) + i128::from(after.reserved);
        let utilization = if after.allocated > 0 { used as f64 / after.allocated as f64 } else { 1.0 };
        let data = EventData::BudgetThreshold {
            scope: after.scope.clone(),
            unit,
            threshold: 1.0,
            utilization,
            allocated: after.allocated,
            remaining: after.remaining(),
            spent: after.spent,
            reserved: after.reserved,
            direction: "rising",
        };
        store.emit(NewEvent::new(EventType::BudgetExhausted, tenant, data).scope(after.scope.clone()), now)?;
    }
    if after.debt > before.debt {
        let data = EventData::BudgetDebtIncurred {
            scope: after.scope.clone(),
            unit,
            reservation_id: reservation_id.map(String::from),
            debt_incurred: after.debt - before.debt,
            total_debt: after.debt,
            overdraft_limit: after.overdraft_limit,
            overage_policy: policy.as_str(),
        };
        store.emit(NewEvent::new(EventType::BudgetDebtIncurred, tenant, data).scope(after.scope.clone()), now)?;
    }
    if !before.is_over_limit && after.is_over_limit {
        let data = EventData::BudgetOverLimit {
            scope: after.scope.clone(),
            unit,
            debt: after.debt,
            overdraft_limit: after.overdraft_limit,
            is_over_limit: true,
            debt_utilization: (after.overdraft_limit > 0).then(|| after.debt as f64 / after.overdraft_limit as f64),
        };
        store.emit(NewEvent::new(EventType::BudgetOverLimitEntered, tenant, data).scope(after.scope.clone()), now)?;
    }
    Ok(())
}

impl BudgetRow {
    /// What [`budget_events`] compares after a change.
    fn snapshot(&self) -> Snapshot {
        Snapshot { remaining: self.remaining(), debt: self.debt, is_over_limit: self.is_over_limit }
    }

    /// Its amounts and status, as budget lifecycle events report them.
    pub fn state(&self) -> events::LedgerState {
        events::LedgerState {
            allocated: self.allocated,
            remaining: self.remaining(),
            debt: self.debt,
            spent: self.spent,
            reserved: self.reserved,
            status: match self.status.as_str() {
                "FROZEN" => "FROZEN",
                "CLOSED" => "CLOSED",
                _ => "ACTIVE",
            },
        }
    }
}

/// Emits a budget lifecycle event (`EventDataBudgetLifecycle`) for an operator's change of
/// `after` (`before` absent on creation), and `budget.over_limit_exited` when the change took
/// the budget back under its overdraft limit.
pub fn emit_budget_lifecycle(
    store: &dyn LedgerStore,
    tenant: &str,
    event_type: EventType,
    operation: &'static str,
    before: Option<&BudgetRow>,
    after: &BudgetRow,
    now: i64,
) -> GatewayResult<()> {
    let data = EventData::BudgetLifecycle {
        ledger_id: after.ledger_id.clone(),
        scope: after.scope.clone(),
        unit: after.unit.as_str(),
        operation,
        previous_state: before.map(BudgetRow::state),
        new_state: after.state(),
        reason: None,
    };
    store.emit(NewEvent::new(event_type, tenant, data).scope(after.scope.clone()), now)?;
    if let Some(before) = before
        && before.is_over_limit
        && !after.is_over_limit
    {
        let data = EventData::BudgetOverLimit {
            scope: after.scope.clone(),
            unit: after.unit.as_str(),
            debt: after.debt,
            overdraft_limit: after.overdraft_limit,
            is_over_limit: false,
            debt_utilization: (after.overdraft_limit > 0).then(|| after.debt as f64 / after.overdraft_limit as f64),
        };
        store.emit(NewEvent::new(EventType::BudgetOverLimitExited, tenant, data).scope(after.scope.clone()), now)?;
    }
    Ok(())
}

/// Emits `reservation.observed_denied` (with its DenyDetail and the deterministic correlation id
/// the spec asks for) or `reservation.observed_allowed` for an OBSERVE-mode evaluation.
fn emit_observed(
    store: &dyn LedgerStore,
    tenant: &str,
    req: &ReserveRequest,
    scope: &str,
    denied: Option<DenyDetail>,
    now: i64,
) -> GatewayResult<()> {
    let (action, subject) = (req.action.clone(), req.subject.clone());
    let unit = req.estimate.unit.as_str();
    let event = match denied {
        Some(detail) => {
            let reason = detail.reason_code.clone();
            let blocked = detail.blocked_by_scope.clone();
            // A hash over (tenant, scope, action kind, window key, reason code); no quota
            // windows here, so the window key is empty.
            let correlation =
                sha256_hex(format!("{tenant}\u{1f}{scope}\u{1f}{}\u{1f}\u{1f}{reason}", req.action.kind).as_bytes());
            let data = EventData::ObservedDenied {
                scope: scope.to_string(),
                deny_detail: detail,
                observe_mode: "OBSERVE",
                unit,
                action,
                subject,
                estimated_amount: req.estimate.amount,
                would_have_blocked_at: blocked,
            };
            NewEvent::new(EventType::ReservationObservedDenied, tenant, data).correlation(correlation)
        }
        None => {
            let data = EventData::ObservedAllowed {
                scope: scope.to_string(),
                decision: "ALLOW",
                observe_mode: "OBSERVE",
                unit,
                action,
                subject,
                estimated_amount: req.estimate.amount,
            };
            NewEvent::new(EventType::ReservationObservedAllowed, tenant, data)
        }
    };
    store.emit(event.scope(scope.to_string()), now)?;
    Ok(())
}

/// Whether `e` is a budget-state refusal of a reservation (a `reservation.denied`).
pub fn is_denial(e: &GatewayError) -> bool {
    matches!(
        e.code,
        ErrorCode::BudgetExceeded
            | ErrorCode::OverdraftLimitExceeded
            | ErrorCode::DebtOutstanding
            | ErrorCode::BudgetFrozen
            | ErrorCode::BudgetClosed
            | ErrorCode::TenantClosed
    )
}

/// Emits `reservation.denied` for a reserve or decide refused with `e` (its `details` name the
/// blocking scope and what it had left, when a budget blocked).
pub fn emit_denied(store: &dyn LedgerStore, tenant: &str, subject: &Subject, action: &Action, estimate: &Amount, e: &GatewayError, now: i64) -> GatewayResult<()> {
    let (scope, remaining) = match e.details.as_deref() {
        Some(ErrorDetails::Budget { scope, remaining, .. }) => (Some(scope.clone()), Some(*remaining)),
        _ => (None, None),
    };
    let data = EventData::ReservationDenied {
        scope: scope.clone(),
        unit: estimate.unit.as_str(),
        reason_code: e.code.as_str(),
        requested_amount: estimate.amount,
        remaining,
        action: action.clone(),
        subject: subject.clone(),
        deny_detail: Some(deny_detail_of(e)),
    };
    let scope = scope.or_else(|| subject.scopes().last().cloned());
    let mut event = NewEvent::new(EventType::ReservationDenied, tenant, data);
    if let Some(scope) = scope {
        event = event.scope(scope);
    }
    store.emit(event, now)?;
    Ok(())
}

/// What the tenant record says, for the TENANT_CLOSED guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantState {
    /// No tenant record: not guarded.
    Unknown,
    /// ACTIVE.
    Active,
    /// SUSPENDED: read-only.
    Suspended,
    /// CLOSED: terminal.
    Closed,
}

/// The state of `tenant` and whether it is in v0.1.26 observe mode, in one lookup.
pub fn tenant_settings(store: &dyn LedgerStore, tenant: &str) -> GatewayResult<(TenantState, bool)> {
    match store.tenant(tenant)? {
        None => Ok((TenantState::Unknown, false)),
        Some(record) => Ok((parse_state(tenant, &record.status)?, record.observe)),
    }
}

fn parse_state(tenant: &str, status: &str) -> GatewayResult<TenantState> {
    match TenantStatus::from_name(status) {
        Some(TenantStatus::Active) => Ok(TenantState::Active),
        Some(TenantStatus::Suspended) => Ok(TenantState::Suspended),
        Some(TenantStatus::Closed) => Ok(TenantState::Closed),
        None => Err(GatewayError::internal(format!("tenant `{tenant}` has an unreadable status `{status}`"))),
    }
}

/// The state of `tenant`; a record whose status is unreadable fails closed (500).
pub fn tenant_state(store: &dyn LedgerStore, tenant: &str) -> GatewayResult<TenantState> {
    Ok(tenant_settings(store, tenant)?.0)
}

fn guard_mutation(store: &dyn LedgerStore, tenant: &str) -> GatewayResult<()> {
    guard_state(tenant, tenant_state(store, tenant)?)
}

/// The closed-tenant (409) and suspended-tenant (403) guard of a mutation.
fn guard_state(tenant: &str, state: TenantState) -> GatewayResult<()> {
    match state {
        TenantState::Closed => Err(GatewayError::new(ErrorCode::TenantClosed, format!("tenant `{tenant}` is closed"))),
        TenantState::Suspended => Err(GatewayError::forbidden(format!("tenant `{tenant}` is suspended (read-only)"))),
        TenantState::Active | TenantState::Unknown => Ok(()),
    }
}

/// Checks `subject.tenant` against the effective tenant (403 on mismatch).
pub fn check_subject_tenant(subject: &Subject, tenant: &str) -> GatewayResult<()> {
    match subject.tenant.as_deref() {
        Some(t) if t != tenant => Err(GatewayError::forbidden(format!(
            "subject.tenant `{t}` does not match the tenant of the API key"
        ))),
        _ => Ok(()),
    }
}

/// The request digest that idempotency compares: SHA-256 of the canonical serialisation (keys
/// sorted) plus the path parameter.
pub fn request_hash<T: Serialize>(body: &T, path_param: &str) -> GatewayResult<String> {
    use sha2::Digest;
    /// Feeds the serialiser's output straight into the digest (the text is never kept).
    struct Digesting(sha2::Sha256);
    impl std::io::Write for Digesting {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // through a `Value`, whose maps sort their keys: the canonical form
    let value = serde_json::to_value(body).map_err(GatewayError::internal)?;
    let mut digest = Digesting(sha2::Sha256::new());
    digest.0.update(path_param.as_bytes());
    digest.0.update(b"\n");
    serde_json::to_writer(&mut digest, &value).map_err(GatewayError::internal)?;
    Ok(crate::util::hex(&digest.0.finalize()))
}

/// IDEMPOTENCY: the stored response of `(tenant, endpoint, key)` when the payload matches;
/// 409 IDEMPOTENCY_MISMATCH when it does not.
pub fn idem_lookup<T: serde::de::DeserializeOwned>(store: &dyn LedgerStore, tenant: &str, endpoint: &str, key: &str, hash: &str) -> GatewayResult<Option<T>> {
    match store.recall(tenant, endpoint, key)? {
        None => Ok(None),
        Some(stored) if stored.request_hash != hash => Err(GatewayError::new(
            ErrorCode::IdempotencyMismatch,
            format!("idempotency key `{key}` was already used with a different request payload"),
        )),
        Some(stored) => Ok(Some(
            serde_json::from_str(&stored.response)
                .map_err(|e| GatewayError::internal(format!("the stored `{endpoint}` answer for key `{key}` is unreadable: {e}")))?,
        )),
    }
}

/// Stores the successful response of `(tenant, endpoint, key)`.
pub fn idem_store<T: serde::Serialize>(store: &dyn LedgerStore, tenant: &str, endpoint: &str, key: &str, hash: &str, response: &T) -> GatewayResult<()> {
    // straight to text: the stored response is the answer's JSON as first sent
    let response = serde_json::to_string(response).map_err(GatewayError::internal)?;
    store.remember(tenant, endpoint, key, hash, &response)
}

/// One reservation row.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[allow(missing_docs)]
pub struct Reservation {
    pub id: String,
    pub tenant: String,
    pub status: String,
    pub unit: Unit,
    pub amount: i64,
    pub committed: Option<i64>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub grace_ms: i64,
    pub finalized_at_ms: Option<i64>,
    pub extensions: i64,
    pub overage_policy: OveragePolicy,
    pub scope_path: String,
    pub scopes: Vec<String>,
    pub budgeted: Vec<String>,
    pub idempotency_key: Option<String>,
    pub subject: Subject,
    pub action: Action,
    pub metadata: Option<Value>,
    pub committed_metadata: Option<Value>,
    /// The API key that created it (`None`: made by the gateway itself, or before owners were
    /// recorded).
    pub owner_key: Option<String>,
}

/// The reservation `id` owned by `tenant`: 404 when it never existed, 403 when another
/// tenant owns it.
pub fn owned_reservation(store: &dyn LedgerStore, tenant: &str, id: &str) -> GatewayResult<Reservation> {
    let r = store.reservation(id)?.ok_or_else(|| GatewayError::not_found(format!("reservation `{id}` not found")))?;
    if r.tenant != tenant {
        return Err(GatewayError::forbidden(format!("reservation `{id}` belongs to another tenant")));
    }
    Ok(r)
}

fn reservation_budgets(store: &dyn LedgerStore, r: &Reservation) -> GatewayResult<Vec<BudgetRow>> {
    let found = store.budgets(&r.tenant, &r.budgeted, r.unit)?;
    r.budgeted
        .iter()
        .zip(found)
        .map(|(scope, b)| b.ok_or_else(|| GatewayError::internal(format!("budget `{scope}` of reservation `{}` vanished", r.id))))
        .collect()
}

fn balances(budgets: &[BudgetRow]) -> Vec<Balance> {
    budgets.iter().map(BudgetRow::balance).collect()
}

/// The outcome of a successful reservation, for callers inside the gateway.
#[derive(Debug, Clone)]
pub struct Reserved {
    /// The response body.
    pub response: ReservationCreateResponse,
    /// The new reservation, `None` on a dry run.
    pub reservation_id: Option<String>,
}

/// POST /v1/reservations. `hash` is the idempotency digest of the request. The reservation
/// has no owning key: any key of the tenant with the permission may act on it (holds the
/// gateway makes itself); API calls use [`reserve_as`].
pub fn reserve(store: &dyn LedgerStore, tenant: &str, req: &ReserveRequest, hash: &str, now: i64) -> GatewayResult<Reserved> {
    reserve_as(store, tenant, None, req, hash, now)
}

/// [`reserve`] recording `owner_key`, the API key that created the reservation: only that key
/// commits, extends or releases it (and an operator releases it).
pub fn reserve_as(
    store: &dyn LedgerStore,
    tenant: &str,
    owner_key: Option<&str>,
    req: &ReserveRequest,
    hash: &str,
    now: i64,
) -> GatewayResult<Reserved> {
    check_subject_tenant(&req.subject, tenant)?;
    let dry = req.dry_run.unwrap_or(false);
    if let Some(mut stored) = idem_lookup::<ReservationCreateResponse>(store, tenant, "reserve", &req.idempotency_key, hash)? {
        // A replay says what is left now: nothing once the reservation is no longer active.
        if let (Some(expires), Some(_)) = (stored.expires_at_ms, stored.remaining_ttl_ms) {
            let active = match &stored.reservation_id {
                Some(id) => store.reservation(id)?.is_some_and(|r| r.status == "ACTIVE"),
                None => false,
            };
            stored.remaining_ttl_ms = Some(if active { (expires - now).max(0) } else { 0 });
        }
        let id = stored.reservation_id.clone();
        return Ok(Reserved { response: stored, reservation_id: id });
    }
    let scopes = req.subject.scopes();
    let scope_path = scopes.last().cloned().unwrap_or_default();
    let unit = req.estimate.unit;
    let amount = req.estimate.amount;
    let (state, tenant_observes) = tenant_settings(store, tenant)?;
    // v0.1.26 OBSERVE MODE PRECEDENCE: the request's mode, else the tenant's when OBSERVE,
    // else ENFORCE (DISABLED is ENFORCE).
    let observe = match req.observe_mode {
        Some(mode) => mode == ObserveMode::Observe,
        None => tenant_observes,
    };
    if dry || observe {
        let mut body = ReservationCreateResponse {
            decision: BudgetDecision::Deny,
            reservation_id: None,
            reserved: None,
            expires_at_ms: None,
            remaining_ttl_ms: None,
            scope_path: scope_path.clone(),
            affected_scopes: scopes.clone(),
            balances: None,
            reason_code: None,
            deny_detail: None,
        };
        let verdict = if state == TenantState::Closed {
            Err(GatewayError::new(ErrorCode::TenantClosed, "tenant is closed"))
        } else if state == TenantState::Suspended {
            // what enforcement would answer (a 403, not a decision): a dry run or an observed
            // reservation must not tell a suspended tenant ALLOW
            return Err(GatewayError::forbidden(format!("tenant `{tenant}` is suspended (read-only)")));
        } else {
            budgets_for(store, tenant, &scopes, unit).and_then(|b| {
                body.balances = Some(balances(&b));
                check_budgets(&b, amount)
            })
        };
        let denied = match verdict {
            Ok(()) => {
                body.decision = BudgetDecision::Allow;
                body.reserved = Some(req.estimate);
                None
            }
            Err(e) if e.code == ErrorCode::NotFound => {
                body.reason_code = Some("BUDGET_NOT_FOUND".into());
                Some(DenyDetail::reason("BUDGET_NOT_FOUND"))
            }
            Err(e) if e.code.http_status() == 409 => {
                body.reason_code = Some(e.code.as_str().into());
                Some(deny_detail_of(&e))
            }
            Err(e) => return Err(e),
        };
        if observe {
            // The v0.1.26 response carries the DenyDetail of an observed denial (only in
            // OBSERVE mode: a v0.1.25 dry-run body has no such key).
            body.deny_detail.clone_from(&denied);
            emit_observed(store, tenant, req, &scope_path, denied, now)?;
        }
        idem_store(store, tenant, "reserve", &req.idempotency_key, hash, &body)?;
        return Ok(Reserved { response: body, reservation_id: None });
    }
    guard_state(tenant, state)?;
    let mut budgets = budgets_for(store, tenant, &scopes, unit)?;
    check_budgets(&budgets, amount)?;
    let policy = req
        .overage_policy
        .or_else(|| budgets.iter().rev().find_map(|b| b.commit_overage_policy))
        .unwrap_or_default();
    for b in &mut budgets {
        let before = b.snapshot();
        b.reserved = checked_add(b.reserved, amount, "estimate.amount", "reserved")?;
        store.save_budget(tenant, b, now)?;
        budget_events(store, tenant, before, b, None, policy, now)?;
    }
    let ttl = req.ttl_ms.unwrap_or(DEFAULT_TTL_MS);
    let grace = req.grace_period_ms.unwrap_or(DEFAULT_GRACE_MS);
    let expires = now.checked_add(ttl).ok_or_else(|| GatewayError::invalid("`ttl_ms` would overflow the expiry time"))?;
    let reservation = Reservation {
        id: new_id("rsv_"),
        tenant: tenant.to_string(),
        status: "ACTIVE".into(),
        unit,
        amount,
        committed: None,
        created_at_ms: now,
        expires_at_ms: expires,
        grace_ms: grace,
        finalized_at_ms: None,
        extensions: 0,
        overage_policy: policy,
        scope_path: scope_path.clone(),
        scopes: scopes.clone(),
        budgeted: budgets.iter().map(|b| b.scope.clone()).collect(),
        idempotency_key: Some(req.idempotency_key.clone()),
        subject: req.subject.clone(),
        action: req.action.clone(),
        metadata: req.metadata.as_ref().map(|m| Value::Object(m.clone())),
        committed_metadata: None,
        owner_key: owner_key.map(String::from),
    };
    store.insert_reservation(&reservation)?;
    let id = reservation.id;
    let body = ReservationCreateResponse {
        decision: BudgetDecision::Allow,
        reservation_id: Some(id.clone()),
        reserved: Some(req.estimate),
        expires_at_ms: Some(expires),
        remaining_ttl_ms: Some(ttl),
        scope_path,
        affected_scopes: scopes,
        balances: None,
        reason_code: None,
        deny_detail: None,
    };
    idem_store(store, tenant, "reserve", &req.idempotency_key, hash, &body)?;
    Ok(Reserved { response: body, reservation_id: Some(id) })
}

/// A lazily detected expiry: marks the reservation EXPIRED and frees its hold.
fn expire(store: &dyn LedgerStore, r: &mut Reservation, now: i64) -> GatewayResult<()> {
    let mut budgets = reservation_budgets(store, r)?;
    for b in &mut budgets {
        b.reserved = checked_sub(b.reserved, r.amount, "reserved")?;
        store.save_budget(&r.tenant, b, now)?;
    }
    r.status = "EXPIRED".into();
    store.save_reservation(r)?;
    let data = EventData::ReservationExpired {
        reservation_id: r.id.clone(),
        scope: r.scope_path.clone(),
        unit: r.unit.as_str().into(),
        estimated_amount: r.amount,
        created_at: rfc3339(r.created_at_ms),
        expired_at: rfc3339(now),
        ttl_ms: r.expires_at_ms.saturating_sub(r.created_at_ms),
        extensions_used: r.extensions,
    };
    let event = NewEvent::new(EventType::ReservationExpired, r.tenant.clone(), data)
        .scope(r.scope_path.clone())
        .correlation(format!("reservation:{}", r.id));
    store.emit(event, now)?;
    Ok(())
}

/// Checks a live reservation for commit/release (`deadline` = expiry + grace) or extend
/// (`deadline` = expiry). An expired one is expired on the spot (and that change is kept).
fn check_live(store: &dyn LedgerStore, r: &mut Reservation, deadline: i64, now: i64) -> GatewayResult<Option<GatewayError>> {
    match r.status.as_str() {
        "COMMITTED" | "RELEASED" => {
            return Ok(Some(GatewayError::new(
                ErrorCode::ReservationFinalized,
                format!("reservation `{}` is already {}", r.id, r.status),
            )));
        }
        "EXPIRED" => {
            return Ok(Some(GatewayError::new(ErrorCode::ReservationExpired, format!("reservation `{}` has expired", r.id))));
        }
        _ => {}
    }
    if now > deadline {
        if now > r.expires_at_ms + r.grace_ms {
            expire(store, r, now)?;
        }
        return Ok(Some(GatewayError::new(ErrorCode::ReservationExpired, format!("reservation `{}` has expired", r.id))));
    }
    Ok(None)
}

/// How a charge of `delta` beyond a hold lands on the budgets.
struct Charge {
    /// Per budget: added to spent.
    spent: Vec<i64>,
    /// Per budget: added to debt.
    debt: Vec<i64>,
    /// Per budget: now over limit.
    over: Vec<bool>,
    /// What the caller is told was charged beyond the hold.
    charged_delta: i64,
}

/// Applies the overage policy to an extra `delta` over `budgets` (commit overage or event).
/// `field` names the request amount, for overflow errors.
fn overage(budgets: &[BudgetRow], delta: i64, policy: OveragePolicy, field: &str) -> GatewayResult<Charge> {
    let n = budgets.len();
    if delta <= 0 || budgets.iter().all(|b| b.remaining() >= delta) {
        return Ok(Charge { spent: vec![delta.max(0); n], debt: vec![0; n], over: vec![false; n], charged_delta: delta.max(0) });
    }
    match policy {
        OveragePolicy::Reject => {
            let b = budgets.iter().find(|b| b.remaining() < delta);
            Err(GatewayError::new(
                ErrorCode::BudgetExceeded,
                format!(
                    "Insufficient remaining budget for scope {}: {delta} more is needed",
                    b.map(|b| b.scope.as_str()).unwrap_or("")
                ),
            ))
        }
        OveragePolicy::AllowIfAvailable => {
            let capped = budgets.iter().map(|b| b.remaining()).min().unwrap_or(0).clamp(0, delta);
            Ok(Charge {
                spent: vec![capped; n],
                debt: vec![0; n],
                over: budgets.iter().map(|b| b.remaining() < delta).collect(),
                charged_delta: capped,
            })
        }
        OveragePolicy::AllowWithOverdraft => {
            let shortfall: Vec<i64> = budgets.iter().map(|b| (delta - b.remaining().max(0)).max(0)).collect();
            for (b, s) in budgets.iter().zip(&shortfall) {
                checked_add(b.debt, *s, field, "debt")?;
            }
            if let Some((b, s)) = budgets.iter().zip(&shortfall).find(|(b, s)| b.debt + **s > b.overdraft_limit) {
                return Err(GatewayError::new(
                    ErrorCode::OverdraftLimitExceeded,
                    format!(
                        "scope `{}`: debt {} + {s} would exceed the overdraft limit {}",
                        b.scope, b.debt, b.overdraft_limit
                    ),
                ));
            }
            Ok(Charge {
                spent: shortfall.iter().map(|s| delta - s).collect(),
                debt: shortfall,
                over: vec![false; n],
                charged_delta: delta,
            })
        }
    }
}

/// POST /v1/reservations/{id}/commit.
pub fn commit(store: &dyn LedgerStore, tenant: &str, id: &str, req: &CommitRequest, hash: &str, now: i64) -> GatewayResult<Finished<CommitResponse>> {
    let mut r = owned_reservation(store, tenant, id)?;
    if let Some(stored) = idem_lookup(store, tenant, "commit", &req.idempotency_key, hash)? {
        return Ok(Finished::Done(stored));
    }
    guard_mutation(store, tenant)?;
    let deadline = r.expires_at_ms + r.grace_ms;
    if let Some(e) = check_live(store, &mut r, deadline, now)? {
        return Ok(Finished::RefusedKeepingChanges(e));
    }
    if req.actual.unit != r.unit {
        return Err(GatewayError::new(
            ErrorCode::UnitMismatch,
            format!("actual.unit {} differs from the reservation's {}", req.actual.unit.as_str(), r.unit.as_str()),
        ));
    }
    let mut budgets = reservation_budgets(store, &r)?;
    let actual = req.actual.amount;
    let charge = overage(&budgets, actual - r.amount, r.overage_policy, "actual.amount")?;
    let charged = actual.min(r.amount) + charge.charged_delta;
    for (i, b) in budgets.iter_mut().enumerate() {
        let before = b.snapshot();
        b.reserved = checked_sub(b.reserved, r.amount, "reserved")?;
        let spent = checked_add(actual.min(r.amount), charge.spent[i], "actual.amount", "spent")?;
        b.spent = checked_add(b.spent, spent, "actual.amount", "spent")?;
        b.debt = checked_add(b.debt, charge.debt[i], "actual.amount", "debt")?;
        b.is_over_limit = b.is_over_limit || charge.over[i] || (b.overdraft_limit > 0 && b.debt > b.overdraft_limit);
        store.save_budget(tenant, b, now)?;
        budget_events(store, tenant, before, b, Some(&r.id), r.overage_policy, now)?;
    }
    if actual > r.amount {
        let data = EventData::CommitOverage {
            reservation_id: r.id.clone(),
            scope: r.scope_path.clone(),
            unit: r.unit.as_str().into(),
            estimated_amount: r.amount,
            actual_amount: actual,
            overage: actual - r.amount,
            overage_policy: r.overage_policy.as_str().into(),
            debt_incurred: charge.debt.iter().copied().max().unwrap_or(0),
        };
        let event = NewEvent::new(EventType::ReservationCommitOverage, tenant, data)
            .scope(r.scope_path.clone())
            .correlation(format!("reservation:{}", r.id));
        store.emit(event, now)?;
    }
    r.status = "COMMITTED".into();
    r.committed = Some(charged);
    r.finalized_at_ms = Some(now);
    r.committed_metadata = req.metadata.clone().map(Value::Object);
    store.save_reservation(&r)?;
    let body = CommitResponse {
        status: AnswerStatus::Committed,
        charged: Amount::new(r.unit, charged),
        released: (actual < r.amount).then(|| Amount::new(r.unit, r.amount - actual)),
        balances: balances(&budgets),
    };
    idem_store(store, tenant, "commit", &req.idempotency_key, hash, &body)?;
    Ok(Finished::Done(body))
}

/// The answer of a commit, release or extend. Finding a reservation expired on the way expires it
/// on the spot (its hold goes back to the budgets), and that change must be kept although the
/// operation is refused. An `Err` would roll it back with the rest of the unit of work, so the
/// refusal is returned inside a successful one as [`Finished::RefusedKeepingChanges`], and
/// [`Finished::into_result`] raises it once the store has committed.
#[derive(Debug)]
#[must_use = "a refusal that kept its changes is still a refusal"]
pub enum Finished<T> {
    /// The operation's answer.
    Done(T),
    /// Refused; the changes made while finding out (a lazy expiry) are kept.
    RefusedKeepingChanges(GatewayError),
}

impl<T> Finished<T> {
    /// The same outcome with the answer mapped by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Finished<U> {
        match self {
            Finished::Done(answer) => Finished::Done(f(answer)),
            Finished::RefusedKeepingChanges(refusal) => Finished::RefusedKeepingChanges(refusal),
        }
    }

    /// The answer, or the refusal as an error (after the store committed the kept changes).
    pub fn into_result(self) -> GatewayResult<T> {
        match self {
            Finished::Done(answer) => Ok(answer),
            Finished::RefusedKeepingChanges(refusal) => Err(refusal),
        }
    }
}

/// POST /v1/reservations/{id}/release.
pub fn release(store: &dyn LedgerStore, tenant: &str, id: &str, req: &ReleaseRequest, hash: &str, now: i64) -> GatewayResult<Finished<ReleaseResponse>> {
    let mut r = owned_reservation(store, tenant, id)?;
    if let Some(stored) = idem_lookup(store, tenant, "release", &req.idempotency_key, hash)? {
        return Ok(Finished::Done(stored));
    }
    guard_mutation(store, tenant)?;
    let deadline = r.expires_at_ms + r.grace_ms;
    if let Some(e) = check_live(store, &mut r, deadline, now)? {
        return Ok(Finished::RefusedKeepingChanges(e));
    }
    let mut budgets = reservation_budgets(store, &r)?;
    for b in &mut budgets {
        b.reserved = checked_sub(b.reserved, r.amount, "reserved")?;
        store.save_budget(tenant, b, now)?;
    }
    r.status = "RELEASED".into();
    r.finalized_at_ms = Some(now);
    store.save_reservation(&r)?;
    let body = ReleaseResponse {
        status: AnswerStatus::Released,
        released: Amount::new(r.unit, r.amount),
        balances: balances(&budgets),
    };
    idem_store(store, tenant, "release", &req.idempotency_key, hash, &body)?;
    Ok(Finished::Done(body))
}

/// Maximum extensions per reservation (the governance spec's tenant default).
pub const MAX_EXTENSIONS: i64 = 10;

/// POST /v1/reservations/{id}/extend.
pub fn extend(store: &dyn LedgerStore, tenant: &str, id: &str, req: &ExtendRequest, hash: &str, now: i64) -> GatewayResult<Finished<ExtendResponse>> {
    if !(1..=86_400_000).contains(&req.extend_by_ms) {
        return Err(GatewayError::invalid(format!("`extend_by_ms` must be 1-86400000, got {}", req.extend_by_ms)));
    }
    let mut r = owned_reservation(store, tenant, id)?;
    if let Some(mut stored) = idem_lookup::<ExtendResponse>(store, tenant, "extend", &req.idempotency_key, hash)? {
        // A replay says what is left now: nothing once the reservation is no longer active.
        let active = store.reservation(id)?.is_some_and(|r| r.status == "ACTIVE");
        stored.remaining_ttl_ms = if active { (stored.expires_at_ms - now).max(0) } else { 0 };
        return Ok(Finished::Done(stored));
    }
    guard_mutation(store, tenant)?;
    let deadline = r.expires_at_ms;
    if let Some(e) = check_live(store, &mut r, deadline, now)? {
        return Ok(Finished::RefusedKeepingChanges(e));
    }
    if r.extensions >= MAX_EXTENSIONS {
        return Err(GatewayError::new(
            ErrorCode::MaxExtensionsExceeded,
            format!("reservation `{id}` has been extended {MAX_EXTENSIONS} times already"),
        ));
    }
    r.expires_at_ms = r
        .expires_at_ms
        .checked_add(req.extend_by_ms)
        .ok_or_else(|| GatewayError::invalid("`extend_by_ms` would overflow the reservation's expiry"))?;
    r.extensions += 1;
    store.save_reservation(&r)?;
    let body = ExtendResponse {
        status: AnswerStatus::Active,
        expires_at_ms: r.expires_at_ms,
        remaining_ttl_ms: (r.expires_at_ms - now).max(0),
    };
    idem_store(store, tenant, "extend", &req.idempotency_key, hash, &body)?;
    Ok(Finished::Done(body))
}

/// POST /v1/decide: budget-state conditions answer DENY with a reason code, never 409.
pub fn decide(store: &dyn LedgerStore, tenant: &str, req: &DecisionRequest, hash: &str) -> GatewayResult<DecisionResponse> {
    check_subject_tenant(&req.subject, tenant)?;
    if let Some(stored) = idem_lookup(store, tenant, "decide", &req.idempotency_key, hash)? {
        return Ok(stored);
    }
    let scopes = req.subject.scopes();
    let verdict = if tenant_state(store, tenant)? == TenantState::Closed {
        Err(GatewayError::new(ErrorCode::TenantClosed, "tenant is closed"))
    } else {
        budgets_for(store, tenant, &scopes, req.estimate.unit).and_then(|b| check_budgets(&b, req.estimate.amount))
    };
    let (decision, reason_code) = match verdict {
        Ok(()) => (BudgetDecision::Allow, None),
        Err(e) if e.code == ErrorCode::NotFound => (BudgetDecision::Deny, Some("BUDGET_NOT_FOUND".to_string())),
        Err(e) if e.code.http_status() == 409 => {
            if is_denial(&e) {
                emit_denied(store, tenant, &req.subject, &req.action, &req.estimate, &e, crate::util::now_ms())?;
            }
            (BudgetDecision::Deny, Some(e.code.as_str().to_string()))
        }
        Err(e) => return Err(e),
    };
    let body = DecisionResponse { decision, reason_code, affected_scopes: scopes };
    idem_store(store, tenant, "decide", &req.idempotency_key, hash, &body)?;
    Ok(body)
}

/// POST /v1/events: a direct debit, atomic across the derived scopes.
pub fn event(store: &dyn LedgerStore, tenant: &str, req: &EventRequest, hash: &str, now: i64) -> GatewayResult<EventCreateResponse> {
    check_subject_tenant(&req.subject, tenant)?;
    if let Some(stored) = idem_lookup(store, tenant, "event", &req.idempotency_key, hash)? {
        return Ok(stored);
    }
    guard_mutation(store, tenant)?;
    let scopes = req.subject.scopes();
    let mut budgets = budgets_for(store, tenant, &scopes, req.actual.unit)?;
    let policy = req
        .overage_policy
        .or_else(|| budgets.iter().rev().find_map(|b| b.commit_overage_policy))
        .unwrap_or_default();
    let charge = overage(&budgets, req.actual.amount, policy, "actual.amount")?;
    for (i, b) in budgets.iter_mut().enumerate() {
        let before = b.snapshot();
        b.spent = checked_add(b.spent, charge.spent[i], "actual.amount", "spent")?;
        b.debt = checked_add(b.debt, charge.debt[i], "actual.amount", "debt")?;
        b.is_over_limit = b.is_over_limit || charge.over[i];
        store.save_budget(tenant, b, now)?;
        budget_events(store, tenant, before, b, None, policy, now)?;
    }
    let id = new_id("evt_");
    store.record_debit(&Debit {
        id: &id,
        tenant,
        unit: req.actual.unit,
        amount: req.actual.amount,
        charged: charge.charged_delta,
        scopes: &scopes,
        at_ms: now,
        body: serde_json::to_string(req).map_err(GatewayError::internal)?,
    })?;
    let body = EventCreateResponse {
        status: AnswerStatus::Applied,
        event_id: id,
        charged: (charge.charged_delta != req.actual.amount).then(|| Amount::new(req.actual.unit, charge.charged_delta)),
        balances: balances(&budgets),
    };
    idem_store(store, tenant, "event", &req.idempotency_key, hash, &body)?;
    Ok(body)
}

/// The `ReservationDetail` (with its metadata) or `ReservationSummary` of `r`.
pub fn reservation_detail(r: &Reservation, with_metadata: bool) -> ReservationDetail {
    ReservationDetail {
        reservation_id: r.id.clone(),
        status: r.status.clone(),
        subject: r.subject.clone(),
        action: r.action.clone(),
        reserved: Amount::new(r.unit, r.amount),
        created_at_ms: r.created_at_ms,
        expires_at_ms: r.expires_at_ms,
        scope_path: r.scope_path.clone(),
        affected_scopes: r.scopes.clone(),
        idempotency_key: r.idempotency_key.clone(),
        committed: r.committed.map(|c| Amount::new(r.unit, c)),
        finalized_at_ms: r.finalized_at_ms.filter(|_| matches!(r.status.as_str(), "COMMITTED" | "RELEASED")),
        metadata: r.metadata.clone().filter(|_| with_metadata),
        committed_metadata: r.committed_metadata.clone().filter(|_| with_metadata),
    }
}

/// Filters of GET /v1/reservations.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[allow(missing_docs)]
pub struct ListFilter {
    pub idempotency_key: Option<String>,
    pub status: Option<String>,
    pub tenant: Option<String>,
    pub workspace: Option<String>,
    pub app: Option<String>,
    pub workflow: Option<String>,
    pub agent: Option<String>,
    pub toolset: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// GET /v1/reservations: newest first, cursor = the offset.
pub fn list_reservations(store: &dyn LedgerStore, tenant: &str, f: &ListFilter) -> GatewayResult<ReservationListResponse> {
    if let Some(t) = &f.tenant
        && t != tenant {
            return Err(GatewayError::forbidden("the tenant filter does not match the tenant of the API key"));
        }
    if let Some(s) = &f.status
        && !matches!(s.as_str(), "ACTIVE" | "COMMITTED" | "RELEASED" | "EXPIRED") {
            return Err(GatewayError::invalid(format!("unknown status `{s}`")));
        }
    let limit = usize::try_from(f.limit.unwrap_or(50).clamp(1, 1000)).unwrap_or(50);
    let offset: u64 = match &f.cursor {
        Some(c) => c.parse().map_err(|_| GatewayError::invalid("`cursor` is not a cursor this server issued"))?,
        None => 0,
    };
    let wanted: Vec<(&str, &str)> = [
        ("workspace", &f.workspace),
        ("app", &f.app),
        ("workflow", &f.workflow),
        ("agent", &f.agent),
        ("toolset", &f.toolset),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    .collect();
    let mut out = Vec::new();
    let mut scanned = 0u64;
    let mut more = false;
    let scan = ReservationScan {
        tenant,
        status: f.status.as_deref(),
        idempotency_key: f.idempotency_key.as_deref(),
        offset,
    };
    store.scan_reservations(scan, &mut |r| {
        let levels = r.subject.levels();
        if !wanted.iter().all(|(k, v)| levels.iter().any(|(level, value)| level == k && *value == Some(*v))) {
            scanned += 1;
            return true;
        }
        if out.len() == limit {
            more = true;
            return false;
        }
        scanned += 1;
        out.push(reservation_detail(&r, false));
        true
    })?;
    Ok(ReservationListResponse {
        reservations: out,
        has_more: more,
        next_cursor: more.then(|| (offset + scanned).to_string()),
    })
}

/// Filters of GET /v1/balances.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[allow(missing_docs)]
pub struct BalanceFilter {
    pub tenant: Option<String>,
    pub workspace: Option<String>,
    pub app: Option<String>,
    pub workflow: Option<String>,
    pub agent: Option<String>,
    pub toolset: Option<String>,
    pub include_children: Option<bool>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// The admin plane's view (`cycles-governance-admin-v0.1.25.yaml` getBalances): these
    /// select `BudgetLedger` items instead of the runtime's `Balance` ones.
    pub tenant_id: Option<String>,
    pub scope_prefix: Option<String>,
    pub unit: Option<String>,
}

/// GET /v1/balances. The path is declared twice, with two shapes: the runtime's (subject
/// filters, `Balance` items, at least one filter required) and the admin plane's (`tenant_id`,
/// `scope_prefix`, `unit`; full `BudgetLedger` items). The admin plane's parameters select its
/// shape; otherwise the runtime's rules apply. Mixing the two is a 400.
pub fn get_balances(store: &dyn LedgerStore, tenant: &str, f: &BalanceFilter) -> GatewayResult<BalancesResponse> {
    let admin_view = f.tenant_id.is_some() || f.scope_prefix.is_some() || f.unit.is_some();
    let runtime_view = [&f.tenant, &f.workspace, &f.app, &f.workflow, &f.agent, &f.toolset].iter().any(|v| v.is_some())
        || f.include_children.is_some();
    if admin_view && runtime_view {
        return Err(GatewayError::invalid(
            "`tenant_id`, `scope_prefix` and `unit` (the admin view) cannot be combined with the subject filters (the runtime view)",
        ));
    }
    if admin_view {
        return ledger_balances(store, tenant, f).map(BalancesResponse::Admin);
    }
    runtime_balances(store, tenant, f).map(BalancesResponse::Runtime)
}

/// The admin plane's getBalances: the tenant's `BudgetLedger`s under `scope_prefix` in `unit`.
fn ledger_balances(store: &dyn LedgerStore, tenant: &str, f: &BalanceFilter) -> GatewayResult<BalancePage<BudgetLedger>> {
    if f.tenant_id.as_deref().is_some_and(|t| t != tenant) {
        return Err(GatewayError::forbidden("`tenant_id` does not match the tenant of the API key"));
    }
    let unit = match &f.unit {
        Some(u) => Some(Unit::parse(u).ok_or_else(|| GatewayError::invalid(format!("`unit` `{u}` is not a unit")))?),
        None => None,
    };
    let limit = crate::util::page_size(f.limit)?;
    let offset = crate::util::page_offset(f.cursor.as_deref())?;
    let matching: Vec<BudgetRow> = store
        .tenant_budgets(tenant)?
        .into_iter()
        .filter(|b| f.scope_prefix.as_deref().is_none_or(|p| b.scope.starts_with(p)) && unit.is_none_or(|u| b.unit == u))
        .collect();
    Ok(BalancePage::of(matching, offset, limit).map(|b| b.ledger(tenant)))
}

/// The runtime's getBalances: the tenant's budgets whose scope carries every level the filter
/// names.
fn runtime_balances(store: &dyn LedgerStore, tenant: &str, f: &BalanceFilter) -> GatewayResult<BalancePage<Balance>> {
    let wanted: Vec<(&str, &str)> = [
        ("tenant", &f.tenant),
        ("workspace", &f.workspace),
        ("app", &f.app),
        ("workflow", &f.workflow),
        ("agent", &f.agent),
        ("toolset", &f.toolset),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    .collect();
    if wanted.is_empty() {
        return Err(GatewayError::invalid("at least one of tenant, workspace, app, workflow, agent, toolset is required"));
    }
    if let Some(t) = &f.tenant
        && t != tenant {
            return Err(GatewayError::forbidden("the tenant filter does not match the tenant of the API key"));
        }
    let limit = usize::try_from(f.limit.unwrap_or(50).clamp(1, 1000)).unwrap_or(50);
    let offset = crate::util::page_offset(f.cursor.as_deref())?;
    let matching: Vec<BudgetRow> = store.tenant_budgets(tenant)?
        .into_iter()
        .filter(|b| {
            let levels: Vec<(&str, &str)> = b.scope.split('/').filter_map(|p| p.split_once(':')).collect();
            wanted.iter().all(|w| levels.contains(w))
        })
        .collect();
    Ok(BalancePage::of(matching, offset, limit).map(|b| b.balance()))
}

/// Query of listBudgets (`GET /v1/admin/budgets`, `cycles-governance-admin-v0.1.25.yaml`). The
/// filters combine with AND and apply before the page is cut, so a cursor walks one stable
/// order for one filter set.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct BudgetListQuery {
    /// The tenant (the admin key's choice; an API key lists its own tenant only).
    pub tenant_id: Option<String>,
    /// Only scopes starting with this.
    pub scope_prefix: Option<String>,
    /// Only this exact scope (this server's addition).
    pub scope: Option<String>,
    /// Only this unit.
    pub unit: Option<String>,
    /// Only this status: `ACTIVE`, `FROZEN` or `CLOSED`.
    pub status: Option<String>,
    /// Only budgets over (true) or within (false) their overdraft limit.
    pub over_limit: Option<bool>,
    /// Only budgets with (true) or without (false) debt.
    pub has_debt: Option<bool>,
    /// Inclusive lower bound on `spent / allocated` (0 when nothing is allocated), in [0, 1].
    pub utilization_min: Option<f64>,
    /// Inclusive upper bound on the same, in [0, 1].
    pub utilization_max: Option<f64>,
    /// A case-insensitive substring of the tenant id or the scope (empty: no filter; at most
    /// 128 characters).
    pub search: Option<String>,
    /// `tenant_id`, `scope`, `unit`, `status`, `commit_overage_policy`, `utilization` or
    /// `debt`; absent: by tenant, then scope, then unit.
    pub sort_by: Option<String>,
    /// `asc` or `desc` (the default when `sort_by` is given).
    pub sort_dir: Option<String>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// Page size (default 50; more than 100 is cut to 100).
    pub limit: Option<u32>,
}

/// A budget's `spent / allocated`, 0 when nothing is allocated (listBudgets' utilization).
fn utilization(b: &BudgetRow) -> f64 {
    if b.allocated == 0 { 0.0 } else { b.spent as f64 / b.allocated as f64 }
}

/// A listBudgets `sort_by` key.
#[derive(Debug, Clone, Copy)]
enum BudgetSort {
    Tenant,
    Scope,
    Unit,
    Status,
    Overage,
    Utilization,
    Debt,
}

impl BudgetSort {
    fn parse(name: &str) -> GatewayResult<BudgetSort> {
        Ok(match name {
            "tenant_id" => BudgetSort::Tenant,
            "scope" => BudgetSort::Scope,
            "unit" => BudgetSort::Unit,
            "status" => BudgetSort::Status,
            "commit_overage_policy" => BudgetSort::Overage,
            "utilization" => BudgetSort::Utilization,
            "debt" => BudgetSort::Debt,
            other => {
                return Err(GatewayError::invalid(format!(
                    "`sort_by` must be one of tenant_id, scope, unit, status, commit_overage_policy, utilization, debt, not `{other}`"
                )));
            }
        })
    }

    /// Ascending order of two `(tenant, budget)` rows by this key; policies by their names
    /// (the spec's "lexicographic enum order"), a budget without one first.
    fn compare(self, (ta, a): &(String, BudgetRow), (tb, b): &(String, BudgetRow)) -> std::cmp::Ordering {
        let policy = |r: &BudgetRow| r.commit_overage_policy.map_or("", OveragePolicy::as_str);
        match self {
            BudgetSort::Tenant => ta.cmp(tb),
            BudgetSort::Scope => a.scope.cmp(&b.scope),
            BudgetSort::Unit => a.unit.as_str().cmp(b.unit.as_str()),
            BudgetSort::Status => a.status.cmp(&b.status),
            BudgetSort::Overage => policy(a).cmp(policy(b)),
            BudgetSort::Utilization => utilization(a).total_cmp(&utilization(b)),
            BudgetSort::Debt => a.debt.cmp(&b.debt),
        }
    }
}

/// listBudgets: the `BudgetLedger`s of `tenant` (every tenant with budgets when `None`, the
/// admin key's unscoped listing) that pass `q`'s filters, in `q`'s order, one page of them.
///
/// The cursor is an offset into that order, as getBalances' is: it walks a stable order while
/// the budgets do not change, but it does not carry the sort or the filters (the spec's
/// cursor "encodes the sort key"), so a budget whose sorted value moves between two pages (its
/// utilization or debt) can be skipped or listed twice.
pub fn list_budgets(store: &dyn LedgerStore, tenant: Option<&str>, q: &BudgetListQuery) -> GatewayResult<LedgerList> {
    let unit = match &q.unit {
        Some(u) => Some(Unit::parse(u).ok_or_else(|| GatewayError::invalid(format!("`unit` `{u}` is not a unit")))?),
        None => None,
    };
    if let Some(s) = &q.status
        && !matches!(s.as_str(), "ACTIVE" | "FROZEN" | "CLOSED")
    {
        return Err(GatewayError::invalid(format!("`status` must be ACTIVE, FROZEN or CLOSED, not `{s}`")));
    }
    for (name, bound) in [("utilization_min", q.utilization_min), ("utilization_max", q.utilization_max)] {
        if bound.is_some_and(|x| !(0.0..=1.0).contains(&x)) {
            return Err(GatewayError::invalid(format!("`{name}` must be a number in [0, 1]")));
        }
    }
    if let (Some(min), Some(max)) = (q.utilization_min, q.utilization_max)
        && min > max
    {
        return Err(GatewayError::invalid(format!("`utilization_min` ({min}) is above `utilization_max` ({max})")));
    }
    // The spec sets no maximum here: a larger page is cut to this server's 100, not refused.
    let controls = crate::util::ListControls::read(
        q.search.as_deref(),
        q.sort_dir.as_deref(),
        q.cursor.as_deref(),
        q.limit.map(|n| n.min(100)),
    )?;
    let order = q.sort_by.as_deref().map(BudgetSort::parse).transpose()?;

    let tenants = match tenant {
        Some(t) => vec![t.to_string()],
        None => store.budget_tenants()?,
    };
    let mut rows: Vec<(String, BudgetRow)> = Vec::new();
    for t in tenants {
        for b in store.tenant_budgets(&t)? {
            let kept = q.scope_prefix.as_deref().is_none_or(|p| b.scope.starts_with(p))
                && q.scope.as_deref().is_none_or(|s| b.scope == s)
                && unit.is_none_or(|u| b.unit == u)
                && q.status.as_deref().is_none_or(|s| b.status == s)
                && q.over_limit.is_none_or(|over| b.is_over_limit == over)
                && q.has_debt.is_none_or(|debt| (b.debt > 0) == debt)
                && q.utilization_min.is_none_or(|min| utilization(&b) >= min)
                && q.utilization_max.is_none_or(|max| utilization(&b) <= max)
                && (controls.matches(&t) || controls.matches(&b.scope));
            if kept {
                rows.push((t.clone(), b));
            }
        }
    }
    // ties keep the default order (tenant, scope, unit)
    let page = controls.page(rows, order.map(|key| move |a: &(String, BudgetRow), b: &(String, BudgetRow)| key.compare(a, b)));
    let page = page.map(|(t, b)| b.ledger(&t));
    Ok(LedgerList { ledgers: page.balances, has_more: page.has_more, next_cursor: page.next_cursor })
}

/// What a key does to a reservation, for [`check_owner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerAction {
    /// Commit.
    Commit,
    /// Release.
    Release,
    /// Extend.
    Extend,
}

/// The owner recorded on the hold the gateway makes for a root grant's budget. It is no API
/// key's id (those are `key_...`), so no key can commit, release or extend the hold through
/// the reservation endpoints, an operator's `reservations:release-others` included: it settles
/// only with its grant tree (`/v1/grants/{id}/commit`, `release`, `revoke`) or by its TTL.
/// Were it open, a key could give the tenant its budget back while the escrow tree, which
/// never reads the hold, went on carving and spending.
pub const ROOT_GRANT_HOLD: &str = "gateway:root-grant";

/// A key acts only on reservations of its tenant that it created; `may_release_others` (an
/// operator) also releases another key's. A root grant's hold ([`ROOT_GRANT_HOLD`]) is no
/// key's. A reservation with no owning key (made before owners were recorded) is open to
/// any key of the tenant.
pub fn check_owner(
    store: &dyn LedgerStore,
    tenant: &str,
    id: &str,
    key_id: &str,
    may_release_others: bool,
    action: OwnerAction,
) -> GatewayResult<()> {
    let r = owned_reservation(store, tenant, id)?;
    match r.owner_key {
        Some(o) if o == ROOT_GRANT_HOLD => Err(GatewayError::forbidden(format!(
            "reservation `{id}` holds a root grant's budget: it settles with its grant (POST /v1/grants/{{grant_id}}/commit, release or revoke), not through the reservation endpoints"
        ))),
        Some(o) if o != key_id && !(action == OwnerAction::Release && may_release_others) => {
            let verb = match action {
                OwnerAction::Commit => "commit",
                OwnerAction::Release => "release",
                OwnerAction::Extend => "extend",
            };
            let need = if action == OwnerAction::Release { " (or an operator key, permission `reservations:release-others`)" } else { "" };
            let e = GatewayError::forbidden(format!(
                "reservation `{id}` was created by another API key; only that key{need} may {verb} it"
            ));
            Err(if action == OwnerAction::Release {
                e.with_details(ErrorDetails::Permission { required_permission: "reservations:release-others".into(), role: None })
            } else {
                e
            })
        }
        _ => Ok(()),
    }
}

/// The expiry sweeper: every ACTIVE reservation past expiry + grace becomes EXPIRED and its
/// hold returns to the budgets. Returns how many expired.
pub fn sweep_expired(store: &dyn LedgerStore, now: i64, max: usize) -> GatewayResult<usize> {
    let mut expired = 0;
    for id in store.expired_reservations(now, max)? {
        // the backend's expiry index is trusted to list candidates only: a reservation that is
        // no longer ACTIVE, or not yet past its grace, never gives its hold back twice
        if let Some(mut r) = store.reservation(&id)?
            && r.status == "ACTIVE"
            && now > r.expires_at_ms.saturating_add(r.grace_ms)
        {
            expire(store, &mut r, now)?;
            expired += 1;
        }
    }
    Ok(expired)
}


//! What the ledger needs of its storage, as one trait: the rows it reads and writes inside one
//! operation. The ledger's rules ([`crate::ledger`]) are written once against it; a backend
//! implements it ([`crate::ledger::sqlite`] on the embedded store's connection).
//!
//! A backend runs each ledger operation as one atomic unit of work: every read sees the writes
//! made before it in the same operation, and an operation that returns an error leaves nothing
//! behind. The embedded store gets both from its single writer and the savepoint around each
//! job ([`crate::store::Store::run`]).


use crate::cycles::Unit;
use crate::error::GatewayResult;
use crate::events::NewEvent;
use crate::ledger::{BudgetRow, Reservation};

/// A tenant's record as the ledger reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// `ACTIVE`, `SUSPENDED` or `CLOSED` as stored (the ledger parses it and fails closed on
    /// anything else).
    pub status: String,
    /// Whether the tenant is in v0.1.26 observe mode.
    pub observe: bool,
}

/// A stored idempotent response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The digest of the request that produced it.
    pub request_hash: String,
    /// The response body, JSON.
    pub response: String,
}

/// A direct debit (`POST /v1/events`) as recorded.
#[derive(Debug, Clone)]
pub struct Debit<'a> {
    /// Its id (`evt_...`).
    pub id: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// The unit.
    pub unit: Unit,
    /// What the request asked to debit.
    pub amount: i64,
    /// What was charged under the overage policy.
    pub charged: i64,
    /// The derived scopes it was charged to.
    pub scopes: &'a [String],
    /// When.
    pub at_ms: i64,
    /// The request, JSON.
    pub body: String,
}

/// Which reservations [`LedgerStore::scan_reservations`] visits.
#[derive(Debug, Clone, Copy)]
pub struct ReservationScan<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// Only this status, if set.
    pub status: Option<&'a str>,
    /// Only this idempotency key, if set.
    pub idempotency_key: Option<&'a str>,
    /// How many of the matching reservations (newest first) to skip.
    pub offset: u64,
}

impl ReservationScan<'_> {
    /// For a backend that filters in memory: visits those of `candidates` that match (tenant,
    /// status, idempotency key) in the scan's order, newest first and then by id, from
    /// `offset` on, until `visit` returns false.
    pub fn visit_matching(
        &self,
        candidates: impl IntoIterator<Item = Reservation>,
        visit: &mut dyn FnMut(Reservation) -> bool,
    ) {
        let mut matching: Vec<Reservation> = candidates
            .into_iter()
            .filter(|r| {
                r.tenant == self.tenant
                    && self.status.is_none_or(|s| r.status == s)
                    && self.idempotency_key.is_none_or(|k| r.idempotency_key.as_deref() == Some(k))
            })
            .collect();
        matching.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then_with(|| a.id.cmp(&b.id)));
        for r in matching.into_iter().skip(usize::try_from(self.offset).unwrap_or(usize::MAX)) {
            if !visit(r) {
                break;
            }
        }
    }
}

/// The ledger's storage: budgets, reservations, idempotent responses, debits and the events
/// the ledger emits, read and written inside one atomic operation (module docs).
pub trait LedgerStore {
    /// The record of `tenant`, if there is one.
    fn tenant(&self, tenant: &str) -> GatewayResult<Option<TenantRecord>>;

    /// The budget at `(tenant, scope, unit)`, if any.
    fn budget(&self, tenant: &str, scope: &str, unit: Unit) -> GatewayResult<Option<BudgetRow>>;

    /// The budgets at each of `scopes` in `unit`, in order (a backend that pays a round trip
    /// per read fetches them at once).
    fn budgets(&self, tenant: &str, scopes: &[String], unit: Unit) -> GatewayResult<Vec<Option<BudgetRow>>> {
        scopes.iter().map(|scope| self.budget(tenant, scope, unit)).collect()
    }

    /// The units `scope` has budgets in.
    fn budget_units(&self, tenant: &str, scope: &str) -> GatewayResult<Vec<String>>;

    /// Every budget of `tenant`, ordered by scope, then unit.
    fn tenant_budgets(&self, tenant: &str) -> GatewayResult<Vec<BudgetRow>>;

    /// The budgets of `tenant` in `unit` whose scope starts with `prefix`, ordered by scope
    /// (the action mask's toolset budgets: a tenant without any costs one index probe).
    fn budgets_with_prefix(&self, tenant: &str, unit: Unit, prefix: &str) -> GatewayResult<Vec<BudgetRow>>;

    /// Every tenant that has a budget, sorted (the admin plane's listings across tenants).
    fn budget_tenants(&self) -> GatewayResult<Vec<String>>;

    /// Records a new budget (refused if one exists at its scope and unit; the caller checks
    /// first, to answer with the right error).
    fn insert_budget(&self, tenant: &str, budget: &BudgetRow) -> GatewayResult<()>;

    /// Writes the mutable counters and status of an existing budget, stamped `now`.
    fn save_budget(&self, tenant: &str, budget: &BudgetRow, now: i64) -> GatewayResult<()>;

    /// The reservation `id`, whichever tenant owns it.
    fn reservation(&self, id: &str) -> GatewayResult<Option<Reservation>>;

    /// Records a new reservation (refused if its id exists).
    fn insert_reservation(&self, reservation: &Reservation) -> GatewayResult<()>;

    /// Writes a reservation's lifecycle fields back: status, committed amount, expiry,
    /// finalisation time, extensions and committed metadata.
    fn save_reservation(&self, reservation: &Reservation) -> GatewayResult<()>;

    /// Visits the matching reservations newest first (then by id), skipping `scan.offset` of
    /// them, until `visit` returns false.
    fn scan_reservations(&self, scan: ReservationScan<'_>, visit: &mut dyn FnMut(Reservation) -> bool) -> GatewayResult<()>;

    /// Up to `max` ACTIVE reservations whose expiry and grace are both past at `now` (a
    /// candidate list: the sweep checks each again). A backend whose unit of work holds one
    /// tenant's lock (Redis) lists that tenant's only.
    fn expired_reservations(&self, now: i64, max: usize) -> GatewayResult<Vec<String>>;

    /// The response stored for `(tenant, endpoint, key)`, if any.
    fn recall(&self, tenant: &str, endpoint: &str, key: &str) -> GatewayResult<Option<StoredResponse>>;

    /// Stores the response (its JSON text) of `(tenant, endpoint, key)` for request digest
    /// `request_hash` (refused if one is stored: a response is never replaced).
    fn remember(&self, tenant: &str, endpoint: &str, key: &str, request_hash: &str, response: &str) -> GatewayResult<()>;

    /// Records a direct debit.
    fn record_debit(&self, debit: &Debit<'_>) -> GatewayResult<()>;

    /// Appends an event to the tenant's stream (and queues its webhook deliveries).
    fn emit(&self, event: NewEvent, now: i64) -> GatewayResult<()>;
}

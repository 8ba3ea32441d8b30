//! [`LedgerStore`] in memory: the ledger's rules without SQL, for the unit tests that run the
//! same checks against every backend ([`super::tests`]). An operation that fails part-way
//! leaves what it wrote (there is no rollback), so tests read state only after successes.

use std::cell::RefCell;
use std::collections::BTreeMap;


use crate::cycles::Unit;
use crate::error::GatewayResult;
use crate::events::NewEvent;
use crate::ledger::store::{Debit, LedgerStore, ReservationScan, StoredResponse, TenantRecord};
use crate::ledger::{BudgetRow, Reservation};

/// Everything the store holds.
#[derive(Default)]
struct Tables {
    tenants: BTreeMap<String, TenantRecord>,
    /// By (tenant, scope, unit).
    budgets: BTreeMap<(String, String, &'static str), BudgetRow>,
    /// By id.
    reservations: BTreeMap<String, Reservation>,
    /// By (tenant, endpoint, key).
    responses: BTreeMap<(String, String, String), StoredResponse>,
    /// Debit ids with what was charged.
    debits: Vec<(String, i64)>,
    events: Vec<NewEvent>,
}

/// Inserts a row that must be new, like a primary key in SQL.
fn insert_new<K: Ord + std::fmt::Debug, V>(table: &mut BTreeMap<K, V>, key: K, value: V) -> GatewayResult<()> {
    if table.contains_key(&key) {
        return Err(crate::error::GatewayError::internal(format!("memory store: {key:?} exists")));
    }
    table.insert(key, value);
    Ok(())
}

/// The in-memory ledger store.
#[derive(Default)]
pub struct MemoryLedger {
    tables: RefCell<Tables>,
}

impl MemoryLedger {
    /// Sets (or replaces) a tenant's record.
    pub fn set_tenant(&self, tenant: &str, status: &str) {
        let record = TenantRecord { status: status.into(), observe: false };
        self.tables.borrow_mut().tenants.insert(tenant.into(), record);
    }

    /// The events emitted so far, by type name.
    pub fn event_types(&self) -> Vec<&'static str> {
        self.tables.borrow().events.iter().map(|e| e.event_type.as_str()).collect()
    }
}

impl LedgerStore for MemoryLedger {
    fn tenant(&self, tenant: &str) -> GatewayResult<Option<TenantRecord>> {
        Ok(self.tables.borrow().tenants.get(tenant).cloned())
    }

    fn budget(&self, tenant: &str, scope: &str, unit: Unit) -> GatewayResult<Option<BudgetRow>> {
        Ok(self.tables.borrow().budgets.get(&(tenant.into(), scope.into(), unit.as_str())).cloned())
    }

    fn budget_units(&self, tenant: &str, scope: &str) -> GatewayResult<Vec<String>> {
        let tables = self.tables.borrow();
        let units = tables.budgets.keys().filter(|(t, s, _)| t == tenant && s == scope).map(|(_, _, u)| (*u).to_string());
        Ok(units.collect())
    }

    fn tenant_budgets(&self, tenant: &str) -> GatewayResult<Vec<BudgetRow>> {
        let tables = self.tables.borrow();
        Ok(tables.budgets.iter().filter(|((t, _, _), _)| t == tenant).map(|(_, b)| b.clone()).collect())
    }

    fn budgets_with_prefix(&self, tenant: &str, unit: Unit, prefix: &str) -> GatewayResult<Vec<BudgetRow>> {
        let mut out: Vec<BudgetRow> =
            self.tenant_budgets(tenant)?.into_iter().filter(|b| b.unit == unit && b.scope.starts_with(prefix)).collect();
        out.sort_by(|a, b| a.scope.cmp(&b.scope));
        Ok(out)
    }

    fn budget_tenants(&self) -> GatewayResult<Vec<String>> {
        let tables = self.tables.borrow();
        let tenants: std::collections::BTreeSet<&String> = tables.budgets.keys().map(|(t, _, _)| t).collect();
        Ok(tenants.into_iter().cloned().collect())
    }

    fn insert_budget(&self, tenant: &str, budget: &BudgetRow) -> GatewayResult<()> {
        let key = (tenant.to_string(), budget.scope.clone(), budget.unit.as_str());
        insert_new(&mut self.tables.borrow_mut().budgets, key, budget.clone())
    }

    fn save_budget(&self, tenant: &str, budget: &BudgetRow, now: i64) -> GatewayResult<()> {
        let key = (tenant.to_string(), budget.scope.clone(), budget.unit.as_str());
        if let Some(stored) = self.tables.borrow_mut().budgets.get_mut(&key) {
            *stored = BudgetRow { updated_at_ms: now, ..budget.clone() };
        }
        Ok(())
    }

    fn reservation(&self, id: &str) -> GatewayResult<Option<Reservation>> {
        Ok(self.tables.borrow().reservations.get(id).cloned())
    }

    fn insert_reservation(&self, reservation: &Reservation) -> GatewayResult<()> {
        insert_new(&mut self.tables.borrow_mut().reservations, reservation.id.clone(), reservation.clone())
    }

    fn save_reservation(&self, r: &Reservation) -> GatewayResult<()> {
        if let Some(stored) = self.tables.borrow_mut().reservations.get_mut(&r.id) {
            stored.status.clone_from(&r.status);
            stored.committed = r.committed;
            stored.expires_at_ms = r.expires_at_ms;
            stored.finalized_at_ms = r.finalized_at_ms;
            stored.extensions = r.extensions;
            stored.committed_metadata.clone_from(&r.committed_metadata);
        }
        Ok(())
    }

    fn scan_reservations(&self, scan: ReservationScan<'_>, visit: &mut dyn FnMut(Reservation) -> bool) -> GatewayResult<()> {
        let candidates: Vec<Reservation> = self.tables.borrow().reservations.values().cloned().collect();
        scan.visit_matching(candidates, visit);
        Ok(())
    }

    fn expired_reservations(&self, now: i64, max: usize) -> GatewayResult<Vec<String>> {
        let tables = self.tables.borrow();
        let expired = tables
            .reservations
            .values()
            .filter(|r| r.status == "ACTIVE" && r.expires_at_ms < now && r.expires_at_ms.saturating_add(r.grace_ms) < now);
        Ok(expired.take(max).map(|r| r.id.clone()).collect())
    }

    fn recall(&self, tenant: &str, endpoint: &str, key: &str) -> GatewayResult<Option<StoredResponse>> {
        Ok(self.tables.borrow().responses.get(&(tenant.into(), endpoint.into(), key.into())).cloned())
    }

    fn remember(&self, tenant: &str, endpoint: &str, key: &str, request_hash: &str, response: &str) -> GatewayResult<()> {
        let stored = StoredResponse { request_hash: request_hash.into(), response: response.to_string() };
        insert_new(&mut self.tables.borrow_mut().responses, (tenant.into(), endpoint.into(), key.into()), stored)
    }

    fn record_debit(&self, debit: &Debit<'_>) -> GatewayResult<()> {
        self.tables.borrow_mut().debits.push((debit.id.to_string(), debit.charged));
        Ok(())
    }

    fn emit(&self, event: NewEvent, _now: i64) -> GatewayResult<()> {
        self.tables.borrow_mut().events.push(event);
        Ok(())
    }
}

//! The ledger's tables on the embedded SQLite store: [`LedgerStore`] for a connection inside
//! the writer's savepoint ([`crate::store`] holds the schema).

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use crate::cycles::{OveragePolicy, Unit};
use crate::error::{GatewayError, GatewayResult};
use crate::events::{self, NewEvent};
use crate::ledger::store::{Debit, LedgerStore, ReservationScan, StoredResponse, TenantRecord};
use crate::ledger::{BudgetRow, Reservation};

/// The budget columns [`budget_from_row`] reads, in its order (a macro, so that constant
/// statements can be built from it with `concat!`).
macro_rules! budget_columns {
    () => {
        "scope, unit, ledger_id, allocated, reserved, spent, debt, overdraft_limit, \
         is_over_limit, status, commit_overage_policy, created_at_ms, updated_at_ms"
    };
}

const BUDGET_COLUMNS: &str = budget_columns!();

/// The budgets of one tenant and unit whose scope lies in a key range (`budgets_with_prefix`).
pub(crate) const BUDGETS_WITH_PREFIX_SQL: &str = concat!(
    "SELECT ",
    budget_columns!(),
    " FROM budgets WHERE tenant_id = ?1 AND scope >= ?2 AND (?3 IS NULL OR scope < ?3) AND unit = ?4 ORDER BY scope"
);

const RES_COLUMNS: &str = "id, tenant_id, status, unit, amount, committed, created_at_ms, expires_at_ms, grace_ms, \
     finalized_at_ms, extensions, overage_policy, scope_path, scopes, budgeted, idempotency_key, subject, action, \
     metadata, committed_metadata, owner_key";

fn budget_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BudgetRow> {
    let unit: String = r.get(1)?;
    let policy: Option<String> = r.get(10)?;
    Ok(BudgetRow {
        scope: r.get(0)?,
        unit: Unit::parse(&unit).unwrap_or(Unit::Credits),
        ledger_id: r.get(2)?,
        allocated: r.get(3)?,
        reserved: r.get(4)?,
        spent: r.get(5)?,
        debt: r.get(6)?,
        overdraft_limit: r.get(7)?,
        is_over_limit: r.get::<_, i64>(8)? != 0,
        status: r.get(9)?,
        commit_overage_policy: policy.as_deref().and_then(OveragePolicy::parse),
        created_at_ms: r.get(11)?,
        updated_at_ms: r.get(12)?,
    })
}

fn json_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Value> {
    let s: String = r.get(i)?;
    Ok(serde_json::from_str(&s).unwrap_or(Value::Null))
}

/// A column of JSON text read as `T`; text that does not read fails the row (it was written
/// from a `T`).
fn typed_col<T: serde::de::DeserializeOwned>(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    serde_json::from_str(&s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

fn opt_json_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<Value>> {
    let s: Option<String> = r.get(i)?;
    Ok(s.and_then(|s| serde_json::from_str(&s).ok()))
}

fn reservation_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Reservation> {
    let unit: String = r.get(3)?;
    let policy: String = r.get(11)?;
    let strings = |v: Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    Ok(Reservation {
        id: r.get(0)?,
        tenant: r.get(1)?,
        status: r.get(2)?,
        unit: Unit::parse(&unit).unwrap_or(Unit::Credits),
        amount: r.get(4)?,
        committed: r.get(5)?,
        created_at_ms: r.get(6)?,
        expires_at_ms: r.get(7)?,
        grace_ms: r.get(8)?,
        finalized_at_ms: r.get(9)?,
        extensions: r.get(10)?,
        overage_policy: OveragePolicy::parse(&policy).unwrap_or_default(),
        scope_path: r.get(12)?,
        scopes: strings(json_col(r, 13)?),
        budgeted: strings(json_col(r, 14)?),
        idempotency_key: r.get(15)?,
        subject: typed_col(r, 16)?,
        action: typed_col(r, 17)?,
        metadata: opt_json_col(r, 18)?,
        committed_metadata: opt_json_col(r, 19)?,
        owner_key: r.get(20)?,
    })
}

impl LedgerStore for Connection {
    fn tenant(&self, tenant: &str) -> GatewayResult<Option<TenantRecord>> {
        // a body that is not JSON, or an observe_mode that is not a string, reads as not
        // observing (enforcement, the default) rather than failing every guard of the tenant
        let row: Option<(String, rusqlite::types::Value)> = self
            .prepare_cached(
                "SELECT status, CASE WHEN json_valid(body) THEN json_extract(body, '$.observe_mode') END \
                 FROM tenants WHERE tenant_id = ?1",
            )?
            .query_row([tenant], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.map(|(status, observe)| TenantRecord {
            status,
            observe: matches!(observe, rusqlite::types::Value::Text(ref mode) if mode == "OBSERVE"),
        }))
    }

    fn budget(&self, tenant: &str, scope: &str, unit: Unit) -> GatewayResult<Option<BudgetRow>> {
        Ok(self
            .prepare_cached(&format!(
                "SELECT {BUDGET_COLUMNS} FROM budgets WHERE tenant_id = ?1 AND scope = ?2 AND unit = ?3"
            ))?
            .query_row(params![tenant, scope, unit.as_str()], budget_from_row)
            .optional()?)
    }

    fn budget_units(&self, tenant: &str, scope: &str) -> GatewayResult<Vec<String>> {
        let mut stmt = self.prepare_cached("SELECT unit FROM budgets WHERE tenant_id = ?1 AND scope = ?2")?;
        let units = stmt.query_map(params![tenant, scope], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(units)
    }

    fn tenant_budgets(&self, tenant: &str) -> GatewayResult<Vec<BudgetRow>> {
        let mut stmt =
            self.prepare_cached(&format!("SELECT {BUDGET_COLUMNS} FROM budgets WHERE tenant_id = ?1 ORDER BY scope, unit"))?;
        let rows = stmt.query_map([tenant], budget_from_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn budgets_with_prefix(&self, tenant: &str, unit: Unit, prefix: &str) -> GatewayResult<Vec<BudgetRow>> {
        // a key range of the primary key (tenant, scope, unit): the scopes from `prefix` up to
        // its successor (its last character moved one up), so only matching rows are read
        let Some(last) = prefix.chars().last() else { return self.tenant_budgets(tenant) };
        let upper = char::from_u32(u32::from(last) + 1).map(|next| format!("{}{next}", &prefix[..prefix.len() - last.len_utf8()]));
        let mut stmt = self.prepare_cached(BUDGETS_WITH_PREFIX_SQL)?;
        let rows = stmt.query_map(params![tenant, prefix, upper, unit.as_str()], budget_from_row)?.collect::<Result<Vec<_>, _>>()?;
        // the range is by SQLite's byte order; the prefix test is exact
        Ok(rows.into_iter().filter(|b| b.scope.starts_with(prefix)).collect())
    }

    fn budget_tenants(&self) -> GatewayResult<Vec<String>> {
        let mut stmt = self.prepare_cached("SELECT DISTINCT tenant_id FROM budgets ORDER BY tenant_id")?;
        let tenants = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
        Ok(tenants)
    }

    fn insert_budget(&self, tenant: &str, b: &BudgetRow) -> GatewayResult<()> {
        self.prepare_cached(
            "INSERT INTO budgets (tenant_id, scope, unit, ledger_id, allocated, reserved, spent, debt, overdraft_limit, \
             is_over_limit, status, commit_overage_policy, created_at_ms, updated_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            tenant,
            b.scope,
            b.unit.as_str(),
            b.ledger_id,
            b.allocated,
            b.reserved,
            b.spent,
            b.debt,
            b.overdraft_limit,
            i64::from(b.is_over_limit),
            b.status,
            b.commit_overage_policy.map(OveragePolicy::as_str),
            b.created_at_ms,
            b.updated_at_ms
        ])?;
        Ok(())
    }

    fn save_budget(&self, tenant: &str, b: &BudgetRow, now: i64) -> GatewayResult<()> {
        self.prepare_cached(
            "UPDATE budgets SET allocated = ?4, reserved = ?5, spent = ?6, debt = ?7, overdraft_limit = ?8, \
             is_over_limit = ?9, status = ?10, updated_at_ms = ?11 WHERE tenant_id = ?1 AND scope = ?2 AND unit = ?3",
        )?
        .execute(params![
            tenant,
            b.scope,
            b.unit.as_str(),
            b.allocated,
            b.reserved,
            b.spent,
            b.debt,
            b.overdraft_limit,
            i64::from(b.is_over_limit),
            b.status,
            now
        ])?;
        Ok(())
    }

    fn reservation(&self, id: &str) -> GatewayResult<Option<Reservation>> {
        Ok(self
            .prepare_cached(&format!("SELECT {RES_COLUMNS} FROM reservations WHERE id = ?1"))?
            .query_row([id], reservation_from_row)
            .optional()?)
    }

    fn insert_reservation(&self, r: &Reservation) -> GatewayResult<()> {
        self.prepare_cached(
            "INSERT INTO reservations (id, tenant_id, status, unit, amount, created_at_ms, expires_at_ms, grace_ms, \
             overage_policy, scope_path, scopes, budgeted, idempotency_key, subject, action, metadata, owner_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?
        .execute(params![
            r.id,
            r.tenant,
            r.status,
            r.unit.as_str(),
            r.amount,
            r.created_at_ms,
            r.expires_at_ms,
            r.grace_ms,
            r.overage_policy.as_str(),
            r.scope_path,
            json!(r.scopes).to_string(),
            json!(r.budgeted).to_string(),
            r.idempotency_key,
            serde_json::to_string(&r.subject).map_err(GatewayError::internal)?,
            serde_json::to_string(&r.action).map_err(GatewayError::internal)?,
            r.metadata.as_ref().map(Value::to_string),
            r.owner_key,
        ])?;
        Ok(())
    }

    fn save_reservation(&self, r: &Reservation) -> GatewayResult<()> {
        self.prepare_cached(
            "UPDATE reservations SET status = ?2, committed = ?3, expires_at_ms = ?4, finalized_at_ms = ?5, \
             extensions = ?6, committed_metadata = ?7 WHERE id = ?1",
        )?
        .execute(params![
            r.id,
            r.status,
            r.committed,
            r.expires_at_ms,
            r.finalized_at_ms,
            r.extensions,
            r.committed_metadata.as_ref().map(Value::to_string)
        ])?;
        Ok(())
    }

    fn scan_reservations(&self, scan: ReservationScan<'_>, visit: &mut dyn FnMut(Reservation) -> bool) -> GatewayResult<()> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {RES_COLUMNS} FROM reservations WHERE tenant_id = ?1 AND (?2 IS NULL OR status = ?2) \
             AND (?3 IS NULL OR idempotency_key = ?3) ORDER BY created_at_ms DESC, id LIMIT -1 OFFSET ?4"
        ))?;
        let offset = i64::try_from(scan.offset).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![scan.tenant, scan.status, scan.idempotency_key, offset], reservation_from_row)?;
        for r in rows {
            if !visit(r?) {
                break;
            }
        }
        Ok(())
    }

    fn expired_reservations(&self, now: i64, max: usize) -> GatewayResult<Vec<String>> {
        Ok(self
            .prepare_cached(
                "SELECT id FROM reservations WHERE status = 'ACTIVE' AND expires_at_ms < ?1 \
                 AND expires_at_ms + grace_ms < ?1 LIMIT ?2",
            )?
            .query_map(params![now, i64::try_from(max).unwrap_or(i64::MAX)], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn recall(&self, tenant: &str, endpoint: &str, key: &str) -> GatewayResult<Option<StoredResponse>> {
        Ok(self
            .prepare_cached("SELECT request_hash, response FROM idempotency WHERE tenant_id = ?1 AND endpoint = ?2 AND key = ?3")?
            .query_row(params![tenant, endpoint, key], |r| {
                Ok(StoredResponse { request_hash: r.get(0)?, response: r.get(1)? })
            })
            .optional()?)
    }

    fn remember(&self, tenant: &str, endpoint: &str, key: &str, request_hash: &str, response: &str) -> GatewayResult<()> {
        self.prepare_cached(
            "INSERT INTO idempotency (tenant_id, endpoint, key, request_hash, response) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![tenant, endpoint, key, request_hash, response])?;
        Ok(())
    }

    fn record_debit(&self, d: &Debit<'_>) -> GatewayResult<()> {
        self.prepare_cached(
            "INSERT INTO ledger_events (id, tenant_id, unit, amount, charged, scopes, created_at_ms, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            d.id,
            d.tenant,
            d.unit.as_str(),
            d.amount,
            d.charged,
            json!(d.scopes).to_string(),
            d.at_ms,
            d.body
        ])?;
        Ok(())
    }

    fn emit(&self, event: NewEvent, now: i64) -> GatewayResult<()> {
        events::emit(self, event, now).map(drop)
    }
}

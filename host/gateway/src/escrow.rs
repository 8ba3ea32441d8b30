//! Escrowed sub-budgets: the budget side of the delegation tree (AG-396 Scenario B, the
//! authority-attenuation pattern's "a child's budget is carved from its parent's").
//!
//! Every node of a chain's tree is a *grant*, identified by the SHA-256 of its token block: the
//! root grant an operator issued (its budgets held from the tenant's Cycles budgets when it was
//! granted) and every allowed delegation below it. Per node and unit the store keeps
//!
//! - `granted`: what the node was given;
//! - `carved`: what its children hold: a live child's `granted`, a settled child's `consumed`;
//! - `spent`: what the node itself spent, recorded when it settles.
//!
//! INVARIANT (checked by [`violations`], kept by every function here): `carved + spent <=
//! granted` at every node, in every unit. So no node's descendants ever hold or consume more
//! than its own grant, however many siblings or retries draw on it: two siblings cannot spend
//! one parent budget twice. A node settles (commit or release) only once its children have
//! settled; what it did not consume (`granted - spent - carved`) then returns to its parent.
//! Revoking a node settles its whole live subtree (deepest first, spending nothing) and marks
//! it REVOKED, which makes every descendant's token unusable at once (the gateway refuses a
//! token whose tip is not ACTIVE).
//!
//! Every function runs inside the caller's transaction (the store's writer), so a carve, the
//! trace event and the idempotency record commit together or not at all.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::cycles::Unit;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// One unit carved into a child's escrow, as `POST /v1/delegations` and an approval answer it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Escrowed {
    /// The Cycles unit.
    pub unit: String,
    /// The amount carved.
    pub amount: i64,
}

/// The escrow tables; created with the store's schema.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    parent_id TEXT,
    holder TEXT NOT NULL,
    depth INTEGER NOT NULL,
    status TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    settled_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS grants_parent ON grants (parent_id);
-- One root per chain in each tenant: chain ids are a tenant's own namespace (an open root's
-- caller names its chain, and a global index told it which ids other tenants use).
DROP INDEX IF EXISTS grants_one_root_per_chain;
CREATE UNIQUE INDEX IF NOT EXISTS grants_one_root_per_tenant_chain ON grants (tenant_id, chain_id) WHERE parent_id IS NULL;
CREATE TABLE IF NOT EXISTS grant_units (
    grant_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    granted INTEGER NOT NULL CHECK (granted >= 0),
    carved INTEGER NOT NULL DEFAULT 0 CHECK (carved >= 0),
    spent INTEGER NOT NULL DEFAULT 0 CHECK (spent >= 0),
    reservation_id TEXT,
    PRIMARY KEY (grant_id, unit),
    CHECK (carved + spent <= granted)
);
"#;

/// A grant's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GrantStatus {
    /// Usable: it may delegate (carve) and spend.
    Active,
    /// Settled by its holder with what it spent.
    Committed,
    /// Settled by its holder without spending (or by a release of an ancestor).
    Released,
    /// Settled by a revocation of it or an ancestor; its tokens are void.
    Revoked,
}

impl GrantStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "ACTIVE",
            GrantStatus::Committed => "COMMITTED",
            GrantStatus::Released => "RELEASED",
            GrantStatus::Revoked => "REVOKED",
        }
    }

    fn parse(s: &str) -> GrantStatus {
        match s {
            "ACTIVE" => GrantStatus::Active,
            "COMMITTED" => GrantStatus::Committed,
            "RELEASED" => GrantStatus::Released,
            // Anything unknown is treated as void: fail closed.
            _ => GrantStatus::Revoked,
        }
    }
}

/// One unit of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantUnit {
    /// The unit.
    pub unit: Unit,
    /// What the node was given.
    pub granted: i64,
    /// What its children hold or consumed.
    pub carved: i64,
    /// What it spent itself.
    pub spent: i64,
    /// `granted - carved - spent`: what it can still hand down or spend.
    pub available: i64,
    /// The Cycles reservation holding a root grant's budget (root grants only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
}

/// A node of a delegation tree.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    /// Its id: the issue time and hash of the token block that granted it ([`crate::tokens::grant_id`]).
    pub grant_id: String,
    /// The chain.
    pub chain_id: String,
    /// The parent node; `None` for a root grant.
    pub parent_id: Option<String>,
    /// The agent holding it.
    pub holder: String,
    /// Its depth (0 for the root grant).
    pub depth: i64,
    /// Its state.
    pub status: GrantStatus,
    /// When its token lapses.
    pub expires_at_ms: i64,
    /// When it was granted.
    pub created_at_ms: i64,
    /// Its budgets.
    pub units: Vec<GrantUnit>,
}

/// A node to insert.
#[derive(Debug, Clone)]
pub struct NewGrant<'a> {
    /// Owner.
    pub tenant: &'a str,
    /// Its id ([`crate::tokens::grant_id`]).
    pub grant_id: &'a str,
    /// The chain.
    pub chain_id: &'a str,
    /// The parent node (`None`: a root grant).
    pub parent_id: Option<&'a str>,
    /// The holder (canonical agent id).
    pub holder: &'a str,
    /// Its depth.
    pub depth: i64,
    /// Its token's expiry.
    pub expires_at_ms: i64,
    /// Server time.
    pub now: i64,
    /// Its budgets, at most one entry per unit.
    pub budgets: &'a [(Unit, i64)],
}

/// Loads grant `grant_id` of `tenant`; `None` when absent or another tenant's.
pub fn load(conn: &Connection, tenant: &str, grant_id: &str) -> ApiResult<Option<Grant>> {
    let row = conn
        .prepare_cached(GRANT_SQL)?
        .query_row(params![grant_id, tenant], |r| {
            Ok(Grant {
                grant_id: grant_id.to_string(),
                chain_id: r.get(0)?,
                parent_id: r.get(1)?,
                holder: r.get(2)?,
                depth: r.get(3)?,
                status: GrantStatus::parse(&r.get::<_, String>(4)?),
                expires_at_ms: r.get(5)?,
                created_at_ms: r.get(6)?,
                units: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut grant) = row else { return Ok(None) };
    grant.units = units(conn, grant_id)?;
    Ok(Some(grant))
}

/// Loads the first of `ids` that names a grant of `tenant` (a token's grant may be stored under
/// its current id or, in a store from before time-ordered ids, its former one).
pub fn load_any(conn: &Connection, tenant: &str, ids: &[String]) -> ApiResult<Option<Grant>> {
    for id in ids {
        if let Some(grant) = load(conn, tenant, id)? {
            return Ok(Some(grant));
        }
    }
    Ok(None)
}

const GRANT_SQL: &str = "SELECT chain_id, parent_id, holder, depth, status, expires_at_ms, created_at_ms FROM grants \
                         WHERE grant_id = ?1 AND tenant_id = ?2";

// No `ORDER BY unit` here: with it, this SQLite build (STAT4) prepares the statement again on
// every run (the test below counts); the units are sorted after reading instead.
const UNITS_SQL: &str =
    "SELECT unit, granted, carved, spent, reservation_id FROM grant_units WHERE grant_id = ?1";

fn units(conn: &Connection, grant_id: &str) -> ApiResult<Vec<GrantUnit>> {
    let mut stmt = conn.prepare_cached(UNITS_SQL)?;
    let rows = stmt.query_map([grant_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, r.get(4)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (unit, granted, carved, spent, reservation_id) = row?;
        let unit = Unit::parse(&unit).ok_or_else(|| ApiError::internal(format!("grant unit `{unit}` is unknown")))?;
        out.push(GrantUnit { unit, granted, carved, spent, available: granted - carved - spent, reservation_id });
    }
    out.sort_by(|a, b| a.unit.as_str().cmp(b.unit.as_str()));
    Ok(out)
}

/// Inserts a node. For a child, carves its budgets from the parent's available amounts, all or
/// nothing: the parent must be ACTIVE and unexpired, hold every unit the child is given, and
/// have enough left in each; otherwise nothing is written and the error names the unit.
pub fn insert(conn: &Connection, g: &NewGrant<'_>) -> ApiResult<()> {
    for (i, (unit, amount)) in g.budgets.iter().enumerate() {
        if *amount < 0 {
            return Err(ApiError::invalid(format!("the {} budget of a grant is negative", unit.as_str())));
        }
        if g.budgets.iter().skip(i + 1).any(|(u, _)| u == unit) {
            return Err(ApiError::invalid(format!("a grant lists the {} budget twice", unit.as_str())));
        }
    }
    if let Some(parent_id) = g.parent_id {
        let parent = load(conn, g.tenant, parent_id)?
            .ok_or_else(|| ApiError::forbidden(format!("the parent grant `{parent_id}` is not known to this gateway")))?;
        if parent.status != GrantStatus::Active {
            return Err(ApiError::forbidden(format!(
                "the parent grant `{parent_id}` is {} and can no longer delegate",
                parent.status.as_str()
            )));
        }
        if parent.expires_at_ms <= g.now {
            return Err(ApiError::forbidden(format!("the parent grant `{parent_id}` expired at {}", parent.expires_at_ms)));
        }
        for (unit, amount) in g.budgets {
            let held = parent.units.iter().find(|u| u.unit == *unit);
            let available = held.map_or(0, |u| u.available);
            if *amount > available {
                return Err(ApiError::new(
                    ErrorCode::BudgetExceeded,
                    format!(
                        "escrow: the child asks {amount} {}, but its parent grant has {available} left (granted {}, held by children {}, spent {})",
                        unit.as_str(),
                        held.map_or(0, |u| u.granted),
                        held.map_or(0, |u| u.carved),
                        held.map_or(0, |u| u.spent)
                    ),
                ));
            }
            if held.is_none() && *amount > 0 {
                return Err(ApiError::new(ErrorCode::BudgetExceeded, format!("escrow: the parent grant holds no {}", unit.as_str())));
            }
        }
        for (unit, amount) in g.budgets {
            conn.prepare_cached("UPDATE grant_units SET carved = carved + ?3 WHERE grant_id = ?1 AND unit = ?2")?
                .execute(params![parent_id, unit.as_str(), amount])?;
        }
    }
    let inserted = conn
        .prepare_cached(
            "INSERT INTO grants (grant_id, tenant_id, chain_id, parent_id, holder, depth, status, expires_at_ms, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ACTIVE', ?7, ?8) ON CONFLICT DO NOTHING",
        )?
        .execute(params![g.grant_id, g.tenant, g.chain_id, g.parent_id, g.holder, g.depth, g.expires_at_ms, g.now])?;
    if inserted == 0 {
        return Err(ApiError::new(
            ErrorCode::DuplicateResource,
            format!("grant `{}` or a root of chain `{}` exists already", g.grant_id, g.chain_id),
        ));
    }
    for (unit, amount) in g.budgets {
        conn.prepare_cached("INSERT INTO grant_units (grant_id, unit, granted) VALUES (?1, ?2, ?3)")?
            .execute(params![g.grant_id, unit.as_str(), amount])?;
    }
    Ok(())
}

/// Records the Cycles reservation holding a root grant's `unit`.
pub fn set_reservation(conn: &Connection, grant_id: &str, unit: Unit, reservation_id: &str) -> ApiResult<()> {
    conn.prepare_cached("UPDATE grant_units SET reservation_id = ?3 WHERE grant_id = ?1 AND unit = ?2")?
        .execute(params![grant_id, unit.as_str(), reservation_id])?;
    Ok(())
}

/// What one settled node consumed per unit (its own spend plus its children's), and the
/// reservations of a settled root, for the caller to settle in the Cycles ledger.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// Nodes settled, deepest first.
    pub grants: Vec<String>,
    /// For a settled root grant: `(unit, reservation id, consumed)`.
    pub root_reservations: Vec<(Unit, String, i64)>,
}

/// Settles one ACTIVE node whose children are all settled: records `spent`, moves its status,
/// and returns `granted - consumed` to its parent. Returns the root reservations to settle
/// when the node is a root.
fn settle_one(conn: &Connection, grant: &Grant, spent: &[(Unit, i64)], status: GrantStatus, now: i64, out: &mut Settled) -> ApiResult<()> {
    for (unit, amount) in spent {
        let held = grant
            .units
            .iter()
            .find(|u| u.unit == *unit)
            .ok_or_else(|| ApiError::invalid(format!("grant `{}` holds no {} budget", grant.grant_id, unit.as_str())))?;
        if *amount < 0 {
            return Err(ApiError::invalid(format!("`spent` for {} is negative", unit.as_str())));
        }
        if *amount > held.available {
            return Err(ApiError::new(
                ErrorCode::BudgetExceeded,
                format!("grant `{}` has {} {} left to spend, not {amount}", grant.grant_id, held.available, unit.as_str()),
            ));
        }
    }
    for (unit, amount) in spent {
        conn.prepare_cached("UPDATE grant_units SET spent = spent + ?3 WHERE grant_id = ?1 AND unit = ?2")?
            .execute(params![grant.grant_id, unit.as_str(), amount])?;
    }
    conn.prepare_cached("UPDATE grants SET status = ?2, settled_at_ms = ?3 WHERE grant_id = ?1")?
        .execute(params![grant.grant_id, status.as_str(), now])?;
    for u in units(conn, &grant.grant_id)? {
        // `consumed` replaces `granted` in the parent's `carved`: the rest returns.
        let consumed = u.carved.checked_add(u.spent).ok_or_else(|| ApiError::internal("escrow amount overflow"))?;
        match &grant.parent_id {
            Some(parent) => {
                conn.prepare_cached("UPDATE grant_units SET carved = carved - ?3 + ?4 WHERE grant_id = ?1 AND unit = ?2")?
                    .execute(params![parent, u.unit.as_str(), u.granted, consumed])?;
            }
            None => {
                if let Some(r) = u.reservation_id {
                    out.root_reservations.push((u.unit, r, consumed));
                }
            }
        }
    }
    out.grants.push(grant.grant_id.clone());
    Ok(())
}

fn active_subtree(conn: &Connection, grant_id: &str) -> ApiResult<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE sub(id, level) AS (SELECT ?1, 0 UNION ALL \
           SELECT g.grant_id, sub.level + 1 FROM grants g JOIN sub ON g.parent_id = sub.id) \
         SELECT g.grant_id FROM grants g JOIN sub ON g.grant_id = sub.id WHERE g.status = 'ACTIVE' ORDER BY sub.level DESC, g.grant_id",
    )?;
    let ids = stmt.query_map([grant_id], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// Commits grant `grant_id` with what its holder spent: refused while it has ACTIVE children
/// (they settle first) or when `spent` exceeds what it has left.
pub fn commit(conn: &Connection, tenant: &str, grant_id: &str, spent: &[(Unit, i64)], now: i64) -> ApiResult<Settled> {
    let grant = active(conn, tenant, grant_id)?;
    let live_children: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM grants WHERE parent_id = ?1 AND status = 'ACTIVE'")?
        .query_row([grant_id], |r| r.get(0))?;
    if live_children > 0 {
        return Err(ApiError::new(
            ErrorCode::ReservationFinalized,
            format!("grant `{grant_id}` has {live_children} active children; they commit or are released first"),
        ));
    }
    let mut out = Settled::default();
    settle_one(conn, &grant, spent, GrantStatus::Committed, now, &mut out)?;
    Ok(out)
}

/// Releases (`GrantStatus::Released`) or revokes (`GrantStatus::Revoked`) grant `grant_id` and
/// every ACTIVE node below it, deepest first, each spending nothing more.
pub fn settle_subtree(conn: &Connection, tenant: &str, grant_id: &str, status: GrantStatus, now: i64) -> ApiResult<Settled> {
    active(conn, tenant, grant_id)?;
    let mut out = Settled::default();
    for id in active_subtree(conn, grant_id)? {
        let node = load(conn, tenant, &id)?.ok_or_else(|| ApiError::internal(format!("grant `{id}` vanished")))?;
        settle_one(conn, &node, &[], status, now, &mut out)?;
    }
    Ok(out)
}

fn active(conn: &Connection, tenant: &str, grant_id: &str) -> ApiResult<Grant> {
    let grant = load(conn, tenant, grant_id)?.ok_or_else(|| ApiError::not_found(format!("grant `{grant_id}` not found")))?;
    if grant.status != GrantStatus::Active {
        return Err(ApiError::new(
            ErrorCode::ReservationFinalized,
            format!("grant `{grant_id}` is already {}", grant.status.as_str()),
        ));
    }
    Ok(grant)
}

/// Every grant of one chain, root first.
pub fn chain(conn: &Connection, tenant: &str, chain_id: &str) -> ApiResult<Vec<Grant>> {
    let ids: Vec<String> = conn
        .prepare_cached("SELECT grant_id FROM grants WHERE tenant_id = ?1 AND chain_id = ?2 ORDER BY depth, created_at_ms, grant_id")?
        .query_map(params![tenant, chain_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(g) = load(conn, tenant, &id)? {
            out.push(g);
        }
    }
    Ok(out)
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The node.
    pub grant_id: String,
    /// The unit.
    pub unit: String,
    /// What is wrong.
    pub message: String,
}

/// Audits `tenant`'s trees: at every node and unit `carved + spent <= granted`, and `carved`
/// equals what its children hold or consumed. Empty when the escrow is sound.
pub fn violations(conn: &Connection, tenant: &str) -> ApiResult<Vec<Violation>> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.grant_id, u.unit, u.granted, u.carved, u.spent, \
           COALESCE((SELECT SUM(CASE WHEN c.status = 'ACTIVE' THEN cu.granted ELSE cu.carved + cu.spent END) \
                     FROM grants c JOIN grant_units cu ON cu.grant_id = c.grant_id \
                     WHERE c.parent_id = u.grant_id AND cu.unit = u.unit), 0) \
         FROM grant_units u JOIN grants g ON g.grant_id = u.grant_id WHERE g.tenant_id = ?1",
    )?;
    let rows = stmt.query_map([tenant], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?, r.get::<_, i64>(5)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (grant_id, unit, granted, carved, spent, children) = row?;
        if carved.checked_add(spent).is_none_or(|used| used > granted) {
            out.push(Violation { grant_id: grant_id.clone(), unit: unit.clone(), message: format!("carved {carved} + spent {spent} > granted {granted}") });
        }
        if carved != children {
            out.push(Violation { grant_id, unit, message: format!("carved {carved} but the children hold or consumed {children}") });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn
    }

    fn grant<'a>(id: &'a str, parent: Option<&'a str>, budgets: &'a [(Unit, i64)]) -> NewGrant<'a> {
        NewGrant {
            tenant: "t",
            grant_id: id,
            chain_id: "c",
            parent_id: parent,
            holder: id,
            depth: i64::from(parent.is_some()),
            expires_at_ms: 10_000,
            now: 1,
            budgets,
        }
    }

    /// Each statement of the hot path is prepared once per connection, not on every run.
    #[test]
    fn loading_a_grant_does_not_reprepare_its_statements() {
        let conn = db();
        insert(&conn, &grant("root", None, &[(Unit::Tokens, 100), (Unit::Credits, 5)])).unwrap();
        for id in ["a", "b", "c"] {
            insert(&conn, &grant(id, Some("root"), &[(Unit::Tokens, 1)])).unwrap();
        }
        for _ in 0..5 {
            assert_eq!(load(&conn, "t", "root").unwrap().unwrap().units.len(), 2);
        }
        for sql in [UNITS_SQL, GRANT_SQL] {
            let stmt = conn.prepare_cached(sql).unwrap();
            let reprepared = stmt.get_status(rusqlite::StatementStatus::RePrepare);
            assert_eq!(reprepared, 0, "`{sql}` was prepared again {reprepared} times");
        }
    }

    #[test]
    fn siblings_cannot_spend_one_parent_budget_twice() {
        let conn = db();
        insert(&conn, &grant("root", None, &[(Unit::Tokens, 100)])).unwrap();
        insert(&conn, &grant("a", Some("root"), &[(Unit::Tokens, 60)])).unwrap();
        let e = insert(&conn, &grant("b", Some("root"), &[(Unit::Tokens, 60)])).unwrap_err();
        assert_eq!(e.code, ErrorCode::BudgetExceeded, "{}", e.message);
        insert(&conn, &grant("b", Some("root"), &[(Unit::Tokens, 40)])).unwrap();
        assert!(violations(&conn, "t").unwrap().is_empty());
    }

    #[test]
    fn a_commit_returns_the_rest_and_a_revocation_settles_the_subtree() {
        let conn = db();
        insert(&conn, &grant("root", None, &[(Unit::Tokens, 100)])).unwrap();
        insert(&conn, &grant("a", Some("root"), &[(Unit::Tokens, 60)])).unwrap();
        insert(&conn, &grant("a1", Some("a"), &[(Unit::Tokens, 50)])).unwrap();
        assert!(commit(&conn, "t", "a", &[(Unit::Tokens, 5)], 2).is_err(), "a live child blocks the commit");
        commit(&conn, "t", "a1", &[(Unit::Tokens, 20)], 2).unwrap();
        commit(&conn, "t", "a", &[(Unit::Tokens, 5)], 3).unwrap();
        let root = load(&conn, "t", "root").unwrap().unwrap();
        assert_eq!(root.units[0].carved, 25, "a consumed 5 + its child's 20; 35 returned");
        insert(&conn, &grant("b", Some("root"), &[(Unit::Tokens, 75)])).unwrap();
        insert(&conn, &grant("b1", Some("b"), &[(Unit::Tokens, 70)])).unwrap();
        let settled = settle_subtree(&conn, "t", "b", GrantStatus::Revoked, 4).unwrap();
        assert_eq!(settled.grants, vec!["b1".to_string(), "b".to_string()]);
        assert_eq!(load(&conn, "t", "b1").unwrap().unwrap().status, GrantStatus::Revoked);
        assert!(insert(&conn, &grant("b2", Some("b"), &[(Unit::Tokens, 1)])).is_err(), "a revoked node cannot delegate");
        assert_eq!(load(&conn, "t", "root").unwrap().unwrap().units[0].carved, 25);
        assert!(violations(&conn, "t").unwrap().is_empty());
    }

    #[test]
    fn a_unit_listed_twice_and_a_second_root_for_a_chain_are_refused() {
        let conn = db();
        assert!(insert(&conn, &grant("r", None, &[(Unit::Tokens, 1), (Unit::Tokens, 1)])).is_err());
        insert(&conn, &grant("r", None, &[(Unit::Tokens, 1)])).unwrap();
        assert_eq!(insert(&conn, &grant("r2", None, &[(Unit::Tokens, 1)])).unwrap_err().code, ErrorCode::DuplicateResource);
    }
}

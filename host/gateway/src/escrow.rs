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
//! Every function runs inside the caller's unit of work on the store ([`EscrowStore`]), so a
//! carve, the trace event and the idempotency record commit together or not at all.

use serde::{Deserialize, Serialize};

use crate::cycles::Unit;
use crate::error::{GatewayError, GatewayResult, ErrorCode};
use crate::repo::EscrowStore;

/// One unit carved into a child's escrow, as `POST /v1/delegations` and an approval answer it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Escrowed {
    /// The Cycles unit.
    pub unit: String,
    /// The amount carved.
    pub amount: i64,
}

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

    /// The status stored as `s`; anything unknown reads as [`GrantStatus::Revoked`].
    pub fn parse(s: &str) -> GrantStatus {
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

/// Loads the first of `ids` that names a grant of `tenant` (a token's grant may be stored under
/// its current id or, in a store from before time-ordered ids, its former one).
pub fn load_any(store: &dyn EscrowStore, tenant: &str, ids: &[String]) -> GatewayResult<Option<Grant>> {
    for id in ids {
        if let Some(grant) = store.grant(tenant, id)? {
            return Ok(Some(grant));
        }
    }
    Ok(None)
}

fn overflow() -> GatewayError {
    GatewayError::internal("escrow amount overflow")
}

/// `unit` with `carved` and `spent` replaced, after checking the node invariant (`0 <= carved`,
/// `0 <= spent`, `carved + spent <= granted`): a write that would break it is refused
/// (fail closed), whatever the backend's own constraints.
fn with_amounts(grant_id: &str, unit: &GrantUnit, carved: i64, spent: i64) -> GatewayResult<GrantUnit> {
    let used = carved.checked_add(spent).ok_or_else(overflow)?;
    if carved < 0 || spent < 0 || used > unit.granted {
        return Err(GatewayError::internal(format!(
            "escrow: grant `{grant_id}` would hold carved {carved} + spent {spent} of {} granted {}",
            unit.unit.as_str(),
            unit.granted
        )));
    }
    Ok(GrantUnit { carved, spent, available: unit.granted - used, ..unit.clone() })
}

/// Inserts a node. For a child, carves its budgets from the parent's available amounts, all or
/// nothing: the parent must be ACTIVE and unexpired, hold every unit the child is given, and
/// have enough left in each; otherwise nothing is written and the error names the unit.
pub fn insert(store: &dyn EscrowStore, g: &NewGrant<'_>) -> GatewayResult<()> {
    for (i, (unit, amount)) in g.budgets.iter().enumerate() {
        if *amount < 0 {
            return Err(GatewayError::invalid(format!("the {} budget of a grant is negative", unit.as_str())));
        }
        if g.budgets.iter().skip(i + 1).any(|(u, _)| u == unit) {
            return Err(GatewayError::invalid(format!("a grant lists the {} budget twice", unit.as_str())));
        }
    }
    if let Some(parent_id) = g.parent_id {
        let parent = store
            .grant(g.tenant, parent_id)?
            .ok_or_else(|| GatewayError::forbidden(format!("the parent grant `{parent_id}` is not known to this gateway")))?;
        if parent.status != GrantStatus::Active {
            return Err(GatewayError::forbidden(format!(
                "the parent grant `{parent_id}` is {} and can no longer delegate",
                parent.status.as_str()
            )));
        }
        if parent.expires_at_ms <= g.now {
            return Err(GatewayError::forbidden(format!("the parent grant `{parent_id}` expired at {}", parent.expires_at_ms)));
        }
        for (unit, amount) in g.budgets {
            let held = parent.units.iter().find(|u| u.unit == *unit);
            let available = held.map_or(0, |u| u.available);
            if *amount > available {
                return Err(GatewayError::new(
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
                return Err(GatewayError::new(ErrorCode::BudgetExceeded, format!("escrow: the parent grant holds no {}", unit.as_str())));
            }
        }
        for (unit, amount) in g.budgets {
            // a unit the parent does not hold is given 0 here (refused above otherwise)
            if let Some(held) = parent.units.iter().find(|u| u.unit == *unit) {
                let carved = held.carved.checked_add(*amount).ok_or_else(overflow)?;
                store.save_grant_unit(g.tenant, parent_id, &with_amounts(parent_id, held, carved, held.spent)?)?;
            }
        }
    }
    let mut units: Vec<GrantUnit> = g
        .budgets
        .iter()
        .map(|(unit, amount)| GrantUnit { unit: *unit, granted: *amount, carved: 0, spent: 0, available: *amount, reservation_id: None })
        .collect();
    units.sort_by(|a, b| a.unit.as_str().cmp(b.unit.as_str()));
    let grant = Grant {
        grant_id: g.grant_id.to_string(),
        chain_id: g.chain_id.to_string(),
        parent_id: g.parent_id.map(str::to_string),
        holder: g.holder.to_string(),
        depth: g.depth,
        status: GrantStatus::Active,
        expires_at_ms: g.expires_at_ms,
        created_at_ms: g.now,
        units,
    };
    if !store.insert_grant(g.tenant, &grant)? {
        return Err(GatewayError::new(
            ErrorCode::DuplicateResource,
            format!("grant `{}` or a root of chain `{}` exists already", g.grant_id, g.chain_id),
        ));
    }
    Ok(())
}

/// Records the Cycles reservation holding a root grant's `unit`.
pub fn set_reservation(store: &dyn EscrowStore, tenant: &str, grant_id: &str, unit: Unit, reservation_id: &str) -> GatewayResult<()> {
    let grant = store.grant(tenant, grant_id)?.ok_or_else(|| GatewayError::internal(format!("grant `{grant_id}` vanished")))?;
    let held = grant
        .units
        .into_iter()
        .find(|u| u.unit == unit)
        .ok_or_else(|| GatewayError::internal(format!("grant `{grant_id}` holds no {} budget to reserve", unit.as_str())))?;
    store.save_grant_unit(tenant, grant_id, &GrantUnit { reservation_id: Some(reservation_id.to_string()), ..held })
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
fn settle_one(store: &dyn EscrowStore, tenant: &str, grant: &Grant, spent: &[(Unit, i64)], status: GrantStatus, now: i64, out: &mut Settled) -> GatewayResult<()> {
    let mut units = grant.units.clone();
    for (unit, amount) in spent {
        let held = units
            .iter_mut()
            .find(|u| u.unit == *unit)
            .ok_or_else(|| GatewayError::invalid(format!("grant `{}` holds no {} budget", grant.grant_id, unit.as_str())))?;
        if *amount < 0 {
            return Err(GatewayError::invalid(format!("`spent` for {} is negative", unit.as_str())));
        }
        if *amount > held.available {
            return Err(GatewayError::new(
                ErrorCode::BudgetExceeded,
                format!("grant `{}` has {} {} left to spend, not {amount}", grant.grant_id, held.available, unit.as_str()),
            ));
        }
        *held = with_amounts(&grant.grant_id, held, held.carved, held.spent.checked_add(*amount).ok_or_else(overflow)?)?;
        store.save_grant_unit(tenant, &grant.grant_id, held)?;
    }
    store.set_grant_status(tenant, &grant.grant_id, status, now)?;
    let mut parent = match &grant.parent_id {
        Some(id) => Some(store.grant(tenant, id)?.ok_or_else(|| GatewayError::internal(format!("the parent grant `{id}` vanished")))?),
        None => None,
    };
    for u in units {
        // `consumed` replaces `granted` in the parent's `carved`: the rest returns.
        let consumed = u.carved.checked_add(u.spent).ok_or_else(overflow)?;
        match &mut parent {
            Some(parent) => {
                // a unit the parent does not hold was given 0, and carved nothing there
                if let Some(held) = parent.units.iter_mut().find(|p| p.unit == u.unit) {
                    let carved = held.carved.checked_sub(u.granted).and_then(|c| c.checked_add(consumed)).ok_or_else(overflow)?;
                    *held = with_amounts(&parent.grant_id, held, carved, held.spent)?;
                    store.save_grant_unit(tenant, &parent.grant_id, held)?;
                }
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

/// The ACTIVE nodes of the subtree under `grant_id` (itself included), deepest level first and
/// by id within a level: the order they settle in.
fn active_subtree(store: &dyn EscrowStore, tenant: &str, grant_id: &str) -> GatewayResult<Vec<String>> {
    let mut nodes: Vec<(usize, String)> = vec![(0, grant_id.to_string())];
    let mut seen = std::collections::BTreeSet::from([grant_id.to_string()]);
    let mut frontier = vec![grant_id.to_string()];
    let mut level = 0;
    while !frontier.is_empty() {
        level += 1;
        let mut next = Vec::new();
        for id in &frontier {
            for child in store.child_grants(tenant, id)? {
                // a tree has no cycles; a store that says otherwise is not walked forever
                if !seen.insert(child.clone()) {
                    return Err(GatewayError::internal(format!("escrow: grant `{child}` appears twice under `{grant_id}`")));
                }
                next.push(child);
            }
        }
        nodes.extend(next.iter().map(|id| (level, id.clone())));
        frontier = next;
    }
    let mut active = Vec::with_capacity(nodes.len());
    for (level, id) in nodes {
        if indexed(store, tenant, &id)?.status == GrantStatus::Active {
            active.push((level, id));
        }
    }
    active.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(active.into_iter().map(|(_, id)| id).collect())
}

/// Commits grant `grant_id` with what its holder spent: refused while it has ACTIVE children
/// (they settle first) or when `spent` exceeds what it has left.
pub fn commit(store: &dyn EscrowStore, tenant: &str, grant_id: &str, spent: &[(Unit, i64)], now: i64) -> GatewayResult<Settled> {
    let grant = active(store, tenant, grant_id)?;
    let mut live_children = 0usize;
    for child in store.child_grants(tenant, grant_id)? {
        if indexed(store, tenant, &child)?.status == GrantStatus::Active {
            live_children += 1;
        }
    }
    if live_children > 0 {
        return Err(GatewayError::new(
            ErrorCode::ReservationFinalized,
            format!("grant `{grant_id}` has {live_children} active children; they commit or are released first"),
        ));
    }
    let mut out = Settled::default();
    settle_one(store, tenant, &grant, spent, GrantStatus::Committed, now, &mut out)?;
    Ok(out)
}

/// Releases (`GrantStatus::Released`) or revokes (`GrantStatus::Revoked`) grant `grant_id` and
/// every ACTIVE node below it, deepest first, each spending nothing more.
pub fn settle_subtree(store: &dyn EscrowStore, tenant: &str, grant_id: &str, status: GrantStatus, now: i64) -> GatewayResult<Settled> {
    active(store, tenant, grant_id)?;
    let mut out = Settled::default();
    for id in active_subtree(store, tenant, grant_id)? {
        // read again: settling its children changed what it holds
        let node = store.grant(tenant, &id)?.ok_or_else(|| GatewayError::internal(format!("grant `{id}` vanished")))?;
        settle_one(store, tenant, &node, &[], status, now, &mut out)?;
    }
    Ok(out)
}

/// A grant an index of the store named: its absence is a broken store, refused (an unknown
/// child is never taken for a settled one).
fn indexed(store: &dyn EscrowStore, tenant: &str, grant_id: &str) -> GatewayResult<Grant> {
    store.grant(tenant, grant_id)?.ok_or_else(|| GatewayError::internal(format!("escrow: grant `{grant_id}` is indexed but missing")))
}

fn active(store: &dyn EscrowStore, tenant: &str, grant_id: &str) -> GatewayResult<Grant> {
    let grant = store.grant(tenant, grant_id)?.ok_or_else(|| GatewayError::not_found(format!("grant `{grant_id}` not found")))?;
    if grant.status != GrantStatus::Active {
        return Err(GatewayError::new(
            ErrorCode::ReservationFinalized,
            format!("grant `{grant_id}` is already {}", grant.status.as_str()),
        ));
    }
    Ok(grant)
}

/// Every grant of one chain, root first: by depth, then creation time, then id.
pub fn chain(store: &dyn EscrowStore, tenant: &str, chain_id: &str) -> GatewayResult<Vec<Grant>> {
    let ids = store.chain_grants(tenant, chain_id)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(indexed(store, tenant, &id)?);
    }
    out.sort_by(|a, b| (a.depth, a.created_at_ms, &a.grant_id).cmp(&(b.depth, b.created_at_ms, &b.grant_id)));
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
/// equals what its children hold (a live child's `granted`) or consumed (a settled child's
/// `carved + spent`); a grant the store indexes but cannot find is reported too. Empty when
/// the escrow is sound.
pub fn violations(store: &dyn EscrowStore, tenant: &str) -> GatewayResult<Vec<Violation>> {
    let mut grants = Vec::new();
    let mut out = Vec::new();
    for id in store.tenant_grants(tenant)? {
        match store.grant(tenant, &id)? {
            Some(grant) => grants.push(grant),
            None => out.push(Violation { grant_id: id, unit: String::new(), message: "indexed but missing".into() }),
        }
    }
    // per parent and unit: what its children hold or consumed (wide, so no sum overflows)
    let mut children: std::collections::HashMap<(&str, Unit), i128> = std::collections::HashMap::new();
    for child in &grants {
        let Some(parent) = child.parent_id.as_deref() else { continue };
        for u in &child.units {
            let held = if child.status == GrantStatus::Active { i128::from(u.granted) } else { i128::from(u.carved) + i128::from(u.spent) };
            *children.entry((parent, u.unit)).or_default() += held;
        }
    }
    for g in &grants {
        for u in &g.units {
            let (grant_id, unit) = (g.grant_id.clone(), u.unit.as_str().to_string());
            let (granted, carved, spent) = (u.granted, u.carved, u.spent);
            if carved.checked_add(spent).is_none_or(|used| used > granted) {
                out.push(Violation { grant_id: grant_id.clone(), unit: unit.clone(), message: format!("carved {carved} + spent {spent} > granted {granted}") });
            }
            let held = children.get(&(g.grant_id.as_str(), u.unit)).copied().unwrap_or(0);
            if i128::from(carved) != held {
                out.push(Violation { grant_id, unit, message: format!("carved {carved} but the children hold or consumed {held}") });
            }
        }
    }
    Ok(out)
}

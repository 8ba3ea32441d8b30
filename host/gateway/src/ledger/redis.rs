//! The ledger on Redis: [`LedgerStore`] as an optimistic transaction, so the rules in
//! [`crate::ledger`] run unchanged against a store that several gateways share.
//!
//! [`RedisLedger::run`] runs one ledger operation as one unit of work on a dedicated
//! connection, holding the tenant's lock ([`TenantLock`], for liveness). Every key the operation reads is `WATCH`ed before it is read; its writes are
//! buffered (and read back by the operation itself) and sent as one `MULTI`/`EXEC`. If another
//! client changed a watched key in between, `EXEC` applies nothing and the operation runs again
//! on fresh data, up to [`MAX_ATTEMPTS`] times. An operation that returns an error writes
//! nothing. Two gateways reserving from one budget therefore serialise on its key: one commits,
//! the other reruns and sees the first's hold, so a budget is never oversubscribed.
//!
//! ## Keys
//! Every key of a tenant carries the tenant in a hash tag (`PREFIX:{TENANT}:...`), so one
//! operation's keys share a Redis Cluster slot and one `MULTI` may hold them all:
//!
//! | key | holds |
//! |---|---|
//! | `P:{T}:tenant` | the tenant record, JSON |
//! | `P:{T}:budget:UNIT:SCOPE` | a budget, JSON |
//! | `P:{T}:budgets` | set of `UNIT SCOPE` of the tenant's budgets |
//! | `P:{T}:rsv:ID` | a reservation and its owning key, JSON |
//! | `P:{T}:rsv:created` | sorted set of reservation ids by creation time |
//! | `P:{T}:rsv:expiry` | sorted set of ACTIVE reservation ids by expiry + grace |
//! | `P:{T}:idem:ENDPOINT:KEY` | a stored idempotent response, JSON |
//! | `P:{T}:debit:ID` | a direct debit, JSON |
//! | `P:{T}:events` | list of emitted events, JSON |
//!
//! Two indexes cross tenants and so live outside any tenant's slot: `P:rsv-tenant:ID` (which
//! tenant a reservation id belongs to, for lookups by id alone) and `P:tenants` (the tenants
//! that hold reservations, for the expiry sweep). They are written before the transaction and
//! never change afterwards, so a crash between the two leaves at most an index entry that
//! points at nothing, never a reservation that cannot be found.
//!
//! Not yet here: webhook deliveries for the emitted events, and wiring into `sbd serve`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use redis::{Commands, Connection};
use serde_json::Value;

use crate::cycles::Unit;
use crate::error::{ApiError, ApiResult};
use crate::events::NewEvent;
use crate::ledger::store::{Debit, LedgerStore, ReservationScan, StoredResponse, TenantRecord};
use crate::ledger::{BudgetRow, Reservation};

/// How many times [`RedisLedger::run`] reruns an operation whose transaction was aborted by a
/// concurrent change before it gives up (fails closed: the operation is refused, nothing is
/// written).
pub const MAX_ATTEMPTS: usize = 64;

/// A Redis connection string and key prefix.
pub struct RedisLedger {
    client: redis::Client,
    prefix: String,
    /// Idle connections, reused (an operation holds one for its whole unit of work).
    idle: std::sync::Mutex<Vec<Connection>>,
}

/// How many idle connections a [`RedisLedger`] keeps.
const MAX_IDLE_CONNECTIONS: usize = 64;

/// `P:{T}`, the start of every key of tenant `T` (the hash tag puts them in one Cluster slot);
/// a tenant id that could break out of its hash tag is refused.
fn tenant_tag(prefix: &str, tenant: &str) -> ApiResult<String> {
    if tenant.contains(['{', '}']) {
        return Err(ApiError::invalid(format!("tenant id `{tenant}` cannot be stored: it contains a brace")));
    }
    Ok(format!("{prefix}:{{{tenant}}}"))
}

fn redis_error(e: redis::RedisError) -> ApiError {
    ApiError::internal(format!("redis: {e}"))
}

fn json_error(e: serde_json::Error) -> ApiError {
    ApiError::internal(format!("redis: a stored value is not the expected JSON: {e}"))
}

impl RedisLedger {
    /// A ledger on the Redis at `url` (`redis://HOST:PORT/DB`), its keys under `prefix`.
    pub fn open(url: &str, prefix: &str) -> ApiResult<Self> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(ApiError::invalid("the Redis key prefix must be non-empty and free of `{` and `}`"));
        }
        let client = redis::Client::open(url).map_err(redis_error)?;
        Ok(RedisLedger { client, prefix: prefix.to_string(), idle: std::sync::Mutex::default() })
    }

    /// Runs `op`, an operation on `tenant`'s ledger, as one atomic unit of work (module docs),
    /// holding the tenant's lock and rerunning it on a concurrent change.
    pub fn run<T>(&self, tenant: &str, mut op: impl FnMut(&dyn LedgerStore) -> ApiResult<T>) -> ApiResult<T> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut connection = match pooled {
            Some(connection) => connection,
            None => self.client.get_connection().map_err(redis_error)?,
        };
        let lock = TenantLock::acquire(&mut connection, &self.prefix, tenant)?;
        let mut outcome = None;
        for attempt in 0..MAX_ATTEMPTS {
            let tx = Transaction::new(&mut connection, &self.prefix);
            match op(&tx) {
                Ok(value) => {
                    if tx.commit()? {
                        outcome = Some(Ok(value));
                        break;
                    }
                    backoff(attempt);
                }
                Err(e) => {
                    tx.abandon()?;
                    outcome = Some(Err(e));
                    break;
                }
            }
        }
        lock.release(&mut connection)?;
        // a connection that failed mid-operation returned early above and is dropped, not reused
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_CONNECTIONS
        {
            idle.push(connection);
        }
        outcome.unwrap_or_else(|| {
            Err(ApiError::internal(format!(
                "redis: the operation met a concurrent change {MAX_ATTEMPTS} times in a row and was not applied"
            )))
        })
    }
}

/// How long a tenant's lock is held at most before it lapses (a gateway that dies holding it
/// delays the tenant's operations by this much, no more).
pub const LOCK_LEASE_MS: u64 = 5_000;

/// How long [`RedisLedger::run`] waits for a tenant's lock before it refuses the operation.
pub const LOCK_WAIT_MS: u64 = 10_000;

/// A tenant's lock: `SET P:{T}:lock TOKEN NX PX lease`. It is for liveness only. Without it,
/// clients that contend on one budget abort each other's transactions (measured: 50 clients
/// on one tenant exhaust 64 attempts). Safety does not rest on it: a holder whose lease lapsed
/// still commits only if no watched key changed.
struct TenantLock {
    key: String,
    /// `P:{T}:lock:wake`, a list a release pushes to: waiters block on it (`BLPOP`) instead of
    /// polling, and Redis wakes them one at a time, in the order they began to wait.
    wake: String,
    token: String,
}

/// How long a waiter blocks on the wake list before it tries the lock again anyway (a holder
/// that died wakes nobody; its lease lapses instead).
const LOCK_POLL_S: f64 = 0.05;

impl TenantLock {
    fn acquire(connection: &mut Connection, prefix: &str, tenant: &str) -> ApiResult<TenantLock> {
        let key = format!("{}:lock", tenant_tag(prefix, tenant)?);
        let wake = format!("{key}:wake");
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness for a lock token: {e}")))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(LOCK_WAIT_MS);
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(LOCK_LEASE_MS)
                .query(connection)
                .map_err(redis_error)?;
            if taken.is_some() {
                return Ok(TenantLock { key, wake, token });
            }
            if std::time::Instant::now() >= deadline {
                return Err(ApiError::internal(format!(
                    "redis: tenant `{tenant}`'s ledger stayed locked for {LOCK_WAIT_MS} ms; the operation was not applied"
                )));
            }
            let _woken: Option<(String, String)> =
                redis::cmd("BLPOP").arg(&wake).arg(LOCK_POLL_S).query(connection).map_err(redis_error)?;
        }
    }

    /// Deletes the lock if it is still this holder's (a lapsed lease may have passed it on),
    /// and wakes one waiter (the list keeps at most one pending wake-up).
    fn release(self, connection: &mut Connection) -> ApiResult<()> {
        const COMPARE_AND_DELETE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
             redis.call('DEL', KEYS[1]); redis.call('RPUSH', KEYS[2], 1); redis.call('LTRIM', KEYS[2], -1, -1) \
             end return 0";
        redis::cmd("EVAL")
            .arg(COMPARE_AND_DELETE)
            .arg(2)
            .arg(&self.key)
            .arg(&self.wake)
            .arg(&self.token)
            .exec(connection)
            .map_err(redis_error)
    }
}

/// After an aborted attempt: a random pause of up to 50 us times 2^attempt, at most 10 ms
/// (full jitter), so that clients contending on one budget spread out instead of aborting
/// each other again in lockstep.
fn backoff(attempt: usize) {
    let ceiling_us = 50u64.saturating_mul(1 << attempt.min(8)).min(10_000);
    let mut bytes = [0u8; 8];
    // without randomness, the full ceiling (still bounded)
    let draw = getrandom::fill(&mut bytes).map_or(u64::MAX, |()| u64::from_le_bytes(bytes));
    std::thread::sleep(std::time::Duration::from_micros(draw % (ceiling_us + 1)));
}

/// A buffered write.
enum Write {
    Set(String, String),
    SetAdd(String, String),
    SortedAdd(String, i64, String),
    SortedRemove(String, String),
    ListPush(String, String),
}

/// One attempt of one operation.
struct Transaction<'a> {
    connection: RefCell<&'a mut Connection>,
    prefix: &'a str,
    /// Keys already watched.
    watched: RefCell<BTreeSet<String>>,
    /// What this attempt has written, by key (read back by its own reads).
    written: RefCell<BTreeMap<String, String>>,
    /// Members this attempt has added to sets and sorted sets, by key.
    added: RefCell<BTreeMap<String, BTreeSet<String>>>,
    /// Members this attempt has removed from sorted sets, by key.
    removed: RefCell<BTreeMap<String, BTreeSet<String>>>,
    writes: RefCell<Vec<Write>>,
    /// Cross-tenant index entries, written before the transaction (module docs).
    indexes: RefCell<Vec<Write>>,
}

impl<'a> Transaction<'a> {
    fn new(connection: &'a mut Connection, prefix: &'a str) -> Self {
        Transaction {
            connection: RefCell::new(connection),
            prefix,
            watched: RefCell::default(),
            written: RefCell::default(),
            added: RefCell::default(),
            removed: RefCell::default(),
            writes: RefCell::default(),
            indexes: RefCell::default(),
        }
    }

    /// `P:{T}:rest`.
    fn key(&self, tenant: &str, rest: &str) -> ApiResult<String> {
        Ok(format!("{}:{rest}", tenant_tag(self.prefix, tenant)?))
    }

    fn watch(&self, key: &str) -> ApiResult<()> {
        if self.watched.borrow_mut().insert(key.to_string()) {
            redis::cmd("WATCH").arg(key).exec(&mut **self.connection.borrow_mut()).map_err(redis_error)?;
        }
        Ok(())
    }

    /// GET through this attempt's own writes, watching the key.
    fn get(&self, key: &str) -> ApiResult<Option<String>> {
        if let Some(value) = self.written.borrow().get(key) {
            return Ok(Some(value.clone()));
        }
        self.watch(key)?;
        self.connection.borrow_mut().get(key).map_err(redis_error)
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> ApiResult<Option<T>> {
        self.get(key)?.map(|s| serde_json::from_str(&s).map_err(json_error)).transpose()
    }

    fn set_json<T: serde::Serialize>(&self, key: String, value: &T) -> ApiResult<()> {
        let text = serde_json::to_string(value).map_err(json_error)?;
        self.written.borrow_mut().insert(key.clone(), text.clone());
        self.writes.borrow_mut().push(Write::Set(key, text));
        Ok(())
    }

    /// The members of a set or sorted set (in no particular order) through this attempt's own
    /// changes, watching the key.
    fn members(&self, key: &str, sorted: bool) -> ApiResult<BTreeSet<String>> {
        self.watch(key)?;
        let stored: Vec<String> = if sorted {
            self.connection.borrow_mut().zrange(key, 0, -1).map_err(redis_error)?
        } else {
            self.connection.borrow_mut().smembers(key).map_err(redis_error)?
        };
        let mut members: BTreeSet<String> = stored.into_iter().collect();
        members.extend(self.added.borrow().get(key).into_iter().flatten().cloned());
        for gone in self.removed.borrow().get(key).into_iter().flatten() {
            members.remove(gone);
        }
        Ok(members)
    }

    fn add_member(&self, write: Write) {
        let (key, member) = match &write {
            Write::SetAdd(key, member) | Write::SortedAdd(key, _, member) => (key.clone(), member.clone()),
            _ => return,
        };
        if let Some(removed) = self.removed.borrow_mut().get_mut(&key) {
            removed.remove(&member);
        }
        self.added.borrow_mut().entry(key).or_default().insert(member);
        self.writes.borrow_mut().push(write);
    }

    fn remove_member(&self, key: String, member: String) {
        if let Some(added) = self.added.borrow_mut().get_mut(&key) {
            added.remove(&member);
        }
        self.removed.borrow_mut().entry(key.clone()).or_default().insert(member.clone());
        self.writes.borrow_mut().push(Write::SortedRemove(key, member));
    }

    /// An insert's primary-key check: the key must not exist (watched, so a concurrent insert
    /// aborts this attempt).
    fn refuse_existing(&self, key: &str) -> ApiResult<()> {
        match self.get(key)? {
            Some(_) => Err(ApiError::internal(format!("redis: `{key}` exists"))),
            None => Ok(()),
        }
    }

    fn budget_key(&self, tenant: &str, scope: &str, unit: Unit) -> ApiResult<String> {
        self.key(tenant, &format!("budget:{}:{scope}", unit.as_str()))
    }

    fn reservation_key(&self, tenant: &str, id: &str) -> ApiResult<String> {
        self.key(tenant, &format!("rsv:{id}"))
    }

    fn stored_reservation(&self, id: &str) -> ApiResult<Option<Reservation>> {
        let index = format!("{}:rsv-tenant:{id}", self.prefix);
        let pending = self.indexes.borrow().iter().find_map(|w| match w {
            Write::Set(key, tenant) if *key == index => Some(tenant.clone()),
            _ => None,
        });
        let tenant: Option<String> = match pending {
            Some(tenant) => Some(tenant),
            // written once, before the reservation, and never changed: no need to watch it
            None => self.connection.borrow_mut().get(&index).map_err(redis_error)?,
        };
        match tenant {
            Some(tenant) => self.get_json(&self.reservation_key(&tenant, id)?),
            None => Ok(None),
        }
    }

    /// Sends the buffered writes; false when a watched key changed and nothing was applied.
    fn commit(self) -> ApiResult<bool> {
        let connection = &mut **self.connection.borrow_mut();
        let writes = self.writes.into_inner();
        if writes.is_empty() {
            redis::cmd("UNWATCH").exec(connection).map_err(redis_error)?;
            return Ok(true);
        }
        let index_writes = self.indexes.into_inner();
        if !index_writes.is_empty() {
            let mut indexes = redis::pipe();
            for write in index_writes {
                queue(&mut indexes, write);
            }
            indexes.exec(connection).map_err(redis_error)?;
        }
        let mut transaction = redis::pipe();
        transaction.atomic();
        for write in writes {
            queue(&mut transaction, write);
        }
        let applied: Option<redis::Value> = transaction.query(connection).map_err(redis_error)?;
        Ok(applied.is_some())
    }

    /// Ends an attempt that failed: nothing is sent.
    fn abandon(self) -> ApiResult<()> {
        redis::cmd("UNWATCH").exec(&mut **self.connection.borrow_mut()).map_err(redis_error)
    }
}

fn queue(pipe: &mut redis::Pipeline, write: Write) {
    match write {
        Write::Set(key, value) => pipe.cmd("SET").arg(key).arg(value).ignore(),
        Write::SetAdd(key, member) => pipe.cmd("SADD").arg(key).arg(member).ignore(),
        Write::SortedAdd(key, score, member) => pipe.cmd("ZADD").arg(key).arg(score).arg(member).ignore(),
        Write::SortedRemove(key, member) => pipe.cmd("ZREM").arg(key).arg(member).ignore(),
        Write::ListPush(key, value) => pipe.cmd("RPUSH").arg(key).arg(value).ignore(),
    };
}

/// How an emitted event is kept.
#[derive(serde::Serialize)]
struct StoredEvent<'a> {
    event_type: &'static str,
    tenant_id: &'a str,
    scope: Option<&'a str>,
    correlation_id: Option<&'a str>,
    at_ms: i64,
    data: &'a crate::events::EventData,
}

impl LedgerStore for Transaction<'_> {
    fn tenant(&self, tenant: &str) -> ApiResult<Option<TenantRecord>> {
        #[derive(serde::Deserialize)]
        struct Stored {
            status: String,
            #[serde(default)]
            observe: bool,
        }
        let stored: Option<Stored> = self.get_json(&self.key(tenant, "tenant")?)?;
        Ok(stored.map(|s| TenantRecord { status: s.status, observe: s.observe }))
    }

    fn budget(&self, tenant: &str, scope: &str, unit: Unit) -> ApiResult<Option<BudgetRow>> {
        self.get_json(&self.budget_key(tenant, scope, unit)?)
    }

    fn budget_units(&self, tenant: &str, scope: &str) -> ApiResult<Vec<String>> {
        let members = self.members(&self.key(tenant, "budgets")?, false)?;
        Ok(members.iter().filter_map(|m| m.split_once(' ')).filter(|(_, s)| *s == scope).map(|(u, _)| u.to_string()).collect())
    }

    fn tenant_budgets(&self, tenant: &str) -> ApiResult<Vec<BudgetRow>> {
        let mut listed: Vec<(String, String)> = self
            .members(&self.key(tenant, "budgets")?, false)?
            .iter()
            .filter_map(|m| m.split_once(' ').map(|(u, s)| (s.to_string(), u.to_string())))
            .collect();
        listed.sort();
        let mut out = Vec::with_capacity(listed.len());
        for (scope, unit) in listed {
            let unit = Unit::parse(&unit).ok_or_else(|| ApiError::internal(format!("redis: unknown unit `{unit}` in the budget index")))?;
            if let Some(b) = self.budget(tenant, &scope, unit)? {
                out.push(b);
            }
        }
        Ok(out)
    }

    fn insert_budget(&self, tenant: &str, budget: &BudgetRow) -> ApiResult<()> {
        let key = self.budget_key(tenant, &budget.scope, budget.unit)?;
        self.refuse_existing(&key)?;
        self.set_json(key, budget)?;
        let member = format!("{} {}", budget.unit.as_str(), budget.scope);
        self.add_member(Write::SetAdd(self.key(tenant, "budgets")?, member));
        Ok(())
    }

    fn save_budget(&self, tenant: &str, budget: &BudgetRow, now: i64) -> ApiResult<()> {
        let key = self.budget_key(tenant, &budget.scope, budget.unit)?;
        if self.get(&key)?.is_none() {
            // the SQL backend's UPDATE changes nothing either
            return Ok(());
        }
        self.set_json(key, &BudgetRow { updated_at_ms: now, ..budget.clone() })
    }

    fn reservation(&self, id: &str) -> ApiResult<Option<Reservation>> {
        self.stored_reservation(id)
    }

    fn insert_reservation(&self, r: &Reservation) -> ApiResult<()> {
        let key = self.reservation_key(&r.tenant, &r.id)?;
        self.refuse_existing(&key)?;
        self.set_json(key, r)?;
        self.add_member(Write::SortedAdd(self.key(&r.tenant, "rsv:created")?, r.created_at_ms, r.id.clone()));
        if r.status == "ACTIVE" {
            let deadline = r.expires_at_ms.saturating_add(r.grace_ms);
            self.add_member(Write::SortedAdd(self.key(&r.tenant, "rsv:expiry")?, deadline, r.id.clone()));
        }
        let mut indexes = self.indexes.borrow_mut();
        indexes.push(Write::Set(format!("{}:rsv-tenant:{}", self.prefix, r.id), r.tenant.clone()));
        indexes.push(Write::SetAdd(format!("{}:tenants", self.prefix), r.tenant.clone()));
        Ok(())
    }

    fn save_reservation(&self, r: &Reservation) -> ApiResult<()> {
        let key = self.reservation_key(&r.tenant, &r.id)?;
        let Some(mut stored) = self.get_json::<Reservation>(&key)? else {
            return Ok(());
        };
        let s = &mut stored;
        s.status.clone_from(&r.status);
        s.committed = r.committed;
        s.expires_at_ms = r.expires_at_ms;
        s.finalized_at_ms = r.finalized_at_ms;
        s.extensions = r.extensions;
        s.committed_metadata.clone_from(&r.committed_metadata);
        let expiry = self.key(&r.tenant, "rsv:expiry")?;
        if s.status == "ACTIVE" {
            self.add_member(Write::SortedAdd(expiry, s.expires_at_ms.saturating_add(s.grace_ms), s.id.clone()));
        } else {
            self.remove_member(expiry, s.id.clone());
        }
        self.set_json(key, &stored)
    }

    fn scan_reservations(&self, scan: ReservationScan<'_>, visit: &mut dyn FnMut(Reservation) -> bool) -> ApiResult<()> {
        let mut candidates = Vec::new();
        for id in self.members(&self.key(scan.tenant, "rsv:created")?, true)? {
            candidates.extend(self.get_json::<Reservation>(&self.reservation_key(scan.tenant, &id)?)?);
        }
        scan.visit_matching(candidates, visit);
        Ok(())
    }

    fn expired_reservations(&self, now: i64, max: usize) -> ApiResult<Vec<String>> {
        let tenants: Vec<String> = self.connection.borrow_mut().smembers(format!("{}:tenants", self.prefix)).map_err(redis_error)?;
        let mut out = Vec::new();
        for tenant in tenants {
            if out.len() >= max {
                break;
            }
            let key = self.key(&tenant, "rsv:expiry")?;
            self.watch(&key)?;
            // expiry + grace strictly before now
            let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(format!("({now}"))
                .arg("LIMIT")
                .arg(0)
                .arg(max - out.len())
                .query(&mut **self.connection.borrow_mut())
                .map_err(redis_error)?;
            out.extend(due);
        }
        Ok(out)
    }

    fn recall(&self, tenant: &str, endpoint: &str, key: &str) -> ApiResult<Option<StoredResponse>> {
        #[derive(serde::Deserialize)]
        struct Stored {
            request_hash: String,
            response: String,
        }
        let stored: Option<Stored> = self.get_json(&self.key(tenant, &format!("idem:{endpoint}:{key}"))?)?;
        Ok(stored.map(|s| StoredResponse { request_hash: s.request_hash, response: s.response }))
    }

    fn remember(&self, tenant: &str, endpoint: &str, key: &str, request_hash: &str, response: &Value) -> ApiResult<()> {
        let stored = serde_json::json!({"request_hash": request_hash, "response": response.to_string()});
        let key = self.key(tenant, &format!("idem:{endpoint}:{key}"))?;
        self.refuse_existing(&key)?;
        self.set_json(key, &stored)
    }

    fn record_debit(&self, d: &Debit<'_>) -> ApiResult<()> {
        let stored = serde_json::json!({
            "id": d.id, "unit": d.unit.as_str(), "amount": d.amount, "charged": d.charged,
            "scopes": d.scopes, "at_ms": d.at_ms, "body": d.body,
        });
        self.set_json(self.key(d.tenant, &format!("debit:{}", d.id))?, &stored)
    }

    fn emit(&self, event: NewEvent, now: i64) -> ApiResult<()> {
        let stored = StoredEvent {
            event_type: event.event_type.as_str(),
            tenant_id: &event.tenant_id,
            scope: event.scope.as_deref(),
            correlation_id: event.correlation_id.as_deref(),
            at_ms: now,
            data: &event.data,
        };
        let text = serde_json::to_string(&stored).map_err(json_error)?;
        self.writes.borrow_mut().push(Write::ListPush(self.key(&event.tenant_id, "events")?, text));
        Ok(())
    }
}

//! The ledger on Redis: [`LedgerStore`] inside a fenced per-tenant lock, so the rules in
//! [`crate::ledger`] run unchanged against a store that several gateways share.
//!
//! [`RedisLedger::run`] runs one ledger operation as one unit of work on one connection:
//!
//! 1. **Lock.** It takes the tenant's lock (`P:{T}:lock` set to a random token with a lease,
//!    if free or already this token's, in a script that also returns the tenant record, which
//!    every operation reads), or starts under the lock the operation before it handed on (lock
//!    handoff, below). Waiters block on a wake list (`BLPOP`) that each release pushes to, so
//!    Redis wakes them one at a time.
//! 2. **Read.** The operation's reads are plain `GET`s (each key at most once per attempt);
//!    its writes are buffered and read back by its own later reads. A new record under a
//!    fresh id (a reservation, an event, a webhook delivery, a trace event) is not read
//!    first: the commit script checks that its key does not exist, and if it does, writes
//!    nothing and releases the lock (so does a write-once index entry that names another
//!    tenant); an operation that ran under a handed-on lock then runs again under a lock
//!    taken for it, as an operation that refuses does.
//! 3. **Commit, fenced.** One script checks that the lock still holds this attempt's token and
//!    that the tenant record is the one the attempt read, applies every buffered write, and
//!    releases the lock (waking one waiter) or renews it for a handoff. A holder whose lease
//!    lapsed (it stalled past [`LOCK_LEASE_MS`]) finds another token there: the script writes
//!    nothing and the operation runs again on fresh data, at most [`MAX_ATTEMPTS`] times.
//!
//! Every write to a tenant's keys goes through that script under that tenant's lock, so what
//! an operation read cannot change before its writes land: two gateways reserving from one
//! budget run one after the other, and a budget is never oversubscribed. The one exception is
//! the tenant record (`P:{T}:tenant`), which provisioning may write without the lock (closing
//! or suspending a tenant): the commit checks it unchanged, so an operation decided on a
//! record that changed since runs again and sees the change. An operation that returns an
//! error writes nothing and releases the lock at once. A connection that fails mid-operation
//! is dropped (its lock lapses after the lease); when the commit script's reply is lost the
//! outcome is unknown and the caller is told so, never told it failed.
//!
//! An attempt that takes the lock costs two round trips plus one per key read (the
//! `WATCH`/`MULTI` version this replaces cost two per key read plus four;
//! docs/performance.md); one that starts under a handed-on lock saves the first and the reads
//! of keys the operations before it read or wrote.
//!
//! ## Lock handoff
//! A tenant's operations in one process enter one at a time, first come first served, through
//! the tenant's gate, so they never race each other for the Redis lock. When an operation commits while
//! another of this process is already waiting at the gate, its commit script renews the lock's
//! lease instead of releasing it, and the next operation starts under the same lock, with no
//! acquiring round trip and with the tenant's keys as the operations before it read and wrote
//! them (no other gateway can have written them under the lock, which was held throughout;
//! the tenant record, which can be written without it, is checked by the commit). A holding is
//! used only within [`HANDOFF_WITHIN`] of its last renewal, and it serves at most
//! [`MAX_HANDOFFS`] operations, or [`HANDOFFS_BEFORE_YIELD`] once another gateway waits (a
//! gateway that finds the lock taken marks it contended, and the commit script then releases
//! it): then the lock is released and every gateway's waiters compete for it again. That
//! competition is a race, not a queue: this gateway's next operation may win it again, so the
//! bound on how long another gateway waits is probabilistic, not a hard count. The fence is
//! unchanged: every commit still checks the token, so a holding that lapsed writes nothing, and
//! its operation runs again on a fresh lock with nothing cached. An operation that started
//! under a handed-on lock and returns an error runs again on a freshly taken lock, so every
//! refusal is decided on data read under a lock taken for it, as without handoff. Waiting at
//! the gate counts against the same [`LOCK_WAIT_MS`] as waiting for the Redis lock.
//!
//! ## Keys
//! Every key of a tenant carries the tenant in a hash tag (`PREFIX:{TENANT}:...`), so one
//! operation's keys, its lock and its commit script share a Redis Cluster slot. An operation
//! may read another tenant's keys (a reservation looked up by id alone, to refuse it), but a
//! write outside the locked tenant is refused before anything is sent.
//!
//! | key | holds |
//! |---|---|
//! | `P:{T}:lock`, `P:{T}:lock:wake` | the tenant's lock, and the list its waiters block on |
//! | `P:{T}:lock:contended` | set for a moment by a gateway that found the lock taken |
//! | `P:{T}:tenant` | the tenant record, JSON ([`tenants`]: with the provisioning record, and the API keys) |
//! | `P:{T}:budget:UNIT:SCOPE` | a budget, JSON |
//! | `P:{T}:budgets` | set of `UNIT SCOPE` of the tenant's budgets |
//! | `P:{T}:rsv:id:ID` | a reservation and its owning key, JSON |
//! | `P:{T}:rsv:created` | sorted set of reservation ids by creation time |
//! | `P:{T}:rsv:expiry` | sorted set of ACTIVE reservation ids by expiry + grace |
//! | `P:{T}:idem:ENDPOINT:KEY` | a stored idempotent response, JSON |
//! | `P:{T}:debit:ID` | a direct debit, JSON |
//! | `P:{T}:evt:ID`, `P:{T}:whsub:ID`, `P:{T}:whdel:ID`, ... | the event log, webhook subscriptions and their deliveries ([`outbox`] lists them) |
//! | `P:{T}:authority`, `P:{T}:agent:ID`, `P:{T}:dlg:KEY`, `P:{T}:grant:ID`, `P:{T}:esc:ID`, ... | the registry, the delegation records, the escrow and the escalations ([`rows`] lists them) |
//!
//! Three indexes of the ledger's cross tenants and so live outside any tenant's slot (those
//! of the other state, `P:esc-tenants` and `P:evt-tenant:ID` and the like, are [`rows`]'s and
//! [`outbox`]'s, and written the same way): `P:rsv-tenant:ID` (which
//! tenant a reservation id belongs to, for lookups by id alone), `P:tenants` (the tenants
//! that hold reservations, for the expiry sweep) and `P:budget-tenants` (the tenants that have
//! budgets, for the admin plane's listings). On one server they are written by the commit
//! script itself, atomically with the reservation or budget. On a Cluster they fall in other slots, so
//! they are written before the commit script, and they never change afterwards: a crash
//! between the two leaves at most an index entry that points at nothing, never a reservation
//! that cannot be found.
//!
//! ## Redis Cluster
//! [`RedisLedger::open`] takes `redis+cluster://HOST:PORT,...` for a Redis Cluster: redis-rs's
//! cluster client routes each command to the node holding its key's slot. Every lock, read,
//! `MGET` and commit script of an operation stays in its tenant's slot; the cross-tenant index
//! writes are sent one by one (a cluster connection does not pipeline).
//!
//! ## What the Redis deployment must provide
//! The ledger is as durable as the Redis under it. It needs `maxmemory-policy noeviction` (an
//! evicted idempotency record would let a retry apply twice; an evicted lock, two holders),
//! and `appendonly yes` with `appendfsync always` for an acknowledged commit to survive a
//! Redis crash. With replicas, a failover can lose the last acknowledged writes (Redis
//! replication is asynchronous and the commit does not `WAIT` for replicas): run the ledger's
//! Redis without automatic failover, or accept that window. The Cluster client does not resend
//! a command whose reply was lost: it fails the operation (closed) instead.
//!
//! Needs Redis 6 or later (`BLPOP` with a fractional timeout). Not yet here: wiring into
//! `sbd serve`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use redis::{Commands, Connection, ConnectionLike};

use crate::cycles::Unit;
use crate::error::{GatewayError, GatewayResult};
use crate::events::NewEvent;
use crate::ledger::store::{Debit, LedgerStore, ReservationScan, StoredResponse, TenantRecord};
use crate::ledger::{BudgetRow, Reservation};
use crate::repo::Tx;
use crate::traces::Seal;

mod outbox;
mod rows;
mod tenants;

/// How many times [`RedisLedger::run`] runs an operation whose lock lapsed before it could
/// commit, before it gives up (fails closed: the operation is refused, nothing is written).
pub const MAX_ATTEMPTS: usize = 64;

/// How long a tenant's lock is held at most before it lapses (a gateway that dies holding it
/// delays the tenant's operations by this much, no more).
pub const LOCK_LEASE_MS: u64 = 5_000;

/// How long [`RedisLedger::run`] waits for a tenant's lock before it refuses the operation.
pub const LOCK_WAIT_MS: u64 = 10_000;

/// How long one command may take to send or answer before the connection is given up (and
/// with it the operation: refused, or of unknown outcome if it was the commit).
pub const COMMAND_TIMEOUT_MS: u64 = 2_000;

/// How long a waiter blocks on the wake list before it tries the lock again anyway (a holder
/// that died wakes nobody; its lease lapses instead).
const LOCK_POLL_S: f64 = 0.05;

/// How many idle connections a [`RedisLedger`] keeps.
const MAX_IDLE_CONNECTIONS: usize = 64;

/// How many operations in a row one holding of a tenant's lock serves at most before it is
/// given back to every gateway (lock handoff, module docs).
pub const MAX_HANDOFFS: u32 = 32;

/// How many operations in a row one holding serves before it yields to another gateway that
/// is waiting for the lock (one that tried to take it marks it contended): the bound on how
/// long this process keeps the tenant from the others while its own operations queue.
pub const HANDOFFS_BEFORE_YIELD: u32 = 4;

/// How long a waiter's contended mark lasts (it renews it at every try, at least every
/// [`LOCK_POLL_S`]).
const CONTENDED_MARK_MS: u64 = 200;

/// A lock kept for handoff is used only this soon after its lease was last renewed (half the
/// lease): later it may be about to lapse, and the next operation takes the lock afresh.
pub const HANDOFF_WITHIN: Duration = Duration::from_millis(LOCK_LEASE_MS / 2);

/// Takes the lock (`KEYS[1]`) for token `ARGV[1]` with lease `ARGV[2]` ms if it is free (or
/// already this token's: a resent request renews it), and then answers
/// `{'1', tenant record}` (`KEYS[2]`; `{'1'}` when there is none). If another holds it, it
/// marks the lock contended (`KEYS[3]`, for `ARGV[3]` ms, so the holder does not hand it on
/// within its process for long, module docs) and answers `{'0'}`.
const ACQUIRE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
  return {'0'}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[3])
local record = redis.call('GET', KEYS[2])
if record then return {'1', record} end
return {'1'}
";

/// The fenced commit. `KEYS[1]` is the lock, `KEYS[2]` its wake list, `KEYS[3]` its contended
/// mark, `KEYS[4]` the tenant record, `KEYS[5..]` the keys written; `ARGV[1]` is the holder's
/// token, `ARGV[2]` a lease in ms to keep the lock for (`0`: release it), `ARGV[3]` `1` if it
/// is to be released anyway when marked contended, `ARGV[4]` `1` and `ARGV[5]` the tenant
/// record as the attempt read it (`0` and empty: there was none; `-`: not checked), then three
/// arguments per write (`S` value: SET; `N` value: SET of a write-once key, refused if it
/// holds another value; `C` value: SET of a new record's key, refused if it exists; a refused
/// `N` or `C` makes the script release the lock and answer `-n` for the `n`th write, writing
/// nothing; `A` member:
/// SADD; `X` member: SREM; `Z` score member: ZADD; `R` member: ZREM; `D`: DEL, of a key of any
/// type). Answers 0, writing nothing, unless the lock holds the token (and
/// releases the lock if it does but the tenant record changed); else applies every write, then
/// either renews the lock's lease and answers 2 (it is handed to the next operation of this
/// process, module docs), or releases the lock, wakes one waiter and answers 1. Every write is
/// checked before the first is applied (Redis does not roll a failed script back), against the
/// key's type and the earlier writes to it, so a key of the wrong type fails it whole.
const FENCED_COMMIT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[4] ~= '-' then
  local record = redis.call('GET', KEYS[4])
  if (ARGV[4] == '0' and record) or (ARGV[4] == '1' and record ~= ARGV[5]) then
    redis.call('DEL', KEYS[1])
    redis.call('RPUSH', KEYS[2], 1)
    redis.call('LTRIM', KEYS[2], -1, -1)
    return 0
  end
end
-- a refused write: release the lock, wake one waiter, name the write (nothing is applied)
local function refuse(i)
  redis.call('DEL', KEYS[1])
  redis.call('RPUSH', KEYS[2], 1)
  redis.call('LTRIM', KEYS[2], -1, -1)
  return 4 - i
end
local types = {S = 'string', N = 'string', C = 'string', A = 'set', X = 'set', Z = 'zset', R = 'zset', D = 'none'}
local planned = {}
for i = 5, #KEYS do
  local op = ARGV[3 * i - 9]
  local want = types[op]
  if not want then return redis.error_reply('unknown write ' .. tostring(op)) end
  if op == 'C' then
    local prior = planned[KEYS[i]]
    if (prior and prior ~= 'none') or (not prior and redis.call('EXISTS', KEYS[i]) == 1) then
      return refuse(i)
    end
  end
  local have = planned[KEYS[i]] or redis.call('TYPE', KEYS[i]).ok
  if want ~= 'none' and have ~= 'none' and have ~= want then return redis.error_reply(KEYS[i] .. ' holds a ' .. have) end
  if op == 'N' then
    local held = redis.call('GET', KEYS[i])
    if held and held ~= ARGV[3 * i - 8] then
      return refuse(i)
    end
  end
  planned[KEYS[i]] = want
end
for i = 5, #KEYS do
  local op, a, b = ARGV[3 * i - 9], ARGV[3 * i - 8], ARGV[3 * i - 7]
  if op == 'S' or op == 'N' or op == 'C' then redis.call('SET', KEYS[i], a)
  elseif op == 'A' then redis.call('SADD', KEYS[i], a)
  elseif op == 'X' then redis.call('SREM', KEYS[i], a)
  elseif op == 'D' then redis.call('DEL', KEYS[i])
  elseif op == 'Z' then redis.call('ZADD', KEYS[i], a, b)
  else redis.call('ZREM', KEYS[i], a) end
end
if ARGV[2] ~= '0' and not (ARGV[3] == '1' and redis.call('EXISTS', KEYS[3]) == 1) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 2
end
redis.call('DEL', KEYS[1])
redis.call('RPUSH', KEYS[2], 1)
redis.call('LTRIM', KEYS[2], -1, -1)
return 1
";

/// Where the ledger's Redis is: one server, or a Redis Cluster.
enum Endpoint {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// One connection: to a single Redis, or to a Redis Cluster (each command routed to the node
/// that holds its key's slot).
enum Link {
    Single(Connection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        match self {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> redis::RedisResult<Vec<redis::Value>> {
        match self {
            Link::Single(c) => c.req_packed_commands(cmd, offset, count),
            Link::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        match self {
            Link::Single(c) => c.req_command(cmd),
            Link::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Link::Single(c) => c.check_connection(),
            Link::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Link::Single(c) => c.is_open(),
            Link::Cluster(c) => c.is_open(),
        }
    }
}

impl Link {
    /// Sends `writes`, which may fall in different Cluster slots, in order and not atomically,
    /// one command after another (a cluster connection does not pipeline).
    fn send_in_order(&mut self, writes: Vec<Write>) -> GatewayResult<()> {
        for write in writes {
            if let Write::SetOnce(key, value) = &write {
                let set: Option<String> = command(Write::SetOnce(key.clone(), value.clone())).query(&mut *self).map_err(redis_error)?;
                if set.is_none() {
                    let held: Option<String> = redis::cmd("GET").arg(key).query(&mut *self).map_err(redis_error)?;
                    if held.as_deref() != Some(value.as_str()) {
                        return Err(GatewayError::internal(format!("redis: `{key}` is taken")));
                    }
                }
                continue;
            }
            if let Write::Create(key, _) = &write {
                let key = key.clone();
                let set: Option<String> = command(write).query(&mut *self).map_err(redis_error)?;
                if set.is_none() {
                    return Err(GatewayError::internal(format!("redis: `{key}` exists")));
                }
                continue;
            }
            command(write).exec(&mut *self).map_err(redis_error)?;
        }
        Ok(())
    }
}

/// The URL scheme of a Redis Cluster: `redis+cluster://HOST:PORT[,HOST:PORT...]`, the nodes
/// to discover the cluster from.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// The ledger on a Redis (or Redis Cluster) under a key prefix.
pub struct RedisLedger {
    endpoint: Endpoint,
    /// The URL it was opened with, its password (if any) hidden, for logs.
    shown_url: String,
    prefix: String,
    /// Idle connections, reused (an operation holds one for its whole unit of work).
    idle: Mutex<Vec<Link>>,
    /// This process's gate of each tenant it has served, by tenant tag (lock handoff).
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    /// How many attempts started under a lock handed on by the operation before.
    handed_on: AtomicU64,
    /// How long an operation waits for its tenant (at this process's gate, then for the Redis
    /// lock) before it is refused.
    lock_wait: Duration,
    acquire: redis::Script,
    commit: redis::Script,
}

/// One tenant's operations in this process pass through its gate one at a time, in the order
/// they arrived; the one inside may find the tenant's Redis lock still held from the
/// operation before it (module docs).
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    /// An operation is inside.
    busy: bool,
    /// The operations waiting to enter, first come first served: a ticket and the thread.
    queue: VecDeque<(u64, Thread)>,
    /// The ticket let in by the operation that left, not yet seen by its thread.
    admitted: Option<u64>,
    next_ticket: u64,
    /// The lock kept for the next operation, if the last one handed it on.
    held: Option<Held>,
}

impl Gate {
    /// Waits for this thread's turn until `deadline` (`None`: the deadline passed first, and
    /// this thread left the queue); the turn passes on when the [`Turn`] is dropped.
    fn enter(&self, deadline: Instant) -> Option<Turn<'_>> {
        let mut state = self.state();
        if !state.busy {
            state.busy = true;
            return Some(Turn { gate: self });
        }
        let ticket = state.next_ticket;
        state.next_ticket = state.next_ticket.wrapping_add(1);
        state.queue.push_back((ticket, std::thread::current()));
        loop {
            drop(state);
            std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
            state = self.state();
            if state.admitted == Some(ticket) {
                state.admitted = None;
                return Some(Turn { gate: self });
            }
            if Instant::now() >= deadline {
                // still queued (an admitted ticket is taken above): leave the queue
                state.queue.retain(|(queued, _)| *queued != ticket);
                return None;
            }
        }
    }

    /// The state; a thread that panicked inside leaves it consistent (every change is one
    /// assignment), so a poisoned lock is used as it is.
    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An operation's turn at its tenant's gate.
struct Turn<'a> {
    gate: &'a Gate,
}

impl Turn<'_> {
    /// Whether another operation of this process waits to enter.
    fn others_waiting(&self) -> bool {
        !self.gate.state().queue.is_empty()
    }

    /// The lock the operation before left for this one, if any.
    fn take_held(&self) -> Option<Held> {
        self.gate.state().held.take()
    }

    /// Leaves `held` for the next operation.
    fn hand_on(&self, held: Held) {
        self.gate.state().held = Some(held);
    }
}

impl Drop for Turn<'_> {
    /// Lets the next waiting operation in, or opens the gate.
    fn drop(&mut self) {
        let mut state = self.gate.state();
        match state.queue.pop_front() {
            Some((ticket, thread)) => {
                state.admitted = Some(ticket);
                thread.unpark();
            }
            None => state.busy = false,
        }
    }
}

/// A tenant's lock kept between two operations of this process (lock handoff).
struct Held {
    lock: TenantLock,
    connection: Link,
    /// The tenant's string keys as the operations under this holding read or wrote them: no
    /// other gateway can have written them since, as the lock was held throughout.
    cache: BTreeMap<String, Option<String>>,
    /// Operations committed under this holding.
    served: u32,
    /// When the lease was last renewed, or earlier: measured before the renewing commit was
    /// sent, so the lease lasts at least until `renewed` plus the lease.
    renewed: Instant,
}

/// `P:{T}`, the start of every key of tenant `T` (the hash tag puts them in one Cluster slot);
/// a tenant id that could break out of its hash tag is refused.
fn tenant_tag(prefix: &str, tenant: &str) -> GatewayResult<String> {
    if tenant.is_empty() || tenant.contains(['{', '}']) {
        // `{}` is no hash tag: the tenant's keys would scatter over Cluster slots
        return Err(GatewayError::invalid(format!("tenant id `{tenant}` cannot be stored: it is empty or contains a brace")));
    }
    Ok(format!("{prefix}:{{{tenant}}}"))
}

fn redis_error(e: redis::RedisError) -> GatewayError {
    GatewayError::internal(format!("redis: {e}"))
}

fn json_error(e: serde_json::Error) -> GatewayError {
    GatewayError::internal(format!("redis: a stored value is not the expected JSON: {e}"))
}

impl RedisLedger {
    /// A ledger on the Redis at `url`, its keys under `prefix`: `redis://HOST:PORT/DB` for one
    /// server, [`CLUSTER_SCHEME`]`HOST:PORT,...` for a Redis Cluster (the nodes to start from).
    pub fn open(url: &str, prefix: &str) -> GatewayResult<Self> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(GatewayError::invalid(format!("`store_prefix` `{prefix}`: the Redis key prefix must be non-empty and free of `{{` and `}}`")));
        }
        let endpoint = match url.strip_prefix(CLUSTER_SCHEME) {
            Some(nodes) => {
                let nodes: Vec<String> = nodes.trim_end_matches('/').split(',').map(|node| format!("redis://{}/", node.trim())).collect();
                if nodes.iter().any(|node| node == "redis:///") {
                    return Err(GatewayError::invalid(format!(
                        "`store` `{}`: a Redis Cluster URL lists its nodes as HOST:PORT, separated by commas",
                        hide_password(url)
                    )));
                }
                let timeout = Duration::from_millis(COMMAND_TIMEOUT_MS);
                // no silent resends: a resent commit whose first reply was lost would answer
                // "lapsed" and rerun an operation that landed; an error fails it closed instead
                let client = ClusterClientBuilder::new(nodes).connection_timeout(timeout).response_timeout(timeout).retries(0).build();
                Endpoint::Cluster(client.map_err(redis_error)?)
            }
            None => Endpoint::Single(redis::Client::open(url).map_err(redis_error)?),
        };
        Ok(RedisLedger {
            endpoint,
            shown_url: hide_password(url),
            prefix: prefix.to_string(),
            idle: Mutex::default(),
            gates: Mutex::default(),
            handed_on: AtomicU64::new(0),
            lock_wait: Duration::from_millis(LOCK_WAIT_MS),
            acquire: redis::Script::new(ACQUIRE),
            commit: redis::Script::new(FENCED_COMMIT),
        })
    }

    /// An idle connection, or a new one with [`COMMAND_TIMEOUT_MS`] set.
    fn connection(&self) -> GatewayResult<Link> {
        if let Some(connection) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(connection);
        }
        let timeout = Duration::from_millis(COMMAND_TIMEOUT_MS);
        match &self.endpoint {
            Endpoint::Single(client) => {
                let connection = client.get_connection_with_timeout(timeout).map_err(redis_error)?;
                connection.set_read_timeout(Some(timeout)).map_err(redis_error)?;
                connection.set_write_timeout(Some(timeout)).map_err(redis_error)?;
                Ok(Link::Single(connection))
            }
            Endpoint::Cluster(client) => Ok(Link::Cluster(client.get_connection().map_err(redis_error)?)),
        }
    }

    /// Runs one command outside any operation (for tests and tools that inspect the keys).
    #[cfg(test)]
    pub(crate) fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let mut connection = self.connection().expect("a Redis connection");
        command.query(&mut connection).expect("the Redis command")
    }

    /// Runs one command outside any unit of work.
    fn command<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> GatewayResult<T> {
        let mut connection = self.connection()?;
        let value = command.query(&mut connection).map_err(redis_error)?;
        self.reuse(connection);
        Ok(value)
    }

    /// Checks that Redis answers (`PING`).
    pub fn ping(&self) -> GatewayResult<()> {
        let pong: String = self.command(&redis::cmd("PING"))?;
        if pong == "PONG" { Ok(()) } else { Err(GatewayError::internal(format!("redis: PING answered `{pong}`"))) }
    }

    /// The gateway setting `name` (`P:setting:NAME`, outside any tenant), if set.
    pub fn setting(&self, name: &str) -> GatewayResult<Option<String>> {
        self.command(redis::cmd("GET").arg(format!("{}:setting:{name}", self.prefix)))
    }

    /// Sets the gateway setting `name`.
    pub fn set_setting(&self, name: &str, value: &str) -> GatewayResult<()> {
        self.command(redis::cmd("SET").arg(format!("{}:setting:{name}", self.prefix)).arg(value))
    }

    /// Sets the gateway setting `name` unless it is set already (`SET NX`), so gateways that
    /// start at once agree on one value; answers the value it holds afterwards.
    pub fn claim_setting(&self, name: &str, value: &str) -> GatewayResult<String> {
        let key = format!("{}:setting:{name}", self.prefix);
        let _: Option<String> = self.command(redis::cmd("SET").arg(&key).arg(value).arg("NX"))?;
        self.command::<Option<String>>(redis::cmd("GET").arg(&key))?
            .ok_or_else(|| GatewayError::internal(format!("redis: the setting `{name}` was claimed but is not stored")))
    }

    /// Removes the gateway setting `name` if it still holds `value` (a claim undone, in one
    /// script); answers whether it did.
    pub fn unclaim_setting(&self, name: &str, value: &str) -> GatewayResult<bool> {
        self.delete_if_holds(&format!("{}:setting:{name}", self.prefix), value)
    }

    /// Gives `key` `ms` more milliseconds to live if it still holds `value` (a claim renewed
    /// by its holder, in one script); answers whether it did.
    fn extend_if_holds(&self, key: &str, value: &str, ms: u64) -> GatewayResult<bool> {
        let script = redis::Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end");
        let mut connection = self.connection()?;
        let extended: i64 = script.key(key).arg(value).arg(ms).invoke(&mut connection).map_err(redis_error)?;
        self.reuse(connection);
        Ok(extended == 1)
    }

    /// Deletes `key` if it still holds `value` (a claim ended by its holder, in one script);
    /// answers whether it did.
    fn delete_if_holds(&self, key: &str, value: &str) -> GatewayResult<bool> {
        let script = redis::Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end");
        let mut connection = self.connection()?;
        let removed: i64 = script.key(key).arg(value).invoke(&mut connection).map_err(redis_error)?;
        self.reuse(connection);
        Ok(removed == 1)
    }

    /// Where the state is, for logs: the URL (its password hidden) and the key prefix.
    pub fn describe(&self) -> String {
        format!("{} (key prefix `{}`)", self.shown_url, self.prefix)
    }

    /// Keeps a connection that ended its operation cleanly.
    fn reuse(&self, connection: Link) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_CONNECTIONS
        {
            idle.push(connection);
        }
    }

    /// The same ledger with operations waiting at most `wait` for their tenant (at this
    /// process's gate, then for the Redis lock) instead of [`LOCK_WAIT_MS`].
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// How many attempts so far started under a lock that the operation before handed on
    /// (lock handoff, module docs), for measurements.
    pub fn handed_on(&self) -> u64 {
        self.handed_on.load(Ordering::Relaxed)
    }

    /// How many operations of this process wait at `tenant`'s gate.
    #[cfg(test)]
    pub(super) fn waiting(&self, tenant: &str) -> usize {
        let tag = tenant_tag(&self.prefix, tenant).expect("a valid tenant");
        self.gate(&tag).state().queue.len()
    }

    /// This process's gate of the tenant tagged `tag`.
    fn gate(&self, tag: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        // the common case, a tenant already served, without allocating its key
        if let Some(gate) = gates.get(tag) {
            return Arc::clone(gate);
        }
        Arc::clone(gates.entry(tag.to_string()).or_default())
    }

    /// Runs `op`, an operation on `tenant`'s state (everything a [`Tx`] reads and writes), as
    /// one atomic unit of work (module docs), holding the tenant's lock; runs it again if the
    /// lock lapsed before it could commit.
    pub fn run<T>(&self, tenant: &str, op: impl FnMut(&dyn Tx) -> GatewayResult<T>) -> GatewayResult<T> {
        Ok(self.run_sealed(tenant, op)?.0)
    }

    /// Like [`RedisLedger::run`], and also answers the seal that signs the trace events the
    /// operation appended (`None` when it appended none): what a receipt is made from.
    pub fn run_sealed<T>(&self, tenant: &str, op: impl FnMut(&dyn Tx) -> GatewayResult<T>) -> GatewayResult<(T, Option<Arc<Seal>>)> {
        self.run_inner(tenant, op, |_| ())
    }

    /// Like [`RedisLedger::run`], and once the operation has committed, runs `after` with its
    /// answer before the next operation of this process on `tenant` may start: in-memory state
    /// that `after` changes follows this process's commits on the tenant in order (as
    /// [`crate::store::Store::run_then`] does on SQLite). Not run when the operation fails.
    pub fn run_then<T>(&self, tenant: &str, op: impl FnMut(&dyn Tx) -> GatewayResult<T>, after: impl FnOnce(&T)) -> GatewayResult<T> {
        Ok(self.run_inner(tenant, op, after)?.0)
    }

    /// [`RedisLedger::run_sealed`], with `after` run once the operation has committed and while
    /// this process's turn on the tenant is still held.
    fn run_inner<T>(
        &self,
        tenant: &str,
        mut op: impl FnMut(&dyn Tx) -> GatewayResult<T>,
        after: impl FnOnce(&T),
    ) -> GatewayResult<(T, Option<Arc<Seal>>)> {
        let tag = tenant_tag(&self.prefix, tenant)?;
        let deadline = Instant::now() + self.lock_wait;
        let gate = self.gate(&tag);
        let turn = gate.enter(deadline).ok_or_else(|| {
            GatewayError::internal(format!(
                "redis: tenant `{tenant}`'s operations in this gateway queued longer than an operation may wait; it was not applied"
            ))
        })?;
        let mut held = turn.take_held();
        if let Some(stale) = held.take_if(|h| h.renewed.elapsed() >= HANDOFF_WITHIN) {
            let Held { lock, mut connection, .. } = stale;
            if lock.release(&self.commit, &mut connection).is_ok() {
                self.reuse(connection);
            }
        }
        for attempt in 0..MAX_ATTEMPTS {
            // a Redis error below drops the connection (its lock, if taken, lapses)
            let (lock, mut connection, cache, served) = match held.take() {
                Some(Held { lock, connection, cache, served, .. }) => {
                    self.handed_on.fetch_add(1, Ordering::Relaxed);
                    (lock, connection, cache, served)
                }
                None => {
                    let mut connection = self.connection()?;
                    let lock = TenantLock::acquire(&self.acquire, &mut connection, &tag, tenant, deadline)?;
                    let cache = BTreeMap::from([(lock.tenant_key.clone(), lock.tenant_record.clone())]);
                    (lock, connection, cache, 0)
                }
            };
            let handed_on = served > 0;
            let tx = Transaction::new(&mut connection, &self.prefix, tenant, &tag, cache);
            match op(&tx) {
                Ok(value) => {
                    // hand the lock on only to an operation already waiting, and not forever
                    let served = served + 1;
                    let keep = if !turn.others_waiting() || served >= MAX_HANDOFFS {
                        Keep::Release
                    } else if served >= HANDOFFS_BEFORE_YIELD {
                        Keep::UnlessContended
                    } else {
                        Keep::Always
                    };
                    let renewed = Instant::now();
                    match tx.commit(&self.commit, &lock, keep)? {
                        Commit::Landed(Committed { kept: true, cache, seal }) => {
                            after(&value);
                            turn.hand_on(Held { lock, connection, cache, served, renewed });
                            return Ok((value, seal));
                        }
                        Commit::Landed(Committed { kept: false, seal, .. }) => {
                            after(&value);
                            self.reuse(connection);
                            return Ok((value, seal));
                        }
                        Commit::Lapsed => backoff(attempt),
                        Commit::Refused(e) => {
                            // the lock is released; an operation that ran on a handed-on
                            // cache is decided again under a lock taken for it, as a refusal
                            // inside the operation is
                            drop(connection);
                            if handed_on {
                                continue;
                            }
                            return Err(e);
                        }
                    }
                }
                Err(e) => {
                    drop(tx);
                    if lock.release(&self.commit, &mut connection).is_ok() {
                        self.reuse(connection);
                    }
                    if handed_on {
                        // decide the refusal again on data read under a lock taken for it
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        Err(GatewayError::internal(format!(
            "redis: tenant `{tenant}`'s lock lapsed before the operation could commit, {MAX_ATTEMPTS} times; nothing was applied"
        )))
    }

    /// Runs the read-only `op` on the store as it stands, without `tenant`'s lock: each key it
    /// reads is as the last commit left it, but two reads may straddle another commit. For
    /// lookups of one record (an API key by its hash), never for a view that must be one state.
    /// Whatever `op` writes is dropped.
    pub fn peek<T>(&self, tenant: &str, op: impl FnOnce(&dyn Tx) -> GatewayResult<T>) -> GatewayResult<T> {
        let tag = tenant_tag(&self.prefix, tenant)?;
        let mut connection = self.connection()?;
        let value = {
            let tx = Transaction::new(&mut connection, &self.prefix, tenant, &tag, BTreeMap::new());
            op(&tx)
        };
        // a Redis error may leave the connection mid-reply: only a clean one is reused
        if value.is_ok() {
            self.reuse(connection);
        }
        value
    }

    /// The expiry sweeper on Redis: [`crate::ledger::sweep_expired`] for each tenant that holds
    /// reservations, each under its own tenant's lock (so the sweep is safe with several
    /// gateways sweeping at once, and each tenant's keys stay in its Cluster slot). Returns how
    /// many reservations expired, at most `max` per tenant; a tenant that fails does not stop
    /// the others, and the first failure is returned after all were tried.
    pub fn sweep_expired(&self, now: i64, max: usize) -> GatewayResult<usize> {
        let tenants: Vec<String> = {
            let mut connection = self.connection()?;
            let tenants = connection.smembers(format!("{}:tenants", self.prefix)).map_err(redis_error)?;
            self.reuse(connection);
            tenants
        };
        let (mut expired, mut first_error) = (0usize, None);
        for tenant in tenants {
            // a tenant with nothing due is not locked; one that fails does not stop the others
            let due = || -> GatewayResult<bool> {
                let mut connection = self.connection()?;
                let key = format!("{}:rsv:expiry", tenant_tag(&self.prefix, &tenant)?);
                let due: u64 = redis::cmd("ZCOUNT").arg(key).arg("-inf").arg(format!("({now}")).query(&mut connection).map_err(redis_error)?;
                self.reuse(connection);
                Ok(due > 0)
            };
            match due().and_then(|due| if due { self.run(&tenant, |s| crate::ledger::sweep_expired(s, now, max)) } else { Ok(0) }) {
                Ok(n) => expired = expired.saturating_add(n),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(expired), Err)
    }
}

/// `url` with the password of its user part (`redis://user:PASSWORD@host`) replaced by `***`.
pub(crate) fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    match rest.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_string(),
    }
}

/// A tenant's lock, held by one attempt: `P:{T}:lock` holds the attempt's random token.
struct TenantLock {
    key: String,
    /// `P:{T}:lock:wake`, the list a release pushes to and waiters block on.
    wake: String,
    /// `P:{T}:lock:contended`, set while another gateway waits for the lock.
    contended: String,
    /// `P:{T}:tenant`, the tenant record.
    tenant_key: String,
    token: String,
    /// The tenant record as the lock was taken (`None`: no record).
    tenant_record: Option<String>,
}

impl TenantLock {
    /// Takes the lock, waiting for it until `deadline` at most.
    fn acquire(script: &redis::Script, connection: &mut Link, tag: &str, tenant: &str, deadline: Instant) -> GatewayResult<TenantLock> {
        let key = format!("{tag}:lock");
        let wake = format!("{key}:wake");
        let contended = format!("{key}:contended");
        let record = format!("{tag}:tenant");
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| GatewayError::internal(format!("no randomness for a lock token: {e}")))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        loop {
            let answer: Vec<String> = script
                .key(&key)
                .key(&record)
                .key(&contended)
                .arg(&token)
                .arg(LOCK_LEASE_MS)
                .arg(CONTENDED_MARK_MS)
                .invoke(connection)
                .map_err(redis_error)?;
            if answer.first().is_some_and(|taken| taken == "1") {
                let tenant_record = answer.into_iter().nth(1);
                return Ok(TenantLock { key, wake, contended, tenant_key: record, token, tenant_record });
            }
            if Instant::now() >= deadline {
                return Err(GatewayError::internal(format!(
                    "redis: tenant `{tenant}`'s ledger stayed locked longer than the operation may wait; it was not applied"
                )));
            }
            let _woken: Option<(String, String)> =
                redis::cmd("BLPOP").arg(&wake).arg(LOCK_POLL_S).query(connection).map_err(redis_error)?;
        }
    }

    /// Releases the lock if it is still this holder's, writing nothing (the fenced commit with
    /// no writes).
    fn release(&self, script: &redis::Script, connection: &mut Link) -> GatewayResult<()> {
        let _released: i64 = script
            .key(&self.key)
            .key(&self.wake)
            .key(&self.contended)
            .key(&self.tenant_key)
            .arg(&self.token)
            .arg(0)
            .arg(0)
            .arg("-")
            .arg("")
            .invoke(connection)
            .map_err(redis_error)?;
        Ok(())
    }
}

/// After a lapsed lock: a random pause of up to 50 us times 2^attempt, at most 10 ms (full
/// jitter).
fn backoff(attempt: usize) {
    let ceiling_us = 50u64.saturating_mul(1 << attempt.min(8)).min(10_000);
    let mut bytes = [0u8; 8];
    // without randomness, the full ceiling (still bounded)
    let draw = getrandom::fill(&mut bytes).map_or(u64::MAX, |()| u64::from_le_bytes(bytes));
    std::thread::sleep(Duration::from_micros(draw % (ceiling_us + 1)));
}

/// Whether `member` lies between the lex bounds `min` and `max` (as `ZRANGEBYLEX` reads them).
fn lex_within(member: &str, min: &str, max: &str) -> bool {
    let above = match min.split_at_checked(1) {
        Some(("[", x)) => member >= x,
        Some(("(", x)) => member > x,
        _ => true,
    };
    let below = match max.split_at_checked(1) {
        Some(("[", x)) => member <= x,
        Some(("(", x)) => member < x,
        _ => true,
    };
    above && below
}

/// A buffered write.
enum Write {
    Set(String, String),
    /// SET of a write-once key: refused (the whole commit) if it holds another value.
    SetOnce(String, String),
    /// SET of a new record's key: refused (the whole commit, which releases the lock) if the
    /// key exists. Checked by the commit script rather than read first: a record made under a
    /// fresh id costs no round trip of its own.
    Create(String, String),
    SetAdd(String, String),
    SetRemove(String, String),
    SortedAdd(String, i64, String),
    SortedRemove(String, String),
    Delete(String),
}

impl Write {
    fn key(&self) -> &str {
        match self {
            Write::Set(key, _)
            | Write::SetOnce(key, _)
            | Write::Create(key, _)
            | Write::SetAdd(key, _)
            | Write::SetRemove(key, _)
            | Write::SortedAdd(key, _, _)
            | Write::SortedRemove(key, _)
            | Write::Delete(key) => key,
        }
    }
}

/// What a commit asks of the lock once its writes landed.
#[derive(Clone, Copy)]
enum Keep {
    /// Release it (and wake a waiter).
    Release,
    /// Keep it for this process's next operation, unless another gateway waits for it.
    UnlessContended,
    /// Keep it for this process's next operation.
    Always,
}

/// How a commit ended.
enum Commit {
    /// Its writes landed.
    Landed(Committed),
    /// The lock had lapsed: nothing was applied.
    Lapsed,
    /// A write was refused (a new record's key that exists, a write-once key that holds
    /// another value): none of the operation's writes was applied and the lock was released.
    Refused(GatewayError),
}

/// A commit whose writes landed.
struct Committed {
    /// Whether the lock was kept for this process's next operation.
    kept: bool,
    /// The locked tenant's string keys as the attempt read and wrote them.
    cache: BTreeMap<String, Option<String>>,
    /// The seal signing the trace events the attempt appended, written in its commit.
    seal: Option<Arc<Seal>>,
}

/// The trace leaves an attempt appended, sealed at its commit ([`rows`]: the key layout).
struct TraceBatch {
    /// Taken from the global counter at the first leaf (a lapsed attempt leaves a gap).
    seal_id: i64,
    signer: sbd_bundle::KeyPair,
    leaves: Vec<[u8; 32]>,
}

/// One attempt of one operation, under its tenant's lock.
struct Transaction<'a> {
    connection: RefCell<&'a mut Link>,
    prefix: &'a str,
    /// The locked tenant.
    tenant: &'a str,
    /// `P:{T}` of the locked tenant: the only keys this attempt may write.
    tag: &'a str,
    /// What this attempt has read (`None`: the key did not exist), by key; the lock keeps it
    /// current until the commit.
    read: RefCell<BTreeMap<String, Option<String>>>,
    /// What this attempt has written, by key (read back by its own reads).
    written: RefCell<BTreeMap<String, String>>,
    /// String keys this attempt has deleted (read back as missing).
    deleted: RefCell<BTreeSet<String>>,
    /// Members this attempt has added to sets and sorted sets, by key.
    added: RefCell<BTreeMap<String, BTreeSet<String>>>,
    /// Members this attempt has removed from sorted sets, by key.
    removed: RefCell<BTreeMap<String, BTreeSet<String>>>,
    writes: RefCell<Vec<Write>>,
    /// Cross-tenant index entries, written before the commit (module docs).
    indexes: RefCell<Vec<Write>>,
    /// A write outside the locked tenant, refused at the commit.
    stray: RefCell<Option<String>>,
    /// The trace events' leaves appended so far, sealed at the commit.
    trace: RefCell<Option<TraceBatch>>,
}

impl<'a> Transaction<'a> {
    /// An attempt that starts from `cache`, what is known of the tenant's keys under the lock
    /// (at least its tenant record).
    fn new(connection: &'a mut Link, prefix: &'a str, tenant: &'a str, tag: &'a str, cache: BTreeMap<String, Option<String>>) -> Self {
        Transaction {
            connection: RefCell::new(connection),
            prefix,
            tenant,
            tag,
            read: RefCell::new(cache),
            written: RefCell::default(),
            deleted: RefCell::default(),
            added: RefCell::default(),
            removed: RefCell::default(),
            writes: RefCell::default(),
            indexes: RefCell::default(),
            stray: RefCell::default(),
            trace: RefCell::default(),
        }
    }

    /// `P:{T}:rest`.
    fn key(&self, tenant: &str, rest: &str) -> GatewayResult<String> {
        Ok(format!("{}:{rest}", tenant_tag(self.prefix, tenant)?))
    }

    /// Buffers `write`, remembering it if it falls outside the locked tenant.
    fn push(&self, write: Write) {
        let inside = write.key().strip_prefix(self.tag).is_some_and(|rest| rest.starts_with(':'));
        if !inside {
            self.stray.borrow_mut().get_or_insert_with(|| write.key().to_string());
        }
        self.writes.borrow_mut().push(write);
    }

    /// GET through this attempt's own writes and reads.
    fn get(&self, key: &str) -> GatewayResult<Option<String>> {
        if self.deleted.borrow().contains(key) {
            return Ok(None);
        }
        if let Some(value) = self.written.borrow().get(key) {
            return Ok(Some(value.clone()));
        }
        if let Some(value) = self.read.borrow().get(key) {
            return Ok(value.clone());
        }
        let value: Option<String> = self.connection.borrow_mut().get(key).map_err(redis_error)?;
        self.read.borrow_mut().insert(key.to_string(), value.clone());
        Ok(value)
    }

    /// Reads those of `keys` this attempt has not read or written, in one round trip.
    fn prefetch(&self, keys: &[String]) -> GatewayResult<()> {
        let missing: Vec<&String> = {
            let (read, written, deleted) = (self.read.borrow(), self.written.borrow(), self.deleted.borrow());
            keys.iter().filter(|k| !read.contains_key(*k) && !written.contains_key(*k) && !deleted.contains(*k)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&missing).query(&mut **self.connection.borrow_mut()).map_err(redis_error)?;
        if values.len() != missing.len() {
            return Err(GatewayError::internal("redis: MGET answered a different number of values"));
        }
        self.read.borrow_mut().extend(missing.into_iter().cloned().zip(values));
        Ok(())
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> GatewayResult<Option<T>> {
        self.get(key)?.map(|s| serde_json::from_str(&s).map_err(json_error)).transpose()
    }

    fn set_json<T: serde::Serialize>(&self, key: String, value: &T) -> GatewayResult<()> {
        let text = serde_json::to_string(value).map_err(json_error)?;
        self.set_string(key, text);
        Ok(())
    }

    /// Buffers `SET key value`, read back by this attempt's own later reads.
    fn set_string(&self, key: String, value: String) {
        self.deleted.borrow_mut().remove(&key);
        self.written.borrow_mut().insert(key.clone(), value.clone());
        self.push(Write::Set(key, value));
    }

    /// The members of a set or sorted set (in no particular order) through this attempt's own
    /// changes.
    fn members(&self, key: &str, sorted: bool) -> GatewayResult<BTreeSet<String>> {
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
        self.push(write);
    }

    /// Buffers `ZREM key member`, seen by this attempt's own later reads.
    fn remove_member(&self, key: String, member: String) {
        self.forget_member(&key, &member);
        self.push(Write::SortedRemove(key, member));
    }

    /// Buffers `SREM key member`, seen by this attempt's own later reads.
    fn remove_set_member(&self, key: String, member: String) {
        self.forget_member(&key, &member);
        self.push(Write::SetRemove(key, member));
    }

    fn forget_member(&self, key: &str, member: &str) {
        if let Some(added) = self.added.borrow_mut().get_mut(key) {
            added.remove(member);
        }
        self.removed.borrow_mut().entry(key.to_string()).or_default().insert(member.to_string());
    }

    /// Buffers `DEL key` of a string key, read back as missing by this attempt's own reads.
    fn delete(&self, key: String) {
        self.written.borrow_mut().remove(&key);
        self.deleted.borrow_mut().insert(key.clone());
        self.push(Write::Delete(key));
    }

    /// Up to `count` members of a sorted set whose members all score 0 (so they are ordered by
    /// their bytes) between the lex bounds `min` and `max` (`[x` inclusive, `(x` exclusive,
    /// `-` and `+` open), ascending or, with `rev`, descending, through this attempt's own
    /// changes.
    fn lex_range(&self, key: &str, min: &str, max: &str, rev: bool, count: usize) -> GatewayResult<Vec<String>> {
        let removed: BTreeSet<String> = self.removed.borrow().get(key).cloned().unwrap_or_default();
        // enough that, with this attempt's removals left out, `count` remain when there are
        let want = count.saturating_add(removed.len());
        let mut command = if rev { redis::cmd("ZREVRANGEBYLEX") } else { redis::cmd("ZRANGEBYLEX") };
        if rev {
            command.arg(key).arg(max).arg(min);
        } else {
            command.arg(key).arg(min).arg(max);
        }
        // a count Redis cannot take means all of them (a negative count)
        command.arg("LIMIT").arg(0).arg(i64::try_from(want).unwrap_or(-1));
        let stored: Vec<String> = command.query(&mut **self.connection.borrow_mut()).map_err(redis_error)?;
        let mut members: BTreeSet<String> = stored.into_iter().filter(|m| !removed.contains(m)).collect();
        // an added member past the last one read is cut below, as an unread stored one would be
        members.extend(self.added.borrow().get(key).into_iter().flatten().filter(|m| lex_within(m, min, max)).cloned());
        let mut out: Vec<String> = if rev { members.into_iter().rev().collect() } else { members.into_iter().collect() };
        out.truncate(count);
        Ok(out)
    }

    /// Buffers the new record `value` under `key`, which must not exist: refused at once if
    /// this attempt knows the key holds something (its own writes, its reads, a handed-on
    /// cache), else by the commit script, without a read of its own.
    fn create_json<T: serde::Serialize>(&self, key: String, value: &T) -> GatewayResult<()> {
        let known = !self.deleted.borrow().contains(&key)
            && (self.written.borrow().contains_key(&key) || matches!(self.read.borrow().get(&key), Some(Some(_))));
        if known {
            return Err(GatewayError::internal(format!("redis: `{key}` exists")));
        }
        let text = serde_json::to_string(value).map_err(json_error)?;
        self.deleted.borrow_mut().remove(&key);
        self.written.borrow_mut().insert(key.clone(), text.clone());
        self.push(Write::Create(key, text));
        Ok(())
    }

    /// An insert's primary-key check: the key must not exist.
    fn refuse_existing(&self, key: &str) -> GatewayResult<()> {
        match self.get(key)? {
            Some(_) => Err(GatewayError::internal(format!("redis: `{key}` exists"))),
            None => Ok(()),
        }
    }

    fn budget_key(&self, tenant: &str, scope: &str, unit: Unit) -> GatewayResult<String> {
        self.key(tenant, &format!("budget:{}:{scope}", unit.as_str()))
    }

    fn reservation_key(&self, tenant: &str, id: &str) -> GatewayResult<String> {
        self.key(tenant, &format!("rsv:id:{id}"))
    }

    fn stored_reservation(&self, id: &str) -> GatewayResult<Option<Reservation>> {
        // most lookups are of the locked tenant's own reservations: one read, no index
        if let Some(own) = self.get_json(&self.reservation_key(self.tenant, id)?)? {
            return Ok(Some(own));
        }
        let index = format!("{}:rsv-tenant:{id}", self.prefix);
        let pending = self.indexes.borrow().iter().find_map(|w| match w {
            Write::Set(key, tenant) if *key == index => Some(tenant.clone()),
            _ => None,
        });
        let tenant: Option<String> = match pending {
            Some(tenant) => Some(tenant),
            // written once, before the reservation, and never changed
            None => self.connection.borrow_mut().get(&index).map_err(redis_error)?,
        };
        match tenant {
            Some(tenant) => self.get_json(&self.reservation_key(&tenant, id)?),
            None => Ok(None),
        }
    }

    /// Writes the cross-tenant index entries, then runs the fenced commit (module docs). When
    /// every write landed it answers what this attempt read and wrote of its tenant's string
    /// keys, and whether the lock was kept for the next operation (as `keep` asks) or
    /// released; it answers `None` when the lock had lapsed and nothing was applied. An attempt
    /// that wrote outside its tenant is refused instead, and releases the lock.
    fn commit(self, script: &redis::Script, lock: &TenantLock, keep: Keep) -> GatewayResult<Commit> {
        let connection = self.connection.into_inner();
        if let Some(key) = self.stray.into_inner() {
            lock.release(script, connection)?;
            return Err(GatewayError::internal(format!(
                "redis: an operation under `{}`'s lock tried to write `{key}`, outside that tenant; nothing was applied",
                self.tenant
            )));
        }
        let mut writes = self.writes.into_inner();
        let mut written = self.written.into_inner();
        // the seal signs this attempt's trace leaves and lands in the same script, in the slot;
        // it is remembered as written too, so an operation handed the lock (and this attempt's
        // cache, which saw the seal's key empty) reads it
        let seal = match self.trace.into_inner() {
            Some(batch) if !batch.leaves.is_empty() => {
                let seal = Seal::sign(batch.seal_id, &batch.signer, batch.leaves)?;
                let stored = rows::StoredSeal::of(&seal);
                let text = serde_json::to_string(&stored).map_err(json_error)?;
                let key = format!("{}:seal:{}", self.tag, seal.record.seal_id);
                writes.push(Write::Set(key.clone(), text.clone()));
                written.insert(key, text);
                Some(Arc::new(seal))
            }
            _ => None,
        };
        let index_writes = self.indexes.into_inner();
        match &*connection {
            // one server: the index entries land in the commit's own script, with its checks
            Link::Single(_) => writes.splice(0..0, index_writes).for_each(drop),
            // a Cluster: they fall in other slots, so they go first, one by one (module docs)
            Link::Cluster(_) if !index_writes.is_empty() => {
                if let Err(refused) = connection.send_in_order(index_writes) {
                    // an index entry that names another tenant, or a connection that failed:
                    // the operation's own writes were not sent
                    lock.release(script, connection)?;
                    return Ok(Commit::Refused(refused));
                }
            }
            Link::Cluster(_) => {}
        }
        let mut invocation = script.prepare_invoke();
        invocation.key(&lock.key).key(&lock.wake).key(&lock.contended).key(&lock.tenant_key).arg(&lock.token);
        match keep {
            Keep::Release => invocation.arg(0).arg(0),
            Keep::UnlessContended => invocation.arg(LOCK_LEASE_MS).arg(1),
            Keep::Always => invocation.arg(LOCK_LEASE_MS).arg(0),
        };
        // the tenant record as this attempt read it, which provisioning may have changed since
        match self.read.borrow().get(&lock.tenant_key) {
            Some(Some(record)) => invocation.arg(1).arg(record),
            Some(None) => invocation.arg(0).arg(""),
            None => invocation.arg("-").arg(""),
        };
        // the keys written, in order, to name one the script refuses
        let mut written_keys = Vec::with_capacity(writes.len());
        for write in writes {
            written_keys.push(write.key().to_string());
            match write {
                Write::Set(key, value) => invocation.key(key).arg("S").arg(value).arg(""),
                Write::SetOnce(key, value) => invocation.key(key).arg("N").arg(value).arg(""),
                Write::Create(key, value) => invocation.key(key).arg("C").arg(value).arg(""),
                Write::SetAdd(key, member) => invocation.key(key).arg("A").arg(member).arg(""),
                Write::SortedAdd(key, score, member) => invocation.key(key).arg("Z").arg(score).arg(member),
                Write::SortedRemove(key, member) => invocation.key(key).arg("R").arg(member).arg(""),
                Write::SetRemove(key, member) => invocation.key(key).arg("X").arg(member).arg(""),
                Write::Delete(key) => invocation.key(key).arg("D").arg("").arg(""),
            };
        }
        let applied: i64 = invocation
            .invoke(connection)
            .map_err(|e| GatewayError::internal(format!("redis: the commit failed, or its outcome is unknown: {e}")))?;
        if applied == 0 {
            return Ok(Commit::Lapsed);
        }
        if applied < 0 {
            // the script released the lock and wrote nothing
            let key = usize::try_from(-applied).ok().and_then(|i| written_keys.get(i - 1)).map_or("?", String::as_str);
            return Ok(Commit::Refused(GatewayError::internal(format!(
                "redis: `{key}` exists (a new record's key, or a write-once key holding another value); the commit applied none of the operation's writes"
            ))));
        }
        // only the locked tenant's keys: another tenant's may change while this lock is held
        let own = |key: &String| key.strip_prefix(self.tag).is_some_and(|rest| rest.starts_with(':'));
        let mut cache: BTreeMap<String, Option<String>> = self.read.into_inner().into_iter().filter(|(key, _)| own(key)).collect();
        cache.extend(written.into_iter().map(|(key, value)| (key, Some(value))));
        cache.extend(self.deleted.into_inner().into_iter().map(|key| (key, None)));
        Ok(Commit::Landed(Committed { kept: applied == 2, cache, seal }))
    }
}

/// The command that makes `write`.
fn command(write: Write) -> redis::Cmd {
    match write {
        Write::Set(key, value) => redis::cmd("SET").arg(key).arg(value).to_owned(),
        // SET NX; a key that held a value is then compared ([`Link::send_in_order`])
        Write::SetOnce(key, value) => redis::cmd("SET").arg(key).arg(value).arg("NX").to_owned(),
        // SET NX; a key that held anything is refused ([`Link::send_in_order`])
        Write::Create(key, value) => redis::cmd("SET").arg(key).arg(value).arg("NX").to_owned(),
        Write::SetAdd(key, member) => redis::cmd("SADD").arg(key).arg(member).to_owned(),
        Write::SortedAdd(key, score, member) => redis::cmd("ZADD").arg(key).arg(score).arg(member).to_owned(),
        Write::SortedRemove(key, member) => redis::cmd("ZREM").arg(key).arg(member).to_owned(),
        Write::SetRemove(key, member) => redis::cmd("SREM").arg(key).arg(member).to_owned(),
        Write::Delete(key) => redis::cmd("DEL").arg(key).to_owned(),
    }
}

impl crate::repo::UnitOfWork for Transaction<'_> {
    fn rollback(&self) -> GatewayResult<()> {
        // what was read stays true under the lock; everything buffered goes (a seal id already
        // taken is left as a gap)
        self.writes.borrow_mut().clear();
        self.written.borrow_mut().clear();
        self.deleted.borrow_mut().clear();
        self.added.borrow_mut().clear();
        self.removed.borrow_mut().clear();
        self.indexes.borrow_mut().clear();
        self.stray.borrow_mut().take();
        self.trace.borrow_mut().take();
        Ok(())
    }
}

impl LedgerStore for Transaction<'_> {
    fn tenant(&self, tenant: &str) -> GatewayResult<Option<TenantRecord>> {
        #[derive(serde::Deserialize)]
        struct Stored {
            status: String,
            #[serde(default)]
            observe: bool,
        }
        let stored: Option<Stored> = self.get_json(&self.key(tenant, "tenant")?)?;
        Ok(stored.map(|s| TenantRecord { status: s.status, observe: s.observe }))
    }

    fn budget(&self, tenant: &str, scope: &str, unit: Unit) -> GatewayResult<Option<BudgetRow>> {
        self.get_json(&self.budget_key(tenant, scope, unit)?)
    }

    fn budgets(&self, tenant: &str, scopes: &[String], unit: Unit) -> GatewayResult<Vec<Option<BudgetRow>>> {
        let keys = scopes.iter().map(|scope| self.budget_key(tenant, scope, unit)).collect::<GatewayResult<Vec<_>>>()?;
        self.prefetch(&keys)?;
        keys.iter().map(|key| self.get_json(key)).collect()
    }

    fn budget_units(&self, tenant: &str, scope: &str) -> GatewayResult<Vec<String>> {
        let members = self.members(&self.key(tenant, "budgets")?, false)?;
        Ok(members.iter().filter_map(|m| m.split_once(' ')).filter(|(_, s)| *s == scope).map(|(u, _)| u.to_string()).collect())
    }

    fn tenant_budgets(&self, tenant: &str) -> GatewayResult<Vec<BudgetRow>> {
        let mut listed: Vec<(String, String)> = self
            .members(&self.key(tenant, "budgets")?, false)?
            .iter()
            .filter_map(|m| m.split_once(' ').map(|(u, s)| (s.to_string(), u.to_string())))
            .collect();
        listed.sort();
        let mut out = Vec::with_capacity(listed.len());
        for (scope, unit) in listed {
            let unit = Unit::parse(&unit).ok_or_else(|| GatewayError::internal(format!("redis: unknown unit `{unit}` in the budget index")))?;
            if let Some(b) = self.budget(tenant, &scope, unit)? {
                out.push(b);
            }
        }
        Ok(out)
    }

    fn budgets_with_prefix(&self, tenant: &str, unit: Unit, prefix: &str) -> GatewayResult<Vec<BudgetRow>> {
        let wanted = format!("{} {prefix}", unit.as_str());
        let mut scopes: Vec<String> = self
            .members(&self.key(tenant, "budgets")?, false)?
            .into_iter()
            .filter(|m| m.starts_with(&wanted))
            .filter_map(|m| m.split_once(' ').map(|(_, s)| s.to_string()))
            .collect();
        scopes.sort();
        let keys = scopes.iter().map(|scope| self.budget_key(tenant, scope, unit)).collect::<GatewayResult<Vec<_>>>()?;
        self.prefetch(&keys)?;
        let mut out = Vec::with_capacity(scopes.len());
        for scope in &scopes {
            if let Some(b) = self.budget(tenant, scope, unit)? {
                out.push(b);
            }
        }
        Ok(out)
    }

    fn insert_budget(&self, tenant: &str, budget: &BudgetRow) -> GatewayResult<()> {
        let key = self.budget_key(tenant, &budget.scope, budget.unit)?;
        self.refuse_existing(&key)?;
        self.set_json(key, budget)?;
        let member = format!("{} {}", budget.unit.as_str(), budget.scope);
        self.add_member(Write::SetAdd(self.key(tenant, "budgets")?, member));
        self.indexes.borrow_mut().push(Write::SetAdd(format!("{}:budget-tenants", self.prefix), tenant.to_string()));
        Ok(())
    }

    fn budget_tenants(&self) -> GatewayResult<Vec<String>> {
        let index = format!("{}:budget-tenants", self.prefix);
        let stored: Vec<String> = self.connection.borrow_mut().smembers(&index).map_err(redis_error)?;
        let mut tenants: BTreeSet<String> = stored.into_iter().collect();
        // this operation's own budgets, whose index entries are written at its commit
        tenants.extend(self.indexes.borrow().iter().filter_map(|w| match w {
            Write::SetAdd(key, tenant) if *key == index => Some(tenant.clone()),
            _ => None,
        }));
        Ok(tenants.into_iter().collect())
    }

    fn save_budget(&self, tenant: &str, budget: &BudgetRow, now: i64) -> GatewayResult<()> {
        let key = self.budget_key(tenant, &budget.scope, budget.unit)?;
        if self.get(&key)?.is_none() {
            // the SQL backend's UPDATE changes nothing either
            return Ok(());
        }
        self.set_json(key, &BudgetRow { updated_at_ms: now, ..budget.clone() })
    }

    fn reservation(&self, id: &str) -> GatewayResult<Option<Reservation>> {
        self.stored_reservation(id)
    }

    fn insert_reservation(&self, r: &Reservation) -> GatewayResult<()> {
        let key = self.reservation_key(&r.tenant, &r.id)?;
        self.create_json(key, r)?;
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

    fn save_reservation(&self, r: &Reservation) -> GatewayResult<()> {
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

    fn scan_reservations(&self, scan: ReservationScan<'_>, visit: &mut dyn FnMut(Reservation) -> bool) -> GatewayResult<()> {
        let ids = self.members(&self.key(scan.tenant, "rsv:created")?, true)?;
        let keys = ids.iter().map(|id| self.reservation_key(scan.tenant, id)).collect::<GatewayResult<Vec<_>>>()?;
        let mut candidates = Vec::with_capacity(keys.len());
        // a thousand reads a round trip: the listing holds the tenant's lock while it reads
        for chunk in keys.chunks(1_000) {
            self.prefetch(chunk)?;
            for key in chunk {
                candidates.extend(self.get_json::<Reservation>(key)?);
            }
        }
        scan.visit_matching(candidates, visit);
        Ok(())
    }

    fn expired_reservations(&self, now: i64, max: usize) -> GatewayResult<Vec<String>> {
        // a unit of work holds one tenant's lock, so it lists that tenant's reservations
        // (RedisLedger::sweep_expired walks the tenants); expiry + grace strictly before now
        let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(format!("{}:rsv:expiry", self.tag))
            .arg("-inf")
            .arg(format!("({now}"))
            .arg("LIMIT")
            .arg(0)
            .arg(max)
            .query(&mut **self.connection.borrow_mut())
            .map_err(redis_error)?;
        Ok(due)
    }

    fn recall(&self, tenant: &str, endpoint: &str, key: &str) -> GatewayResult<Option<StoredResponse>> {
        #[derive(serde::Deserialize)]
        struct Stored {
            request_hash: String,
            response: String,
        }
        let stored: Option<Stored> = self.get_json(&self.key(tenant, &format!("idem:{endpoint}:{key}"))?)?;
        Ok(stored.map(|s| StoredResponse { request_hash: s.request_hash, response: s.response }))
    }

    fn remember(&self, tenant: &str, endpoint: &str, key: &str, request_hash: &str, response: &str) -> GatewayResult<()> {
        let stored = serde_json::json!({"request_hash": request_hash, "response": response});
        let key = self.key(tenant, &format!("idem:{endpoint}:{key}"))?;
        self.refuse_existing(&key)?;
        self.set_json(key, &stored)
    }

    fn record_debit(&self, d: &Debit<'_>) -> GatewayResult<()> {
        let stored = serde_json::json!({
            "id": d.id, "unit": d.unit.as_str(), "amount": d.amount, "charged": d.charged,
            "scopes": d.scopes, "at_ms": d.at_ms, "body": d.body,
        });
        self.set_json(self.key(d.tenant, &format!("debit:{}", d.id))?, &stored)
    }

    fn emit(&self, event: NewEvent, now: i64) -> GatewayResult<()> {
        crate::events::emit(self, event, now).map(drop)
    }

}

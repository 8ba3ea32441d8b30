//! The gateway's state on one of its two backends, and the one door every handler, the
//! sweeper and the webhook dispatcher go through: the embedded SQLite store (the zero-setup
//! default, [`crate::store`]) or Redis, one server or a Cluster ([`crate::ledger::redis`],
//! shared by several gateways).
//!
//! Every operation names the tenant whose state it changes and runs as one unit of work over
//! [`Tx`] ([`Backend::unit`]): all of it or nothing, every read seeing its own earlier writes.
//! On SQLite the unit is a savepoint in the writer's batch, run once; on Redis it holds the
//! tenant's fenced lock and may run again when the lock lapsed before the commit, so a unit
//! is an `FnMut` that recomputes everything from what it reads.
//!
//! Reads ([`Backend::read`]) see one consistent state of the tenant: a committed snapshot on
//! SQLite (off the writer, never waiting for it); on Redis a unit under the tenant's lock that
//! writes nothing. A read across tenants (the admin listings, the key cache) names
//! [`SYSTEM_TENANT`]: on SQLite it is still one snapshot; on Redis each tenant's keys are read
//! as they stand, not as one snapshot of every tenant.
//!
//! The work that spans tenants (the expiry sweeps, leasing and recording webhook deliveries)
//! has a method of its own here: SQLite does each in one job of its writer, Redis tenant by
//! tenant, each in that tenant's unit.

use std::sync::Arc;

use sbd_bundle::KeyPair;

use crate::error::{GatewayError, GatewayResult};
use crate::events::{Origin, SYSTEM_TENANT};
use crate::ledger::redis::RedisLedger;
use crate::repo::{StoredApiKey, TenantStore as _, Tx};
use crate::store::Store;
use crate::traces::Seal;
use crate::webhooks::{Attempt, Due, ReplayWindow};

/// Where the gateway keeps its state; cheap to clone.
#[derive(Clone)]
pub enum Backend {
    /// The embedded SQLite store: one file, one writer thread.
    Sqlite(Store),
    /// Redis (one server or a Cluster), which several gateways may share.
    Redis(Arc<RedisLedger>),
}

/// The setting that holds the admin key's SHA-256.
pub const ADMIN_KEY_SETTING: &str = "admin_key_sha256";

/// The setting that holds the public half of the key the state's trace is sealed with (the
/// first gateway's; others on the same state must have the same key).
pub const SIGNING_KEY_SETTING: &str = "gateway_public_key";

impl Backend {
    /// Runs `op` as one unit of work on `tenant`'s state and answers once it is durable (module
    /// docs). An `Err` from `op` leaves nothing behind.
    pub async fn unit<T, F>(&self, tenant: &str, op: F) -> GatewayResult<T>
    where
        T: Send + 'static,
        F: FnMut(&dyn Tx) -> GatewayResult<T> + Send + 'static,
    {
        Ok(self.unit_sealed(tenant, op).await?.0)
    }

    /// Like [`Backend::unit`], and also answers the seal that signs the trace events the unit
    /// appended (`None` when it appended none; on SQLite the seal of its writer's batch).
    pub async fn unit_sealed<T, F>(&self, tenant: &str, mut op: F) -> GatewayResult<(T, Option<Arc<Seal>>)>
    where
        T: Send + 'static,
        F: FnMut(&dyn Tx) -> GatewayResult<T> + Send + 'static,
    {
        match self {
            Backend::Sqlite(store) => store.run_sealed(move |conn| op(conn)).await,
            Backend::Redis(redis) => {
                let tenant = tenant.to_string();
                on_redis(redis, move |redis| redis.run_sealed(&tenant, op)).await
            }
        }
    }

    /// Like [`Backend::unit`], and once the unit has committed, runs `after` with its answer
    /// before answering. On SQLite `after` runs on the writer thread, so in-memory state it
    /// changes follows the database in commit order ([`Store::run_then`]); on Redis it runs
    /// before this process's next operation on the tenant, so it follows this process's
    /// commits on the tenant in order, not other gateways' (a cache it changes is also
    /// reloaded from the store).
    pub async fn unit_then<T, F, A>(&self, tenant: &str, mut op: F, after: A) -> GatewayResult<T>
    where
        T: Send + 'static,
        F: FnMut(&dyn Tx) -> GatewayResult<T> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        match self {
            Backend::Sqlite(store) => store.run_then(move |conn| op(conn), after).await,
            Backend::Redis(redis) => {
                let tenant = tenant.to_string();
                on_redis(redis, move |redis| redis.run_then(&tenant, op, after)).await
            }
        }
    }

    /// Runs the read-only `op` on one consistent state of `tenant`, or for [`SYSTEM_TENANT`]
    /// across tenants (module docs; on Redis under no lock, [`RedisLedger::peek`]). A write
    /// `op` attempts is refused on SQLite (`query_only`); on Redis it would commit under a
    /// tenant's lock (and is dropped across tenants), so `op` must only read.
    pub async fn read<T, F>(&self, tenant: &str, mut op: F) -> GatewayResult<T>
    where
        T: Send + 'static,
        F: FnMut(&dyn Tx) -> GatewayResult<T> + Send + 'static,
    {
        match self {
            Backend::Sqlite(store) => store.read(|conn| op(conn)),
            // across tenants there is no one state to hold a lock for
            Backend::Redis(redis) if tenant == SYSTEM_TENANT => on_redis(redis, move |redis| redis.peek(SYSTEM_TENANT, op)).await,
            Backend::Redis(redis) => {
                let tenant = tenant.to_string();
                on_redis(redis, move |redis| redis.run(&tenant, op)).await
            }
        }
    }

    /// The API key whose secret hashes to `key_hash`, as stored now (whatever its status): how
    /// a gateway finds a key another gateway created, before its cache is next reloaded. On
    /// Redis a lookup without any tenant's lock ([`RedisLedger::peek`]).
    pub async fn api_key_by_hash(&self, key_hash: String) -> GatewayResult<Option<StoredApiKey>> {
        match self {
            Backend::Sqlite(store) => store.read(|conn| conn.api_key_by_hash(&key_hash)),
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.peek(SYSTEM_TENANT, |tx| tx.api_key_by_hash(&key_hash))).await,
        }
    }

    /// Checks that the backend answers (the health endpoint).
    pub async fn ping(&self) -> GatewayResult<()> {
        match self {
            Backend::Sqlite(store) => store.run(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?)).await.map(drop),
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.ping()).await,
        }
    }

    /// The gateway setting `name` ([`ADMIN_KEY_SETTING`]), if set.
    pub async fn setting(&self, name: &'static str) -> GatewayResult<Option<String>> {
        match self {
            Backend::Sqlite(store) => store.run(move |conn| crate::store::setting(conn, name)).await,
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.setting(name)).await,
        }
    }

    /// Sets the gateway setting `name` unless it is set already (several gateways starting at
    /// once agree on the first value); answers the value it holds afterwards.
    pub async fn claim_setting(&self, name: &'static str, value: String) -> GatewayResult<String> {
        match self {
            Backend::Sqlite(store) => store.run(move |conn| crate::store::claim_setting(conn, name, &value)).await,
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.claim_setting(name, &value)).await,
        }
    }

    /// Removes the gateway setting `name` if it still holds `value` (a claim whose follow-up
    /// failed); answers whether it did.
    pub async fn unclaim_setting(&self, name: &'static str, value: String) -> GatewayResult<bool> {
        match self {
            Backend::Sqlite(store) => store.run(move |conn| crate::store::unclaim_setting(conn, name, &value)).await,
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.unclaim_setting(name, &value)).await,
        }
    }

    /// Sets the gateway setting `name`.
    pub async fn set_setting(&self, name: &'static str, value: String) -> GatewayResult<()> {
        match self {
            Backend::Sqlite(store) => store.run(move |conn| crate::store::set_setting(conn, name, &value)).await,
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.set_setting(name, &value)).await,
        }
    }

    /// Expires the reservations of every tenant past their TTL, at most `max` at a time (per
    /// tenant on Redis); answers how many.
    pub async fn sweep_reservations(&self, now: i64, max: usize) -> GatewayResult<usize> {
        match self {
            Backend::Sqlite(store) => store.run(move |conn| crate::ledger::sweep_expired(conn, now, max)).await,
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.sweep_expired(now, max)).await,
        }
    }

    /// Closes the escalations of every tenant past their TTL as EXPIRED; answers how many. On
    /// Redis each tenant with one due is swept in its own unit
    /// ([`RedisLedger::sweep_escalations`]).
    pub async fn sweep_escalations(&self, now: i64, signer: KeyPair) -> GatewayResult<usize> {
        match self {
            Backend::Sqlite(store) => store.run(move |conn| crate::escalations::sweep_expired(conn, now, &signer)).await,
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.sweep_escalations(now, &signer)).await,
        }
    }

    /// Deletes finished webhook deliveries that finished before `before_ms`, at most `max` at
    /// a time (per tenant on Redis); answers how many.
    pub async fn sweep_deliveries(&self, before_ms: i64, max: usize) -> GatewayResult<usize> {
        match self {
            Backend::Sqlite(store) => store.run(move |conn| crate::webhooks::sweep_deliveries(conn, before_ms, max)).await,
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.sweep_deliveries(before_ms, max)).await,
        }
    }

    /// Leases up to `max` due webhook deliveries, fair across tenants, each for `lease_ms`,
    /// after failing those left unsent since `stale_before_ms`
    /// ([`crate::webhooks::lease_due_with`]).
    pub async fn lease_deliveries(&self, now: i64, max: usize, lease_ms: i64, per_tenant: usize, stale_before_ms: i64) -> GatewayResult<Vec<Due>> {
        match self {
            Backend::Sqlite(store) => {
                store
                    .run(move |conn| crate::webhooks::lease_due_with(conn, now, max, lease_ms, per_tenant, stale_before_ms))
                    .await
            }
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.lease_due(now, max, lease_ms, per_tenant, stale_before_ms)).await,
        }
    }

    /// Records a sent (or failed) attempt of a leased delivery; answers the delivery's new
    /// status ([`crate::webhooks::record_attempt`]).
    pub async fn record_attempt(&self, due: Due, attempt: Attempt, now: i64) -> GatewayResult<&'static str> {
        match self {
            Backend::Sqlite(store) => store.run(move |conn| crate::webhooks::record_attempt(conn, &due, &attempt, now)).await,
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.record_attempt(&due, &attempt, now)).await,
        }
    }

    /// Replays the events of `window` to system-wide webhook subscription `id` (replayEvents):
    /// one unit on SQLite; on Redis, where each delivery is kept with its event's tenant, the
    /// selection read under no lock and the queueing in each tenant's unit
    /// ([`RedisLedger::replay_system`]). Answers `(replay_id, events_queued)`.
    pub async fn replay_system(&self, id: String, window: ReplayWindow, now: i64) -> GatewayResult<(String, usize)> {
        match self {
            Backend::Sqlite(store) => {
                store
                    .run(move |conn| {
                        let sub = crate::webhooks::load_for(conn, &id, None)?;
                        crate::webhooks::replay(conn, &sub, &window, now)
                    })
                    .await
            }
            Backend::Redis(redis) => on_redis(redis, move |redis| redis.replay_system(&id, &window, now)).await,
        }
    }

    /// The embedded store, when that is the backend (its file and writer counters).
    pub fn sqlite(&self) -> Option<&Store> {
        match self {
            Backend::Sqlite(store) => Some(store),
            Backend::Redis(_) => None,
        }
    }

    /// Where the state is, for logs: the SQLite file, or the Redis endpoint and key prefix.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(store) => format!("sqlite:{}", store.path().display()),
            Backend::Redis(redis) => redis.describe(),
        }
    }
}

/// Runs `f` on the Redis ledger through [`blocking`].
async fn on_redis<T: Send + 'static>(redis: &Arc<RedisLedger>, f: impl FnOnce(&RedisLedger) -> GatewayResult<T> + Send + 'static) -> GatewayResult<T> {
    let redis = Arc::clone(redis);
    blocking(move || f(&redis)).await
}

/// Runs the blocking `f` (a Redis unit: network round trips, and a wait at the tenant's gate)
/// on tokio's blocking pool, off the async workers, with the calling request's ids and caller
/// as the origin of the events it emits (as the SQLite writer runs its jobs).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> GatewayResult<T> + Send + 'static) -> GatewayResult<T> {
    let origin = Origin::capture();
    tokio::task::spawn_blocking(move || origin.scope(f))
        .await
        .map_err(|e| GatewayError::internal(format!("a store operation did not finish: {e}")))?
}

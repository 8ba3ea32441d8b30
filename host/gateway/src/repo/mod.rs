//! The gateway's state beyond the ledger as row-level storage traits, so its rules are written
//! once and run on every backend: the embedded SQLite store ([`sqlite`]) and Redis
//! ([`crate::ledger::redis`], inside the same fenced per-tenant unit of work as the ledger).
//!
//! Each trait method is one of the store's statements; the rules (what a registered agent
//! may be, when a stored response is a replay, how a depth exception is checked) stay in their
//! own modules and take `&dyn` of these traits. A backend runs a whole operation as one atomic
//! unit of work, as for the ledger ([`crate::ledger::store`]): every read sees the operation's
//! own earlier writes, and an operation that returns an error leaves nothing behind.
//!
//! Aggregates are added here one at a time, as `docs/plans/redis-store.md` orders them: today
//! the agent registry, the delegation records (idempotent responses and depth exceptions), the
//! escrow of the delegation trees, the escalations with their targets, and the hash-chained
//! trace with its seals (its warnings listing and the outcome checks are still SQLite's), the
//! event log, the webhook subscriptions with their deliveries, and the tenants with their API
//! keys.

pub mod sqlite;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::error::GatewayResult;
use crate::cycles::Tenant;
use crate::escalations::{EscalationRecord, Status as EscalationStatus, TargetBody};
use crate::escrow::{Grant, GrantStatus, GrantUnit};
use crate::events::{EventFilter, EventRow, StoredEvent};
use crate::ledger::LedgerStore;
use crate::registry::{AgentRecord, AuthoritySettings};
use crate::traces::{Record, Seal, SignedHead};
use crate::webhooks::{Delivery, DeliveryFilter, Subscription, SubscriptionStatus};
use sbd_bundle::KeyPair;

/// A tenant's agent registry and authority settings ([`crate::registry`] holds the rules).
pub trait RegistryStore {
    /// The tenant's authority settings, if any were ever set.
    fn authority_settings(&self, tenant: &str) -> GatewayResult<Option<AuthoritySettings>>;

    /// Replaces the tenant's authority settings.
    fn set_authority_settings(&self, tenant: &str, settings: &AuthoritySettings) -> GatewayResult<()>;

    /// The agent `agent_id` (canonical), if registered.
    fn agent(&self, tenant: &str, agent_id: &str) -> GatewayResult<Option<AgentRecord>>;

    /// Every agent of the tenant, ordered by id.
    fn agents(&self, tenant: &str) -> GatewayResult<Vec<AgentRecord>>;

    /// Registers or replaces an agent (its trust already checked), stamped `now`.
    fn upsert_agent(&self, tenant: &str, agent: &AgentRecord, now: i64) -> GatewayResult<()>;

    /// Sets a registered agent's trust score (already clamped); `false` when the agent is not
    /// registered (nothing is written then).
    fn set_agent_trust(&self, tenant: &str, agent_id: &str, score: f64, now: i64) -> GatewayResult<bool>;
}

/// A stored delegation response (idempotency): the exact JSON text first sent, less its
/// receipt, which is made again from the trace event it names (the seal that signs the event
/// exists only once its batch commits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDelegation {
    /// The digest of the request that produced it.
    pub request_hash: String,
    /// The response body, JSON text without its receipt.
    pub response: String,
    /// The trace event of the receipt (`None`: stored before seals, receipt in the text).
    pub trace_seq: Option<i64>,
}

/// A depth exception as stored: a human's approval of extra hops on one chain (AG-396 4.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthExceptionRow {
    /// `dex_...`.
    pub id: String,
    /// The chain it was approved for.
    pub chain_id: String,
    /// The approving principal.
    pub approved_by: String,
    /// Why.
    pub justification: String,
    /// How many extra hops it permits.
    pub extra_depth: i64,
    /// It lapses at this instant.
    pub expires_at_ms: i64,
    /// When it was approved.
    pub created_at_ms: i64,
}

/// A tenant's delegation records: idempotent responses and depth exceptions
/// ([`crate::delegations`] holds the rules).
pub trait DelegationStore {
    /// The response stored under idempotency `key`, if any.
    fn delegation_response(&self, tenant: &str, key: &str) -> GatewayResult<Option<StoredDelegation>>;

    /// Stores the response sent under idempotency `key`, stamped `now`; `false` (and nothing
    /// written) when the key has one already: a stored response is never replaced.
    fn insert_delegation_response(&self, tenant: &str, key: &str, stored: &StoredDelegation, now: i64) -> GatewayResult<bool>;

    /// The depth exception `id`, if the tenant has one of that id.
    fn depth_exception(&self, tenant: &str, id: &str) -> GatewayResult<Option<DepthExceptionRow>>;

    /// Records a new depth exception (refused if its id exists).
    fn insert_depth_exception(&self, tenant: &str, exception: &DepthExceptionRow) -> GatewayResult<()>;
}

/// A tenant's delegation trees: the grants and their escrowed budgets ([`crate::escrow`] holds
/// the rules: carving, settling, the audit).
pub trait EscrowStore {
    /// The grant `grant_id` with its units in unit order, if the tenant has it.
    fn grant(&self, tenant: &str, grant_id: &str) -> GatewayResult<Option<Grant>>;

    /// Records a new grant with its units (their `granted` amounts; nothing carved, spent or
    /// held yet). `false`, and nothing written, when its id is taken or, for a root
    /// (`parent_id` of `None`), when its chain has a root already.
    fn insert_grant(&self, tenant: &str, grant: &Grant) -> GatewayResult<bool>;

    /// Writes one unit's `carved`, `spent` and `reservation_id` back.
    fn save_grant_unit(&self, tenant: &str, grant_id: &str, unit: &GrantUnit) -> GatewayResult<()>;

    /// Moves a grant to `status`, settled at `at_ms`.
    fn set_grant_status(&self, tenant: &str, grant_id: &str, status: GrantStatus, at_ms: i64) -> GatewayResult<()>;

    /// The ids of the grant's children, whatever their status, in id order.
    fn child_grants(&self, tenant: &str, grant_id: &str) -> GatewayResult<Vec<String>>;

    /// The ids of every grant of the chain, in id order.
    fn chain_grants(&self, tenant: &str, chain_id: &str) -> GatewayResult<Vec<String>>;

    /// The ids of every grant of the tenant, in id order.
    fn tenant_grants(&self, tenant: &str) -> GatewayResult<Vec<String>>;
}

/// A PENDING escalation past its TTL, as the sweep finds it: its record, or `None` when the
/// stored record cannot be read (the sweep then closes it by its status alone).
pub type ExpiredEscalation = (String, Option<EscalationRecord>);

/// A tenant's escalations and its registered agent escalation targets
/// ([`crate::escalations`] holds the rules: routing, decisions, expiry).
pub trait EscalationStore {
    /// The escalation `id`, if the tenant has it; an error if its record cannot be read.
    fn escalation(&self, tenant: &str, id: &str) -> GatewayResult<Option<EscalationRecord>>;

    /// Records an escalation, or replaces the record of its id.
    fn save_escalation(&self, tenant: &str, record: &EscalationRecord) -> GatewayResult<()>;

    /// How many PENDING escalations are assigned to `assignee`.
    fn pending_escalations(&self, tenant: &str, assignee: &str) -> GatewayResult<usize>;

    /// The tenant's escalations, optionally of one status and one assignee, by expiry, then
    /// id; an error if one of them cannot be read.
    fn escalations(&self, tenant: &str, status: Option<EscalationStatus>, assignee: Option<&str>) -> GatewayResult<Vec<EscalationRecord>>;

    /// Up to `max` PENDING escalations of the tenant that expired before `now` (a candidate
    /// list, by expiry: the sweep checks each again).
    fn expired_escalations(&self, tenant: &str, now: i64, max: usize) -> GatewayResult<Vec<ExpiredEscalation>>;

    /// Closes an escalation whose record cannot be read as EXPIRED, by its status alone.
    fn expire_unreadable_escalation(&self, tenant: &str, id: &str) -> GatewayResult<()>;

    /// Every tenant that has had an escalation (the sweep's list; a superset is harmless).
    fn escalation_tenants(&self) -> GatewayResult<Vec<String>>;

    /// The tenant's registered agent targets, by descending trust, then agent id; an error if
    /// one cannot be read.
    fn escalation_targets(&self, tenant: &str) -> GatewayResult<Vec<TargetBody>>;

    /// Registers an agent target, or replaces the one of its agent.
    fn save_escalation_target(&self, tenant: &str, target: &TargetBody) -> GatewayResult<()>;
}

/// The hash-chained trace of each delegation chain, as [`crate::traces::append`] writes it.
pub trait TraceStore {
    /// The chain's head: how many events it has and the hash of the last.
    fn trace_head(&self, tenant: &str, chain_id: &str) -> GatewayResult<Option<SignedHead>>;

    /// A sequence number above every one the tenant's events have (the embedded store's is
    /// above every tenant's).
    fn next_trace_seq(&self, tenant: &str) -> GatewayResult<i64>;

    /// The seal and leaf index of the unit of work's next event, whose leaf hash is `leaf`:
    /// the unit's seal (the embedded store's: its batch's) is opened at the first, and signed
    /// by `signer` before the unit commits.
    fn open_trace_leaf(&self, tenant: &str, signer: &KeyPair, leaf: [u8; 32]) -> GatewayResult<(i64, i64)>;

    /// Stores an appended event and makes it the chain's head (Redis refuses a position or a
    /// sequence number that is taken; the embedded store's primary key refuses a taken
    /// sequence number, and its positions follow the head).
    fn insert_trace_event(&self, record: &Record) -> GatewayResult<()>;

    /// The chain's stored events, in position order.
    fn trace_events(&self, tenant: &str, chain_id: &str) -> GatewayResult<Vec<Record>>;

    /// The stored event `seq`, if the tenant has it.
    fn trace_event_at(&self, tenant: &str, seq: i64) -> GatewayResult<Option<Record>>;

    /// The tenant's latest `warning` events, newest first, at most `limit`.
    fn warning_events(&self, tenant: &str, limit: usize) -> GatewayResult<Vec<Record>>;

    /// Seal `seal_id` (one that signs events of the tenant) with its tree; `Err` says why it
    /// cannot be used (missing, or leaves that do not match its size).
    fn trace_seal(&self, tenant: &str, seal_id: i64) -> GatewayResult<Result<Seal, &'static str>>;
}

/// The Cycles event log ([`crate::events`] holds the rules: what an event says, who may read
/// it, how a listing pages).
pub trait EventStore {
    /// Appends an event to its tenant's log (refused if its id is taken).
    fn insert_event(&self, event: &EventRow) -> GatewayResult<()>;

    /// The event `event_id`, whichever tenant's it is.
    fn event(&self, event_id: &str) -> GatewayResult<Option<StoredEvent>>;

    /// The JSON text of the events `filter` admits ([`EventFilter::admits`]), in its order
    /// (ties by commit order), from the `offset`-th on, at most `count`.
    fn matching_events(&self, filter: &EventFilter, offset: usize, count: usize) -> GatewayResult<Vec<String>>;

    /// The events of `tenant` (every tenant's: `None`) in `[from_ms, to_ms]`, oldest first,
    /// at most `count`.
    fn event_window(&self, tenant: Option<&str>, from_ms: i64, to_ms: i64, count: usize) -> GatewayResult<Vec<StoredEvent>>;
}

/// Webhook subscriptions and their deliveries ([`crate::webhooks`] holds the rules: who
/// receives what, retries, auto-disable, replay). A delivery is kept with its event's tenant
/// (`tenant` below), so queueing it commits with the event.
pub trait WebhookStore {
    /// The subscription `id`, whichever tenant owns it.
    fn subscription(&self, id: &str) -> GatewayResult<Option<Subscription>>;

    /// Records a subscription, or replaces the one of its id.
    fn save_subscription(&self, sub: &Subscription) -> GatewayResult<()>;

    /// Removes a subscription and the deliveries still owed to it that are kept with its own
    /// tenant (for a tenant's subscription, all of them; a system subscription's owed
    /// deliveries of other tenants' events are dropped when they come due).
    fn delete_subscription(&self, sub: &Subscription) -> GatewayResult<()>;

    /// The subscriptions of `tenant` (every tenant's: `None`), optionally of one status, by id.
    fn subscriptions(&self, tenant: Option<&str>, status: Option<SubscriptionStatus>) -> GatewayResult<Vec<Subscription>>;

    /// Queues a delivery of an event of `tenant` (refused if its id is taken).
    fn insert_delivery(&self, tenant: &str, delivery: &Delivery) -> GatewayResult<()>;

    /// The delivery `id` of an event of `tenant`, if kept.
    fn delivery(&self, tenant: &str, id: &str) -> GatewayResult<Option<Delivery>>;

    /// Writes a delivery back (its status, attempts, times and last response).
    fn save_delivery(&self, tenant: &str, delivery: &Delivery) -> GatewayResult<()>;

    /// Removes a delivery.
    fn delete_delivery(&self, tenant: &str, delivery: &Delivery) -> GatewayResult<()>;

    /// The deliveries to `sub` that `filter` admits ([`DeliveryFilter::admits`]), newest first
    /// (by creation, then id, descending), from the `offset`-th on, at most `count`.
    fn subscription_deliveries(&self, sub: &Subscription, filter: &DeliveryFilter, offset: usize, count: usize) -> GatewayResult<Vec<Delivery>>;

    /// Whether a replay to `sub` still has a delivery owed.
    fn replay_owed(&self, sub: &Subscription) -> GatewayResult<bool>;

    /// Up to `max` owed deliveries kept with `tenant` that are due at `now` (their time
    /// come, no live lease), oldest first (by when due, then id). May include deliveries to
    /// a subscription that is not active (the rule skips them).
    fn due_deliveries(&self, tenant: &str, now: i64, max: usize) -> GatewayResult<Vec<Delivery>>;

    /// Keeps an owed delivery out of [`WebhookStore::due_deliveries`] until `until` without
    /// changing it (one to a paused subscription, so it does not hold the queue's head).
    fn defer_delivery(&self, tenant: &str, delivery: &Delivery, until: i64) -> GatewayResult<()>;

    /// How many owed deliveries kept with `tenant` are under a live lease at `now`.
    fn leased_deliveries(&self, tenant: &str, now: i64) -> GatewayResult<usize>;

    /// Up to `max` owed deliveries kept with `tenant` queued before `before` and not under a
    /// live lease at `now`.
    fn stale_deliveries(&self, tenant: &str, before: i64, now: i64, max: usize) -> GatewayResult<Vec<Delivery>>;

    /// Up to `max` finished deliveries (delivered or failed) kept with `tenant` that finished
    /// before `before`.
    fn finished_deliveries(&self, tenant: &str, before: i64, max: usize) -> GatewayResult<Vec<Delivery>>;

    /// Every tenant that keeps deliveries (a superset is harmless).
    fn delivery_tenants(&self) -> GatewayResult<Vec<String>>;
}

/// An API key as stored: the columns authentication and the admin plane decide on, beside
/// the record's JSON text (which may be unreadable: the columns still revoke it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredApiKey {
    /// `key_...`.
    pub key_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The SHA-256 of its secret, lowercase hex (the secret is never stored).
    pub key_hash: String,
    /// ACTIVE or REVOKED: the truth (the record's copy may be older).
    pub status: String,
    /// When it stops working.
    pub expires_at_ms: i64,
    /// Its role (`None`: a key from before roles, an `agent`).
    pub role: Option<String>,
    /// The name it acts as.
    pub principal: Option<String>,
    /// The `ApiKey` record, JSON text.
    pub body: String,
}

/// Tenants and their API keys ([`crate::admin_api`] holds the rules: provisioning, the close
/// cascade, who may change which key; [`crate::auth`] reads keys to authenticate).
pub trait TenantStore {
    /// The tenant `tenant`'s record, if it exists; an error if it cannot be read.
    fn tenant_record(&self, tenant: &str) -> GatewayResult<Option<Tenant>>;

    /// Records a tenant, or replaces its record (its status and observe mode with it, as the
    /// ledger reads them).
    fn save_tenant_record(&self, tenant: &Tenant) -> GatewayResult<()>;

    /// Every tenant's record, by id; an error naming a record that cannot be read.
    fn tenant_records(&self) -> GatewayResult<Vec<Tenant>>;

    /// Records a new key (refused if its id or its hash is taken).
    fn insert_api_key(&self, key: &StoredApiKey) -> GatewayResult<()>;

    /// The key `key_id`, whichever tenant's it is.
    fn api_key(&self, key_id: &str) -> GatewayResult<Option<StoredApiKey>>;

    /// The key whose secret hashes to `key_hash`, whichever tenant's it is.
    fn api_key_by_hash(&self, key_hash: &str) -> GatewayResult<Option<StoredApiKey>>;

    /// Writes a key's status, record and principal back.
    fn save_api_key(&self, key: &StoredApiKey) -> GatewayResult<()>;

    /// The keys of `tenant` (every tenant's: `None`), by id.
    fn api_keys(&self, tenant: Option<&str>) -> GatewayResult<Vec<StoredApiKey>>;
}

/// The unit of work itself.
pub trait UnitOfWork {
    /// Undoes everything the unit of work has written so far (what it read stays read); it
    /// goes on, and commits only what it writes afterwards. For a unit that finds, part way,
    /// that another has done its work (a twin delegation's stored response).
    fn rollback(&self) -> GatewayResult<()>;
}

/// Everything one unit of work can read and write: what a backend's transaction implements.
/// A `&dyn Tx` passes where a narrower trait object is wanted (trait upcasting).
pub trait Tx:
    UnitOfWork + LedgerStore + RegistryStore + DelegationStore + EscrowStore + EscalationStore + TraceStore + EventStore + WebhookStore + TenantStore
{
}

impl<
    T: UnitOfWork
        + LedgerStore
        + RegistryStore
        + DelegationStore
        + EscrowStore
        + EscalationStore
        + TraceStore
        + EventStore
        + WebhookStore
        + TenantStore
        + ?Sized,
> Tx for T
{
}

//! The Cycles event stream (`cycles-governance-admin-v0.1.25.yaml`, Pillar 4): the typed
//! [`Event`] every state change emits, the one table of [`EventType`]s, and the append-only
//! event log in the store.
//!
//! An event is written by [`emit`] inside the same store job (so the same transaction) as the
//! state change it reports, together with one pending webhook delivery for every subscription
//! that matches it ([`crate::webhooks::enqueue`]): an event and its deliveries are committed
//! with the change or not at all (a transactional outbox), and the dispatcher
//! ([`crate::dispatch`]) sends what is committed.
//!
//! Correlation: the request id, trace id and actor of the HTTP request whose job emits an
//! event are carried to the store's writer thread by [`Origin`] (set by `Store::run` around
//! each job), so every event causally downstream of a request carries them (§CORRELATION AND
//! TRACING); sweeper and dispatcher events carry the system actor and no request id.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use crate::error::{GatewayError, GatewayResult, ErrorCode};
use crate::repo::{EventStore, Tx};
use crate::util::{new_id, rfc3339};

/// The owner of system-wide events and subscriptions.
pub const SYSTEM_TENANT: &str = "__system__";

/// The `source` of the events this gateway emits.
pub const SOURCE: &str = "sbd-gateway";

/// The event log's table; `seq` orders events as they were committed.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    category TEXT NOT NULL,
    scope TEXT,
    correlation_id TEXT,
    trace_id TEXT,
    request_id TEXT,
    at_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_tenant ON events (tenant_id, seq);
CREATE INDEX IF NOT EXISTS events_time ON events (at_ms);
"#;

/// Declares [`EventCategory`] from one table.
macro_rules! categories {
    ($($variant:ident = $wire:literal, tenant_accessible = $open:literal;)+) => {
        /// `EventCategory`: the part of an event type before the dot.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventCategory {
            $(#[doc = concat!("`", $wire, "`")] $variant,)+
        }

        impl EventCategory {
            /// Every category, in the spec's order.
            pub const ALL: &'static [EventCategory] = &[$(EventCategory::$variant,)+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventCategory::$variant => $wire,)+
                }
            }

            /// Whether a tenant may read or subscribe to it (`budget`, `reservation`,
            /// `tenant`); the others are admin-only (WEBHOOK SUBSCRIPTION INVARIANT 2).
            pub fn tenant_accessible(self) -> bool {
                match self {
                    $(EventCategory::$variant => $open,)+
                }
            }
        }
    };
}

categories! {
    Budget = "budget", tenant_accessible = true;
    Tenant = "tenant", tenant_accessible = true;
    ApiKey = "api_key", tenant_accessible = false;
    Policy = "policy", tenant_accessible = false;
    Reservation = "reservation", tenant_accessible = true;
    System = "system", tenant_accessible = false;
    Webhook = "webhook", tenant_accessible = false;
}

impl EventCategory {
    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<EventCategory> {
        EventCategory::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

/// Declares [`EventType`] from one table: each type with its wire name and category.
macro_rules! event_types {
    ($($variant:ident = $wire:literal in $category:ident,)+) => {
        /// `EventType` (v0.1.25's 51 values and v0.1.26's two observe-mode ones):
        /// `{category}.{action}`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $(#[doc = concat!("`", $wire, "`")] $variant,)+
        }

        impl EventType {
            /// Every type, in the spec's order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $wire,)+
                }
            }

            /// The category it belongs to.
            pub fn category(self) -> EventCategory {
                match self {
                    $(EventType::$variant => EventCategory::$category,)+
                }
            }
        }
    };
}

// THE table of event types (cycles-governance-admin-v0.1.25.yaml `EventType`, then the two
// observe-mode types of v0.1.26), pinned by `tests::the_event_type_table_is_the_specs`.
event_types! {
    BudgetCreated = "budget.created" in Budget,
    BudgetUpdated = "budget.updated" in Budget,
    BudgetFunded = "budget.funded" in Budget,
    BudgetDebited = "budget.debited" in Budget,
    BudgetReset = "budget.reset" in Budget,
    BudgetResetSpent = "budget.reset_spent" in Budget,
    BudgetDebtRepaid = "budget.debt_repaid" in Budget,
    BudgetFrozen = "budget.frozen" in Budget,
    BudgetUnfrozen = "budget.unfrozen" in Budget,
    BudgetClosed = "budget.closed" in Budget,
    BudgetClosedViaTenantCascade = "budget.closed_via_tenant_cascade" in Budget,
    BudgetThresholdCrossed = "budget.threshold_crossed" in Budget,
    BudgetExhausted = "budget.exhausted" in Budget,
    BudgetOverLimitEntered = "budget.over_limit_entered" in Budget,
    BudgetOverLimitExited = "budget.over_limit_exited" in Budget,
    BudgetDebtIncurred = "budget.debt_incurred" in Budget,
    BudgetBurnRateAnomaly = "budget.burn_rate_anomaly" in Budget,
    ReservationDenied = "reservation.denied" in Reservation,
    ReservationDenialRateSpike = "reservation.denial_rate_spike" in Reservation,
    ReservationExpired = "reservation.expired" in Reservation,
    ReservationExpiryRateSpike = "reservation.expiry_rate_spike" in Reservation,
    ReservationCommitOverage = "reservation.commit_overage" in Reservation,
    ReservationReleasedViaTenantCascade = "reservation.released_via_tenant_cascade" in Reservation,
    TenantCreated = "tenant.created" in Tenant,
    TenantUpdated = "tenant.updated" in Tenant,
    TenantSuspended = "tenant.suspended" in Tenant,
    TenantReactivated = "tenant.reactivated" in Tenant,
    TenantClosed = "tenant.closed" in Tenant,
    TenantSettingsChanged = "tenant.settings_changed" in Tenant,
    WebhookCreated = "webhook.created" in Webhook,
    WebhookUpdated = "webhook.updated" in Webhook,
    WebhookPaused = "webhook.paused" in Webhook,
    WebhookResumed = "webhook.resumed" in Webhook,
    WebhookDisabled = "webhook.disabled" in Webhook,
    WebhookDeleted = "webhook.deleted" in Webhook,
    WebhookDisabledViaTenantCascade = "webhook.disabled_via_tenant_cascade" in Webhook,
    ApiKeyCreated = "api_key.created" in ApiKey,
    ApiKeyRevoked = "api_key.revoked" in ApiKey,
    ApiKeyRevokedViaTenantCascade = "api_key.revoked_via_tenant_cascade" in ApiKey,
    ApiKeyExpired = "api_key.expired" in ApiKey,
    ApiKeyPermissionsChanged = "api_key.permissions_changed" in ApiKey,
    ApiKeyAuthFailed = "api_key.auth_failed" in ApiKey,
    ApiKeyAuthFailureRateSpike = "api_key.auth_failure_rate_spike" in ApiKey,
    PolicyCreated = "policy.created" in Policy,
    PolicyUpdated = "policy.updated" in Policy,
    PolicyDeleted = "policy.deleted" in Policy,
    SystemStoreConnectionLost = "system.store_connection_lost" in System,
    SystemStoreConnectionRestored = "system.store_connection_restored" in System,
    SystemHighLatency = "system.high_latency" in System,
    SystemWebhookDeliveryFailed = "system.webhook_delivery_failed" in System,
    SystemWebhookTest = "system.webhook_test" in System,
    // v0.1.26 (cycles-protocol-extensions): observe mode's two reservation events.
    ReservationObservedDenied = "reservation.observed_denied" in Reservation,
    ReservationObservedAllowed = "reservation.observed_allowed" in Reservation,
}

impl EventType {
    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventType::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not an event type")))
    }
}

impl Serialize for EventCategory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventCategory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventCategory::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not an event category")))
    }
}

/// `Event.actor.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// The admin key.
    Admin,
    /// A tenant API key.
    ApiKey,
    /// The admin key acting on a tenant's resource.
    AdminOnBehalfOf,
    /// The gateway itself (sweeper, dispatcher).
    System,
}

/// `Event.actor`: who caused the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// What kind of caller.
    #[serde(rename = "type")]
    pub kind: ActorType,
    /// The API key's id, for a tenant key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl Actor {
    /// The gateway itself.
    pub fn system() -> Actor {
        Actor { kind: ActorType::System, key_id: None }
    }
}

/// Where the running store job came from: the HTTP request's ids and its caller.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// `X-Request-Id` of the request.
    pub request_id: Option<String>,
    /// Its trace id.
    pub trace_id: Option<String>,
    /// Who called (`None`: the gateway itself).
    pub actor: Option<Actor>,
}

thread_local! {
    static ORIGIN: RefCell<Option<Origin>> = const { RefCell::new(None) };
}

impl Origin {
    /// The origin of the request handled on this task (captured before a job is queued).
    pub fn capture() -> Origin {
        crate::context::RequestContext::current()
            .map(|c| Origin { request_id: Some(c.request_id), trace_id: Some(c.trace_id), actor: c.actor })
            .unwrap_or_default()
    }

    /// Runs `f` with `self` as the origin of every event it emits on this thread.
    pub fn scope<T>(self, f: impl FnOnce() -> T) -> T {
        let previous = ORIGIN.with(|o| o.replace(Some(self)));
        let out = f();
        ORIGIN.with(|o| *o.borrow_mut() = previous);
        out
    }

    fn current() -> Origin {
        ORIGIN.with(|o| o.borrow().clone()).unwrap_or_default()
    }
}

/// An event about to be emitted: what happened; [`emit`] adds the id, time and origin.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What happened.
    pub event_type: EventType,
    /// The tenant it concerns ([`SYSTEM_TENANT`] for system events).
    pub tenant_id: String,
    /// The scope path, for budget and reservation events.
    pub scope: Option<String>,
    /// The typed payload.
    pub data: EventData,
    /// Links related events.
    pub correlation_id: Option<String>,
}

impl NewEvent {
    /// An event of `event_type` about `tenant_id` with `data`.
    pub fn new(event_type: EventType, tenant_id: impl Into<String>, data: EventData) -> NewEvent {
        NewEvent { event_type, tenant_id: tenant_id.into(), scope: None, data, correlation_id: None }
    }

    /// With its scope path.
    pub fn scope(mut self, scope: impl Into<String>) -> NewEvent {
        self.scope = Some(scope.into());
        self
    }

    /// With a correlation id.
    pub fn correlation(mut self, id: impl Into<String>) -> NewEvent {
        self.correlation_id = Some(id.into());
        self
    }
}

/// `Event` as the spec defines it (`additionalProperties: false`: exactly these keys).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Globally unique (`evt_...`).
    pub event_id: String,
    /// What happened.
    pub event_type: EventType,
    /// Its category.
    pub category: EventCategory,
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// The tenant it concerns.
    pub tenant_id: String,
    /// The scope path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Who caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// The emitting service.
    pub source: &'static str,
    /// The payload.
    pub data: EventData,
    /// Links related events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The originating request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The originating trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// The amounts of a budget before or after a change (`EventDataBudgetLifecycle` states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LedgerState {
    /// Allocated.
    pub allocated: i64,
    /// allocated - spent - reserved - debt.
    pub remaining: i64,
    /// Debt.
    pub debt: i64,
    /// Spent.
    pub spent: i64,
    /// Reserved.
    pub reserved: i64,
    /// ACTIVE, FROZEN or CLOSED.
    pub status: &'static str,
}

/// The `EventData*` payloads this gateway emits; each serialises as the spec's object.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EventData {
    /// `EventDataBudgetLifecycle`.
    BudgetLifecycle {
        /// The budget's ledger id.
        ledger_id: String,
        /// Its scope.
        scope: String,
        /// Its unit.
        unit: &'static str,
        /// CREDIT, DEBIT, RESET, RESET_SPENT, REPAY_DEBT, STATUS_CHANGE, CREATE or UPDATE.
        operation: &'static str,
        /// Before (absent on CREATE).
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_state: Option<LedgerState>,
        /// After.
        new_state: LedgerState,
        /// Why, when the caller said.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// `EventDataBudgetThreshold` (`budget.exhausted`).
    BudgetThreshold {
        /// The scope.
        scope: String,
        /// The unit.
        unit: &'static str,
        /// The crossed threshold (1.0 for exhausted).
        threshold: f64,
        /// (spent + reserved) / allocated.
        utilization: f64,
        /// Allocated.
        allocated: i64,
        /// Remaining.
        remaining: i64,
        /// Spent.
        spent: i64,
        /// Reserved.
        reserved: i64,
        /// `rising` or `falling`.
        direction: &'static str,
    },
    /// `EventDataBudgetOverLimit`.
    BudgetOverLimit {
        /// The scope.
        scope: String,
        /// The unit.
        unit: &'static str,
        /// Debt.
        debt: i64,
        /// The overdraft limit.
        overdraft_limit: i64,
        /// Whether it is over its limit now.
        is_over_limit: bool,
        /// debt / overdraft_limit (absent when the limit is 0).
        #[serde(skip_serializing_if = "Option::is_none")]
        debt_utilization: Option<f64>,
    },
    /// `EventDataBudgetDebtIncurred`.
    BudgetDebtIncurred {
        /// The scope.
        scope: String,
        /// The unit.
        unit: &'static str,
        /// The reservation whose commit created the debt (absent for a direct debit).
        #[serde(skip_serializing_if = "Option::is_none")]
        reservation_id: Option<String>,
        /// New debt.
        debt_incurred: i64,
        /// Debt now.
        total_debt: i64,
        /// The overdraft limit.
        overdraft_limit: i64,
        /// The overage policy that allowed it.
        overage_policy: &'static str,
    },
    /// `EventDataReservationDenied`.
    ReservationDenied {
        /// The blocking scope, when one blocked.
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// The unit.
        unit: &'static str,
        /// BUDGET_EXCEEDED, BUDGET_FROZEN, TENANT_CLOSED, ...
        reason_code: &'static str,
        /// The estimate.
        requested_amount: i64,
        /// What the blocking scope had left.
        #[serde(skip_serializing_if = "Option::is_none")]
        remaining: Option<i64>,
        /// The request's action.
        action: crate::cycles::Action,
        /// The request's subject.
        subject: crate::cycles::Subject,
        /// Why, structured.
        #[serde(skip_serializing_if = "Option::is_none")]
        deny_detail: Option<crate::cycles::DenyDetail>,
    },
    /// `EventDataObservedDenied` (v0.1.26).
    ObservedDenied {
        /// The scope evaluated.
        scope: String,
        /// Why it would have been denied.
        deny_detail: crate::cycles::DenyDetail,
        /// Always OBSERVE.
        observe_mode: &'static str,
        /// The unit.
        unit: &'static str,
        /// The request's action.
        action: crate::cycles::Action,
        /// The request's subject.
        subject: crate::cycles::Subject,
        /// The estimate.
        estimated_amount: i64,
        /// The scope that would have blocked it.
        #[serde(skip_serializing_if = "Option::is_none")]
        would_have_blocked_at: Option<String>,
    },
    /// `EventDataObservedAllowed` (v0.1.26).
    ObservedAllowed {
        /// The scope evaluated.
        scope: String,
        /// ALLOW.
        decision: &'static str,
        /// Always OBSERVE.
        observe_mode: &'static str,
        /// The unit.
        unit: &'static str,
        /// The request's action.
        action: crate::cycles::Action,
        /// The request's subject.
        subject: crate::cycles::Subject,
        /// The estimate.
        estimated_amount: i64,
    },
    /// `EventDataReservationExpired`.
    ReservationExpired {
        /// The reservation.
        reservation_id: String,
        /// Its scope path.
        scope: String,
        /// Its unit.
        unit: String,
        /// What it held.
        estimated_amount: i64,
        /// When it was made.
        created_at: String,
        /// When it expired.
        expired_at: String,
        /// Its TTL at creation.
        ttl_ms: i64,
        /// Extensions it used.
        extensions_used: i64,
    },
    /// `EventDataCommitOverage`.
    CommitOverage {
        /// The reservation.
        reservation_id: String,
        /// Its scope path.
        scope: String,
        /// Its unit.
        unit: String,
        /// What it reserved.
        estimated_amount: i64,
        /// What was committed.
        actual_amount: i64,
        /// actual - estimated.
        overage: i64,
        /// The policy applied.
        overage_policy: String,
        /// Debt created (0 unless ALLOW_WITH_OVERDRAFT).
        debt_incurred: i64,
    },
    /// `EventDataTenantLifecycle`.
    TenantLifecycle {
        /// The tenant.
        tenant_id: String,
        /// Before (absent on create).
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_status: Option<String>,
        /// After.
        new_status: String,
        /// The fields that changed (empty on create).
        changed_fields: Vec<String>,
    },
    /// `EventDataWebhookLifecycle`.
    WebhookLifecycle {
        /// The subscription.
        subscription_id: String,
        /// Its owner.
        tenant_id: String,
        /// Before (absent on create).
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_status: Option<&'static str>,
        /// After (absent on delete).
        #[serde(skip_serializing_if = "Option::is_none")]
        new_status: Option<&'static str>,
        /// Changed fields (on update).
        changed_fields: Vec<String>,
        /// Why the dispatcher disabled it.
        #[serde(skip_serializing_if = "Option::is_none")]
        disable_reason: Option<&'static str>,
    },
    /// `EventDataApiKey`.
    ApiKey {
        /// The key's id (never the key).
        key_id: String,
        /// Its name.
        #[serde(skip_serializing_if = "Option::is_none")]
        key_name: Option<String>,
        /// Before (absent on create).
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_status: Option<&'static str>,
        /// After.
        new_status: &'static str,
        /// Its permissions.
        permissions: Vec<String>,
    },
    /// `EventDataSystem`.
    System {
        /// The component (`webhook_dispatcher`, ...).
        component: &'static str,
        /// What happened.
        message: String,
        /// info, warning or critical.
        severity: &'static str,
        /// Structured details.
        details: serde_json::Value,
    },
}

/// Appends `event` to the log with a new id, the server time and the running job's origin, and
/// queues a webhook delivery for every active subscription that matches it. Call it inside the
/// store job that makes the change, so both commit together. Returns the event's id.
pub fn emit(store: &dyn Tx, event: NewEvent, now_ms: i64) -> GatewayResult<String> {
    emit_skipping(store, event, None, now_ms)
}

/// [`emit`], queueing no delivery to the subscription `skip` (so a subscription is not told
/// of its own failed delivery, which would go to the endpoint that is failing).
pub fn emit_skipping(store: &dyn Tx, event: NewEvent, skip: Option<&str>, now_ms: i64) -> GatewayResult<String> {
    let origin = Origin::current();
    let actor = origin.actor.or_else(|| Some(Actor::system()));
    let event = Event {
        event_id: new_id("evt_"),
        event_type: event.event_type,
        category: event.event_type.category(),
        timestamp: rfc3339(now_ms),
        tenant_id: event.tenant_id,
        scope: event.scope,
        actor,
        source: SOURCE,
        data: event.data,
        correlation_id: event.correlation_id,
        request_id: origin.request_id,
        trace_id: origin.trace_id,
    };
    let body = serde_json::to_string(&event).map_err(GatewayError::internal)?;
    let row = EventRow {
        event: StoredEvent {
            event_id: event.event_id,
            tenant_id: event.tenant_id,
            event_type: event.event_type,
            scope: event.scope,
            trace_id: event.trace_id,
            at_ms: now_ms,
            body,
        },
        correlation_id: event.correlation_id,
        request_id: event.request_id,
    };
    store.insert_event(&row)?;
    crate::webhooks::enqueue(store, &row.event, skip, now_ms)?;
    Ok(row.event.event_id)
}

/// An event as the log holds it: the columns deliveries are matched on, and the JSON text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Its id.
    pub event_id: String,
    /// The tenant it concerns.
    pub tenant_id: String,
    /// Its type.
    pub event_type: EventType,
    /// Its scope path.
    pub scope: Option<String>,
    /// Its trace id.
    pub trace_id: Option<String>,
    /// When.
    pub at_ms: i64,
    /// The `Event` JSON, exactly as delivered.
    pub body: String,
}

/// An event with the other columns the listings filter on, as [`EventStore::insert_event`]
/// stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRow {
    /// The event.
    #[serde(flatten)]
    pub event: StoredEvent,
    /// Its correlation id.
    pub correlation_id: Option<String>,
    /// The request that caused it.
    pub request_id: Option<String>,
}

/// One event by id, if any (whichever tenant's: a tenant reader checks it is its own).
pub fn get(store: &dyn EventStore, event_id: &str) -> GatewayResult<Option<StoredEvent>> {
    store.event(event_id)
}

/// How a list of events is sorted (`sort_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// By time (commit order), the default.
    #[default]
    Timestamp,
    /// By event type.
    EventType,
    /// By category.
    Category,
    /// By scope.
    Scope,
    /// By tenant.
    TenantId,
}

/// `asc` or `desc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SortDir {
    /// Oldest (or lowest) first.
    Asc,
    /// Newest (or highest) first, the default.
    #[default]
    Desc,
}

/// The filters of `GET /v1/admin/events` and `GET /v1/events`, validated.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this tenant's events.
    pub tenant_id: Option<String>,
    /// Only events a tenant may read.
    pub tenant_accessible_only: bool,
    /// Exact type.
    pub event_type: Option<EventType>,
    /// Exact category.
    pub category: Option<EventCategory>,
    /// Scope prefix.
    pub scope_prefix: Option<String>,
    /// Exact correlation id.
    pub correlation_id: Option<String>,
    /// Exact trace id.
    pub trace_id: Option<String>,
    /// Exact request id.
    pub request_id: Option<String>,
    /// At or after (ms).
    pub from_ms: Option<i64>,
    /// At or before (ms).
    pub to_ms: Option<i64>,
    /// Case-insensitive substring of the correlation id or scope.
    pub search: Option<String>,
    /// Sort key.
    pub sort_by: SortBy,
    /// Direction.
    pub sort_dir: SortDir,
    /// Page size (1-100).
    pub limit: usize,
    /// Where the previous page stopped.
    pub cursor: Option<String>,
}

/// One page of events.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// The events' JSON, in order.
    pub events: Vec<String>,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
}

impl EventPage {
    /// `EventListResponse` as JSON text (the events are copied verbatim from the log).
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"events\":[");
        out.push_str(&self.events.join(","));
        out.push_str("],\"has_more\":");
        out.push_str(if self.next_cursor.is_some() { "true" } else { "false" });
        if let Some(c) = &self.next_cursor {
            out.push_str(",\"next_cursor\":");
            out.push_str(&serde_json::Value::String(c.clone()).to_string());
        }
        out.push('}');
        out
    }
}

impl EventFilter {
    /// Whether `row` is one of the events this filter selects (what the embedded store's
    /// query selects: the search text is lowercased, the columns in ASCII only, as SQLite's
    /// `lower` does, and `%`, `_` and `\\` are literal).
    pub fn admits(&self, row: &EventRow) -> bool {
        let e = &row.event;
        let exact = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
        let search = self.search.as_ref().is_none_or(|text| {
            let text = text.to_lowercase();
            [&row.correlation_id, &e.scope]
                .into_iter()
                .any(|column| column.as_deref().unwrap_or_default().to_ascii_lowercase().contains(&text))
        });
        self.tenant_id.as_ref().is_none_or(|t| *t == e.tenant_id)
            && self.event_type.is_none_or(|t| t == e.event_type)
            && self.category.is_none_or(|c| c == e.event_type.category())
            && self.scope_prefix.as_ref().is_none_or(|p| e.scope.as_ref().is_some_and(|s| s.starts_with(p.as_str())))
            && exact(&self.correlation_id, &row.correlation_id)
            && exact(&self.trace_id, &e.trace_id)
            && exact(&self.request_id, &row.request_id)
            && self.from_ms.is_none_or(|from| e.at_ms >= from)
            && self.to_ms.is_none_or(|to| e.at_ms <= to)
            && search
            && (!self.tenant_accessible_only || e.event_type.category().tenant_accessible())
    }

    /// The offset the cursor names (none: 0); a cursor this server did not issue is a 400.
    pub fn offset(&self) -> GatewayResult<usize> {
        match &self.cursor {
            Some(c) => c
                .parse::<u32>()
                .map(|o| o as usize)
                .map_err(|_| GatewayError::invalid("`cursor` is not a cursor this server issued")),
            None => Ok(0),
        }
    }
}

/// The events matching `f`, one page. The cursor is the offset into the sorted result.
pub fn list(store: &dyn EventStore, f: &EventFilter) -> GatewayResult<EventPage> {
    let offset = f.offset()?;
    let mut events = store.matching_events(f, offset, f.limit.saturating_add(1))?;
    let more = events.len() > f.limit;
    events.truncate(f.limit);
    let next_cursor = more.then(|| offset.saturating_add(f.limit).to_string());
    Ok(EventPage { events, next_cursor })
}

/// The events of `tenant_id` (or every tenant's, for a system subscription) in
/// `[from_ms, to_ms]`, oldest first, at most `cap` + 1 of them (so a caller can tell "more
/// than `cap`").
pub fn window(store: &dyn EventStore, tenant_id: Option<&str>, from_ms: i64, to_ms: i64, cap: usize) -> GatewayResult<Vec<StoredEvent>> {
    store.event_window(tenant_id, from_ms, to_ms, cap.saturating_add(1))
}

/// An RFC 3339 query time as milliseconds; a bad one is a 400 naming `field`.
pub fn parse_time(field: &str, value: &str) -> GatewayResult<i64> {
    crate::util::parse_rfc3339(value).ok_or_else(|| {
        GatewayError::invalid(format!("`{field}` is not an RFC 3339 date-time (e.g. 2026-11-27T10:00:00Z): `{value}`"))
    })
}

/// 404 EVENT_NOT_FOUND.
pub fn not_found(event_id: &str) -> GatewayError {
    GatewayError::new(ErrorCode::EventNotFound, format!("no event `{event_id}`"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// The 51 v0.1.25 event types in the spec's order, then v0.1.26's two observe-mode ones: a
    /// change here is a change of the contract.
    #[test]
    fn the_event_type_table_is_the_specs() {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), 53);
        assert_eq!(names[50], "system.webhook_test");
        let open = EventType::ALL[..51].iter().filter(|t| t.category().tenant_accessible()).count();
        assert_eq!(open, 29, "tenant-accessible v0.1.25 types");
        for t in EventType::ALL {
            let (category, action) = t.as_str().split_once('.').unwrap_or_default();
            assert_eq!(category, t.category().as_str(), "{t:?}");
            assert!(!action.is_empty());
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        let categories: Vec<&str> = EventCategory::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(categories, ["budget", "tenant", "api_key", "policy", "reservation", "system", "webhook"]);
    }

    #[test]
    fn an_emitted_event_has_exactly_the_specs_keys_and_its_origin() {
        let conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(SCHEMA).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(crate::webhooks::SCHEMA).unwrap_or_else(|e| panic!("{e}"));
        let origin = Origin {
            request_id: Some("req_1".into()),
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            actor: Some(Actor { kind: ActorType::ApiKey, key_id: Some("key_1".into()) }),
        };
        let data = EventData::TenantLifecycle {
            tenant_id: "acme".into(),
            previous_status: None,
            new_status: "ACTIVE".into(),
            changed_fields: vec![],
        };
        let id = origin
            .scope(|| emit(&conn, NewEvent::new(EventType::TenantCreated, "acme", data), 1_700_000_000_000))
            .unwrap_or_else(|e| panic!("{e}"));
        let stored = get(&conn, &id).unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("stored"));
        let v: serde_json::Value = serde_json::from_str(&stored.body).unwrap_or_default();
        let mut keys: Vec<&str> = v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["actor", "category", "data", "event_id", "event_type", "request_id", "source", "tenant_id", "timestamp", "trace_id"]
        );
        assert_eq!(v["actor"], serde_json::json!({"type": "api_key", "key_id": "key_1"}));
        assert_eq!(v["category"], "tenant");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.000Z");
        // Outside a request the gateway itself is the actor.
        let data = EventData::System {
            component: "test",
            message: "m".into(),
            severity: "info",
            details: serde_json::json!({}),
        };
        let id = emit(&conn, NewEvent::new(EventType::SystemHighLatency, SYSTEM_TENANT, data), 1).unwrap_or_default();
        let body = get(&conn, &id).ok().flatten().map(|e| e.body).unwrap_or_default();
        assert!(body.contains(r#""actor":{"type":"system"}"#), "{body}");
        assert!(!body.contains("request_id"), "{body}");
    }

    #[test]
    fn lists_filter_page_and_hide_admin_events_from_tenants() {
        let conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(SCHEMA).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(crate::webhooks::SCHEMA).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..5 {
            let data = EventData::TenantLifecycle {
                tenant_id: "a".into(),
                previous_status: None,
                new_status: "ACTIVE".into(),
                changed_fields: vec![],
            };
            emit(&conn, NewEvent::new(EventType::TenantUpdated, "a", data).scope(format!("tenant:a/app:{i}")), i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let data = EventData::ApiKey {
            key_id: "k".into(),
            key_name: None,
            previous_status: None,
            new_status: "ACTIVE",
            permissions: vec![],
        };
        emit(&conn, NewEvent::new(EventType::ApiKeyCreated, "a", data), 9).unwrap_or_else(|e| panic!("{e}"));
        let all = EventFilter { tenant_id: Some("a".into()), limit: 100, ..EventFilter::default() };
        assert_eq!(list(&conn, &all).map(|p| p.events.len()).unwrap_or(0), 6);
        let tenant = EventFilter { tenant_accessible_only: true, ..all.clone() };
        assert_eq!(list(&conn, &tenant).map(|p| p.events.len()).unwrap_or(0), 5);
        let page = EventFilter { limit: 2, ..tenant.clone() };
        let first = list(&conn, &page).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((first.events.len(), first.next_cursor.as_deref()), (2, Some("2")));
        assert!(first.events[0].contains("app:4"), "newest first");
        let last = list(&conn, &EventFilter { cursor: Some("4".into()), ..page.clone() }).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((last.events.len(), last.next_cursor), (1, None));
        let prefix = EventFilter { scope_prefix: Some("tenant:a/app:3".into()), ..tenant.clone() };
        assert_eq!(list(&conn, &prefix).map(|p| p.events.len()).unwrap_or(0), 1);
        let search = |text: &str| EventFilter { search: Some(text.into()), ..tenant.clone() };
        assert_eq!(list(&conn, &search("APP:3")).map(|p| p.events.len()).unwrap_or(0), 1, "case-insensitive");
        assert_eq!(list(&conn, &search("app_3")).map(|p| p.events.len()).unwrap_or(9), 0, "`_` is literal");
        assert_eq!(list(&conn, &search("%")).map(|p| p.events.len()).unwrap_or(9), 0, "`%` is literal");
        let window_ = EventFilter { from_ms: Some(1), to_ms: Some(2), ..tenant };
        assert_eq!(list(&conn, &window_).map(|p| p.events.len()).unwrap_or(0), 2);
        assert!(list(&conn, &EventFilter { cursor: Some("x".into()), ..all }).is_err());
    }
}

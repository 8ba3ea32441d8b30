//! The event log and the webhook outbox on Redis ([`EventStore`], [`WebhookStore`]): an event
//! and the deliveries it queues are written in the tenant's slot by the same fenced unit of
//! work as the change they report, so they commit with it or not at all, as on the embedded
//! store.
//!
//! | key | holds |
//! |---|---|
//! | `P:{T}:evt:ID` | an event with its listing columns and its sequence number, JSON |
//! | `P:{T}:evt-seq` | the tenant's last event sequence number |
//! | `P:{T}:evts` | the tenant's events in time order: members `AT:SEQ:ID` (zero-padded), all scored 0, so a time window is a lex range |
//! | `P:{T}:whsub:ID` | a subscription owned by the tenant (`T` = `__system__` for a system one), JSON |
//! | `P:{T}:whsubs` | set of the tenant's subscription ids |
//! | `P:{T}:whdel:ID` | a delivery of one of the tenant's events (a system subscription's too), JSON |
//! | `P:{T}:whdels:SUB` | the deliveries to subscription `SUB` kept here: members `CREATED:ID`, scored 0 |
//! | `P:{T}:whdue` | sorted set of the owed deliveries' ids by when they are next due (or their lease ends) |
//! | `P:{T}:whowed`, `P:{T}:whleased` | the owed ones by when they were queued, and those leased by when the lease ends |
//! | `P:{T}:whdone` | the finished ones (delivered or given up) by when they finished, for the retention sweep |
//!
//! Cross-tenant indexes, written before the commit and never changed: `P:evt-tenant:ID` and
//! `P:whsub-tenant:ID` (the tenant of an event or subscription, for lookups by id alone),
//! `P:evt-tenants`, `P:whsub-tenants` and `P:wh-tenants` (the tenants with events,
//! subscriptions and deliveries, for listings across tenants).
//!
//! Time order across tenants is by (time, tenant, sequence number): a tenant's own events
//! keep their commit order, and a listing of every tenant's merges the tenants' ranges. A
//! listing reads at most [`LISTING_SCAN_LIMIT`] events and refuses more.
//!
//! The dispatcher ([`RedisLedger::lease_due`](super::RedisLedger::lease_due)) leases each
//! tenant's due deliveries in that tenant's unit of work, so two gateways never lease one
//! delivery at once; recording an attempt writes the delivery in its event's tenant's unit,
//! a final failure's system event in the system tenant's, and the subscription's counters in
//! its owner's: three units, where the embedded store uses one. A system subscription's
//! replay ([`RedisLedger::replay_system`](super::RedisLedger::replay_system)) selects under
//! no lock and queues each tenant's deliveries in that tenant's unit (a commit refuses a
//! write outside its locked tenant).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::{Transaction, Write};
use crate::error::{GatewayError, GatewayResult, ErrorCode};
use crate::events::{EventFilter, EventRow, SortBy, SortDir, StoredEvent, SYSTEM_TENANT};
use crate::repo::{EventStore, WebhookStore};
use crate::webhooks::{Attempt, Delivery, DeliveryFilter, DeliveryStatus, Due, ReplayWindow, Subscription, SubscriptionStatus};

/// How many events one listing reads at most on Redis (one sorted by a column other than time
/// sorts them in memory; one by time stops at its page, but a filter that matches little may
/// read far): a listing that needs more is refused with a 400 that says how to narrow it, so
/// no caller holds a tenant's lock for a scan of its whole log.
pub const LISTING_SCAN_LIMIT: usize = 100_000;

/// How many members a merged range reads from one tenant per round trip.
const CHUNK: usize = 256;

/// An event as kept.
#[derive(Serialize, Deserialize)]
struct KeptEvent {
    #[serde(flatten)]
    row: EventRow,
    seq: i64,
}

/// `N` zero-padded to 20 digits, so members order by number; a negative `N` cannot be.
fn padded(field: &str, n: i64) -> GatewayResult<String> {
    if n < 0 {
        return Err(GatewayError::internal(format!("redis: `{field}` {n} is before 1970 and cannot be ordered")));
    }
    Ok(format!("{n:020}"))
}

/// The lex bounds of the members whose first 20 digits lie in `[from, to]` (`None`: when no
/// member can).
fn time_bounds(from: Option<i64>, to: Option<i64>) -> Option<(String, String)> {
    if to.is_some_and(|t| t < 0) || from.zip(to).is_some_and(|(f, t)| f > t) {
        return None;
    }
    let min = from.filter(|f| *f > 0).map_or_else(|| "-".to_string(), |f| format!("[{f:020}:"));
    // `;` follows `:`, so every member of time `to` sorts before it
    let max = to.map_or_else(|| "+".to_string(), |t| format!("({t:020};"));
    Some((min, max))
}

/// One tenant's sorted set in a merged range.
struct Lane {
    tenant: String,
    key: String,
    buffer: VecDeque<String>,
    last: Option<String>,
    done: bool,
}

/// A merged range: its lanes, how far members compare before the tenant does, its bounds and
/// direction, and the key of a member's record.
struct Merge<'m> {
    lanes: Vec<Lane>,
    /// Members compare by their first `split` bytes, then by tenant, then whole.
    split: usize,
    min: String,
    max: String,
    rev: bool,
    record: &'m dyn Fn(&str, &str) -> GatewayResult<String>,
}

impl Transaction<'_> {
    /// Visits the members of every lane in one order (module docs), with each member's tenant,
    /// until `visit` answers false. Each lane is read [`CHUNK`] members at a time, and their
    /// records prefetched in one round trip.
    fn merged(&self, mut m: Merge<'_>, visit: &mut dyn FnMut(&str, &str) -> GatewayResult<bool>) -> GatewayResult<()> {
        loop {
            for lane in m.lanes.iter_mut().filter(|l| l.buffer.is_empty() && !l.done) {
                let (min, max) = match (&lane.last, m.rev) {
                    (Some(last), false) => (format!("({last}"), m.max.clone()),
                    (Some(last), true) => (m.min.clone(), format!("({last}")),
                    (None, _) => (m.min.clone(), m.max.clone()),
                };
                let chunk = self.lex_range(&lane.key, &min, &max, m.rev, CHUNK)?;
                lane.done = chunk.len() < CHUNK;
                lane.last = chunk.last().cloned();
                let records: Vec<String> = chunk.iter().map(|member| (m.record)(&lane.tenant, member)).collect::<GatewayResult<_>>()?;
                self.prefetch(&records)?;
                lane.buffer.extend(chunk);
            }
            let order = |l: &Lane| l.buffer.front().map(|head| (head.get(..m.split).unwrap_or(head).to_string(), l.tenant.clone(), head.clone()));
            let next = m
                .lanes
                .iter()
                .enumerate()
                .filter_map(|(i, l)| order(l).map(|o| (o, i)))
                .reduce(|a, b| if (b.0 < a.0) != m.rev { b } else { a });
            let Some((_, i)) = next else { return Ok(()) };
            let lane = &mut m.lanes[i];
            let Some(member) = lane.buffer.pop_front() else { return Ok(()) };
            if !visit(&lane.tenant, &member)? {
                return Ok(());
            }
        }
    }

    /// The tenants in the index `P:NAME`, with those this attempt is adding, in order.
    pub(super) fn indexed_tenants(&self, name: &str) -> GatewayResult<Vec<String>> {
        let index = format!("{}:{name}", self.prefix);
        let mut tenants: BTreeSet<String> = self.members(&index, false)?;
        tenants.extend(self.indexes.borrow().iter().filter_map(|w| match w {
            Write::SetAdd(key, tenant) if *key == index => Some(tenant.clone()),
            _ => None,
        }));
        Ok(tenants.into_iter().collect())
    }

    /// The tenant the write-once index `P:NAME:ID` names, this attempt's own entry first.
    pub(super) fn indexed_tenant(&self, name: &str, id: &str) -> GatewayResult<Option<String>> {
        let index = format!("{}:{name}:{id}", self.prefix);
        let pending = self.indexes.borrow().iter().find_map(|w| match w {
            Write::SetOnce(key, tenant) if *key == index => Some(tenant.clone()),
            _ => None,
        });
        match pending {
            Some(tenant) => Ok(Some(tenant)),
            None => self.get(&index),
        }
    }

    /// Sets the write-once index `P:NAME:ID` to `tenant`; refused if it names another.
    pub(super) fn index_tenant(&self, name: &str, id: &str, tenant: &str) -> GatewayResult<()> {
        match self.indexed_tenant(name, id)? {
            Some(owner) if owner == tenant => Ok(()),
            Some(owner) => Err(GatewayError::internal(format!("redis: `{id}` belongs to tenant `{owner}`, not `{tenant}`"))),
            None => {
                // write-once in Redis too: the commit refuses a key another unit set meanwhile
                self.indexes.borrow_mut().push(Write::SetOnce(format!("{}:{name}:{id}", self.prefix), tenant.to_string()));
                Ok(())
            }
        }
    }

    /// Sets the write-once index `P:NAME:ID` of a new record to `tenant` without reading it
    /// first: the commit refuses it if it names another tenant (on a Cluster, the write sent
    /// before the commit does).
    pub(super) fn index_new_tenant(&self, name: &str, id: &str, tenant: &str) {
        self.indexes.borrow_mut().push(Write::SetOnce(format!("{}:{name}:{id}", self.prefix), tenant.to_string()));
    }

    pub(super) fn add_indexed_tenant(&self, name: &str, tenant: &str) {
        self.indexes.borrow_mut().push(Write::SetAdd(format!("{}:{name}", self.prefix), tenant.to_string()));
    }

    /// The event whose `evts` member is `member` in `tenant`'s slot; an error if the member
    /// names an event the store lacks.
    fn kept_event(&self, tenant: &str, member: &str) -> GatewayResult<KeptEvent> {
        let key = self.key(tenant, &format!("evt:{}", event_id(member)))?;
        self.get_json(&key)?.ok_or_else(|| GatewayError::internal(format!("redis: the event index names `{key}`, which is missing")))
    }

    /// The events of `tenants` in `[from, to]` in time order (module docs), until `visit`
    /// answers false.
    fn events_in_order(
        &self,
        tenants: Vec<String>,
        from: Option<i64>,
        to: Option<i64>,
        rev: bool,
        visit: &mut dyn FnMut(KeptEvent) -> GatewayResult<bool>,
    ) -> GatewayResult<()> {
        let Some((min, max)) = time_bounds(from, to) else { return Ok(()) };
        let lanes = tenants
            .into_iter()
            .map(|tenant| Ok(Lane { key: self.key(&tenant, "evts")?, tenant, buffer: VecDeque::new(), last: None, done: false }))
            .collect::<GatewayResult<_>>()?;
        let record = |tenant: &str, member: &str| self.key(tenant, &format!("evt:{}", event_id(member)));
        let merge = Merge { lanes, split: 20, min, max, rev, record: &record };
        self.merged(merge, &mut |tenant, member| visit(self.kept_event(tenant, member)?))
    }

    /// The records `P:{T}:KIND:ID` of every id in the set `P:{T}:INDEX`, read in one round
    /// trip, in id order; an error names a record the index lists but the store lacks (or
    /// cannot read).
    pub(super) fn indexed_records<T: serde::de::DeserializeOwned>(&self, tenant: &str, index: &str, kind: &str) -> GatewayResult<Vec<T>> {
        let keys: Vec<String> = self
            .members(&self.key(tenant, index)?, false)?
            .iter()
            .map(|id| self.key(tenant, &format!("{kind}:{id}")))
            .collect::<GatewayResult<_>>()?;
        self.prefetch(&keys)?;
        keys.iter()
            .map(|key| self.get_json(key)?.ok_or_else(|| GatewayError::internal(format!("redis: the index `{index}` names `{key}`, which is missing"))))
            .collect()
    }

    fn event_tenants(&self, only: Option<&str>) -> GatewayResult<Vec<String>> {
        match only {
            Some(tenant) => Ok(vec![tenant.to_string()]),
            None => self.indexed_tenants("evt-tenants"),
        }
    }

    /// The tenants whose slots may hold deliveries to `sub`.
    fn delivery_tenants(&self, sub: &Subscription) -> GatewayResult<Vec<String>> {
        if sub.is_system() { self.indexed_tenants("wh-tenants") } else { Ok(vec![sub.tenant_id.clone()]) }
    }

    /// The deliveries to `sub` created in `[from, to]`, newest first, until `visit` answers false.
    fn deliveries_in_order(&self, sub: &Subscription, from: Option<i64>, to: Option<i64>, visit: &mut dyn FnMut(Delivery) -> GatewayResult<bool>) -> GatewayResult<()> {
        let Some((min, max)) = time_bounds(from, to) else { return Ok(()) };
        let lanes = self
            .delivery_tenants(sub)?
            .into_iter()
            .map(|tenant| {
                let key = self.key(&tenant, &format!("whdels:{}", sub.subscription_id))?;
                Ok(Lane { key, tenant, buffer: VecDeque::new(), last: None, done: false })
            })
            .collect::<GatewayResult<_>>()?;
        let record = |tenant: &str, member: &str| self.key(tenant, &format!("whdel:{}", delivery_id(member)));
        // `CREATED:ID` orders as (created, id) across tenants too: ids are unique
        let merge = Merge { lanes, split: usize::MAX, min, max, rev: true, record: &record };
        self.merged(merge, &mut |tenant, member| {
            let key = record(tenant, member)?;
            let delivery: Delivery =
                self.get_json(&key)?.ok_or_else(|| GatewayError::internal(format!("redis: the delivery index names `{key}`, which is missing")))?;
            visit(delivery)
        })
    }

    /// Keeps the schedule's sorted sets in step with a delivery (module docs): an owed one in
    /// `whdue` by when it is next due, in `whowed` by when it was queued and, while leased, in
    /// `whleased` by when its lease ends; a finished one in `whdone` by when it finished.
    fn schedule(&self, tenant: &str, d: &Delivery) -> GatewayResult<()> {
        let [due, leased, owed, done] = ["whdue", "whleased", "whowed", "whdone"].map(|name| self.key(tenant, name));
        let (due, leased, owed, done) = (due?, leased?, owed?, done?);
        let id = d.delivery_id.clone();
        if d.status.owed() {
            let at = d.next_attempt_at_ms.unwrap_or(d.created_at_ms).max(d.lease_until_ms.unwrap_or(i64::MIN));
            self.add_member(Write::SortedAdd(due, at, id.clone()));
            self.add_member(Write::SortedAdd(owed, d.created_at_ms, id.clone()));
            self.remove_member(done, id.clone());
            match d.lease_until_ms {
                Some(until) => self.add_member(Write::SortedAdd(leased, until, id)),
                None => self.remove_member(leased, id),
            }
        } else {
            for key in [due, leased, owed] {
                self.remove_member(key, id.clone());
            }
            let finished = d.completed_at_ms.or(d.attempted_at_ms).unwrap_or(d.created_at_ms);
            self.add_member(Write::SortedAdd(done, finished, id));
        }
        Ok(())
    }

    /// The members of the schedule's sorted set `name` of `tenant` scored within `min` and
    /// `max` (Redis score bounds), at most `limit` of them and this attempt's removals, with
    /// every member this attempt added whatever its score, less those it removed: candidates
    /// whose records the caller checks.
    fn scheduled(&self, tenant: &str, name: &str, min: &str, max: &str, limit: usize) -> GatewayResult<Vec<Delivery>> {
        let key = self.key(tenant, name)?;
        let removed: BTreeSet<String> = self.removed.borrow().get(&key).cloned().unwrap_or_default();
        let want = i64::try_from(limit.saturating_add(removed.len())).unwrap_or(-1);
        let stored: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&key)
            .arg(min)
            .arg(max)
            .arg("LIMIT")
            .arg(0)
            .arg(want)
            .query(&mut **self.connection.borrow_mut())
            .map_err(super::redis_error)?;
        let mut ids: BTreeSet<String> = stored.into_iter().filter(|m| !removed.contains(m)).collect();
        ids.extend(self.added.borrow().get(&key).into_iter().flatten().cloned());
        let keys: Vec<String> = ids.iter().map(|id| self.key(tenant, &format!("whdel:{id}"))).collect::<GatewayResult<_>>()?;
        self.prefetch(&keys)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            // a schedule entry outlives its record only if the store was edited by hand
            if let Some(d) = self.get_json::<Delivery>(&key)? {
                out.push(d);
            }
        }
        Ok(out)
    }
}

/// Whether `d` is under a lease that is live at `now`.
fn leased_at(d: &Delivery, now: i64) -> bool {
    d.lease_until_ms.is_some_and(|until| until > now)
}

/// At most `max` of `deliveries`, by `key` then id.
fn first_by(mut deliveries: Vec<Delivery>, max: usize, key: impl Fn(&Delivery) -> i64) -> Vec<Delivery> {
    deliveries.sort_by(|a, b| (key(a), &a.delivery_id).cmp(&(key(b), &b.delivery_id)));
    deliveries.truncate(max);
    deliveries
}

/// The event id in an `evts` member (`AT:SEQ:ID`).
fn event_id(member: &str) -> &str {
    member.get(42..).unwrap_or_default()
}

/// The delivery id in a `whdels` member (`CREATED:ID`).
fn delivery_id(member: &str) -> &str {
    member.get(21..).unwrap_or_default()
}

/// The sort key of `e` for a listing sorted by `by` (not by time).
fn column(by: SortBy, e: &KeptEvent) -> Option<String> {
    let event = &e.row.event;
    match by {
        SortBy::Timestamp => None,
        SortBy::EventType => Some(event.event_type.as_str().to_string()),
        SortBy::Category => Some(event.event_type.category().as_str().to_string()),
        SortBy::Scope => event.scope.clone(),
        SortBy::TenantId => Some(event.tenant_id.clone()),
    }
}

impl EventStore for Transaction<'_> {
    fn insert_event(&self, row: &EventRow) -> GatewayResult<()> {
        let e = &row.event;
        let key = self.key(&e.tenant_id, &format!("evt:{}", e.event_id))?;
        let at = padded("at_ms", e.at_ms)?;
        let counter = self.key(&e.tenant_id, "evt-seq")?;
        let last: i64 = match self.get(&counter)? {
            Some(text) => text.parse().map_err(|_| GatewayError::internal(format!("redis: `{counter}` is not a number")))?,
            None => 0,
        };
        let seq = last.checked_add(1).ok_or_else(|| GatewayError::internal("event sequence overflow"))?;
        self.set_string(counter, seq.to_string());
        self.create_json(key, &KeptEvent { row: row.clone(), seq })?;
        self.add_member(Write::SortedAdd(self.key(&e.tenant_id, "evts")?, 0, format!("{at}:{seq:020}:{}", e.event_id)));
        // the event's key is new (the commit refuses it otherwise), and so is its index entry
        self.index_new_tenant("evt-tenant", &e.event_id, &e.tenant_id);
        self.add_indexed_tenant("evt-tenants", &e.tenant_id);
        Ok(())
    }

    fn event(&self, event_id: &str) -> GatewayResult<Option<StoredEvent>> {
        let Some(tenant) = self.indexed_tenant("evt-tenant", event_id)? else { return Ok(None) };
        let kept: Option<KeptEvent> = self.get_json(&self.key(&tenant, &format!("evt:{event_id}"))?)?;
        Ok(kept.map(|k| k.row.event))
    }

    fn matching_events(&self, f: &EventFilter, offset: usize, count: usize) -> GatewayResult<Vec<String>> {
        let tenants = self.event_tenants(f.tenant_id.as_deref())?;
        let rev = f.sort_dir == SortDir::Desc;
        let mut out = Vec::new();
        let mut read = 0usize;
        let mut budget = || {
            read += 1;
            if read > LISTING_SCAN_LIMIT {
                return Err(GatewayError::invalid(format!(
                    "this listing would read more than {LISTING_SCAN_LIMIT} events on this store; narrow `from`/`to` (or sort by timestamp)"
                )));
            }
            Ok(())
        };
        if f.sort_by == SortBy::Timestamp {
            let mut skipped = 0;
            self.events_in_order(tenants, f.from_ms, f.to_ms, rev, &mut |e| {
                budget()?;
                if f.admits(&e.row) {
                    if skipped < offset {
                        skipped += 1;
                    } else {
                        out.push(e.row.event.body);
                    }
                }
                Ok(out.len() < count)
            })?;
            return Ok(out);
        }
        // another column: every admitted event in time order, then a stable sort by the column
        let mut admitted = Vec::new();
        self.events_in_order(tenants, f.from_ms, f.to_ms, rev, &mut |e| {
            budget()?;
            if f.admits(&e.row) {
                admitted.push((column(f.sort_by, &e), e.row.event.body));
            }
            Ok(true)
        })?;
        // stable: ties keep time order in the listing's direction
        admitted.sort_by(|a, b| if rev { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
        Ok(admitted.into_iter().skip(offset).take(count).map(|(_, body)| body).collect())
    }

    fn event_window(&self, tenant: Option<&str>, from_ms: i64, to_ms: i64, count: usize) -> GatewayResult<Vec<StoredEvent>> {
        let mut out = Vec::new();
        if count == 0 {
            return Ok(out);
        }
        self.events_in_order(self.event_tenants(tenant)?, Some(from_ms), Some(to_ms), false, &mut |e| {
            out.push(e.row.event);
            Ok(out.len() < count)
        })?;
        Ok(out)
    }
}

impl WebhookStore for Transaction<'_> {
    fn subscription(&self, id: &str) -> GatewayResult<Option<Subscription>> {
        let Some(tenant) = self.indexed_tenant("whsub-tenant", id)? else { return Ok(None) };
        self.get_json(&self.key(&tenant, &format!("whsub:{id}"))?)
    }

    fn save_subscription(&self, sub: &Subscription) -> GatewayResult<()> {
        self.index_tenant("whsub-tenant", &sub.subscription_id, &sub.tenant_id)?;
        self.add_indexed_tenant("whsub-tenants", &sub.tenant_id);
        self.set_json(self.key(&sub.tenant_id, &format!("whsub:{}", sub.subscription_id))?, sub)?;
        self.add_member(Write::SetAdd(self.key(&sub.tenant_id, "whsubs")?, sub.subscription_id.clone()));
        Ok(())
    }

    fn delete_subscription(&self, sub: &Subscription) -> GatewayResult<()> {
        let tenant = &sub.tenant_id;
        let mut owed = Vec::new();
        let key = self.key(tenant, &format!("whdels:{}", sub.subscription_id))?;
        for member in self.lex_range(&key, "-", "+", false, usize::MAX)? {
            let delivery: Option<Delivery> = self.get_json(&self.key(tenant, &format!("whdel:{}", delivery_id(&member)))?)?;
            if let Some(d) = delivery.filter(|d| d.status.owed()) {
                owed.push(d);
            }
        }
        for d in &owed {
            self.delete_delivery(tenant, d)?;
        }
        self.delete(self.key(tenant, &format!("whsub:{}", sub.subscription_id))?);
        self.remove_set_member(self.key(tenant, "whsubs")?, sub.subscription_id.clone());
        Ok(())
    }

    fn subscriptions(&self, tenant: Option<&str>, status: Option<SubscriptionStatus>) -> GatewayResult<Vec<Subscription>> {
        let tenants = match tenant {
            Some(t) => vec![t.to_string()],
            None => self.indexed_tenants("whsub-tenants")?,
        };
        let mut out = Vec::new();
        for tenant in tenants {
            let subs: Vec<Subscription> = self.indexed_records(&tenant, "whsubs", "whsub")?;
            out.extend(subs.into_iter().filter(|sub| status.is_none_or(|s| s == sub.status)));
        }
        out.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
        Ok(out)
    }

    fn insert_delivery(&self, tenant: &str, d: &Delivery) -> GatewayResult<()> {
        let key = self.key(tenant, &format!("whdel:{}", d.delivery_id))?;
        let created = padded("created_at_ms", d.created_at_ms)?;
        self.create_json(key, d)?;
        let member = format!("{created}:{}", d.delivery_id);
        self.add_member(Write::SortedAdd(self.key(tenant, &format!("whdels:{}", d.subscription_id))?, 0, member));
        self.schedule(tenant, d)?;
        self.add_indexed_tenant("wh-tenants", tenant);
        Ok(())
    }

    fn delivery(&self, tenant: &str, id: &str) -> GatewayResult<Option<Delivery>> {
        self.get_json(&self.key(tenant, &format!("whdel:{id}"))?)
    }

    fn save_delivery(&self, tenant: &str, d: &Delivery) -> GatewayResult<()> {
        let key = self.key(tenant, &format!("whdel:{}", d.delivery_id))?;
        if self.get(&key)?.is_none() {
            return Err(GatewayError::internal(format!("redis: delivery `{}` is not kept with tenant `{tenant}`", d.delivery_id)));
        }
        self.set_json(key, d)?;
        self.schedule(tenant, d)
    }

    fn delete_delivery(&self, tenant: &str, d: &Delivery) -> GatewayResult<()> {
        self.delete(self.key(tenant, &format!("whdel:{}", d.delivery_id))?);
        let member = format!("{}:{}", padded("created_at_ms", d.created_at_ms)?, d.delivery_id);
        self.remove_member(self.key(tenant, &format!("whdels:{}", d.subscription_id))?, member);
        for name in ["whdue", "whleased", "whowed", "whdone"] {
            self.remove_member(self.key(tenant, name)?, d.delivery_id.clone());
        }
        Ok(())
    }

    fn subscription_deliveries(&self, sub: &Subscription, f: &DeliveryFilter, offset: usize, count: usize) -> GatewayResult<Vec<Delivery>> {
        let mut out = Vec::new();
        if count == 0 {
            return Ok(out);
        }
        let mut skipped = 0;
        self.deliveries_in_order(sub, f.from_ms, f.to_ms, &mut |d| {
            if f.admits(&d) {
                if skipped < offset {
                    skipped += 1;
                } else {
                    out.push(d);
                }
            }
            Ok(out.len() < count)
        })?;
        Ok(out)
    }

    fn due_deliveries(&self, tenant: &str, now: i64, max: usize) -> GatewayResult<Vec<Delivery>> {
        let due = self
            .scheduled(tenant, "whdue", "-inf", &now.to_string(), max)?
            .into_iter()
            .filter(|d| d.status.owed() && d.next_attempt_at_ms.unwrap_or(d.created_at_ms) <= now && !leased_at(d, now))
            .collect();
        Ok(first_by(due, max, |d| d.next_attempt_at_ms.unwrap_or(d.created_at_ms)))
    }

    fn defer_delivery(&self, tenant: &str, d: &Delivery, until: i64) -> GatewayResult<()> {
        if d.status.owed() {
            self.add_member(Write::SortedAdd(self.key(tenant, "whdue")?, until, d.delivery_id.clone()));
        }
        Ok(())
    }

    fn leased_deliveries(&self, tenant: &str, now: i64) -> GatewayResult<usize> {
        let leased = self.scheduled(tenant, "whleased", &format!("({now}"), "+inf", usize::MAX)?;
        Ok(leased.iter().filter(|d| d.status.owed() && leased_at(d, now)).count())
    }

    fn stale_deliveries(&self, tenant: &str, before: i64, now: i64, max: usize) -> GatewayResult<Vec<Delivery>> {
        let stale = self
            .scheduled(tenant, "whowed", "-inf", &format!("({before}"), max)?
            .into_iter()
            .filter(|d| d.status.owed() && d.created_at_ms < before && !leased_at(d, now))
            .collect();
        Ok(first_by(stale, max, |d| d.created_at_ms))
    }

    fn finished_deliveries(&self, tenant: &str, before: i64, max: usize) -> GatewayResult<Vec<Delivery>> {
        let finished_at = |d: &Delivery| d.completed_at_ms.or(d.attempted_at_ms).unwrap_or(d.created_at_ms);
        let done = self
            .scheduled(tenant, "whdone", "-inf", &format!("({before}"), max)?
            .into_iter()
            .filter(|d| !d.status.owed() && finished_at(d) < before)
            .collect();
        Ok(first_by(done, max, finished_at))
    }

    fn delivery_tenants(&self) -> GatewayResult<Vec<String>> {
        self.indexed_tenants("wh-tenants")
    }

    fn replay_owed(&self, sub: &Subscription) -> GatewayResult<bool> {
        let mut owed = false;
        self.deliveries_in_order(sub, None, None, &mut |d| {
            owed = d.replay_id.is_some() && d.status.owed();
            Ok(!owed)
        })?;
        Ok(owed)
    }
}

/// How long a system-wide replay's claim on its subscription lasts if the gateway holding it
/// dies before it queues (renewed before each tenant's unit).
pub const REPLAY_CLAIM_MS: u64 = 60_000;

/// The webhook dispatcher and the retention sweep on a shared store: each runs the rules of
/// [`crate::webhooks`] in one unit of work per tenant, so several gateways dispatching at
/// once lease each delivery to one of them (the lease is written under the tenant's lock).
impl super::RedisLedger {
    /// The tenants in the index `P:NAME`, read outside any unit.
    fn index_members(&self, name: &str) -> GatewayResult<Vec<String>> {
        let mut connection = self.connection()?;
        let members: Vec<String> = redis::Commands::smembers(&mut connection, format!("{}:{name}", self.prefix)).map_err(super::redis_error)?;
        self.reuse(connection);
        Ok(members)
    }

    /// Whether `tenant`'s schedule set `name` has a member scored below `below`, read outside
    /// any unit (a tenant with nothing due is not locked).
    pub(super) fn any_before(&self, tenant: &str, name: &str, below: i64) -> GatewayResult<bool> {
        let mut connection = self.connection()?;
        let key = format!("{}:{name}", super::tenant_tag(&self.prefix, tenant)?);
        let n: u64 = redis::cmd("ZCOUNT").arg(key).arg("-inf").arg(format!("({below}")).query(&mut connection).map_err(super::redis_error)?;
        self.reuse(connection);
        Ok(n > 0)
    }

    /// Leases up to `max` due deliveries across tenants ([`crate::webhooks::lease_tenant`] in
    /// each tenant's unit, starting from a random tenant so none is always first), failing
    /// stale ones first. A tenant that fails does not stop the others; its error is returned
    /// only when nothing could be leased.
    pub fn lease_due(&self, now: i64, max: usize, lease_ms: i64, per_tenant: usize, stale_before_ms: i64) -> GatewayResult<Vec<Due>> {
        let tenants = self.index_members("wh-tenants")?;
        let mut bytes = [0u8; 8];
        let start = getrandom::fill(&mut bytes).map_or(0, |()| u64::from_le_bytes(bytes));
        let start = usize::try_from(start % u64::try_from(tenants.len().max(1)).unwrap_or(1)).unwrap_or(0);
        let (mut out, mut first_error) = (Vec::new(), None);
        for tenant in tenants.iter().cycle().skip(start).take(tenants.len()) {
            if out.len() >= max {
                break;
            }
            let attempt = || -> GatewayResult<Vec<Due>> {
                let stale = self.any_before(tenant, "whowed", stale_before_ms)?;
                if !stale && !self.any_before(tenant, "whdue", now.saturating_add(1))? {
                    return Ok(Vec::new());
                }
                let room = max.saturating_sub(out.len());
                self.run(tenant, |tx| crate::webhooks::lease_tenant(tx, tenant, now, room, lease_ms, per_tenant, stale_before_ms))
            };
            match attempt() {
                Ok(due) => out.extend(due),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// Records an attempt of `due` ([`crate::webhooks::record_attempt`]'s three steps, each in
    /// the unit of the tenant whose state it writes: the delivery's, the system tenant's for a
    /// final failure's event, the subscription owner's). A step that fails after an earlier
    /// one committed leaves the delivery recorded and the subscription's counters behind by
    /// this attempt. Returns the delivery's new status (or `DELETED` / `LEASE_LOST`,
    /// [`crate::webhooks::record_delivery`]).
    pub fn record_attempt(&self, due: &Due, attempt: &Attempt, now: i64) -> GatewayResult<&'static str> {
        let recorded = match self.run(&due.event_tenant, |tx| crate::webhooks::record_delivery(tx, due, attempt, now))? {
            Ok(recorded) => recorded,
            Err(outcome) => return Ok(outcome),
        };
        // the two later steps are independent: one that fails does not keep the other
        let reported = if recorded.status == DeliveryStatus::Failed {
            self.run(SYSTEM_TENANT, |tx| crate::webhooks::report_failed_delivery(tx, due, &recorded, attempt, now))
        } else {
            Ok(())
        };
        let counted = self.run(&due.subscription.tenant_id, |tx| crate::webhooks::count_attempt(tx, due, recorded.status, now));
        reported.and(counted)?;
        Ok(recorded.status.as_str())
    }

    /// A system-wide subscription's replay (replayEvents). Its events belong to many tenants
    /// and each delivery is kept with its event's tenant, so it selects first (read under no
    /// lock: the spec's complete selection, or the refusal) and then queues each tenant's
    /// deliveries in one unit of that tenant's. Queueing is best effort, as the
    /// spec's COMPLETENESS rule allows: a tenant's unit that fails, or one that finds the
    /// subscription deleted meanwhile, leaves its events out of `events_queued`. The claim
    /// `P:replay:ID` (lapsing after [`REPLAY_CLAIM_MS`], should this gateway die) keeps a
    /// second replay of the subscription out until this one has queued; from then on its owed
    /// deliveries do ([`WebhookStore::replay_owed`]).
    pub fn replay_system(&self, id: &str, window: &ReplayWindow, now: i64) -> GatewayResult<(String, usize)> {
        let replay_id = crate::util::new_id("rpl_");
        let claim = format!("{}:replay:{id}", self.prefix);
        let claimed: Option<String> = self.command(redis::cmd("SET").arg(&claim).arg(&replay_id).arg("NX").arg("PX").arg(REPLAY_CLAIM_MS))?;
        if claimed.is_none() {
            return Err(GatewayError::new(ErrorCode::ReplayInProgress, format!("a replay to `{id}` is being queued")));
        }
        let queued = self.queue_system_replay(id, window, &claim, &replay_id, now);
        // the claim ends here, or when it lapses: what was queued stays queued either way
        if let Err(e) = self.delete_if_holds(&claim, &replay_id) {
            tracing::warn!(subscription = id, error = %e.message, "a replay's claim was left to lapse");
        }
        Ok((replay_id, queued?))
    }

    /// [`RedisLedger::replay_system`]'s selection and queueing, under its claim (renewed before
    /// each tenant's unit; a claim lost meanwhile stops the queueing, since another replay may
    /// now be queueing the same events).
    fn queue_system_replay(&self, id: &str, window: &ReplayWindow, claim: &str, replay_id: &str, now: i64) -> GatewayResult<usize> {
        // read-only, and across tenants whose keys no one lock covers: read under no lock (the
        // claim keeps other replays of the subscription out), so a long window cannot outlast
        // a lock's lease and be read again
        let (sub, selected) = self.peek(SYSTEM_TENANT, |tx| {
            let sub = crate::webhooks::load_for(tx, id, None)?;
            let selected = crate::webhooks::select_replay(tx, &sub, window)?;
            Ok((sub, selected))
        })?;
        let mut by_tenant: BTreeMap<&str, Vec<StoredEvent>> = BTreeMap::new();
        for event in &selected {
            by_tenant.entry(event.tenant_id.as_str()).or_default().push(event.clone());
        }
        let mut queued = 0usize;
        for (tenant, events) in by_tenant {
            if !self.extend_if_holds(claim, replay_id, REPLAY_CLAIM_MS)? {
                tracing::warn!(subscription = id, "a replay's claim lapsed before it had queued every tenant's deliveries; it stopped");
                break;
            }
            let outcome = self.run(tenant, |tx| match tx.subscription(id)? {
                Some(_) => crate::webhooks::enqueue_replay(tx, &sub, &events, replay_id, now),
                None => Ok(0),
            });
            match outcome {
                Ok(n) => queued = queued.saturating_add(n),
                Err(e) => tracing::warn!(subscription = id, tenant, error = %e.message, "a replay's deliveries to one tenant were not queued"),
            }
        }
        Ok(queued)
    }

    /// The retention sweep: deletes finished deliveries that finished before `before_ms`, at
    /// most `max` per tenant, each tenant in its own unit. Returns how many went.
    pub fn sweep_deliveries(&self, before_ms: i64, max: usize) -> GatewayResult<usize> {
        let (mut swept, mut first_error) = (0usize, None);
        for tenant in self.index_members("wh-tenants")? {
            let attempt = || -> GatewayResult<usize> {
                if !self.any_before(&tenant, "whdone", before_ms)? {
                    return Ok(0);
                }
                self.run(&tenant, |tx| crate::webhooks::sweep_tenant_deliveries(tx, &tenant, before_ms, max))
            };
            match attempt() {
                Ok(n) => swept = swept.saturating_add(n),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(swept), Err)
    }
}

//! Webhook subscriptions and their deliveries (`cycles-governance-admin-v0.1.25.yaml`, Pillar
//! 4): the subscription record and the rules every persisted one obeys (the WEBHOOK
//! SUBSCRIPTION INVARIANTS), which events a subscription receives, the delivery queue the
//! dispatcher ([`crate::dispatch`]) works through, the retry schedule, auto-disable, and replay.
//!
//! Every write path (admin, admin on behalf of a tenant, tenant self-service) goes through
//! [`SubscriptionDraft::validate`], so no provisioning path can persist a subscription that
//! matches no event (INVARIANT 1) or a tenant-owned one carrying admin-only selectors
//! (INVARIANT 2). Delivery re-checks INVARIANT 2 on every event ([`matches`]), so an admin-only
//! event never reaches a tenant's endpoint even from a record written by another version.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{GatewayError, GatewayResult, ErrorCode};
use crate::events::{self, EventCategory, EventData, EventType, NewEvent, StoredEvent, SYSTEM_TENANT};
use crate::repo::{Tx, WebhookStore};
use crate::util::{new_id, random_hex, rfc3339};

/// The subscription and delivery tables.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    subscription_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webhook_subscriptions_tenant ON webhook_subscriptions (tenant_id, status);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    attempted_at_ms INTEGER,
    completed_at_ms INTEGER,
    next_attempt_at_ms INTEGER,
    lease_until_ms INTEGER,
    response_status INTEGER,
    response_time_ms INTEGER,
    error_message TEXT,
    trace_id TEXT,
    replay_id TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at_ms);
CREATE INDEX IF NOT EXISTS webhook_deliveries_subscription ON webhook_deliveries (subscription_id, created_at_ms);
"#;

/// `WebhookSubscription.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SubscriptionStatus {
    /// Receiving events.
    Active,
    /// Paused by an operator: events are not queued.
    Paused,
    /// Disabled by the dispatcher after consecutive failures (or the tenant's closing).
    Disabled,
}

impl SubscriptionStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "ACTIVE",
            SubscriptionStatus::Paused => "PAUSED",
            SubscriptionStatus::Disabled => "DISABLED",
        }
    }
}

/// `WebhookRetryPolicy`, with the spec's defaults and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Retries after the first failed attempt (0-10, default 5).
    pub max_retries: u32,
    /// Delay before the first retry (100-60000 ms, default 1000).
    pub initial_delay_ms: u64,
    /// Growth of the delay per retry (1.0-10.0, default 2.0).
    pub backoff_multiplier: f64,
    /// Longest delay (1000-3600000 ms, default 60000).
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_retries: 5, initial_delay_ms: 1000, backoff_multiplier: 2.0, max_delay_ms: 60_000 }
    }
}

impl RetryPolicy {
    fn validate(&self) -> GatewayResult<()> {
        let bad = |field: &str, range: &str| GatewayError::invalid(format!("`retry_policy.{field}` must be {range}"));
        if self.max_retries > 10 {
            return Err(bad("max_retries", "0 to 10"));
        }
        if !(100..=60_000).contains(&self.initial_delay_ms) {
            return Err(bad("initial_delay_ms", "100 to 60000"));
        }
        if !(1.0..=10.0).contains(&self.backoff_multiplier) {
            return Err(bad("backoff_multiplier", "1.0 to 10.0"));
        }
        if !(1000..=3_600_000).contains(&self.max_delay_ms) {
            return Err(bad("max_delay_ms", "1000 to 3600000"));
        }
        Ok(())
    }

    /// The delay before retry `n` (1-based): `min(initial * multiplier^(n-1), max)`.
    pub fn delay_ms(&self, n: u32) -> u64 {
        let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let delay = self.initial_delay_ms as f64 * self.backoff_multiplier.powi(exponent);
        if delay.is_finite() && delay < self.max_delay_ms as f64 {
            delay as u64
        } else {
            self.max_delay_ms
        }
    }
}

/// `WebhookThresholdConfig`: stored and returned; the gateway's own threshold events
/// (`budget.exhausted`) use the fixed 1.0 threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Thresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_utilization: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate_multiplier: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate_window_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial_rate_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_rate_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_failure_rate_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_window_seconds: Option<u32>,
}

impl Thresholds {
    fn validate(&self) -> GatewayResult<()> {
        let fraction = |field: &str, v: Option<f64>| match v {
            Some(x) if !(0.0..=1.0).contains(&x) => {
                Err(GatewayError::invalid(format!("`thresholds.{field}` must be between 0 and 1")))
            }
            _ => Ok(()),
        };
        for u in self.budget_utilization.iter().flatten() {
            fraction("budget_utilization[]", Some(*u))?;
        }
        fraction("denial_rate_threshold", self.denial_rate_threshold)?;
        fraction("expiry_rate_threshold", self.expiry_rate_threshold)?;
        fraction("auth_failure_rate_threshold", self.auth_failure_rate_threshold)?;
        if self.burn_rate_multiplier.is_some_and(|m| !(m >= 1.5 && m.is_finite())) {
            return Err(GatewayError::invalid("`thresholds.burn_rate_multiplier` must be at least 1.5"));
        }
        for (field, v) in [("burn_rate_window_seconds", self.burn_rate_window_seconds), ("rate_window_seconds", self.rate_window_seconds)] {
            if v.is_some_and(|s| !(60..=86_400).contains(&s)) {
                return Err(GatewayError::invalid(format!("`thresholds.{field}` must be 60 to 86400")));
            }
        }
        Ok(())
    }
}

/// A subscription as stored (its signing secret included).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscription {
    /// `whsub_...`.
    pub subscription_id: String,
    /// The owner; [`SYSTEM_TENANT`] for a system-wide subscription.
    pub tenant_id: String,
    /// Its name.
    pub name: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// Where events are POSTed.
    pub url: String,
    /// Exact types received.
    pub event_types: Vec<EventType>,
    /// Whole categories received (with `event_types`, a union).
    pub event_categories: Vec<EventCategory>,
    /// Scope pattern (`tenant:acme/*` is a prefix match; otherwise exact).
    pub scope_filter: Option<String>,
    /// Alerting thresholds.
    pub thresholds: Option<Thresholds>,
    /// The HMAC-SHA256 key (never returned after creation).
    pub signing_secret: String,
    /// Extra request headers (values masked when read back).
    pub headers: BTreeMap<String, String>,
    /// Its status.
    pub status: SubscriptionStatus,
    /// Its retry schedule.
    pub retry_policy: RetryPolicy,
    /// Failed deliveries in a row that disable it.
    pub disable_after_failures: u32,
    /// Failed deliveries in a row so far.
    pub consecutive_failures: u32,
    /// Created (ms).
    pub created_at_ms: i64,
    /// Last changed (ms).
    pub updated_at_ms: i64,
    /// Last event sent (ms).
    pub last_triggered_at_ms: Option<i64>,
    /// Last 2xx (ms).
    pub last_success_at_ms: Option<i64>,
    /// Last failed delivery (ms).
    pub last_failure_at_ms: Option<i64>,
    /// Operator tags.
    pub metadata: Option<serde_json::Map<String, Value>>,
}

impl Subscription {
    /// Whether it is owned by the operator and receives every tenant's events.
    pub fn is_system(&self) -> bool {
        self.tenant_id == SYSTEM_TENANT
    }

    /// `WebhookSubscription` as the API returns it: no secret, header values masked.
    pub fn view(&self) -> SubscriptionView {
        SubscriptionView {
            consecutive_failures: self.consecutive_failures,
            created_at: rfc3339(self.created_at_ms),
            description: self.description.clone(),
            disable_after_failures: self.disable_after_failures,
            event_categories: self.event_categories.clone(),
            event_types: self.event_types.clone(),
            headers: self.headers.keys().map(|k| (k.clone(), MASKED)).collect(),
            last_failure_at: self.last_failure_at_ms.map(rfc3339),
            last_success_at: self.last_success_at_ms.map(rfc3339),
            last_triggered_at: self.last_triggered_at_ms.map(rfc3339),
            metadata: self.metadata.clone(),
            name: self.name.clone(),
            retry_policy: self.retry_policy,
            scope_filter: self.scope_filter.clone(),
            status: self.status,
            subscription_id: self.subscription_id.clone(),
            tenant_id: self.tenant_id.clone(),
            thresholds: self.thresholds.clone(),
            updated_at: rfc3339(self.updated_at_ms),
            url: self.url.clone(),
        }
    }
}

/// What a header's value reads as in a subscription the API returns.
const MASKED: &str = "********";

/// `WebhookSubscription` as the API returns it (fields in name order): no signing secret,
/// header values masked, times as RFC 3339.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs, reason = "the spec's fields, named as in `WebhookSubscription`")]
pub struct SubscriptionView {
    pub consecutive_failures: u32,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub disable_after_failures: u32,
    pub event_categories: Vec<EventCategory>,
    pub event_types: Vec<EventType>,
    /// The extra headers' names, each with the value [`MASKED`].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, &'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_triggered_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub retry_policy: RetryPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_filter: Option<String>,
    pub status: SubscriptionStatus,
    pub subscription_id: String,
    pub tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Thresholds>,
    pub updated_at: String,
    pub url: String,
}

/// `WebhookListResponse`: one page of subscriptions.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionPage {
    /// Whether more follow.
    pub has_more: bool,
    /// The cursor of the next page, when more follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// This page, oldest first.
    pub subscriptions: Vec<SubscriptionView>,
}

/// `WebhookCreateRequest`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CreateRequest {
    pub url: String,
    pub event_types: Vec<EventType>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub event_categories: Option<Vec<EventCategory>>,
    #[serde(default)]
    pub scope_filter: Option<String>,
    #[serde(default)]
    pub thresholds: Option<Thresholds>,
    #[serde(default)]
    pub signing_secret: Option<String>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default)]
    pub disable_after_failures: Option<u32>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// The statuses a client may set (`DISABLED` is the dispatcher's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SettableStatus {
    /// Resume (a paused or disabled subscription).
    Active,
    /// Pause.
    Paused,
}

/// `WebhookUpdateRequest`: every field optional; arrays replace.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct UpdateRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub event_types: Option<Vec<EventType>>,
    #[serde(default)]
    pub event_categories: Option<Vec<EventCategory>>,
    #[serde(default)]
    pub scope_filter: Option<String>,
    #[serde(default)]
    pub thresholds: Option<Thresholds>,
    #[serde(default)]
    pub signing_secret: Option<String>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default)]
    pub disable_after_failures: Option<u32>,
    #[serde(default)]
    pub status: Option<SettableStatus>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// The `[webhooks]` section of the gateway's configuration: where webhooks may point (the
/// spec's `WebhookSecurityConfig`) and how the dispatcher runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Allow `http://` URLs (development only; default false).
    pub allow_http: bool,
    /// Address ranges a webhook may not resolve to (default: private, loopback and
    /// link-local ranges, against SSRF). Empty: any address.
    pub blocked_cidr_ranges: Vec<String>,
    /// How long one delivery attempt may take, milliseconds (default 10000).
    pub delivery_timeout_ms: u64,
    /// How often the dispatcher looks for due deliveries, milliseconds (default 200).
    pub poll_interval_ms: u64,
    /// Subscriptions one tenant may hold (default 100): every event fans out to each of them.
    pub max_subscriptions_per_tenant: usize,
    /// Deliveries of one tenant's subscriptions in flight at once (default 8), so that slow
    /// endpoints of one tenant cannot hold the dispatcher for the others.
    pub max_in_flight_per_tenant: usize,
    /// A delivery still owed this long after it was queued is failed when the dispatcher would
    /// pick it up, not sent (the spec's stale-delivery rule; default 24 h).
    pub stale_after_ms: u64,
    /// Finished delivery records are kept this long (the spec's recommendation: 14 days).
    pub delivery_retention_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_http: false,
            blocked_cidr_ranges: [
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "127.0.0.0/8",
                "169.254.0.0/16",
                "0.0.0.0/8",
                "100.64.0.0/10",
                "192.0.0.0/24",
                "198.18.0.0/15",
                "240.0.0.0/4",
                "::1/128",
                "fc00::/7",
                "fe80::/10",
            ]
            .map(String::from)
            .to_vec(),
            delivery_timeout_ms: 10_000,
            poll_interval_ms: 200,
            max_subscriptions_per_tenant: 100,
            max_in_flight_per_tenant: 8,
            stale_after_ms: 86_400_000,
            delivery_retention_ms: 14 * 86_400_000,
        }
    }
}

/// The IPv4 address an IPv6 one carries: IPv4-mapped `::ffff:a.b.c.d`, the deprecated
/// IPv4-compatible `::a.b.c.d` (not `::` or `::1`), or NAT64's well-known prefix
/// `64:ff9b::a.b.c.d` (RFC 6052).
fn embedded_ipv4(ip: IpAddr) -> Option<std::net::Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let bits = u128::from(v6);
    let low = std::net::Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let compatible = bits >> 32 == 0 && bits > 1;
    let nat64 = bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000;
    (compatible || nat64).then_some(low)
}

/// An address range `a.b.c.d/n` or `x::/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix`.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = s.split_once('/')?;
        let network: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl WebhookSettings {
    /// Checks every field; an error names it.
    pub fn validate(&self) -> Result<(), String> {
        self.ranges()?;
        if !(100..=120_000).contains(&self.delivery_timeout_ms) {
            return Err(format!("`webhooks.delivery_timeout_ms` must be 100 to 120000, not {}", self.delivery_timeout_ms));
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return Err(format!("`webhooks.poll_interval_ms` must be 10 to 60000, not {}", self.poll_interval_ms));
        }
        if !(1..=10_000).contains(&self.max_subscriptions_per_tenant) {
            return Err(format!(
                "`webhooks.max_subscriptions_per_tenant` must be 1 to 10000, not {}",
                self.max_subscriptions_per_tenant
            ));
        }
        if !(60_000..=30 * 86_400_000).contains(&self.stale_after_ms) {
            return Err(format!("`webhooks.stale_after_ms` must be 60000 to 2592000000 (1 min to 30 d), not {}", self.stale_after_ms));
        }
        if !(3_600_000..=3_650 * 86_400_000).contains(&self.delivery_retention_ms) {
            return Err(format!(
                "`webhooks.delivery_retention_ms` must be 3600000 to 315360000000 (1 h to 10 years), not {}",
                self.delivery_retention_ms
            ));
        }
        if !(1..=1_000).contains(&self.max_in_flight_per_tenant) {
            return Err(format!(
                "`webhooks.max_in_flight_per_tenant` must be 1 to 1000, not {}",
                self.max_in_flight_per_tenant
            ));
        }
        Ok(())
    }

    /// The parsed ranges; a bad one is a configuration error naming it.
    pub fn ranges(&self) -> Result<Vec<Cidr>, String> {
        self.blocked_cidr_ranges
            .iter()
            .map(|r| Cidr::parse(r).ok_or_else(|| format!("`webhooks.blocked_cidr_ranges`: `{r}` is not an address range")))
            .collect()
    }

    /// Whether `ip` is in a blocked range.
    ///
    /// Besides the configured ranges, an address that names no single host is always refused
    /// (unspecified, which Linux connects to loopback; multicast; broadcast), and an IPv6
    /// address carrying an IPv4 one (mapped, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`) is
    /// judged as that IPv4 address too. Unparseable ranges block everything (fail closed).
    pub fn blocks(&self, ip: IpAddr) -> bool {
        let Ok(ranges) = self.ranges() else { return true };
        let embedded = embedded_ipv4(ip).map(IpAddr::V4);
        let never = |ip: IpAddr| {
            ip.is_unspecified() || ip.is_multicast() || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
        };
        std::iter::once(ip).chain(embedded).any(|ip| never(ip) || ranges.iter().any(|r| r.contains(ip)))
    }

    /// Checks a URL's form (scheme, host, length); resolving it is the caller's
    /// ([`check_resolved`]).
    pub fn check_form(&self, url: &str) -> GatewayResult<reqwest::Url> {
        let bad = |why: String| GatewayError::new(ErrorCode::WebhookUrlInvalid, why);
        if url.len() > 2048 {
            return Err(bad("`url` is longer than 2048 characters".into()));
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(format!("`url` is not a URL: {e}")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(bad("`url` must be https (this gateway's `webhooks.allow_http` is off)".into())),
            other => return Err(bad(format!("`url` has scheme `{other}`; only https is delivered to"))),
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("`url` has no host".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("`url` must not carry credentials; use `headers`".into()));
        }
        Ok(parsed)
    }
}

/// Resolves the URL's host and refuses it when any address is in a blocked range (SSRF).
pub async fn check_resolved(policy: &WebhookSettings, url: &reqwest::Url) -> GatewayResult<()> {
    let bad = |why: String| GatewayError::new(ErrorCode::WebhookUrlInvalid, why);
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| bad(format!("`url` host `{host}` does not resolve: {e}")))?
            .map(|a| a.ip())
            .collect(),
    };
    // The message does not name the address: a tenant must not map the gateway's network.
    if addrs.iter().any(|ip| policy.blocks(*ip)) {
        return Err(bad(format!(
            "`url` host `{host}` resolves to an address this gateway does not deliver to (`webhooks.blocked_cidr_ranges`)"
        )));
    }
    Ok(())
}

/// Request headers a subscription may not set (the delivery's own).
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "traceparent",
    "x-cycles-event-id",
    "x-cycles-event-type",
    "x-cycles-signature",
    "x-cycles-trace-id",
    "transfer-encoding",
    "connection",
];

/// The merged state of a create or update, checked before anything is written.
pub struct SubscriptionDraft<'a> {
    /// The owner.
    pub tenant_id: &'a str,
    /// Types.
    pub event_types: &'a [EventType],
    /// Categories.
    pub event_categories: &'a [EventCategory],
    /// Name.
    pub name: Option<&'a str>,
    /// Description.
    pub description: Option<&'a str>,
    /// Scope filter.
    pub scope_filter: Option<&'a str>,
    /// Secret.
    pub signing_secret: &'a str,
    /// Headers.
    pub headers: &'a BTreeMap<String, String>,
    /// Retry schedule.
    pub retry_policy: &'a RetryPolicy,
    /// Auto-disable threshold.
    pub disable_after_failures: u32,
    /// Thresholds.
    pub thresholds: Option<&'a Thresholds>,
}

impl SubscriptionDraft<'_> {
    /// The WEBHOOK SUBSCRIPTION INVARIANTS and the field bounds; a violation is a 400
    /// `INVALID_REQUEST` naming the field, and nothing is persisted.
    pub fn validate(&self) -> GatewayResult<()> {
        // INVARIANT 1: selector presence.
        if self.event_types.is_empty() && self.event_categories.is_empty() {
            return Err(GatewayError::invalid(
                "a subscription must select events: `event_types` and `event_categories` cannot both be empty",
            ));
        }
        // INVARIANT 2: a tenant-owned subscription carries only tenant-accessible selectors.
        if self.tenant_id != SYSTEM_TENANT {
            if let Some(t) = self.event_types.iter().find(|t| !t.category().tenant_accessible()) {
                return Err(GatewayError::invalid(format!(
                    "`event_types` contains `{}`, an admin-only event type; a subscription owned by tenant `{}` may select only budget.*, reservation.* and tenant.* events",
                    t.as_str(),
                    self.tenant_id
                )));
            }
            if let Some(c) = self.event_categories.iter().find(|c| !c.tenant_accessible()) {
                return Err(GatewayError::invalid(format!(
                    "`event_categories` contains `{}`, an admin-only category; a subscription owned by tenant `{}` may select only budget, reservation and tenant",
                    c.as_str(),
                    self.tenant_id
                )));
            }
        }
        if self.name.is_some_and(|n| n.chars().count() > 256) {
            return Err(GatewayError::invalid("`name` is longer than 256 characters"));
        }
        if self.description.is_some_and(|d| d.chars().count() > 1024) {
            return Err(GatewayError::invalid("`description` is longer than 1024 characters"));
        }
        if let Some(f) = self.scope_filter {
            let pattern = f.strip_suffix('*').unwrap_or(f);
            if f.is_empty() || f.len() > 512 || pattern.contains('*') {
                return Err(GatewayError::invalid(
                    "`scope_filter` must be a scope path, optionally ending in `*` (e.g. `tenant:acme/*`)",
                ));
            }
        }
        if !(16..=256).contains(&self.signing_secret.len()) {
            return Err(GatewayError::invalid("`signing_secret` must be 16 to 256 characters"));
        }
        if self.headers.len() > 20 {
            return Err(GatewayError::invalid("`headers` has more than 20 entries"));
        }
        for (name, value) in self.headers {
            let lower = name.to_ascii_lowercase();
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                return Err(GatewayError::invalid(format!("`headers.{name}` is not a valid HTTP header")));
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                return Err(GatewayError::invalid(format!("`headers.{name}` is set by the delivery itself")));
            }
        }
        self.retry_policy.validate()?;
        if self.disable_after_failures == 0 {
            return Err(GatewayError::invalid("`disable_after_failures` must be at least 1"));
        }
        if let Some(t) = self.thresholds {
            t.validate()?;
        }
        Ok(())
    }
}

/// Whether `sub` receives `event`: it is active (unless `any_status`), the event is its
/// tenant's (a system subscription hears every tenant), a selector matches, the scope filter
/// matches, and — INVARIANT 2 at delivery time — a tenant-owned subscription never receives
/// an admin-only event.
pub fn matches(sub: &Subscription, event: &StoredEvent, any_status: bool) -> bool {
    if !any_status && sub.status != SubscriptionStatus::Active {
        return false;
    }
    let category = event.event_type.category();
    if !sub.is_system() && (sub.tenant_id != event.tenant_id || !category.tenant_accessible()) {
        return false;
    }
    if !sub.event_types.contains(&event.event_type) && !sub.event_categories.contains(&category) {
        return false;
    }
    match (&sub.scope_filter, &event.scope) {
        (None, _) => true,
        (Some(filter), Some(scope)) => match filter.strip_suffix('*') {
            Some(prefix) => scope.starts_with(prefix),
            None => scope == filter,
        },
        (Some(_), None) => false,
    }
}

/// A new signing secret.
pub fn new_secret() -> String {
    format!("whsec_{}", random_hex(32))
}

/// One subscription, whichever tenant owns it.
pub fn load(store: &dyn WebhookStore, id: &str) -> GatewayResult<Option<Subscription>> {
    store.subscription(id)
}

/// One subscription, or 404 `WEBHOOK_NOT_FOUND`; with `tenant`, one of another tenant is also
/// a 404 (a tenant key learns nothing of other tenants' subscriptions).
pub fn load_for(store: &dyn WebhookStore, id: &str, tenant: Option<&str>) -> GatewayResult<Subscription> {
    match load(store, id)? {
        Some(s) if tenant.is_none_or(|t| t == s.tenant_id) => Ok(s),
        _ => Err(GatewayError::new(ErrorCode::WebhookNotFound, format!("no webhook subscription `{id}`"))),
    }
}

/// Deletes finished delivery records (delivered or failed) completed before `before_ms`.
/// Returns how many went. (The embedded store's, across tenants.)
pub fn sweep_deliveries(conn: &Connection, before_ms: i64, max: usize) -> GatewayResult<usize> {
    let n = conn
        .prepare_cached(
            "DELETE FROM webhook_deliveries WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries \
             WHERE status IN ('SUCCESS', 'FAILED') AND completed_at_ms < ?1 LIMIT ?2)",
        )?
        .execute(params![before_ms, i64::try_from(max).unwrap_or(10_000)])?;
    Ok(n)
}

/// How many subscriptions `tenant` holds (any status).
pub fn count_for(store: &dyn WebhookStore, tenant: &str) -> GatewayResult<usize> {
    Ok(store.subscriptions(Some(tenant), None)?.len())
}

/// Writes `sub` (insert or replace).
pub fn save(store: &dyn WebhookStore, sub: &Subscription) -> GatewayResult<()> {
    store.save_subscription(sub)
}

/// Deletes `sub` and its undelivered deliveries.
pub fn delete(store: &dyn WebhookStore, sub: &Subscription) -> GatewayResult<()> {
    store.delete_subscription(sub)
}

/// Filters of the subscription lists.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this owner's.
    pub tenant_id: Option<String>,
    /// Only this status.
    pub status: Option<SubscriptionStatus>,
    /// Only those selecting this type.
    pub event_type: Option<EventType>,
    /// Page size.
    pub limit: usize,
    /// The offset reached.
    pub cursor: Option<String>,
}

/// One page of subscriptions (`WebhookListResponse`), oldest first.
pub fn list(store: &dyn WebhookStore, f: &ListFilter) -> GatewayResult<SubscriptionPage> {
    let offset = parse_cursor(f.cursor.as_deref())?;
    let all: Vec<Subscription> = store
        .subscriptions(f.tenant_id.as_deref(), f.status)?
        .into_iter()
        .filter(|sub| f.event_type.is_none_or(|t| sub.event_types.contains(&t) || sub.event_categories.contains(&t.category())))
        .collect();
    let page: Vec<SubscriptionView> = all.iter().skip(offset).take(f.limit).map(Subscription::view).collect();
    let more = offset + page.len() < all.len();
    let next_cursor = more.then(|| (offset + page.len()).to_string());
    Ok(SubscriptionPage { has_more: more, next_cursor, subscriptions: page })
}

fn parse_cursor(cursor: Option<&str>) -> GatewayResult<usize> {
    match cursor {
        None => Ok(0),
        // An offset SQLite can take (int64), so the next page's offset cannot overflow either.
        Some(c) => c
            .parse::<u32>()
            .map(|n| n as usize)
            .map_err(|_| GatewayError::invalid("`cursor` is not a cursor this server issued")),
    }
}

/// Queues one delivery of `event` to every active subscription that receives it (its
/// tenant's and the system ones), except `skip` (a subscription is not told of its own failed
/// delivery). Runs inside the unit of work that writes the event. Returns how many were
/// queued.
pub fn enqueue(store: &dyn WebhookStore, event: &StoredEvent, skip: Option<&str>, now_ms: i64) -> GatewayResult<usize> {
    let mut subs = store.subscriptions(Some(&event.tenant_id), Some(SubscriptionStatus::Active))?;
    if event.tenant_id != SYSTEM_TENANT {
        subs.extend(store.subscriptions(Some(SYSTEM_TENANT), Some(SubscriptionStatus::Active))?);
    }
    let mut queued = 0;
    for sub in subs {
        if Some(sub.subscription_id.as_str()) == skip || !matches(&sub, event, false) {
            continue;
        }
        store.insert_delivery(&event.tenant_id, &Delivery::owed(&sub.subscription_id, event, None, now_ms))?;
        queued += 1;
    }
    Ok(queued)
}

/// `WebhookDelivery.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeliveryStatus {
    /// Queued, not yet attempted.
    Pending,
    /// Attempted and failed; tried again at `next_attempt_at_ms`.
    Retrying,
    /// Delivered (a 2xx).
    Success,
    /// Given up.
    Failed,
}

impl DeliveryStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Retrying => "RETRYING",
            DeliveryStatus::Success => "SUCCESS",
            DeliveryStatus::Failed => "FAILED",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [DeliveryStatus::Pending, DeliveryStatus::Retrying, DeliveryStatus::Success, DeliveryStatus::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }

    /// Whether the event is still owed (not yet delivered or given up).
    pub fn owed(self) -> bool {
        matches!(self, DeliveryStatus::Pending | DeliveryStatus::Retrying)
    }
}

/// A delivery as stored: one event owed (or sent) to one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `whdel_...`.
    pub delivery_id: String,
    /// To whom.
    pub subscription_id: String,
    /// What.
    pub event_id: String,
    /// The event's type, as stored.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Queued (ms).
    pub created_at_ms: i64,
    /// Last attempted (ms).
    pub attempted_at_ms: Option<i64>,
    /// Delivered or given up (ms).
    pub completed_at_ms: Option<i64>,
    /// When it is due (ms), while owed.
    pub next_attempt_at_ms: Option<i64>,
    /// A dispatcher holds it until then (ms).
    pub lease_until_ms: Option<i64>,
    /// The last response's HTTP status.
    pub response_status: Option<i64>,
    /// The last attempt's duration.
    pub response_time_ms: Option<i64>,
    /// Why the last attempt failed.
    pub error_message: Option<String>,
    /// The event's trace id.
    pub trace_id: Option<String>,
    /// The replay that queued it.
    pub replay_id: Option<String>,
}

impl Delivery {
    /// A new delivery of `event` to `subscription_id`, due now.
    pub fn owed(subscription_id: &str, event: &StoredEvent, replay_id: Option<&str>, now_ms: i64) -> Delivery {
        Delivery {
            delivery_id: new_id("whdel_"),
            subscription_id: subscription_id.to_string(),
            event_id: event.event_id.clone(),
            event_type: event.event_type.as_str().to_string(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            created_at_ms: now_ms,
            attempted_at_ms: None,
            completed_at_ms: None,
            next_attempt_at_ms: Some(now_ms),
            lease_until_ms: None,
            response_status: None,
            response_time_ms: None,
            error_message: None,
            trace_id: event.trace_id.clone(),
            replay_id: replay_id.map(str::to_string),
        }
    }

    /// `WebhookDelivery` as the API returns it.
    pub fn view(&self) -> DeliveryView {
        DeliveryView {
            // Not yet attempted: when it was queued.
            attempted_at: rfc3339(self.attempted_at_ms.unwrap_or(self.created_at_ms)),
            attempts: self.attempts,
            completed_at: self.completed_at_ms.map(rfc3339),
            delivery_id: self.delivery_id.clone(),
            error_message: self.error_message.clone(),
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            next_retry_at: self.next_attempt_at_ms.filter(|_| self.status == DeliveryStatus::Retrying).map(rfc3339),
            response_status: self.response_status,
            response_time_ms: self.response_time_ms,
            status: self.status.as_str(),
            subscription_id: self.subscription_id.clone(),
            trace_id: self.trace_id.clone(),
        }
    }
}

/// `WebhookDelivery` as the API returns it (fields in name order).
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs, reason = "the spec's fields, named as in `WebhookDelivery`")]
pub struct DeliveryView {
    pub attempted_at: String,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub delivery_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub event_id: String,
    pub event_type: String,
    /// Only while the delivery is RETRYING.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_time_ms: Option<i64>,
    pub status: &'static str,
    pub subscription_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// `WebhookDeliveryListResponse`: one page of a subscription's deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryPage {
    /// This page, newest first.
    pub deliveries: Vec<DeliveryView>,
    /// Whether more follow.
    pub has_more: bool,
    /// The cursor of the next page, when more follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A delivery the dispatcher has leased: what to send and where.
#[derive(Debug, Clone)]
pub struct Due {
    /// The delivery.
    pub delivery_id: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The subscription (its secret and headers).
    pub subscription: Subscription,
    /// The event's JSON.
    pub event_body: String,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The event's trace id.
    pub trace_id: Option<String>,
    /// The event's tenant (where a backend keeps the delivery).
    pub event_tenant: String,
    /// Until when this dispatcher holds the delivery: its attempt is recorded only while the
    /// stored lease is still this one (a dispatcher that stalled past it lost the delivery to
    /// another, whose record stands).
    pub lease_until_ms: i64,
}

/// Leases up to `max` deliveries that are due (pending, or retrying with their time come) to
/// active subscriptions, for `lease_ms`: another dispatcher (another gateway on the same
/// store) skips them until the lease lapses. A tenant-owned subscription's admin-only event is
/// failed here, never sent (the last-mile INVARIANT 2 check).
pub fn lease_due(conn: &Connection, now_ms: i64, max: usize, lease_ms: i64, per_tenant: usize) -> GatewayResult<Vec<Due>> {
    lease_due_with(conn, now_ms, max, lease_ms, per_tenant, i64::MIN)
}

/// [`lease_due`], first failing every delivery still owed that was queued before `stale_before_ms`
/// (it is not sent: an endpoint must not receive day-old events after an outage).
pub fn lease_due_with(
    conn: &Connection,
    now_ms: i64,
    max: usize,
    lease_ms: i64,
    per_tenant: usize,
    stale_before_ms: i64,
) -> GatewayResult<Vec<Due>> {
    conn.prepare_cached(
        "UPDATE webhook_deliveries SET status = 'FAILED', completed_at_ms = ?1, lease_until_ms = NULL, \
         error_message = 'not delivered: stale (queued longer ago than webhooks.stale_after_ms)' \
         WHERE status IN ('PENDING', 'RETRYING') AND created_at_ms < ?2 \
         AND (lease_until_ms IS NULL OR lease_until_ms <= ?1)",
    )?
    .execute(params![now_ms, stale_before_ms])?;
    // Fair across tenants: each tenant's due deliveries are ranked oldest first and taken
    // round by round (every tenant's first, then every tenant's second, ...), and a tenant
    // with `per_tenant` deliveries already in flight gets no more until some finish.
    let mut stmt = conn.prepare_cached(
        "WITH due AS ( \
           SELECT d.delivery_id, s.tenant_id AS owner, d.next_attempt_at_ms AS at, \
                  ROW_NUMBER() OVER (PARTITION BY s.tenant_id ORDER BY d.next_attempt_at_ms, d.delivery_id) AS turn \
           FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.subscription_id = d.subscription_id \
           WHERE d.status IN ('PENDING', 'RETRYING') AND d.next_attempt_at_ms <= ?1 \
           AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= ?1) AND s.status = 'ACTIVE'), \
         busy AS ( \
           SELECT s.tenant_id AS owner, COUNT(*) AS n \
           FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.subscription_id = d.subscription_id \
           WHERE d.status IN ('PENDING', 'RETRYING') AND d.lease_until_ms > ?1 GROUP BY s.tenant_id) \
         SELECT d.delivery_id, d.attempts, s.body, e.body, e.event_id, e.event_type, e.trace_id, e.tenant_id, e.scope, e.at_ms \
         FROM due JOIN webhook_deliveries d ON d.delivery_id = due.delivery_id \
         JOIN webhook_subscriptions s ON s.subscription_id = d.subscription_id \
         JOIN events e ON e.event_id = d.event_id \
         LEFT JOIN busy ON busy.owner = due.owner \
         WHERE due.turn + COALESCE(busy.n, 0) <= ?3 \
         ORDER BY due.turn, due.at, due.delivery_id LIMIT ?2",
    )?;
    let per_tenant = i64::try_from(per_tenant).unwrap_or(8);
    let rows = stmt.query_map(params![now_ms, i64::try_from(max).unwrap_or(64), per_tenant], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, Option<String>>(8)?,
            r.get::<_, i64>(9)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (delivery_id, attempts, sub, event_body, event_id, event_type, trace_id, tenant_id, scope, at_ms) = row?;
        let subscription: Subscription = serde_json::from_str(&sub)
            .map_err(|e| GatewayError::internal(format!("a stored webhook subscription is unreadable: {e}")))?;
        let stored = StoredEvent {
            event_id: event_id.clone(),
            tenant_id,
            // An unreadable type is treated as admin-only: no tenant subscription gets it.
            event_type: EventType::parse(&event_type).unwrap_or(EventType::SystemHighLatency),
            scope,
            trace_id: trace_id.clone(),
            at_ms,
            body: String::new(),
        };
        if !matches(&subscription, &stored, true) {
            conn.prepare_cached(
                "UPDATE webhook_deliveries SET status = 'FAILED', completed_at_ms = ?2, \
                 error_message = 'not delivered: the subscription no longer receives this event' WHERE delivery_id = ?1",
            )?
            .execute(params![delivery_id, now_ms])?;
            continue;
        }
        conn.prepare_cached("UPDATE webhook_deliveries SET lease_until_ms = ?2 WHERE delivery_id = ?1")?
            .execute(params![delivery_id, now_ms.saturating_add(lease_ms)])?;
        out.push(Due {
            delivery_id,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            subscription,
            event_body,
            event_id,
            event_type,
            trace_id,
            event_tenant: stored.tenant_id,
            lease_until_ms: now_ms.saturating_add(lease_ms),
        });
    }
    Ok(out)
}

/// The outcome of one attempt to POST an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    /// How long the attempt took.
    pub elapsed_ms: i64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl Attempt {
    /// A 2xx.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Records an attempt of `due`: SUCCESS on a 2xx (the subscription's failure count resets);
/// otherwise RETRYING with the next retry time, or — retries exhausted — FAILED, which counts
/// one consecutive failure, emits `system.webhook_delivery_failed` and, at the subscription's
/// threshold, disables it (`webhook.disabled`). Returns the delivery's new status (`DELETED`
/// when the delivery or its subscription is gone). All in one unit of work: the embedded
/// store's; a shared store runs the three steps ([`record_delivery`],
/// [`report_failed_delivery`], [`count_attempt`]) each in the unit of the tenant whose state it
/// writes.
pub fn record_attempt(store: &dyn Tx, due: &Due, attempt: &Attempt, now_ms: i64) -> GatewayResult<&'static str> {
    let recorded = match record_delivery(store, due, attempt, now_ms)? {
        Ok(recorded) => recorded,
        Err(outcome) => return Ok(outcome),
    };
    if recorded.status == DeliveryStatus::Failed {
        report_failed_delivery(store, due, &recorded, attempt, now_ms)?;
    }
    count_attempt(store, due, recorded.status, now_ms)?;
    Ok(recorded.status.as_str())
}

/// What recording an attempt decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The delivery's new status.
    pub status: DeliveryStatus,
    /// Its attempts, this one included.
    pub attempts: u32,
}

/// The first step of [`record_attempt`], in the unit of the event's tenant (where the delivery
/// is kept): the delivery's new status, retry time and last response, by the subscription's
/// retry policy as it is now. Nothing is recorded, and `Err` says why, when the delivery is
/// gone (`DELETED`: swept, or its subscription deleted, which drops it) or when this
/// dispatcher's lease is no longer the stored one (`LEASE_LOST`: it stalled past its lease,
/// and another dispatcher leased the delivery again, or recorded it).
pub fn record_delivery(store: &dyn Tx, due: &Due, attempt: &Attempt, now_ms: i64) -> GatewayResult<Result<Recorded, &'static str>> {
    let Some(mut delivery) = store.delivery(&due.event_tenant, &due.delivery_id)? else {
        return Ok(Err("DELETED"));
    };
    if !delivery.status.owed() || delivery.lease_until_ms != Some(due.lease_until_ms) {
        return Ok(Err("LEASE_LOST"));
    }
    let attempts = delivery.attempts.saturating_add(1);
    // The subscription as it is now (it may have changed while the request was in flight).
    let Some(sub) = load(store, &due.subscription.subscription_id)? else {
        store.delete_delivery(&due.event_tenant, &delivery)?;
        return Ok(Err("DELETED"));
    };
    let status = if attempt.succeeded() {
        DeliveryStatus::Success
    } else if attempts <= sub.retry_policy.max_retries {
        DeliveryStatus::Retrying
    } else {
        DeliveryStatus::Failed
    };
    delivery.next_attempt_at_ms = (status == DeliveryStatus::Retrying).then(|| {
        let delay = i64::try_from(sub.retry_policy.delay_ms(attempts)).unwrap_or(i64::MAX);
        now_ms.saturating_add(delay)
    });
    delivery.completed_at_ms = (!status.owed()).then_some(now_ms);
    delivery.status = status;
    delivery.attempts = attempts;
    delivery.attempted_at_ms = Some(now_ms);
    delivery.lease_until_ms = None;
    delivery.response_status = attempt.status.map(i64::from);
    delivery.response_time_ms = Some(attempt.elapsed_ms);
    delivery.error_message.clone_from(&attempt.error);
    store.save_delivery(&due.event_tenant, &delivery)?;
    Ok(Ok(Recorded { status, attempts }))
}

/// The second step of [`record_attempt`] for a delivery given up on, in the unit of
/// [`SYSTEM_TENANT`]: `system.webhook_delivery_failed` (queued to every system subscription
/// but the failing one).
pub fn report_failed_delivery(store: &dyn Tx, due: &Due, recorded: &Recorded, attempt: &Attempt, now_ms: i64) -> GatewayResult<()> {
    let sub = &due.subscription;
    let data = EventData::System {
        component: "webhook_dispatcher",
        message: format!(
            "delivery {} of event {} to subscription {} failed after {} attempts",
            due.delivery_id, due.event_id, sub.subscription_id, recorded.attempts
        ),
        severity: "warning",
        details: serde_json::json!({
            "delivery_id": due.delivery_id,
            "subscription_id": sub.subscription_id,
            "tenant_id": sub.tenant_id,
            "event_id": due.event_id,
            "attempts": recorded.attempts,
            "response_status": attempt.status,
            "error_message": attempt.error,
        }),
    };
    let event = NewEvent::new(EventType::SystemWebhookDeliveryFailed, SYSTEM_TENANT, data).correlation(format!("webhook_delivery:{}", due.delivery_id));
    events::emit_skipping(store, event, Some(&sub.subscription_id), now_ms)?;
    Ok(())
}

/// The last step of [`record_attempt`], in the unit of the subscription's owner: its last
/// trigger, success or failure, its count of consecutive failures and, at its threshold, its
/// auto-disable (`webhook.disabled`). Nothing when it is gone.
pub fn count_attempt(store: &dyn Tx, due: &Due, status: DeliveryStatus, now_ms: i64) -> GatewayResult<()> {
    let Some(mut sub) = load(store, &due.subscription.subscription_id)? else { return Ok(()) };
    sub.last_triggered_at_ms = Some(now_ms);
    match status {
        DeliveryStatus::Success => {
            sub.consecutive_failures = 0;
            sub.last_success_at_ms = Some(now_ms);
        }
        DeliveryStatus::Failed => {
            sub.last_failure_at_ms = Some(now_ms);
            sub.consecutive_failures = sub.consecutive_failures.saturating_add(1);
        }
        DeliveryStatus::Pending | DeliveryStatus::Retrying => {}
    }
    if status == DeliveryStatus::Failed && sub.consecutive_failures >= sub.disable_after_failures && sub.status != SubscriptionStatus::Disabled {
        let previous = sub.status;
        sub.status = SubscriptionStatus::Disabled;
        sub.updated_at_ms = now_ms;
        let data = EventData::WebhookLifecycle {
            subscription_id: sub.subscription_id.clone(),
            tenant_id: sub.tenant_id.clone(),
            previous_status: Some(previous.as_str()),
            new_status: Some("DISABLED"),
            changed_fields: vec!["status".into()],
            disable_reason: Some("consecutive_failures_exceeded_threshold"),
        };
        let event = NewEvent::new(EventType::WebhookDisabled, sub.tenant_id.clone(), data)
            .correlation(format!("webhook_auto_disable:{}:{}", sub.subscription_id, due.delivery_id));
        events::emit_skipping(store, event, Some(&sub.subscription_id), now_ms)?;
    }
    save(store, &sub)
}

/// How often a shared store's dispatcher looks again at a delivery to a paused subscription.
pub const PAUSED_RECHECK_MS: i64 = 1_000;

/// How many stale deliveries one lease of a tenant fails at most up front (more are failed as
/// the lease meets them).
const STALE_MAX: usize = 1_000;

/// How many due deliveries one lease of a tenant looks at most (in one unit of work, under the
/// tenant's lock).
pub const LEASE_SCAN_MAX: usize = 4_096;

/// Leases up to `max` of the deliveries kept with `tenant` that are due, for `lease_ms`, with
/// at most `per_tenant` of them leased at once; first fails those still owed that were
/// queued before `stale_before_ms`. The rule a shared store's dispatcher runs in one unit of
/// work per tenant (the embedded store leases across tenants in one query,
/// [`lease_due_with`]). Deliveries to a paused subscription wait; one whose subscription is
/// gone is dropped; one whose event is gone, or that its subscription no longer receives (the
/// last-mile INVARIANT 2 check), is failed, never sent.
pub fn lease_tenant(
    store: &dyn Tx,
    tenant: &str,
    now_ms: i64,
    max: usize,
    lease_ms: i64,
    per_tenant: usize,
    stale_before_ms: i64,
) -> GatewayResult<Vec<Due>> {
    let give_up = |mut d: Delivery, why: &str| -> GatewayResult<()> {
        d.status = DeliveryStatus::Failed;
        d.completed_at_ms = Some(now_ms);
        d.lease_until_ms = None;
        d.error_message = Some(why.to_string());
        store.save_delivery(tenant, &d)
    };
    for d in store.stale_deliveries(tenant, stale_before_ms, now_ms, STALE_MAX)? {
        give_up(d, "not delivered: stale (queued longer ago than webhooks.stale_after_ms)")?;
    }
    let room = per_tenant.saturating_sub(store.leased_deliveries(tenant, now_ms)?).min(max);
    let mut out = Vec::new();
    if room == 0 {
        return Ok(out);
    }
    // Candidates in growing windows: some are skipped (a paused subscription's), failed or
    // dropped below, and must not keep the tenant's other deliveries waiting; at most
    // LEASE_SCAN_MAX are looked at in one unit of work.
    let mut seen = std::collections::BTreeSet::new();
    let mut window = room.saturating_mul(4).clamp(16, LEASE_SCAN_MAX);
    loop {
        let candidates = store.due_deliveries(tenant, now_ms, window)?;
        let exhausted = candidates.len() < window;
        for mut d in candidates {
            if out.len() == room {
                break;
            }
            if !seen.insert(d.delivery_id.clone()) {
                continue;
            }
            if d.created_at_ms < stale_before_ms {
                give_up(d, "not delivered: stale (queued longer ago than webhooks.stale_after_ms)")?;
                continue;
            }
            let Some(subscription) = load(store, &d.subscription_id)? else {
                store.delete_delivery(tenant, &d)?;
                continue;
            };
            if subscription.status != SubscriptionStatus::Active {
                store.defer_delivery(tenant, &d, now_ms.saturating_add(PAUSED_RECHECK_MS))?;
                continue;
            }
            let event = match store.event(&d.event_id)? {
                Some(event) if event.tenant_id == tenant => event,
                _ => {
                    give_up(d, "not delivered: the event is not in the log")?;
                    continue;
                }
            };
            if !matches(&subscription, &event, true) {
                give_up(d, "not delivered: the subscription no longer receives this event")?;
                continue;
            }
            let lease_until_ms = now_ms.saturating_add(lease_ms);
            d.lease_until_ms = Some(lease_until_ms);
            store.save_delivery(tenant, &d)?;
            out.push(Due {
                delivery_id: d.delivery_id,
                attempts: d.attempts,
                subscription,
                event_body: event.body,
                event_id: event.event_id,
                event_type: d.event_type,
                trace_id: event.trace_id,
                event_tenant: tenant.to_string(),
                lease_until_ms,
            });
        }
        if out.len() == room || exhausted || window >= LEASE_SCAN_MAX {
            break;
        }
        window = window.saturating_mul(2).min(LEASE_SCAN_MAX);
    }
    Ok(out)
}

/// Deletes up to `max` finished delivery records (delivered or failed) kept with `tenant` that
/// finished before `before_ms`: a shared store's retention sweep, one tenant's unit at a time.
/// Returns how many went.
pub fn sweep_tenant_deliveries(store: &dyn WebhookStore, tenant: &str, before_ms: i64, max: usize) -> GatewayResult<usize> {
    let finished = store.finished_deliveries(tenant, before_ms, max)?;
    for d in &finished {
        store.delete_delivery(tenant, d)?;
    }
    Ok(finished.len())
}

/// Filters of the delivery lists.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// PENDING, SUCCESS, FAILED or RETRYING.
    pub status: Option<String>,
    /// Created at or after (ms).
    pub from_ms: Option<i64>,
    /// Created at or before (ms).
    pub to_ms: Option<i64>,
    /// Page size.
    pub limit: usize,
    /// The offset reached.
    pub cursor: Option<String>,
}

impl DeliveryFilter {
    /// Whether `d` is one of the deliveries this filter selects.
    pub fn admits(&self, d: &Delivery) -> bool {
        self.status.as_ref().is_none_or(|s| s == d.status.as_str())
            && self.from_ms.is_none_or(|from| d.created_at_ms >= from)
            && self.to_ms.is_none_or(|to| d.created_at_ms <= to)
    }
}

/// One page of a subscription's deliveries, newest first (`WebhookDeliveryListResponse`).
pub fn list_deliveries(store: &dyn WebhookStore, sub: &Subscription, f: &DeliveryFilter) -> GatewayResult<DeliveryPage> {
    if let Some(s) = &f.status
        && DeliveryStatus::parse(s).is_none()
    {
        return Err(GatewayError::invalid(format!("`status` `{s}` is not PENDING, SUCCESS, FAILED or RETRYING")));
    }
    let offset = parse_cursor(f.cursor.as_deref())?;
    let mut deliveries: Vec<DeliveryView> =
        store.subscription_deliveries(sub, f, offset, f.limit.saturating_add(1))?.iter().map(Delivery::view).collect();
    let more = deliveries.len() > f.limit;
    deliveries.truncate(f.limit);
    let next_cursor = more.then(|| (offset + f.limit).to_string());
    Ok(DeliveryPage { deliveries, has_more: more, next_cursor })
}

/// The most events one replay scans in its window; a larger window is refused.
pub const REPLAY_SCAN_LIMIT: usize = 10_000;

/// `POST /v1/admin/webhooks/{id}/replay`'s body.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ReplayRequest {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub event_types: Option<Vec<EventType>>,
    #[serde(default)]
    pub max_events: Option<u32>,
}

/// What one replay asks for: the window `[from_ms, to_ms]`, the event types (every type the
/// subscription receives when `None`) and the most deliverable events it may select.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// The window's start, inclusive.
    pub from_ms: i64,
    /// The window's end, inclusive.
    pub to_ms: i64,
    /// Only these event types, if given.
    pub only: Option<Vec<EventType>>,
    /// The most deliverable events the window may hold (1 to 1000).
    pub max_events: usize,
}

/// The events of the window that a replay to `sub` selects, oldest first, or the refusal: 409
/// `REPLAY_IN_PROGRESS` while an earlier replay of it is still being delivered, 400 when the
/// window holds more than `max_events` of them or more events than one replay scans (all or
/// narrow, per the spec's COMPLETENESS rule: the selection is never partial).
pub fn select_replay(store: &dyn Tx, sub: &Subscription, window: &ReplayWindow) -> GatewayResult<Vec<StoredEvent>> {
    if store.replay_owed(sub)? {
        return Err(GatewayError::new(
            ErrorCode::ReplayInProgress,
            format!("a replay to `{}` is still being delivered", sub.subscription_id),
        ));
    }
    let tenant = (!sub.is_system()).then_some(sub.tenant_id.as_str());
    let scanned = events::window(store, tenant, window.from_ms, window.to_ms, REPLAY_SCAN_LIMIT)?;
    if scanned.len() > REPLAY_SCAN_LIMIT {
        return Err(GatewayError::invalid(format!(
            "the window holds more than {REPLAY_SCAN_LIMIT} events, more than one replay scans; narrow `from`/`to`"
        )));
    }
    let selected: Vec<StoredEvent> = scanned
        .into_iter()
        .filter(|e| matches(sub, e, true) && window.only.as_deref().is_none_or(|types| types.contains(&e.event_type)))
        .collect();
    if selected.len() > window.max_events {
        return Err(GatewayError::invalid(format!(
            "the window holds {} deliverable events, more than `max_events` ({}); narrow `from`/`to` or raise `max_events` (at most 1000)",
            selected.len(),
            window.max_events
        )));
    }
    Ok(selected)
}

/// Queues a new delivery of each of `events` to `sub` under replay `replay_id`, each kept with
/// its event's tenant (on Redis a unit holds one tenant's, so a system-wide subscription's
/// replay queues each tenant's events in that tenant's unit). Returns how many.
pub fn enqueue_replay(store: &dyn WebhookStore, sub: &Subscription, events: &[StoredEvent], replay_id: &str, now_ms: i64) -> GatewayResult<usize> {
    for event in events {
        store.insert_delivery(&event.tenant_id, &Delivery::owed(&sub.subscription_id, event, Some(replay_id), now_ms))?;
    }
    Ok(events.len())
}

/// A replay in one unit of work (the embedded store, or a tenant's own subscription): selects
/// ([`select_replay`]) and queues every selected event ([`enqueue_replay`]), or neither.
/// Returns `(replay_id, events_queued)`.
pub fn replay(store: &dyn Tx, sub: &Subscription, window: &ReplayWindow, now_ms: i64) -> GatewayResult<(String, usize)> {
    let selected = select_replay(store, sub, window)?;
    let replay_id = new_id("rpl_");
    let queued = enqueue_replay(store, sub, &selected, &replay_id, now_ms)?;
    Ok((replay_id, queued))
}

/// Records the test probe's one attempt (it does not count toward the failure threshold).
pub fn record_test(store: &dyn WebhookStore, sub: &Subscription, event_id: &str, attempt: &Attempt, now_ms: i64) -> GatewayResult<()> {
    let status = if attempt.succeeded() { DeliveryStatus::Success } else { DeliveryStatus::Failed };
    let delivery = Delivery {
        delivery_id: new_id("whdel_"),
        subscription_id: sub.subscription_id.clone(),
        event_id: event_id.to_string(),
        event_type: EventType::SystemWebhookTest.as_str().to_string(),
        status,
        attempts: 1,
        created_at_ms: now_ms,
        attempted_at_ms: Some(now_ms),
        completed_at_ms: Some(now_ms),
        next_attempt_at_ms: None,
        lease_until_ms: None,
        response_status: attempt.status.map(i64::from),
        response_time_ms: Some(attempt.elapsed_ms),
        error_message: attempt.error.clone(),
        trace_id: None,
        replay_id: None,
    };
    // the probe's event is not in the log; its delivery is kept where the owner's events' are
    store.insert_delivery(&sub.tenant_id, &delivery)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn sub(tenant: &str) -> Subscription {
        Subscription {
            subscription_id: "whsub_1".into(),
            tenant_id: tenant.into(),
            name: None,
            description: None,
            url: "https://example.com/hook".into(),
            event_types: vec![EventType::ReservationDenied],
            event_categories: vec![],
            scope_filter: None,
            thresholds: None,
            signing_secret: new_secret(),
            headers: BTreeMap::new(),
            status: SubscriptionStatus::Active,
            retry_policy: RetryPolicy::default(),
            disable_after_failures: 10,
            consecutive_failures: 0,
            created_at_ms: 0,
            updated_at_ms: 0,
            last_triggered_at_ms: None,
            last_success_at_ms: None,
            last_failure_at_ms: None,
            metadata: None,
        }
    }

    fn event(tenant: &str, t: EventType, scope: Option<&str>) -> StoredEvent {
        StoredEvent {
            event_id: "evt_1".into(),
            tenant_id: tenant.into(),
            event_type: t,
            scope: scope.map(String::from),
            trace_id: None,
            at_ms: 0,
            body: String::new(),
        }
    }

    fn draft<'a>(s: &'a Subscription) -> SubscriptionDraft<'a> {
        SubscriptionDraft {
            tenant_id: &s.tenant_id,
            event_types: &s.event_types,
            event_categories: &s.event_categories,
            name: None,
            description: None,
            scope_filter: s.scope_filter.as_deref(),
            signing_secret: &s.signing_secret,
            headers: &s.headers,
            retry_policy: &s.retry_policy,
            disable_after_failures: s.disable_after_failures,
            thresholds: None,
        }
    }

    #[test]
    fn the_invariants_hold_on_every_draft() {
        let mut s = sub("acme");
        assert!(draft(&s).validate().is_ok());
        // INVARIANT 1.
        s.event_types.clear();
        assert!(draft(&s).validate().is_err_and(|e| e.message.contains("cannot both be empty")));
        s.event_categories = vec![EventCategory::Budget];
        assert!(draft(&s).validate().is_ok(), "category-only is allowed");
        // INVARIANT 2, for every admin-only type and category.
        for t in EventType::ALL.iter().filter(|t| !t.category().tenant_accessible()) {
            s.event_types = vec![*t];
            assert!(draft(&s).validate().is_err_and(|e| e.message.contains("admin-only")), "{t:?}");
            let mut system = s.clone();
            system.tenant_id = SYSTEM_TENANT.into();
            assert!(draft(&system).validate().is_ok(), "system subscriptions are exempt: {t:?}");
        }
        s.event_types = vec![EventType::BudgetExhausted];
        for c in EventCategory::ALL.iter().filter(|c| !c.tenant_accessible()) {
            s.event_categories = vec![*c];
            assert!(draft(&s).validate().is_err(), "{c:?}");
        }
    }

    #[test]
    fn delivery_matching_keeps_tenants_apart_and_admin_events_from_tenants() {
        let mut s = sub("acme");
        s.event_categories = vec![EventCategory::Budget];
        assert!(matches(&s, &event("acme", EventType::ReservationDenied, None), false));
        assert!(matches(&s, &event("acme", EventType::BudgetExhausted, None), false));
        assert!(!matches(&s, &event("other", EventType::ReservationDenied, None), false));
        assert!(!matches(&s, &event("acme", EventType::TenantCreated, None), false));
        // A record carrying an admin-only selector (written by some other path) still never
        // receives the admin-only event.
        s.event_types.push(EventType::ApiKeyCreated);
        assert!(!matches(&s, &event("acme", EventType::ApiKeyCreated, None), false));
        let mut system = s.clone();
        system.tenant_id = SYSTEM_TENANT.into();
        assert!(matches(&system, &event("other", EventType::ApiKeyCreated, None), false));
        s.scope_filter = Some("tenant:acme/app:x*".into());
        assert!(matches(&s, &event("acme", EventType::ReservationDenied, Some("tenant:acme/app:x/agent:a")), false));
        assert!(!matches(&s, &event("acme", EventType::ReservationDenied, Some("tenant:acme/app:y")), false));
        s.status = SubscriptionStatus::Paused;
        assert!(!matches(&s, &event("acme", EventType::ReservationDenied, Some("tenant:acme/app:x")), false));
    }

    #[test]
    fn the_retry_schedule_is_the_specs() {
        let p = RetryPolicy::default();
        let delays: Vec<u64> = (1..=6).map(|n| p.delay_ms(n)).collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000, 16000, 32000]);
        let capped = RetryPolicy { max_delay_ms: 5000, ..p };
        assert_eq!(capped.delay_ms(4), 5000);
        assert_eq!(RetryPolicy { backoff_multiplier: 10.0, ..p }.delay_ms(u32::MAX), 60_000);
        assert!(RetryPolicy { max_retries: 11, ..p }.validate().is_err());
        assert!(RetryPolicy { initial_delay_ms: 50, ..p }.validate().is_err());
    }

    /// One tenant's backlog (or its tarpit endpoints) cannot hold the dispatcher: leasing
    /// takes every tenant's oldest due delivery first and caps each tenant's in-flight sends.
    #[test]
    fn leasing_is_fair_across_tenants_and_caps_each_tenants_sends_in_flight() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::events::SCHEMA).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        for (tenant, id) in [("noisy", "whsub_noisy"), ("quiet", "whsub_quiet")] {
            save(&conn, &Subscription { subscription_id: id.into(), ..sub(tenant) }).unwrap();
        }
        // the noisy tenant queued 10 deliveries before the quiet one queued its one
        let mut n = 0;
        for (tenant, id, count) in [("noisy", "whsub_noisy", 10), ("quiet", "whsub_quiet", 1)] {
            for _ in 0..count {
                n += 1;
                conn.execute(
                    "INSERT INTO events (event_id, tenant_id, event_type, category, at_ms, body) \
                     VALUES (?1, ?2, 'reservation.denied', 'reservation', ?3, '{}')",
                    params![format!("evt_{n:03}"), tenant, n],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO webhook_deliveries (delivery_id, subscription_id, event_id, event_type, status, created_at_ms, next_attempt_at_ms) \
                     VALUES (?1, ?2, ?3, 'reservation.denied', 'PENDING', ?4, ?4)",
                    params![format!("whdel_{n:03}"), id, format!("evt_{n:03}"), n],
                )
                .unwrap();
            }
        }
        let owners = |due: &[Due]| due.iter().map(|d| d.subscription.tenant_id.clone()).collect::<Vec<_>>();
        let first = lease_due(&conn, 100, 4, 60_000, 2).unwrap();
        assert_eq!(owners(&first), ["noisy", "quiet", "noisy"], "oldest of each tenant first, 2 noisy at most");
        // the noisy tenant has 2 in flight: nothing more for it until they finish
        let second = lease_due(&conn, 100, 4, 60_000, 2).unwrap();
        assert!(second.is_empty(), "{:?}", owners(&second));
        // once the leases lapse (a dispatcher died mid-send) the same three are due again
        let third = lease_due(&conn, 100 + 60_001, 4, 60_000, 2).unwrap();
        let ids = |due: &[Due]| due.iter().map(|d| d.delivery_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&third), ids(&first));
        // a day later, whatever is still owed is stale: failed, not sent; and once finished
        // longer than the retention, a record goes
        let day = 86_400_000;
        let late = lease_due_with(&conn, day + 1_000, 4, 60_000, 2, 1_000).unwrap();
        assert!(late.is_empty(), "{:?}", owners(&late));
        let failed: i64 = conn
            .query_row("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'FAILED' AND error_message LIKE '%stale%'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(failed, 11);
        assert_eq!(sweep_deliveries(&conn, day + 1_000, 100).unwrap(), 0, "completed just now");
        assert_eq!(sweep_deliveries(&conn, day + 2_000, 100).unwrap(), 11);
    }

    #[test]
    fn address_ranges_contain_what_they_should() {
        let policy = WebhookSettings::default();
        for blocked in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.9",
            "172.31.255.255",
            "169.254.169.254",
            "::1",
            "::ffff:127.0.0.1",
            "fd00::1",
            // review findings: the unspecified address, multicast, and IPv4 inside IPv6 forms
            "::",
            "0.0.0.0",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "::7f00:1",
            "64:ff9b::a00:1",
        ] {
            assert!(policy.blocks(blocked.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))), "{blocked}");
        }
        for open in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "64:ff9b::808:808"] {
            assert!(!policy.blocks(open.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))), "{open}");
        }
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(policy.check_form("http://example.com/").is_err());
        assert!(policy.check_form("https://user:pw@example.com/").is_err());
        assert!(policy.check_form("ftp://example.com/").is_err());
        assert!(policy.check_form("https://example.com/hook").is_ok());
        assert!(WebhookSettings { allow_http: true, ..WebhookSettings::default() }.check_form("http://example.com/").is_ok());
    }
}

//! The wire types of the Cycles runtime protocol (`cycles-protocol-v0.yaml` components) and
//! their validation: the spec's bounds, charsets and scope derivation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{GatewayError, GatewayResult};

/// `UnitEnum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum Unit {
    UsdMicrocents,
    Tokens,
    Credits,
    RiskPoints,
}

impl Unit {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::UsdMicrocents => "USD_MICROCENTS",
            Unit::Tokens => "TOKENS",
            Unit::Credits => "CREDITS",
            Unit::RiskPoints => "RISK_POINTS",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Unit> {
        match s {
            "USD_MICROCENTS" => Some(Unit::UsdMicrocents),
            "TOKENS" => Some(Unit::Tokens),
            "CREDITS" => Some(Unit::Credits),
            "RISK_POINTS" => Some(Unit::RiskPoints),
            _ => None,
        }
    }
}

/// `Amount` (non-negative) and, for balances, `SignedAmount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    /// The unit.
    pub unit: Unit,
    /// The amount (int64).
    pub amount: i64,
}

impl Amount {
    /// `amount` of `unit`.
    pub fn new(unit: Unit, amount: i64) -> Self {
        Amount { unit, amount }
    }

    /// Checks `minimum: 0`.
    pub fn validate(&self, field: &str) -> GatewayResult<()> {
        if self.amount < 0 {
            return Err(GatewayError::invalid(format!("`{field}.amount` must be >= 0, got {}", self.amount)));
        }
        Ok(())
    }
}

/// `CommitOveragePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum OveragePolicy {
    Reject,
    #[default]
    AllowIfAvailable,
    AllowWithOverdraft,
}

impl OveragePolicy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OveragePolicy::Reject => "REJECT",
            OveragePolicy::AllowIfAvailable => "ALLOW_IF_AVAILABLE",
            OveragePolicy::AllowWithOverdraft => "ALLOW_WITH_OVERDRAFT",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<OveragePolicy> {
        match s {
            "REJECT" => Some(OveragePolicy::Reject),
            "ALLOW_IF_AVAILABLE" => Some(OveragePolicy::AllowIfAvailable),
            "ALLOW_WITH_OVERDRAFT" => Some(OveragePolicy::AllowWithOverdraft),
            _ => None,
        }
    }
}

/// `Subject`: the budgeting dimensions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Subject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<BTreeMap<String, String>>,
}

/// The canonical scope levels, in order.
pub const LEVELS: [&str; 6] = ["tenant", "workspace", "app", "workflow", "agent", "toolset"];

/// Whether `s` is a valid standard-field value (`^[a-zA-Z0-9_.-]+$`, at most 128 characters).
pub fn valid_scope_value(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Subject {
    /// The standard fields in canonical order.
    pub fn levels(&self) -> [(&'static str, Option<&str>); 6] {
        [
            ("tenant", self.tenant.as_deref()),
            ("workspace", self.workspace.as_deref()),
            ("app", self.app.as_deref()),
            ("workflow", self.workflow.as_deref()),
            ("agent", self.agent.as_deref()),
            ("toolset", self.toolset.as_deref()),
        ]
    }

    /// Checks the schema: at least one standard field, the charset, the dimension bounds.
    pub fn validate(&self) -> GatewayResult<()> {
        let mut any = false;
        for (level, value) in self.levels() {
            if let Some(v) = value {
                any = true;
                if !valid_scope_value(v) {
                    return Err(GatewayError::invalid(format!(
                        "`subject.{level}` must match ^[a-zA-Z0-9_.-]+$ and be 1-128 characters, got `{v}`"
                    )));
                }
            }
        }
        if !any {
            return Err(GatewayError::invalid(
                "`subject` needs at least one of tenant, workspace, app, workflow, agent, toolset",
            ));
        }
        if let Some(d) = &self.dimensions {
            if d.len() > 16 {
                return Err(GatewayError::invalid("`subject.dimensions` has more than 16 entries"));
            }
            if let Some((k, _)) = d.iter().find(|(_, v)| v.len() > 256) {
                return Err(GatewayError::invalid(format!("`subject.dimensions.{k}` is longer than 256 characters")));
            }
        }
        Ok(())
    }

    /// SCOPE DERIVATION: the canonical scope identifiers, shortest first; only the levels given.
    pub fn scopes(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(6);
        let mut path = String::new();
        for (level, value) in self.levels() {
            if let Some(v) = value {
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(level);
                path.push(':');
                path.push_str(v);
                out.push(path.clone());
            }
        }
        out
    }
}

/// Parses a canonical scope path (`tenant:acme/workspace:prod`) into its levels, checking the
/// canonical order and the charset.
pub fn parse_scope(scope: &str) -> GatewayResult<Vec<(&'static str, String)>> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut last = None::<usize>;
    for part in scope.split('/') {
        let (level, value) = part
            .split_once(':')
            .ok_or_else(|| GatewayError::invalid(format!("scope `{scope}`: `{part}` is not `level:value`")))?;
        let index = LEVELS
            .iter()
            .position(|l| *l == level)
            .ok_or_else(|| GatewayError::invalid(format!("scope `{scope}`: unknown level `{level}`")))?;
        if last.is_some_and(|l| index <= l) {
            return Err(GatewayError::invalid(format!(
                "scope `{scope}`: levels must follow tenant, workspace, app, workflow, agent, toolset"
            )));
        }
        if !valid_scope_value(value) {
            return Err(GatewayError::invalid(format!("scope `{scope}`: `{value}` must match ^[a-zA-Z0-9_.-]+$")));
        }
        last = Some(index);
        out.push((LEVELS[index], value.to_string()));
    }
    Ok(out)
}

/// `Action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Action {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

impl Action {
    /// The schema's bounds.
    pub fn validate(&self) -> GatewayResult<()> {
        if self.kind.is_empty() || self.kind.len() > 64 {
            return Err(GatewayError::invalid("`action.kind` must be 1-64 characters"));
        }
        if self.name.is_empty() || self.name.len() > 256 {
            return Err(GatewayError::invalid("`action.name` must be 1-256 characters"));
        }
        if let Some(tags) = &self.tags
            && (tags.len() > 10 || tags.iter().any(|t| t.len() > 64)) {
                return Err(GatewayError::invalid("`action.tags`: at most 10 tags of at most 64 characters"));
            }
        Ok(())
    }
}

/// Checks an `IdempotencyKey` and that the `X-Idempotency-Key` header, if present, matches.
pub fn check_idempotency_key(body_key: &str, header_key: Option<&str>) -> GatewayResult<()> {
    if body_key.is_empty() || body_key.len() > 256 {
        return Err(GatewayError::invalid("`idempotency_key` must be 1-256 characters"));
    }
    if let Some(h) = header_key
        && h != body_key {
            return Err(GatewayError::invalid(
                "the X-Idempotency-Key header and body.idempotency_key must match",
            ));
        }
    Ok(())
}

/// `ReservationCreateRequest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ReserveRequest {
    pub idempotency_key: String,
    pub subject: Subject,
    pub action: Action,
    pub estimate: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage_policy: Option<OveragePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// v0.1.26 `observe_mode` (a SHOULD for v0.1.25 servers): OBSERVE evaluates without
    /// mutating and reports the decision as an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observe_mode: Option<ObserveMode>,
}

/// v0.1.26 `ObserveModeEnum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ObserveMode {
    /// A synonym of ENFORCE.
    Disabled,
    /// Evaluate fully, change nothing, emit `reservation.observed_*`.
    Observe,
    /// Normal enforcement (the default).
    Enforce,
}

impl ObserveMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObserveMode::Disabled => "DISABLED",
            ObserveMode::Observe => "OBSERVE",
            ObserveMode::Enforce => "ENFORCE",
        }
    }
}

impl ReserveRequest {
    /// The schema's bounds.
    pub fn validate(&self) -> GatewayResult<()> {
        self.subject.validate()?;
        self.action.validate()?;
        self.estimate.validate("estimate")?;
        if let Some(ttl) = self.ttl_ms
            && !(1000..=86_400_000).contains(&ttl) {
                return Err(GatewayError::invalid(format!("`ttl_ms` must be 1000-86400000, got {ttl}")));
            }
        if let Some(g) = self.grace_period_ms
            && !(0..=60_000).contains(&g) {
                return Err(GatewayError::invalid(format!("`grace_period_ms` must be 0-60000, got {g}")));
            }
        Ok(())
    }
}

/// `CommitRequest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CommitRequest {
    pub idempotency_key: String,
    pub actual: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// `ReleaseRequest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ReleaseRequest {
    pub idempotency_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `ReservationExtendRequest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ExtendRequest {
    pub idempotency_key: String,
    pub extend_by_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// `DecisionRequest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct DecisionRequest {
    pub idempotency_key: String,
    pub subject: Subject,
    pub action: Action,
    pub estimate: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// `EventCreateRequest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct EventRequest {
    pub idempotency_key: String,
    pub subject: Subject,
    pub action: Action,
    pub actual: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage_policy: Option<OveragePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_time_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// `Balance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Balance {
    pub scope: String,
    pub scope_path: String,
    pub remaining: Amount,
    pub reserved: Amount,
    pub spent: Amount,
    pub allocated: Amount,
    pub debt: Amount,
    pub overdraft_limit: Amount,
    pub is_over_limit: bool,
}

/// `BudgetLedger`: one budget as the admin plane shows it (createBudget, listBudgets,
/// fundBudget's target, freeze and unfreeze, and the admin view of getBalances).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetLedger {
    /// The budget's id (`ldg_...`).
    pub ledger_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its scope path.
    pub scope: String,
    /// The same path (the spec names it twice).
    pub scope_path: String,
    /// Its unit.
    pub unit: Unit,
    /// What was allocated.
    pub allocated: Amount,
    /// `allocated - spent - reserved - debt`.
    pub remaining: Amount,
    /// Held by open reservations.
    pub reserved: Amount,
    /// Committed.
    pub spent: Amount,
    /// Committed beyond what remained (overdraft).
    pub debt: Amount,
    /// How far debt may go.
    pub overdraft_limit: Amount,
    /// Whether debt exceeds the overdraft limit.
    pub is_over_limit: bool,
    /// `ACTIVE`, `FROZEN` or `CLOSED`.
    pub status: String,
    /// The budget's own overage policy, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_overage_policy: Option<OveragePolicy>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// One page of getBalances: the runtime's `BalanceResponse` (`Balance` items) or the admin
/// plane's `BalanceListResponse` (`BudgetLedger` items).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancePage<T> {
    /// The page's items.
    pub balances: Vec<T>,
    /// Whether more follow.
    pub has_more: bool,
    /// The cursor of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> BalancePage<T> {
    /// The page of `items` starting at `offset`, at most `limit` (at least 1) long; its cursor
    /// is the offset of the next page.
    pub fn of(items: Vec<T>, offset: usize, limit: usize) -> Self {
        debug_assert!(limit > 0, "a page of no items never advances");
        let total = items.len();
        let balances: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
        let end = offset.saturating_add(balances.len());
        let has_more = end < total;
        BalancePage { balances, has_more, next_cursor: has_more.then(|| end.to_string()) }
    }

    /// The same page with each item mapped (so a page is cut before its items are built).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> BalancePage<U> {
        BalancePage { balances: self.balances.into_iter().map(f).collect(), has_more: self.has_more, next_cursor: self.next_cursor }
    }
}

/// getBalances' answer, in the view its parameters chose. Serialize only: the two views carry
/// no tag, and `Balance` accepts unknown fields, so a derived `Deserialize` would read every
/// admin page as the runtime's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BalancesResponse {
    /// The runtime's view (subject filters).
    Runtime(BalancePage<Balance>),
    /// The admin plane's view (`tenant_id`, `scope_prefix`, `unit`).
    Admin(BalancePage<BudgetLedger>),
}

/// A status enum of the Cycles admin plane, its wire names written once: the variants with
/// serde's names, `as_str`, `from_name`, and `parse` (a 400 naming the field and listing every
/// name).
macro_rules! wire_status {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every wire name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($wire,)+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }

            /// The status of wire name `name`, if it is one.
            pub fn from_name(name: &str) -> Option<$name> {
                match name {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The status named `name`, or 400 naming `field` and the names it may be.
            pub fn parse(name: &str, field: &str) -> Result<$name, crate::error::GatewayError> {
                $name::from_name(name).ok_or_else(|| {
                    crate::error::GatewayError::invalid(format!(
                        "`{field}` must be {}, got `{name}`",
                        one_of(Self::NAMES)
                    ))
                })
            }
        }
    };
}

/// `A, B or C`.
fn one_of(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

wire_status! {
    /// `Tenant.status`.
    TenantStatus {
        /// Normal operations.
        Active = "ACTIVE",
        /// Read-only: no new reservations.
        Suspended = "SUSPENDED",
        /// Terminal; its budgets, keys and reservations were closed, revoked and released.
        Closed = "CLOSED",
    }
}

/// `Tenant` (governance admin v0.1.25, with the v0.1.26 extension's `observe_mode`): the
/// stored record and every tenant answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Its id.
    pub tenant_id: String,
    /// Its human-readable name.
    pub name: String,
    /// ACTIVE, SUSPENDED or CLOSED.
    pub status: TenantStatus,
    /// The parent tenant, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_tenant_id: Option<String>,
    /// The overage policy of reservations that name none.
    pub default_commit_overage_policy: OveragePolicy,
    /// The TTL of reservations that name none.
    pub default_reservation_ttl_ms: i64,
    /// The longest TTL a reservation gets.
    pub max_reservation_ttl_ms: i64,
    /// How many times a reservation may be extended.
    pub max_reservation_extensions: i64,
    /// As given at creation (not enforced: expiry always releases after the grace period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_expiry_policy: Option<String>,
    /// The integrator's key-value pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// v0.1.26 observe mode; absent: ENFORCE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observe_mode: Option<ObserveMode>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// When it was last suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<String>,
    /// When it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
}

impl Tenant {
    /// Its observe mode in force (ENFORCE when none was set; DISABLED reads as ENFORCE).
    pub fn mode(&self) -> ObserveMode {
        match self.observe_mode {
            Some(ObserveMode::Observe) => ObserveMode::Observe,
            _ => ObserveMode::Enforce,
        }
    }
}

wire_status! {
    /// `ApiKey.status`. EXPIRED is never stored: an ACTIVE key reads as EXPIRED once its
    /// `expires_at` has passed.
    ApiKeyStatus {
        /// It authenticates.
        Active = "ACTIVE",
        /// Revoked for good.
        Revoked = "REVOKED",
        /// Past its `expires_at`.
        Expired = "EXPIRED",
    }
}

/// A stored key record without a status reads as ACTIVE (the `status` column decides anyway).
impl Default for ApiKeyStatus {
    fn default() -> Self {
        ApiKeyStatus::Active
    }
}

/// `ApiKey` (governance admin v0.1.25) plus this gateway's `role`: the stored record (the
/// `api_keys.body` column) and the answer of listApiKeys, updateApiKey and revokeApiKey. The
/// secret is never in it, only its prefix. `scope_filter` and `last_used_at` are not kept: a
/// scope filter is refused when asked for, and use is not tracked. Only the ids are required
/// to read a stored record, so a record missing a display field can still be listed, changed
/// and revoked (the `api_keys` columns hold the status and expiry that decide).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Its id.
    pub key_id: String,
    /// The tenant it authenticates.
    pub tenant_id: String,
    /// The secret's first 15 characters, to recognise it by.
    #[serde(default)]
    pub key_prefix: String,
    /// Its human-readable name (the principal's name).
    #[serde(default)]
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The principal's role (this gateway's extension); absent on keys from before roles,
    /// which are `agent` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// What it may do.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// ACTIVE, REVOKED or EXPIRED.
    #[serde(default)]
    pub status: ApiKeyStatus,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub created_at: String,
    /// When it stops working.
    #[serde(default)]
    pub expires_at: String,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Why, as the revoker said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
    /// The integrator's key-value pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// createApiKey's answer (`ApiKeyCreateResponse`, plus the key's name and role): the only
/// answer that carries the secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyCreated {
    /// Its id.
    pub key_id: String,
    /// The whole secret, shown once.
    pub key_secret: String,
    /// The secret's first 15 characters.
    pub key_prefix: String,
    /// The tenant it authenticates.
    pub tenant_id: String,
    /// Its name.
    pub name: String,
    /// The principal's role.
    pub role: String,
    /// What it may do.
    pub permissions: Vec<String>,
    /// When it was created.
    pub created_at: String,
    /// When it stops working.
    pub expires_at: String,
}

/// listApiKeys' answer (`ApiKeyListResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyList {
    /// One page of the keys.
    pub keys: Vec<ApiKey>,
    /// Whether more follow.
    pub has_more: bool,
    /// The cursor of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// listTenants' answer (`TenantListResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantList {
    /// One page of the tenants.
    pub tenants: Vec<Tenant>,
    /// Whether more follow.
    pub has_more: bool,
    /// The cursor of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// listBudgets' answer (`BudgetListResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerList {
    /// One page of the budgets.
    pub ledgers: Vec<BudgetLedger>,
    /// Whether more follow.
    pub has_more: bool,
    /// The cursor of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `BudgetFundingResponse`: a funding operation's before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingResponse {
    /// CREDIT, DEBIT, RESET, REPAY_DEBT or RESET_SPENT.
    pub operation: String,
    /// `allocated` before.
    pub previous_allocated: Amount,
    /// `allocated` after.
    pub new_allocated: Amount,
    /// `remaining` before.
    pub previous_remaining: Amount,
    /// `remaining` after.
    pub new_remaining: Amount,
    /// `debt` before.
    pub previous_debt: Amount,
    /// `debt` after.
    pub new_debt: Amount,
    /// `spent` before.
    pub previous_spent: Amount,
    /// `spent` after.
    pub new_spent: Amount,
    /// When it was applied (RFC 3339).
    pub timestamp: String,
}

/// `ReservationCreateResponse`: a hold (ALLOW with its id), or a dry run's or an observed
/// reservation's verdict (no id; DENY with its reason).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservationCreateResponse {
    /// Allow or deny.
    pub decision: BudgetDecision,
    /// The new reservation; absent on a dry run or in observe mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    /// What is held (or would be, on an allowed dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<Amount>,
    /// The hold's expiry (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// The hold's lifetime left when the answer was made (recomputed on a replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_ttl_ms: Option<i64>,
    /// The deepest affected scope.
    pub scope_path: String,
    /// Every affected scope, in canonical order.
    pub affected_scopes: Vec<String>,
    /// The affected scopes' balances (a dry run's or an observed reservation's answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balances: Option<Vec<Balance>>,
    /// Why a dry run or an observed reservation would be denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// v0.1.26 `DenyDetail` of an observed denial (observe mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_detail: Option<DenyDetail>,
}

/// v0.1.26 `DenyDetail`: why a reservation was (or in observe mode would have been) denied.
/// The fields this ledger can fill; the spec's `quota_violation` and `blocked_by_policy`
/// belong to action quotas and named policies, which it does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyDetail {
    /// The `DecisionReasonCode`: `BUDGET_EXCEEDED`, `BUDGET_NOT_FOUND`, `TENANT_CLOSED`, ...
    pub reason_code: String,
    /// The most specific scope that ran out or is frozen, closed or in debt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by_scope: Option<String>,
    /// What that scope has left, in the reservation's unit (negative in overdraft).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_remaining: Option<i64>,
    /// What an operator can do about it, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_fix: Option<String>,
}

impl DenyDetail {
    /// A detail that names only its reason.
    pub fn reason(reason_code: &str) -> Self {
        DenyDetail { reason_code: reason_code.to_string(), blocked_by_scope: None, budget_remaining: None, suggested_fix: None }
    }
}

/// `ReservationDetail` (and, without the metadata, `ReservationSummary`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservationDetail {
    /// The reservation's id.
    pub reservation_id: String,
    /// `ACTIVE`, `COMMITTED`, `RELEASED` or `EXPIRED`.
    pub status: String,
    /// The subject as the client sent it.
    pub subject: Subject,
    /// The action as the client sent it.
    pub action: Action,
    /// The hold.
    pub reserved: Amount,
    /// When it was made (ms).
    pub created_at_ms: i64,
    /// When it expires (ms).
    pub expires_at_ms: i64,
    /// The deepest affected scope.
    pub scope_path: String,
    /// Every affected scope, in canonical order.
    pub affected_scopes: Vec<String>,
    /// The idempotency key it was created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// What a commit charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<Amount>,
    /// When it was committed or released (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalized_at_ms: Option<i64>,
    /// The client's metadata (detail only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The commit's metadata (detail only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_metadata: Option<Value>,
}

/// `ReservationListResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservationListResponse {
    /// One page, newest first.
    pub reservations: Vec<ReservationDetail>,
    /// Whether another page follows.
    pub has_more: bool,
    /// The next page's cursor, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The `status` of a settled ledger operation's answer: one value per response schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AnswerStatus {
    /// `CommitResponse`.
    Committed,
    /// `ReleaseResponse`.
    Released,
    /// `ReservationExtendResponse`: the reservation stays active.
    Active,
    /// `EventCreateResponse`.
    Applied,
}

/// `CommitResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitResponse {
    /// [`AnswerStatus::Committed`].
    pub status: AnswerStatus,
    /// What the budgets were charged (less than the actual amount when an overage was capped).
    pub charged: Amount,
    /// What went back from an over-reservation, if anything did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Amount>,
    /// Every affected scope's balance after the commit.
    pub balances: Vec<Balance>,
}

/// `ReleaseResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseResponse {
    /// [`AnswerStatus::Released`].
    pub status: AnswerStatus,
    /// The hold that went back to the budgets.
    pub released: Amount,
    /// Every affected scope's balance after the release.
    pub balances: Vec<Balance>,
}

/// `ReservationExtendResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendResponse {
    /// [`AnswerStatus::Active`].
    pub status: AnswerStatus,
    /// The new expiry (ms).
    pub expires_at_ms: i64,
    /// The lifetime left when the answer was made (recomputed on a replay).
    pub remaining_ttl_ms: i64,
}

/// `DecisionEnum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BudgetDecision {
    /// Enough budget in every affected scope.
    Allow,
    /// Not enough, or the tenant is closed; `reason_code` says which.
    Deny,
}

/// `DecisionResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionResponse {
    /// Allow or deny.
    pub decision: BudgetDecision,
    /// Why a denial was made (`DecisionReasonCode`); absent on an allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// The canonical scopes the decision read, in canonical order.
    pub affected_scopes: Vec<String>,
}

/// `EventCreateResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCreateResponse {
    /// [`AnswerStatus::Applied`].
    pub status: AnswerStatus,
    /// The debit's id.
    pub event_id: String,
    /// The amount applied, when an overage was capped below the actual amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charged: Option<Amount>,
    /// Every affected scope's balance after the debit.
    pub balances: Vec<Balance>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Each status's one table gives serde, `as_str`, `from_name` and the 400's wording.
    #[test]
    fn status_wire_names_agree_everywhere() {
        for name in TenantStatus::NAMES {
            let status = TenantStatus::from_name(name).unwrap();
            assert_eq!((status.as_str(), serde_json::to_value(status).unwrap()), (*name, serde_json::json!(name)));
        }
        for name in ApiKeyStatus::NAMES {
            let status = ApiKeyStatus::from_name(name).unwrap();
            assert_eq!((status.as_str(), serde_json::to_value(status).unwrap()), (*name, serde_json::json!(name)));
        }
        assert_eq!(
            TenantStatus::parse("GONE", "status").unwrap_err().message,
            "`status` must be ACTIVE, SUSPENDED or CLOSED, got `GONE`"
        );
        assert_eq!(
            ApiKeyStatus::parse("LOST", "status").unwrap_err().message,
            "`status` must be ACTIVE, REVOKED or EXPIRED, got `LOST`"
        );
    }

    /// The typed answers write the JSON the untyped ones did: optional fields only when set,
    /// and each status as the schema's one value. (A stored answer is read back into them on a
    /// replay, so a change here would also break replays across an upgrade.)
    #[test]
    fn ledger_answers_keep_the_cycles_wire_shape() {
        let tokens = |n| Amount::new(Unit::Tokens, n);
        let commit = CommitResponse { status: AnswerStatus::Committed, charged: tokens(5), released: None, balances: vec![] };
        assert_eq!(
            serde_json::to_value(&commit).unwrap(),
            serde_json::json!({"status": "COMMITTED", "charged": {"unit": "TOKENS", "amount": 5}, "balances": []})
        );
        let with_release = CommitResponse { released: Some(tokens(2)), ..commit };
        assert_eq!(serde_json::to_value(&with_release).unwrap()["released"], serde_json::json!({"unit": "TOKENS", "amount": 2}));
        let decision = DecisionResponse { decision: BudgetDecision::Deny, reason_code: Some("BUDGET_EXCEEDED".into()), affected_scopes: vec!["tenant:a".into()] };
        assert_eq!(
            serde_json::to_value(&decision).unwrap(),
            serde_json::json!({"decision": "DENY", "reason_code": "BUDGET_EXCEEDED", "affected_scopes": ["tenant:a"]})
        );
        let allow = DecisionResponse { decision: BudgetDecision::Allow, reason_code: None, affected_scopes: vec![] };
        assert_eq!(serde_json::to_value(&allow).unwrap(), serde_json::json!({"decision": "ALLOW", "affected_scopes": []}));
        let event = EventCreateResponse { status: AnswerStatus::Applied, event_id: "evt_1".into(), charged: None, balances: vec![] };
        assert_eq!(serde_json::to_value(&event).unwrap(), serde_json::json!({"status": "APPLIED", "event_id": "evt_1", "balances": []}));
        let extend = ExtendResponse { status: AnswerStatus::Active, expires_at_ms: 9, remaining_ttl_ms: 4 };
        assert_eq!(serde_json::to_value(&extend).unwrap(), serde_json::json!({"status": "ACTIVE", "expires_at_ms": 9, "remaining_ttl_ms": 4}));
        let held = ReservationCreateResponse {
            decision: BudgetDecision::Allow,
            reservation_id: Some("rsv_1".into()),
            reserved: Some(tokens(7)),
            expires_at_ms: Some(60),
            remaining_ttl_ms: Some(50),
            scope_path: "tenant:a".into(),
            affected_scopes: vec!["tenant:a".into()],
            balances: None,
            reason_code: None,
            deny_detail: None,
        };
        assert_eq!(
            serde_json::to_value(&held).unwrap(),
            serde_json::json!({"decision": "ALLOW", "reservation_id": "rsv_1", "reserved": {"unit": "TOKENS", "amount": 7},
                "expires_at_ms": 60, "remaining_ttl_ms": 50, "scope_path": "tenant:a", "affected_scopes": ["tenant:a"]})
        );
        let dry_deny = ReservationCreateResponse {
            decision: BudgetDecision::Deny,
            reservation_id: None,
            reserved: None,
            expires_at_ms: None,
            remaining_ttl_ms: None,
            balances: Some(vec![]),
            reason_code: Some("BUDGET_EXCEEDED".into()),
            ..held
        };
        assert_eq!(
            serde_json::to_value(&dry_deny).unwrap(),
            serde_json::json!({"decision": "DENY", "scope_path": "tenant:a", "affected_scopes": ["tenant:a"], "balances": [],
                "reason_code": "BUDGET_EXCEEDED"})
        );
        let release = ReleaseResponse { status: AnswerStatus::Released, released: tokens(3), balances: vec![] };
        let round_trip: ReleaseResponse = serde_json::from_value(serde_json::to_value(&release).unwrap()).unwrap();
        assert_eq!(round_trip, release);
    }

    /// The balance answers write what the hand-built JSON did: a `BudgetLedger` with every
    /// field of the spec (its overage policy only when set), and a page's cursor only when
    /// more follow.
    #[test]
    fn balance_answers_keep_the_cycles_wire_shape() {
        let tokens = |n| Amount::new(Unit::Tokens, n);
        let ledger = BudgetLedger {
            ledger_id: "ldg_1".into(),
            tenant_id: "acme".into(),
            scope: "tenant:acme".into(),
            scope_path: "tenant:acme".into(),
            unit: Unit::Tokens,
            allocated: tokens(100),
            remaining: tokens(60),
            reserved: tokens(30),
            spent: tokens(10),
            debt: tokens(0),
            overdraft_limit: tokens(0),
            is_over_limit: false,
            status: "ACTIVE".into(),
            commit_overage_policy: None,
            created_at: "2026-11-28T00:00:00.000Z".into(),
            updated_at: "2026-11-28T00:00:01.000Z".into(),
        };
        let t = |n| serde_json::json!({"unit": "TOKENS", "amount": n});
        let expected = serde_json::json!({
            "ledger_id": "ldg_1", "tenant_id": "acme", "scope": "tenant:acme", "scope_path": "tenant:acme",
            "unit": "TOKENS", "allocated": t(100), "remaining": t(60), "reserved": t(30), "spent": t(10),
            "debt": t(0), "overdraft_limit": t(0), "is_over_limit": false, "status": "ACTIVE",
            "created_at": "2026-11-28T00:00:00.000Z", "updated_at": "2026-11-28T00:00:01.000Z",
        });
        assert_eq!(serde_json::to_value(&ledger).unwrap(), expected);
        let with_policy = BudgetLedger { commit_overage_policy: Some(OveragePolicy::Reject), ..ledger.clone() };
        assert_eq!(serde_json::to_value(&with_policy).unwrap()["commit_overage_policy"], "REJECT");

        // pages: three items, two per page
        let first = BalancePage::of(vec![1, 2, 3], 0, 2);
        assert_eq!(serde_json::to_value(&first).unwrap(), serde_json::json!({"balances": [1, 2], "has_more": true, "next_cursor": "2"}));
        let last = BalancePage::of(vec![1, 2, 3], 2, 2);
        assert_eq!(serde_json::to_value(&last).unwrap(), serde_json::json!({"balances": [3], "has_more": false}));
        let past = BalancePage::of(vec![1, 2, 3], 9, 2);
        assert_eq!(serde_json::to_value(&past).unwrap(), serde_json::json!({"balances": [], "has_more": false}));
        // the two views of getBalances carry no tag
        let admin = BalancesResponse::Admin(BalancePage::of(vec![ledger], 0, 50));
        assert_eq!(serde_json::to_value(&admin).unwrap(), serde_json::json!({"balances": [expected], "has_more": false}));
    }

    #[test]
    fn scopes_skip_gaps_in_canonical_order() {
        let s = Subject {
            tenant: Some("acme".into()),
            agent: Some("bot".into()),
            workspace: Some("prod".into()),
            ..Subject::default()
        };
        assert_eq!(s.scopes(), ["tenant:acme", "tenant:acme/workspace:prod", "tenant:acme/workspace:prod/agent:bot"]);
    }

    #[test]
    fn scope_paths_parse_only_in_canonical_order() {
        assert!(parse_scope("tenant:a/workspace:b").is_ok());
        assert!(parse_scope("workspace:b/tenant:a").is_err());
        assert!(parse_scope("tenant:a b").is_err());
        assert!(parse_scope("planet:x").is_err());
    }
}

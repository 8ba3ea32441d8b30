//! Who is calling and what they may do, as the domain reads it: a [`Principal`] (an API key's
//! holder), its [`Role`] and its [`Permission`]s, one table pinned by a test in
//! `crate::auth`, which authenticates keys and gates every route over HTTP.


use crate::error::{ErrorDetails, GatewayError, GatewayResult};

/// The role of a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Runs a tenant: budgets, keys, targets, agents, grants.
    Operator,
    /// A named human deciding escalations and depth exceptions.
    Approver,
    /// An agent runtime: delegations, its own reservations, outcome reports.
    Agent,
    /// Reads only.
    Reader,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Operator, Role::Approver, Role::Agent, Role::Reader];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Agent => "agent",
            Role::Reader => "reader",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The permissions this role grants: THE table.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Operator => &[
                BudgetsRead,
                BudgetsWrite,
                BudgetsFund,
                BalancesRead,
                ReservationsList,
                ReservationsRelease,
                ReservationsReleaseOthers,
                ApiKeysRead,
                ApiKeysWrite,
                PoliciesRead,
                ChainsRead,
                TrustRead,
                EscalationsRead,
                EscalationTargetsRead,
                EscalationTargetsWrite,
                AgentsRead,
                AgentsWrite,
                GrantsWrite,
                GrantsSettle,
                OutcomesWrite,
                EventsRead,
                WebhooksRead,
                WebhooksWrite,
            ],
            Role::Approver => &[
                EscalationsRead,
                EscalationsDecide,
                DepthExceptionsCreate,
                EscalationTargetsRead,
                OutcomesWrite,
                ChainsRead,
                TrustRead,
                AgentsRead,
                BalancesRead,
                BudgetsRead,
                ReservationsList,
            ],
            Role::Agent => &[
                ReservationsCreate,
                ReservationsCommit,
                ReservationsRelease,
                ReservationsExtend,
                ReservationsList,
                BalancesRead,
                EventsCreate,
                DelegationsCreate,
                GrantsSettle,
                OutcomesWrite,
                ChainsRead,
                TrustRead,
            ],
            Role::Reader => &[
                BalancesRead,
                BudgetsRead,
                ReservationsList,
                PoliciesRead,
                ChainsRead,
                TrustRead,
                EscalationsRead,
                EscalationTargetsRead,
                AgentsRead,
                EventsRead,
            ],
        }
    }

    /// Whether this role grants `p`.
    pub fn grants(self, p: Permission) -> bool {
        self.permissions().contains(&p)
    }
}

macro_rules! permissions {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A permission an API key may hold. Names follow the Cycles governance admin spec's
        /// `Permission` enum where it has one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission {
            $($(#[$doc])* $variant,)*
        }

        impl Permission {
            /// Every permission.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)*
                }
            }
        }
    };
}

permissions! {
    /// `POST /v1/reservations`, `POST /v1/decide` (spec).
    ReservationsCreate = "reservations:create",
    /// Commit one's own reservation (spec).
    ReservationsCommit = "reservations:commit",
    /// Release one's own reservation (spec).
    ReservationsRelease = "reservations:release",
    /// Release a reservation another key of the tenant created (operators).
    ReservationsReleaseOthers = "reservations:release-others",
    /// Extend one's own reservation (spec).
    ReservationsExtend = "reservations:extend",
    /// List and read the tenant's reservations (spec).
    ReservationsList = "reservations:list",
    /// `GET /v1/balances` (spec).
    BalancesRead = "balances:read",
    /// `GET /v1/admin/budgets` (spec).
    BudgetsRead = "budgets:read",
    /// Create, freeze and unfreeze budgets (spec).
    BudgetsWrite = "budgets:write",
    /// CREDIT, DEBIT, RESET, REPAY_DEBT, RESET_SPENT (`POST /v1/admin/budgets/fund`).
    BudgetsFund = "budgets:fund",
    /// `GET /v1/policies/active` (spec).
    PoliciesRead = "policies:read",
    /// `POST /v1/events`: a direct debit.
    EventsCreate = "events:create",
    /// List and read API keys of one's tenant (spec: `admin:apikeys:read`).
    ApiKeysRead = "admin:apikeys:read",
    /// Create and revoke API keys of one's tenant; operator keys need the admin key (spec:
    /// `admin:apikeys:write`).
    ApiKeysWrite = "admin:apikeys:write",
    /// Read tenants (admin key only; spec).
    TenantsRead = "admin:tenants:read",
    /// Create and update tenants (admin key only; spec).
    TenantsWrite = "admin:tenants:write",
    /// Upload and roll forward the gateway-wide policy bundle (admin key only; spec).
    PoliciesAdminWrite = "admin:policies:write",
    /// `POST /v1/delegations`.
    DelegationsCreate = "delegations:create",
    /// `GET /v1/chains/{id}`.
    ChainsRead = "chains:read",
    /// `GET /v1/agents/{id}/trust`.
    TrustRead = "trust:read",
    /// `POST /v1/chains/{id}/outcome`.
    OutcomesWrite = "outcomes:write",
    /// List and read escalations.
    EscalationsRead = "escalations:read",
    /// Approve, deny or delegate an escalation.
    EscalationsDecide = "escalations:decide",
    /// Approve a depth exception (AG-396 4.12).
    DepthExceptionsCreate = "depth-exceptions:create",
    /// List escalation targets.
    EscalationTargetsRead = "escalation-targets:read",
    /// Register escalation targets.
    EscalationTargetsWrite = "escalation-targets:write",
    /// Read the agent registry.
    AgentsRead = "agents:read",
    /// Register and update agents.
    AgentsWrite = "agents:write",
    /// Issue root grants, revoke grants, set the tenant's authority settings, audit the escrow.
    GrantsWrite = "grants:write",
    /// Commit or release a grant one holds (operators: any grant of the tenant).
    GrantsSettle = "grants:settle",
    /// `GET /v1/events`: the tenant's event stream (spec).
    EventsRead = "events:read",
    /// List and read the tenant's webhook subscriptions and deliveries (spec).
    WebhooksRead = "webhooks:read",
    /// Create, update, delete and test the tenant's webhook subscriptions (spec).
    WebhooksWrite = "webhooks:write",
    /// Every tenant's events (admin key only; spec).
    AdminEventsRead = "admin:events:read",
    /// Every webhook subscription, system-wide ones and replays included (admin key only; spec).
    AdminWebhooksWrite = "admin:webhooks:write",
}

impl Permission {
    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.iter().copied().find(|p| p.as_str() == s)
    }

    /// Whether only the admin key holds it (no role grants it).
    pub fn admin_only(self) -> bool {
        !Role::ALL.iter().any(|r| r.grants(self))
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role a key gets when none is stored or asked for: `agent`, the least that keeps the
/// Cycles runtime clients working (reserve, commit, release, extend, balances).
pub const DEFAULT_ROLE: Role = Role::Agent;

/// The effective permissions of a key of `role` created with `requested` (None: the role's
/// set). A requested permission the role does not grant is an error naming it.
pub fn effective_permissions(role: Role, requested: Option<&[String]>) -> GatewayResult<Vec<Permission>> {
    match requested {
        None => Ok(role.permissions().to_vec()),
        Some(names) => {
            let mut out = Vec::with_capacity(names.len());
            for n in names {
                let p = Permission::parse(n).ok_or_else(|| {
                    GatewayError::invalid(format!("`permissions` contains `{n}`, which is not a permission of this gateway"))
                })?;
                if !role.grants(p) {
                    return Err(GatewayError::invalid(format!(
                        "`permissions` contains `{n}`, which role `{}` does not grant",
                        role.as_str()
                    )));
                }
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            Ok(out)
        }
    }
}

/// An authenticated API key's holder.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The tenant the key belongs to.
    pub tenant: String,
    /// The key's id.
    pub key_id: String,
    /// The principal's name: the human's name (approver, operator), the agent id (agent), a
    /// label (reader).
    pub name: String,
    /// The role.
    pub role: Role,
    /// What the key may do: its role's permissions, narrowed by the key's own list.
    pub permissions: Vec<Permission>,
}

impl Principal {
    /// Whether the key holds `p`.
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// 403 FORBIDDEN naming `p` unless the key holds it.
    pub fn require(&self, p: Permission) -> GatewayResult<()> {
        if self.has(p) {
            return Ok(());
        }
        Err(forbidden_for(p, Some(self)))
    }
}

/// The 403 of a missing permission.
pub fn forbidden_for(p: Permission, who: Option<&Principal>) -> GatewayError {
    let message = match who {
        Some(w) if p.admin_only() => format!(
            "permission `{p}` is required and only the admin key (X-Admin-API-Key) holds it; this key's role is `{}`",
            w.role.as_str()
        ),
        Some(w) => format!(
            "permission `{p}` is required; this API key (role `{}`, principal `{}`) does not hold it",
            w.role.as_str(),
            w.name
        ),
        None => format!("permission `{p}` is required"),
    };
    GatewayError::forbidden(message).with_details(ErrorDetails::Permission {
        required_permission: p.as_str().to_string(),
        role: who.map(|w| w.role.as_str().to_string()),
    })
}

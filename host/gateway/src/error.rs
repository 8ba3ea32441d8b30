//! The domain's error type, [`GatewayError`]: a Cycles `ErrorCode`, a message and
//! structured detail, returned by the domain (delegations, ledger, escalations, registry,
//! traces) and its stores. It knows nothing of HTTP: the table below gives each code the HTTP
//! status the spec pairs with it, as a number, and the HTTP layer (`crate::api_error`) renders
//! an error as the spec's `ErrorResponse` (`cycles-protocol-v0.yaml` §ERROR SEMANTICS).

use serde::Serialize;

/// Declares [`ErrorCode`] from one table: each code with its wire name and HTTP status.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal => $status:literal,)+) => {
        /// The code of an error answer: a Cycles v0.1.25 `ErrorCode` or one of the gateway's own.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The HTTP status the spec pairs with this code.
            pub fn http_status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)+
                }
            }

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)+
                }
            }
        }
    };
}

// THE table of the gateway's error codes (the Cycles v0.1.25 `ErrorCode`s and the gateway's
// own `ESCALATION_CLOSED`), pinned by `tests::error_code_table_is_pinned` and listed in the OpenAPI document.
error_codes! {
    /// The body, a query or a header is malformed or out of bounds; the message names the field.
    InvalidRequest = "INVALID_REQUEST" => 400,
    /// No or an unknown API key.
    Unauthorized = "UNAUTHORIZED" => 401,
    /// The key's role or principal may not do this.
    Forbidden = "FORBIDDEN" => 403,
    /// No such resource for this tenant.
    NotFound = "NOT_FOUND" => 404,
    /// Not enough budget (or escrow) left.
    BudgetExceeded = "BUDGET_EXCEEDED" => 409,
    /// The budget is frozen.
    BudgetFrozen = "BUDGET_FROZEN" => 409,
    /// The budget is closed.
    BudgetClosed = "BUDGET_CLOSED" => 409,
    /// The reservation expired.
    ReservationExpired = "RESERVATION_EXPIRED" => 410,
    /// The reservation was already committed or released.
    ReservationFinalized = "RESERVATION_FINALIZED" => 409,
    /// An idempotency key was reused with another request.
    IdempotencyMismatch = "IDEMPOTENCY_MISMATCH" => 409,
    /// An amount's unit is not the budget's.
    UnitMismatch = "UNIT_MISMATCH" => 400,
    /// The overdraft limit would be exceeded.
    OverdraftLimitExceeded = "OVERDRAFT_LIMIT_EXCEEDED" => 409,
    /// The scope carries debt that must be repaid first.
    DebtOutstanding = "DEBT_OUTSTANDING" => 409,
    /// A reservation was extended too often.
    MaxExtensionsExceeded = "MAX_EXTENSIONS_EXCEEDED" => 409,
    /// A rate or size limit.
    LimitExceeded = "LIMIT_EXCEEDED" => 429,
    /// The tenant is closed.
    TenantClosed = "TENANT_CLOSED" => 409,
    /// The resource exists already (a chain id, an outcome report, a key name).
    DuplicateResource = "DUPLICATE_RESOURCE" => 409,
    /// The API key was revoked and cannot be changed.
    KeyRevoked = "KEY_REVOKED" => 409,
    /// The API key is past its expiry and cannot be changed.
    KeyExpired = "KEY_EXPIRED" => 409,
    /// The escalation was already decided or expired.
    EscalationClosed = "ESCALATION_CLOSED" => 409,
    /// No such webhook subscription (or one of another tenant).
    WebhookNotFound = "WEBHOOK_NOT_FOUND" => 404,
    /// A webhook URL this gateway will not deliver to (scheme, form, or a blocked address).
    WebhookUrlInvalid = "WEBHOOK_URL_INVALID" => 400,
    /// No such event.
    EventNotFound = "EVENT_NOT_FOUND" => 404,
    /// A replay to the subscription is still being delivered.
    ReplayInProgress = "REPLAY_IN_PROGRESS" => 409,
    /// A failure of the gateway; the detail is in its log, never in the answer.
    InternalError = "INTERNAL_ERROR" => 500,
}

/// An error of the gateway's domain. Internal failures carry a generic message; their detail
/// goes to the log, never to the caller.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct GatewayError {
    /// The spec's error code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// Structured detail (`ErrorResponse.details`), boxed so that a `GatewayResult` stays small.
    pub details: Option<Box<ErrorDetails>>,
}

/// `ErrorResponse.details` (an open object in the spec), one shape per kind of error, each
/// written as a plain object.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ErrorDetails {
    /// A budget-state refusal (409): the blocking scope, what it has left, the amount asked
    /// for, and the v0.1.26 `DenyDetail` (a SHOULD there; `details` is open in v0.1.25).
    Budget {
        /// The blocking scope.
        scope: String,
        /// What it has left.
        remaining: i64,
        /// The amount asked for.
        requested: i64,
        /// Why, structured.
        deny_detail: crate::cycles::DenyDetail,
    },
    /// An amount that would overflow a budget counter (400).
    Overflow {
        /// The request field.
        field: String,
        /// The budget counter it would overflow.
        counter: String,
    },
    /// No budget in the request's unit at the deepest scope that has budgets (400
    /// `UNIT_MISMATCH`).
    UnitMismatch {
        /// That scope.
        scope: String,
        /// The request's unit.
        requested_unit: crate::cycles::Unit,
        /// The units it has budgets in.
        expected_units: Vec<String>,
    },
    /// A permission the key does not hold (403).
    Permission {
        /// The permission.
        required_permission: String,
        /// The key's role, when a key was presented.
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    /// A stored trace that does not verify (500): nothing is decided on altered history.
    Integrity {
        /// The first bad event.
        integrity_break: crate::traces::Break,
    },
    /// The record a conflicting request found, as it stands (an escalation that closed
    /// before the decision).
    Escalation(Box<crate::escalations::EscalationRecord>),
}

impl GatewayError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        GatewayError { code, message: message.into(), details: None }
    }

    /// INVALID_REQUEST.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// NOT_FOUND.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// FORBIDDEN.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// INTERNAL_ERROR; `detail` is logged, not returned.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::InternalError, "internal error; see the server log")
    }

    /// Adds `details`.
    pub fn with_details(mut self, details: ErrorDetails) -> Self {
        self.details = Some(Box::new(details));
        self
    }
}

impl From<rusqlite::Error> for GatewayError {
    fn from(e: rusqlite::Error) -> Self {
        GatewayError::internal(format!("store: {e}"))
    }
}

/// The result type of the domain and its stores.
pub type GatewayResult<T> = Result<T, GatewayError>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The error table, pinned: a change of a code or its status is a change of the API and
    /// must be made on purpose.
    #[test]
    fn error_code_table_is_pinned() {
        let table: Vec<(&str, u16)> = ErrorCode::ALL.iter().map(|c| (c.as_str(), c.http_status())).collect();
        assert_eq!(table, [
            ("INVALID_REQUEST", 400),
            ("UNAUTHORIZED", 401),
            ("FORBIDDEN", 403),
            ("NOT_FOUND", 404),
            ("BUDGET_EXCEEDED", 409),
            ("BUDGET_FROZEN", 409),
            ("BUDGET_CLOSED", 409),
            ("RESERVATION_EXPIRED", 410),
            ("RESERVATION_FINALIZED", 409),
            ("IDEMPOTENCY_MISMATCH", 409),
            ("UNIT_MISMATCH", 400),
            ("OVERDRAFT_LIMIT_EXCEEDED", 409),
            ("DEBT_OUTSTANDING", 409),
            ("MAX_EXTENSIONS_EXCEEDED", 409),
            ("LIMIT_EXCEEDED", 429),
            ("TENANT_CLOSED", 409),
            ("DUPLICATE_RESOURCE", 409),
            ("KEY_REVOKED", 409),
            ("KEY_EXPIRED", 409),
            ("ESCALATION_CLOSED", 409),
            ("WEBHOOK_NOT_FOUND", 404),
            ("WEBHOOK_URL_INVALID", 400),
            ("EVENT_NOT_FOUND", 404),
            ("REPLAY_IN_PROGRESS", 409),
            ("INTERNAL_ERROR", 500),
        ]);
        for c in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(c.as_str()), "serde and the table agree");
        }
    }

    /// The OpenAPI document lists exactly the table's codes.
    #[test]
    fn openapi_lists_every_error_code() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
        let line = doc.lines().find(|l| l.trim_start().starts_with("error: {type: string, enum:")).unwrap();
        let listed = line.split('[').nth(1).unwrap().split(']').next().unwrap();
        let listed: Vec<&str> = listed.split(',').map(str::trim).collect();
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, codes);
    }
}

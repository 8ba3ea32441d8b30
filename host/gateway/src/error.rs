//! The one API error type: a Cycles `ErrorCode`, an HTTP status and a message. The HTTP layer
//! renders it as the spec's `ErrorResponse` (`cycles-protocol-v0.yaml` §ERROR SEMANTICS;
//! `crate::server`).

use axum::http::StatusCode;
use serde::Serialize;

/// Declares [`ErrorCode`] from one table: each code with its wire name and HTTP status.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal => $status:ident,)+) => {
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
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)+
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
    InvalidRequest = "INVALID_REQUEST" => BAD_REQUEST,
    /// No or an unknown API key.
    Unauthorized = "UNAUTHORIZED" => UNAUTHORIZED,
    /// The key's role or principal may not do this.
    Forbidden = "FORBIDDEN" => FORBIDDEN,
    /// No such resource for this tenant.
    NotFound = "NOT_FOUND" => NOT_FOUND,
    /// Not enough budget (or escrow) left.
    BudgetExceeded = "BUDGET_EXCEEDED" => CONFLICT,
    /// The budget is frozen.
    BudgetFrozen = "BUDGET_FROZEN" => CONFLICT,
    /// The budget is closed.
    BudgetClosed = "BUDGET_CLOSED" => CONFLICT,
    /// The reservation expired.
    ReservationExpired = "RESERVATION_EXPIRED" => GONE,
    /// The reservation was already committed or released.
    ReservationFinalized = "RESERVATION_FINALIZED" => CONFLICT,
    /// An idempotency key was reused with another request.
    IdempotencyMismatch = "IDEMPOTENCY_MISMATCH" => CONFLICT,
    /// An amount's unit is not the budget's.
    UnitMismatch = "UNIT_MISMATCH" => BAD_REQUEST,
    /// The overdraft limit would be exceeded.
    OverdraftLimitExceeded = "OVERDRAFT_LIMIT_EXCEEDED" => CONFLICT,
    /// The scope carries debt that must be repaid first.
    DebtOutstanding = "DEBT_OUTSTANDING" => CONFLICT,
    /// A reservation was extended too often.
    MaxExtensionsExceeded = "MAX_EXTENSIONS_EXCEEDED" => CONFLICT,
    /// A rate or size limit.
    LimitExceeded = "LIMIT_EXCEEDED" => TOO_MANY_REQUESTS,
    /// The tenant is closed.
    TenantClosed = "TENANT_CLOSED" => CONFLICT,
    /// The resource exists already (a chain id, an outcome report, a key name).
    DuplicateResource = "DUPLICATE_RESOURCE" => CONFLICT,
    /// The API key was revoked and cannot be changed.
    KeyRevoked = "KEY_REVOKED" => CONFLICT,
    /// The API key is past its expiry and cannot be changed.
    KeyExpired = "KEY_EXPIRED" => CONFLICT,
    /// The escalation was already decided or expired.
    EscalationClosed = "ESCALATION_CLOSED" => CONFLICT,
    /// No such webhook subscription (or one of another tenant).
    WebhookNotFound = "WEBHOOK_NOT_FOUND" => NOT_FOUND,
    /// A webhook URL this gateway will not deliver to (scheme, form, or a blocked address).
    WebhookUrlInvalid = "WEBHOOK_URL_INVALID" => BAD_REQUEST,
    /// No such event.
    EventNotFound = "EVENT_NOT_FOUND" => NOT_FOUND,
    /// A replay to the subscription is still being delivered.
    ReplayInProgress = "REPLAY_IN_PROGRESS" => CONFLICT,
    /// A failure of the gateway; the detail is in its log, never in the answer.
    InternalError = "INTERNAL_ERROR" => INTERNAL_SERVER_ERROR,
}

/// An error answer of the API. Internal failures carry a generic message; their detail goes to
/// the log, never to the caller.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// The spec's error code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// Structured detail (`ErrorResponse.details`).
    pub details: Option<serde_json::Value>,
    /// Overrides the code's status (413 for a body over the limit).
    pub status: Option<StatusCode>,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), details: None, status: None }
    }

    /// 400 INVALID_REQUEST.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// 404 NOT_FOUND.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 403 FORBIDDEN.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 500 INTERNAL_ERROR; `detail` is logged, not returned.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::InternalError, "internal error; see the server log")
    }

    /// Adds `details`.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Overrides the HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| self.code.status())
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::internal(format!("store: {e}"))
    }
}

/// The result type of handlers and ledger operations.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The error table, pinned: a change of a code or its status is a change of the API and
    /// must be made on purpose.
    #[test]
    fn error_code_table_is_pinned() {
        let table: Vec<(&str, u16)> = ErrorCode::ALL.iter().map(|c| (c.as_str(), c.status().as_u16())).collect();
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

//! The one API error type: a Cycles `ErrorCode`, an HTTP status and a message, rendered as the
//! spec's `ErrorResponse` (`cycles-protocol-v0.yaml` §ERROR SEMANTICS).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::server::RequestContext;

/// The `ErrorCode` enum of the Cycles protocol, plus nothing else: gateway-only failures map
/// onto these codes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    BudgetExceeded,
    BudgetFrozen,
    BudgetClosed,
    ReservationExpired,
    ReservationFinalized,
    IdempotencyMismatch,
    UnitMismatch,
    OverdraftLimitExceeded,
    DebtOutstanding,
    MaxExtensionsExceeded,
    LimitExceeded,
    TenantClosed,
    DuplicateResource,
    EscalationClosed,
    InternalError,
}

impl ErrorCode {
    /// The HTTP status the spec pairs with this code; the one place that mapping lives.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::UnitMismatch => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::BudgetExceeded
            | ErrorCode::BudgetFrozen
            | ErrorCode::BudgetClosed
            | ErrorCode::ReservationFinalized
            | ErrorCode::IdempotencyMismatch
            | ErrorCode::OverdraftLimitExceeded
            | ErrorCode::DebtOutstanding
            | ErrorCode::MaxExtensionsExceeded
            | ErrorCode::TenantClosed
            | ErrorCode::DuplicateResource
            | ErrorCode::EscalationClosed => StatusCode::CONFLICT,
            ErrorCode::ReservationExpired => StatusCode::GONE,
            ErrorCode::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::BudgetExceeded => "BUDGET_EXCEEDED",
            ErrorCode::BudgetFrozen => "BUDGET_FROZEN",
            ErrorCode::BudgetClosed => "BUDGET_CLOSED",
            ErrorCode::ReservationExpired => "RESERVATION_EXPIRED",
            ErrorCode::ReservationFinalized => "RESERVATION_FINALIZED",
            ErrorCode::IdempotencyMismatch => "IDEMPOTENCY_MISMATCH",
            ErrorCode::UnitMismatch => "UNIT_MISMATCH",
            ErrorCode::OverdraftLimitExceeded => "OVERDRAFT_LIMIT_EXCEEDED",
            ErrorCode::DebtOutstanding => "DEBT_OUTSTANDING",
            ErrorCode::MaxExtensionsExceeded => "MAX_EXTENSIONS_EXCEEDED",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::TenantClosed => "TENANT_CLOSED",
            ErrorCode::DuplicateResource => "DUPLICATE_RESOURCE",
            ErrorCode::EscalationClosed => "ESCALATION_CLOSED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }
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

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ctx = RequestContext::current();
        let body = ErrorBody {
            error: self.code.as_str(),
            message: &self.message,
            request_id: ctx.as_ref().map(|c| c.request_id.clone()).unwrap_or_default(),
            trace_id: ctx.map(|c| c.trace_id),
            details: self.details.as_ref(),
        };
        (self.status(), axum::Json(body)).into_response()
    }
}

/// The result type of handlers and ledger operations.
pub type ApiResult<T> = Result<T, ApiError>;

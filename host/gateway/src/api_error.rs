//! The HTTP layer's error answer, [`ApiError`]: a domain [`GatewayError`] with the HTTP status
//! it is sent with, rendered as the spec's `ErrorResponse` (`cycles-protocol-v0.yaml` §ERROR
//! SEMANTICS) with the request's ids. Handlers return [`ApiResult`]; a domain error converts
//! with `?`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorCode, GatewayError};
use crate::context::RequestContext;

/// An error answer of the API.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    /// What went wrong, as the domain says it.
    pub error: GatewayError,
    /// Overrides the code's status where HTTP decides it: 413 for a body over the limit, 409
    /// for a refused roll-forward.
    pub status: Option<StatusCode>,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        GatewayError::new(code, message).into()
    }

    /// 400 INVALID_REQUEST.
    pub fn invalid(message: impl Into<String>) -> Self {
        GatewayError::invalid(message).into()
    }

    /// 404 NOT_FOUND.
    pub fn not_found(message: impl Into<String>) -> Self {
        GatewayError::not_found(message).into()
    }

    /// 403 FORBIDDEN.
    pub fn forbidden(message: impl Into<String>) -> Self {
        GatewayError::forbidden(message).into()
    }

    /// 500 INTERNAL_ERROR; `detail` is logged, not returned.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        GatewayError::internal(detail).into()
    }

    /// Adds `details`.
    pub fn with_details(mut self, details: crate::error::ErrorDetails) -> Self {
        self.error.details = Some(Box::new(details));
        self
    }

    /// Overrides the HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// The HTTP status of this error: the override, or the one the table pairs with its code.
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| status_of(self.error.code))
    }
}

/// The status the error table pairs with `code`.
pub fn status_of(code: ErrorCode) -> StatusCode {
    // every number in the table is a valid status (`every_code_has_a_valid_status`)
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An answer reads as the domain error it carries (`e.code`, `e.message`).
impl std::ops::Deref for ApiError {
    type Target = GatewayError;

    fn deref(&self) -> &GatewayError {
        &self.error
    }
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        ApiError { error, status: None }
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// The spec's `ErrorResponse`.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a crate::error::ErrorDetails>,
}

/// An [`ApiError`] as the spec's `ErrorResponse`, with the request's ids.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ctx = RequestContext::current();
        let body = ErrorBody {
            error: self.error.code.as_str(),
            message: &self.error.message,
            request_id: ctx.as_ref().map(|c| c.request_id.clone()).unwrap_or_default(),
            trace_id: ctx.map(|c| c.trace_id),
            details: self.error.details.as_deref(),
        };
        (self.status(), axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layers, pinned: the domain and its stores (every module but the HTTP layer's)
    /// import nothing of HTTP: no axum, and none of the HTTP layer's modules.
    #[test]
    fn the_domain_imports_nothing_of_http() {
        const HTTP_LAYER: &[&str] = &[
            "admin_api.rs", "api_error.rs", "auth.rs", "authority.rs", "bundles.rs", "cycles_api.rs",
            "delegations_api.rs", "escalations_api.rs", "events_api.rs", "openapi.rs", "serve.rs",
            "server.rs", "several_gateways.rs", "lib.rs",
        ];
        const HTTP_NAMES: &[&str] = &[
            "axum", "crate::server", "crate::api_error", "crate::auth", "crate::bundles", "crate::admin_api",
            "crate::authority", "crate::cycles_api", "crate::delegations_api", "crate::escalations_api",
            "crate::events_api", "crate::openapi", "crate::serve",
        ];
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut checked = 0;
        let mut pending = vec![src.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("the source directory") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let relative = path.strip_prefix(&src).expect("under src").to_string_lossy().into_owned();
                let test_only = relative.ends_with("tests.rs") || relative == "test_redis.rs";
                if !relative.ends_with(".rs") || HTTP_LAYER.contains(&relative.as_str()) || relative.starts_with("bin/") || test_only {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("readable source");
                // the code before its tests: a test may drive the HTTP layer
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                    for name in HTTP_NAMES {
                        assert!(!line.contains(name), "{relative} uses `{name}`: {line}");
                    }
                }
                checked += 1;
            }
        }
        assert!(checked >= 30, "only {checked} domain files found");
    }

    /// Every status in the error table is one HTTP knows, so [`status_of`] never falls back.
    #[test]
    fn every_code_has_a_valid_status() {
        for &code in ErrorCode::ALL {
            let status = StatusCode::from_u16(code.http_status());
            assert!(status.is_ok_and(|s| s.is_client_error() || s.is_server_error()), "{code:?}");
        }
    }
}

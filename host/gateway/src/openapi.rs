//! The OpenAPI document: `docs/openapi.yaml`, committed and served verbatim at
//! `GET /openapi.yaml`. Written by hand (the Cycles paths reference the spec's schemas by
//! name) rather than generated, so the contract is reviewed as a file; a test checks that every
//! path in it is routed.

use axum::http::header;
use axum::response::IntoResponse;

/// The committed document.
pub const OPENAPI_YAML: &str = include_str!("../docs/openapi.yaml");

/// `GET /openapi.yaml`.
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}

/// Every `(method, path)` the document declares, in order.
pub fn documented_operations() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in OPENAPI_YAML.lines() {
        if line == "paths:" {
            in_paths = true;
            continue;
        }
        if !in_paths {
            continue;
        }
        if !line.starts_with(' ') && !line.is_empty() {
            break;
        }
        if let Some(path) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            current = Some(format!("/{path}"));
        } else if let Some(method) = line.strip_prefix("    ").and_then(|m| m.strip_suffix(':'))
            && matches!(method, "get" | "post" | "patch" | "delete" | "put")
                && let Some(p) = &current {
                    out.push((method.to_uppercase(), p.clone()));
                }
    }
    out
}

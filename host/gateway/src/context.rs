//! The correlation of the request being handled: its request id, its trace id and, once
//! authenticated, its tenant and actor. The HTTP layer ([`crate::server`]) opens a context for
//! each request; the domain reads it (an event's correlation ids, an error's request id)
//! without knowing about HTTP.

use std::future::Future;
use std::sync::{Arc, Mutex};

/// Per-request correlation: request id, trace id and, once authenticated, the tenant.
#[derive(Debug)]
pub struct RequestContext {
    /// `X-Request-Id`.
    pub request_id: String,
    /// `X-Cycles-Trace-Id` (32 lowercase hex).
    pub trace_id: String,
    tenant: Mutex<Option<String>>,
    actor: Mutex<Option<crate::events::Actor>>,
}

tokio::task_local! {
    static CONTEXT: Arc<RequestContext>;
}

impl RequestContext {
    /// The context of the request being handled on this task, if any.
    pub fn current() -> Option<RequestContextView> {
        CONTEXT
            .try_with(|c| RequestContextView {
                request_id: c.request_id.clone(),
                trace_id: c.trace_id.clone(),
                actor: c.actor.lock().ok().and_then(|a| a.clone()),
            })
            .ok()
    }

    /// Records who is calling (the actor of the events the request causes).
    pub fn note_actor(actor: crate::events::Actor) {
        let _ = CONTEXT.try_with(|c| {
            if let Ok(mut a) = c.actor.lock() {
                *a = Some(actor);
            }
        });
    }

    /// Records the authenticated tenant of the current request (the `X-Cycles-Tenant` header).
    pub fn note_tenant(tenant: &str) {
        let _ = CONTEXT.try_with(|c| {
            if let Ok(mut t) = c.tenant.lock() {
                *t = Some(tenant.to_string());
            }
        });
    }

    /// A context with these ids, no tenant and no actor yet.
    pub fn new(request_id: String, trace_id: String) -> Self {
        RequestContext { request_id, trace_id, tenant: Mutex::new(None), actor: Mutex::new(None) }
    }

    /// The tenant noted for this request, if any.
    pub fn tenant(&self) -> Option<String> {
        self.tenant.lock().ok().and_then(|t| t.clone())
    }

    /// Runs `work` with `context` as the current request's.
    pub async fn scope<F: Future>(context: Arc<RequestContext>, work: F) -> F::Output {
        CONTEXT.scope(context, work).await
    }
}

/// A copy of the current request's ids.
#[derive(Debug, Clone)]
pub struct RequestContextView {
    /// `X-Request-Id`.
    pub request_id: String,
    /// `X-Cycles-Trace-Id`.
    pub trace_id: String,
    /// Who is calling, once authenticated.
    pub actor: Option<crate::events::Actor>,
}

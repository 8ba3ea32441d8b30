//! Webhook delivery: the background dispatcher that sends the queued deliveries
//! ([`crate::webhooks`]) and the one signed HTTP POST every delivery and test probe makes.
//!
//! Each delivery is the event's JSON exactly as the log holds it, signed with the
//! subscription's secret: `X-Cycles-Signature: sha256=<hex HMAC-SHA256(secret, body)>`
//! (`cycles-protocol-v0.yaml` §WEBHOOK EVENT GUIDANCE), with `X-Cycles-Event-Id`,
//! `X-Cycles-Event-Type`, `X-Cycles-Trace-Id` and a `traceparent` carrying the event's trace.
//! Delivery is at least once: a delivery is leased before it is sent and recorded after, so a
//! gateway that dies in between sends it again once the lease lapses (receivers deduplicate on
//! the event id, as the spec says they must).
//!
//! Against SSRF the client resolves names itself ([`GuardedResolver`]) and refuses an address
//! in a blocked range at connect time (so a name that re-resolves to an internal address after
//! the subscription was checked is still refused), and follows no redirects.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::backend::Backend;
use crate::util::{now_ms, random_hex};
use crate::webhooks::{self, Attempt, Due, WebhookSettings};

/// How many deliveries one dispatcher round leases.
const BATCH: usize = 32;
/// Sends in flight at once, across tenants.
const IN_FLIGHT: usize = 128;
/// How much longer than one attempt's timeout a leased delivery is kept from other
/// dispatchers (so a lease outlives the attempt it covers; a dispatcher that dies mid-attempt
/// delays that delivery by at most the timeout plus this).
const LEASE_MARGIN_MS: i64 = 5_000;

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", crate::util::hex(&mac.finalize().into_bytes()))
}

/// A DNS resolver that refuses names resolving into a blocked range.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    settings: Arc<WebhookSettings>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let settings = Arc::clone(&self.settings);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| settings.blocks(a.ip())) {
                return Err(format!("`{host}` resolves to an address inside a blocked range").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Sends deliveries: one HTTP client for every subscription.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    settings: Arc<WebhookSettings>,
}

impl Sender {
    /// A sender under `settings`.
    pub fn new(settings: WebhookSettings) -> Result<Sender, String> {
        settings.validate()?;
        let settings = Arc::new(settings);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { settings: Arc::clone(&settings) }))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the target itself, past the guarded resolver.
            .no_proxy()
            .timeout(Duration::from_millis(settings.delivery_timeout_ms))
            .user_agent(concat!("sbd-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Sender { client, settings })
    }

    /// The settings in force.
    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// POSTs `body` (an event's JSON) to `sub`'s URL, signed; never fails, the outcome is the
    /// [`Attempt`].
    pub async fn send(
        &self,
        sub: &webhooks::Subscription,
        body: &str,
        event_id: &str,
        event_type: &str,
        trace_id: Option<&str>,
    ) -> Attempt {
        let started = Instant::now();
        let failed = |error: String, started: Instant| Attempt {
            status: None,
            elapsed_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            error: Some(error),
        };
        let url = match self.settings.check_form(&sub.url) {
            Ok(url) => url,
            Err(e) => return failed(e.message, started),
        };
        // An address literal is never resolved, so the resolver's guard does not see it.
        if let Some(ip) = url.host_str().and_then(|h| h.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok())
            && self.settings.blocks(ip)
        {
            return failed("the address is inside a blocked range".into(), started);
        }
        let trace = trace_id.map_or_else(|| random_hex(16), String::from);
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-cycles-event-id", event_id)
            .header("x-cycles-event-type", event_type)
            .header("x-cycles-signature", signature(&sub.signing_secret, body.as_bytes()))
            .header("x-cycles-trace-id", &trace)
            .header("traceparent", format!("00-{trace}-{}-01", random_hex(8)));
        for (name, value) in &sub.headers {
            request = request.header(name, value);
        }
        match request.body(body.to_string()).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let elapsed_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
                let error = (!(200..300).contains(&status)).then(|| format!("the endpoint answered HTTP {status}"));
                Attempt { status: Some(status), elapsed_ms, error }
            }
            Err(e) => failed(describe(&e), started),
        }
    }
}

/// The error with its causes (reqwest's own message hides the resolver's refusal).
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Sends `due` and records the outcome.
async fn deliver(store: Backend, sender: Sender, due: Due) {
    let attempt = sender
        .send(&due.subscription, &due.event_body, &due.event_id, &due.event_type, due.trace_id.as_deref())
        .await;
    let now = now_ms();
    let id = due.delivery_id.clone();
    match store.record_attempt(due, attempt, now).await {
        Ok(status) => tracing::debug!(delivery = %id, status, "webhook delivery"),
        // The lease lapses and the delivery is tried again.
        Err(e) => tracing::warn!(delivery = %id, error = %e, "webhook delivery: recording the attempt failed"),
    }
}

/// Runs one dispatcher round: leases up to `capacity` due deliveries (fair across tenants,
/// see [`webhooks::lease_due`]) and starts sending them on `sends`; it does not wait for them.
/// Returns how many were leased.
pub async fn round(store: &Backend, sender: &Sender, sends: &mut tokio::task::JoinSet<()>, capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let now = now_ms();
    let lease = i64::try_from(sender.settings.delivery_timeout_ms).unwrap_or(i64::MAX / 2).saturating_add(LEASE_MARGIN_MS);
    let per_tenant = sender.settings.max_in_flight_per_tenant;
    let stale_before = now.saturating_sub(i64::try_from(sender.settings.stale_after_ms).unwrap_or(i64::MAX));
    let due = match store.lease_deliveries(now, capacity, lease, per_tenant, stale_before).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "webhook dispatcher: leasing deliveries failed");
            return 0;
        }
    };
    let leased = due.len();
    for d in due {
        sends.spawn(deliver(store.clone(), sender.clone(), d));
    }
    leased
}

/// Starts the dispatcher. At most `IN_FLIGHT` sends run at once; it leases more as soon as
/// some finish (a slow endpoint holds its own sends, not the round), and otherwise every
/// `poll_interval_ms`.
pub fn spawn(store: Backend, sender: Sender) -> tokio::task::JoinHandle<()> {
    let interval = Duration::from_millis(sender.settings.poll_interval_ms);
    tokio::spawn(async move {
        let mut sends = tokio::task::JoinSet::new();
        loop {
            while sends.try_join_next().is_some() {}
            let free = IN_FLIGHT.saturating_sub(sends.len());
            let leased = round(&store, &sender, &mut sends, free.min(BATCH)).await;
            if leased < BATCH.min(free) || free == 0 {
                // nothing more due (or no room): wait for the interval or a send to finish
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    Some(_) = sends.join_next(), if !sends.is_empty() => {}
                }
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2, as the header writes it.
    #[test]
    fn the_signature_is_hmac_sha256_in_lowercase_hex() {
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

//! Prometheus metrics (`GET /metrics`, text exposition): decisions by verdict and reason,
//! request latency, reservations, escalations and the active policy version.

use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::policy::PolicyVersion;

/// The gateway's metric families.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `sbd_decisions_total{verdict, reason}`.
    pub decisions: IntCounterVec,
    /// `sbd_decision_seconds`: policy evaluation time.
    pub decision_seconds: HistogramVec,
    /// `sbd_http_request_seconds{route, method, status}`.
    pub http: HistogramVec,
    /// `sbd_reservations_total{outcome}`: created, denied, committed, released, extended, expired.
    pub reservations: IntCounterVec,
    /// `sbd_escalations_total{decision}`: CREATED and each decision.
    pub escalations: IntCounterVec,
    /// `sbd_policy_active{name, version, config_digest}` = 1.
    pub policy: IntGaugeVec,
    /// `sbd_delegation_warnings_total{reason}`: warnings of granted hops (`depth-warning`: a
    /// hop at 75% of the depth limit); each is also a `warning` event in the chain's trace.
    pub delegation_warnings: IntCounterVec,
    /// `sbd_trace_integrity_failures_total`: chains served by `GET /v1/chains/{id}` whose stored
    /// trace did not verify.
    pub trace_integrity_failures: IntCounter,
}

const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

impl Metrics {
    /// Registers every family.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let decisions =
            IntCounterVec::new(Opts::new("sbd_decisions_total", "Delegation decisions by verdict and reason"), &[
                "verdict", "reason",
            ])?;
        let decision_seconds = HistogramVec::new(
            HistogramOpts::new("sbd_decision_seconds", "Policy evaluation time per delegation")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["verdict"],
        )?;
        let http = HistogramVec::new(
            HistogramOpts::new("sbd_http_request_seconds", "HTTP request latency").buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method", "status"],
        )?;
        let reservations = IntCounterVec::new(
            Opts::new("sbd_reservations_total", "Ledger reservation lifecycle events"),
            &["outcome"],
        )?;
        let escalations =
            IntCounterVec::new(Opts::new("sbd_escalations_total", "Escalations created and decided"), &["decision"])?;
        let policy = IntGaugeVec::new(Opts::new("sbd_policy_active", "The active policy version (value 1)"), &[
            "name",
            "version",
            "config_digest",
        ])?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(decision_seconds.clone()))?;
        registry.register(Box::new(http.clone()))?;
        registry.register(Box::new(reservations.clone()))?;
        registry.register(Box::new(escalations.clone()))?;
        registry.register(Box::new(policy.clone()))?;
        let delegation_warnings = IntCounterVec::new(
            Opts::new("sbd_delegation_warnings_total", "Warnings of granted delegations by reason (depth-warning at 75% of the depth limit)"),
            &["reason"],
        )?;
        let trace_integrity_failures = IntCounter::new(
            "sbd_trace_integrity_failures_total",
            "Chains whose stored trace failed hash-chain or signature verification when read",
        )?;
        registry.register(Box::new(delegation_warnings.clone()))?;
        registry.register(Box::new(trace_integrity_failures.clone()))?;
        Ok(Metrics {
            registry,
            decisions,
            decision_seconds,
            http,
            reservations,
            escalations,
            policy,
            delegation_warnings,
            trace_integrity_failures,
        })
    }

    /// Records one HTTP request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let mut buf = itoa_u16(status);
        self.http.with_label_values(&[route, method, buf.as_str()]).observe(elapsed.as_secs_f64());
        buf.clear();
    }

    /// Marks `v` as the active policy (and only it).
    pub fn set_policy(&self, v: &PolicyVersion) {
        self.policy.reset();
        self.policy.with_label_values(&[v.name.as_str(), v.version.as_str(), v.config_digest.as_str()]).set(1);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics: encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

fn itoa_u16(n: u16) -> String {
    n.to_string()
}

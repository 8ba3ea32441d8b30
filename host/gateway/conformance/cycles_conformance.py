#!/usr/bin/env python3
"""A black-box Cycles v0.1.25 conformance runner (../shared/specs/cycles/CONFORMANCE.md).

Point it at any Cycles server with its admin key:

    python3 host/gateway/conformance/cycles_conformance.py --base http://127.0.0.1:7878 --admin-key K

or let it start this repository's gateway itself (a temporary data directory, a free loopback
port, webhooks to loopback allowed for the delivery checks):

    python3 host/gateway/conformance/cycles_conformance.py --sbd target/release/sbd

It provisions what it needs through the reference governance-admin shapes (tenants, API keys
with explicit permissions, budgets), then checks the 12 MUST operations, the core invariants
(atomic and concurrency-safe reservation, idempotent commit and release, unit consistency),
the error semantics, the closed-tenant guard, the event stream, webhook delivery (signature,
headers, replay) against a receiver it runs on loopback, and the WEBHOOK SUBSCRIPTION
INVARIANTS; and a few SHOULDs. One row per check:

    id | requirement | level | result | detail

Exit status 1 when a MUST check fails (`--strict`: also when one is skipped). `--json FILE`
writes the rows. Webhook delivery needs the server to accept an `http://127.0.0.1` URL; a
server that refuses it (as production servers should) gets those rows skipped, with why.

Python 3 standard library only.
"""

import argparse
import hashlib
import hmac
import http.server
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

# cycles-governance-admin-v0.1.25.yaml `EventType` (51) and `EventCategory`.
EVENT_TYPES = set("""
budget.created budget.updated budget.funded budget.debited budget.reset budget.reset_spent
budget.debt_repaid budget.frozen budget.unfrozen budget.closed budget.closed_via_tenant_cascade
budget.threshold_crossed budget.exhausted budget.over_limit_entered budget.over_limit_exited
budget.debt_incurred budget.burn_rate_anomaly reservation.denied reservation.denial_rate_spike
reservation.expired reservation.expiry_rate_spike reservation.commit_overage
reservation.released_via_tenant_cascade tenant.created tenant.updated tenant.suspended
tenant.reactivated tenant.closed tenant.settings_changed webhook.created webhook.updated
webhook.paused webhook.resumed webhook.disabled webhook.deleted
webhook.disabled_via_tenant_cascade api_key.created api_key.revoked
api_key.revoked_via_tenant_cascade api_key.expired api_key.permissions_changed
api_key.auth_failed api_key.auth_failure_rate_spike policy.created policy.updated policy.deleted
system.store_connection_lost system.store_connection_restored system.high_latency
system.webhook_delivery_failed system.webhook_test
""".split()) | {"reservation.observed_denied", "reservation.observed_allowed"}  # v0.1.26
TENANT_CATEGORIES = {"budget", "reservation", "tenant"}
EVENT_KEYS = {"event_id", "event_type", "category", "timestamp", "tenant_id", "scope", "actor", "source",
              "data", "correlation_id", "request_id", "trace_id", "metadata"}
EVENT_REQUIRED = {"event_id", "event_type", "category", "timestamp", "tenant_id", "source"}
DELIVERY_KEYS = {"delivery_id", "subscription_id", "event_id", "event_type", "status", "attempted_at",
                 "completed_at", "attempts", "response_status", "response_time_ms", "error_message",
                 "next_retry_at", "trace_id", "trace_flags", "traceparent_inbound_valid"}
DELIVERY_REQUIRED = {"delivery_id", "subscription_id", "event_id", "status", "attempted_at"}
CAPABILITIES_REQUIRED = {"view_overview", "view_budgets", "view_events", "view_webhooks", "view_audit",
                         "view_tenants", "view_api_keys", "view_policies"}
UNIT = "TOKENS"
RUNTIME_PERMISSIONS = ["reservations:create", "reservations:commit", "reservations:release",
                       "reservations:extend", "reservations:list", "balances:read"]
OBSERVER_PERMISSIONS = ["events:read", "webhooks:read", "webhooks:write", "balances:read"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """The server under test: HTTP calls with either key."""

    def __init__(self, base, admin_key):
        self.base = base.rstrip("/")
        self.admin_key = admin_key

    def call(self, method, path, key=None, admin=False, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        if key:
            req.add_header("x-cycles-api-key", key)
        if admin:
            req.add_header("x-admin-api-key", self.admin_key)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, headers, text = resp.status, dict(resp.headers), resp.read().decode()
        except urllib.error.HTTPError as e:
            status, headers, text = e.code, dict(e.headers), e.read().decode()
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return status, {k.lower(): v for k, v in headers.items()}, payload


class Receiver:
    """A webhook endpoint on loopback that records every POST."""

    def __init__(self):
        self.got = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with outer.lock:
                    outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, predicate, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            with self.lock:
                hits = [g for g in self.got if predicate(g)]
            if hits:
                return hits
            time.sleep(0.05)
        return []


class Skip(Exception):
    """A check that cannot run against this server (the reason is the message)."""


class Runner:
    def __init__(self, server):
        self.s = server
        self.rows = []
        self.run_id = secrets.token_hex(4)
        self.ctx = {}

    def check(self, ident, requirement, level, fn):
        try:
            detail = fn() or ""
            result = "pass"
        except Skip as e:
            result, detail = "skip", str(e)
        except AssertionError as e:
            result, detail = "FAIL", str(e) or traceback.format_exc(limit=1).strip().splitlines()[-1]
        except Exception as e:  # a crash of a check is a failure of that check, not of the run
            result, detail = "FAIL", f"{type(e).__name__}: {e}"
        self.rows.append({"id": ident, "requirement": requirement, "level": level, "result": result, "detail": detail})

    # --- provisioning through the reference admin shapes ---

    def tenant(self, name):
        tid = f"conf-{self.run_id}-{name}"
        status, _, body = self.s.call("POST", "/v1/admin/tenants", admin=True, body={"tenant_id": tid, "name": tid})
        assert status in (200, 201), f"createTenant: {status} {body}"
        return tid

    def key(self, tenant, permissions, role):
        body = {"tenant_id": tenant, "name": f"conformance-{role}", "permissions": permissions}
        status, _, reply = self.s.call("POST", "/v1/admin/api-keys", admin=True, body=body)
        if status == 400:
            # A server whose keys carry a role (this repository's gateway) needs one that grants them.
            status, _, reply = self.s.call("POST", "/v1/admin/api-keys", admin=True, body=dict(body, role=role))
        assert status == 201, f"createApiKey: {status} {reply}"
        return reply["key_secret"]

    def budget(self, tenant, scope, amount):
        body = {"tenant_id": tenant, "scope": scope, "unit": UNIT, "allocated": {"unit": UNIT, "amount": amount}}
        status, _, reply = self.s.call("POST", "/v1/admin/budgets", admin=True, body=body)
        assert status == 201, f"createBudget: {status} {reply}"

    def reserve(self, key, tenant, amount, idem=None, unit=UNIT):
        body = {
            "idempotency_key": idem or secrets.token_hex(8),
            "subject": {"tenant": tenant, "agent": "conformance"},
            "action": {"kind": "llm.completion", "name": "conformance"},
            "estimate": {"unit": unit, "amount": amount},
        }
        return self.s.call("POST", "/v1/reservations", key=key, body=body)

    def setup(self):
        self.a = self.tenant("a")
        self.b = self.tenant("b")
        self.ka = self.key(self.a, RUNTIME_PERMISSIONS, "agent")
        self.kb = self.key(self.b, RUNTIME_PERMISSIONS, "agent")
        self.obs = self.key(self.a, OBSERVER_PERMISSIONS, "operator")
        self.budget(self.a, f"tenant:{self.a}", 100)
        self.budget(self.b, f"tenant:{self.b}", 10)

    # --- the checks ---

    def run(self, receiver):
        self.check("setup", "provisioning through the reference admin API", "-", self.setup)
        if self.rows[-1]["result"] != "pass":
            return
        a, ka = self.a, self.ka

        def create():
            status, _, r = self.reserve(ka, a, 10, idem=f"r1-{self.run_id}")
            assert status == 200 and r.get("decision") == "ALLOW" and r.get("reservation_id"), f"{status} {r}"
            assert r.get("affected_scopes"), f"affected_scopes: {r}"
            self.ctx["r1"] = r["reservation_id"]
        self.check("R1", "createReservation: ALLOW with a reservation id", "MUST", create)

        def commit():
            body = {"idempotency_key": f"c1-{self.run_id}", "actual": {"unit": UNIT, "amount": 8}}
            first = self.s.call("POST", f"/v1/reservations/{self.ctx['r1']}/commit", key=ka, body=body)
            assert first[0] == 200 and first[2].get("status") == "COMMITTED", f"{first[0]} {first[2]}"
            again = self.s.call("POST", f"/v1/reservations/{self.ctx['r1']}/commit", key=ka, body=body)
            assert again[0] == 200 and again[2] == first[2], f"a retried commit answers as the first: {again[2]}"
            other = self.s.call("POST", f"/v1/reservations/{self.ctx['r1']}/commit", key=ka,
                                body={"idempotency_key": f"c2-{self.run_id}", "actual": {"unit": UNIT, "amount": 8}})
            assert other[0] == 409 and other[2].get("error") == "RESERVATION_FINALIZED", f"{other[0]} {other[2]}"
            bal = self.s.call("GET", f"/v1/balances?tenant={a}", key=ka)[2]
            spent = [b for b in bal["balances"] if b["scope"] == f"tenant:{a}"][0]["spent"]["amount"]
            assert spent == 8, f"settled once: spent {spent}"
        self.check("R2", "commitReservation: idempotent, never settles twice (RESERVATION_FINALIZED)", "MUST", commit)

        def release():
            status, _, r = self.reserve(ka, a, 5)
            rid = r["reservation_id"]
            body = {"idempotency_key": f"rel-{self.run_id}"}
            first = self.s.call("POST", f"/v1/reservations/{rid}/release", key=ka, body=body)
            assert first[0] == 200 and first[2].get("status") == "RELEASED", f"{first[0]} {first[2]}"
            again = self.s.call("POST", f"/v1/reservations/{rid}/release", key=ka, body=body)
            assert again[0] == 200 and again[2] == first[2], f"retry: {again}"
        self.check("R3", "releaseReservation: idempotent", "MUST", release)

        def extend():
            status, _, r = self.reserve(ka, a, 1)
            rid = r["reservation_id"]
            got = self.s.call("POST", f"/v1/reservations/{rid}/extend", key=ka,
                              body={"idempotency_key": f"ext-{self.run_id}", "extend_by_ms": 60000})
            assert got[0] == 200 and got[2].get("expires_at_ms", 0) > r.get("expires_at_ms", 0), f"{got[0]} {got[2]}"
            self.s.call("POST", f"/v1/reservations/{rid}/release", key=ka, body={"idempotency_key": f"rel2-{self.run_id}"})
        self.check("R4", "extendReservation: the TTL heartbeat moves the expiry", "MUST", extend)

        def exceeded():
            status, headers, r = self.reserve(ka, a, 1000, idem=f"big-{self.run_id}")
            assert status == 409 and r.get("error") == "BUDGET_EXCEEDED", f"{status} {r}"
            for field in ("error", "message", "request_id"):
                assert field in r, f"ErrorResponse lacks {field}: {r}"
            trace = headers.get("x-cycles-trace-id", "")
            assert len(trace) == 32 and all(c in "0123456789abcdef" for c in trace), f"X-Cycles-Trace-Id: {trace!r}"
            assert r.get("trace_id") == trace, "the error body carries the trace id"
        self.check("E1", "BUDGET_EXCEEDED 409 in the ErrorResponse shape, with X-Cycles-Trace-Id", "MUST", exceeded)

        def mismatch():
            status, _, r = self.reserve(ka, a, 11, idem=f"r1-{self.run_id}")
            assert status == 409 and r.get("error") == "IDEMPOTENCY_MISMATCH", f"{status} {r}"
        self.check("E2", "IDEMPOTENCY_MISMATCH 409 on a reused key with another body", "MUST", mismatch)

        def unit():
            status, _, r = self.reserve(ka, a, 1)
            rid = r["reservation_id"]
            got = self.s.call("POST", f"/v1/reservations/{rid}/commit", key=ka,
                              body={"idempotency_key": f"u-{self.run_id}", "actual": {"unit": "CREDITS", "amount": 1}})
            assert got[0] == 400 and got[2].get("error") == "UNIT_MISMATCH", f"{got[0]} {got[2]}"
            self.s.call("POST", f"/v1/reservations/{rid}/release", key=ka, body={"idempotency_key": f"rel3-{self.run_id}"})
        self.check("E3", "UNIT_MISMATCH 400: units are validated and preserved", "MUST", unit)

        def not_found():
            got = self.s.call("POST", "/v1/reservations/rsv_conformance_missing/commit", key=ka,
                              body={"idempotency_key": f"nf-{self.run_id}", "actual": {"unit": UNIT, "amount": 1}})
            assert got[0] == 404 and got[2].get("error") == "NOT_FOUND", f"{got[0]} {got[2]}"
        self.check("E4", "NOT_FOUND 404 for an unknown reservation", "MUST", not_found)

        def concurrent():
            b, kb = self.b, self.kb
            results = []
            lock = threading.Lock()

            def one(i):
                status, _, _ = self.reserve(kb, b, 1, idem=f"cc-{self.run_id}-{i}")
                with lock:
                    results.append(status)
            threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            allowed = results.count(200)
            assert allowed == 10 and results.count(409) == 20, f"30 concurrent reservations of 1 against 10: {sorted(results)}"
            bal = self.s.call("GET", f"/v1/balances?tenant={b}", key=kb)[2]
            remaining = [x for x in bal["balances"] if x["scope"] == f"tenant:{b}"][0]["remaining"]["amount"]
            assert remaining == 0, f"remaining {remaining}"
            return "10 of 30 allowed, remaining 0"
        self.check("C1", "concurrency-safe: a shared budget is never oversubscribed", "MUST", concurrent)

        def isolation():
            got = self.s.call("POST", f"/v1/reservations/{self.ctx['r1']}/release", key=self.kb,
                              body={"idempotency_key": f"iso-{self.run_id}"})
            assert got[0] in (403, 404), f"another tenant's key: {got[0]} {got[2]}"
            got = self.s.call("GET", f"/v1/balances?tenant={a}", key=self.kb)
            assert got[0] == 403, f"another tenant's balances: {got[0]}"
        self.check("C2", "tenant isolation", "MUST", isolation)

        def balances():
            status, _, r = self.s.call("GET", f"/v1/balances?tenant={a}", key=ka)
            assert status == 200 and isinstance(r.get("balances"), list), f"{status} {r}"
            for b in r["balances"]:
                for field in ("scope", "scope_path", "remaining"):
                    assert field in b, f"Balance lacks {field}: {b}"
            status, _, r = self.s.call("GET", "/v1/balances", key=ka)
            assert status == 400, f"no subject filter: {status} (the runtime spec requires one)"
        self.check("B1", "getBalances", "MUST", balances)

        def introspect():
            status, _, r = self.s.call("GET", "/v1/auth/introspect", key=self.obs)
            assert status == 200 and r.get("authenticated") is True and r.get("auth_type") == "tenant", f"{status} {r}"
            assert r.get("tenant_id") == a, f"tenant_id: {r}"
            caps = r.get("capabilities", {})
            missing = CAPABILITIES_REQUIRED - set(caps)
            assert not missing, f"capabilities lack {sorted(missing)}"
            assert caps["view_events"] is True and caps["view_tenants"] is False, f"derived capabilities: {caps}"
            status, _, r = self.s.call("GET", "/v1/auth/introspect", admin=True)
            assert status == 200 and r.get("auth_type") == "admin" and r.get("permissions") == ["*"], f"admin: {status} {r}"
            assert "tenant_id" not in r, "no tenant for the admin key"
        self.check("A1", "introspectAuth: tenant and admin keys", "MUST", introspect)

        def events():
            status, _, r = self.s.call("GET", f"/v1/admin/events?tenant_id={a}&event_type=reservation.denied", admin=True)
            assert status == 200 and isinstance(r.get("events"), list) and "has_more" in r, f"{status} {r}"
            assert r["events"], "the BUDGET_EXCEEDED denial (E1) emitted no reservation.denied event"
            self.ctx["event"] = r["events"][0]
            status, _, all_events = self.s.call("GET", f"/v1/admin/events?tenant_id={a}&limit=100", admin=True)
            for e in all_events["events"]:
                missing = EVENT_REQUIRED - set(e)
                extra = set(e) - EVENT_KEYS
                assert not missing and not extra, f"{e.get('event_type')}: missing {sorted(missing)}, extra {sorted(extra)}"
                assert e["event_type"] in EVENT_TYPES or e["event_type"].startswith("custom."), e["event_type"]
                assert e["event_type"].split(".")[0] == e["category"], f"category of {e['event_type']}: {e['category']}"
            return f"{len(all_events['events'])} events, each schema-valid"
        self.check("V1", "listEvents, and every emitted event follows Event/EventType", "MUST", events)

        def get_event():
            e = self.ctx.get("event") or {}
            if not e:
                raise Skip("no event from V1")
            status, _, r = self.s.call("GET", f"/v1/admin/events/{e['event_id']}", admin=True)
            assert status == 200 and r == e, f"{status} {r}"
            status, _, r = self.s.call("GET", "/v1/admin/events/evt_conformance_missing", admin=True)
            assert status == 404, f"unknown event: {status}"
        self.check("V2", "getEvent", "MUST", get_event)

        def tenant_events():
            status, _, r = self.s.call("GET", "/v1/events?limit=100", key=self.obs)
            assert status == 200 and isinstance(r.get("events"), list), f"{status} {r}"
            cats = {e["category"] for e in r["events"]}
            assert cats <= TENANT_CATEGORIES, f"a tenant read admin-only categories: {cats - TENANT_CATEGORIES}"
            assert all(e["tenant_id"] == a for e in r["events"]), "another tenant's event"
            status, _, _ = self.s.call("GET", "/v1/events", key=ka)
            assert status == 403, f"a key without events:read: {status}"
        self.check("V3", "listTenantEvents: own tenant, tenant-accessible types, events:read", "MUST", tenant_events)

        def invariants():
            url = receiver.url if receiver else "https://example.com/hook"
            checks = [
                ("POST", "/v1/webhooks", {"key": self.obs}, {"url": url, "event_types": ["api_key.created"]}, "INVARIANT 2 (type), tenant path"),
                ("POST", "/v1/webhooks", {"key": self.obs}, {"url": url, "event_types": ["budget.created"], "event_categories": ["system"]}, "INVARIANT 2 (category), tenant path"),
                ("POST", f"/v1/admin/webhooks?tenant_id={a}", {"admin": True}, {"url": url, "event_types": ["webhook.created"]}, "INVARIANT 2, admin path for a tenant"),
                ("POST", "/v1/webhooks", {"key": self.obs}, {"url": url, "event_types": []}, "INVARIANT 1 on create"),
            ]
            for method, path, auth, body, what in checks:
                status, _, r = self.s.call(method, path, body=body, **auth)
                assert status == 400, f"{what}: {status} {r}"
        self.check("W1", "WEBHOOK SUBSCRIPTION INVARIANTS 1 and 2 on every write path", "MUST", invariants)

        def subscribe():
            if receiver is None:
                raise Skip("no receiver (--no-receiver)")
            status, _, r = self.s.call("POST", "/v1/webhooks", key=self.obs,
                                       body={"url": receiver.url, "event_types": ["reservation.denied"]})
            if status == 400 and r.get("error") in ("WEBHOOK_URL_INVALID", "INVALID_REQUEST") and "url" in json.dumps(r).lower():
                raise Skip(f"the server refuses the loopback receiver URL ({r.get('error')}: {r.get('message')})")
            assert status == 201 and r.get("signing_secret"), f"{status} {r}"
            self.ctx["sub"], self.ctx["secret"] = r["subscription"]["subscription_id"], r["signing_secret"]
            # INVARIANT 1 on the merged result of an update.
            got = self.s.call("PATCH", f"/v1/webhooks/{self.ctx['sub']}", key=self.obs, body={"event_types": []})
            assert got[0] == 400, f"a PATCH leaving no selector: {got[0]} {got[2]}"
        self.check("W2", "createTenantWebhook (reference) and INVARIANT 1 on update", "MUST", subscribe)

        def delivery():
            if "sub" not in self.ctx:
                raise Skip("no subscription (W2)")
            status, _, denied = self.reserve(ka, a, 5000, idem=f"big2-{self.run_id}")
            assert status == 409, f"{status} {denied}"
            hits = receiver.wait(lambda g: json.loads(g[1]).get("event_type") == "reservation.denied")
            assert hits, "no delivery within 20 s"
            headers, body = hits[0]
            expected = "sha256=" + hmac.new(self.ctx["secret"].encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers.get("x-cycles-signature", ""), expected), "X-Cycles-Signature does not verify"
            event = json.loads(body)
            assert headers.get("x-cycles-event-id") == event["event_id"], "X-Cycles-Event-Id"
            assert headers.get("x-cycles-event-type") == event["event_type"], "X-Cycles-Event-Type"
            assert headers.get("content-type", "").startswith("application/json"), "Content-Type"
            assert len(headers.get("x-cycles-trace-id", "")) == 32, "X-Cycles-Trace-Id"
            assert headers.get("traceparent", "").startswith("00-"), "traceparent"
            assert EVENT_REQUIRED <= set(event) and set(event) <= EVENT_KEYS, f"the body is an Event: {sorted(event)}"
            self.ctx["delivered"] = event["event_id"]
            return "signed delivery verified"
        self.check("W3", "webhook delivery: Event body, HMAC-SHA256 signature and headers", "MUST", delivery)

        def deliveries():
            if "delivered" not in self.ctx:
                raise Skip("no delivery (W3)")
            sub = self.ctx["sub"]
            for path, auth in ((f"/v1/webhooks/{sub}/deliveries", {"key": self.obs}), (f"/v1/admin/webhooks/{sub}/deliveries", {"admin": True})):
                deadline = time.time() + 10
                while True:
                    status, _, r = self.s.call("GET", path, **auth)
                    assert status == 200 and "has_more" in r, f"{path}: {status} {r}"
                    done = [d for d in r["deliveries"] if d["event_id"] == self.ctx["delivered"] and d["status"] == "SUCCESS"]
                    if done or time.time() > deadline:
                        break
                    time.sleep(0.1)
                assert done, f"{path}: no SUCCESS delivery of the event: {r}"
                for d in r["deliveries"]:
                    assert DELIVERY_REQUIRED <= set(d) and set(d) <= DELIVERY_KEYS, f"WebhookDelivery keys: {sorted(d)}"
            status, _, _ = self.s.call("GET", f"/v1/webhooks/{sub}/deliveries", key=self.kb)
            assert status in (403, 404), f"another tenant's key: {status}"
        self.check("W4", "listTenantWebhookDeliveries and listWebhookDeliveries", "MUST", deliveries)

        def replay():
            if "delivered" not in self.ctx:
                raise Skip("no delivery (W3)")
            before = len(receiver.got)
            status, _, r = self.s.call("POST", f"/v1/admin/webhooks/{self.ctx['sub']}/replay", admin=True, body={"max_events": 1000})
            assert status == 202 and r.get("replay_id") and r.get("events_queued", 0) >= 1, f"{status} {r}"
            hits = receiver.wait(lambda g: receiver.got.index(g) >= before and json.loads(g[1])["event_id"] == self.ctx["delivered"])
            assert hits, "the replayed event was not delivered again"
            status, _, r = self.s.call("POST", f"/v1/admin/webhooks/{self.ctx['sub']}/replay", admin=True, body={"max_events": 0})
            assert status == 400, f"max_events 0: {status}"
        self.check("W5", "replayEvents: 202, the window's events delivered again", "MUST", replay)

        def closed():
            c = self.tenant("closed")
            kc = self.key(c, RUNTIME_PERMISSIONS, "agent")
            self.budget(c, f"tenant:{c}", 10)
            status, _, r = self.s.call("PATCH", f"/v1/admin/tenants/{c}", admin=True, body={"status": "CLOSED"})
            assert status == 200, f"closeTenant: {status} {r}"
            self.ctx["closed"] = (c, kc)
            status, _, r = self.reserve(kc, c, 1)
            # The key of a closed tenant may be revoked by the cascade (401) or the guard answers.
            assert (status == 409 and r.get("error") == "TENANT_CLOSED") or status == 401, f"reserve: {status} {r}"
            return "TENANT_CLOSED" if status == 409 else "the tenant's keys are revoked by the close cascade (401)"
        self.check("T1", "closed-tenant guard on the persisting surface", "MUST", closed)

        def decide():
            body = {"idempotency_key": f"d-{self.run_id}", "subject": {"tenant": a, "agent": "conformance"},
                    "action": {"kind": "llm.completion", "name": "conformance"}, "estimate": {"unit": UNIT, "amount": 1}}
            status, _, r = self.s.call("POST", "/v1/decide", key=ka, body=body)
            assert status == 200 and r.get("decision") in ("ALLOW", "ALLOW_WITH_CAPS"), f"{status} {r}"
            body = dict(body, idempotency_key=f"d2-{self.run_id}", estimate={"unit": UNIT, "amount": 100000})
            status, _, r = self.s.call("POST", "/v1/decide", key=ka, body=body)
            assert status == 200 and r.get("decision") == "DENY" and r.get("reason_code"), f"{status} {r}"
        self.check("S1", "decide: ALLOW and DENY with a reason code", "SHOULD", decide)

        def reservations():
            status, _, r = self.s.call("GET", f"/v1/reservations?idempotency_key=r1-{self.run_id}", key=ka)
            assert status == 200 and [x["reservation_id"] for x in r["reservations"]] == [self.ctx["r1"]], f"{status} {r}"
            status, _, r = self.s.call("GET", f"/v1/reservations/{self.ctx['r1']}", key=ka)
            assert status == 200 and r.get("status") == "COMMITTED", f"{status} {r}"
        self.check("S2", "listReservations (by idempotency key) and getReservation", "SHOULD", reservations)

        def create_event():
            body = {"idempotency_key": f"ev-{self.run_id}", "subject": {"tenant": a, "agent": "conformance"},
                    "action": {"kind": "llm.completion", "name": "conformance"}, "actual": {"unit": UNIT, "amount": 1}}
            key = self.key(a, ["events:create"], "agent")
            status, _, r = self.s.call("POST", "/v1/events", key=key, body=body)
            assert status == 201 and r.get("status") == "APPLIED", f"{status} {r}"
        self.check("S3", "createEvent: a direct debit", "SHOULD", create_event)

        def deny_detail():
            status, _, r = self.reserve(ka, a, 10**6, idem=f"big3-{self.run_id}")
            detail = (r.get("details") or {}).get("deny_detail") if isinstance(r, dict) else None
            assert status == 409 and detail and detail.get("reason_code") == "BUDGET_EXCEEDED", f"{status} {r}"
        self.check("X1", "v0.1.26 DenyDetail on a live 409 (ErrorResponse.details.deny_detail)", "SHOULD", deny_detail)

        def observe():
            status, _, before = self.s.call("GET", f"/v1/balances?tenant={a}", key=ka)
            body = {"idempotency_key": f"obs-{self.run_id}", "subject": {"tenant": a, "agent": "conformance"},
                    "action": {"kind": "llm.completion", "name": "conformance"},
                    "estimate": {"unit": UNIT, "amount": 10**6}, "observe_mode": "OBSERVE"}
            status, _, r = self.s.call("POST", "/v1/reservations", key=ka, body=body)
            assert status == 200 and r.get("decision") == "DENY" and "reservation_id" not in r, f"{status} {r}"
            assert (r.get("deny_detail") or {}).get("reason_code") == "BUDGET_EXCEEDED", f"deny_detail: {r}"
            status, _, after = self.s.call("GET", f"/v1/balances?tenant={a}", key=ka)
            assert after == before, "an observed reservation changed a balance"
            status, _, ev = self.s.call("GET", f"/v1/admin/events?tenant_id={a}&event_type=reservation.observed_denied", admin=True)
            assert status == 200 and ev.get("events"), f"no reservation.observed_denied event: {status} {ev}"
        self.check("X2", "v0.1.26 observe mode: evaluated, nothing held, reservation.observed_denied emitted", "SHOULD", observe)

    def table(self):
        lines = ["| id | requirement | level | result | detail |", "|---|---|---|---|---|"]
        for r in self.rows:
            detail = str(r["detail"]).replace("|", "\\|").replace("\n", " ")[:160]
            lines.append(f"| {r['id']} | {r['requirement']} | {r['level']} | {r['result']} | {detail} |")
        return "\n".join(lines)


def start_gateway(sbd, root, admin_key, store=None):
    data = os.path.join(root, "data")
    os.makedirs(data, exist_ok=True)
    config = os.path.join(root, "gateway.toml")
    with open(config, "w") as f:
        # Webhooks to the runner's loopback receiver: development settings, not production ones.
        f.write("[webhooks]\nallow_http = true\nblocked_cidr_ranges = []\npoll_interval_ms = 50\n")
    port = free_port()
    log = open(os.path.join(root, "gateway.log"), "ab")
    command = [sbd, "serve", "--data-dir", data, "--addr", f"127.0.0.1:{port}", "--config", config, "--quiet"]
    if store:
        # a state of its own on a shared Redis
        command += ["--store", store, "--store-prefix", "conformance-" + secrets.token_hex(8)]
    proc = subprocess.Popen(
        command,
        env=dict(os.environ, SBD_ADMIN_KEY=admin_key), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {proc.returncode}; see {root}/gateway.log")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the gateway did not become ready")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = ap.add_mutually_exclusive_group(required=True)
    target.add_argument("--base", help="the server's base URL, e.g. http://127.0.0.1:7878")
    target.add_argument("--sbd", help="start this `sbd` binary's gateway and test it")
    ap.add_argument("--admin-key", help="the server's admin key (X-Admin-API-Key); required with --base")
    ap.add_argument("--sbd-store", metavar="URL", help="with --sbd: the gateway's state on this Redis (`sbd serve --store URL`) instead of SQLite")
    ap.add_argument("--no-receiver", action="store_true", help="skip the webhook delivery checks")
    ap.add_argument("--json", help="write the rows to this file")
    ap.add_argument("--strict", action="store_true", help="a skipped MUST check fails the run")
    args = ap.parse_args()
    proc = None
    if args.sbd:
        admin_key = "conformance-" + secrets.token_hex(16)
        root = tempfile.mkdtemp(prefix="cycles-conformance-")
        proc, base = start_gateway(args.sbd, root, admin_key, args.sbd_store)
    else:
        if args.sbd_store:
            ap.error("--sbd-store goes with --sbd")
        if not args.admin_key:
            ap.error("--admin-key is required with --base")
        base, admin_key = args.base, args.admin_key
    try:
        runner = Runner(Server(base, admin_key))
        receiver = None if args.no_receiver else Receiver()
        runner.run(receiver)
    finally:
        if proc:
            proc.terminate()
            proc.wait(15)
    print(runner.table())
    musts = [r for r in runner.rows if r["level"] in ("MUST", "-")]
    failed = [r for r in musts if r["result"] == "FAIL"]
    skipped = [r for r in musts if r["result"] == "skip"]
    passed = sum(r["result"] == "pass" for r in runner.rows)
    print(f"\n{passed} of {len(runner.rows)} checks pass; MUST: {len(failed)} failed, {len(skipped)} skipped")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runner.rows, f, indent=2)
    sys.exit(1 if failed or (args.strict and skipped) else 0)


if __name__ == "__main__":
    main()

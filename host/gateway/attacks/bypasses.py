#!/usr/bin/env python3
"""Issue 14's bypasses, run for real against an `sbd serve` binary.

Starts a gateway (a temporary data directory, a free loopback port, an admin key), provisions
what each attack needs through that gateway's own API, runs every attack and prints one row
per bypass:

    bypass | result | regression test

`SUCCEEDED` means the attack worked (the gateway let it through, or the defect showed);
`REFUSED` means the gateway refused it (HTTP status and reason or error code) or, for the
three rows that are a missing behaviour rather than a request (an approval that issues no
token, a rewritten trace served without warning, a warning no operator sees), that the defect
no longer shows (what the gateway does instead is in the detail).

Two gateway generations are supported: the one before anchored authority (6fd6c58: no roles,
no registry, first hops open chains) and the current one (operator / agent / approver keys,
an agent registry, root grants). Which one runs is detected by whether `POST /v1/root-grants`
exists, and each attack provisions accordingly.

    python3 host/gateway/attacks/bypasses.py --sbd target/release/sbd
    python3 host/gateway/attacks/bypasses.py --sbd target/release/sbd --expect refused
    python3 host/gateway/attacks/bypasses.py --sbd target/release/sbd --json
    python3 host/gateway/attacks/bypasses.py --sbd target/release/sbd --sbd-store redis://127.0.0.1:6379/

With `--sbd-store URL` the gateway keeps its state on that Redis (`sbd serve --store URL`,
under a key prefix of the run's own), and the trace rewrite edits the Redis records instead
of the SQLite file (a few lines of RESP below; one `redis-server`, not a Cluster).

A residual list holds attacks beyond the issue's that this runner found still working on the
current gateway; `--expect refused` counts them only with `--strict` while they are open.

Python 3 standard library only.
"""

import argparse
import glob
import json
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

ADMIN = "sbd-bypass-runner-admin-key-0123456789"
UNIT = "TOKENS"
I64_MAX = 2**63 - 1
HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.normpath(os.path.join(HERE, "..", "tests"))


def now_ms():
    return int(time.time() * 1000)


EXPIRY = now_ms() + 3_600_000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Gateway:
    """One `sbd serve` process over a data directory."""

    def __init__(self, sbd, root, store=None):
        self.sbd = sbd
        self.root = root
        # a state of its own on a shared Redis, or the embedded SQLite file
        self.store = store
        self.prefix = "bypass-" + secrets.token_hex(8) if store else None
        self.data = os.path.join(root, "data")
        os.makedirs(self.data, exist_ok=True)
        self.proc = None
        self.port = None
        self.new = None

    def start(self):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        log = open(os.path.join(self.root, "gateway.log"), "ab")
        env = dict(os.environ, SBD_ADMIN_KEY=ADMIN)
        command = [self.sbd, "serve", "--data-dir", self.data, "--addr", f"127.0.0.1:{self.port}"]
        if self.store:
            command += ["--store", self.store, "--store-prefix", self.prefix]
        self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited with {self.proc.returncode}; see {self.root}/gateway.log")
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the gateway did not become ready")
        # The generation: the route exists (401 without a key) or not (404/405).
        self.new = self.call("POST", "/v1/root-grants", body={})[0] not in (404, 405)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def call(self, method, path, key=None, admin=False, body=None, raw=None, headers=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        if key:
            req.add_header("x-cycles-api-key", key)
        if admin:
            req.add_header("x-admin-api-key", ADMIN)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode("utf-8", "replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def key(self, tenant, name, role=None, permissions=None):
        body = {"tenant_id": tenant, "name": name}
        if role and self.new:
            body["role"] = role
        if permissions is not None:
            body["permissions"] = permissions
        s, b = self.call("POST", "/v1/admin/api-keys", admin=True, body=body)
        if s != 201:
            raise RuntimeError(f"key {name}: {s} {b}")
        return b["key_secret"]


AGENTS = {"orchestrator": 900, "a": 720, "b": 720, "c": 720, "d": 720, "e": 720, "f": 720, "g": 720, "h": 720}


class Tenant:
    """A tenant with a budget and, on the new gateway, an operator and registered agents."""

    counter = 0

    def __init__(self, gw, unit=UNIT, allocated=10**12, budget_extra=None, agents=AGENTS):
        Tenant.counter += 1
        self.gw = gw
        self.id = f"t{Tenant.counter}"
        s, b = gw.call("POST", "/v1/admin/tenants", admin=True, body={"tenant_id": self.id, "name": self.id})
        if s not in (200, 201):
            raise RuntimeError(f"tenant: {s} {b}")
        # Before roles every tenant key could do everything; now an operator provisions.
        self.op = gw.key(self.id, "ops-team", role="operator")
        body = {"scope": f"tenant:{self.id}", "unit": unit, "allocated": {"unit": unit, "amount": allocated}}
        body.update(budget_extra or {})
        s, b = gw.call("POST", "/v1/admin/budgets", key=self.op, body=body)
        if s != 201:
            raise RuntimeError(f"budget: {s} {b}")
        self.keys = {}
        for agent, trust in agents.items():
            self.register(agent, trust)

    def register(self, agent, trust):
        if self.gw.new:
            s, b = self.gw.call("POST", "/v1/agents", key=self.op, body={"agent_id": agent, "trust": trust})
            if s != 201:
                raise RuntimeError(f"register {agent}: {s} {b}")

    def agent_key(self, agent):
        """The key an agent delegates with: its own agent key now, the tenant key before."""
        if not self.gw.new:
            return self.op
        if agent not in self.keys:
            self.keys[agent] = self.gw.key(self.id, agent, role="agent")
        return self.keys[agent]

    def reserved(self):
        s, b = self.gw.call("GET", f"/v1/balances?tenant={self.id}", key=self.op)
        for bal in b.get("balances", []) if isinstance(b, dict) else []:
            if bal.get("scope") == f"tenant:{self.id}":
                return bal["reserved"]["amount"]
        raise RuntimeError(f"no balance: {s} {b}")

    def root(self, agent, mandate):
        """Where a chain starts: a root grant now; before, nothing (the first hop opened a chain)."""
        if not self.gw.new:
            return Held(self, agent, None, mandate, [], None)
        s, b = self.gw.call("POST", "/v1/root-grants", key=self.op, body={"agent_id": agent, "mandate": mandate})
        if s != 201:
            raise RuntimeError(f"root grant: {s} {b}")
        return Held(self, agent, b["token"], b.get("mandate", mandate), [], b["chain_id"])


def mandate(amount, depth, unit=UNIT, kinds=("payment.*", "crm.read")):
    return {"value_ceiling": 10**9, "action_kinds": list(kinds), "counterparties": ["acme", "globex"],
            "budgets": [{"unit": unit, "amount": amount}], "remaining_depth": depth, "expires_at": EXPIRY}


class Held:
    """An agent's position in a chain: its token, its mandate, the links so far."""

    def __init__(self, tenant, agent, token, mandate_, links, chain_id):
        self.tenant, self.agent, self.token, self.mandate, self.links, self.chain_id = \
            tenant, agent, token, mandate_, links, chain_id

    def request(self, to, requested, risk="medium", task="refund-1", trust=(900, 720), state=(0.1,), value=1000):
        req = {"from": {"id": self.agent, "trust": trust[0]}, "to": {"id": to, "trust": trust[1]},
               "task": {"id": task, "action_kind": "payment.refund", "risk": risk, "value": value, "counterparty": "acme"},
               "parent_mandate": self.mandate, "requested_mandate": requested, "state": list(state)}
        if not self.tenant.gw.new:
            req["chain"] = self.links  # before: the caller sends the links
        body = {"request": req}
        if self.token:
            body["token"] = self.token
        return body

    def send(self, body, key=None, headers=None):
        return self.tenant.gw.call("POST", "/v1/delegations", key=key or self.tenant.agent_key(self.agent),
                                   body=body, headers=headers)

    def hop(self, to, requested, **kw):
        return self.send(self.request(to, requested, **kw))

    def child(self, resp, to):
        g = resp["verdict"]["allow"]
        link = {"from": self.agent, "to": to, "depth": g["depth"], "alpha": g["alpha"], "at": now_ms()}
        return Held(self.tenant, to, resp["child_token"], g["child_mandate"], self.links + [link], resp["chain_id"])


def allowed(s, b):
    return s == 200 and isinstance(b, dict) and b.get("decision") == "allow"


def why(s, b):
    """The status and the reason of a response, short."""
    if not isinstance(b, dict):
        return f"{s} {str(b)[:80]}"
    if s == 200 and "decision" in b:
        v = b.get("verdict", {})
        for k in ("deny", "escalate"):
            if k in v:
                return f"200 {b['decision']} {v[k].get('code')} {v[k].get('reason')}"
        if b.get("ledger_refusal"):
            return f"200 {b['decision']} ledger {b['ledger_refusal'].get('error')}"
        return f"200 {b['decision']}"
    msg = b.get("message", "")
    msg = msg if len(msg) <= 90 else msg[:87] + "..."
    return f"{s} {b.get('error', '')}: {msg}".strip()


def ok(detail):
    return ("SUCCEEDED", detail)


def no(detail):
    return ("REFUSED", detail)


def judge(worked, s, b, detail=""):
    return ok(detail or why(s, b)) if worked else no(why(s, b) + (f"; {detail}" if detail else ""))


# ---------------------------------------------------------------------------------------------
# The attacks. Each takes the gateway and returns (SUCCEEDED | REFUSED, detail).

def reroot_made_up(gw):
    t = Tenant(gw)
    fake = Held(t, "orchestrator", None, mandate(10**11, 5), [], None)  # a parent mandate made up
    s, b = fake.hop("a", mandate(10**10, 4))
    return judge(allowed(s, b), s, b, "first hop with a made-up parent mandate of 1e11 allowed" if allowed(s, b) else "")


_deep = {}


def deep_chain(gw):
    """orchestrator -> a -> b -> c -> d -> e at low risk (max depth 5): e holds depth 5 of 5."""
    if gw in _deep:
        return _deep[gw]
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10**6, 6))
    hops, warnings = [], []
    for i, to in enumerate(["a", "b", "c", "d", "e"]):
        depth = max(h.mandate["remaining_depth"] - 1, 0)
        s, b = h.hop(to, mandate(10**6 - 1000 * (i + 1), depth), risk="low", task="deep")
        if not allowed(s, b):
            raise RuntimeError(f"building the depth-5 chain, hop {i + 1}: {why(s, b)}")
        warnings += [w.get("reason") for w in b["verdict"]["allow"].get("warnings", [])]
        hops.append(b)
        h = h.child(b, to)
    # The sixth hop with the token is stopped by the depth limit.
    s6, b6 = h.hop("f", mandate(1000, 0), risk="low", task="deep")
    _deep[gw] = (t, h, (s6, b6), warnings)
    return _deep[gw]


def reroot_depth_limit(gw):
    t, e, (s6, b6), _ = deep_chain(gw)
    if allowed(s6, b6):
        return ("ERROR", "the sixth hop was allowed with the token: no depth limit to get around")
    fresh = Held(t, "e", None, mandate(10**5, 5), [], None)
    s, b = fresh.hop("f", mandate(1000, 4), risk="low", task="deep")
    return judge(allowed(s, b), s, b,
                 f"hop 6 with the token: {why(s6, b6)}; as a new chain: depth {b.get('verdict', {}).get('allow', {}).get('depth')} allowed"
                 if allowed(s, b) else f"hop 6 with the token: {why(s6, b6)}")


def reroot_cycle(gw):
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10**6, 4))
    s, b = h.hop("a", mandate(10**5, 3))
    a = h.child(b, "a")
    s, b = a.hop("b", mandate(10**4, 2))
    bh = a.child(b, "b")
    sc, bc = bh.hop("orchestrator", mandate(100, 1))  # the cycle with the token: refused by the rules
    fresh = Held(t, "b", None, mandate(10**4, 2), [], None)
    s, b = fresh.hop("orchestrator", mandate(100, 1))
    return judge(allowed(s, b), s, b,
                 f"b -> orchestrator with the token: {why(sc, bc)}; as a new chain: allowed" if allowed(s, b) else "")


def reroot_existing_chain_id(gw):
    t = Tenant(gw)
    if gw.new:  # the stronger case: a tenant that opted into open roots
        s, b = gw.call("PUT", "/v1/authority/settings", key=t.op, body={"open_roots": True})
        if s != 200:
            return ("ERROR", f"open_roots: {why(s, b)}")
    first = Held(t, "orchestrator", None, mandate(10**5, 4), [], None)
    s, b = first.hop("a", mandate(100, 3), task="first")
    if not allowed(s, b):
        return ("ERROR", f"the first chain: {why(s, b)}")
    chain = b["chain_id"]
    before = len(gw.call("GET", f"/v1/chains/{chain}", key=t.op)[1].get("events", []))
    body = Held(t, "c", None, mandate(10**5, 4), [], None).request("d", mandate(100, 3), task="appended")
    body["chain_id"] = chain
    s, b = Held(t, "c", None, None, [], None).send(body)
    after = len(gw.call("GET", f"/v1/chains/{chain}", key=t.op)[1].get("events", []))
    worked = s == 200 and after > before
    return judge(worked, s, b, f"chain {chain[:8]}: {before} -> {after} events, c -> d appended" if worked else
                 ("open_roots on; " if gw.new else "") + f"events {before} -> {after}")


def depth_exception_self_asserted(gw):
    """Six hops on a maximum of 5 (low risk), every request carrying a depth exception whose
    `approved_by` the caller wrote itself."""
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10**6, 7))
    exception = {"approved_by": "risk-officer", "justification": "nobody checked", "extra_depth": 1, "expires_at": EXPIRY}
    for i, to in enumerate(["a", "b", "c", "d", "e", "f"]):
        body = h.request(to, mandate(10**6 - 1000 * (i + 1), max(h.mandate["remaining_depth"] - 1, 0)), risk="low", task="exc")
        body["request"]["depth_exception"] = exception
        s, b = h.send(body)
        if not allowed(s, b):
            return no(f"hop {i + 1}: {why(s, b)}")
        h = h.child(b, to)
    return ok(f"hop 6 of max 5 allowed at depth {b['verdict']['allow']['depth']} (max_depth {b['verdict']['allow']['max_depth']}), approved by no one")


def caller_trust(gw):
    t = Tenant(gw)
    t.register("low", 100)
    h = t.root("orchestrator", mandate(10**6, 4))
    s0, b0 = h.hop("low", mandate(100, 3), risk="high", task="t-honest", trust=(900, 100))
    s, b = h.hop("low", mandate(100, 3), risk="high", task="t-claim", trust=(900, 1000))
    return judge(allowed(s, b) and not allowed(s0, b0), s, b,
                 f"claimed trust 100: {why(s0, b0)}; claimed 1000: allowed" if allowed(s, b) else "registry trust 100 used")


def scenario_b(gw):
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10_000, 4))
    s, b = h.hop("a", mandate(2_500, 3))
    if not allowed(s, b):
        return ("ERROR", f"parent hop: {why(s, b)}")
    p = h.child(b, "a")
    results = [p.hop(c, mandate(2_500, 2), task=f"b-{c}") for c in ["b", "c", "d"]]
    n = sum(allowed(*r) for r in results)
    refused = [r for r in results if not allowed(*r)]
    return ok(f"{n} of 3 children allowed 2,500 each from a parent holding 2,500") if n > 1 else \
        no(f"{n} of 3 allowed; " + (why(*refused[0]) if refused else ""))


def unit_twice(gw):
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10**6, 4))
    req = mandate(100, 3)
    req["budgets"] = [{"unit": UNIT, "amount": 100}, {"unit": UNIT, "amount": 100}]
    s, b = h.hop("a", req)
    holds = len(b.get("reservations", [])) if isinstance(b, dict) else 0
    return judge(allowed(s, b), s, b, f"allowed with {holds} holds" if allowed(s, b) else "")


def child_holds_from_tenant(gw):
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10_000, 4))
    s, b = h.hop("a", mandate(1_000, 3))
    a = h.child(b, "a")
    before = t.reserved()
    s, b = a.hop("b", mandate(400, 2))
    after = t.reserved()
    if not allowed(s, b):
        return ("ERROR", f"child hop: {why(s, b)}")
    return ok(f"tenant reserved {before} -> {after}: the child's 400 held again from the tenant") if after > before else \
        no(f"200 allow; tenant reserved {before} -> {after}: the 400 is carved from the parent's hold")


def replay(gw):
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10**6, 4))
    body = h.request("a", mandate(100, 3), task="replayed")
    rs = [h.send(body) for _ in range(5)]
    allows = sum(allowed(*r) for r in rs)
    tokens = {r[1].get("child_token") for r in rs if allowed(*r)}
    worked = len(tokens) > 1
    return ok(f"{allows} allows, {len(tokens)} distinct child tokens") if worked else \
        no(f"{rs[-1][0]} the original response {allows}x, {len(tokens)} child token")


def cross_tenant(gw):
    victim = Tenant(gw)
    attacker = Tenant(gw)
    h = victim.root("orchestrator", mandate(10**6, 4))
    s, b = h.hop("a", mandate(10**5, 3))
    stolen = h.child(b, "a")
    stolen.tenant = attacker  # the attacker's key presents the victim's token
    s, b = stolen.hop("b", mandate(100, 2))
    return judge(allowed(s, b), s, b, f"tenant {attacker.id}'s key allowed on {victim.id}'s chain" if allowed(s, b) else "")


def read_only(gw):
    t = Tenant(gw)
    ro = gw.key(t.id, "read-only", permissions=["balances:read"])
    return t, ro


def fund(gw, key, t, body, admin=False):
    return gw.call("POST", f"/v1/admin/budgets/fund?scope=tenant:{t.id}&unit={UNIT}" + (f"&tenant_id={t.id}" if admin else ""),
                   key=key, body=body)


def reserve_body(k, t, amount):
    return {"idempotency_key": k, "subject": {"tenant": t.id, "agent": "bot"},
            "action": {"kind": "llm.completion", "name": "gpt"}, "estimate": {"unit": UNIT, "amount": amount}}


def ro_reserve(gw):
    t, ro = read_only(gw)
    s, b = gw.call("POST", "/v1/reservations", key=ro, body=reserve_body("ro-1", t, 5))
    return judge(s == 200, s, b, f"200 reservation {b.get('reservation_id', '')}" if s == 200 else "")


def ro_release_other(gw):
    t, ro = read_only(gw)
    owner = t.agent_key("a")
    s, b = gw.call("POST", "/v1/reservations", key=owner, body=reserve_body("own-1", t, 50))
    if s != 200:
        return ("ERROR", f"owner's reservation: {why(s, b)}")
    s, b = gw.call("POST", f"/v1/reservations/{b['reservation_id']}/release", key=ro, body={"idempotency_key": "ro-rel"})
    return judge(s == 200, s, b, f"200 {b.get('status')}" if s == 200 else "")


def ro_credit(gw):
    t, ro = read_only(gw)
    s, b = fund(gw, ro, t, {"operation": "CREDIT", "amount": {"unit": UNIT, "amount": 10**15}})
    return judge(s == 200, s, b, f"200 allocated -> {b.get('new_allocated', {}).get('amount')}" if s == 200 else "")


def ro_reset_spent(gw):
    t, ro = read_only(gw)
    s, b = fund(gw, ro, t, {"operation": "RESET_SPENT", "amount": {"unit": UNIT, "amount": 10**12}, "spent": {"unit": UNIT, "amount": 0}})
    return judge(s == 200, s, b, f"200 spent -> {b.get('new_spent', {}).get('amount')}" if s == 200 else "")


def ro_create_budget(gw):
    t, ro = read_only(gw)
    s, b = gw.call("POST", "/v1/admin/budgets", key=ro,
                   body={"scope": f"tenant:{t.id}/workspace:x", "unit": UNIT, "allocated": {"unit": UNIT, "amount": 5}})
    return judge(s == 201, s, b, "201 budget created" if s == 201 else "")


def ro_unfreeze(gw):
    t, ro = read_only(gw)
    s, b = gw.call("POST", f"/v1/admin/budgets/freeze?tenant_id={t.id}&scope=tenant:{t.id}&unit={UNIT}", admin=True)
    if s != 200:
        return ("ERROR", f"admin freeze: {why(s, b)}")
    s, b = gw.call("POST", f"/v1/admin/budgets/unfreeze?scope=tenant:{t.id}&unit={UNIT}", key=ro)
    return judge(s == 200 and b.get("status") == "ACTIVE", s, b, "200 ACTIVE: the admin's freeze lifted" if s == 200 else "")


USD = "USD_MICROCENTS"


def usd_mandate(v, d):
    return {"value_ceiling": 50_000_000_000, "action_kinds": ["payment.*"], "counterparties": ["acme"],
            "budgets": [{"unit": USD, "amount": v}], "remaining_depth": d, "expires_at": EXPIRY}


def escalation(gw, t, task):
    """A hop the component escalates to the human `risk-officer` (38% volatility)."""
    h = t.root("orchestrator", usd_mandate(5_000_000_000, 4))
    s, b = h.hop("a", usd_mandate(500_000_000, 3), task=task, state=(0.38,), value=1_000_000)
    if not (s == 200 and b.get("decision") == "escalate"):
        raise RuntimeError(f"no escalation: {why(s, b)}")
    return b["escalation"]


def forged_decided_by(gw):
    t = Tenant(gw, unit=USD, allocated=10**11)
    esc = escalation(gw, t, "esc-forge")
    # Any key but the assignee's: a balances:read key before (it had no roles), an approver
    # named bob now.
    key = gw.key(t.id, "bob", role="approver") if gw.new else gw.key(t.id, "ro", permissions=["balances:read"])
    s, b = gw.call("POST", f"/v1/escalations/{esc['id']}/approve", key=key, body={"decided_by": "risk-officer"})
    worked = s == 200 and b.get("decided_by") == "risk-officer"
    return judge(worked, s, b, f"assigned to {esc.get('assignee')}; 200 decided_by: risk-officer" if worked else "")


def approval_no_token(gw):
    t = Tenant(gw, unit=USD, allocated=10**11)
    esc = escalation(gw, t, "esc-token")
    if gw.new:
        key, body = gw.key(t.id, "risk-officer", role="approver"), {}
    else:
        key, body = t.op, {"decided_by": "risk-officer"}
    before = t.reserved()
    s, b = gw.call("POST", f"/v1/escalations/{esc['id']}/approve", key=key, body=body)
    if s != 200:
        return ("ERROR", f"approve: {why(s, b)}")
    after = t.reserved()
    token = (b.get("delegation") or {}).get("child_token") or b.get("child_token")
    if token:
        return no(f"200 {b.get('decision')}: child token and grant ...{(b.get('delegation') or {}).get('grant_id', '')[-12:]} issued, "
                  f"escrow {(b.get('delegation') or {}).get('escrow')}")
    return ok(f"200 {b.get('decision')}: no child token; tenant reserved {before} -> {after}")


def credit_overflow(gw):
    t = Tenant(gw, unit=USD, allocated=1000)
    s, b = gw.call("POST", f"/v1/admin/budgets/fund?scope=tenant:{t.id}&unit={USD}", key=t.op,
                   body={"operation": "CREDIT", "amount": {"unit": USD, "amount": I64_MAX}})
    new = b.get("new_allocated", {}).get("amount") if isinstance(b, dict) else None
    return judge(s == 200, s, b, f"200 new_allocated {new}" if s == 200 else "")


def debt_overflow(gw):
    t = Tenant(gw, unit=USD, allocated=1000,
               budget_extra={"overdraft_limit": {"unit": USD, "amount": I64_MAX}, "commit_overage_policy": "ALLOW_WITH_OVERDRAFT"})
    key = t.agent_key("a")

    def event(k):
        return gw.call("POST", "/v1/events", key=key, body={
            "idempotency_key": k, "subject": {"tenant": t.id}, "action": {"kind": "a", "name": "b"},
            "actual": {"unit": USD, "amount": I64_MAX}, "overage_policy": "ALLOW_WITH_OVERDRAFT"})
    s1, b1 = event("e1")
    s, b = event("e2")
    s3, bal = gw.call("GET", f"/v1/balances?tenant={t.id}", key=t.op)
    debt = next((x["debt"]["amount"] for x in bal.get("balances", []) if x["scope"] == f"tenant:{t.id}"), None)
    worked = s == 201 and debt is not None and debt < 0
    return judge(worked, s, b, f"{s1}, {s}: debt {debt}" if worked else f"debt stays {debt}")


def reset_spent_negative(gw):
    t = Tenant(gw, unit=USD, allocated=1000)
    s, b = gw.call("POST", f"/v1/admin/budgets/fund?scope=tenant:{t.id}&unit={USD}", key=t.op,
                   body={"operation": "RESET_SPENT", "amount": {"unit": USD, "amount": 1000}, "spent": {"unit": USD, "amount": -1000}})
    return judge(s == 200, s, b, f"200 new_spent {b.get('new_spent', {}).get('amount')}" if s == 200 else "")


def long_to_id(gw):
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10**6, 4))
    before = t.reserved()
    s, b = h.hop("x" * 100_000, mandate(100, 3))
    after = t.reserved()
    worked = s >= 500
    return judge(worked, s, b, f"{s} after the hold: tenant reserved {before} -> {after}" if worked else
                 f"reserved {before} -> {after}")


def json_arrays(gw):
    t = Tenant(gw)
    positional = ["arr-1", {"tenant": t.id}, {"kind": "a", "name": "b"}, {"unit": UNIT, "amount": 5}]
    s, b = gw.call("POST", "/v1/reservations", key=t.agent_key("a"), raw=json.dumps(positional).encode())
    return judge(s == 200, s, b, f"200: a positional array body made reservation {b.get('reservation_id', '')}" if s == 200 else "")


def json_arrays_in_request(gw):
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10**6, 4))
    body = h.request("a", mandate(100, 3), task="arr")
    body["request"]["task"] = ["arr", "payment.refund", "medium", 1000, "acme", True]
    s, b = h.send(body)
    return judge(allowed(s, b), s, b, "200 allow: `request.task` read positionally from an array" if allowed(s, b) else "")


def outcome_self_report(gw):
    """Residual: the delegate reports its own chain's success and its trust becomes what it says."""
    t = Tenant(gw)
    t.register("low", 300)
    h = t.root("orchestrator", mandate(10**6, 4))
    s, b = h.hop("low", mandate(100, 3), risk="low", task="o-1", trust=(900, 300))
    if not allowed(s, b):
        return ("ERROR", f"first hop: {why(s, b)}")
    s0, b0 = h.hop("low", mandate(100, 3), risk="high", task="o-2", trust=(900, 300))
    chain = h.chain_id or b["chain_id"]
    so, bo = gw.call("POST", f"/v1/chains/{chain}/outcome", key=t.agent_key("low"), body={"outcome": "success", "magnitude": 1000})
    s, b = h.hop("low", mandate(100, 3), risk="high", task="o-3", trust=(900, 300))
    worked = allowed(s, b) and not allowed(s0, b0)
    return judge(worked, s, b, f"high risk before: {why(s0, b0)}; low's own key reports success 1000 ({so}); after: allowed"
                 if worked else f"outcome report {so}")


_ident = {}


def ident_chain(gw):
    """orchestrator -> agent-é -> b; b then hands back to a variant of agent-é (a cycle)."""
    if gw not in _ident:
        t = Tenant(gw)
        t.register("agent-é", 720)
        h = t.root("orchestrator", mandate(10**6, 4))
        s, b = h.hop("agent-é", mandate(10**5, 3))
        if not allowed(s, b):
            raise RuntimeError(f"identity chain hop 1: {why(s, b)}")
        a = h.child(b, "agent-é")
        s, b = a.hop("b", mandate(10**4, 2))
        if not allowed(s, b):
            raise RuntimeError(f"identity chain hop 2: {why(s, b)}")
        _ident[gw] = a.child(b, "b")
    return _ident[gw]


def identity(variant):
    def attack(gw):
        bh = ident_chain(gw)
        s, b = bh.hop(variant, mandate(10, 1), task="cycle")
        return judge(allowed(s, b), s, b, f"agent-é -> b -> {ascii(variant)}: allowed, no cycle seen" if allowed(s, b) else "")
    return attack


def link_time(gw):
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10**6, 4))
    s, b = h.hop("a", mandate(10**5, 3))
    a = h.child(b, "a")
    issued = a.links[0]["at"] if a.links else now_ms()
    # Before, the links travel in the request; now they come from the token, and a sent chain
    # whose time differs from the token's block is refused.
    old = a.request("b", mandate(100, 2), task="late")
    old["request"]["chain"] = [dict(a.links[0] if a.links else {"from": "orchestrator", "to": "a", "depth": 1,
                                    "alpha": b["verdict"]["allow"]["alpha"]}, at=issued - 16 * 60_000)]
    sc, bc = a.send(old)
    body = a.request("b", mandate(100, 2), task="dodge")
    body["request"]["chain"] = [dict(old["request"]["chain"][0], at=now_ms())]
    s, b = a.send(body)
    return judge(allowed(s, b) and not allowed(sc, bc), s, b,
                 f"link 1 at -16 min: {why(sc, bc)}; rewritten to the present: allowed" if allowed(s, b) else "")


def warning_operator(gw):
    t, e, _, warnings = deep_chain(gw)
    s, b = gw.call("GET", "/v1/warnings", key=t.op)
    metrics = gw.call("GET", "/metrics")[1]
    counted = isinstance(metrics, str) and re.search(r"sbd_delegation_warnings_total\{[^}]*\} [1-9]", metrics)
    listed = s == 200 and isinstance(b, dict) and len(b.get("warnings", [])) > 0
    if listed and counted:
        return no(f"200 /v1/warnings lists {len(b['warnings'])} ({b['warnings'][0].get('warning')}), metric counted")
    return ok(f"caller saw {warnings}; GET /v1/warnings {s}; no warnings metric")


class Resp:
    """Just enough of a Redis client (RESP2 over one socket) to edit records, for the trace
    rewrite on a gateway whose state is on Redis."""

    def __init__(self, url):
        m = re.fullmatch(r"redis://([^:/@]+):(\d+)/?", url)
        if not m:
            raise RuntimeError(f"the trace rewrite edits one redis-server: redis://HOST:PORT/, not {url}")
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=10)
        self.file = self.sock.makefile("rb")

    def call(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"redis: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError(f"redis: an unexpected reply {line!r}")

    def close(self):
        self.sock.close()


def rewrite_redis_trace(gw, tenant, chain):
    """The SQLite rewrite below, made to the Redis records (`P:{TENANT}:tev:CHAIN:POS`): hop
    1's delegate renamed, the denial deleted, and a copy of the last remaining event, as an
    allow to mallory, put at the position after it (the denial's), so no position is missing
    and the head's count still holds. Each edit is read back."""
    r = Resp(gw.store)
    tag = f"{gw.prefix}:{{{tenant}}}"
    key = lambda pos: f"{tag}:tev:{chain}:{pos}"
    head = json.loads(r.call("GET", f"{tag}:thead:{chain}"))
    events = [json.loads(r.call("GET", key(pos))) for pos in range(1, head["count"] + 1)]
    first = min((e for e in events if e["decision"] == "allow"), key=lambda e: e["seq"])
    first["delegate"] = "mallory"
    r.call("SET", key(first["pos"]), json.dumps(first))
    denied = [e for e in events if e["decision"] == "deny"]
    for e in denied:
        r.call("DEL", key(e["pos"]))
    remaining = [e for e in events if e["decision"] != "deny"]
    last = dict(remaining[-1])
    last.update(seq=max(e["seq"] for e in events) + 100, pos=max(e["pos"] for e in remaining) + 1,
                decision="allow", delegator="a", delegate="mallory", reason_code=None)
    r.call("SET", key(last["pos"]), json.dumps(last))
    written = json.loads(r.call("GET", key(first["pos"])) or "{}")
    forged = json.loads(r.call("GET", key(last["pos"])) or "{}")
    r.close()
    if not denied or written.get("delegate") != "mallory" or forged.get("delegate") != "mallory":
        raise RuntimeError(f"the Redis rewrite did not land: {len(denied)} denials, {written}, {forged}")


def trace_rewrite(gw):
    """The last attack: stops the gateway, rewrites its SQLite file (or its Redis records),
    restarts it."""
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10**6, 4))
    s, b = h.hop("a", mandate(1_000, 3))
    a = h.child(b, "a")
    sd, bd = a.hop("b", mandate(10**7, 2), task="widen")  # a denial (budget widened)
    chain = a.chain_id
    gw.stop()
    if gw.store:
        rewrite_redis_trace(gw, t.id, chain)
        return served_after_rewrite(gw, t, chain)
    db = glob.glob(os.path.join(gw.data, "*.sqlite3"))[0]
    c = sqlite3.connect(db)
    for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'trace_events'").fetchall():
        c.execute(f'DROP TRIGGER "{name}"')
    cols = [r[1] for r in c.execute("PRAGMA table_info(trace_events)")]
    c.execute("UPDATE trace_events SET delegate = 'mallory' WHERE chain_id = ? AND decision = 'allow' "
              "AND seq = (SELECT MIN(seq) FROM trace_events WHERE chain_id = ? AND decision = 'allow')", (chain, chain))
    c.execute("DELETE FROM trace_events WHERE chain_id = ? AND decision = 'deny'", (chain,))
    last = dict(zip(cols, c.execute("SELECT * FROM trace_events WHERE chain_id = ? ORDER BY seq DESC LIMIT 1", (chain,)).fetchone()))
    last["seq"] = c.execute("SELECT MAX(seq) FROM trace_events").fetchone()[0] + 100
    if "pos" in last:
        last["pos"] = c.execute("SELECT MAX(pos) FROM trace_events WHERE chain_id = ?", (chain,)).fetchone()[0] + 1
    last.update(decision="allow", delegator="a", delegate="mallory", reason_code=None)
    c.execute(f"INSERT INTO trace_events ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", [last[k] for k in cols])
    c.commit()
    c.close()
    return served_after_rewrite(gw, t, chain)


def served_after_rewrite(gw, t, chain):
    """Restarts the gateway and reads the rewritten chain: refused when the gateway names it."""
    gw.start()
    s, b = gw.call("GET", f"/v1/chains/{chain}", key=t.op)
    events = b.get("events", []) if isinstance(b, dict) else []
    shown = [f"{e.get('delegator')}->{e.get('delegate')}:{e.get('decision')}" for e in events]
    integrity = b.get("integrity") if isinstance(b, dict) else None
    if s != 200:
        # not a verdict on the rewrite: the chain could not be read at all
        raise RuntimeError(f"GET /v1/chains/{chain}: {s} {str(b)[:120]}")
    if integrity in (None, "ok"):
        return ok(f"200 served as whole: {shown}, no integrity warning")
    return no(f"{s} integrity: {str(integrity)[:90]}")


def replay_new_idempotency_key(gw):
    """Residual: the issue's replay with one header changed: a fresh X-Idempotency-Key each time."""
    t = Tenant(gw)
    h = t.root("orchestrator", mandate(10**6, 4))
    body = h.request("a", mandate(100, 3), task="replayed-keyed")
    rs = [h.send(body, headers={"x-idempotency-key": f"replay-{i}"}) for i in range(5)]
    allows = sum(allowed(*r) for r in rs)
    tokens = {r[1].get("child_token") for r in rs if allowed(*r)}
    return ok(f"{allows} allows, {len(tokens)} distinct child tokens (each held from the parent's escrow)") if len(tokens) > 1 else \
        no(f"{rs[-1][0]} the original response {allows}x, {len(tokens)} child token")


ATTACKS = [
    ("re-rooting: new chain with a made-up parent mandate", reroot_made_up,
     "authority.rs::a_first_hop_without_a_root_grant_is_refused_and_chain_ids_are_never_reused"),
    ("re-rooting: a chain at depth 5/5 continued as a new chain", reroot_depth_limit,
     "authority.rs::a_chain_at_its_depth_limit_cannot_continue_as_a_new_chain"),
    ("re-rooting: a cycle closed through a new chain", reroot_cycle,
     "authority.rs::a_cycle_cannot_close_through_a_new_chain"),
    ("re-rooting: a first hop with an existing chain_id appended to it", reroot_existing_chain_id,
     "authority.rs::a_first_hop_without_a_root_grant_is_refused_and_chain_ids_are_never_reused"),
    ("self-asserted depth_exception.approved_by", depth_exception_self_asserted,
     "authority.rs::self_asserted_facts_are_refused_or_replaced"),
    ("caller-sent trust score", caller_trust,
     "authority.rs::self_asserted_facts_are_refused_or_replaced"),
    ("Scenario B: three children each with the parent's full budget", scenario_b,
     "authority.rs::aggregate_widening_is_refused_scenario_b"),
    ("a mandate listing a unit twice", unit_twice,
     "authority.rs::a_mandate_listing_a_unit_twice_is_refused_with_no_hold"),
    ("child holds drawn from the tenant, not the parent", child_holds_from_tenant,
     "authority.rs::aggregate_widening_is_refused_scenario_b"),
    ("replay: the same token and request five times", replay,
     "authority.rs::a_replayed_delegation_returns_the_original_response_with_no_second_hold"),
    ("replay with a new X-Idempotency-Key each time (found by this runner; fixed on main since)", replay_new_idempotency_key,
     "authority.rs::a_replay_with_a_new_idempotency_key_returns_the_original_response"),
    ("cross-tenant token", cross_tenant,
     "authority.rs::another_tenants_token_is_refused"),
    ("balances:read key reserves", ro_reserve,
     "roles.rs::a_balances_read_key_cannot_reserve_fund_reset_create_unfreeze_or_approve"),
    ("balances:read key releases another key's reservation", ro_release_other,
     "roles.rs::a_key_cannot_touch_another_keys_reservation_but_an_operator_may_release_it"),
    ("balances:read key CREDITs its budget by 10^15", ro_credit,
     "roles.rs::a_balances_read_key_cannot_reserve_fund_reset_create_unfreeze_or_approve"),
    ("balances:read key RESET_SPENT to 0", ro_reset_spent,
     "roles.rs::a_balances_read_key_cannot_reserve_fund_reset_create_unfreeze_or_approve"),
    ("balances:read key creates a budget", ro_create_budget,
     "roles.rs::a_balances_read_key_cannot_reserve_fund_reset_create_unfreeze_or_approve"),
    ("balances:read key unfreezes an admin freeze", ro_unfreeze,
     "roles.rs::a_balances_read_key_cannot_reserve_fund_reset_create_unfreeze_or_approve"),
    ("approving another's escalation writing decided_by", forged_decided_by,
     "roles.rs::decided_by_cannot_be_forged_and_only_approvers_decide"),
    ("an approval issues no token", approval_no_token,
     "delegations.rs::escalations_queue_targets_and_decisions_that_perform_the_delegation"),
    ("CREDIT 2^63-1 overflows allocated", credit_overflow,
     "roles.rs::ledger_and_admin_arithmetic_is_checked"),
    ("two overdraft events of 2^63-1 overflow debt", debt_overflow,
     "roles.rs::ledger_and_admin_arithmetic_is_checked"),
    ("RESET_SPENT to -1000", reset_spent_negative,
     "roles.rs::ledger_and_admin_arithmetic_is_checked"),
    ("a 100,000-character to.id (500 after the hold)", long_to_id,
     "authority.rs::oversized_and_misshapen_requests_change_nothing"),
    ("JSON arrays where objects are expected", json_arrays,
     "roles.rs::json_arrays_are_refused_where_objects_are_expected"),
    ("JSON arrays inside a delegation request (found by this runner; fixed on main since)", json_arrays_in_request,
     "authority.rs::arrays_inside_a_delegation_request_are_refused"),
    ("identity: Agent-É (case)", identity("Agent-É"),
     "authority.rs::identity_variants_are_one_agent_and_close_a_cycle"),
    ("identity: trailing space", identity("agent-é "),
     "authority.rs::identity_variants_are_one_agent_and_close_a_cycle"),
    ("identity: zero-width space", identity("agent-\u200bé"),
     "authority.rs::identity_variants_are_one_agent_and_close_a_cycle"),
    ("identity: NFD (e + combining acute)", identity("agent-e\u0301"),
     "authority.rs::unicode_variants_of_an_agent_are_one_agent_or_refused"),
    ("identity: fullwidth letters", identity("ａｇｅｎｔ-é"),
     "authority.rs::unicode_variants_of_an_agent_are_one_agent_or_refused"),
    ("identity: Cyrillic а (U+0430)", identity("\u0430gent-é"),
     "authority.rs::unicode_variants_of_an_agent_are_one_agent_or_refused"),
    ("identity: \\u0000", identity("agent-é\u0000"),
     "authority.rs::identity_variants_are_one_agent_and_close_a_cycle"),
    ("link 1's `at` rewritten to dodge the 4.10 deadline", link_time,
     "authority.rs::link_timestamps_are_bound_to_the_token"),
    ("the 75% depth warning never reaches an operator", warning_operator,
     "trace_tamper.rs::the_depth_warning_is_an_operator_event_and_a_metric"),
    ("trace rows rewritten in SQLite served without warning", trace_rewrite,
     "trace_tamper.rs::direct_database_edits_are_named_by_the_gateway_and_the_offline_verifier"),
    # Found by this runner beyond the list (the caller-sent trust score through the
    # outcome report); closed: outcomes come from an operator, an approver or the originator,
    # once per chain.
    ("an agent's own outcome report sets its registry trust", outcome_self_report,
     "authority.rs::an_agent_cannot_raise_its_own_trust_with_an_outcome_report"),
]


# Attacks beyond the list that this runner found still working on main; reported in
# their own table, and counted by `--expect refused` only with `--strict` while they are open.
RESIDUALS = [
]


def test_ignored(ref):
    f, name = ref.split("::")
    try:
        with open(os.path.join(TESTS, f), encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return False
    return re.search(rf"#\[ignore[^\n]*\]\s*(?:#\[[^\n]*\]\s*)*(?:async\s+)?fn {re.escape(name)}\b", text) is not None


def test_exists(ref):
    """Whether `file.rs::name` is a function in host/gateway/tests."""
    f, name = ref.split("::")
    try:
        with open(os.path.join(TESTS, f), encoding="utf-8") as fh:
            return re.search(rf"\bfn {re.escape(name)}\s*\(", fh.read()) is not None
    except OSError:
        return False


def cell(r):
    return f"**{r['result']}**: " + r["detail"].replace("|", "/").replace("\n", " ")


def compare(old_path, new_path):
    with open(old_path, encoding="utf-8") as f:
        old = json.load(f)
    with open(new_path, encoding="utf-8") as f:
        new = json.load(f)
    by_title = {r["bypass"]: r for r in old["rows"]}
    out = [
        "# Issue 14's bypasses: before and after",
        "",
        "Every bypass that issue 14 lists, run for real by `host/gateway/attacks/bypasses.py`",
        "against the gateway at 6fd6c58 (before anchored authority) and against this tree's",
        "gateway. **SUCCEEDED** = the attack worked (or, for the rows that are a missing behaviour",
        "rather than a request, the defect showed); **REFUSED** = the gateway refused it (status and",
        "reason or error code) or the defect no longer shows (what happens instead is in the cell).",
        "The last column names the regression test in `host/gateway/tests` that covers the row on",
        "main. Generated; do not edit by hand.",
        "",
        f"Old: `{old['sbd']}` ({old['gateway']}), {len(old['rows'])} attacks in {old['seconds']} s. "
        f"Now: `{new['sbd']}` ({new['gateway']}), {len(new['rows'])} attacks in {new['seconds']} s.",
        "",
    ]
    for residual in (False, True):
        rows = [r for r in new["rows"] if r.get("residual", False) == residual]
        if residual:
            out += ["", "## Beyond the issue's list: found by running the attacks", "",
                    "Attacks this runner found still working on main. `--expect refused` counts them only",
                    "with `--strict` while they are open; their regression tests are `#[ignore]`d until",
                    "they are closed.", ""]
        out += ["| bypass | old 6fd6c58 | now | regression test |", "|---|---|---|---|"]
        for r in rows:
            o = by_title.get(r["bypass"])
            test = f"`{r['test']}`" + (" (ignored: open)" if r.get("test_ignored") else "")
            out.append(f"| {r['bypass']} | {cell(o) if o else 'not run'} | {cell(r)} | {test} |")
    out += [
        "",
        "## How each attack is made, where the two gateways differ",
        "",
        "- 34 rows are the issue's list (the identity row split per variant, the `balances:read`",
        "  row per operation). Two more rows are cases of listed bypasses that still worked on",
        "  main when this runner first ran and are fixed on this branch: JSON arrays inside a",
        "  delegation's `request` (parsed without the strict adapter; now `strict_json::from_value`)",
        "  and the replay with a fresh `X-Idempotency-Key` each time (an explicit key replaced the",
        "  implicit (token, request) key; now a hop that changed state is also stored under the",
        "  implicit key and found under any other).",
        "- *A first hop with an existing chain_id*: on the new gateway the tenant first opts into",
        "  open roots (`PUT /v1/authority/settings`), the one configuration where a rootless first",
        "  hop is allowed at all; without it the hop is a 403 like the other re-rooting rows.",
        "- *Self-asserted depth exception*: the old gateway clamps a child's `remaining_depth` to",
        "  the depth limit, so the exception is sent on every hop; hop 6 then passes.",
        "- *Link 1's `at`*: nobody waits out the 15-minute deadline; the old gateway denies the",
        "  hop with 1006 when link 1 says 16 minutes ago and allows it when the same link says now,",
        "  with the same token, which is the dodge.",
        "- *Approving another's escalation*: before roles the attacker is a `balances:read` key;",
        "  now it is an approver key of another principal (`bob`), the strongest key that is not",
        "  the assignee.",
        "- *Child holds*: measured as the tenant budget's `reserved` before and after the child's",
        "  hop.",
        "- *Trace rewrite*: the runner stops the gateway, drops the append-only triggers, renames",
        "  hop 1's delegate, deletes the denial, inserts a copied allow, restarts and reads",
        "  `GET /v1/chains/{id}`.",
        "",
        "- *Outcome report* (found by this runner, beyond the issue's list): on main before the",
        "  fix, `POST /v1/chains/{id}/outcome` was open to every agent key of the tenant, with the",
        "  magnitude the reporter chose: one `success` of 1000 moved the chain's last delegate from",
        "  300 to 1000 (T1 to T7), reported by itself. Now an outcome is reported by an operator, an",
        "  approver or the chain's originator (the holder of its root grant), once per chain (409",
        "  after), and the trace records the key's principal as the reporter.",
        "",
        "## Regenerate",
        "",
        "```sh",
        "git worktree add --detach /tmp/sbd-6fd6c58 6fd6c58 && (cd /tmp/sbd-6fd6c58 && cargo build --release --bin sbd)",
        "cargo build --release --bin sbd",
        "python3 host/gateway/attacks/bypasses.py --sbd /tmp/sbd-6fd6c58/target/release/sbd --json > /tmp/old.json",
        "python3 host/gateway/attacks/bypasses.py --sbd target/release/sbd --json > /tmp/new.json",
        "python3 host/gateway/attacks/bypasses.py --compare /tmp/old.json /tmp/new.json > docs/attacks-before-after.md",
        "# CI (.ci/run): every listed bypass refused, each with a regression test",
        "python3 host/gateway/attacks/bypasses.py --sbd target/release/sbd --expect refused",
        "# and with the gateway's state on Redis (the trace rewrite edits the Redis records)",
        "python3 host/gateway/attacks/bypasses.py --sbd target/release/sbd --expect refused --sbd-store redis://127.0.0.1:6379/",
        "```",
        "",
        "The old gateway needs no root grant, registry or roles: the runner detects the generation by",
        "whether `POST /v1/root-grants` exists and provisions each attack the way that gateway",
        "works (a tenant key for everything before; an operator, agent keys, registered agents and",
        "root grants now). Where an attack needs a chain, the old runs open it with a rootless",
        "first hop and send the links in `request.chain`; the new runs start from a root grant and",
        "take the links from the token.",
    ]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sbd", help="the sbd binary to attack")
    ap.add_argument("--compare", nargs=2, metavar=("OLD_JSON", "NEW_JSON"),
                    help="print docs/attacks-before-after.md from two --json outputs (old binary, new binary)")
    ap.add_argument("--expect", choices=["refused"], help="exit non-zero unless every attack is refused")
    ap.add_argument("--strict", action="store_true", help="with --expect: the residual attacks must be refused too")
    ap.add_argument("--json", action="store_true", help="machine-readable results")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--sbd-store", metavar="URL",
                    help="with --sbd: the gateway's state on this Redis (`sbd serve --store URL`, one redis-server) instead of SQLite")
    args = ap.parse_args()
    if args.sbd_store and not args.sbd:
        ap.error("--sbd-store goes with --sbd")
    if args.sbd_store and not re.fullmatch(r"redis://([^:/@]+):(\d+)/?", args.sbd_store):
        ap.error(f"--sbd-store: one redis-server as redis://HOST:PORT/ (the trace rewrite edits its records), not {args.sbd_store}")
    if args.compare:
        print(compare(*args.compare))
        return 0
    if not args.sbd:
        ap.error("--sbd is required")
    root = tempfile.mkdtemp(prefix="sbd-bypass-")
    gw = Gateway(os.path.abspath(args.sbd), root, args.sbd_store)
    started = time.time()
    rows = []
    try:
        gw.start()
        for (title, fn, test), residual in [(a, False) for a in ATTACKS] + [(a, True) for a in RESIDUALS]:
            try:
                result, detail = fn(gw)
            except Exception as e:  # an attack that could not run is reported, never counted as refused
                result, detail = "ERROR", f"{type(e).__name__}: {e}"
                if os.environ.get("BYPASS_DEBUG"):
                    traceback.print_exc()
            rows.append({"bypass": title, "result": result, "detail": detail, "test": test, "residual": residual,
                         "test_exists": test_exists(test), "test_ignored": test_ignored(test)})
    finally:
        gw.stop()
        if not args.keep:
            import shutil
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.time() - started
    version = "anchored (root grants)" if gw.new else "before anchored authority (no root grants)"
    if args.sbd_store:
        version += ", state on Redis"
    if args.json:
        print(json.dumps({"sbd": args.sbd, "gateway": version, "seconds": round(elapsed, 1), "rows": rows}, ensure_ascii=False, indent=1))
    else:
        print(f"# {args.sbd}: gateway {version}, {len(rows)} attacks in {elapsed:.1f} s")
        for residual in (False, True):
            if residual:
                print("\n# beyond the issue's list: found by this runner (open ones do not fail --expect refused without --strict)")
            print("bypass | result | regression test")
            for r in rows:
                if r["residual"] != residual:
                    continue
                detail = r["detail"].replace("|", "/").replace("\n", " ")
                test = r["test"] + ("" if r["test_exists"] else " (MISSING)") + (" (ignored: open)" if r["test_ignored"] else "")
                print(f"{r['bypass']} | {r['result']}: {detail} | {test}")
    if args.expect == "refused":
        bad = [r for r in rows if (args.strict or not r["residual"])
               and (r["result"] != "REFUSED" or not r["test_exists"] or r["test_ignored"])]
        if bad:
            for r in bad:
                print(f"NOT REFUSED: {r['bypass']}: {r['result']} {r['detail']}" if r["result"] != "REFUSED"
                      else f"NO REGRESSION TEST: {r['bypass']}: {r['test']}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""sbd in front of agent frameworks: every handoff or delegation is decided by the policy
before the child agent is contacted.

The framework-neutral part lives here: :class:`Delegations` turns "agent A hands the task it
holds to agent B" into a :class:`~sbd_policy.Request` (A's mandate as the parent, the narrowest
mandate B needs as the requested one, the chain so far), asks the policy, and on an allow
returns B's :class:`DelegationState`: B now holds the task under the *child* mandate of the
grant, with the hop appended to the chain. A deny raises :class:`DelegationRefused`, an
escalation :class:`DelegationEscalated`, both before anything reaches B.

The framework adapters are submodules, each importing its framework only when imported:

* :mod:`sbd_policy.adapters.openai_agents`: OpenAI Agents SDK handoffs (``openai-agents``);
* :mod:`sbd_policy.adapters.langgraph`: LangGraph supervisor-to-worker routing (``langgraph``);
* :mod:`sbd_policy.adapters.a2a`: A2A tasks sent to a remote agent (``a2a-sdk``), the grant
  carried in the message's metadata.

Pinned versions: ``bindings/python/requirements-adapters.txt``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

from ..jsonform import mandate_from_json, mandate_to_json, request_to_json, verdict_to_json
from ..policy import Policy
from ..types import Agent, Allow, Deny, Escalate, Link, Mandate, Request, Task, Verdict

__all__ = [
    "Delegations",
    "DelegationState",
    "DelegationBlocked",
    "DelegationRefused",
    "DelegationEscalated",
    "Decision",
    "blocked",
    "state_to_json",
    "state_from_json",
    "TokenIssuer",
    "SbdCliTokens",
    "TokenRefused",
]

Narrowing = Callable[[str, Mandate], Mandate]
"""Given the child's id and the parent's mandate, the mandate the child asks for."""


@dataclass(frozen=True)
class DelegationState:
    """Where a task is: who holds it, under which mandate, and how it got there."""

    holder: Agent
    """The agent that holds the task now (the next delegator)."""
    task: Task
    """The task being delegated."""
    mandate: Mandate
    """The holder's mandate: what it may do, and hand on."""
    chain: tuple[Link, ...] = ()
    """The hops so far, originator first."""
    state: tuple[float, ...] = ()
    """The SBD state vector sent with each request."""
    token: str | None = None
    """The holder's delegation token (text form), when the gate issues tokens: the root grant's
    for the originator, the child token of each allowed hop after it."""


@dataclass(frozen=True)
class Decision:
    """One delegation the gate decided: the request sent and the verdict given."""

    request: Request
    verdict: Verdict


class DelegationBlocked(Exception):
    """A delegation the policy did not allow; the child was not contacted."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.verdict = decision.verdict
        self.request = decision.request
        v = decision.verdict
        what = f"{v.name} ({v.code})" if isinstance(v, (Deny, Escalate)) else "not allowed"
        super().__init__(f"delegation {decision.request.from_.id} -> {decision.request.to.id} {self.action}: {what}")

    action = "blocked"


class DelegationRefused(DelegationBlocked):
    """The policy denied the delegation (``verdict`` is a :class:`~sbd_policy.Deny`)."""

    action = "refused"


class DelegationEscalated(DelegationBlocked):
    """The policy escalated the delegation to a human or a more trusted agent (``verdict`` is an
    :class:`~sbd_policy.Escalate`, whose ``target`` says who decides next)."""

    action = "escalated"


class TokenRefused(RuntimeError):
    """The token issuer did not issue a token for a delegation the gate allowed (it decided
    otherwise, or failed); the child was not contacted."""


TokenIssuer = Callable[[Decision, DelegationState], str]
"""Given an allowed decision and the delegator's state (its ``token``), the child's token."""


class Delegations:
    """The gate: decides each delegation with ``policy`` before the child is contacted.

    ``trust`` gives each agent's trust score (0-1000) by its sbd id; an agent without a score is
    never contacted (``KeyError``). ``ids`` maps a framework's agent name to its sbd id (by
    default the name itself: sbd ids may not contain whitespace). ``narrowing`` says what each
    child asks for, given the parent's mandate; by default the parent's mandate with one hop less
    of remaining depth. The requested mandate is passed through ``policy.narrow`` with the
    parent's, so a child never asks for more than its parent holds. ``clock`` gives the time in
    Unix milliseconds (the policy has no clock).

    ``tokens``, when given, issues the child's delegation token on every allow (for example
    :class:`SbdCliTokens`); the child's state carries it, and the A2A adapter sends it with the
    task. A token the issuer refuses raises :class:`TokenRefused` and the child is not contacted.

    Every decision is appended to :attr:`decisions`.
    """

    def __init__(
        self,
        policy: Policy,
        trust: Mapping[str, int],
        *,
        ids: Mapping[str, str] | None = None,
        narrowing: Narrowing | Mapping[str, Mapping[str, Any]] | None = None,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
        tokens: TokenIssuer | None = None,
    ) -> None:
        self.policy = policy
        self.tokens = tokens
        self.trust = dict(trust)
        self.ids = dict(ids or {})
        self._narrowing = narrowing
        self.clock = clock
        self.decisions: list[Decision] = []

    def agent(self, name: str) -> Agent:
        """The sbd agent for a framework's agent name (``KeyError`` if it has no trust score)."""
        agent_id = self.ids.get(name, name)
        if agent_id not in self.trust:
            raise KeyError(f"agent `{agent_id}` has no trust score: it is never contacted")
        return Agent(id=agent_id, trust=self.trust[agent_id])

    def start(
        self,
        originator: str,
        task: Task,
        mandate: Mandate,
        *,
        state: Sequence[float] = (),
        chain: Sequence[Link] = (),
        token: str | None = None,
    ) -> DelegationState:
        """The state of a task held by ``originator`` under ``mandate`` (``chain``: the hops that
        brought it there, if it arrived by delegation; ``token``: its delegation token, if any)."""
        return DelegationState(self.agent(originator), task, mandate, tuple(chain), tuple(state), token)

    def requested(self, child: str, parent: Mandate) -> Mandate:
        """The mandate ``child`` asks for under ``parent``."""
        default = replace(parent, remaining_depth=max(0, parent.remaining_depth - 1))
        if self._narrowing is None:
            wanted = default
        elif callable(self._narrowing):
            wanted = self._narrowing(child, parent)
        else:
            overrides = self._narrowing.get(child)
            if overrides is None:
                wanted = default
            else:
                document = mandate_to_json(default)
                document.update(overrides)
                wanted = mandate_from_json(document, f"narrowing[{child!r}]")
        return self.policy.narrow(parent, wanted)

    def decide(self, at: DelegationState, to: str) -> tuple[Decision, DelegationState | None]:
        """Asks the policy whether ``at.holder`` may hand the task to ``to``; the child's state
        when allowed, else ``None``. Nothing is raised for a deny or an escalation."""
        child = self.agent(to)
        request = Request(
            from_=at.holder,
            to=child,
            task=at.task,
            parent_mandate=at.mandate,
            requested_mandate=self.requested(child.id, at.mandate),
            now=self.clock(),
            chain=list(at.chain),
            state=list(at.state),
        )
        verdict = self.policy.evaluate(request)
        decision = Decision(request, verdict)
        self.decisions.append(decision)
        if not isinstance(verdict, Allow):
            return decision, None
        grant = verdict.grant
        link = Link(
            from_=at.holder.id,
            to=child.id,
            depth=len(at.chain) + 1,
            alpha=grant.alpha,
            at=request.now,
            reason=at.task.id,
        )
        token = self.tokens(decision, at) if self.tokens is not None else None
        return decision, DelegationState(child, at.task, grant.child_mandate, at.chain + (link,), at.state, token)

    def delegate(self, at: DelegationState, to: str) -> DelegationState:
        """Like :meth:`decide`, but raises :class:`DelegationRefused` on a deny and
        :class:`DelegationEscalated` on an escalation, so the caller cannot reach the child."""
        decision, child = self.decide(at, to)
        if child is None:
            raise blocked(decision)
        return child


def blocked(decision: Decision) -> DelegationBlocked:
    """The exception for a decision that is not an allow."""
    if isinstance(decision.verdict, Escalate):
        return DelegationEscalated(decision)
    return DelegationRefused(decision)


def state_to_json(state: DelegationState) -> dict[str, Any]:
    """A JSON form of a delegation state, to carry it to a remote agent (the A2A adapter puts it
    in the message metadata)."""
    return {
        "holder": {"id": state.holder.id, "trust": state.holder.trust},
        "task": {
            "id": state.task.id,
            "action_kind": state.task.action_kind,
            "risk": state.task.risk.value,
            "value": state.task.value,
            "counterparty": state.task.counterparty,
            "completable_locally": state.task.completable_locally,
        },
        "mandate": mandate_to_json(state.mandate),
        "chain": [
            {"from": l.from_, "to": l.to, "depth": l.depth, "alpha": l.alpha, "at": l.at, "reason": l.reason}
            for l in state.chain
        ],
        "state": list(state.state),
        "token": state.token,
    }


def state_from_json(document: Mapping[str, Any]) -> DelegationState:
    """The inverse of :func:`state_to_json`; ``TypeError``/``ValueError`` naming the field."""
    from ..jsonform import request_from_json

    # Reuse the strict request reader for the shared shapes (agents, task, mandate, links).
    fields = {"holder", "task", "mandate", "chain", "state", "token"}
    unknown = set(document) - fields
    if unknown:
        raise ValueError(f"delegation: unknown field `{sorted(unknown)[0]}`")
    request = request_from_json(
        {
            "from": document["holder"],
            "to": document["holder"],
            "task": document["task"],
            "parent_mandate": document["mandate"],
            "requested_mandate": document["mandate"],
            "chain": document.get("chain", []),
            "state": document.get("state", []),
            "now": 0,
        },
        "delegation",
    )
    token = document.get("token")
    if token is not None and not isinstance(token, str):
        raise TypeError("delegation.token: expected a string or null")
    return DelegationState(
        request.from_, request.task, request.parent_mandate, tuple(request.chain), tuple(request.state), token
    )


def verdict_summary(verdict: Verdict) -> dict[str, Any]:
    """The verdict in the JSON form ``sbd eval`` prints."""
    return verdict_to_json(verdict)


class SbdCliTokens:
    """Issues delegation tokens with the ``sbd`` binary (``sbd token issue``): signed with
    ``key`` (a secret key file from ``sbd keygen``); a delegator's own token, when it has one, is
    verified against ``trust_store`` and extended by one block. ``sbd`` decides the request again
    with ``policy`` (TOML; default: its embedded default policy) and issues nothing unless that is
    an allow too (:class:`TokenRefused`). The receiving agent checks a token with
    ``sbd token verify --token T --trust-store S`` (:meth:`verify`). Each block lives ``ttl_ms``
    (15 minutes), at most as long as the delegator's.
    """

    def __init__(
        self,
        sbd: str | os.PathLike[str],
        key: str | os.PathLike[str],
        trust_store: str | os.PathLike[str],
        *,
        policy: str | os.PathLike[str] | None = None,
        ttl_ms: int = 900_000,
        timeout_s: float = 30.0,
    ) -> None:
        self.sbd = os.fspath(sbd)
        self.key = os.fspath(key)
        self.trust_store = os.fspath(trust_store)
        self.policy = None if policy is None else os.fspath(policy)
        self.ttl_ms = ttl_ms
        self.timeout_s = timeout_s

    def verify(self, token: str, now: int | None = None) -> dict[str, Any]:
        """``sbd token verify``: the token's chain as JSON (``holder``, ``mandate``,
        ``expires_at``, ``blocks``); :class:`TokenRefused` with the reason if it is refused."""
        import json

        command = [self.sbd, "token", "verify", "--token", token, "--trust-store", self.trust_store]
        if now is not None:
            command += ["--now", str(now)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        if done.returncode != 0:
            lines = (done.stderr.strip() or f"exit status {done.returncode}").splitlines()
            raise TokenRefused(f"the token is refused: {lines[-1]}")
        printed = json.loads(done.stdout)
        chain = printed.get("chain") if isinstance(printed, dict) else None
        if not isinstance(chain, dict):
            raise TokenRefused("`sbd token verify` printed no chain")
        return chain

    def _expires_at(self, token: str) -> int:
        expires_at = self.verify(token).get("expires_at")
        if isinstance(expires_at, bool) or not isinstance(expires_at, int):
            raise TokenRefused("`sbd token verify` printed no expiry")
        return expires_at

    def __call__(self, decision: Decision, delegator: DelegationState) -> str:
        import json

        with tempfile.TemporaryDirectory() as work:
            path = os.path.join(work, "request.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(request_to_json(decision.request), f)
            command = [self.sbd, "token", "issue", "--request", path, "--key", self.key]
            if self.policy is not None:
                command += ["--policy", self.policy]
            if delegator.token is not None:
                # A block may not outlive the one before it, and `sbd token issue` does not cap
                # the new block's lifetime at the parent's: ask for at most what is left of it.
                left = self._expires_at(delegator.token) - decision.request.now
                if left <= 0:
                    raise TokenRefused(f"the token of `{delegator.holder.id}` has expired")
                command += ["--token", delegator.token, "--trust-store", self.trust_store]
                command += ["--ttl-ms", str(min(left, self.ttl_ms))]
            else:
                command += ["--ttl-ms", str(self.ttl_ms)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        token: object = None
        if done.returncode == 0:
            try:
                token = json.loads(done.stdout).get("token")  # {"chain", "token", "verdict"}
            except (ValueError, AttributeError):
                token = None
        if not isinstance(token, str) or not token:
            lines = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()
            raise TokenRefused(
                f"`sbd token issue` issued no token for {decision.request.from_.id} -> {decision.request.to.id}: {lines[-1]}"
            )
        return token

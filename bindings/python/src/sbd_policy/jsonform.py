"""The JSON forms the Rust side uses: requests as ``sbd eval --request`` reads them, verdicts
as ``sbd eval`` prints them (the serde form of ``sbd_policy::Request`` and ``Verdict``).

Requests use snake_case fields and Cycles unit names (``USD_MICROCENTS``); the optional fields
take the Rust defaults (``chain``, ``state``: empty; ``depth_exception``, ``action_mask``,
``registry``, ``task.counterparty``: null; ``registry.unregistered``: ``deny``;
``registry.explicit_delegation``, ``registry.delegate_listed``: false; ``task.value``: 0; ``task.completable_locally``: true; ``link.reason``: ""), and unknown
fields are refused (``ValueError`` naming the field), exactly as ``sbd eval`` reads them. A verdict
is ``{"allow": grant}``, ``{"escalate": {"target": {"human"|"agent": id}, "code", "reason",
"message"}}`` or ``{"deny": {"code", "reason", "message"}}``: the shape of
``bindings/shared/expected.json``, which every language's test compares against.

A document that is not a request raises ``TypeError`` (wrong JSON type) or ``ValueError``
(a missing field, a negative integer, an unknown enum name), naming the field.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Callable, Mapping, TypeVar

from .types import (
    AccountabilityShare,
    ActionMask,
    Agent,
    AgentTarget,
    Allow,
    Budget,
    BudgetUnit,
    Deny,
    DepthException,
    Escalate,
    Grant,
    HumanTarget,
    Link,
    Mandate,
    PolicyWarning,
    RegistryFacts,
    Request,
    RiskLevel,
    Task,
    ToolsetBudget,
    TrustTier,
    UnregisteredRule,
    Verdict,
)

__all__ = [
    "request_from_json",
    "request_to_json",
    "mandate_from_json",
    "verdict_from_json",
    "verdict_to_json",
    "mandate_to_json",
]

T = TypeVar("T")
E = TypeVar("E", bound=Enum)

_UNITS_JSON = {
    BudgetUnit.USD_MICROCENTS: "USD_MICROCENTS",
    BudgetUnit.TOKENS: "TOKENS",
    BudgetUnit.CREDITS: "CREDITS",
    BudgetUnit.RISK_POINTS: "RISK_POINTS",
}
_UNITS_FROM_JSON = {v: k for k, v in _UNITS_JSON.items()}
_MISSING = object()


class _Object:
    """A JSON object being read field by field. Fields left unread when :meth:`done` is called
    are unknown and refused, as the Rust side (serde with ``deny_unknown_fields``) refuses them."""

    def __init__(self, value: Any, at: str) -> None:
        if not isinstance(value, Mapping):
            raise TypeError(f"{at}: expected a JSON object, got {_json_type(value)}")
        self.fields = dict(value)
        self.at = at

    def take(self, name: str, read: Callable[[Any, str], T], default: Any = _MISSING) -> T:
        value = self.fields.pop(name, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise ValueError(f"{self.at}: missing field `{name}`")
            return default  # type: ignore[no-any-return]
        return read(value, f"{self.at}.{name}")

    def done(self) -> None:
        """Raises ``ValueError`` naming the first field no :meth:`take` read."""
        for name in self.fields:
            raise ValueError(f"{self.at}: unknown field `{name}`")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _int(value: Any, at: str) -> int:
    """A non-negative integer (its WIT width is checked when the request is evaluated)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{at}: expected an integer, got {_json_type(value)}")
    if value < 0:
        raise ValueError(f"{at}: {value} is negative")
    return value


def _float(value: Any, at: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{at}: expected a number, got {_json_type(value)}")
    return float(value)


def _str(value: Any, at: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{at}: expected a string, got {_json_type(value)}")
    return value


def _bool(value: Any, at: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{at}: expected a boolean, got {_json_type(value)}")
    return value


def _list(read: Callable[[Any, str], T]) -> Callable[[Any, str], list[T]]:
    def read_list(value: Any, at: str) -> list[T]:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{at}: expected an array, got {_json_type(value)}")
        return [read(item, f"{at}[{i}]") for i, item in enumerate(value)]

    return read_list


def _optional(read: Callable[[Any, str], T]) -> Callable[[Any, str], T | None]:
    return lambda value, at: None if value is None else read(value, at)


def _agent(value: Any, at: str) -> Agent:
    o = _Object(value, at)
    agent = Agent(id=o.take("id", _str), trust=o.take("trust", _int))
    o.done()
    return agent


def _budget(value: Any, at: str) -> Budget:
    o = _Object(value, at)

    def unit(v: Any, where: str) -> BudgetUnit:
        name = _str(v, where)
        if name not in _UNITS_FROM_JSON:
            raise ValueError(f"{where}: `{name}` is not a budget unit ({', '.join(_UNITS_FROM_JSON)})")
        return _UNITS_FROM_JSON[name]

    budget = Budget(unit=o.take("unit", unit), amount=o.take("amount", _int))
    o.done()
    return budget


def mandate_from_json(value: Any, at: str = "mandate") -> Mandate:
    """A :class:`Mandate` from its JSON form."""
    o = _Object(value, at)
    mandate = Mandate(
        value_ceiling=o.take("value_ceiling", _int),
        action_kinds=o.take("action_kinds", _list(_str)),
        counterparties=o.take("counterparties", _list(_str)),
        budgets=o.take("budgets", _list(_budget)),
        remaining_depth=o.take("remaining_depth", _int),
        expires_at=o.take("expires_at", _int),
    )
    o.done()
    return mandate


def _link(value: Any, at: str) -> Link:
    o = _Object(value, at)
    link = Link(
        from_=o.take("from", _str),
        to=o.take("to", _str),
        depth=o.take("depth", _int),
        alpha=o.take("alpha", _float),
        at=o.take("at", _int),
        reason=o.take("reason", _str, ""),
    )
    o.done()
    return link


def _enum(kind: type[E], what: str) -> Callable[[Any, str], E]:
    """A reader of `kind` by its value, refusing another name with `what` and every name."""
    names = ", ".join(str(member.value) for member in kind)

    def read(value: Any, at: str) -> E:
        name = _str(value, at)
        try:
            return kind(name)
        except ValueError:
            raise ValueError(f"{at}: `{name}` is not {what} ({names})") from None

    return read


_risk = _enum(RiskLevel, "a risk level")
_unregistered = _enum(UnregisteredRule, "an unregistered-agent rule")


def _task(value: Any, at: str) -> Task:
    o = _Object(value, at)
    task = Task(
        id=o.take("id", _str),
        action_kind=o.take("action_kind", _str),
        risk=o.take("risk", _risk),
        value=o.take("value", _int, 0),
        counterparty=o.take("counterparty", _optional(_str), None),
        completable_locally=o.take("completable_locally", _bool, True),
    )
    o.done()
    return task


def _exception(value: Any, at: str) -> DepthException:
    o = _Object(value, at)
    exception = DepthException(
        approved_by=o.take("approved_by", _str),
        justification=o.take("justification", _str),
        extra_depth=o.take("extra_depth", _int),
        expires_at=o.take("expires_at", _int),
    )
    o.done()
    return exception


def _toolset(value: Any, at: str) -> ToolsetBudget:
    o = _Object(value, at)
    budget = ToolsetBudget(toolset=o.take("toolset", _str), remaining=o.take("remaining", _int))
    o.done()
    return budget


def _mask(value: Any, at: str) -> ActionMask:
    o = _Object(value, at)
    mask = ActionMask(toolsets=o.take("toolsets", _list(_toolset)), cost=o.take("cost", _int))
    o.done()
    return mask


def _registry(value: Any, at: str) -> RegistryFacts:
    o = _Object(value, at)
    facts = RegistryFacts(
        delegator_registered=o.take("delegator_registered", _bool),
        delegate_registered=o.take("delegate_registered", _bool),
        unregistered=o.take("unregistered", _unregistered, UnregisteredRule.DENY),
        reviewer=o.take("reviewer", _str),
        explicit_delegation=o.take("explicit_delegation", _bool, False),
        delegate_listed=o.take("delegate_listed", _bool, False),
    )
    o.done()
    return facts


def request_from_json(value: Any, at: str = "request") -> Request:
    """A :class:`Request` from its JSON form (a parsed JSON object, e.g. from ``json.load``)."""
    o = _Object(value, at)
    request = Request(
        from_=o.take("from", _agent),
        to=o.take("to", _agent),
        task=o.take("task", _task),
        parent_mandate=o.take("parent_mandate", mandate_from_json),
        requested_mandate=o.take("requested_mandate", mandate_from_json),
        chain=o.take("chain", _list(_link), []),
        state=o.take("state", _list(_float), []),
        depth_exception=o.take("depth_exception", _optional(_exception), None),
        action_mask=o.take("action_mask", _optional(_mask), None),
        registry=o.take("registry", _optional(_registry), None),
        now=o.take("now", _int),
    )
    o.done()
    return request


def _of(value: Any, kind: type[T], at: str) -> T:
    if not isinstance(value, kind):
        raise TypeError(f"{at}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _items(value: Any, at: str) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{at}: expected a list, got {type(value).__name__}")
    return list(value)


def _enum_json(value: Any, names: Mapping[Any, str], at: str) -> str:
    """An enum member's JSON name; a plain string passes as written, for the component to
    accept or deny naming the path (one judge of what a request may hold)."""
    if isinstance(value, str) and value not in names:
        return value
    try:
        return names[value]
    except (KeyError, TypeError):
        raise TypeError(f"{at}: expected one of {sorted(set(names.values()))}, got {value!r}") from None


_RISKS_JSON = {r: r.value for r in RiskLevel}
_UNREGISTERED_JSON = {r: r.value for r in UnregisteredRule}


def request_to_json(request: Request, at: str = "request") -> dict[str, Any]:
    """The JSON form of a request, as ``sbd eval --request`` and ``sbd token issue`` read it;
    :func:`request_from_json` reads it back to an equal :class:`Request`.

    Only the structure is checked here (``TypeError`` naming the field when a part is not the
    dataclass or list it must be); values are written as given, and the component judges them:
    a trust score of 70,000 or a risk named ``"extreme"`` is denied ``request-malformed`` with
    the JSON path of the value."""
    _of(request, Request, at)
    task = _of(request.task, Task, f"{at}.task")
    exception = request.depth_exception
    mask = request.action_mask
    registry = request.registry
    links = [_of(l, Link, f"{at}.chain[{i}]") for i, l in enumerate(_items(request.chain, f"{at}.chain"))]
    from_ = _of(request.from_, Agent, f"{at}.from_")
    to = _of(request.to, Agent, f"{at}.to")
    return {
        "from": {"id": from_.id, "trust": from_.trust},
        "to": {"id": to.id, "trust": to.trust},
        "task": {
            "id": task.id,
            "action_kind": task.action_kind,
            "risk": _enum_json(task.risk, _RISKS_JSON, f"{at}.task.risk"),
            "value": task.value,
            "counterparty": task.counterparty,
            "completable_locally": task.completable_locally,
        },
        "parent_mandate": mandate_to_json(request.parent_mandate, f"{at}.parent_mandate"),
        "requested_mandate": mandate_to_json(request.requested_mandate, f"{at}.requested_mandate"),
        "chain": [
            {"from": l.from_, "to": l.to, "depth": l.depth, "alpha": l.alpha, "at": l.at, "reason": l.reason}
            for l in links
        ],
        "state": _items(request.state, f"{at}.state"),
        "depth_exception": None
        if exception is None
        else {
            "approved_by": _of(exception, DepthException, f"{at}.depth_exception").approved_by,
            "justification": exception.justification,
            "extra_depth": exception.extra_depth,
            "expires_at": exception.expires_at,
        },
        "action_mask": None
        if mask is None
        else {
            "toolsets": [
                {"toolset": t.toolset, "remaining": t.remaining}
                for t in (
                    _of(t, ToolsetBudget, f"{at}.action_mask.toolsets[{i}]")
                    for i, t in enumerate(_items(_of(mask, ActionMask, f"{at}.action_mask").toolsets, f"{at}.action_mask.toolsets"))
                )
            ],
            "cost": mask.cost,
        },
        "registry": None
        if registry is None
        else {
            "delegator_registered": _of(registry, RegistryFacts, f"{at}.registry").delegator_registered,
            "delegate_registered": registry.delegate_registered,
            "unregistered": _enum_json(registry.unregistered, _UNREGISTERED_JSON, f"{at}.registry.unregistered"),
            "reviewer": registry.reviewer,
            "explicit_delegation": registry.explicit_delegation,
            "delegate_listed": registry.delegate_listed,
        },
        "now": request.now,
    }


def mandate_to_json(mandate: Mandate, at: str = "mandate") -> dict[str, Any]:
    """The JSON form of a mandate."""
    _of(mandate, Mandate, at)
    budgets = [_of(b, Budget, f"{at}.budgets[{i}]") for i, b in enumerate(_items(mandate.budgets, f"{at}.budgets"))]
    return {
        "value_ceiling": mandate.value_ceiling,
        "action_kinds": _items(mandate.action_kinds, f"{at}.action_kinds"),
        "counterparties": _items(mandate.counterparties, f"{at}.counterparties"),
        "budgets": [
            {"unit": _enum_json(b.unit, _UNITS_JSON, f"{at}.budgets[{i}].unit"), "amount": b.amount}
            for i, b in enumerate(budgets)
        ],
        "remaining_depth": mandate.remaining_depth,
        "expires_at": mandate.expires_at,
    }


def verdict_to_json(verdict: Verdict) -> dict[str, Any]:
    """The JSON form of a verdict, as ``sbd eval`` prints it."""
    if isinstance(verdict, Allow):
        g = verdict.grant
        return {
            "allow": {
                "alpha": g.alpha,
                "lambda": g.lambda_,
                "sub_agent": g.sub_agent,
                "effective_trust": g.effective_trust,
                "effective_tier": g.effective_tier.name,
                "child_mandate": mandate_to_json(g.child_mandate),
                "depth": g.depth,
                "remaining_depth": g.remaining_depth,
                "max_depth": g.max_depth,
                "accountability": [{"agent": s.agent, "weight": s.weight} for s in g.accountability],
                "accountability_ceiling": g.accountability_ceiling,
                "warnings": [{"code": w.code, "reason": w.name, "message": w.message} for w in g.warnings],
            }
        }
    if isinstance(verdict, Escalate):
        if isinstance(verdict.target, HumanTarget):
            target = {"human": verdict.target.who}
        elif isinstance(verdict.target, AgentTarget):
            target = {"agent": verdict.target.agent_id}
        else:
            raise TypeError(f"escalation target: expected HumanTarget or AgentTarget, got {type(verdict.target).__name__}")
        return {"escalate": {"target": target, "code": verdict.code, "reason": verdict.name, "message": verdict.reason}}
    if isinstance(verdict, Deny):
        return {"deny": {"code": verdict.code, "reason": verdict.name, "message": verdict.message}}
    raise TypeError(f"expected Allow, Escalate or Deny, got {type(verdict).__name__}")


def _grant(value: Any, at: str) -> Grant:
    o = _Object(value, at)

    def tier(v: Any, where: str) -> TrustTier:
        name = _str(v, where)
        try:
            return TrustTier[name]
        except KeyError:
            raise ValueError(f"{where}: unknown trust tier {name!r}") from None

    def share(v: Any, where: str) -> AccountabilityShare:
        s = _Object(v, where)
        made = AccountabilityShare(agent=s.take("agent", _str), weight=s.take("weight", _float))
        s.done()
        return made

    def warning(v: Any, where: str) -> PolicyWarning:
        w = _Object(v, where)
        made = PolicyWarning(code=w.take("code", _int), name=w.take("reason", _str), message=w.take("message", _str))
        w.done()
        return made

    grant = Grant(
        alpha=o.take("alpha", _float),
        lambda_=o.take("lambda", _float),
        sub_agent=o.take("sub_agent", _str),
        effective_trust=o.take("effective_trust", _int),
        effective_tier=o.take("effective_tier", tier),
        child_mandate=o.take("child_mandate", mandate_from_json),
        depth=o.take("depth", _int),
        remaining_depth=o.take("remaining_depth", _int),
        max_depth=o.take("max_depth", _int),
        accountability=o.take("accountability", _list(share)),
        accountability_ceiling=o.take("accountability_ceiling", _float),
        warnings=o.take("warnings", _list(warning)),
    )
    o.done()
    return grant


def verdict_from_json(value: Any, at: str = "verdict") -> Verdict:
    """Reads the JSON form of a verdict (what the component's ``evaluate-json`` answers and
    :func:`verdict_to_json` writes) back to :class:`Allow`, :class:`Escalate` or :class:`Deny`;
    anything else raises ``TypeError``/``ValueError`` naming the field."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValueError(f"{at}: expected one of {{\"allow\": ...}}, {{\"escalate\": ...}}, {{\"deny\": ...}}")
    ((case, body),) = value.items()
    where = f"{at}.{case}"
    if case == "allow":
        return Allow(grant=_grant(body, where))
    if case == "escalate":
        o = _Object(body, where)
        t = _Object(o.take("target", lambda v, _: v), f"{where}.target")
        target: HumanTarget | AgentTarget
        if "human" in t.fields:
            target = HumanTarget(who=t.take("human", _str))
        else:
            target = AgentTarget(agent_id=t.take("agent", _str))
        t.done()
        made: Verdict = Escalate(
            target=target, code=o.take("code", _int), name=o.take("reason", _str), reason=o.take("message", _str)
        )
        o.done()
        return made
    if case == "deny":
        o = _Object(body, where)
        made = Deny(code=o.take("code", _int), name=o.take("reason", _str), message=o.take("message", _str))
        o.done()
        return made
    raise ValueError(f"{at}: unknown verdict case {case!r}")

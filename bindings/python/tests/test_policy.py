"""The Python API: loading, every export, typed results, and the errors bad input raises."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import replace
from typing import Any

import pytest

from sbd_policy import (
    POLICY_FAULT_CODE,
    Agent,
    AgentTarget,
    Allow,
    Budget,
    BudgetUnit,
    ConfigError,
    Deny,
    Escalate,
    Failure,
    HumanTarget,
    Mandate,
    Policy,
    PolicyComponent,
    Request,
    RiskLevel,
    Success,
    Task,
    TrustTier,
    Verdict,
    request_from_json,
    verdict_to_json,
)

NOW = 1_790_000_000_000
U64_MAX = (1 << 64) - 1


def mandate(ceiling: int = 500, depth: int = 3, actions: list[str] | None = None) -> Mandate:
    return Mandate(
        value_ceiling=ceiling,
        action_kinds=actions if actions is not None else ["payment.*"],
        counterparties=["acme"],
        budgets=[Budget(BudgetUnit.USD_MICROCENTS, 5_000), Budget(BudgetUnit.TOKENS, 100_000)],
        remaining_depth=depth,
        expires_at=NOW + 3_600_000,
    )


def allowed_request() -> Request:
    """The originator hands a small, low-risk refund to a trusted agent."""
    return Request(
        from_=Agent("orchestrator", 900),
        to=Agent("refund-agent", 720),
        task=Task("refund-1", "payment.refund", RiskLevel.LOW, value=100, counterparty="acme"),
        parent_mandate=mandate(),
        requested_mandate=mandate(ceiling=200, depth=2, actions=["payment.refund"]),
        now=NOW,
        state=[0.12],  # feature 0 (volatility) under the default safe set's 0.25 threshold
    )


def test_info_reports_the_configuration(policy: Policy, config_bytes: dict[str, bytes]) -> None:
    assert policy.info.name == "default"
    assert policy.info.version == "0.1.0"
    assert policy.info.max_depth == 5
    assert policy.info.wire_version == 3
    assert policy.info.config_digest == hashlib.sha256(config_bytes["default"]).hexdigest()


def test_an_allowed_delegation_carries_a_typed_grant(policy: Policy) -> None:
    verdict = policy.evaluate(allowed_request())
    match verdict:
        case Allow(grant):
            assert grant.sub_agent == "refund-agent"
            assert grant.effective_tier is TrustTier.T4
            assert grant.depth == 1
            assert grant.child_mandate.value_ceiling == 200
            assert grant.child_mandate.action_kinds == ["payment.refund"]
            assert all(isinstance(b.unit, BudgetUnit) for b in grant.child_mandate.budgets)
            assert [s.agent for s in grant.accountability] == ["orchestrator", "refund-agent"]
            assert sum(s.weight for s in grant.accountability) == pytest.approx(1.0)
        case _:
            pytest.fail(f"expected an allow, got {verdict}")


def test_self_delegation_is_denied_with_its_code(policy: Policy) -> None:
    request = replace(allowed_request(), to=Agent("orchestrator", 900))
    verdict = policy.evaluate(request)
    assert isinstance(verdict, Deny)
    assert (verdict.code, verdict.name) == (1001, "self-delegation")
    assert verdict_to_json(verdict) == {"deny": {"code": 1001, "reason": "self-delegation", "message": verdict.message}}


def test_escalation_targets_are_typed(component: PolicyComponent, config_bytes: dict[str, bytes]) -> None:
    low_trust = replace(allowed_request(), to=Agent("intern-bot", 100))
    with component.instantiate(config_bytes["default"]) as policy:
        verdict = policy.evaluate(replace(low_trust, task=replace(low_trust.task, risk=RiskLevel.HIGH)))
    assert isinstance(verdict, Escalate)
    assert verdict.name == "trust-escalation"
    assert verdict.target == AgentTarget("supervisor-bot")
    # Volatility above the safe set's threshold caps alpha under the review threshold.
    verdict = policy_for_state(component, config_bytes, [0.5])
    assert isinstance(verdict, Escalate)
    assert (verdict.name, verdict.target) == ("low-alpha-review", HumanTarget("risk-officer"))


def policy_for_state(component: PolicyComponent, config_bytes: dict[str, bytes], state: list[float]) -> Verdict:
    with component.instantiate(config_bytes["default"]) as policy:
        return policy.evaluate(replace(allowed_request(), state=state))


def test_batch_answers_in_order(policy: Policy) -> None:
    requests = [allowed_request(), replace(allowed_request(), to=Agent("orchestrator", 900))]
    verdicts = policy.evaluate_batch(requests)
    assert [type(v) for v in verdicts] == [Allow, Deny]
    assert verdicts == [policy.evaluate(r) for r in requests]
    assert policy.evaluate_batch([]) == []


def test_narrow_keeps_u64_values_exact(policy: Policy) -> None:
    wide = replace(mandate(ceiling=U64_MAX), budgets=[Budget(BudgetUnit.CREDITS, U64_MAX)])
    narrowed = policy.narrow(wide, replace(wide, value_ceiling=U64_MAX - 1, remaining_depth=1))
    assert narrowed.value_ceiling == U64_MAX - 1
    assert narrowed.budgets == [Budget(BudgetUnit.CREDITS, U64_MAX)]
    assert narrowed.remaining_depth == 1


def test_trust_deltas_penalise_the_chain_and_reward_the_executor(policy: Policy) -> None:
    failure = policy.trust_deltas(["a", "b", "c"], Failure(25.0))
    assert [(d.agent, d.delta) for d in failure] == [("a", -25.0), ("b", -25.0), ("c", -25.0)]
    success = policy.trust_deltas(["a", "b", "c"], Success(5))
    assert [(d.agent, d.delta) for d in success] == [("c", 5.0)]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda r: replace(r, from_=Agent("a", "high")), "$.from.trust: invalid type: string"),  # type: ignore[arg-type]
        (lambda r: replace(r, to=Agent("b", 70_000)), "$.to.trust: invalid value: integer `70000`"),
        (lambda r: replace(r, now=-1), "$.now: invalid value: integer `-1`"),
        (lambda r: replace(r, now=1 << 64), "$.now:"),
        (lambda r: replace(r, now=True), "$.now: invalid type: boolean"),
        (lambda r: replace(r, state=[0.1, "x"]), "$.state[1]: invalid type: string"),
        (lambda r: replace(r, task=replace(r.task, risk="extreme")), "$.task.risk: unknown variant `extreme`"),
        (lambda r: replace(r, task=replace(r.task, id="\ud800")), "$: unexpected end of hex escape"),  # a lone surrogate
        (
            lambda r: replace(r, requested_mandate=replace(r.requested_mandate, budgets=[Budget("gold", 1)])),  # type: ignore[arg-type]
            "$.requested_mandate.budgets[0].unit: unknown variant `gold`",
        ),
    ],
)
def test_bad_request_values_are_denied_naming_the_json_path(policy: Policy, change: Any, path: str) -> None:
    """The component reads every request strictly: a value it cannot hold is denied
    (request-malformed) with the JSON path of the value, in one place for every language."""
    verdict = policy.evaluate(change(allowed_request()))
    assert isinstance(verdict, Deny) and verdict.name == "request-malformed", verdict
    assert verdict.message.startswith(path), verdict.message
    # The policy is still usable afterwards.
    assert isinstance(policy.evaluate(allowed_request()), Allow)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: replace(r, chain="not a list"), "request.chain"),
        (lambda r: replace(r, parent_mandate=None), "request.parent_mandate"),
        (lambda r: replace(r, chain=[("a", "b")]), r"request.chain\[0\]"),
        (lambda r: replace(r, task=replace(r.task, risk=3)), "request.task.risk"),
    ],
)
def test_requests_that_are_not_requests_raise_naming_the_field(policy: Policy, change: Any, field: str) -> None:
    with pytest.raises(TypeError, match=field):
        policy.evaluate(change(allowed_request()))


def test_a_number_json_cannot_carry_raises_before_the_call(policy: Policy) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        policy.evaluate(replace(allowed_request(), state=[float("nan")]))
    with pytest.raises(ValueError, match="JSON compliant"):
        policy.evaluate_batch([allowed_request(), replace(allowed_request(), state=[float("inf")])])
    assert isinstance(policy.evaluate(allowed_request()), Allow)


def test_one_unreadable_request_in_a_batch_is_denied_alone(policy: Policy) -> None:
    """A lone surrogate makes the whole array text unreadable to the component: each request is
    then decided on its own, so the good ones are still allowed and only the bad one denied."""
    bad = replace(allowed_request(), task=replace(allowed_request().task, id="x\ud800"))
    verdicts = policy.evaluate_batch([allowed_request(), bad, allowed_request()])
    assert [type(v).__name__ for v in verdicts] == ["Allow", "Deny", "Allow"], verdicts
    assert isinstance(verdicts[1], Deny) and verdicts[1].name == "request-malformed"


def test_bad_arguments_raise_the_normal_errors(component: PolicyComponent, policy: Policy) -> None:
    with pytest.raises(TypeError, match="request"):
        policy.evaluate({"from": "a"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="requests"):
        policy.evaluate_batch(allowed_request())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="outcome"):
        policy.trust_deltas(["a"], 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        component.instantiate("default.postcard")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a postcard policy configuration"):
        component.instantiate(b"\x00\x01")
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError, match="not a valid WebAssembly component"):
        PolicyComponent(b"\x00asm not really")


def test_request_json_refuses_unknown_fields() -> None:
    document = verdict_free_request()
    assert request_from_json(document).task.completable_locally is False
    for path, where in [((), "request"), (("task",), "request.task"), (("parent_mandate", "budgets", 0), "request.parent_mandate.budgets[0]")]:
        changed: Any = json.loads(json.dumps(document))
        target: Any = changed
        for key in path:
            target = target[key]
        target["completable_localy"] = False
        with pytest.raises(ValueError, match="^" + re.escape(f"{where}: unknown field `completable_localy`")):
            request_from_json(changed)


def verdict_free_request() -> dict[str, Any]:
    """A request in its JSON form with every optional field given."""
    mandate = {
        "value_ceiling": 100,
        "action_kinds": ["crm.*"],
        "counterparties": ["*"],
        "budgets": [{"unit": "TOKENS", "amount": 5}],
        "remaining_depth": 2,
        "expires_at": 2000,
    }
    return {
        "from": {"id": "a", "trust": 700},
        "to": {"id": "b", "trust": 700},
        "task": {"id": "t", "action_kind": "crm.read", "risk": "low", "completable_locally": False},
        "parent_mandate": mandate,
        "requested_mandate": mandate,
        "now": 1000,
    }


def test_request_json_errors_name_the_field() -> None:
    document = json.loads(json.dumps({"from": {"id": "a", "trust": 1}}))
    with pytest.raises(ValueError, match="request: missing field `to`"):
        request_from_json(document)
    with pytest.raises(TypeError, match=r"request.task.risk: expected a string, got a number"):
        request_from_json(
            {
                "from": {"id": "a", "trust": 1},
                "to": {"id": "b", "trust": 1},
                "task": {"id": "t", "action_kind": "x", "risk": 3},
            }
        )


def test_json_defaults_match_the_rust_side(corpus: dict[str, Any]) -> None:
    document = copy.deepcopy(corpus["cases"][0]["request"])
    for optional in ("chain", "state", "depth_exception"):
        document.pop(optional, None)
    for optional in ("value", "counterparty", "completable_locally"):
        document["task"].pop(optional, None)
    request = request_from_json(document)
    assert (request.chain, request.state, request.depth_exception) == ([], [], None)
    assert (request.task.value, request.task.counterparty, request.task.completable_locally) == (0, None, True)


def test_a_trap_fails_closed_and_the_next_call_gets_a_fresh_instance(
    component: PolicyComponent, config_bytes: dict[str, bytes]
) -> None:
    """A request too large for the instance's memory limit makes the guest's allocator trap:
    the answer is a policy-fault denial, and the policy goes on deciding."""
    with component.instantiate(config_bytes["default"], memory_limit=2 << 20) as policy:
        huge = replace(allowed_request(), task=replace(allowed_request().task, id="x" * (4 << 20)))
        verdict = policy.evaluate(huge)
        assert isinstance(verdict, Deny)
        assert (verdict.code, verdict.name) == (POLICY_FAULT_CODE, "policy-fault")
        assert "failed closed" in verdict.message
        assert isinstance(policy.evaluate(allowed_request()), Allow)


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("trap", "it trapped: wasm `unreachable`"),
        ("panic", "it trapped: wasm `unreachable`"),
        ("stack-overflow", "it trapped"),
        ("huge-allocation", "it trapped"),
        ("endless-loop", "it ran past its fuel bound"),
        ("alpha-out-of-range", "malformed answer: `alpha` is 1.5, outside [0, 1]"),
        ("widened-mandate", "malformed answer: the child mandate is wider than the parent's: `budgets`"),
    ],
)
def test_every_injected_fault_fails_closed(faulty_component: PolicyComponent, kind: str, why: str) -> None:
    """A trap, a panic, a stack overflow, an allocation beyond the memory limit, an endless
    loop (stopped by the fuel bound), and an allow that breaks the contract are each answered
    with a policy-fault denial, for the one call and for every request of a batch, and the
    next call gets a fresh instance."""
    with faulty_component.instantiate(f"fault:{kind}".encode()) as policy:
        trigger = replace(allowed_request(), task=replace(allowed_request().task, id="inject-fault"))
        verdict = policy.evaluate(trigger)
        assert isinstance(verdict, Deny), verdict
        assert (verdict.code, verdict.name) == (POLICY_FAULT_CODE, "policy-fault")
        assert f"failed closed: {why}" in verdict.message
        batch = policy.evaluate_batch([allowed_request(), trigger])
        assert [(v.code if isinstance(v, Deny) else None) for v in batch] == [POLICY_FAULT_CODE] * 2
        assert isinstance(policy.evaluate(allowed_request()), Allow)


def test_a_batch_answered_short_fails_closed(faulty_component: PolicyComponent) -> None:
    with faulty_component.instantiate(b"fault:short-batch") as policy:
        trigger = replace(allowed_request(), task=replace(allowed_request().task, id="inject-fault"))
        batch = policy.evaluate_batch([allowed_request(), trigger, allowed_request()])
        assert [v.message for v in batch if isinstance(v, Deny)] == [
            "policy `faulty` failed closed: malformed answer: 2 verdicts for 3 requests"
        ] * 3


def test_a_closed_policy_refuses_calls(component: PolicyComponent, config_bytes: dict[str, bytes]) -> None:
    policy = component.instantiate(config_bytes["default"])
    policy.close()
    with pytest.raises(RuntimeError, match="closed"):
        policy.evaluate(allowed_request())

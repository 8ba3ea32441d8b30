"""OpenAI Agents SDK handoffs decided by sbd, with the SDK's scripted model (no network, no key)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import Agent, Runner, set_tracing_disabled  # noqa: E402
from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: E402

from sbd_policy import Deny, Escalate, HumanTarget, Policy  # noqa: E402
from sbd_policy.adapters import DelegationEscalated, DelegationRefused  # noqa: E402
from sbd_policy.adapters.openai_agents import HandoffContext, sbd_handoff  # noqa: E402

from .common import REFUND, TRADE, USD, gate, mandate  # noqa: E402

set_tracing_disabled(True)


def hand_to(name: str) -> Any:
    return [function_call(f"transfer_to_{name}", {}, call_id=f"call-{name}")]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


def test_allowed_handoff_runs_the_child_under_a_narrowed_mandate(policy: Policy) -> None:
    g = gate(policy)
    refunds_model = ScriptedModel([[assistant_message("refunded $87 to acme")]])
    refunds = Agent(name="refunds", model=refunds_model)
    triage = Agent(name="triage", model=ScriptedModel([hand_to("refunds")]), handoffs=[sbd_handoff(g, refunds)])
    context = HandoffContext(g.start("triage", REFUND, mandate(), state=[0.1]))

    result = asyncio.run(Runner.run(triage, "refund order 4821", context=context))

    assert result.final_output == "refunded $87 to acme"
    assert result.last_agent is refunds
    assert len(refunds_model.calls) == 1
    assert context.state.holder.id == "refunds"
    # Narrowed: refunds only, $100 instead of $500, one hop less.
    assert context.state.mandate.action_kinds == ["payment.refund"]
    assert context.state.mandate.value_ceiling == 100 * USD
    assert context.state.mandate.remaining_depth == 3
    assert [(l.from_, l.to, l.depth) for l in context.state.chain] == [("triage", "refunds", 1)]


def test_cycle_is_refused_before_the_agent_is_contacted_again(policy: Policy) -> None:
    g = gate(policy)
    triage_model = ScriptedModel([hand_to("refunds")])  # one step: a second call would fail
    triage = Agent(name="triage", model=triage_model)
    refunds = Agent(name="refunds", model=ScriptedModel([hand_to("triage")]), handoffs=[sbd_handoff(g, triage)])
    triage.handoffs = [sbd_handoff(g, refunds)]
    context = HandoffContext(g.start("triage", REFUND, mandate(), state=[0.1]))

    with pytest.raises(DelegationRefused) as refused:
        asyncio.run(Runner.run(triage, "refund order 4821", context=context))

    verdict = refused.value.verdict
    assert isinstance(verdict, Deny) and (verdict.code, verdict.name) == (1002, "delegation-cycle")
    assert len(triage_model.calls) == 1  # triage was not contacted again
    assert context.state.holder.id == "refunds"


def test_depth_limit_escalates_before_the_fourth_hop(policy: Policy) -> None:
    g = gate(policy)
    auditor_model = ScriptedModel([])  # any call fails the test
    agents = {"auditor": Agent(name="auditor", model=auditor_model)}
    chain = ["w1", "w2", "w3", "w4", "auditor"]
    for here, there in reversed(list(zip(chain, chain[1:]))):
        agents[here] = Agent(name=here, model=ScriptedModel([hand_to(there)]), handoffs=[sbd_handoff(g, agents[there])])
    context = HandoffContext(g.start("w1", TRADE, mandate(depth=5), state=[0.1]))

    with pytest.raises(DelegationEscalated) as escalated:
        asyncio.run(Runner.run(agents["w1"], "move $1 to acme", context=context))

    verdict = escalated.value.verdict
    assert isinstance(verdict, Escalate) and (verdict.code, verdict.name) == (5001, "depth-limit-escalation")
    assert verdict.target == HumanTarget("risk-officer")
    assert auditor_model.calls == ()
    assert [l.to for l in context.state.chain] == ["w2", "w3", "w4"]

"""LangGraph supervisor-to-worker routing decided by sbd, the supervisor driven by a scripted
fake chat model (no network, no key)."""

from __future__ import annotations

from typing import Any, Callable

import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.types import Command  # noqa: E402

from sbd_policy import Link, Policy  # noqa: E402
from sbd_policy.adapters import Delegations, DelegationState  # noqa: E402
from sbd_policy.adapters.langgraph import SbdState, delegate  # noqa: E402

from .common import REFUND, TRADE, USD, gate, mandate  # noqa: E402


class State(SbdState, total=False):
    log: list[str]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


def build(g: Delegations, routes: dict[str, list[str]], ran: list[str], entry: str) -> Any:
    """A graph whose node `n` asks its own scripted model where to send the task next
    (`routes[n]`, one answer per visit; "done" finishes), through sbd."""
    graph = StateGraph(State)
    names = sorted(set(routes) | {t for ts in routes.values() for t in ts if t != "done"})

    def node(name: str) -> Callable[[State], Command[str]]:
        model = FakeListChatModel(responses=routes.get(name, ["done"]))

        def run(state: State) -> Command[str]:
            ran.append(name)
            choice = str(model.invoke(f"{name}: where does the task go next?").content)
            if choice == "done":
                return Command(goto=END)
            return delegate(g, state, choice, on_escalate="review")

        return run

    for name in names:
        others = tuple(n for n in [*names, "review"] if n != name)
        graph.add_node(name, node(name), destinations=others)  # type: ignore[call-overload]
    graph.add_node("review", lambda state: {"log": ["parked for review"]})
    graph.add_edge("review", END)
    graph.add_edge(START, entry)
    return graph.compile()


def test_supervisor_routes_to_the_worker_under_a_narrowed_mandate(policy: Policy) -> None:
    g = gate(policy)
    ran: list[str] = []
    app = build(g, {"triage": ["refunds"], "refunds": ["done"]}, ran, "triage")

    out = app.invoke({"sbd": g.start("triage", REFUND, mandate(), state=[0.1])})

    assert ran == ["triage", "refunds"]
    assert out["sbd"].holder.id == "refunds"
    assert out["sbd"].mandate.action_kinds == ["payment.refund"]
    assert out["sbd"].mandate.value_ceiling == 100 * USD
    assert out["sbd"].mandate.remaining_depth == 3
    assert [list(d["verdict"]) for d in out["sbd_decisions"]] == [["allow"]]


def test_cycle_back_to_the_supervisor_is_refused(policy: Policy) -> None:
    g = gate(policy)
    ran: list[str] = []
    app = build(g, {"triage": ["refunds", "done"], "refunds": ["triage"]}, ran, "triage")

    out = app.invoke({"sbd": g.start("triage", REFUND, mandate(), state=[0.1])})

    assert ran == ["triage", "refunds"]  # triage never ran again
    last = out["sbd_decisions"][-1]
    assert (last["from"], last["to"]) == ("refunds", "triage")
    assert last["verdict"]["deny"]["code"] == 1002 and last["verdict"]["deny"]["reason"] == "delegation-cycle"


def test_depth_limit_escalates_to_review_instead_of_the_worker(policy: Policy) -> None:
    g = gate(policy)
    ran: list[str] = []
    app = build(g, {"w1": ["w2"], "w2": ["w3"], "w3": ["w4"], "w4": ["auditor"]}, ran, "w1")

    out = app.invoke({"sbd": g.start("w1", TRADE, mandate(depth=5), state=[0.1])})

    assert ran == ["w1", "w2", "w3", "w4"]  # the auditor never ran
    assert out["log"] == ["parked for review"]
    escalation = out["sbd_decisions"][-1]["verdict"]["escalate"]
    assert escalation["code"] == 5001 and escalation["reason"] == "depth-limit-escalation"
    assert escalation["target"] == {"human": "risk-officer"}
    assert out["sbd"].holder.id == "w4"


def test_the_delegation_state_survives_a_strict_checkpointer(policy: Policy) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from sbd_policy.adapters.langgraph import CHECKPOINT_TYPES

    g = gate(policy)
    ran: list[str] = []
    graph = StateGraph(State)
    def refunds(state: State) -> dict[str, Any]:
        ran.append("refunds")
        return {}

    graph.add_node("triage", lambda state: delegate(g, state, "refunds"), destinations=("refunds",))
    graph.add_node("refunds", refunds)
    graph.add_edge(START, "triage")
    graph.add_edge("refunds", END)
    saver = InMemorySaver(serde=JsonPlusSerializer(allowed_msgpack_modules=list(CHECKPOINT_TYPES)))
    app = graph.compile(checkpointer=saver)
    thread: RunnableConfig = {"configurable": {"thread_id": "refund-4821"}}

    app.invoke({"sbd": g.start("triage", REFUND, mandate(), state=[0.1])}, thread)

    restored = app.get_state(thread).values["sbd"]
    assert ran == ["refunds"]
    # Restored as the types themselves: an unlisted type would come back as a plain dict.
    assert isinstance(restored, DelegationState) and all(isinstance(l, Link) for l in restored.chain)
    assert restored.holder.id == "refunds" and restored.mandate.action_kinds == ["payment.refund"]
    assert [(l.from_, l.to) for l in restored.chain] == [("triage", "refunds")]

"""sbd in front of LangGraph routing: a supervisor (or any node) hands the task to a worker node
only if the policy allows it (``langgraph``).

In a supervisor graph the supervisor node returns a ``Command(goto=worker)``. :func:`delegate`
builds that command after asking the policy: on an allow it routes to the worker and puts the
worker's :class:`~sbd_policy.adapters.DelegationState` (the task under the grant's child
mandate, the hop on the chain) into the graph state; on a deny or an escalation it routes to
``on_deny`` / ``on_escalate`` (``END`` by default, or a review node) and the worker node never
runs. Every decision is appended to the state's ``sbd_decisions`` (the verdict in the JSON form
``sbd eval`` prints).

    class State(SbdState):
        messages: Annotated[list[AnyMessage], add_messages]

    def supervisor(state: State) -> Command[str]:
        choice = model.invoke(state["messages"]).content        # which worker
        return delegate(gate, state, choice)

    graph = StateGraph(State)
    graph.add_node("supervisor", supervisor, destinations=("refunds", "ledger"))
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Mapping, TypedDict

from langgraph.graph import END
from langgraph.types import Command

from ..types import Escalate
from . import DelegationState, Delegations, verdict_summary

__all__ = ["SbdState", "delegate", "CHECKPOINT_TYPES"]

CHECKPOINT_TYPES: tuple[tuple[str, str], ...] = (
    ("sbd_policy.adapters", "DelegationState"),
    ("sbd_policy.types", "Agent"),
    ("sbd_policy.types", "Task"),
    ("sbd_policy.types", "RiskLevel"),
    ("sbd_policy.types", "Mandate"),
    ("sbd_policy.types", "Budget"),
    ("sbd_policy.types", "BudgetUnit"),
    ("sbd_policy.types", "Link"),
)
"""The types the ``sbd`` state key holds, for a checkpointer's serializer allow-list:
``InMemorySaver(serde=JsonPlusSerializer(allowed_msgpack_modules=CHECKPOINT_TYPES))``
(LangGraph refuses unlisted types when ``LANGGRAPH_STRICT_MSGPACK`` is set)."""


class SbdState(TypedDict, total=False):
    """The graph-state keys the adapter reads and writes; extend it with your own."""

    sbd: DelegationState
    """Where the task is: the node holding it, its mandate and the chain."""
    sbd_decisions: Annotated[list[dict[str, Any]], operator.add]
    """Every delegation decided on the way: ``{"from", "to", "verdict"}``."""


def delegate(
    gate: Delegations,
    state: Mapping[str, Any],
    to: str,
    *,
    on_deny: str = END,
    on_escalate: str = END,
    update: Mapping[str, Any] | None = None,
) -> Command[str]:
    """The command that routes the task from the node holding it (``state["sbd"]``) to node
    ``to``, decided by ``gate`` first: to ``to`` with its new state when allowed, else to
    ``on_deny`` or ``on_escalate``. ``update`` is merged into the state update when allowed."""
    at = state.get("sbd")
    if not isinstance(at, DelegationState):
        raise TypeError("delegate: the graph state has no `sbd` DelegationState (start it with gate.start(...))")
    decision, child = gate.decide(at, to)
    record = {"from": at.holder.id, "to": decision.request.to.id, "verdict": verdict_summary(decision.verdict)}
    if child is None:
        goto = on_escalate if isinstance(decision.verdict, Escalate) else on_deny
        return Command(goto=goto, update={"sbd_decisions": [record]})
    return Command(goto=to, update={**dict(update or {}), "sbd": child, "sbd_decisions": [record]})

"""sbd in front of OpenAI Agents SDK handoffs (``openai-agents``).

A handoff is the SDK's delegation: the model calls the ``transfer_to_<agent>`` tool and the run
continues with the other agent. :func:`sbd_handoff` wraps the SDK's ``handoff()`` so that the
policy decides first, inside ``on_invoke_handoff``, before the SDK switches agents: on an allow
the run continues with the target, which now holds the task under the grant's child mandate; on
a deny or an escalation :class:`~sbd_policy.adapters.DelegationRefused` /
:class:`~sbd_policy.adapters.DelegationEscalated` propagates out of ``Runner.run`` and the
target agent's model is never called.

The run's context carries where the task is: pass a :class:`HandoffContext` as
``Runner.run(..., context=...)`` (or a context object with an ``sbd`` attribute holding one).

    gate = Delegations(policy, trust={"triage": 900, "refunds": 720})
    refunds = Agent(name="refunds", ...)
    triage = Agent(name="triage", handoffs=[sbd_handoff(gate, refunds)], ...)
    context = HandoffContext(gate.start("triage", task, mandate))
    result = await Runner.run(triage, "refund order 4821", context=context)
    context.state.mandate            # the mandate `refunds` holds now
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents import Agent, Handoff, RunContextWrapper, handoff

from . import DelegationState, Delegations

__all__ = ["HandoffContext", "sbd_handoff"]


@dataclass
class HandoffContext:
    """The run context: the task's current :class:`~sbd_policy.adapters.DelegationState`,
    advanced by every allowed handoff."""

    state: DelegationState


def _context_of(wrapper: RunContextWrapper[Any]) -> HandoffContext:
    context = wrapper.context
    if isinstance(context, HandoffContext):
        return context
    inner = getattr(context, "sbd", None)
    if isinstance(inner, HandoffContext):
        return inner
    raise TypeError(
        "sbd_handoff needs Runner.run(..., context=HandoffContext(...)) (or a context with an `sbd` attribute holding one)"
    )


def sbd_handoff(gate: Delegations, agent: Agent[Any], **kwargs: Any) -> Handoff[Any, Agent[Any]]:
    """The SDK's ``handoff(agent, **kwargs)``, decided by ``gate`` before the SDK hands over.

    The delegator is the agent holding the task in the run's :class:`HandoffContext`; the target
    is ``agent`` (its sbd id: ``gate.ids.get(agent.name, agent.name)``). A refused or escalated
    handoff raises out of ``Runner.run`` before the target's model is called; an allowed one
    updates the context to the target's state, with the narrowed child mandate.
    """
    inner = handoff(agent, **kwargs)
    sdk_invoke = inner.on_invoke_handoff

    async def invoke(wrapper: RunContextWrapper[Any], arguments: str) -> Agent[Any]:
        context = _context_of(wrapper)
        context.state = gate.delegate(context.state, agent.name)  # raises unless allowed
        return await sdk_invoke(wrapper, arguments)

    inner.on_invoke_handoff = invoke
    return inner

"""sbd in front of A2A: a task is sent to a remote agent only if the policy allows the
delegation, and the grant travels in the message (``a2a-sdk``).

Client side, :class:`DelegatingClient` wraps an ``a2a.client.Client`` for one remote agent:
``send(at, text)`` asks the policy first; a deny or an escalation raises
:class:`~sbd_policy.adapters.DelegationRefused` / :class:`~sbd_policy.adapters.DelegationEscalated`
and nothing is sent. On an allow the message carries, in its metadata under
``"sbd.delegation"``, a JSON string with the remote agent's
:class:`~sbd_policy.adapters.DelegationState` (the task, the grant's child mandate, the chain),
the verdict, the policy's configuration digest and, when the gate issues tokens
(``Delegations(..., tokens=SbdCliTokens(...))``), the child's signed delegation token, which the
remote side verifies with ``sbd token verify`` and extends when it delegates further.

Server side, :class:`DelegatedExecutor` wraps an ``AgentExecutor``: a message without a
delegation for this agent is answered with a refusal and never reaches the wrapped executor;
:func:`delegation_of` gives the executor the state it holds, so its own onward delegations are
decided under the child mandate and the chain (a cycle back to the sender is refused).
"""

from __future__ import annotations

import json
from typing import Any

from a2a.client import Client
from a2a.helpers.proto_helpers import new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.types import Message, Role, SendMessageRequest, StreamResponse

from . import DelegationState, Delegations, blocked, state_from_json, state_to_json, verdict_summary

__all__ = ["METADATA_KEY", "DelegatingClient", "DelegatedExecutor", "delegation_of"]

METADATA_KEY = "sbd.delegation"
"""The message-metadata key that carries the delegation (a JSON string)."""

class DelegatingClient:
    """An A2A client for the remote agent ``remote`` (its sbd id) that delegates through sbd."""

    def __init__(self, client: Client, gate: Delegations, remote: str) -> None:
        self.client = client
        self.gate = gate
        self.remote = remote

    async def send(self, at: DelegationState, text: str) -> tuple[DelegationState, list[StreamResponse]]:
        """Delegates the task held in ``at`` to the remote agent with the request ``text``; the
        remote agent's state and the responses. Raises before anything is sent unless allowed."""
        decision, child = self.gate.decide(at, self.remote)
        if child is None:
            raise blocked(decision)  # nothing was sent
        carried: dict[str, Any] = {
            "state": state_to_json(child),
            "verdict": verdict_summary(decision.verdict),
            "policy": self.gate.policy.info.config_digest,
        }
        if child.token is not None:
            carried["token"] = child.token
        message = new_text_message(text, role=Role.ROLE_USER)
        message.metadata.update({METADATA_KEY: json.dumps(carried, separators=(",", ":"))})
        responses = [r async for r in self.client.send_message(SendMessageRequest(message=message))]
        return child, responses


def delegation_of(message: Message | None) -> dict[str, Any] | None:
    """The delegation a message carries (``state`` as a :class:`DelegationState`, ``verdict``,
    ``policy``, ``token`` if any), or ``None`` when it carries none. ``ValueError`` if it is
    malformed."""
    if message is None or METADATA_KEY not in message.metadata:
        return None
    raw = message.metadata[METADATA_KEY]
    if not isinstance(raw, str):
        raise ValueError(f"`{METADATA_KEY}` is not a JSON string")
    carried = json.loads(raw)
    if not isinstance(carried, dict) or "state" not in carried:
        raise ValueError(f"`{METADATA_KEY}` has no `state`")
    carried["state"] = state_from_json(carried["state"])
    return carried


class DelegatedExecutor(AgentExecutor):
    """Runs ``inner`` only for messages that carry an sbd delegation to ``agent_id``; anything
    else is answered with a refusal message. ``inner`` reads the delegation with
    :func:`delegation_of` (``context.message``)."""

    def __init__(self, inner: AgentExecutor, agent_id: str) -> None:
        self.inner = inner
        self.agent_id = agent_id

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        try:
            carried = delegation_of(context.message)
        except (ValueError, TypeError) as e:
            carried, problem = None, f"malformed delegation: {e}"
        else:
            problem = "no sbd delegation in the message"
        if carried is not None:
            if carried["state"].holder.id == self.agent_id:
                await self.inner.execute(context, event_queue)
                return
            problem = f"the delegation is for `{carried['state'].holder.id}`, not `{self.agent_id}`"
        await event_queue.enqueue_event(
            new_text_message(f"refused: {problem}", context_id=context.context_id, task_id=context.task_id)
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await self.inner.cancel(context, event_queue)

"""A2A tasks to remote agents decided by sbd, the grant carried in the message metadata. The
remote agents are real a2a-sdk servers (JSON-RPC over Starlette) reached in-process through
httpx's ASGI transport: no network. Each remote agent's behaviour is a scripted fake model."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("a2a")

import httpx  # noqa: E402
from a2a.client import ClientConfig, ClientFactory  # noqa: E402
from a2a.helpers.proto_helpers import get_message_text, new_text_message  # noqa: E402
from a2a.server.agent_execution import AgentExecutor, RequestContext  # noqa: E402
from a2a.server.events import EventQueue  # noqa: E402
from a2a.server.request_handlers import DefaultRequestHandler  # noqa: E402
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes  # noqa: E402
from a2a.server.tasks import InMemoryTaskStore  # noqa: E402
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, SendMessageRequest, StreamResponse  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from sbd_policy import Deny, Escalate, HumanTarget, Policy  # noqa: E402
from sbd_policy.adapters import DelegationEscalated, DelegationRefused, Delegations, SbdCliTokens, TokenRefused  # noqa: E402
from sbd_policy.adapters.a2a import DelegatedExecutor, DelegatingClient, delegation_of  # noqa: E402

from .common import REFUND, TRADE, USD, gate, mandate  # noqa: E402


class ScriptedModel:
    """The fake model behind a remote agent: one scripted answer per task it receives, either
    text to reply with or `delegate:<agent>` to hand the task on."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def next(self) -> str:
        self.calls += 1
        return self.answers.pop(0)


class Network:
    """Remote agents served in-process; `client(name)` reaches one through sbd."""

    def __init__(self, g: Delegations) -> None:
        self.gate = g
        self.apps: dict[str, Starlette] = {}
        self.cards: dict[str, AgentCard] = {}
        self.models: dict[str, ScriptedModel] = {}
        self.received: dict[str, list[dict[str, Any]]] = {}

    def add(self, name: str, answers: list[str]) -> None:
        card = AgentCard(
            name=name,
            description=f"the {name} agent",
            version="1.0.0",
            supported_interfaces=[AgentInterface(protocol_binding="JSONRPC", url=f"http://{name}.test/")],
            capabilities=AgentCapabilities(streaming=False),
            default_input_modes=["text/plain"],
            default_output_modes=["text/plain"],
        )
        self.models[name] = ScriptedModel(answers)
        self.received[name] = []
        handler = DefaultRequestHandler(
            agent_executor=DelegatedExecutor(RemoteAgent(self, name), name),
            task_store=InMemoryTaskStore(),
            agent_card=card,
        )
        self.apps[name] = Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/")])
        self.cards[name] = card

    def client(self, name: str) -> DelegatingClient:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.apps[name]), base_url=f"http://{name}.test")
        client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(self.cards[name])
        return DelegatingClient(client, self.gate, name)


class RemoteAgent(AgentExecutor):
    def __init__(self, network: Network, name: str) -> None:
        self.network = network
        self.name = name

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        carried = delegation_of(context.message)
        assert carried is not None  # DelegatedExecutor let it through
        self.network.received[self.name].append(carried)
        answer = self.network.models[self.name].next()
        if answer.startswith("delegate:"):
            try:
                _, responses = await self.network.client(answer.split(":", 1)[1]).send(carried["state"], "over to you")
                answer = "delegated: " + text_of(responses)
            except (DelegationRefused, DelegationEscalated) as blocked:
                answer = f"not delegated: {blocked.verdict.name} ({blocked.verdict.code})"  # type: ignore[union-attr]
        await event_queue.enqueue_event(new_text_message(answer, context_id=context.context_id, task_id=context.task_id))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


def text_of(responses: list[StreamResponse]) -> str:
    return " | ".join(get_message_text(r.message) for r in responses if r.HasField("message"))


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


def test_allowed_task_reaches_the_remote_agent_with_the_narrowed_mandate(policy: Policy) -> None:
    g = gate(policy, tokens=lambda decision, delegator: f"token-for-{decision.request.to.id}")
    net = Network(g)
    net.add("refunds", ["refunded $87 to acme"])

    child, responses = asyncio.run(net.client("refunds").send(g.start("triage", REFUND, mandate(), state=[0.1]), "refund 4821"))

    assert text_of(responses) == "refunded $87 to acme"
    [carried] = net.received["refunds"]
    state = carried["state"]
    assert state == child and state.holder.id == "refunds"
    assert state.mandate.action_kinds == ["payment.refund"] and state.mandate.value_ceiling == 100 * USD
    assert state.mandate.remaining_depth == 3
    assert [(l.from_, l.to) for l in state.chain] == [("triage", "refunds")]
    assert carried["token"] == "token-for-refunds"
    assert carried["policy"] == policy.info.config_digest
    assert "allow" in carried["verdict"]


def test_cycle_back_to_the_sender_is_refused_before_it_is_contacted(policy: Policy) -> None:
    g = gate(policy)
    net = Network(g)
    net.add("triage", ["should never be asked"])
    net.add("refunds", ["delegate:triage"])

    _, responses = asyncio.run(net.client("refunds").send(g.start("triage", REFUND, mandate(), state=[0.1]), "refund 4821"))

    assert text_of(responses) == "not delegated: delegation-cycle (1002)"
    assert net.models["triage"].calls == 0 and net.received["triage"] == []
    verdict = g.decisions[-1].verdict
    assert isinstance(verdict, Deny) and verdict.code == 1002


def test_depth_limit_escalates_before_the_fourth_remote_agent(policy: Policy) -> None:
    g = gate(policy)
    net = Network(g)
    for name, answer in [("w2", "delegate:w3"), ("w3", "delegate:w4"), ("w4", "delegate:auditor"), ("auditor", "audited")]:
        net.add(name, [answer])

    _, responses = asyncio.run(net.client("w2").send(g.start("w1", TRADE, mandate(depth=5), state=[0.1]), "move $1"))

    assert text_of(responses) == "delegated: delegated: not delegated: depth-limit-escalation (5001)"
    assert net.received["auditor"] == [] and net.models["auditor"].calls == 0
    verdict = g.decisions[-1].verdict
    assert isinstance(verdict, Escalate) and verdict.target == HumanTarget("risk-officer")


def test_a_message_without_a_delegation_never_reaches_the_agent(policy: Policy) -> None:
    net = Network(gate(policy))
    net.add("refunds", ["refunded"])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=net.apps["refunds"]), base_url="http://refunds.test")
    raw = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(net.cards["refunds"])

    async def send() -> list[StreamResponse]:
        return [r async for r in raw.send_message(SendMessageRequest(message=new_text_message("refund 4821")))]

    assert text_of(asyncio.run(send())).startswith("refused: no sbd delegation")
    assert net.models["refunds"].calls == 0


@pytest.mark.skipif("SBD_BIN" not in os.environ, reason="SBD_BIN (the sbd binary, which signs tokens) not set; .ci/run sets it")
def test_signed_tokens_travel_with_the_task_and_verify_at_each_hop(policy: Policy, tmp_path: Path) -> None:
    sbd = os.environ["SBD_BIN"]
    subprocess.run([sbd, "keygen", "--out", str(tmp_path / "gw"), "--trust-store", str(tmp_path / "trust.json")], check=True, capture_output=True)
    tokens = SbdCliTokens(sbd, tmp_path / "gw.key", tmp_path / "trust.json")
    now = int(time.time() * 1000)  # tokens are verified against the real clock
    g = gate(policy, tokens=tokens, now=now)
    net = Network(g)
    net.add("refunds", ["delegate:ledger"])
    net.add("ledger", ["posted"])

    _, responses = asyncio.run(net.client("refunds").send(g.start("triage", REFUND, mandate(now=now), state=[0.1]), "refund 4821"))

    assert text_of(responses) == "delegated: posted"
    [at_refunds], [at_ledger] = net.received["refunds"], net.received["ledger"]
    first = tokens.verify(at_refunds["token"])
    assert (first["holder"], first["depth"]) == ("refunds", 1)
    assert first["mandate"]["action_kinds"] == ["payment.refund"]
    second = tokens.verify(at_ledger["token"])
    assert (second["holder"], second["depth"], second["chain_id"]) == ("ledger", 2, first["chain_id"])
    assert [(b["from"], b["to"]) for b in second["blocks"]] == [("triage", "refunds"), ("refunds", "ledger")]
    assert at_ledger["state"].token == at_ledger["token"]
    # A token signed by a key the store does not trust is refused.
    subprocess.run([sbd, "keygen", "--out", str(tmp_path / "other"), "--trust-store", str(tmp_path / "other.json")], check=True, capture_output=True)
    with pytest.raises(TokenRefused):
        SbdCliTokens(sbd, tmp_path / "other.key", tmp_path / "other.json").verify(at_ledger["token"])

"""The framework-neutral gate: state round trips, unknown agents, and no contact on refusal."""

from __future__ import annotations

import json

import pytest

from sbd_policy import Allow, Policy
from sbd_policy.adapters import DelegationRefused, state_from_json, state_to_json

from .common import REFUND, gate, mandate


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


def test_state_survives_json_as_the_a2a_adapter_carries_it(policy: Policy) -> None:
    g = gate(policy)
    child = g.delegate(g.start("triage", REFUND, mandate(), state=[0.1, 0.25]), "refunds")
    assert state_from_json(json.loads(json.dumps(state_to_json(child)))) == child


def test_state_from_json_refuses_unknown_fields(policy: Policy) -> None:
    g = gate(policy)
    document = state_to_json(g.start("triage", REFUND, mandate()))
    document["mandat"] = {}
    with pytest.raises(ValueError, match="unknown field `mandat`"):
        state_from_json(document)


def test_an_agent_without_a_trust_score_is_never_asked_about(policy: Policy) -> None:
    g = gate(policy)
    with pytest.raises(KeyError, match="stranger"):
        g.delegate(g.start("triage", REFUND, mandate()), "stranger")
    assert g.decisions == []


def test_every_decision_is_recorded_and_a_deny_raises(policy: Policy) -> None:
    g = gate(policy)
    at = g.start("triage", REFUND, mandate(), state=[0.1])
    child = g.delegate(at, "refunds")
    with pytest.raises(DelegationRefused):
        g.delegate(child, "triage")
    assert [type(d.verdict).__name__ for d in g.decisions] == [Allow.__name__, "Deny"]

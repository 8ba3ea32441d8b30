"""The shared corpus decided through the Python binding gives exactly the verdicts of
``bindings/shared/expected.json`` (written by the native Rust rules), field for field.

Floats are compared with ``==``: the same WebAssembly code computes them, and JSON carries
each f64 in its shortest round-trip form, so they must be bit-identical.
"""

from __future__ import annotations

import json
from typing import Any

from sbd_policy import PolicyComponent, request_from_json, verdict_to_json


def _mismatches(got: list[dict[str, Any]], expected: list[dict[str, Any]], indices: list[int]) -> list[str]:
    return [
        f"case {i}:\n  python   {json.dumps(g, sort_keys=True)}\n  expected {json.dumps(e, sort_keys=True)}"
        for i, g, e in zip(indices, got, expected)
        if g != e
    ]


def test_the_corpus_is_large_and_aligned(corpus: dict[str, Any]) -> None:
    assert len(corpus["cases"]) >= 200
    assert len(corpus["cases"]) == len(corpus["expected"])


def test_every_case_one_by_one_gives_the_expected_verdict(
    component: PolicyComponent, corpus: dict[str, Any], config_bytes: dict[str, bytes]
) -> None:
    policies = {name: component.instantiate(b) for name, b in config_bytes.items()}
    got = [
        verdict_to_json(policies[case["config"]].evaluate(request_from_json(case["request"])))
        for case in corpus["cases"]
    ]
    bad = _mismatches(got, corpus["expected"], list(range(len(got))))
    assert not bad, f"{len(bad)} of {len(got)} verdicts differ:\n" + "\n".join(bad[:5])


def test_each_configuration_in_one_batch_gives_the_expected_verdicts(
    component: PolicyComponent, corpus: dict[str, Any], config_bytes: dict[str, bytes]
) -> None:
    for name, config in config_bytes.items():
        indices = [i for i, case in enumerate(corpus["cases"]) if case["config"] == name]
        assert indices, f"no case uses configuration `{name}`"
        with component.instantiate(config) as policy:
            verdicts = policy.evaluate_batch([request_from_json(corpus["cases"][i]["request"]) for i in indices])
        got = [verdict_to_json(v) for v in verdicts]
        bad = _mismatches(got, [corpus["expected"][i] for i in indices], indices)
        assert not bad, f"configuration `{name}`: {len(bad)} verdicts differ:\n" + "\n".join(bad[:5])

"""Fixtures: the component built by ``cargo build --release``, the shared configurations and the
cross-language corpus in ``bindings/shared``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sbd_policy import Policy, PolicyComponent

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO / "bindings" / "shared"
COMPONENT = Path(
    os.environ.get("SBD_COMPONENT", REPO / "target/guest-build/default/wasm32-wasip2/guest/sbd_component.wasm")
)

FAULTY_COMPONENT = Path(
    os.environ.get(
        "SBD_FAULTY_COMPONENT",
        REPO / "target/guest-build/fault-injection/wasm32-wasip2/guest/sbd_component.wasm",
    )
)


@pytest.fixture(scope="session")
def faulty_component() -> PolicyComponent:
    """The fault-injection build (`guest/component/src/fault.rs`), which `cargo test --release`
    builds: configuration `fault:<kind>` misbehaves on requests whose task id is `inject-fault`."""
    if not FAULTY_COMPONENT.is_file():
        pytest.fail(f"{FAULTY_COMPONENT} is missing: `cargo test --release` builds it (or set SBD_FAULTY_COMPONENT)")
    return PolicyComponent.from_file(FAULTY_COMPONENT)


@pytest.fixture(scope="session")
def component() -> PolicyComponent:
    if not COMPONENT.is_file():
        pytest.fail(f"{COMPONENT} is missing: run `cargo build --release` first (or set SBD_COMPONENT)")
    return PolicyComponent.from_file(COMPONENT)


@pytest.fixture(scope="session")
def corpus() -> dict[str, Any]:
    with open(SHARED / "requests.json", encoding="utf-8") as f:
        requests: dict[str, Any] = json.load(f)
    with open(SHARED / "expected.json", encoding="utf-8") as f:
        requests["expected"] = json.load(f)
    return requests


@pytest.fixture(scope="session")
def config_bytes(corpus: dict[str, Any]) -> dict[str, bytes]:
    return {name: (SHARED / file).read_bytes() for name, file in corpus["configs"].items()}


@pytest.fixture()
def policy(component: PolicyComponent, config_bytes: dict[str, bytes]) -> Iterator[Policy]:
    with component.instantiate(config_bytes["default"]) as p:
        yield p

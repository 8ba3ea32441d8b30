"""Fixtures: the component the installed package carries, the shared configurations and the
cross-language corpus in ``bindings/shared``.

The tests run against the installed package (``pip install ./bindings/python`` into a venv),
never the source tree: ``test_package.py`` fails if ``sbd_policy`` was imported from ``src/``."""

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
# The component under test: the one the installed package carries, unless SBD_COMPONENT names
# another file.
COMPONENT = os.environ.get("SBD_COMPONENT")

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
    if COMPONENT is None:
        return PolicyComponent.bundled()
    if not Path(COMPONENT).is_file():
        pytest.fail(f"SBD_COMPONENT={COMPONENT} is missing")
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

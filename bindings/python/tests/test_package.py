"""The tests exercise the installed package, and it carries what it needs to run without Rust."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import sbd_policy
from sbd_policy import Policy, PolicyComponent

SOURCE = Path(__file__).resolve().parents[1] / "src"
REPO = Path(__file__).resolve().parents[3]


def test_imported_from_the_installed_package_not_the_source_tree() -> None:
    installed = Path(sbd_policy.__file__).resolve()
    assert not installed.is_relative_to(SOURCE), f"sbd_policy imported from the source tree: {installed}"
    assert "site-packages" in installed.parts


def test_the_package_carries_the_component_and_the_default_policy() -> None:
    data = resources.files("sbd_policy").joinpath("data")
    wasm = data.joinpath("sbd_component.wasm").read_bytes()
    assert wasm[:8] == b"\0asm\x0d\x00\x01\x00", "not a WebAssembly component (layer 1)"
    assert data.joinpath("default.toml").read_text(encoding="utf-8") == (REPO / "policies/default.toml").read_text(
        encoding="utf-8"
    )
    # The bundled component is the one the default-loaded policy runs.
    assert PolicyComponent.bundled() is PolicyComponent.bundled()
    with Policy.load() as policy:
        assert policy.info.name == "default"

"""Policy configurations from TOML and JSON, read by the component itself (`create-from-text`):
the same digests as the Rust side, strict on unknown fields and types with the JSON path of
the fault, the component's own range checks behind them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sbd_policy import Allow, ConfigError, Policy, PolicyComponent, request_from_json

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO / "bindings" / "shared"

CONFIGS = Path(__file__).parent / "configs"
DIGESTS: dict[str, str] = {
    k: v for k, v in json.loads((CONFIGS / "digests.json").read_text(encoding="utf-8")).items() if not k.startswith("_")
}


@pytest.mark.parametrize("path", sorted(DIGESTS))
def test_digest_matches_the_rust_encoding(path: str) -> None:
    with Policy.load(REPO / path) as policy:
        assert policy.info.config_digest == DIGESTS[path]


@pytest.mark.skipif("SBD_BIN" not in os.environ, reason="SBD_BIN (the sbd binary) not set; .ci/run sets it")
@pytest.mark.parametrize("path", sorted(DIGESTS))
def test_committed_digests_are_what_sbd_prints(path: str) -> None:
    out = subprocess.run(
        [os.environ["SBD_BIN"], "info", "--policy", str(REPO / path), "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(out)["policy"]["config_digest"] == DIGESTS[path]


@pytest.mark.parametrize("path", sorted(p for p in DIGESTS if "model" not in (REPO / p).read_text()))
def test_json_form_gives_the_same_policy_as_toml(path: str) -> None:
    with open(REPO / path, "rb") as f:
        table = tomllib.load(f)
    with Policy.load(table) as policy:
        assert policy.info.config_digest == DIGESTS[path]
    json_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"sbd-{os.getpid()}-{Path(path).stem}.json"
    json_file.write_text(json.dumps(table), encoding="utf-8")
    try:
        with Policy.load(json_file) as policy:
            assert policy.info.config_digest == DIGESTS[path]
    finally:
        json_file.unlink()


def test_policy_built_from_toml_reports_the_digest(component: PolicyComponent) -> None:
    with Policy.load(REPO / "policies/finance/policy.toml") as policy:
        assert policy.info.name == "finance-sbd"
        assert policy.info.config_digest == DIGESTS["policies/finance/policy.toml"]


def test_mapping_config_decides(corpus: dict[str, Any]) -> None:
    request = request_from_json(next(c["request"] for c in corpus["cases"] if c["config"] == "default"))
    with Policy.load({"name": "from-a-dict", "version": "1"}) as policy:
        assert policy.info.name == "from-a-dict"
        policy.evaluate(request)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('name = "x"\nversion = "1"\nfrmo = 1', "$.frmo: unknown field `frmo`"),
        ('name = "x"\nversion = "1"\n[depth]\nmax_dept = 3', "$.depth.max_dept: unknown field `max_dept`"),
        ('name = "x"', "$: missing field `version`"),
        ('name = "x"\nversion = "1"\n[depth]\nmax_depth = 300', "$.depth.max_depth: invalid value: integer `300`, expected u8"),
        ('name = "x"\nversion = "1"\n[depth]\nmax_depth = "5"', '$.depth.max_depth: invalid type: string "5", expected u8'),
        ('name = "x"\nversion = "1"\n[trust]\non_insufficient = "ignore"', "$.trust.on_insufficient: unknown variant `ignore`"),
        ('name = "x"\nversion = "1"\n[trust.required_tier]\nlow = "T1"', "$.trust.required_tier: missing field `medium`"),
        ('name = "x"\nversion = "1"\n[[sbd.alpha_caps]]\nfeature = 0\nabove = "high"\nalpha_max = 0.2', '$.sbd.alpha_caps[0].above: invalid type: string "high", expected f64'),
        ('name = "x"\nversion = "1"\n[escalation]\nagents = [{ id = "a", trust = -1 }]', "$.escalation.agents[0].trust: invalid value: integer `-1`, expected u16"),
        ("name = ", "at line 1, column"),
    ],
)
def test_bad_configurations_are_refused_naming_the_path(component: PolicyComponent, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        component.instantiate_text(toml)
    assert message in str(caught.value)


def test_values_out_of_their_documented_range_are_refused_by_the_component(component: PolicyComponent) -> None:
    with pytest.raises(ConfigError, match="max_depth"):
        Policy.load({"name": "x", "version": "1", "depth": {"max_depth": 0}})
    with pytest.raises(ConfigError, match="review_threshold"):
        component.instantiate_text('{"name": "x", "version": "1", "sbd": {"review_threshold": 1.5}}', format="json")


def test_model_file_is_read_relative_to_the_toml(tmp_path: Path) -> None:
    shutil.copy(REPO / "policies/finance/policy.toml", tmp_path / "policy.toml")
    with pytest.raises(ValueError, match="cannot read the model"):
        Policy.load(tmp_path / "policy.toml")  # no model.postcard there
    shutil.copy(REPO / "policies/finance/model.postcard", tmp_path / "model.postcard")
    with Policy.load(tmp_path / "policy.toml") as policy:
        assert policy.info.config_digest == DIGESTS["policies/finance/policy.toml"]


def test_a_model_file_needs_its_bytes_and_bytes_need_a_model_file(component: PolicyComponent) -> None:
    text = (REPO / "policies/finance/policy.toml").read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="pass the bytes of that file"):
        component.instantiate_text(text)
    with pytest.raises(ConfigError, match="names no `sbd.model_file`"):
        component.instantiate_text('name = "x"\nversion = "1"', model=b"\x00")


def test_default_policy_allows_a_plain_delegation() -> None:
    with Policy.load() as policy:
        assert policy.info.config_digest == DIGESTS["policies/default.toml"]
        verdict = policy.evaluate(request_from_json(THREE_LINE_REQUEST))
        assert isinstance(verdict, Allow), verdict


# One hop, orchestrator to a refund agent, on the default policy: allowed.
THREE_LINE_REQUEST: dict[str, Any] = {
    "from": {"id": "orchestrator", "trust": 900},
    "to": {"id": "refund-agent", "trust": 700},
    "task": {"id": "refund-4821", "action_kind": "payment.refund", "risk": "low", "value": 5_000_000_000},
    "parent_mandate": {
        "action_kinds": ["payment.*"],
        "budgets": [{"amount": 500_000_000, "unit": "USD_MICROCENTS"}],
        "counterparties": [],
        "expires_at": 1_790_003_600_000,
        "remaining_depth": 3,
        "value_ceiling": 50_000_000_000,
    },
    "requested_mandate": {
        "action_kinds": ["payment.refund"],
        "budgets": [{"amount": 200_000_000, "unit": "USD_MICROCENTS"}],
        "counterparties": [],
        "expires_at": 1_790_003_600_000,
        "remaining_depth": 2,
        "value_ceiling": 50_000_000_000,
    },
    "state": [0.1],
    "now": 1_790_000_000_000,
}

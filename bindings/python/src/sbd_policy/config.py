"""Policy configurations from TOML or JSON, as the component's ``create`` takes them.

The component is built from the postcard encoding of ``sbd_policy::PolicyConfig`` (the WIT
``create`` takes ``list<u8>``). Until the component takes TOML or JSON itself, this module
writes those bytes from the same document ``sbd`` reads (``policies/default.toml``, the
``policy.toml`` ``sbd train`` writes, or its JSON form, ``schema/policy.schema.json``), with the
same rules as the Rust side: unknown fields are refused, a missing optional field takes the
Rust default, a value of the wrong type or out of its integer range is refused naming its path
(``$.depth.max_depth: expected an integer 0-255, got 300``). The component then validates the
ranges it documents (``ConfigError``). ``sbd.model_file`` names a postcard model file (written by
``sbd train``) relative to the TOML file, as ``sbd`` reads it.

The encoding is checked byte for byte against the Rust encoder: ``bindings/shared/configs/
default.postcard`` is ``policies/default.toml``, and CI compares the configuration digest
``sbd info`` prints with :attr:`Policy.info.config_digest` for every policy file in
``policies/`` (``tests/test_config.py``).
"""

from __future__ import annotations

import json
import math
import os
import struct
import tomllib
from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["config_from_toml", "config_from_json", "config_from_mapping", "load_config"]

_Encoder = Callable[[Any, str, bytearray], None]
_MISSING = object()


def _varint(n: int, out: bytearray) -> None:
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _uint(bits: int) -> _Encoder:
    top = (1 << bits) - 1

    def encode(value: Any, at: str, out: bytearray) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise ValueError(f"{at}: expected an integer 0-{top}, got {_show(value)}")
        if bits == 8:
            out.append(value)  # postcard writes u8 as one byte, wider integers as varints
        else:
            _varint(value, out)

    return encode


def _float(width: str) -> _Encoder:
    def encode(value: Any, at: str, out: bytearray) -> None:
        # As serde reads TOML/JSON: an integer is accepted where a float is expected.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{at}: expected a number, got {_show(value)}")
        number = float(value)
        if width == "f" and math.isfinite(number) and abs(number) > 3.4028234663852886e38:
            raise ValueError(f"{at}: {value!r} does not fit a 32-bit float")
        out += struct.pack("<" + width, number)

    return encode


def _string(value: Any, at: str, out: bytearray) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{at}: expected a string, got {_show(value)}")
    data = value.encode("utf-8")
    _varint(len(data), out)
    out += data


def _bool(value: Any, at: str, out: bytearray) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{at}: expected true or false, got {_show(value)}")
    out.append(1 if value else 0)


def _enum(*names: str) -> _Encoder:
    def encode(value: Any, at: str, out: bytearray) -> None:
        if value not in names or not isinstance(value, str):
            raise ValueError(f"{at}: expected one of {', '.join(names)}, got {_show(value)}")
        _varint(names.index(value), out)

    return encode


def _list(item: _Encoder) -> _Encoder:
    def encode(value: Any, at: str, out: bytearray) -> None:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{at}: expected an array, got {_show(value)}")
        _varint(len(value), out)
        for i, element in enumerate(value):
            item(element, f"{at}[{i}]", out)

    return encode


def _option(inner: _Encoder) -> _Encoder:
    def encode(value: Any, at: str, out: bytearray) -> None:
        if value is None:
            out.append(0)
        else:
            out.append(1)
            inner(value, at, out)

    return encode


def _struct(fields: list[tuple[str, _Encoder, Any]]) -> _Encoder:
    """Fields in declaration order, each with its default (``_MISSING``: required). Like serde
    with ``deny_unknown_fields``, an unknown key is refused."""
    known = {name for name, _, _ in fields}

    def encode(value: Any, at: str, out: bytearray) -> None:
        if not isinstance(value, Mapping):
            raise TypeError(f"{at}: expected a table, got {_show(value)}")
        for key in value:
            if key not in known:
                raise ValueError(f"{at}: unknown field `{key}`, expected one of {', '.join(sorted(known))}")
        for name, encoder, default in fields:
            if name in value:
                encoder(value[name], f"{at}.{name}", out)
            elif default is _MISSING:
                raise ValueError(f"{at}: missing field `{name}`")
            else:
                encoder(default, f"{at}.{name}", out)

    return encode


def _show(value: Any) -> str:
    if isinstance(value, (Mapping, list, tuple)):
        return _type_name(value)
    return json.dumps(value) if isinstance(value, (str, bool, int, float)) or value is None else _type_name(value)


def _risk_table(item: _Encoder, default: tuple[Any, Any, Any, Any]) -> tuple[_Encoder, dict[str, Any]]:
    risks = ("low", "medium", "high", "critical")
    return _struct([(r, item, _MISSING) for r in risks]), dict(zip(risks, default))


_U8, _U16, _U32, _U64 = _uint(8), _uint(16), _uint(32), _uint(64)
_F32, _F64 = _float("f"), _float("d")
_TIER = _enum("T0", "T1", "T2", "T3", "T4", "T5", "T6", "T7")

# The Rust defaults (`impl Default` in guest/policy/src/config.rs and learned.rs); CI checks
# them through the digests of partial configurations (tests/test_config.py).
_depth_table, _depth_table_default = _risk_table(_U8, (5, 4, 3, 2))
_DEPTH = _struct(
    [
        ("max_depth", _U8, 5),
        ("max_depth_by_risk", _depth_table, _depth_table_default),
        ("warning_ratio", _F64, 0.75),
        ("max_exception_extra", _U8, 2),
        ("exception_approvers", _list(_string), []),
        ("chain_deadline_ms", _U64, 15 * 60 * 1000),
    ]
)
_tier_table, _tier_table_default = _risk_table(_TIER, ("T1", "T3", "T4", "T5"))
_TRUST = _struct(
    [
        ("required_tier", _tier_table, _tier_table_default),
        ("on_insufficient", _enum("deny", "escalate"), "escalate"),
        ("penalty_propagation", _bool, True),
    ]
)
_ESCALATION = _struct(
    [
        ("human", _string, "human-oversight"),
        ("agents", _list(_struct([("id", _string, _MISSING), ("trust", _U16, _MISSING)])), []),
    ]
)
_ALPHA_CAP = _struct([("feature", _U32, _MISSING), ("above", _F64, _MISSING), ("alpha_max", _F64, _MISSING)])
_RISK_BAND = _struct(
    [("at_least", _F64, _MISSING), ("max_depth", _option(_U8), None), ("review_threshold", _option(_F64), None)]
)
_DENSE = _struct(
    [
        ("inputs", _U32, _MISSING),
        ("outputs", _U32, _MISSING),
        ("weights", _list(_F32), _MISSING),
        ("bias", _list(_F32), _MISSING),
    ]
)
_MLP = _struct([("layers", _list(_DENSE), _MISSING)])
_PROVENANCE = _struct(
    [("domain", _string, ""), ("seed", _U64, 0), ("outer_steps", _U32, 0), ("test_safety_rate", _F64, 0.0)]
)
_MODEL = _struct(
    [
        ("state_dim", _U32, _MISSING),
        ("state_shift", _list(_F32), _MISSING),
        ("state_scale", _list(_F32), _MISSING),
        ("sub_agents", _list(_string), _MISSING),
        ("meta_weight", _MLP, _MISSING),
        ("delegation", _MLP, _MISSING),
        ("provenance", _PROVENANCE, {}),
    ]
)


class _ModelBytes:
    """A model already in postcard form (``sbd.model_file``), spliced in as it is."""

    def __init__(self, data: bytes) -> None:
        self.data = data


def _model(value: Any, at: str, out: bytearray) -> None:
    if isinstance(value, _ModelBytes):
        out += value.data
    else:
        _MODEL(value, at, out)


_alpha_table, _alpha_default = _risk_table(_F64, (0.9, 0.7, 0.5, 0.3))
_lambda_table, _lambda_default = _risk_table(_F64, (0.2, 0.4, 0.7, 0.9))
_SBD = _struct(
    [
        ("alpha", _alpha_table, _alpha_default),
        ("lambda", _lambda_table, _lambda_default),
        ("review_threshold", _F64, 0.25),
        ("state_dim", _option(_U32), None),
        ("alpha_caps", _list(_ALPHA_CAP), []),
        ("model", _option(_model), None),
        ("risk_bands", _list(_RISK_BAND), []),
    ]
)
_CONFIG = _struct(
    [
        ("name", _string, _MISSING),
        ("version", _string, _MISSING),
        ("depth", _DEPTH, {}),
        ("trust", _TRUST, {}),
        ("escalation", _ESCALATION, {}),
        ("sbd", _SBD, {}),
    ]
)


def config_from_mapping(config: Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None) -> bytes:
    """The component's configuration bytes for a configuration already parsed into a mapping
    (the JSON form, ``schema/policy.schema.json``, or a parsed TOML table).

    ``sbd.model_file`` (TOML only in ``sbd``; accepted here too) is read relative to
    ``base_dir``. Raises ``TypeError``/``ValueError`` naming the path of the first bad field,
    ``OSError`` if the model file cannot be read.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"$: expected a table, got {_type_name(config)}")
    document = dict(config)
    sbd = document.get("sbd")
    if isinstance(sbd, Mapping) and "model_file" in sbd:
        sbd = dict(sbd)
        model_file = sbd.pop("model_file")
        if not isinstance(model_file, str):
            raise TypeError(f"$.sbd.model_file: expected a string (a file path), got {_show(model_file)}")
        if "model" in sbd:
            raise ValueError("$.sbd: `model` and `model_file` are both given")
        path = Path(base_dir if base_dir is not None else ".") / model_file
        sbd["model"] = _ModelBytes(path.read_bytes())
        document["sbd"] = sbd
    out = bytearray()
    _CONFIG(document, "$", out)
    return bytes(out)


def config_from_toml(text: str, *, base_dir: str | os.PathLike[str] | None = None) -> bytes:
    """The configuration bytes for a TOML policy (the format of ``policies/default.toml``).
    Raises ``ValueError`` on a TOML syntax error, or naming the first bad field."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"not a valid TOML document: {e}") from None
    return config_from_mapping(table, base_dir=base_dir)


def config_from_json(text: str | bytes) -> bytes:
    """The configuration bytes for a JSON policy (``schema/policy.schema.json``)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not a valid JSON document: {e}") from None
    return config_from_mapping(document)


def load_config(path: str | os.PathLike[str]) -> bytes:
    """Reads a policy file: ``.json`` as JSON, anything else as TOML (``model_file`` relative
    to the file's directory)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".json":
        return config_from_json(text)
    return config_from_toml(text, base_dir=p.parent)

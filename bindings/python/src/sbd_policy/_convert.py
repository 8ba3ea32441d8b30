"""Lowering the dataclasses of :mod:`sbd_policy.types` to the values ``wasmtime.component``
passes into the component, and lifting what it returns, for the typed calls that have no JSON
form: ``narrow``, ``trust-deltas`` and ``info``. Requests and verdicts cross as JSON
(``evaluate-json``), read and checked by the component itself.

``wasmtime.component`` represents a WIT record as a :class:`wasmtime.component.Record` whose
attributes are the kebab-case field names, an enum as its case name, a variant whose cases it
cannot tell apart by Python type as :class:`wasmtime.component.Variant`, and an option as the
value or ``None``. It rejects some wrong types itself, with messages that do not say which
field; so every value is checked here first, with the field's path in the message.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Sequence, TypeVar

from wasmtime.component import Record, Variant

from .types import (
    Budget,
    BudgetUnit,
    Failure,
    Mandate,
    PolicyInfo,
    Success,
    TrustDelta,
)

_U8 = (1 << 8) - 1
_U64 = (1 << 64) - 1

E = TypeVar("E", bound=Enum)


# ---- checks ------------------------------------------------------------------------------------


def _expect(value: Any, kind: type, what: str, at: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{at}: expected {what}, got {type(value).__name__}")


def _uint(value: Any, bits_max: int, wit: str, at: str) -> int:
    _expect(value, int, f"an int ({wit})", at)
    if not 0 <= value <= bits_max:
        raise ValueError(f"{at}: {value} is outside the {wit} range 0..={bits_max}")
    return int(value)


def _u8(value: Any, at: str) -> int:
    return _uint(value, _U8, "u8", at)




def _u64(value: Any, at: str) -> int:
    return _uint(value, _U64, "u64", at)


def _f64(value: Any, at: str) -> float:
    """A float; an int is taken as its float value (``0`` for ``0.0``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{at}: expected a float, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{at}: {value} does not fit a 64-bit float") from None


def _str(value: Any, at: str) -> str:
    _expect(value, str, "a str", at)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{at}: not valid Unicode (a lone surrogate)") from None
    return str(value)




def _enum(value: Any, kind: type[E], at: str) -> str:
    """The WIT case name of an enum member; a plain string naming a case is accepted too."""
    if isinstance(value, kind):
        return str(value.value)
    if isinstance(value, str):
        try:
            return str(kind(value).value)
        except ValueError:
            cases = ", ".join(repr(m.value) for m in kind)
            raise ValueError(f"{at}: {value!r} is not a {kind.__name__} ({cases})") from None
    raise TypeError(f"{at}: expected a {kind.__name__}, got {type(value).__name__}")


def _seq(value: Any, at: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{at}: expected a list, got {type(value).__name__}")
    return value


def _record(**fields: Any) -> Record:
    record = Record()
    for name, value in fields.items():
        setattr(record, name.replace("_", "-"), value)
    return record


def _instance(value: Any, kind: type, at: str) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"{at}: expected a {kind.__name__}, got {type(value).__name__}")


# ---- Python -> WIT -----------------------------------------------------------------------------




def lower_mandate(mandate: Any, at: str) -> Record:
    _instance(mandate, Mandate, at)
    budgets = []
    for i, budget in enumerate(_seq(mandate.budgets, f"{at}.budgets")):
        where = f"{at}.budgets[{i}]"
        _instance(budget, Budget, where)
        budgets.append(
            _record(unit=_enum(budget.unit, BudgetUnit, f"{where}.unit"), amount=_u64(budget.amount, f"{where}.amount"))
        )
    return _record(
        value_ceiling=_u64(mandate.value_ceiling, f"{at}.value_ceiling"),
        action_kinds=[_str(s, f"{at}.action_kinds[{i}]") for i, s in enumerate(_seq(mandate.action_kinds, f"{at}.action_kinds"))],
        counterparties=[
            _str(s, f"{at}.counterparties[{i}]") for i, s in enumerate(_seq(mandate.counterparties, f"{at}.counterparties"))
        ],
        budgets=budgets,
        remaining_depth=_u8(mandate.remaining_depth, f"{at}.remaining_depth"),
        expires_at=_u64(mandate.expires_at, f"{at}.expires_at"),
    )










def lower_outcome(outcome: Any, at: str = "outcome") -> Variant:
    if isinstance(outcome, Success):
        return Variant("success", _f64(outcome.gain, f"{at}.gain"))
    if isinstance(outcome, Failure):
        return Variant("failure", _f64(outcome.penalty, f"{at}.penalty"))
    raise TypeError(f"{at}: expected Success or Failure, got {type(outcome).__name__}")


def lower_chain(chain: Any, at: str = "chain") -> list[str]:
    return [_str(agent, f"{at}[{i}]") for i, agent in enumerate(_seq(chain, at))]


# ---- WIT -> Python -----------------------------------------------------------------------------


def _get(record: Any, name: str) -> Any:
    return getattr(record, name)


def lift_mandate(record: Any) -> Mandate:
    return Mandate(
        value_ceiling=_get(record, "value-ceiling"),
        action_kinds=list(_get(record, "action-kinds")),
        counterparties=list(_get(record, "counterparties")),
        budgets=[Budget(unit=BudgetUnit(b.unit), amount=b.amount) for b in _get(record, "budgets")],
        remaining_depth=_get(record, "remaining-depth"),
        expires_at=_get(record, "expires-at"),
    )








def lift_trust_delta(record: Any) -> TrustDelta:
    return TrustDelta(agent=record.agent, delta=record.delta)


def lift_info(record: Any) -> PolicyInfo:
    return PolicyInfo(
        name=record.name,
        version=record.version,
        config_digest=_get(record, "config-digest"),
        max_depth=_get(record, "max-depth"),
        wire_version=_get(record, "wire-version"),
    )

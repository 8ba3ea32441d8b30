"""Loading the policy component with ``wasmtime`` and calling its ``delegation-policy``
resource."""

from __future__ import annotations

import json
import os
import threading
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence, TypeVar

import wasmtime
from wasmtime import component as wc

from . import _convert as convert
from .jsonform import request_to_json, verdict_from_json
from .types import Deny, Mandate, Outcome, PolicyInfo, Request, TrustDelta, Verdict

__all__ = [
    "PolicyComponent",
    "Policy",
    "ConfigError",
    "PolicyFault",
    "POLICY_FAULT_CODE",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_FUEL_PER_DECISION",
]

_INTERFACE = "sbd:delegation/policy@0.1.0"
_TYPES = "sbd:delegation/types@0.1.0"
_EXPORTS = {
    "create": "[static]delegation-policy.create",
    "create_from_text": "[static]delegation-policy.create-from-text",
    "evaluate_json": "[method]delegation-policy.evaluate-json",
    "narrow": "[method]delegation-policy.narrow",
    "trust_deltas": "[method]delegation-policy.trust-deltas",
    "info": "[method]delegation-policy.info",
    "check_verdict": "check-verdict",
}

POLICY_FAULT_CODE = 9001
"""The code of the ``policy-fault`` denial a failed call is answered with (as in the Rust host)."""

DEFAULT_MEMORY_LIMIT = 16 << 20
"""Largest linear memory one policy instance may grow to: 16 MiB, as in the Rust host."""

DEFAULT_FUEL_PER_DECISION = 20_000_000
"""WebAssembly fuel (about one unit per instruction) one decision may burn, and any other call.
A rules-only decision takes a few thousand; this bound stops a runaway policy within tens of
milliseconds. It stands in for the Rust host's wall-clock epoch deadline: fuel is
deterministic and needs no ticker thread."""

PathLike = str | os.PathLike[str]
T = TypeVar("T")


class ConfigError(ValueError):
    """The component rejected the configuration bytes (the message says which field)."""


class PolicyFault(RuntimeError):
    """The component failed a call that has no verdict to fail closed with (a trap in
    ``narrow``, ``trust_deltas``, ``info`` or ``create``). ``evaluate`` never raises it: it
    answers with a ``policy-fault`` denial instead."""


class PolicyComponent:
    """A compiled policy component, ready to be instantiated with configurations.

    Compiling takes a few hundred milliseconds; do it once and call :meth:`instantiate` for
    each configuration. The engine meters fuel, so every call runs under a fuel bound.
    """

    def __init__(self, wasm: bytes) -> None:
        """Compiles ``wasm`` (the bytes of ``sbd_component.wasm``).

        Raises ``TypeError`` if ``wasm`` is not bytes and ``ValueError`` if it is not a
        component exporting ``sbd:delegation/policy@0.1.0``.
        """
        if not isinstance(wasm, (bytes, bytearray, memoryview)):
            raise TypeError(f"component: expected bytes, got {type(wasm).__name__}")
        config = wasmtime.Config()
        config.consume_fuel = True
        self.engine = wasmtime.Engine(config)
        try:
            self._component = wc.Component(self.engine, bytes(wasm))
        except wasmtime.WasmtimeError as e:
            raise ValueError(f"component: not a valid WebAssembly component: {e}") from None
        exports = list(self._component.type.exports(self.engine))
        if _INTERFACE not in exports:
            raise ValueError(f"component: exports {exports}, not `{_INTERFACE}`")
        self._linker = wc.Linker(self.engine)
        # The policy imports only the type-only `types` interface: an empty instance satisfies it.
        with self._linker.root() as root:
            with root.add_instance(_TYPES):
                pass

    @classmethod
    def from_file(cls, path: PathLike) -> PolicyComponent:
        """Reads and compiles a component file (``OSError`` if it cannot be read)."""
        with open(path, "rb") as f:
            return cls(f.read())

    @classmethod
    def bundled(cls) -> PolicyComponent:
        """The release component this package carries (``sbd_policy/data/sbd_component.wasm``,
        the bytes ``cargo build --release`` produces; CI fails if they differ), compiled once
        per process and shared."""
        global _BUNDLED
        with _BUNDLED_LOCK:
            if _BUNDLED is None:
                _BUNDLED = cls(resources.files(__package__).joinpath("data/sbd_component.wasm").read_bytes())
            return _BUNDLED

    def instantiate(
        self,
        config: bytes,
        *,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        fuel_per_decision: int = DEFAULT_FUEL_PER_DECISION,
    ) -> Policy:
        """A :class:`Policy` built from ``config``: postcard bytes of an
        ``sbd_policy::PolicyConfig`` (``bindings/shared/configs/default.postcard`` is
        ``policies/default.toml``). Raises :class:`ConfigError` if the component rejects them."""
        return Policy(self, config, memory_limit=memory_limit, fuel_per_decision=fuel_per_decision)

    def instantiate_text(
        self,
        text: str,
        *,
        format: Literal["toml", "json"] = "toml",
        model: bytes | None = None,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        fuel_per_decision: int = DEFAULT_FUEL_PER_DECISION,
    ) -> Policy:
        """A :class:`Policy` built from configuration text as people write it: TOML
        (``policies/*.toml``) or JSON (``schema/policy.schema.json``). The component reads it
        strictly; :class:`ConfigError` names the field (``$.depth.max_dept: unknown field``).
        When the configuration names ``sbd.model_file``, ``model`` is that file's bytes."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        if format not in ("toml", "json"):
            raise ValueError(f"format: {format!r} is not 'toml' or 'json'")
        if model is not None and not isinstance(model, (bytes, bytearray, memoryview)):
            raise TypeError(f"model: expected bytes or None, got {type(model).__name__}")
        source = _TextConfig(text, format, None if model is None else bytes(model))
        return Policy(self, source, memory_limit=memory_limit, fuel_per_decision=fuel_per_decision)


@dataclass(frozen=True)
class _TextConfig:
    """A configuration given as text, for ``create-from-text``."""

    text: str
    format: str
    model: bytes | None

    def size(self) -> int:
        return len(self.text.encode()) + len(self.model or b"")


_CREATE_FUEL_PER_BYTE = 256
"""Fuel allowed per configuration byte when a policy is built, on top of ``fuel_per_decision``."""

_BUNDLED: PolicyComponent | None = None
_BUNDLED_LOCK = threading.Lock()


class _Instance:
    """One instance of the component in its own store, with the policy resource built in it."""

    def __init__(self, component: PolicyComponent, config: bytes | _TextConfig, memory_limit: int, fuel: int) -> None:
        self.fuel = fuel
        self.store = wasmtime.Store(component.engine)
        self.store.set_limits(memory_size=memory_limit)
        # Building the policy decodes and validates the configuration: its fuel grows with the
        # configuration's size (a trained model is about a megabyte; decoding took ~130 fuel a byte).
        size = config.size() if isinstance(config, _TextConfig) else len(config)
        self.store.set_fuel(fuel + _CREATE_FUEL_PER_BYTE * size)
        instance = component._linker.instantiate(self.store, component._component)
        interface = instance.get_export_index(self.store, _INTERFACE)
        self.funcs: dict[str, wc.Func] = {}
        for key, name in _EXPORTS.items():
            index = instance.get_export_index(self.store, name, interface)
            func = instance.get_func(self.store, index) if index is not None else None
            if func is None:
                raise ValueError(f"component: `{_INTERFACE}` has no `{name}`")
            self.funcs[key] = func
        try:
            if isinstance(config, _TextConfig):
                created = self.funcs["create_from_text"](self.store, config.text, config.format, config.model)
            else:
                created = self.funcs["create"](self.store, config)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
            raise PolicyFault(f"the component failed while building the policy: {e}") from None
        if isinstance(created, wc.ResourceAny):
            self.resource = created
        else:
            raise ConfigError(f"configuration rejected: {created.message}")

    def call(self, name: str, *args: Any, decisions: int = 1) -> Any:
        self.store.set_fuel(self.fuel * max(1, decisions))
        return self.funcs[name](self.store, self.resource, *args)

    def decide(self, requests: list[str], batch: bool) -> list[Verdict]:
        """Decides the JSON texts of ``requests`` with one ``evaluate-json`` call (an array when
        ``batch``), and checks the answer against them with the component's ``check-verdict``:
        the Rust host's check, compiled once, instead of a Python copy. The raw answer is
        checked before Python parses it (serde bounds its nesting; Python's parser would
        recurse)."""
        text = f"[{','.join(requests)}]" if batch else requests[0]
        raw = self.call("evaluate_json", text, decisions=len(requests))
        self.store.set_fuel(self.fuel * len(requests))
        problem = self.funcs["check_verdict"](self.store, text, raw)
        if problem is not None:
            raise _Malformed(str(problem))
        answer = json.loads(raw)
        answers = answer if batch else [answer]
        if batch and len(answers) == 1 and len(requests) > 1:
            # The array as a whole did not read (one request held, say, a lone surrogate, which
            # Python writes as an escape that serde refuses): decide each request on its own,
            # so each gets its own verdict, the bad one its denial.
            return [verdict for request in requests for verdict in self.decide([request], batch=False)]
        if not isinstance(answers, list) or len(answers) != len(requests):
            count = len(answers) if isinstance(answers, list) else "no list of"
            raise _Malformed(f"{count} verdicts for {len(requests)} requests")
        return [verdict_from_json(verdict) for verdict in answers]

    def close(self) -> None:
        try:
            self.resource.drop(self.store)
        except (wasmtime.Trap, wasmtime.WasmtimeError):
            pass  # the instance is being discarded either way


class Policy:
    """A delegation policy: the component instantiated with one configuration.

    Calls are serialised by a lock (a wasmtime store is single-threaded); use one policy per
    thread for parallel decisions. A trap, memory beyond ``memory_limit``, or more than
    ``fuel_per_decision`` fuel per decision during :meth:`evaluate` is answered with a
    ``policy-fault`` denial and the instance is replaced, never reused, as the Rust host does.
    Use it as a context manager, or call :meth:`close`, to release the instance.
    """

    def __init__(
        self,
        component: PolicyComponent,
        config: bytes | _TextConfig,
        *,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        fuel_per_decision: int = DEFAULT_FUEL_PER_DECISION,
    ) -> None:
        if not isinstance(component, PolicyComponent):
            raise TypeError(f"component: expected a PolicyComponent, got {type(component).__name__}")
        if not isinstance(config, (bytes, bytearray, memoryview, _TextConfig)):
            raise TypeError(f"config: expected bytes (postcard), got {type(config).__name__}")
        if isinstance(memory_limit, bool) or not isinstance(memory_limit, int) or memory_limit < 1 << 20:
            raise ValueError(f"memory_limit: {memory_limit!r} is not a byte count of at least 1 MiB")
        if isinstance(fuel_per_decision, bool) or not isinstance(fuel_per_decision, int) or fuel_per_decision < 1:
            raise ValueError(f"fuel_per_decision: {fuel_per_decision!r} is not a positive int")
        self._fuel = fuel_per_decision
        self._component = component
        self._config = config if isinstance(config, _TextConfig) else bytes(config)
        self._memory_limit = memory_limit
        self._lock = threading.Lock()
        self._closed = False
        self._instance: _Instance | None = _Instance(component, self._config, memory_limit, fuel_per_decision)
        self._info = self._call_or_raise("info", lambda i: convert.lift_info(i.call("info")))

    @classmethod
    def load(
        cls,
        config: PathLike | Mapping[str, Any] | None = None,
        *,
        component: PathLike | None = None,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        fuel_per_decision: int = DEFAULT_FUEL_PER_DECISION,
    ) -> Policy:
        """A policy from a configuration as people write it, on the bundled component.

        ``config`` is ``None`` (the default policy, ``policies/default.toml``, which this package
        carries), a path to a ``.toml`` or ``.json`` policy file, or the configuration as a
        mapping (the JSON form, ``schema/policy.schema.json``). ``component`` replaces the bundled
        component with a ``.wasm`` file. Raises ``ValueError``/``TypeError`` naming the bad field,
        or :class:`ConfigError` if the component rejects a value.
        """
        compiled = PolicyComponent.bundled() if component is None else PolicyComponent.from_file(component)

        def build(text: str, fmt: Literal["toml", "json"], model: bytes | None = None) -> Policy:
            return compiled.instantiate_text(
                text, format=fmt, model=model, memory_limit=memory_limit, fuel_per_decision=fuel_per_decision
            )

        if config is None:
            return build(resources.files(__package__).joinpath("data/default.toml").read_text(encoding="utf-8"), "toml")
        if isinstance(config, Mapping):
            table = dict(config)
            model = _model_bytes(table, Path.cwd(), "config")
            return build(json.dumps(table), "json", model)
        if not isinstance(config, (str, os.PathLike)):
            raise TypeError(f"config: expected a path, a mapping or None, got {type(config).__name__}")
        path = Path(config)
        text = path.read_text(encoding="utf-8")
        fmt: Literal["toml", "json"] = "json" if path.suffix.lower() == ".json" else "toml"
        parsed = json.loads(text) if fmt == "json" else tomllib.loads(text)
        model = _model_bytes(parsed, path.parent, str(path))
        return build(text, fmt, model)

    @classmethod
    def from_files(cls, component: PathLike, config: PathLike, *, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> Policy:
        """Loads the component file and the configuration file (postcard bytes)."""
        with open(config, "rb") as f:
            config_bytes = f.read()
        return PolicyComponent.from_file(component).instantiate(config_bytes, memory_limit=memory_limit)

    @property
    def info(self) -> PolicyInfo:
        """Name, version and configuration digest, as the component reported them at load."""
        return self._info

    def evaluate(self, request: Request) -> Verdict:
        """Decides one delegation.

        A request the component cannot read (a field of the wrong type or out of range) is
        denied with ``request-malformed``, its message naming the JSON path; a policy failure
        is answered with a ``policy-fault`` denial. Raises ``TypeError`` for a part that is not
        the dataclass or list it must be, and ``ValueError`` for a NaN or infinite number,
        which JSON cannot carry (or an integer of more than 4,300 digits, which Python will
        not write as text).
        """
        text = json.dumps(request_to_json(_request(request, "request")), allow_nan=False)
        return self._decide(lambda i: i.decide([text], batch=False), 1)[0]

    def evaluate_batch(self, requests: Sequence[Request]) -> list[Verdict]:
        """Decides many delegations in one call; verdict i answers request i."""
        if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
            raise TypeError(f"requests: expected a sequence of Request, got {type(requests).__name__}")
        texts = [
            json.dumps(request_to_json(_request(r, f"requests[{i}]")), allow_nan=False) for i, r in enumerate(requests)
        ]
        if not texts:
            return []
        return self._decide(lambda i: i.decide(texts, batch=True), len(texts))

    def narrow(self, parent: Mandate, requested: Mandate) -> Mandate:
        """The narrowest child mandate that lies within ``parent`` and ``requested``."""
        p = convert.lower_mandate(parent, "parent")
        r = convert.lower_mandate(requested, "requested")
        return self._call_or_raise("narrow", lambda i: convert.lift_mandate(i.call("narrow", p, r)))

    def trust_deltas(self, chain: Sequence[str], outcome: Outcome) -> list[TrustDelta]:
        """Trust changes for ``chain`` (originator first, executor last) after a task ends."""
        c = convert.lower_chain(chain)
        o = convert.lower_outcome(outcome)
        return self._call_or_raise(
            "trust_deltas", lambda i: [convert.lift_trust_delta(d) for d in i.call("trust_deltas", c, o)]
        )

    def close(self) -> None:
        """Releases the instance; later calls raise ``RuntimeError``."""
        with self._lock:
            if self._instance is not None:
                self._instance.close()
            self._instance = None
            self._closed = True

    def __enter__(self) -> Policy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _checkout(self) -> _Instance:
        if self._closed:
            raise RuntimeError("the policy is closed")
        if self._instance is None:
            self._instance = _Instance(self._component, self._config, self._memory_limit, self._fuel)
        return self._instance

    def _decide(self, call: Callable[[_Instance], list[Verdict]], count: int) -> list[Verdict]:
        with self._lock:
            try:
                return call(self._checkout())
            except (
                wasmtime.Trap,
                wasmtime.WasmtimeError,
                PolicyFault,
                _Malformed,
                ValueError,
                AttributeError,
                RecursionError,
                MemoryError,
            ) as e:
                # After a trap the instance's state is unknown: drop it, deny, start afresh next time.
                self._instance = None
                message = f"policy `{self._info.name}` failed closed: {_describe(e)}"
                return [Deny(code=POLICY_FAULT_CODE, name="policy-fault", message=message) for _ in range(count)]

    def _call_or_raise(self, what: str, call: Callable[[_Instance], T]) -> T:
        with self._lock:
            instance = self._checkout()
            try:
                return call(instance)
            except (wasmtime.Trap, wasmtime.WasmtimeError, ValueError, AttributeError) as e:
                self._instance = None
                raise PolicyFault(f"`{what}` failed: {_describe(e)}") from None


class _Malformed(Exception):
    """The component answered with something the contract does not allow."""


def _request(request: Any, at: str) -> Request:
    if not isinstance(request, Request):
        raise TypeError(f"{at}: expected Request, got {type(request).__name__}")
    return request


def _model_bytes(config: Any, base: Path, origin: str) -> bytes | None:
    """The bytes of the trained model ``sbd.model_file`` names (relative to ``base``), if any."""
    sbd = config.get("sbd") if isinstance(config, Mapping) else None
    name = sbd.get("model_file") if isinstance(sbd, Mapping) else None
    if name is None:
        return None
    if not isinstance(name, str):
        raise TypeError(f"{origin}: `sbd.model_file` must be a string (a file path)")
    try:
        return (base / name).read_bytes()
    except OSError as e:
        raise ValueError(f"{origin}: cannot read the model `{base / name}` named by `sbd.model_file`: {e}") from None


def _describe(error: Exception) -> str:
    """One line on why a call failed: the trap's reason without the wasm backtrace."""
    text = error.message if isinstance(error, wasmtime.Trap) else str(error)
    for line in reversed(text.splitlines()):
        # "wasm trap: ..." alone, or numbered in a "Caused by:" list ("1: wasm trap: ...")
        at = line.find("wasm trap:")
        reason = line[at + len("wasm trap:") :].strip()
        if at >= 0:
            if "fuel" in reason:
                return f"it ran past its fuel bound ({reason})"
            return f"it trapped: {reason}"
    if isinstance(error, (ValueError, AttributeError, _Malformed)):
        return f"malformed answer: {error}"
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__

"""Per-decision time of the Python binding over the cross-language corpus
(``bindings/shared/requests.json``), measured the way the Rust and Node benchmarks measure it.

    python benchmarks/bench.py [MIN_SECONDS]

Prints one JSON object per line, ``{"language", "path", "ns_per_decision", "decisions",
"rounds"}``. Each measurement decides the whole corpus once per round, in file order, after
0.5 s of warm-up, until MIN_SECONDS (default 2) have passed and at least 5 rounds ran, and
reports the median round: one ``evaluate`` call per decision, or one ``evaluate_batch`` call
per configuration. The requests are parsed into dataclasses beforehand; writing them as JSON,
the component's ``evaluate-json`` and ``check-verdict`` calls, and reading the verdicts back
are part of every decision, as they are for a caller.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

from sbd_policy import PolicyComponent, Request, request_from_json

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO / "bindings" / "shared"
# The component the installed package carries, unless SBD_COMPONENT names another file.
COMPONENT = os.environ.get("SBD_COMPONENT")
# The component's core module, as jco extracted it (committed in the npm package).
CORE_MODULE = str(REPO / "bindings/js/generated/sbd_component.core.wasm")
MIN_ROUNDS = 5
WARM_UP_SECONDS = 0.5


def measure(limit: float, decisions: int, round_: Callable[[], object]) -> tuple[float, int]:
    warm_up = time.perf_counter()
    round_()
    while time.perf_counter() - warm_up < WARM_UP_SECONDS:
        round_()
    start = time.perf_counter()
    rounds: list[float] = []
    while len(rounds) < MIN_ROUNDS or time.perf_counter() - start < limit:
        t = time.perf_counter_ns()
        round_()
        rounds.append((time.perf_counter_ns() - t) / decisions)
    rounds.sort()
    return rounds[len(rounds) // 2], len(rounds)


def main() -> None:
    limit = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    corpus = json.loads((SHARED / "requests.json").read_text(encoding="utf-8"))
    component = PolicyComponent.bundled() if COMPONENT is None else PolicyComponent.from_file(COMPONENT)
    policies = {name: component.instantiate((SHARED / file).read_bytes()) for name, file in corpus["configs"].items()}
    cases = [(case["config"], request_from_json(case["request"])) for case in corpus["cases"]]
    by_config: dict[str, list[Request]] = {name: [r for c, r in cases if c == name] for name in policies}

    def one_by_one() -> None:
        for config, request in cases:
            policies[config].evaluate(request)

    def batches() -> None:
        for config, requests in by_config.items():
            policies[config].evaluate_batch(requests)

    for path, round_ in [("wasmtime-py evaluate (JSON: evaluate-json + check-verdict)", one_by_one), ("wasmtime-py evaluate-batch (JSON, two calls a batch)", batches)]:
        ns, rounds = measure(limit, len(cases), round_)
        print(json.dumps({"language": "python", "path": path, "ns_per_decision": ns, "decisions": len(cases), "rounds": rounds}))

    # The floor under any binding built on wasmtime-py: one call that does (almost) nothing,
    # per call instead of per decision. `info` through the component API (no arguments, a
    # small record back), and `cabi_realloc` of the component's core module through the core
    # API (four i32s in, one out), the cheapest call into the policy's code there is.
    info = policies["default"]._instance
    assert info is not None
    info_func = info.funcs["info"]
    store, resource = info.store, info.resource
    n = 200

    def info_calls() -> None:
        store.set_fuel(1 << 40)
        for _ in range(n):
            info_func(store, resource)

    core_store = wasmtime.Store(wasmtime.Engine())
    module = wasmtime.Module.from_file(core_store.engine, CORE_MODULE)
    linker = wasmtime.Linker(core_store.engine)
    resource_ns = "[export]sbd:delegation/policy@0.1.0"
    i32 = wasmtime.ValType.i32()
    linker.define_func(resource_ns, "[resource-new]delegation-policy", wasmtime.FuncType([i32], [i32]), lambda rep: rep)
    linker.define_func(resource_ns, "[resource-drop]delegation-policy", wasmtime.FuncType([i32], []), lambda handle: None)
    realloc = linker.instantiate(core_store, module).exports(core_store)["cabi_realloc"]
    assert isinstance(realloc, wasmtime.Func)

    def core_calls() -> None:
        for _ in range(n):
            realloc(core_store, 0, 0, 8, 64)

    for path, round_ in [("wasmtime-py component call floor (info), per call", info_calls), ("wasmtime-py core call floor (cabi_realloc), per call", core_calls)]:
        ns, rounds = measure(limit, n, round_)
        print(json.dumps({"language": "python", "path": path, "ns_per_decision": ns, "decisions": n, "rounds": rounds}))


if __name__ == "__main__":
    main()

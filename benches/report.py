#!/usr/bin/env python3
"""Prints the README's performance table from criterion's results (target/criterion).

Each ratio compares two benchmarks of the same run: component against native on the same
requests, and precompiled load against compiling.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def ns(group, name):
    path = ROOT / group / name / "new" / "estimates.json"
    if not path.is_file():
        sys.exit(f"error: no result at {path}; run `cargo bench -p sbd-benches` first")
    estimate = json.loads(path.read_text())
    return estimate["median"]["point_estimate"]


def fmt(value):
    return f"{value / 1000:.2f} us" if value >= 1000 else f"{value:.0f} ns"


rows = []
for case in ["allow", "deny-cycle"]:
    native, component = ns("decision", f"native/{case}"), ns("decision", f"component/{case}")
    rows.append((f"one decision, {case}", fmt(native), fmt(component), f"{component / native:.2f}x"))
native, batch = ns("batch100", "native") / 100, ns("batch100", "component") / 100
single = ns("batch100", "component-one-by-one") / 100
rows.append(("per decision in a batch of 100 mixed", fmt(native), fmt(batch), f"{batch / native:.2f}x"))
rows.append(("per decision, same 100 one call each", fmt(native), fmt(single), f"{single / native:.2f}x"))

print("| case | native (sbd-policy) | through the component | component / native |")
print("|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")

compile_ns, cached_ns, inst_ns = ns("load", "compile"), ns("load", "precompiled"), ns("load", "instantiate")
print()
print("| load step | median | vs compiling |")
print("|---|---|---|")
print(f"| compile the component from bytes | {fmt(compile_ns)} | 1.00x |")
print(f"| load the precompiled `.cwasm` | {fmt(cached_ns)} | {cached_ns / compile_ns:.4f}x |")
print(f"| start an instance and build the policy | {fmt(inst_ns)} | {inst_ns / compile_ns:.4f}x |")

#!/usr/bin/env python3
"""Prints the performance tables (docs/performance.md) from criterion's results in
target/criterion.

Every ratio compares two benchmarks of the same run (`cargo bench -p sbd-benches`): the
component against native `sbd-policy` on the same requests, sbd against Cedar and Biscuit
(`--features peers`), and loading a precompiled component against compiling it. A table whose
benchmarks were not run is left out (with a note on stderr), so any subset of the benches can
be reported.
"""
import json
import os
import pathlib
import sys

# where criterion writes: CRITERION_HOME, else CARGO_TARGET_DIR/criterion, else cargo's default
ROOT = pathlib.Path(
    os.environ.get("CRITERION_HOME")
    or pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or pathlib.Path(__file__).resolve().parent.parent / "target")
    / "criterion"
)


class Missing(Exception):
    """A benchmark this table needs was not run."""


def ns(group, name):
    path = ROOT / group / name / "new" / "estimates.json"
    if not path.is_file():
        raise Missing(str(path))
    return json.loads(path.read_text())["median"]["point_estimate"]


def has(group, name):
    return (ROOT / group / name / "new" / "estimates.json").is_file()


def section(function):
    """Runs one table's printer; a table with a benchmark missing is skipped with a note."""
    try:
        function()
    except Missing as missing:
        print(f"note: skipped `{function.__name__}`: no result at {missing}", file=sys.stderr)


def fmt(value):
    if value >= 1e9:
        return f"{value / 1e9:.2f} s"
    if value >= 1e6:
        return f"{value / 1e6:.1f} ms"
    return f"{value / 1000:.2f} us" if value >= 1000 else f"{value:.0f} ns"


def decisions():
    print("| one decision | native `sbd-policy` | component, encoded path | component, typed WIT path | encoded / native |")
    print("|---|---|---|---|---|")
    for case, label in [("allow", "allow (every rule runs)"), ("deny-cycle", "deny at the cycle rule")]:
        native = ns("decision", f"native/{case}")
        encoded = ns("decision", f"component/{case}")
        typed = ns("decision", f"component-typed/{case}")
        print(f"| {label} | {fmt(native)} | {fmt(encoded)} | {fmt(typed)} | {encoded / native:.1f}x |")
    print()


def peers():
    print("| one decision, same run | sbd native | sbd component, encoded | Cedar `is_authorized` | Cedar / sbd component |")
    print("|---|---|---|---|---|")
    for case, label in [("allow", "allow"), ("deny-cycle", "deny: target already in the chain")]:
        native = ns("decision", f"native/{case}")
        encoded = ns("decision", f"component/{case}")
        cedar = ns("decision", f"cedar/{case}")
        print(f"| {label} | {fmt(native)} | {fmt(encoded)} | {fmt(cedar)} | {cedar / encoded:.1f}x |")
    print()


def batch():
    print("| per decision, batch of 100 mixed requests | median | vs native |")
    print("|---|---|---|")
    native = ns("batch100", "native") / 100
    for name, label in [
        ("native", "native `evaluate_batch`"),
        ("component", "component, one encoded call"),
        ("component-typed", "component, one typed `evaluate-batch` call"),
        ("component-one-by-one", "component, 100 encoded calls"),
    ]:
        value = ns("batch100", name) / 100
        print(f"| {label} | {fmt(value)} | {value / native:.1f}x |")
    print()


def where():
    print("| where a component call's time goes (same run) | median |")
    print("|---|---|")
    print(f"| empty call (`trust-deltas` with no agents) | {fmt(ns('decision', 'component-empty-call'))} |")
    for case in ["allow", "deny-cycle"]:
        print(f"| native decode + decide + encode, {case} (`Policy::evaluate_encoded`) | {fmt(ns('decision', f'native-encoded/{case}'))} |")
    print()


def learned():
    native, component = ns("learned", "native"), ns("learned", "component")
    print("| trained finance policy (phi, pi at width 256), one allow | median | vs native |")
    print("|---|---|---|")
    print(f"| native `sbd-policy` | {fmt(native)} | 1x |")
    print(f"| component, encoded path | {fmt(component)} | {component / native:.2f}x |")
    print()


def tokens():
    print("| delegation token, decode + verify | sbd | Biscuit (one check per attenuation block) | Biscuit / sbd |")
    print("|---|---|---|---|")
    for levels in [1, 2, 4, 8]:
        sbd = ns("token", f"verify/{levels}")
        biscuit = ns("token", f"biscuit/{levels}")
        print(f"| depth {levels} | {fmt(sbd)} | {fmt(biscuit)} | {biscuit / sbd:.1f}x |")
    print()


def load():
    compile_ns, cached_ns, inst_ns = ns("load", "compile"), ns("load", "precompiled"), ns("load", "instantiate")
    print("| making a policy ready | median | vs compiling |")
    print("|---|---|---|")
    print(f"| compile the component from bytes (Cranelift) | {fmt(compile_ns)} | 1x |")
    print(f"| load the precompiled `.cwasm` from the cache | {fmt(cached_ns)} | 1/{compile_ns / cached_ns:.0f} |")
    print(f"| start one more pooled instance and build the policy | {fmt(inst_ns)} | 1/{compile_ns / inst_ns:.0f} |")
    print()


# training: `cargo bench -p sbd-benches --bench training`
def flops(group, name):
    """The FLOP count the benchmark declared as its throughput."""
    path = ROOT / group / name / "new" / "benchmark.json"
    return json.loads(path.read_text())["throughput"]["Elements"]


def training():
    gemm_ns = ns("training", "gemm_128x256x256")
    gemm_rate = 2 * 128 * 256 * 256 / gemm_ns  # GFLOP/s, one thread
    print("| SBD training, paper sizes (T_in 50, B 256, width 256) | median | GFLOP/s | vs CPU GEMM on one core | vs CPU GEMM on both cores |")
    print("|---|---|---|---|---|")
    print(f"| reference: one 128x256x256 f32 GEMM, CPU, one thread | {fmt(gemm_ns)} | {gemm_rate:.1f} | 1x | |")
    backends = ["cpu"] + (["gpu"] if has("training", "outer-step_gpu_paper-sizes") else [])
    for backend in backends:
        for name, label in [
            (f"inner-step_{backend}", f"{backend}: one inner step, one `inner_loop` call (transfers included)"),
            (f"inner-loop-50_{backend}", f"{backend}: the inner loop, 50 steps, one call"),
            (f"outer-step_{backend}_paper-sizes", f"{backend}: one outer step (Algorithm 1 lines 5-22)"),
        ]:
            value = ns("training", name)
            rate = flops("training", name) / value
            print(f"| {label} | {fmt(value)} | {rate:.2f} | {rate / gemm_rate:.2f}x | {rate / (2 * gemm_rate):.0%} |")
    cpu_step = ns("training", "outer-step_cpu_paper-sizes")
    print(f"| cpu: a full run of 500 outer steps (500 x the median) | {500 * cpu_step / 1e9:.0f} s | | | |")
    if "gpu" in backends:
        gpu_step = ns("training", "outer-step_gpu_paper-sizes")
        gpu_loop = ns("training", "inner-loop-50_gpu")
        cpu_loop = ns("training", "inner-loop-50_cpu")
        print()
        print(f"GPU / CPU, same run: outer step {gpu_step / cpu_step:.1f}x, inner loop of 50 {gpu_loop / cpu_loop:.1f}x")


# gpu kernels: `cargo bench -p sbd-benches --bench gpu_kernels`
def gpu_kernels():
    """Per-launch time of each dispatch of one inner step, for every way of building the
    kernels, and the inner loop of 50 against the CPU backend's in the same run."""
    group = ROOT / "gpu-kernels"
    runs = {}
    for path in sorted(group.glob("*/new/benchmark.json")) if group.is_dir() else []:
        estimates = path.parent / "estimates.json"
        if not estimates.is_file():
            continue
        info = json.loads(path.read_text())
        options, _, what = info["function_id"].partition("/")
        estimate = json.loads(estimates.read_text())["median"]["point_estimate"]
        runs.setdefault(options, {})[what] = (estimate, info["throughput"]["Elements"])
    if "cpu" not in runs or len(runs) < 2:
        raise Missing(str(group))
    variants = [v for v in runs if v != "cpu"]
    # every dispatch any build reported; a build missing one gets a blank cell and no sum
    dispatches = sorted({w for v in variants for w in runs[v] if w != "inner-loop-50"})
    print("| one launch at paper sizes (B 256, width 256) | " + " | ".join(variants) + " |")
    print("|---|" + "---|" * len(variants))
    for what in dispatches:
        cells = []
        for v in variants:
            value, launches = runs[v].get(what, (None, 1))
            cells.append(fmt(value / launches) if value is not None else "")
        print(f"| {what} | " + " | ".join(cells) + " |")
    step = [
        sum(runs[v][w][0] / runs[v][w][1] for w in dispatches) if all(w in runs[v] for w in dispatches) else None
        for v in variants
    ]
    print("| **one inner step, sum of its launches** | " + " | ".join(f"**{fmt(t)}**" if t else "" for t in step) + " |")
    loops = [runs[v].get("inner-loop-50", (None, 1))[0] for v in variants]
    print("| the inner loop, 50 steps, one `inner_loop` call | " + " | ".join(fmt(t) if t else "" for t in loops) + " |")
    cpu_loop = runs["cpu"].get("inner-loop-50", (None, 1))[0]
    if cpu_loop:
        ratios = [f"{t / cpu_loop:.2f}x" if t else "" for t in loops]
        print("| the same against the CPU backend's " + fmt(cpu_loop) + " | " + " | ".join(ratios) + " |")
    print()


if not ROOT.is_dir():
    sys.exit(f"error: no criterion results in {ROOT}; run `cargo bench -p sbd-benches` first")
for table in [decisions, peers, batch, where, learned, tokens, load, training, gpu_kernels]:
    section(table)

#!/usr/bin/env bash
# Per-decision time of the delegation policy in every language, in one run, over the same
# requests (bindings/shared/requests.json): Rust natively and through wasmtime, Python through
# wasmtime-py, Node.js through jco. Prints a table with the ratio of each to Rust through
# wasmtime on the typed path (the same WIT records the Python and Node bindings pass).
#
#   bindings/bench.sh [MIN_SECONDS]      (default 2 seconds per measurement)
#
# Needs the Python venv of `.ci/run` in bindings/python/.venv with the package installed (or
# PYTHON=...); the npm package's committed generated/ is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
min_seconds=${1:-2}
python=${PYTHON:-bindings/python/.venv/bin/python}
if [ ! -x "$python" ]; then
    echo "error: $python is missing: create the venv as .ci/run does, or set PYTHON" >&2
    exit 1
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; ${min_seconds} s per measurement" >&2
# The Rust example, built at the workspace level (no `-p`: a package selection changes feature
# unification and rebuilds wasmtime); RUST_BENCH=path skips the build.
rust_bench=${RUST_BENCH:-target/release/examples/cross_language_bench}
if [ -z "${RUST_BENCH:-}" ]; then
    cargo build --release --quiet --example cross_language_bench
fi
"$rust_bench" "$min_seconds" >> "$results"
"$python" bindings/python/benchmarks/bench.py "$min_seconds" >> "$results"
(cd bindings/js && node bench/bench.mjs "$min_seconds") >> "$results"

"$python" - "$results" <<'PY'
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
base = next(r for r in rows if r["language"] == "rust" and r["path"] == "wasmtime typed evaluate")
print(f"{rows[0]['decisions']} decisions per round (bindings/shared/requests.json); median round\n")
print("| language | path | per decision | vs Rust wasmtime typed evaluate |")
print("|---|---|---:|---:|")
for r in rows:
    ns = r["ns_per_decision"]
    shown = f"{ns / 1000:.2f} us" if ns >= 1000 else f"{ns:.0f} ns"
    print(f"| {r['language']} | {r['path']} | {shown} | {ns / base['ns_per_decision']:.2f}x |")
PY

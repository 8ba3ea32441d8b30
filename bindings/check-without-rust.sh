#!/usr/bin/env bash
# Proves the bindings work without Rust: in a fresh venv and a fresh npm project, with every
# directory holding cargo, rustc or rustup removed from PATH (and CARGO_HOME/RUSTUP_HOME
# unset), install each package from this checkout and run its three-line quickstart; the
# verdict must be an allow. Needs python3 (3.10+), node (20+) and npm, and the package
# registries (PyPI for wasmtime and setuptools; npm for smol-toml, the JS package's one
# runtime dependency).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

clean_path=""
IFS=: read -r -a dirs <<< "$PATH"
for dir in "${dirs[@]}"; do
    if [ -x "$dir/cargo" ] || [ -x "$dir/rustc" ] || [ -x "$dir/rustup" ]; then
        continue
    fi
    clean_path="${clean_path:+$clean_path:}$dir"
done
# Where cargo shares a directory with python3, node or npm (a distribution's /usr/bin), that
# directory is dropped too: link the three tools into a directory of their own instead.
mkdir "$work/bin"
for tool in python3 node npm; do
    if ! PATH="$clean_path" command -v "$tool" >/dev/null 2>&1; then
        ln -s "$(command -v "$tool")" "$work/bin/$tool"
    fi
done
clean_path="$work/bin:$clean_path"
run() { env -u CARGO_HOME -u RUSTUP_HOME PATH="$clean_path" "$@"; }
if run sh -c 'command -v cargo || command -v rustc'; then
    echo "error: cargo or rustc is still on the stripped PATH" >&2
    exit 1
fi
echo "PATH without Rust: $clean_path"

# Python: a fresh venv, pip install ./bindings/python (a wheel built from the checkout), then
# the quickstart from outside the source tree.
run python3 -m venv "$work/venv"
run "$work/venv/bin/pip" install --quiet --disable-pip-version-check "$here/python"
(cd "$work" && run "$work/venv/bin/python" "$here/python/examples/quickstart.py") > "$work/py.json"
grep -q '"allow"' "$work/py.json"
# The framework-neutral adapter core needs no framework installed.
(cd "$work" && run "$work/venv/bin/python" -c 'import sbd_policy.adapters')
echo "python: pip install ./bindings/python + three lines: allow"

# Node: a fresh npm project, npm install ./bindings/js, then the quickstart copied into it.
mkdir "$work/project"
echo '{ "name": "quickstart", "private": true, "type": "module" }' > "$work/project/package.json"
(cd "$work/project" && run npm install --no-audit --no-fund --loglevel=error "$here/js")
cp "$here/js/examples/quickstart.mjs" "$work/project/"
(cd "$work/project" && run node quickstart.mjs) > "$work/js.json"
grep -q '"allow"' "$work/js.json"
echo "node: npm install ./bindings/js + three lines: allow"

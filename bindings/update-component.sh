#!/usr/bin/env bash
# Refreshes the component the Python and npm packages carry after a change under guest/ or
# wit/: builds it (`cargo test --release --no-run` builds the guest on the way), copies the release
# component into bindings/python/src/sbd_policy/data/ and transpiles it into bindings/js/generated/
# (jco, pinned in bindings/js/package.json). Commit both; .ci/run fails while they differ from
# a fresh build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --no-run  # the same feature set as the test build: no second wasmtime build
cp target/guest-build/default/wasm32-wasip2/guest/sbd_component.wasm bindings/python/src/sbd_policy/data/sbd_component.wasm
cp policies/default.toml bindings/python/src/sbd_policy/data/default.toml
python3 -c 'import json, tomllib; print(json.dumps(tomllib.load(open("policies/default.toml", "rb")), indent=2))' \
    > bindings/js/policy/default.json
(cd bindings/js && npm install --no-save --no-audit --no-fund --loglevel=error && npm run --silent build)
sha256sum bindings/python/src/sbd_policy/data/sbd_component.wasm

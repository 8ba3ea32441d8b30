#!/usr/bin/env bash
# The training benchmark on a machine with a real GPU: both backends in one run, then the
# README table. Needs a Vulkan driver for the GPU (on NVIDIA: the proprietary driver's Vulkan
# ICD, e.g. Debian `nvidia-vulkan-icd`; `vulkaninfo --summary` should list the card) and the
# pinned Rust toolchain. With no discrete GPU the GPU rows run on whatever adapter exists
# (llvmpipe on a CPU-only machine); `sbd train --backend auto` picks a discrete GPU only.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v vulkaninfo >/dev/null 2>&1; then
    vulkaninfo --summary 2>/dev/null | grep -E 'deviceName|deviceType' || true
fi
cargo bench -p sbd-benches --bench training
python3 benches/report.py | sed -n '/SBD training/,$p'

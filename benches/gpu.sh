#!/usr/bin/env bash
# The GPU benchmarks on a machine with a real GPU: the inner step's dispatches under every way
# of building the kernels, then training on both backends in one run, then the tables of
# docs/performance.md. Needs the pinned Rust toolchain and a Vulkan driver (on NVIDIA: the
# proprietary driver's Vulkan ICD and the Vulkan loader, Debian `libvulkan1`;
# `vulkaninfo --summary` should list the card). With no discrete GPU the GPU rows run on
# whatever adapter exists (llvmpipe on a CPU-only machine).
#
# In a headless container the NVIDIA manifest (/usr/share/vulkan/icd.d/nvidia_icd.json) names
# libGLX_nvidia.so.0, which fails without a display ("Could not get 'vkCreateInstance' via
# 'vk_icdGetInstanceProcAddr'"). Then set SBD_NVIDIA_EGL_ICD=1: this script points the loader
# at libEGL_nvidia.so.0 instead, which works headless.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${SBD_NVIDIA_EGL_ICD:-}" == 1 ]]; then
    icd="$(mktemp --suffix=.json)"
    printf '{"file_format_version":"1.0.1","ICD":{"library_path":"libEGL_nvidia.so.0","api_version":"1.3.0"}}' > "$icd"
    export VK_DRIVER_FILES="$icd"
fi
if command -v vulkaninfo >/dev/null 2>&1; then
    vulkaninfo --summary 2>/dev/null | grep -E 'deviceName|deviceType' || true
fi
# criterion never deletes a result, so an old run's rows (another label, another layer count)
# would mix into the per-dispatch table
rm -rf "${CRITERION_HOME:-${CARGO_TARGET_DIR:-target}/criterion}/gpu-kernels"
cargo bench -p sbd-benches --bench gpu_kernels --bench training
python3 benches/report.py | sed -n '/SBD training/,$p'

#!/usr/bin/env bash
# Installs NVRTC, ptxas, the CUDA runtime headers and NCCL from PyPI into the git-ignored
# .cuda-tools/ folder at the repository root. No GPU and no CUDA toolkit are needed.
# Idempotent: does nothing when the four pieces are already there.
#
# All wheels go in ONE pip call: `pip install --target DIR` into a DIR that already holds
# `nvidia/` silently skips the second install (see shared/CUDA.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
T="$ROOT/.cuda-tools"
NVRTC_LIB="$T/nvidia/cuda_nvrtc/lib"
PTXAS="$T/nvidia/cuda_nvcc/bin/ptxas"
INCLUDE="$T/nvidia/cuda_runtime/include"
NCCL_LIB="$T/nvidia/nccl/lib"

have_all() {
    compgen -G "$NVRTC_LIB/libnvrtc.so*" >/dev/null && [ -x "$PTXAS" ] && [ -d "$INCLUDE" ] &&
        [ -f "$NCCL_LIB/libnccl.so.2" ]
}

if have_all; then
    echo "cuda-tools: already installed in $T"
else
    # A half-finished install would make pip skip the wheels: start from an empty folder.
    rm -rf "$T"
    python3 -m pip install -q --disable-pip-version-check --no-deps --target "$T" \
        nvidia-cuda-nvrtc-cu12==12.9.86 \
        nvidia-cuda-nvcc-cu12==12.9.86 \
        nvidia-cuda-runtime-cu12==12.9.79 \
        nvidia-nccl-cu12==2.30.7
    chmod +x "$PTXAS" 2>/dev/null || true
    if ! have_all; then
        echo "cuda-tools: install finished but NVRTC/ptxas/headers/NCCL are missing under $T" >&2
        exit 1
    fi
    echo "cuda-tools: installed into $T"
fi

# cudarc dlopens libnvrtc.so by plain name: the test run needs this on LD_LIBRARY_PATH.
if [ ! -e "$NVRTC_LIB/libnvrtc.so" ]; then
    real="$(cd "$NVRTC_LIB" && ls libnvrtc.so.* | grep -v builtins | head -n1)"
    ln -sf "$real" "$NVRTC_LIB/libnvrtc.so"
fi
# cudarc opens NCCL as libnccl.so; the strata binary has this folder in its run path.
ln -sf libnccl.so.2 "$NCCL_LIB/libnccl.so"
echo "  NVRTC library dir : $NVRTC_LIB"
echo "  NCCL library dir  : $NCCL_LIB"
echo "  ptxas             : $PTXAS ($("$PTXAS" --version | tail -n1))"
echo "  CUDA headers      : $INCLUDE"
echo "  use: export LD_LIBRARY_PATH=$NVRTC_LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"

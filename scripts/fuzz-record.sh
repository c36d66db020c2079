#!/usr/bin/env bash
# Runs one libFuzzer target for a fixed number of executions and writes its record,
# results/fuzz/TARGET.json: the command, the commit, the machine, executions, seconds, corpus size
# and the final statistics libFuzzer prints. A crash fails the script, its input in
# fuzz/artifacts/TARGET/.
#
#   scripts/fuzz-record.sh TARGET [RUNS]      (RUNS defaults to 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz-record.sh TARGET [RUNS]}
runs=${2:-10000000}
corpus=fuzz/corpus/$target
mkdir -p "$corpus" results/fuzz
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The readers are safe Rust (their crates forbid `unsafe`), so the record runs build without a
# sanitizer by default, three to four times faster; libFuzzer still stops on a panic, a failed
# assertion, or memory over its 2 GB limit. FUZZ_SANITIZER=address runs them under ASan.
sanitizer=${FUZZ_SANITIZER:-none}
command="cargo +nightly fuzz run --sanitizer $sanitizer $target $corpus fuzz/seeds/$target -- -runs=$runs -print_final_stats=1"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# The commit of the code under test, taken before the build; the fuzzed code must not change
# before the run ends (the record would name the wrong commit).
fuzzed_code=(crates/*/src crates/*/Cargo.toml crates/kernels/build.rs kernels fuzz/fuzz_targets fuzz/Cargo.toml fuzz/Cargo.lock)
commit=$(git rev-parse HEAD)
git diff --quiet HEAD -- "${fuzzed_code[@]}" || commit="$commit+uncommitted"
# One rayon thread: a rayon join on a loaded 2-core machine waits for a time slice.
export RAYON_NUM_THREADS=1
start_ns=$(date +%s%N)
if ! (cd fuzz/.. && $command) >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz-record: $target failed; the input that crashed is in fuzz/artifacts/$target/" >&2
    exit 1
fi
seconds=$(( ($(date +%s%N) - start_ns) / 1000000 ))
if ! git diff --quiet "${commit%+uncommitted}" -- "${fuzzed_code[@]}"; then
    echo "fuzz-record: $target: the fuzzed code changed during the run; run it again" >&2
    exit 1
fi
stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
executed=$(stat number_of_executed_units)
if [ -z "$executed" ] || [ "$executed" -lt "$runs" ]; then
    tail -20 "$log"
    echo "fuzz-record: $target ran ${executed:-no} executions, fewer than $runs" >&2
    exit 1
fi
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
cat >"results/fuzz/$target.json" <<JSON
{
  "kind": "fuzz",
  "target": "$target",
  "command": "$command",
  "commit": "$commit",
  "date": "$started",
  "machine": {"cpu": "$cpu", "threads": 1},
  "toolchain": "$(rustc +nightly --version)",
  "sanitizer": "$sanitizer",
  "executions": $executed,
  "seconds": $(awk "BEGIN { printf \"%.1f\", $seconds / 1000 }"),
  "executions_per_second": $(stat average_exec_per_sec),
  "new_units_added": $(stat new_units_added),
  "corpus_files": $(find "$corpus" -type f | wc -l),
  "corpus_bytes": $(find "$corpus" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'),
  "peak_rss_mb": $(stat peak_rss_mb),
  "crashes": 0
}
JSON
echo "fuzz-record: $target: $executed executions in $seconds ms, no crash -> results/fuzz/$target.json"

#!/usr/bin/env bash
# The closing summary of `make test`: passed, failed, ignored and skipped tests over every
# `cargo test` of the run, then each skip with its test and reason.
#
#   scripts/test-summary.sh OUTPUT SKIP_LOG
#
# OUTPUT is cargo's output of the run (its `test result:` lines are summed); SKIP_LOG holds one
# line per skip, `test<TAB>category<TAB>ci<TAB>reason`, as strata_kernels::test_skip writes it
# (ci: `allowed` where the hardware is the cause, `fails` where CI must provide the cause).
# Exits non-zero when a test failed, when OUTPUT holds no test result, or, under CI=true,
# when a skip is one that CI must not have.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 OUTPUT SKIP_LOG" >&2
    exit 2
fi
output=$1
skips=$2
[ -f "$skips" ] || skips=/dev/null # no test skipped, or none ran

read -r runs passed failed ignored < <(awk '
    /^test result: / {
        runs++
        for (i = 1; i <= NF; i++) {
            n = $(i - 1) + 0
            if ($i ~ /^passed;?$/) passed += n
            else if ($i ~ /^failed;?$/) failed += n
            else if ($i ~ /^ignored;?$/) ignored += n
        }
    }
    END { printf "%d %d %d %d\n", runs, passed, failed, ignored }
' "$output")
skipped=$(grep -c . "$skips" || true)

echo
echo "== test summary: $runs test binaries"
echo "passed $passed (of which $skipped skipped their checks), failed $failed, ignored $ignored"
if [ "$skipped" -gt 0 ]; then
    echo "skipped:"
    awk -F '\t' '{ printf "  %s\n      %s: %s\n", $1, $2, $4 }' "$skips"
fi

status=0
if [ "$runs" -eq 0 ]; then
    echo "no \`test result:\` line in $output: the tests did not run" >&2
    status=1
fi
if [ "$failed" -gt 0 ]; then
    echo "$failed tests failed" >&2
    status=1
fi
if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then
    unexpected=$(awk -F '\t' '$3 != "allowed"' "$skips" | grep -c . || true)
    if [ "$unexpected" -eq 0 ]; then
        echo "CI: 0 unexpected skips (only the hardware of this machine leaves tests unrun)"
    else
        echo "CI: $unexpected unexpected skips: CI must provide what they lack" >&2
        status=1
    fi
fi
exit $status

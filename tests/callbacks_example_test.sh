#!/usr/bin/env bash
# Runs the `callbacks` example against a real perplexity-sim process: every operation through
# callbacks and through futures, and a failing job.
#   callbacks_example_test.sh CALLBACKS_BINARY SIM_BINARY
set -uo pipefail
callbacks=$1
sim=$2
source "$(dirname "$0")/example_lib.sh"

d="$workdir/sim"
start_simulator url "$d" || exit 1
run() {
    PERPLEXITY_API_KEY=test-key "$callbacks" --base-url "$url" --ca-file "$d/ca.pem" --poll-interval 20 "$@" \
        >"$d/out" 2>"$d/err"
    code=$?
}
run "How many moons has Mars?"
check "all operations succeed: exit 0 (got $code: $(cat "$d/out" "$d/err"))" [ "$code" -eq 0 ]
for how in callback future; do
    check "$how run completes" grep -q "^$how run: job [^ ]* COMPLETED: Simulated answer to \"How many moons" "$d/out"
    check "$how create" grep -q "^$how create: job [^ ]* CREATED$" "$d/out"
    check "$how get" grep -q "^$how get: job [^ ]* [A-Z_]*" "$d/out"
    check "$how wait completes" grep -q "^$how wait: job [^ ]* COMPLETED: " "$d/out"
    check "$how list" grep -q "^$how list: [0-9]* jobs, newest " "$d/out"
done
check "callbacks come before futures" [ "$(sed -n '1s/ .*//p' "$d/out")" = callback ]
check "ten operations, one line each" [ "$(wc -l <"$d/out")" -eq 10 ]

run "please [[fail]]"
check "a failed job exits 1 (got $code)" [ "$code" -eq 1 ]
check "the failure is printed" grep -q "^callback run: error: job_failed: .*Internal error while processing request" "$d/out"

PERPLEXITY_API_KEY= "$callbacks" --base-url "$url" >/dev/null 2>"$d/err"
check "no API key exits 2" [ $? -eq 2 ]
finish

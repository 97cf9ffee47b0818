#!/usr/bin/env bash
# Runs the `ledger` example on ledgers written by the `batch` example against a real perplexity-sim
# process: the count per state, the filters, the JSON lines, reading beside a batch that is writing the
# ledger, and files that are no ledger.
#   ledger_example_test.sh LEDGER_BINARY BATCH_BINARY SIM_BINARY
set -uo pipefail
ledger=$1
batch=$2
sim=$3
source "$(dirname "$0")/example_lib.sh"

start_batch() {  # start_batch DIR URL ARGS...: in the background, sets batch_pid
    local dir=$1 url=$2
    shift 2
    PERPLEXITY_API_KEY=test-key "$batch" --base-url "$url" --ca-file "$dir/ca.pem" --in "$dir/in.jsonl" \
        --out "$dir/out.jsonl" --poll-interval 50 "$@" >"$dir/stdout" 2>"$dir/err" &
    batch_pid=$!
}

# 1. A finished batch: three questions, one failing.
d="$workdir/finished"
start_simulator url "$d" || exit 1
questions "$d/in.jsonl" 3 q2
start_batch "$d" "$url"
wait "$batch_pid"
"$ledger" "$d/out.jsonl.journal" >"$d/list" 2>"$d/list.err"
code=$?
check "ledger exits 0 (got $code: $(cat "$d/list.err"))" [ "$code" -eq 0 ]
check "the summary counts each state" \
    grep -q "^$d/out.jsonl.journal: 3 entries, 0 pending, 0 running, 2 completed, 1 failed, 0 dropped (0 stale" \
    "$d/list"
check "one line per entry, labelled with the question id" [ "$(grep -cE '^ +[0-9]+  sonar  ' "$d/list")" -eq 3 ]
check "the failed entry shows its status and the API's message" \
    grep -qE '^ +[0-9]+  sonar  failed .* q2 .* FAILED .*Internal error' "$d/list"
"$ledger" "$d/out.jsonl.journal" --state failed >"$d/failed"
check "--state keeps only that state" [ "$(grep -cE '^ +[0-9]+  sonar  ' "$d/failed")" -eq 1 ]
"$ledger" "$d/out.jsonl.journal" --label q3 --json >"$d/q3.json"
check "--label and --json: one JSON line, with the recorded job" \
    python3 -c 'import json,sys; lines=open(sys.argv[1]).read().splitlines(); assert len(lines)==1; e=json.loads(lines[0]); assert e["label"]=="q3" and e["state"]=="completed" and e["result"]["id"]==e["job_id"] and e["request"]["messages"]' \
    "$d/q3.json"
check "the API key is nowhere in the listing" bash -c "! grep -q test-key '$d/q3.json' '$d/list'"
stop_simulator "$d"

# 2. Beside a batch still writing its ledger: the reader takes no lock and sees the jobs in flight.
d="$workdir/beside"
start_simulator url "$d" --in-progress-ms 60000 || exit 1
questions "$d/in.jsonl" 2
start_batch "$d" "$url"
running() { "$ledger" "$d/out.jsonl.journal" --state running >"$d/running" 2>&1 &&
    [ "$(grep -cE '^ +[0-9]+  sonar  running' "$d/running")" -eq 2 ]; }
check "the running jobs are listed while the batch waits on them ($(cat "$d/running" 2>/dev/null))" \
    wait_for 20 running
check "the batch is still running beside the reader" kill -0 "$batch_pid"
kill -TERM "$batch_pid"
wait "$batch_pid"
stop_simulator "$d"

# 3. Files that are no ledger: a clear message and exit 3, and nothing is created.
d="$workdir/bad"
mkdir -p "$d"
head -c 5000 /dev/urandom >"$d/random"
"$ledger" "$d/random" >"$d/out" 2>"$d/err"
code=$?
check "random bytes: exit 3 (got $code)" [ "$code" -eq 3 ]
check "random bytes: says why ($(cat "$d/err"))" grep -q "ledger: ledger: .*random" "$d/err"
"$ledger" "$d/missing" >"$d/out" 2>"$d/err"
code=$?
check "a missing file: exit 3 (got $code)" [ "$code" -eq 3 ]
check "a missing file is not created" [ ! -e "$d/missing" ]
"$ledger" >"$d/out" 2>"$d/err"
check "no file: a usage error" [ $? -eq 2 ]
"$ledger" "$d/random" --state sleeping >"$d/out" 2>"$d/err"
check "an unknown state: a usage error naming it" grep -q "not 'sleeping'" "$d/err"

finish

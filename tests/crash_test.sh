#!/usr/bin/env bash
# Kills a Client with a SQLite ledger (tests/crash/crash_worker.cpp) with SIGKILL at random moments,
# dozens of times, against a real perplexity-sim that loses the answer of, refuses or delays a fifth of
# all requests; then runs it to its end. Every label must be answered exactly once, and the simulator must
# have made exactly one job per label, however many creates it received.
#   crash_test.sh WORKER_BINARY SIM_BINARY
#
# A round is one ledger and one output for the labels job-1..job-20. A worker that ends by itself before
# its kill has answered every label of its round, so the next iteration starts a new round: every
# iteration then kills a worker with work in flight, rather than one with nothing left to do.
set -uo pipefail
worker=$1
sim=$2
source "$(dirname "$0")/example_lib.sh"

jobs=20
concurrency=4
iterations=80
budget=90   # seconds of killing at most, so a slow machine ends the test in time rather than timing out
# Distinctive, so that grep finds it wherever it might have leaked.
key="pplx-crash-SECRET-$RANDOM$RANDOM-7c1e9b"
seed=$((RANDOM + 1))

d="$workdir/sim"
# IN_PROGRESS lasts ten polls (about 250 ms at the worker's 20 ms interval), so kills find jobs running.
start_simulator url "$d" --api-key "$key" --fault-ratio 0.2 --in-progress-polls 10 --seed "$seed" || exit 1
echo "simulator seed $seed"

round_dir() { echo "$workdir/round-$1"; }

start_worker() {  # start_worker ROUND: in the background, sets worker_pid
    local r
    r=$(round_dir "$1")
    PERPLEXITY_API_KEY="$key" "$worker" --base-url "$url" --ca-file "$d/ca.pem" --ledger "$r/ledger.sqlite" \
        --out "$r/out" --jobs "$jobs" --concurrency "$concurrency" >>"$r/worker.out" 2>>"$r/worker.err" &
    worker_pid=$!
}

report() {  # report ROUND WHAT: a count from the worker's --report of the round's ledger
    local counts
    if ! counts=$("$worker" --ledger "$(round_dir "$1")/ledger.sqlite" --report 2>&1); then
        echo "FAILED: the report of round $1: $counts" >&2
        exit 1
    fi
    sed -n "s/^$2 //p" <<<"$counts"
}

show_worker() {  # show_worker ROUND: what its workers said, for a failure message
    echo "--- round $1, last lines of the workers' stderr:"
    tail -15 "$(round_dir "$1")/worker.err"
}

round=1
mkdir -p "$(round_dir $round)"
ran=0 killed=0 finished=0 mid_create=0 unwritten=0
start=$SECONDS
while [ "$ran" -lt "$iterations" ] && [ $((SECONDS - start)) -lt "$budget" ]; do
    ran=$((ran + 1))
    echo "--- iteration $ran" >>"$(round_dir $round)/worker.err"
    start_worker "$round"
    # The kill moment: anywhere from the ledger's open to the last answers.
    sleep "0.$(printf '%03d' $((10 + RANDOM % 391)))"
    kill -9 "$worker_pid" 2>/dev/null
    wait "$worker_pid" 2>/dev/null
    code=$?
    if [ "$code" -eq 137 ]; then
        killed=$((killed + 1))
        # Killed with an intent recorded and no job id yet: its create was sent, or about to be.
        [ "$(report "$round" pending)" -gt 0 ] && mid_create=$((mid_create + 1))
        # Killed with an outcome in the ledger whose line was not written yet.
        outcomes=$(($(report "$round" completed) + $(report "$round" failed)))
        [ "$outcomes" -gt "$(wc -l <"$(round_dir $round)/out")" ] && unwritten=$((unwritten + 1))
    elif [ "$code" -eq 0 ]; then
        finished=$((finished + 1))
        round=$((round + 1))
        mkdir -p "$(round_dir $round)"
    else
        echo "FAILED: iteration $ran: the worker exited $code"
        show_worker "$round"
        exit 1
    fi
done
echo "$ran iterations in $((SECONDS - start)) s: $killed killed ($mid_create mid-create, $unwritten with an" \
    "outcome not yet written), $finished finished before their kill; $round rounds"

# The last round, to its end without a kill.
echo "--- to the end" >>"$(round_dir $round)/worker.err"
PERPLEXITY_API_KEY="$key" timeout 60 "$worker" --base-url "$url" --ca-file "$d/ca.pem" \
    --ledger "$(round_dir $round)/ledger.sqlite" --out "$(round_dir $round)/out" --jobs "$jobs" \
    --concurrency "$concurrency" >>"$(round_dir $round)/worker.out" 2>>"$(round_dir $round)/worker.err"
code=$?
check "the last run ends with every label answered (exit $code)" [ "$code" -eq 0 ]
[ "$code" -eq 0 ] || show_worker "$round"

each_label_once() {  # each_label_once OUT: job-1..job-N one line each, and no other line
    local i count
    for i in $(seq "$jobs"); do
        count=$(grep -c "^job-$i " "$1")
        [ "$count" -eq 1 ] || { echo "job-$i: $count lines in $1"; return 1; }
    done
    [ "$(wc -l <"$1")" -eq "$jobs" ] || { echo "$(wc -l <"$1") lines in $1"; return 1; }
}
ledger_complete() {  # ledger_complete ROUND
    [ "$(report "$1" completed)" -eq "$jobs" ] && [ "$(report "$1" entries)" -eq "$jobs" ]
}
for r in $(seq "$round"); do
    rd=$(round_dir "$r")
    check "round $r: every label answered exactly once" each_label_once "$rd/out"
    check "round $r: no job failed" [ "$(grep -c ' FAILED$' "$rd/out")" -eq 0 ]
    check "round $r: the ledger has $jobs entries, all completed (has $(report "$r" entries), of which \
$(report "$r" completed) completed)" ledger_complete "$r"
    leaks=$(cat "$rd/ledger.sqlite" "$rd/ledger.sqlite-wal" 2>/dev/null | grep -c -a -F "$key")
    check "round $r: the API key is nowhere in the ledger's files (found $leaks times)" [ "$leaks" -eq 0 ]
    check "round $r: nor in the answers" [ "$(grep -c -F "$key" "$rd/out")" -eq 0 ]
    if [ "$failures" -ne 0 ]; then
        show_worker "$r"
        break
    fi
done

stop_simulator "$d"
faults=$(sed -n 's/.* \([0-9]*\) faults$/\1/p' "$d/sim.log")
echo "simulator: $sim_jobs jobs made, $sim_creates creates received, $faults faults"
check "one job per label: $((round * jobs)) (got $sim_jobs)" [ "$sim_jobs" -eq $((round * jobs)) ]
check "more creates than jobs, so creates were sent again and answered with their job" \
    [ "$sim_creates" -gt "$sim_jobs" ]
finish

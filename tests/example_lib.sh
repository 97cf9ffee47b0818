# Shared by the example tests: starting perplexity-sim processes, waiting on conditions, checks.
# Source it after setting `sim` (the simulator binary). Every process started here is stopped on exit.
workdir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$workdir"' EXIT

start_simulator() {  # start_simulator URL_VARIABLE DIR SIM_ARGS...: sets URL_VARIABLE to the base URL
    local variable=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    "$sim" --port 0 --cert-dir "$dir" --api-key test-key "$@" >"$dir/sim.log" 2>&1 &
    pids+=($!)
    echo $! >"$dir/sim.pid"
    if ! wait_for 20 grep -q "^listening on " "$dir/sim.log"; then
        echo "simulator did not start: $(cat "$dir/sim.log")" >&2
        return 1
    fi
    printf -v "$variable" "%s" "$(sed -n "1s/^listening on //p" "$dir/sim.log")"
}

# stop_simulator DIR: stops it and sets sim_jobs (jobs created, idempotent replays excluded),
# sim_creates (create requests received) and sim_responses (Agent API responses created) from its
# closing line.
stop_simulator() {
    local dir=$1 pid
    pid=$(cat "$dir/sim.pid")
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    sim_jobs=$(sed -n 's/.*requests, \([0-9]*\) jobs, .*/\1/p' "$dir/sim.log")
    sim_creates=$(sed -n 's/.* jobs, \([0-9]*\) creates received.*/\1/p' "$dir/sim.log")
    sim_responses=$(sed -n 's/.* creates received, \([0-9]*\) responses, .*/\1/p' "$dir/sim.log")
}

# questions FILE N [FAIL_ID]: a batch input of N questions q1..qN; FAIL_ID's job fails.
questions() {
    local file=$1 n=$2 fail=${3:-}
    : >"$file"
    for i in $(seq "$n"); do
        local marker=""
        [ "q$i" = "$fail" ] && marker=" [[fail]]"
        printf '{"id": "q%d", "question": "question number %d%s"}\n' "$i" "$i" "$marker" >>"$file"
    done
}

wait_for() {  # wait_for SECONDS COMMAND...: polls COMMAND every 50 ms until it succeeds
    local tries=$(($1 * 20))
    shift
    for _ in $(seq "$tries"); do
        "$@" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

failures=0
passes=0
check() {  # check DESCRIPTION CONDITION...
    local description=$1
    shift
    if "$@"; then
        passes=$((passes + 1))
    else
        echo "FAILED: $description"
        failures=$((failures + 1))
    fi
}

finish() {
    echo "$passes passed, $failures failed"
    [ "$failures" -eq 0 ]
}

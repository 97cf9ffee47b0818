#!/usr/bin/env bash
# Runs the `ask` example against a real perplexity-sim process and checks its output and exit codes.
#   ask_example_test.sh ASK_BINARY SIM_BINARY
set -uo pipefail
ask=$1
sim=$2
source "$(dirname "$0")/example_lib.sh"

start_simulator url "$workdir/fast" || exit 1
run_ask() {  # run_ask KEY ARGS... -> sets code, out, err
    PERPLEXITY_API_KEY=$1 "$ask" --poll-interval 0 --base-url "$url" --ca-file "$workdir/fast/ca.pem" "${@:2}" \
        >"$workdir/out" 2>"$workdir/err"
    code=$?
    out=$(cat "$workdir/out")
    err=$(cat "$workdir/err")
}

run_ask test-key "How many moons has Mars?"
check "a completed job exits 0 (got $code: $err)" [ "$code" -eq 0 ]
check "the answer is printed" grep -q "Mars" "$workdir/out"
check "citations are printed" grep -q "^Citations:" "$workdir/out"
check "the cost is printed" grep -q "cost: \\$" "$workdir/out"
check "the think block is not printed by default" \
    bash -c "! grep -q -e '<think>' -e '--- thinking ---' -e 'The user asks' '$workdir/out'"
check "the answer is a few sentences, not padding" \
    bash -c "grep -q '^Simulated answer to \"How many moons has Mars?\": .*\[3\]' '$workdir/out' &&
        ! grep -q 'pads the simulated answer' '$workdir/out'"
check "each of its three citations is printed" grep -q "^  \[3\] https://" "$workdir/out"
statuses() {  # statuses PREFIX: the statuses ask printed for its job (or response), one a line
    sed -n "s/^$1 [^ ]* \([a-zA-Z_]*\)$/\1/p" "$workdir/err" | tr '\n' ' '
}
check "each status change is printed once, in order (got: $(statuses job))" \
    [ "$(statuses job)" = "CREATED IN_PROGRESS COMPLETED " ]

run_ask test-key --show-thinking "How many moons has Mars?"
check "--show-thinking exits 0 (got $code: $err)" [ "$code" -eq 0 ]
check "--show-thinking prints the think block of sonar-deep-research, then the answer" \
    bash -c "grep -A1 -x -- '--- thinking ---' '$workdir/out' | grep -q '^The user asks: \"How many moons has Mars?\"' &&
        grep -A1 -x -- '--- answer ---' '$workdir/out' | grep -q '^Simulated answer to '"
check "--show-thinking prints no tags" bash -c "! grep -q 'think>' '$workdir/out'"
run_ask test-key --model sonar --show-thinking "How many moons has Mars?"
check "a model that does not reason has no think block to show" \
    bash -c "grep -q '^Simulated answer to ' '$workdir/out' && ! grep -q -- '--- thinking ---' '$workdir/out'"

run_ask test-key --json "How many moons has Mars?"
check "--json exits 0" [ "$code" -eq 0 ]
check "--json prints the final job" grep -q '"status":"COMPLETED"' "$workdir/out"

run_ask test-key "please [[fail]]"
check "a failed job exits 1 (got $code)" [ "$code" -eq 1 ]
check "a failed job prints its error message" grep -q "Internal error while processing request" "$workdir/err"

run_ask wrong-key "anything"
check "an API error exits 3 (got $code)" [ "$code" -eq 3 ]
check "an API error is printed readably" grep -q "HTTP 401" "$workdir/err"
check "the key is not printed" bash -c "! grep -q 'wrong-key' '$workdir/err'"

# A second simulator whose jobs run for minutes: the deadline must end the wait, naming the job.
slow_dir="$workdir/slow"
start_simulator slow_url "$slow_dir" --in-progress-ms 600000 || exit 1
PERPLEXITY_API_KEY=test-key "$ask" --poll-interval 100 --deadline 1 --base-url "$slow_url" \
    --ca-file "$slow_dir/ca.pem" "a long question" >"$workdir/out" 2>"$workdir/err"
code=$?
check "a passed deadline exits 4 (got $code: $(cat "$workdir/err"))" [ "$code" -eq 4 ]
check "a passed deadline names the job and says it may still complete" \
    grep -q "may still complete.*\[job " "$workdir/err"

# Ctrl-C while the job runs: exit 5, naming the job.
PERPLEXITY_API_KEY=test-key "$ask" --poll-interval 100 --base-url "$slow_url" --ca-file "$slow_dir/ca.pem" \
    "a question to interrupt" >"$workdir/out" 2>"$workdir/err" &
ask_pid=$!
pids+=($ask_pid)
check "the job runs before the interrupt" wait_for 20 grep -q "^job .* IN_PROGRESS" "$workdir/err"
kill -INT "$ask_pid"
wait "$ask_pid"
code=$?
check "an interrupted wait exits 5 (got $code: $(cat "$workdir/err"))" [ "$code" -eq 5 ]
check "an interrupted wait names the job" grep -q "cancelled.*\[job " "$workdir/err"

# The Agent API (--api agent): a background response run to its end with Client::run_response.
run_ask test-key --api agent "How many moons has Mars?"
check "an agent response that completes exits 0 (got $code: $err)" [ "$code" -eq 0 ]
check "its answer is printed" grep -q 'Simulated answer to "How many moons has Mars?"' "$workdir/out"
check "its usage and cost are printed" grep -q "^Tokens: .*cost: \\$" "$workdir/out"
check "its status changes go to stderr" grep -q "^response resp_[^ ]* completed$" "$workdir/err"
check "each of them once, in order (got: $(statuses response))" \
    [ "$(statuses response)" = "queued in_progress completed " ]
check "the preset's answer comes with its sources" grep -q "^  \[3\] https://.* (Background article" "$workdir/out"
run_ask test-key --api agent --model perplexity/sonar "How many moons has Mars?"
check "--model instead of the preset exits 0 (got $code: $err)" [ "$code" -eq 0 ]
check "a model's answer comes with its sources" grep -q "^Sources:" "$workdir/out"
check "the sources are listed with their URLs" grep -q "^  \[2\] https://" "$workdir/out"
run_ask test-key --api agent --json "How many moons has Mars?"
check "--api agent --json prints the final response" grep -q '"status":"completed"' "$workdir/out"
run_ask test-key --api agent "please [[fail]]"
check "a failed response exits 1 (got $code)" [ "$code" -eq 1 ]
check "a failed response prints its error" grep -q "failed: Internal error while processing request" "$workdir/err"
run_ask test-key --api agent "cut [[incomplete]]"
check "an incomplete response exits 0 (got $code)" [ "$code" -eq 0 ]
check "an incomplete response says it is cut short" grep -q "is incomplete.*max_output_tokens" "$workdir/err"
run_ask test-key --api agent "act [[status:requires_action]]"
check "a response that requires action exits 7 (got $code)" [ "$code" -eq 7 ]
check "a response that requires action lists the pending calls" grep -q "^Pending function calls:" "$workdir/out"
run_ask test-key --api agent --preset no-such-preset "anything"
check "a refused preset exits 3 (got $code)" [ "$code" -eq 3 ]
check "a refused preset names the field" grep -q "\[param preset\]" "$workdir/err"
run_ask test-key --preset medium "anything"
check "--preset without --api agent exits 2 (got $code)" [ "$code" -eq 2 ]
run_ask test-key --cancel-on-abandon "anything"
check "--cancel-on-abandon without --api agent exits 2 (got $code)" [ "$code" -eq 2 ]
run_ask test-key --api chat "anything"
check "an unknown --api exits 2 (got $code)" [ "$code" -eq 2 ]

# Responses that stay queued: cancelled on the server by someone else, interrupted, and interrupted with
# --cancel-on-abandon.
queued_dir="$workdir/queued"
start_simulator queued_url "$queued_dir" --created-polls 1000000 || exit 1
sim_curl() {  # sim_curl METHOD PATH: the simulator's answer on stdout
    curl -s -X "$1" --cacert "$queued_dir/ca.pem" -H "Authorization: Bearer test-key" "$queued_url$2"
}
start_queued_ask() {  # start_queued_ask ARGS...: sets ask_pid and response_id once ask printed it
    PERPLEXITY_API_KEY=test-key "$ask" --api agent --poll-interval 100 --base-url "$queued_url" \
        --ca-file "$queued_dir/ca.pem" "$@" >"$workdir/out" 2>"$workdir/err" &
    ask_pid=$!
    pids+=($ask_pid)
    response_id=""
    wait_for 20 grep -q "^response resp_[^ ]* queued$" "$workdir/err" || return 1
    response_id=$(sed -n '1s/^response \(resp_[^ ]*\) .*/\1/p' "$workdir/err")
}
check "a queued response is reported with its id" start_queued_ask "a question to cancel"
sim_curl POST "/v1/responses/$response_id/cancel" >"$workdir/cancel"
check "the simulator acknowledges the cancel" grep -q '"status":"cancelling"' "$workdir/cancel"
wait "$ask_pid"
code=$?
check "a response cancelled on the server exits 6 (got $code: $(cat "$workdir/err"))" [ "$code" -eq 6 ]
check "a response cancelled on the server says so" grep -q "was cancelled on the server" "$workdir/err"

check "a queued response is reported before the interrupt" start_queued_ask "a question to interrupt"
kill -INT "$ask_pid"
wait "$ask_pid"
code=$?
check "an interrupted agent wait exits 5 (got $code: $(cat "$workdir/err"))" [ "$code" -eq 5 ]
check "an interrupted agent wait names the response" grep -q "cancelled.*\[job $response_id\]" "$workdir/err"
check "without --cancel-on-abandon the response keeps running" \
    bash -c "curl -s --cacert '$queued_dir/ca.pem' -H 'Authorization: Bearer test-key' \
        '$queued_url/v1/responses/$response_id' | grep -q '\"status\":\"queued\"'"

check "a queued response is reported before the interrupt" start_queued_ask --cancel-on-abandon "a question to abandon"
kill -INT "$ask_pid"
wait "$ask_pid"
code=$?
check "an interrupted wait with --cancel-on-abandon exits 5 (got $code: $(cat "$workdir/err"))" [ "$code" -eq 5 ]
sim_curl GET "/v1/responses/$response_id" >"$workdir/state"
check "with --cancel-on-abandon the response is cancelled on the server (got $(cat "$workdir/state"))" \
    grep -q '"status":"cancelled"' "$workdir/state"

# A create that provably never left the machine (the connection is refused) says no job was made, and
# does not send the user looking for one by its key.
PERPLEXITY_API_KEY=test-key "$ask" --base-url https://127.0.0.1:1 --ca-file "$workdir/fast/ca.pem" \
    "How many moons has Mars?" >"$workdir/out" 2>"$workdir/err"
code=$?
check "a refused connection exits 3 (got $code: $(cat "$workdir/err"))" [ "$code" -eq 3 ]
check "a refused connection says no job was created" grep -q "no job was created" "$workdir/err"
check "a refused connection does not suggest picking a job up" bash -c "! grep -q 'pick up' '$workdir/err'"

# A create whose every attempt is lost after the simulator made the job (--fault create:drop_handled:4
# makes the first four creates so, whatever their timing): ask cannot say whether a job exists, so it
# prints the command that picks it up by the key the attempts carried. That command, pasted into a
# shell, finds the job the first attempt made instead of creating a second one.
lost_dir="$workdir/lost"
start_simulator lost_url "$lost_dir" --fault create:drop_handled:4 || exit 1
PERPLEXITY_API_KEY=test-key "$ask" --poll-interval 0 --base-url "$lost_url" --ca-file "$lost_dir/ca.pem" \
    "How many moons has Mars?" >"$workdir/out" 2>"$workdir/err"
code=$?
check "a create whose answers were all lost exits 3 (got $code: $(cat "$workdir/err"))" [ "$code" -eq 3 ]
check "it prints why the create failed" \
    grep -q "^ask: transport: .* closed the connection before answering" "$workdir/err"
check "it tells a shell user the flag to pick the job up" \
    grep -q "^ask: to pick up the job if it was created, run again with --idempotency-key [^ ]*:$" "$workdir/err"
key=$(sed -n 's/^ask: to pick up the job if it was created, run again with --idempotency-key \([^ ]*\):$/\1/p' \
    "$workdir/err")
again=$(grep -A1 "^ask: to pick up the job" "$workdir/err" | sed -n 2p)
check "the command to run again passes the key (got: $again)" \
    grep -qF -- "$ask --idempotency-key $key --poll-interval 0 " <<<"$again"
check "the command to run again quotes the question for the shell" grep -qF -- "'How many moons has Mars?'" <<<"$again"
PERPLEXITY_API_KEY=test-key bash -c "$again" >"$workdir/out" 2>"$workdir/err"
code=$?
check "the suggested command picks the job up and completes (got $code: $(cat "$workdir/err"))" [ "$code" -eq 0 ]
check "the suggested command prints the answer" \
    grep -q '^Simulated answer to "How many moons has Mars?"' "$workdir/out"
first_id=$(sed -n 's/^job \([^ ]*\) .*/\1/p' "$workdir/err" | head -n 1)
PERPLEXITY_API_KEY=test-key "$ask" --poll-interval 0 --base-url "$lost_url" --ca-file "$lost_dir/ca.pem" \
    --idempotency-key "$key" "How many moons has Mars?" >"$workdir/out" 2>"$workdir/err"
code=$?
check "the same --idempotency-key again exits 0 (got $code: $(cat "$workdir/err"))" [ "$code" -eq 0 ]
check "the same --idempotency-key again answers with the same job ($first_id)" \
    grep -q "^job $first_id COMPLETED$" "$workdir/err"
stop_simulator "$lost_dir"
check "the lost create, its retries and both runs with the key made one job (got $sim_jobs)" [ "$sim_jobs" = 1 ]
check "the simulator saw the six creates (got $sim_creates)" [ "$sim_creates" = 6 ]

run_ask test-key --api agent --idempotency-key some-key "anything"
check "--idempotency-key with --api agent exits 2 (got $code)" [ "$code" -eq 2 ]
check "--idempotency-key with --api agent says the Agent API has no keys" \
    grep -q "the Agent API has no idempotency keys" "$workdir/err"
run_ask test-key --idempotency-key "" "anything"
check "an empty --idempotency-key exits 2 (got $code)" [ "$code" -eq 2 ]

# The environment alone is enough: PERPLEXITY_BASE_URL instead of --base-url.
PERPLEXITY_API_KEY=test-key PERPLEXITY_BASE_URL="$url" "$ask" --poll-interval 0 --ca-file "$workdir/fast/ca.pem" \
    "How many moons has Mars?" >"$workdir/out" 2>"$workdir/err"
code=$?
check "PERPLEXITY_BASE_URL is used (got $code: $(cat "$workdir/err"))" [ "$code" -eq 0 ]

# PERPLEXITY_LOG turns on the library's event logger, through options_from_environment, never showing the key.
export PERPLEXITY_LOG=debug
run_ask test-key "How many moons has Mars?"
check "PERPLEXITY_LOG=debug still exits 0 (got $code: $err)" [ "$code" -eq 0 ]
check "debug logs each request" grep -q "^perplexity request_sent POST /async/chat/completions attempt=1" "$workdir/err"
check "debug logs each response with its latency" \
    grep -Eq "^perplexity response_received GET /async/chat/completions/[^ ]+ job=[^ ]+ attempt=1 http_status=200 latency_ms=[0-9]" \
    "$workdir/err"
check "debug logs the creation" grep -q "^perplexity job_created job=.* status=CREATED" "$workdir/err"
check "debug logs the status changes" grep -q "^perplexity job_status_changed job=.* status=COMPLETED" "$workdir/err"
check "the log never shows the key" bash -c "! grep -q 'test-key' '$workdir/err'"
export PERPLEXITY_LOG=info
run_ask test-key "How many moons has Mars?"
check "info logs the status changes" grep -q "^perplexity job_status_changed" "$workdir/err"
check "info leaves out each request" bash -c "! grep -q 'request_sent' '$workdir/err'"
export PERPLEXITY_LOG=chatty
run_ask test-key "How many moons has Mars?"
check "an unknown PERPLEXITY_LOG is named and logging stays off" \
    bash -c "grep -q 'PERPLEXITY_LOG=\"chatty\" is not one of off, info, debug' '$workdir/err' && ! grep -q '^perplexity ' '$workdir/err'"
unset PERPLEXITY_LOG

"$ask" --help >"$workdir/out" 2>"$workdir/err"
code=$?
check "--help exits 0 (got $code)" [ "$code" -eq 0 ]
check "--help lists every exit code" grep -q "5 interrupted" "$workdir/out"
check "--help lists the environment" grep -q "PERPLEXITY_BASE_URL" "$workdir/out"
check "--help lists PERPLEXITY_LOG" grep -q "PERPLEXITY_LOG" "$workdir/out"
check "--help lists the flags" grep -q -- "--show-thinking" "$workdir/out"
check "--help lists --idempotency-key" grep -q -- "--idempotency-key KEY" "$workdir/out"
check "--help lists the Agent API flags" grep -q -- "--cancel-on-abandon" "$workdir/out"
check "--help lists the Agent API exit codes" grep -q "6 --api agent: the response was" "$workdir/out"

"$ask" --no-such-flag "question" >"$workdir/out" 2>"$workdir/err"
code=$?
check "an unknown option exits 2 (got $code)" [ "$code" -eq 2 ]
check "an unknown option is named" grep -q "unknown option --no-such-flag" "$workdir/err"

PERPLEXITY_API_KEY= "$ask" "anything" >"$workdir/out" 2>"$workdir/err"
code=$?
check "no API key exits 2 (got $code)" [ "$code" -eq 2 ]
check "no API key says so" grep -q "PERPLEXITY_API_KEY is not set" "$workdir/err"

"$ask" >"$workdir/out" 2>"$workdir/err"
code=$?
check "no question exits 2" [ "$code" -eq 2 ]

finish

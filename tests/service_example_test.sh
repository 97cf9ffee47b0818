#!/usr/bin/env bash
# Runs the `service` example between curl and a real perplexity-sim process: questions answered and
# failed, the HTTP errors, the in-flight limit, a clean stop with jobs still being waited on, and a crash
# and restart on a --ledger.
#   service_example_test.sh SERVICE_BINARY SIM_BINARY
set -uo pipefail
service=$1
sim=$2
source "$(dirname "$0")/example_lib.sh"

start_service() {  # start_service URL_VARIABLE DIR SIM_URL ARGS...: sets URL_VARIABLE, service_pid
    local variable=$1 dir=$2 sim_url=$3
    shift 3
    # Emptied here, not only by the background process's redirection, which may come after the first
    # look: a restart in the same directory must not read the line of the service before it.
    : >"$dir/service.out"
    PERPLEXITY_API_KEY=test-key "$service" --listen 127.0.0.1:0 --base-url "$sim_url" --ca-file "$dir/ca.pem" \
        --poll-interval 50 "$@" >"$dir/service.out" 2>"$dir/service.err" &
    service_pid=$!
    pids+=($service_pid)
    if ! wait_for 20 grep -q "^listening on http://127.0.0.1:[0-9]*$" "$dir/service.out"; then
        echo "service did not start: $(cat "$dir/service.err")" >&2
        return 1
    fi
    printf -v "$variable" "%s" "$(sed -n "1s/^listening on //p" "$dir/service.out")"
}
request() {  # request METHOD PATH [BODY [HEADER]]: sets status and body
    local args=(-s -o "$workdir/body" -w '%{http_code}' -X "$1")
    [ $# -ge 3 ] && args+=(-H 'content-type: application/json' --data-binary "$3")
    [ $# -ge 4 ] && args+=(-H "$4")
    status=$(curl "${args[@]}" "$svc$2")
    body=$(cat "$workdir/body")
}
id_of() { sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$1"; }
accepted_as() { [ "$status" = 202 ] && [ "$(id_of "$body")" = "$1" ]; }  # accepted_as ID: the last answer
has_status() {  # has_status ID STATUS: GET shows STATUS
    request GET "/questions/$1"
    grep -q "\"status\":\"$2\"" <<<"$body"
}

d="$workdir/fast"
start_simulator url "$d" --in-progress-ms 200 || exit 1
start_service svc "$d" "$url" --max-body 1024 || exit 1

request GET /healthz
check "healthz answers 200 (got $status)" [ "$status" = 200 ]
check "healthz says ok" grep -q '"status":"ok"' <<<"$body"

request POST /questions '{"question": "How many moons has Mars?"}'
check "a question is accepted with 202 (got $status: $body)" [ "$status" = 202 ]
mars=$(id_of "$body")
check "the 202 carries the job id" [ -n "$mars" ]
request POST /questions '{"question": "please [[fail]]"}'
check "a failing question is accepted too (got $status)" [ "$status" = 202 ]
failing=$(id_of "$body")

check "the question completes" wait_for 30 has_status "$mars" COMPLETED
request GET "/questions/$mars"
check "its answer is about the question" grep -q '"answer":"Simulated answer to \\"How many moons has Mars?\\"' <<<"$body"
check "the failing question fails" wait_for 30 has_status "$failing" FAILED
request GET "/questions/$failing"
check "with the job's error message" grep -q '"error":"Internal error while processing request"' <<<"$body"

request POST /questions '{"question": "same"}' 'Idempotency-Key: key-1'
first=$(id_of "$body")
request POST /questions '{"question": "same"}' 'Idempotency-Key: key-1'
check "a repeated POST with the same Idempotency-Key gets the same job" [ "$(id_of "$body")" = "$first" ]

request GET /questions/no-such-job
check "an unknown id is 404 (got $status)" [ "$status" = 404 ]
request POST /questions '{"question": '
check "bad JSON is 400 (got $status)" [ "$status" = 400 ]
check "bad JSON says so" grep -q "not JSON" <<<"$body"
request POST /questions '{"text": "no question"}'
check "JSON without a question is 400 (got $status)" [ "$status" = 400 ]
request POST /questions "{\"question\": \"$(head -c 2000 /dev/zero | tr '\0' x)\"}"
check "a body over --max-body is 413 (got $status)" [ "$status" = 413 ]
request DELETE "/questions/$mars"
check "a wrong method is 405 (got $status)" [ "$status" = 405 ]
request GET /elsewhere
check "an unknown path is 404 (got $status)" [ "$status" = 404 ]
kill -TERM "$service_pid"
wait "$service_pid"
check "SIGTERM stops the service with 0" [ $? -eq 0 ]
stop_simulator "$d"
check "the API saw one job per distinct question (got $sim_jobs)" [ "$sim_jobs" = 3 ]

# Jobs that run for minutes: the in-flight limit holds, and a stop does not wait for them.
d="$workdir/slow"
start_simulator url "$d" --in-progress-ms 600000 || exit 1
start_service svc "$d" "$url" --max-in-flight 2 || exit 1
request POST /questions '{"question": "one"}' 'Idempotency-Key: key-one'
check "first slow question accepted (got $status)" [ "$status" = 202 ]
one=$(id_of "$body")
request POST /questions '{"question": "one"}' 'Idempotency-Key: key-one'
check "a repeated POST is accepted with the same job (got $status: $body)" accepted_as "$one"
request GET /healthz
check "a repeated POST does not start a second wait" grep -q '"in_flight":1,' <<<"$body"
request POST /questions '{"question": "two"}'
check "second slow question accepted (got $status)" [ "$status" = 202 ]
request POST /questions '{"question": "three"}'
check "a question over --max-in-flight is 503 (got $status)" [ "$status" = 503 ]
request GET /healthz
check "healthz counts the jobs in flight" grep -q '"in_flight":2' <<<"$body"
kill -INT "$service_pid"
check "SIGINT stops the service while jobs are waited on" wait_for 10 bash -c "! kill -0 $service_pid"
wait "$service_pid"
check "and it exits 0" [ $? -eq 0 ]

# Connections are bounded too: with one held open, the next is closed without an answer.
start_service svc "$d" "$url" --max-connections 1 || exit 1
port=${svc##*:}
exec 3<>"/dev/tcp/127.0.0.1/$port"
request GET /healthz
check "a connection over --max-connections is closed (got $status)" [ "$status" = 000 ]
exec 3>&-
healthy() { request GET /healthz && [ "$status" = 200 ]; }
check "once it is closed, the next connection is served" wait_for 10 healthy
kill -TERM "$service_pid"
wait "$service_pid"

# --api agent: the questions are Agent API background responses.
d="$workdir/agent"
start_simulator url "$d" --in-progress-ms 200 || exit 1
start_service svc "$d" "$url" --api agent || exit 1
request POST /questions '{"question": "How many moons has Mars?"}'
check "an agent question is accepted with 202 (got $status: $body)" [ "$status" = 202 ]
mars=$(id_of "$body")
check "the 202 carries the response id" grep -q '^resp_' <<<"$mars"
request POST /questions '{"question": "please [[fail]]"}'
failing=$(id_of "$body")
check "the agent question completes" wait_for 30 has_status "$mars" completed
request GET "/questions/$mars"
check "its answer is about the question (agent)" grep -q '"answer":"Simulated answer to \\"How many moons has Mars?\\"' <<<"$body"
check "the failing agent question fails" wait_for 30 has_status "$failing" failed
request GET "/questions/$failing"
check "with the response's error message" grep -q '"error":"Internal error while processing request"' <<<"$body"
request POST /questions '{"question": "same"}' 'Idempotency-Key: agent-key-1'
first=$(id_of "$body")
request POST /questions '{"question": "same"}' 'Idempotency-Key: agent-key-1'
check "a repeated POST with the same Idempotency-Key gets the same response (agent)" \
    [ -n "$first" ] && [ "$(id_of "$body")" = "$first" ]
check "the keyed question completes" wait_for 30 has_status "$first" completed
request POST /questions '{"question": "cancel me"}'
cancelled=$(id_of "$body")
curl -s -X POST --cacert "$d/ca.pem" -H "Authorization: Bearer test-key" \
    "$url/v1/responses/$cancelled/cancel" >/dev/null
check "a response cancelled on the server shows cancelled" wait_for 30 has_status "$cancelled" cancelled
kill -TERM "$service_pid"
wait "$service_pid"
check "SIGTERM stops the agent service with 0" [ $? -eq 0 ]
stop_simulator "$d"
check "the API saw one response per distinct question (got $sim_responses)" [ "$sim_responses" = 4 ]
check "and no Sonar job (got $sim_jobs)" [ "$sim_jobs" = 0 ]
"$service" --preset medium 2>/dev/null
check "--preset without --api agent exits 2" [ $? -eq 2 ]

# --ledger: a crash (SIGKILL) with jobs in progress, and a restart on the same ledger. The ids handed
# out before still answer, as running and then as ended, and no job is created twice: not the running
# ones, not the one whose create was still waiting for its turn (its POST never answered; the client
# repeats it with its Idempotency-Key), not a repeated POST of an id given before the crash.
d="$workdir/ledger"
start_simulator url "$d" --in-progress-ms 4000 || exit 1
start_service svc "$d" "$url" --ledger "$d/ledger.db" --creates-per-minute 120 || exit 1
request POST /questions '{"question": "answered before the crash"}'
before=$(id_of "$body")
check "a question is accepted with --ledger (got $status: $body)" [ "$status" = 202 ]
check "and completes" wait_for 30 has_status "$before" COMPLETED
request POST /questions '{"question": "running at the crash"}' 'Idempotency-Key: ledger-key-1'
running=$(id_of "$body")
request POST /questions '{"question": "failing after the crash [[fail]]"}'
failing=$(id_of "$body")
check "two more questions accepted (got $running and $failing)" [ -n "$running" ] && [ -n "$failing" ]
# With one create every half second, this one waits for its turn, recorded but not yet sent.
curl -s -o /dev/null -X POST -H 'content-type: application/json' -H 'Idempotency-Key: ledger-key-2' \
    --data-binary '{"question": "never answered"}' "$svc/questions" &
pids+=($!)
sleep 0.2
kill -KILL "$service_pid"
wait "$service_pid" 2>/dev/null
start_service svc "$d" "$url" --ledger "$d/ledger.db" || exit 1
request GET "/questions/$running"
check "after the restart an id handed out before answers (got $status: $body)" [ "$status" = 200 ]
check "as still running" grep -q '"status":"\(CREATED\|IN_PROGRESS\)"' <<<"$body"
check "with its question" grep -q '"question":"running at the crash"' <<<"$body"
request GET "/questions/$before"
check "a question answered before the crash answers from the ledger" \
    grep -q '"status":"COMPLETED".*"answer":"Simulated answer to \\"answered before the crash\\"' <<<"$body"
request POST /questions '{"question": "running at the crash"}' 'Idempotency-Key: ledger-key-1'
check "a repeated POST after the restart gets the job made before it (got $status: $body)" accepted_as "$running"
request POST /questions '{"question": "never answered"}' 'Idempotency-Key: ledger-key-2'
unanswered=$(id_of "$body")
check "a POST repeated with the key of a create cut short is accepted (got $status: $body)" [ "$status" = 202 ]
check "the running question completes after the restart" wait_for 30 has_status "$running" COMPLETED
request GET "/questions/$running"
check "with its answer" grep -q '"answer":"Simulated answer to \\"running at the crash\\"' <<<"$body"
check "the failing question fails after the restart" wait_for 30 has_status "$failing" FAILED
check "the question cut short completes" wait_for 30 has_status "$unanswered" COMPLETED
"$service" --listen 127.0.0.1:0 --ledger "$d/ledger.db" >/dev/null 2>"$d/second.err"
code=$?
check "a second service on the same ledger exits 1 (got $code)" [ "$code" -eq 1 ]
check "and says the ledger is in use" grep -q "in use by another process" "$d/second.err"
kill -TERM "$service_pid"
wait "$service_pid"
check "SIGTERM stops the service with --ledger with 0" [ $? -eq 0 ]
stop_simulator "$d"
check "each question made one job, across the crash (got $sim_jobs)" [ "$sim_jobs" = 4 ]

# --api agent with --ledger: the response ids handed out before a crash answer after the restart.
d="$workdir/agent-ledger"
start_simulator url "$d" --in-progress-ms 4000 || exit 1
start_service svc "$d" "$url" --api agent --ledger "$d/ledger.db" || exit 1
request POST /questions '{"question": "agent before the crash"}' 'Idempotency-Key: agent-ledger-1'
running=$(id_of "$body")
check "an agent question is accepted with --ledger (got $status: $body)" grep -q '^resp_' <<<"$running"
kill -KILL "$service_pid"
wait "$service_pid" 2>/dev/null
start_service svc "$d" "$url" --api agent --ledger "$d/ledger.db" || exit 1
request GET "/questions/$running"
check "after the restart the response answers as still running (got $status: $body)" \
    grep -q '"status":"\(queued\|in_progress\)"' <<<"$body"
request POST /questions '{"question": "agent before the crash"}' 'Idempotency-Key: agent-ledger-1'
check "a repeated agent POST after the restart gets the same response (got $status: $body)" accepted_as "$running"
check "the response completes after the restart" wait_for 30 has_status "$running" completed
kill -TERM "$service_pid"
wait "$service_pid"
stop_simulator "$d"
check "one response, across the crash (got $sim_responses)" [ "$sim_responses" = 1 ]

"$service" --help >"$workdir/help"
check "--help lists the endpoints" grep -q "GET /questions/ID" "$workdir/help"
"$service" --listen nonsense 2>/dev/null
check "a bad --listen exits 2" [ $? -eq 2 ]

finish

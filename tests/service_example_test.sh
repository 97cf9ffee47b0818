#!/usr/bin/env bash
# Runs the `service` example between curl and a real perplexity-sim process: questions answered and
# failed, the HTTP errors, the in-flight limit, a clean stop with jobs still being waited on, a crash
# and restart on a --ledger, and the bearer token (--token-file, PERPLEXITY_SERVICE_TOKEN) that every
# request but GET /healthz must carry, and without which the service listens only on loopback.
#   service_example_test.sh SERVICE_BINARY SIM_BINARY
set -uo pipefail
service=$1
sim=$2
source "$(dirname "$0")/example_lib.sh"
unset PERPLEXITY_SERVICE_TOKEN  # the sections without a token must not pick one up from the caller

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
    if ! wait_for 20 grep -q "^listening on http://[][0-9a-f.:]*:[0-9]*$" "$dir/service.out"; then
        echo "service did not start: $(cat "$dir/service.err")" >&2
        return 1
    fi
    printf -v "$variable" "%s" "$(sed -n "1s/^listening on //p" "$dir/service.out")"
}
# Headers every request sends besides its own, such as the bearer token: curl arguments, (-H HEADER)...
auth=()
request() {  # request METHOD PATH [BODY [HEADER...]]: sets status and body; the headers go to $workdir/headers
    local args=(-s -o "$workdir/body" -D "$workdir/headers" -w '%{http_code}' -X "$1" "${auth[@]}")
    [ $# -ge 3 ] && args+=(-H 'content-type: application/json' --data-binary "$3")
    for header in "${@:4}"; do
        args+=(-H "$header")
    done
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

# Only callers who belong: with a token, every request but GET /healthz needs "Authorization: Bearer
# TOKEN" and without it gets 401 and starts nothing. The token is never printed, whatever happens.
token=tok-5f1e9a77c3d2b4088e6a1f0d9c27b3e4
not_printed() {  # not_printed FILE...: none of the files holds the token
    ! grep -qF -- "$token" "$@"
}
d="$workdir/auth"
start_simulator url "$d" --in-progress-ms 200 || exit 1
printf '%s \t\r\nsecond line, not part of the token\n' "$token" >"$d/token"
start_service svc "$d" "$url" --token-file "$d/token" || exit 1
request POST /questions '{"question": "without a token"}'
check "with --token-file a POST without Authorization is 401 (got $status: $body)" [ "$status" = 401 ]
check "with a JSON error" grep -q '^{"error":"[^"]*"}$' <<<"$body"
check "and www-authenticate: Bearer" grep -qi '^www-authenticate: Bearer' "$workdir/headers"
request POST /questions '{"question": "with a wrong token"}' "Authorization: Bearer ${token}x"
check "a POST with a longer wrong token is 401 (got $status)" [ "$status" = 401 ]
check "which is called invalid" grep -qi '^www-authenticate: Bearer error="invalid_token"' "$workdir/headers"
request POST /questions '{"question": "with a wrong token"}' "Authorization: Bearer ${token%?}"
check "a POST with a prefix of the token is 401 (got $status)" [ "$status" = 401 ]
request POST /questions '{"question": "with a wrong token"}' "Authorization: Bearer ${token%?}0"
check "a POST with the last character wrong is 401 (got $status)" [ "$status" = 401 ]
request POST /questions '{"question": "malformed"}' "Authorization: $token"
check "a token without the Bearer scheme is 401 (got $status)" [ "$status" = 401 ]
request POST /questions '{"question": "malformed"}' "Authorization: Basic $token"
check "a token with another scheme is 401 (got $status)" [ "$status" = 401 ]
request POST /questions '{"question": "malformed"}' "Authorization: Bearer"
check "Bearer without a token is 401 (got $status)" [ "$status" = 401 ]
request POST /questions '{"question": "twice"}' "Authorization: Bearer $token" "Authorization: Bearer x"
check "two Authorization headers are 401 (got $status)" [ "$status" = 401 ]
request GET /healthz
check "healthz needs no token (got $status)" [ "$status" = 200 ]
check "and shows only the count in flight: none started ($body)" [ "$body" = '{"status":"ok","in_flight":0}' ]
request GET /questions/no-such-job
check "GET /questions/ID without a token is 401, not 404 (got $status)" [ "$status" = 401 ]
request GET /elsewhere
check "an unknown path without a token is 401 (got $status)" [ "$status" = 401 ]
request POST /healthz
check "healthz with another method than GET needs the token too (got $status)" [ "$status" = 401 ]
auth=(-H "Authorization: Bearer $token")
request POST /healthz
check "and with it is 405 (got $status)" [ "$status" = 405 ]
request POST /questions '{"question": "with the token"}'
check "a POST with the token is accepted with 202 (got $status: $body)" [ "$status" = 202 ]
answered=$(id_of "$body")
check "the question with the token completes" wait_for 30 has_status "$answered" COMPLETED
request GET "/questions/$answered"
check "and GET with the token shows its answer" grep -q '"answer":"Simulated answer to \\"with the token\\"' <<<"$body"
auth=(-H "authorization: bearer $token")
request GET "/questions/$answered"
check "the scheme is matched in any case (got $status)" [ "$status" = 200 ]
auth=()
request GET "/questions/$answered"
check "GET /questions/ID without the token is 401 (got $status)" [ "$status" = 401 ]
check "and shows nothing of the question" bash -c '! grep -q "with the token" <<<"$1"' _ "$body"
request GET "/questions/$answered" "" "Authorization: Bearer wrong"
check "GET /questions/ID with a wrong token is 401 (got $status)" [ "$status" = 401 ]
kill -TERM "$service_pid"
wait "$service_pid"
check "SIGTERM stops the service with a token with 0" [ $? -eq 0 ]
check "the token is not in the service's output" not_printed "$d/service.out" "$d/service.err"
check "the refused requests are logged as 401" grep -q "^service: POST /questions -> 401$" "$d/service.err"

# The token from PERPLEXITY_SERVICE_TOKEN; --token-file, when given, wins over it.
export PERPLEXITY_SERVICE_TOKEN=$token
start_service svc "$d" "$url" || exit 1
unset PERPLEXITY_SERVICE_TOKEN
request POST /questions '{"question": "without a token"}'
check "with PERPLEXITY_SERVICE_TOKEN a POST without Authorization is 401 (got $status)" [ "$status" = 401 ]
auth=(-H "Authorization: Bearer $token")
request POST /questions '{"question": "token from the environment"}'
check "a POST with the token from the environment is 202 (got $status: $body)" [ "$status" = 202 ]
from_env=$(id_of "$body")
check "and completes" wait_for 30 has_status "$from_env" COMPLETED
auth=()
kill -TERM "$service_pid"
wait "$service_pid"
check "the token from the environment is not in the service's output" not_printed "$d/service.out" "$d/service.err"
printf 'file-token\n' >"$d/other-token"
export PERPLEXITY_SERVICE_TOKEN=$token
start_service svc "$d" "$url" --token-file "$d/other-token" || exit 1
unset PERPLEXITY_SERVICE_TOKEN
request POST /questions '{"question": "the environment token"}' "Authorization: Bearer $token"
check "with --token-file the environment's token is 401 (got $status)" [ "$status" = 401 ]
request GET /questions/no-such-job "" "Authorization: Bearer file-token"
check "and the file's is the one (got $status)" [ "$status" = 404 ]
kill -TERM "$service_pid"
wait "$service_pid"

# Beyond loopback only with a token. Without one: exit 2 before anything listens (192.0.2.1 cannot even
# be bound here: the refusal comes first), saying how to give a token.
# (timeout: a service that wrongly starts fails the checks instead of hanging the test)
for listen in 0.0.0.0:0 '[::]:0' 192.0.2.1:8080 '[::ffff:127.0.0.1]:0'; do
    PERPLEXITY_API_KEY=test-key timeout 20 "$service" --listen "$listen" --base-url "$url" \
        --ca-file "$d/ca.pem" >"$d/refused.out" 2>"$d/refused.err"
    code=$?
    check "--listen $listen without a token exits 2 (got $code)" [ "$code" -eq 2 ]
    check "and listens nowhere" [ ! -s "$d/refused.out" ]
    check "and says it needs a token" grep -qF "refusing to listen on $listen without a token" "$d/refused.err"
    check "and how to give one" grep -q -- "--token-file FILE, or set PERPLEXITY_SERVICE_TOKEN" "$d/refused.err"
done
start_service svc "$d" "$url" --listen 127.0.0.2:0 || exit 1
request GET /questions/no-such-job
check "all of 127.0.0.0/8 is loopback: 127.0.0.2 needs no token (got $status)" [ "$status" = 404 ]
kill -TERM "$service_pid"
wait "$service_pid"
if grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null; then
    start_service svc "$d" "$url" --listen '[::1]:0' || exit 1
    request GET /questions/no-such-job
    check "::1 needs no token (got $status)" [ "$status" = 404 ]
    kill -TERM "$service_pid"
    wait "$service_pid"
fi
start_service svc "$d" "$url" --listen 0.0.0.0:0 --token-file "$d/token" || exit 1
check "with a token it listens on 0.0.0.0 ($svc)" grep -q '^http://0\.0\.0\.0:[0-9]*$' <<<"$svc"
svc="http://127.0.0.1:${svc##*:}"
request GET /healthz
check "healthz answers on 0.0.0.0 without a token (got $status)" [ "$status" = 200 ]
request POST /questions '{"question": "on every interface"}'
check "a POST on 0.0.0.0 without the token is 401 (got $status)" [ "$status" = 401 ]
request POST /questions '{"question": "on every interface"}' "Authorization: Bearer $token"
check "a POST on 0.0.0.0 with the token is 202 (got $status)" [ "$status" = 202 ]
kill -TERM "$service_pid"
wait "$service_pid"
check "the token is not in the output on 0.0.0.0" not_printed "$d/service.out" "$d/service.err"
stop_simulator "$d"
check "the API saw only the questions that carried the token (got $sim_creates creates)" [ "$sim_creates" = 3 ]
check "and made a job for each (got $sim_jobs)" [ "$sim_jobs" = 3 ]

# The token comes from a file or the environment, never from the command line; a bad one stops the start.
"$service" --token "$token" >"$d/usage.out" 2>"$d/usage.err"
check "--token is a usage error (exit 2)" [ $? -eq 2 ]
check "which says to use --token-file or PERPLEXITY_SERVICE_TOKEN" \
    grep -q -- "--token-file FILE, or set PERPLEXITY_SERVICE_TOKEN" "$d/usage.err"
"$service" "--token=$token" >>"$d/usage.out" 2>>"$d/usage.err"
check "--token=TOKEN too (exit 2)" [ $? -eq 2 ]
check "without printing the token" not_printed "$d/usage.out" "$d/usage.err"
"$service" --token-file "$d/missing" 2>"$d/bad.err"
check "an unreadable --token-file exits 2" [ $? -eq 2 ]
check "saying it cannot be read" grep -q "cannot read the token file $d/missing" "$d/bad.err"
printf ' \n%s\n' "$token" >"$d/blank"
"$service" --token-file "$d/blank" 2>"$d/bad.err"
check "a token file with an empty first line exits 2" [ $? -eq 2 ]
check "saying the token is empty" grep -q "has an empty first line; the token must not be empty" "$d/bad.err"
printf '%s %s\n' "$token" "$token" >"$d/spaced"
"$service" --token-file "$d/spaced" 2>>"$d/bad.err"
check "a token with a space in it exits 2" [ $? -eq 2 ]
PERPLEXITY_SERVICE_TOKEN='' "$service" 2>>"$d/bad.err"
check "an empty PERPLEXITY_SERVICE_TOKEN exits 2" [ $? -eq 2 ]
check "saying so" grep -q "PERPLEXITY_SERVICE_TOKEN is empty" "$d/bad.err"
check "no error prints the token" not_printed "$d/bad.err"

"$service" --help >"$workdir/help"
check "--help lists the endpoints" grep -q "GET /questions/ID" "$workdir/help"
"$service" --listen nonsense 2>/dev/null
check "a bad --listen exits 2" [ $? -eq 2 ]

finish

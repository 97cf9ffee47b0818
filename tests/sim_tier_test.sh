#!/usr/bin/env bash
# perplexity-sim's create rate limit (--tier, --creates-per-minute, --create-burst) and GET /sim/stats,
# driven with curl against real perplexity-sim processes.
#   sim_tier_test.sh SIM_BINARY
#
# Timing is driven by the hints the simulator gives (a create sent after waiting its retry-after-ms must
# be admitted), and the checks that do not wait use a bucket that drains one create a minute, so nothing
# in them depends on how fast this machine runs. Only two checks depend on speed, with wide margins: that
# ten creates sent back to back on one connection are not all 500 ms apart, and that a client obeying the
# hints achieves at least 60% of the rate.
set -uo pipefail
sim=$1
source "$(dirname "$0")/example_lib.sh"

sonar_body='{"request": {"model": "sonar", "messages": [{"role": "user", "content": "How many moons has Mars?"}]}}'
agent_body='{"model": "perplexity/sonar", "input": "How many moons has Mars?", "background": true}'

# post URL PATH BODY [KEY]: one POST; sets status, hint_ms and hint_s (the retry headers, empty when
# absent) and leaves the answer's body in $workdir/body.
post() {
    status=$(curl -s -o "$workdir/body" -D "$workdir/head" -w '%{http_code}' \
        -H "Authorization: Bearer ${4:-test-key}" -H 'Content-Type: application/json' -d "$3" "$1$2")
    tr -d '\r' <"$workdir/head" >"$workdir/head.txt"
    hint_ms=$(sed -n 's/^retry-after-ms: *//Ip' "$workdir/head.txt")
    hint_s=$(sed -n 's/^retry-after: *//Ip' "$workdir/head.txt")
}
create() { post "$1" /async/chat/completions "$sonar_body" "${2:-test-key}"; }

# stat URL NAME: one field of GET /sim/stats (a number, or null).
stat() {
    curl -s "$1/sim/stats" | sed -n "s/.*\"$2\":\([0-9a-z]*\).*/\1/p"
}

# sleep_ms MS
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

is_envelope() {  # is_envelope FILE: the API's 429 error envelope
    grep -q '^{"error":{"message":"Rate limit exceeded[^"]*","type":"rate_limit_exceeded","code":429}}$' "$1"
}
# hints_agree: retry-after-ms is a positive integer and retry-after is the same in whole seconds, rounded up
hints_agree() {
    [[ "$hint_ms" =~ ^[0-9]+$ && "$hint_s" =~ ^[0-9]+$ ]] && [ "$hint_ms" -ge 1 ] &&
        [ "$hint_s" -eq $(((hint_ms + 999) / 1000)) ]
}
# refused_within LOW HIGH: the last answer was the tier's 429, its hints agreeing, LOW < retry-after-ms <= HIGH
refused_within() {
    [ "$status" = 429 ] && is_envelope "$workdir/body" && hints_agree && [ "$hint_ms" -gt "$1" ] &&
        [ "$hint_ms" -le "$2" ]
}

# --- 120 creates a minute, a bucket of 1: one create every 500 ms --------------------------------------
start_simulator fast "$workdir/fast" --http --creates-per-minute 120 --create-burst 1 || exit 1
check "the limit in force is reported" [ "$(stat "$fast" creates_per_minute)/$(stat "$fast" create_burst)" = 120/1 ]

# Ten creates back to back over one connection: the first is admitted (the bucket starts empty), the
# rest are refused until 500 ms have passed since it.
curl -s -H "Authorization: Bearer test-key" -H 'Content-Type: application/json' -d "$sonar_body" \
    -o "$workdir/burst_#1" -w '%{http_code} %header{retry-after-ms} %header{retry-after}\n' \
    "$fast/async/chat/completions?n=[1-10]" >"$workdir/burst"
sent=10
admitted=$(grep -c '^200 ' "$workdir/burst")
refused=$(grep -c '^429 ' "$workdir/burst")
check "each of the burst's creates is answered 200 or 429 ($(tr '\n' ' ' <"$workdir/burst"))" \
    [ $((admitted + refused)) -eq "$sent" ]
check "the first create of the burst is admitted" bash -c "head -n 1 '$workdir/burst' | grep -q '^200 '"
check "creates faster than the rate are refused (got $refused 429s)" [ "$refused" -ge 1 ]
bad_hints=0
for i in $(seq "$sent"); do
    read -r code hint_ms hint_s < <(sed -n "${i}p" "$workdir/burst")
    if [ "$code" = 429 ]; then
        { is_envelope "$workdir/burst_$i" && hints_agree && [ "$hint_ms" -le 500 ]; } || bad_hints=$((bad_hints + 1))
        last_hint=$hint_ms
    fi
done
check "every 429 has the error envelope, retry-after-ms in 1..500 and retry-after in whole seconds" \
    [ "$bad_hints" -eq 0 ]

# A create that waits exactly as long as the last hint said is admitted.
sleep_ms "${last_hint:-500}"
create "$fast"
check "a create after waiting the hinted retry-after-ms is admitted (got $status)" [ "$status" = 200 ]
admitted=$((admitted + 1))
sent=$((sent + 1))

# A client that obeys every hint: four more admitted creates, each refused first and sent again after its
# retry-after-ms.
for _ in 1 2 3 4; do
    for _attempt in $(seq 20); do
        create "$fast"
        sent=$((sent + 1))
        if [ "$status" = 200 ]; then
            admitted=$((admitted + 1))
            break
        fi
        refused=$((refused + 1))
        hints_agree || break
        sleep_ms "$hint_ms"
    done
done
check "the stats count every create received ($sent)" [ "$(stat "$fast" creates_received)" = "$sent" ]
check "the stats count every 429 ($refused)" [ "$(stat "$fast" creates_rate_limited)" = "$refused" ]
check "the stats count every admitted create ($admitted)" [ "$(stat "$fast" admitted_creates)" = "$admitted" ]
check "a refused create makes no job ($admitted jobs)" [ "$(stat "$fast" jobs_created)" = "$admitted" ]
span=$(stat "$fast" admitted_create_span_ms)
# With a bucket of 1, admitted creates are at least an interval apart, exactly, by the server's clock.
check "admitted creates are at least 500 ms apart (span $span ms for $admitted)" \
    [ "$span" -ge $(((admitted - 1) * 500)) ]
check "a client obeying the hints gets at least 60% of the rate (span $span ms for $admitted)" \
    [ "$span" -le $(((admitted - 1) * 500 * 10 / 6)) ]
requests=$(stat "$fast" requests)
stat "$fast" requests >/dev/null
check "reading the stats is not counted as a request" [ "$(stat "$fast" requests)" = "$requests" ]
check "the stats need no key, and only GET is served" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$fast/sim/stats")" = 405 ]
stop_simulator "$workdir/fast"
check "the closing line counts the creates refused by the tier" \
    grep -q " $refused creates refused by the tier, $admitted creates admitted spanning [0-9]* ms, 0 faults$" \
    "$workdir/fast/sim.log"

# --- one create a minute, a bucket of 2: nothing here can wait long enough to matter ------------------
start_simulator slow "$workdir/slow" --http --creates-per-minute 1 || exit 1
check "the bucket holds 2 creates by default" [ "$(stat "$slow" create_burst)" = 2 ]
keyed='{"request": {"model": "sonar", "messages": [{"role": "user", "content": "Keyed?"}]}, "idempotency_key": "k1"}'
post "$slow" /async/chat/completions "$keyed"
first_id=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$workdir/body")
check "a keyed create is admitted (got $status)" [ "$status" = 200 ]
post "$slow" /async/chat/completions "$keyed"
check "its replay is admitted into the bucket's second place, with the same job (got $status)" \
    bash -c "[ '$status' = 200 ] && grep -q '^{\"id\":\"$first_id\"' '$workdir/body'"
post "$slow" /async/chat/completions "$keyed"
check "a third replay overflows the bucket, as replays are create requests too: a 429 with the envelope \
and hints of up to a minute (got $status, retry-after-ms $hint_ms, retry-after $hint_s)" refused_within 30000 60000
previous=$hint_ms
growing=0
for _ in 1 2 3 4 5; do
    create "$slow"
    [ "$status" = 429 ] && [ "$hint_ms" -le "$previous" ] || growing=$((growing + 1))
    previous=$hint_ms
done
check "refused creates do not fill the bucket: the hint never grows" [ "$growing" -eq 0 ]
post "$slow" /v1/responses "$agent_body"
check "an Agent API create draws on the same bucket (got $status)" refused_within 30000 60000
post "$slow" /v1/agent "$agent_body"
check "so does /v1/agent (got $status)" refused_within 30000 60000
post "$slow" /async/chat/completions '{}'
check "the limit comes before validation: a malformed create gets the 429, not a 422 (got $status)" \
    refused_within 30000 60000
post "$slow" /v1/async/sonar "$sonar_body"
check "the docs' path family shares the limit (got $status)" refused_within 30000 60000
create "$slow" wrong-key
check "a create with a wrong key is a 401, not a 429 (got $status)" [ "$status" = 401 ]
check "gets are not limited" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer test-key' \
        "$slow/async/chat/completions/$first_id")" = 200 ]
check "lists are not limited" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer test-key' "$slow/async/chat/completions")" = 200 ]
check "two creates were admitted" [ "$(stat "$slow" admitted_creates)" = 2 ]
check "and made one job" [ "$(stat "$slow" jobs_created)" = 1 ]
check "ten were refused, the unauthorized one not among them" [ "$(stat "$slow" creates_rate_limited)" = 10 ]
check "the refused Agent API creates made no response" [ "$(stat "$slow" responses_created)" = 0 ]

# --- --tier: the contract's table -------------------------------------------------------------------
start_simulator tier0 "$workdir/tier0" --http --tier 0 || exit 1
check "--tier 0 is 5 creates a minute" [ "$(stat "$tier0" creates_per_minute)" = 5 ]
post "$tier0" /v1/responses "$agent_body"
check "tier 0: an Agent API create is admitted (got $status)" [ "$status" = 200 ]
create "$tier0"
check "tier 0: then a Sonar create (got $status)" [ "$status" = 200 ]
create "$tier0"
check "tier 0: a third create waits up to 12 s (got $status, retry-after-ms $hint_ms)" refused_within 6000 12000
start_simulator tier5 "$workdir/tier5" --http --tier 5 --create-burst 7 || exit 1
check "--tier 5 is 100 creates a minute, and takes --create-burst" \
    [ "$(stat "$tier5" creates_per_minute)/$(stat "$tier5" create_burst)" = 100/7 ]

# --- no limit: nothing is ever refused ---------------------------------------------------------------
start_simulator open "$workdir/open" --http || exit 1
curl -s -H "Authorization: Bearer test-key" -H 'Content-Type: application/json' -d "$sonar_body" \
    -o /dev/null -w '%{http_code}\n' "$open/async/chat/completions?n=[1-40]" >"$workdir/open_sonar"
curl -s -H "Authorization: Bearer test-key" -H 'Content-Type: application/json' -d "$agent_body" \
    -o /dev/null -w '%{http_code}\n' "$open/v1/responses?n=[1-20]" >"$workdir/open_agent"
check "without a limit 40 Sonar creates back to back are all admitted" \
    [ "$(grep -c '^200$' "$workdir/open_sonar")" = 40 ]
check "and 20 Agent API creates" [ "$(grep -c '^200$' "$workdir/open_agent")" = 20 ]
check "without a limit nothing is refused" [ "$(stat "$open" creates_rate_limited)" = 0 ]
check "all 60 creates count as admitted" [ "$(stat "$open" admitted_creates)" = 60 ]
check "without a limit none is reported" \
    [ "$(stat "$open" creates_per_minute)/$(stat "$open" create_burst)" = null/null ]

# --- the command line ----------------------------------------------------------------------------------
usage_error() {  # usage_error ARGS...: perplexity-sim refuses them with exit 2 before it listens
    timeout 10 "$sim" --http --port 0 "$@" >"$workdir/out" 2>"$workdir/err"
    [ $? -eq 2 ] && grep -q "^perplexity-sim: " "$workdir/err"
}
check "--tier 6 is refused" usage_error --tier 6
check "--creates-per-minute 0 is refused" usage_error --creates-per-minute 0
check "--tier and --creates-per-minute together are refused" usage_error --tier 1 --creates-per-minute 10
check "--create-burst without a limit is refused" usage_error --create-burst 3
check "--create-burst 0 is refused" usage_error --creates-per-minute 60 --create-burst 0
"$sim" --help >"$workdir/out"
check "--help lists the options" \
    bash -c "grep -q -- '--tier T' '$workdir/out' && grep -q -- '--creates-per-minute N' '$workdir/out' &&
        grep -q -- '--create-burst N' '$workdir/out' && grep -q '/sim/stats' '$workdir/out'"

finish

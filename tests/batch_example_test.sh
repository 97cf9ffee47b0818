#!/usr/bin/env bash
# Runs the `batch` example against real perplexity-sim processes: answers and statuses, input errors,
# and resuming from its journal (the library's ledger) after SIGINT and after SIGKILL without creating
# any job twice. The journal is read only through what batch does with it, never by its format.
#   batch_example_test.sh BATCH_BINARY SIM_BINARY
set -uo pipefail
batch=$1
sim=$2
source "$(dirname "$0")/example_lib.sh"

lines_for() { grep -c "^{\"id\":\"$2\"," "$1"; }  # lines_for FILE ID
each_once() {  # each_once FILE N: q1..qN each have exactly one line
    local i
    for i in $(seq "$2"); do
        [ "$(lines_for "$1" "q$i")" -eq 1 ] || { echo "q$i: $(lines_for "$1" "q$i") lines in $1"; return 1; }
    done
}
said() { grep -c "^batch: q[0-9]*: $2" "$1" 2>/dev/null; }  # said ERR TEXT: progress lines saying it
has_said() { [ "$(said "$1" "$2")" -ge "$3" ]; }  # has_said ERR TEXT N
run_batch() {  # run_batch DIR URL ARGS...: runs in the foreground, sets code
    local dir=$1 url=$2
    shift 2
    PERPLEXITY_API_KEY=test-key "$batch" --base-url "$url" --ca-file "$dir/ca.pem" --in "$dir/in.jsonl" \
        --out "$dir/out.jsonl" --poll-interval 50 "$@" >"$dir/stdout" 2>"$dir/err"
    code=$?
}

# 1. Ten questions, one failing: every id once, with its status; a rerun changes nothing.
d="$workdir/basic"
start_simulator url "$d" || exit 1
questions "$d/in.jsonl" 10 q7
run_batch "$d" "$url" --concurrency 3
check "a batch with a failed job exits 1 (got $code: $(tail -3 "$d/err"))" [ "$code" -eq 1 ]
check "every id is in out exactly once" each_once "$d/out.jsonl" 10
check "out has nothing else" [ "$(wc -l <"$d/out.jsonl")" -eq 10 ]
check "q7 FAILED with the job's error message" \
    grep -q '^{"id":"q7","job_id":"[^"]*","status":"FAILED","error":"Internal error while processing request"}$' \
    "$d/out.jsonl"
check "the others COMPLETED with their own answer" \
    [ "$(grep -c '"status":"COMPLETED","answer":"Simulated answer to \\"question number [0-9]*\\"' "$d/out.jsonl")" -eq 9 ]
check "q3's answer is about q3" grep -q '^{"id":"q3",.*"answer":"Simulated answer to \\"question number 3\\"' "$d/out.jsonl"
check "the journal is kept next to out" [ -s "$d/out.jsonl.journal" ]
check "each question's job was created once" [ "$(said "$d/err" "created job ")" -eq 10 ]
check "plain progress lines when stderr is not a terminal" grep -q '^batch: q7: FAILED \[' "$d/err"
cp "$d/out.jsonl" "$d/out.before"
run_batch "$d" "$url"
check "a rerun of a finished batch exits 1 again (got $code)" [ "$code" -eq 1 ]
check "a rerun of a finished batch writes nothing" cmp -s "$d/out.jsonl" "$d/out.before"
# On a terminal (script(1) provides one), progress is a bar redrawn in place.
PERPLEXITY_API_KEY=test-key script -qec "'$batch' --base-url '$url' --ca-file '$d/ca.pem' \
    --in '$d/in.jsonl' --out '$d/out.jsonl'" /dev/null </dev/null >"$d/tty" 2>&1
check "a progress bar on a terminal" grep -q $'\r\033\\[K\\[#*\\] 10/10 done, 0 running, 1 failed' "$d/tty"
stop_simulator "$d"
check "ten jobs were created (got $sim_jobs)" [ "$sim_jobs" = 10 ]
check "ten creates were sent (got $sim_creates)" [ "$sim_creates" = 10 ]
# A crash between the journal's record of an outcome and the line in out: the line is written again
# from the journal, without a request (nothing listens at the base URL now).
grep -v -e '^{"id":"q3",' -e '^{"id":"q7",' "$d/out.before" >"$d/out.jsonl"
run_batch "$d" https://127.0.0.1:9
check "lost lines are rewritten from the journal (got $code: $(tail -3 "$d/err"))" [ "$code" -eq 1 ]
check "the rewritten lines are the lost ones" cmp -s <(sort "$d/out.jsonl") <(sort "$d/out.before")
check "and say where they came from" [ "$(grep -c '(from .*out.jsonl.journal)' "$d/err")" -eq 2 ]

# 2. Input errors name the file and line, before anything is sent.
d="$workdir/input"
mkdir -p "$d"
printf '{"id": "a", "question": "x"}\n\n{"id": "b", "question": \n' >"$d/in.jsonl"
PERPLEXITY_API_KEY=k "$batch" --in "$d/in.jsonl" --out "$d/out.jsonl" 2>"$d/err"
code=$?
check "malformed JSON exits 2 (got $code)" [ "$code" -eq 2 ]
check "malformed JSON names its line" grep -q "in.jsonl:3: not valid JSON" "$d/err"
printf '{"id": "a", "question": "x"}\n{"id": "b"}\n' >"$d/in.jsonl"
PERPLEXITY_API_KEY=k "$batch" --in "$d/in.jsonl" --out "$d/out.jsonl" 2>"$d/err"
check "a missing question is named" grep -q 'in.jsonl:2: "question" must be a non-empty string' "$d/err"
printf '{"id": "a", "question": "x"}\n{"id": "b", "question": "y"}\n{"id": "a", "question": "z"}\n' >"$d/in.jsonl"
PERPLEXITY_API_KEY=k "$batch" --in "$d/in.jsonl" --out "$d/out.jsonl" 2>"$d/err"
code=$?
check "a duplicate id exits 2 (got $code)" [ "$code" -eq 2 ]
check "a duplicate id names both lines" grep -q 'in.jsonl:3: duplicate id "a" (first on line 1)' "$d/err"
check "nothing is written after an input error" [ ! -s "$d/out.jsonl" ]
"$batch" --help >"$d/help"
check "--help exits 0 and lists the exit codes" grep -q "5 interrupted" "$d/help"
check "--help lists the environment" grep -q "PERPLEXITY_API_KEY" "$d/help"
"$batch" --in "$d/in.jsonl" --out "$d/out.jsonl" --concurrency 0 2>"$d/err"
check "a bad flag value exits 2" [ $? -eq 2 ]

# 3. SIGINT while jobs run (each takes 2 s): exit 5, then a rerun waits on the created jobs instead of
# creating them again.
d="$workdir/interrupt"
start_simulator url "$d" --in-progress-ms 2000 || exit 1
questions "$d/in.jsonl" 10
PERPLEXITY_API_KEY=test-key "$batch" --base-url "$url" --ca-file "$d/ca.pem" --in "$d/in.jsonl" \
    --out "$d/out.jsonl" --poll-interval 50 --concurrency 4 >/dev/null 2>"$d/err" &
batch_pid=$!
pids+=($batch_pid)
check "the first four jobs are created" wait_for 30 has_said "$d/err" "created job " 4
PERPLEXITY_API_KEY=test-key "$batch" --base-url "$url" --ca-file "$d/ca.pem" --in "$d/in.jsonl" \
    --out "$d/out.jsonl" >/dev/null 2>"$d/err2"
code=$?
check "a second run on the same files exits 2 (got $code)" [ "$code" -eq 2 ]
check "a second run on the same files says why" grep -q "in use by another batch run" "$d/err2"
kill -INT "$batch_pid"
wait "$batch_pid"
code=$?
check "SIGINT exits 5 (got $code: $(tail -3 "$d/err"))" [ "$code" -eq 5 ]
check "the interrupted run left questions unanswered" [ "$(wc -l <"$d/out.jsonl")" -lt 10 ]
journaled=$(said "$d/err" "created job ")
answered_before=$(grep -c . "$d/out.jsonl")
run_batch "$d" "$url" --concurrency 4
check "the rerun exits 0 (got $code: $(tail -3 "$d/err"))" [ "$code" -eq 0 ]
check "the rerun resumed the journaled jobs" [ "$(said "$d/err" "resuming job ")" -eq $((journaled - answered_before)) ]
keys_only=$(said "$d/err" "sending again with its recorded idempotency key")
check "every id is in out exactly once after the resume" each_once "$d/out.jsonl" 10
stop_simulator "$d"
check "no question was created twice (jobs: $sim_jobs)" [ "$sim_jobs" = 10 ]
check "journaled jobs were not sent again (creates: $sim_creates, unanswered keys: $keys_only)" \
    [ "$sim_creates" -le $((10 + keys_only)) ]

# 4. SIGKILL (a crash), in the window between the record of a create's key and the record of its job:
# with one create a second, the questions after the second have their keys recorded while they wait for
# their turn to be sent. The rerun sends those creates with the recorded keys (the API answers a key
# it knows with the job it made), and cuts the torn line the crash left in out.
d="$workdir/crash"
start_simulator url "$d" --in-progress-ms 2000 || exit 1
questions "$d/in.jsonl" 10
PERPLEXITY_API_KEY=test-key "$batch" --base-url "$url" --ca-file "$d/ca.pem" --in "$d/in.jsonl" \
    --out "$d/out.jsonl" --poll-interval 50 --concurrency 4 --creates-per-minute 60 >/dev/null 2>"$d/err" &
batch_pid=$!
pids+=($batch_pid)
check "jobs are created before the crash" wait_for 30 has_said "$d/err" "created job " 2
kill -KILL "$batch_pid"
wait "$batch_pid" 2>/dev/null
journaled=$(said "$d/err" "created job ")
printf '{"id":"q9","stat' >>"$d/out.jsonl"
run_batch "$d" "$url" --concurrency 4
check "the rerun after a crash exits 0 (got $code: $(tail -3 "$d/err"))" [ "$code" -eq 0 ]
check "the torn line of out is reported and cut" grep -q "removing an incomplete last line" "$d/err"
check "the created jobs are waited on" [ "$(said "$d/err" "resuming job ")" -ge "$journaled" ]
check "the creates left waiting are sent again with their keys" \
    has_said "$d/err" "sending again with its recorded idempotency key" 1
check "every id is in out exactly once after the crash" each_once "$d/out.jsonl" 10
stop_simulator "$d"
check "no question was created twice after the crash (jobs: $sim_jobs)" [ "$sim_jobs" = 10 ]

# 5. The deadline covers the whole batch: the jobs are left running and journaled for the next run.
d="$workdir/deadline"
start_simulator url "$d" --in-progress-ms 600000 || exit 1
questions "$d/in.jsonl" 2
run_batch "$d" "$url" --deadline 1
check "a passed deadline exits 4 (got $code: $(tail -3 "$d/err"))" [ "$code" -eq 4 ]
check "a passed deadline writes no answer" [ ! -s "$d/out.jsonl" ]
check "a passed deadline leaves both jobs created" [ "$(said "$d/err" "created job ")" -eq 2 ]
run_batch "$d" "$url" --deadline 1
check "the next run waits on them again (got $code: $(tail -3 "$d/err"))" [ "$(said "$d/err" "resuming job ")" -eq 2 ]
stop_simulator "$d"
check "and creates nothing (jobs: $sim_jobs)" [ "$sim_jobs" = 2 ]

# 6. --api agent: each question a background response; the same statuses, a journal of response ids.
d="$workdir/agent"
start_simulator url "$d" || exit 1
questions "$d/in.jsonl" 6 q4
run_batch "$d" "$url" --api agent --concurrency 3
check "an agent batch with a failed response exits 1 (got $code: $(tail -3 "$d/err"))" [ "$code" -eq 1 ]
check "every id is in out exactly once (agent)" each_once "$d/out.jsonl" 6
check "q4 FAILED with the response's error" \
    grep -q '^{"id":"q4","response_id":"resp_[^"]*","status":"FAILED","error":"Internal error while processing request"}$' \
    "$d/out.jsonl"
check "the others COMPLETED with their own answer (agent)" \
    [ "$(grep -c '"response_id":"resp_[^"]*","status":"COMPLETED","answer":"Simulated answer to \\"question number [0-9]*\\"' "$d/out.jsonl")" -eq 5 ]
check "each question's response was created once" [ "$(said "$d/err" "created response ")" -eq 6 ]
cp "$d/out.jsonl" "$d/out.before"
run_batch "$d" "$url" --api agent
check "a rerun of a finished agent batch exits 1 again (got $code)" [ "$code" -eq 1 ]
check "a rerun of a finished agent batch writes nothing" cmp -s "$d/out.jsonl" "$d/out.before"
run_batch "$d" "$url"
check "an agent journal rerun with --api sonar exits 2 (got $code)" [ "$code" -eq 2 ]
check "an agent journal rerun with --api sonar says why" grep -q "written by a run with --api agent" "$d/err"
run_batch "$d" "$url" --preset medium
check "--preset without --api agent exits 2 (got $code)" [ "$code" -eq 2 ]
stop_simulator "$d"
check "six responses were created (got $sim_responses)" [ "$sim_responses" = 6 ]
check "no Sonar job was created by --api agent (got $sim_jobs)" [ "$sim_jobs" = 0 ]

# SIGINT while responses run, then a rerun that waits on the journaled response ids; a question whose
# create was sent without its answer being journaled is not sent again, and is named.
d="$workdir/agent-interrupt"
start_simulator url "$d" --in-progress-ms 2000 || exit 1
questions "$d/in.jsonl" 8
PERPLEXITY_API_KEY=test-key "$batch" --base-url "$url" --ca-file "$d/ca.pem" --in "$d/in.jsonl" \
    --out "$d/out.jsonl" --poll-interval 50 --concurrency 4 --api agent --model perplexity/sonar \
    >/dev/null 2>"$d/err" &
batch_pid=$!
pids+=($batch_pid)
check "the first four responses are created" wait_for 30 has_said "$d/err" "created response " 4
kill -INT "$batch_pid"
wait "$batch_pid"
code=$?
check "SIGINT exits 5 (agent; got $code: $(tail -3 "$d/err"))" [ "$code" -eq 5 ]
journaled=$(said "$d/err" "created response ")
answered_before=$(grep -c . "$d/out.jsonl")
run_batch "$d" "$url" --api agent --model perplexity/sonar --concurrency 4
check "the agent rerun exits 0 (got $code: $(tail -3 "$d/err"))" [ "$code" -eq 0 ]
check "the agent rerun resumed the journaled responses" \
    [ "$(said "$d/err" "resuming response resp_")" -eq $((journaled - answered_before)) ]
check "every id is in out exactly once after the agent resume" each_once "$d/out.jsonl" 8
stop_simulator "$d"
check "no question made two responses (responses: $sim_responses)" [ "$sim_responses" = 8 ]

# A crash while creates wait for their turn (one a second): their questions' creates may have made
# responses that cannot be found, so the rerun names them and sends nothing for them; only
# --resend-unfindable sends them again.
d="$workdir/agent-crash"
start_simulator url "$d" --in-progress-ms 2000 || exit 1
questions "$d/in.jsonl" 6
PERPLEXITY_API_KEY=test-key "$batch" --base-url "$url" --ca-file "$d/ca.pem" --in "$d/in.jsonl" \
    --out "$d/out.jsonl" --poll-interval 50 --concurrency 4 --api agent --creates-per-minute 60 \
    >/dev/null 2>"$d/err" &
batch_pid=$!
pids+=($batch_pid)
check "responses are created before the crash" wait_for 30 has_said "$d/err" "created response " 2
kill -KILL "$batch_pid"
wait "$batch_pid" 2>/dev/null
run_batch "$d" "$url" --api agent
check "a create of unknown outcome leaves the batch unfinished (got $code: $(tail -3 "$d/err"))" [ "$code" -eq 3 ]
check "a create of unknown outcome is named and not sent again" has_said "$d/err" "not sent again" 1
unfindable=$(sed -n 's/^batch: \(q[0-9]*\): not sent again.*/\1/p' "$d/err")
sent_again=0
for q in $unfindable; do
    grep -q "^{\"id\":\"$q\"," "$d/out.jsonl" && sent_again=$((sent_again + 1))
done
check "nothing was answered for them" [ "$sent_again" -eq 0 ]
run_batch "$d" "$url" --api agent --resend-unfindable
check "--resend-unfindable sends them (got $code: $(tail -3 "$d/err"))" [ "$code" -eq 0 ]
check "every id is in out exactly once after --resend-unfindable" each_once "$d/out.jsonl" 6
stop_simulator "$d"

finish

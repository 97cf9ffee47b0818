#!/usr/bin/env bash
# The `service` example on a PostgreSQL ledger, against the scratch server tests/postgres/cluster runs it
# beside: the databases it refuses to start on (unreachable, wrong credentials, a newer schema, a
# malformed URI), each named in its message without the password, and the flags that need PostgreSQL.
#   tests/postgres/cluster run -- service_postgres_test.sh SERVICE_BINARY SIM_BINARY
set -uo pipefail
service=$1
sim=$2
source "$(dirname "$0")/example_lib.sh"

d="$workdir/sim"
start_simulator url "$d" || exit 1
secret="pw-$RANDOM-never-shown"

# start_failing NAME ARGS...: runs the service, which must exit at once; sets status and err.
start_failing() {
    local name=$1
    shift
    PERPLEXITY_API_KEY=test-key timeout 30 "$service" --listen 127.0.0.1:0 --base-url "$url" \
        --ca-file "$d/ca.pem" "$@" >"$workdir/$name.out" 2>"$workdir/$name.err"
    status=$?
    err=$(cat "$workdir/$name.err")
}
not_shown() { ! grep -q -- "$secret" "$workdir/$1.out" "$workdir/$1.err"; }

start_failing unreachable --ledger "postgresql://perplexity:$secret@127.0.0.1:1/perplexity?connect_timeout=2"
check "an unreachable database: exit 1" [ "$status" = 1 ]
check "an unreachable database: named" grep -q "host=127.0.0.1 port=1 dbname=perplexity user=perplexity" \
    "$workdir/unreachable.err"
check "an unreachable database: the cause" grep -q "could not connect" "$workdir/unreachable.err"
check "an unreachable database: no password" not_shown unreachable
check "an unreachable database: nothing listened" [ ! -s "$workdir/unreachable.out" ]

start_failing credentials --ledger \
    "postgresql://perplexity:$secret@$PERPLEXITY_PG_HOST:$PERPLEXITY_PG_PORT/perplexity"
check "wrong credentials: exit 1" [ "$status" = 1 ]
check "wrong credentials: the cause" grep -q "password authentication failed" "$workdir/credentials.err"
check "wrong credentials: no password" not_shown credentials

start_failing malformed --ledger "postgresql://perplexity:$secret@[bad/perplexity"
check "a malformed URI: exit 1" [ "$status" = 1 ]
check "a malformed URI: said so" grep -q "cannot be parsed" "$workdir/malformed.err"
check "a malformed URI: no password" not_shown malformed

# The right password, from PGPASSWORD rather than the URI, over TCP: the service starts and creates the
# tables; then a newer schema version is refused.
good="postgresql://$PERPLEXITY_PG_USER@$PERPLEXITY_PG_HOST:$PERPLEXITY_PG_PORT/$PERPLEXITY_PG_DATABASE"
PGPASSWORD=$PERPLEXITY_PG_PASSWORD PERPLEXITY_API_KEY=test-key "$service" --listen 127.0.0.1:0 \
    --base-url "$url" --ca-file "$d/ca.pem" --ledger "$good" --replica one >"$workdir/good.out" \
    2>"$workdir/good.err" &
good_pid=$!
pids+=($good_pid)
check "the right password: it listens" wait_for 20 grep -q "^listening on " "$workdir/good.out"
check "the right password: names its replica" grep -q 'replica "one" of the fleet' "$workdir/good.err"
kill -TERM "$good_pid"
wait "$good_pid"
check "a stopped replica exits 0" [ $? = 0 ]
check "a stopped replica ended its lease" [ "$("$PERPLEXITY_PG_CLUSTER" psql "$PERPLEXITY_PG_DIR" -At -c \
    "SELECT lease_until <= now() FROM perplexity_replicas WHERE name = 'one'")" = t ]

"$PERPLEXITY_PG_CLUSTER" psql "$PERPLEXITY_PG_DIR" -q -c "UPDATE perplexity_schema SET version = 7"
PGPASSWORD=$PERPLEXITY_PG_PASSWORD start_failing newer --ledger "$good"
check "a newer schema: exit 1" [ "$status" = 1 ]
check "a newer schema: said so" grep -q "schema version 7, written by a newer perplexity-async" \
    "$workdir/newer.err"

start_failing replica_alone --replica lonely
check "--replica without PostgreSQL: a usage error" [ "$status" = 2 ]
check "--replica without PostgreSQL: said so" grep -q "need --ledger postgresql://" "$workdir/replica_alone.err"

finish

#!/usr/bin/env bash
# Self-test of tests/postgres/cluster, the scratch PostgreSQL server for tests. Through `cluster run`:
# the socket conninfo and the TCP URL connect as perplexity (SCRAM password over TCP), wrong credentials
# are refused, restart and an immediate stop keep committed data, down refuses connections until up.
# Then, for each run: no process of the cluster remains and its directory is gone, also when the command
# fails, when `run` gets SIGTERM, and when `run` is killed with SIGKILL (its watcher cleans up). The
# three clusters start at once; initdb is most of the time (about 1.3 s each here).
# Skipped (77) without PostgreSQL's server binaries.
#   cluster_selftest.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cluster=$here/cluster

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

if [ -n "${PG_BINDIR:-}" ]; then
    bindir=$PG_BINDIR
else
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$bindir" ] || ! command -v pg_config >/dev/null || bindir=$(pg_config --bindir)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "SKIP: no PostgreSQL server binaries (set PG_BINDIR)"
    exit 77
fi

# q CONNINFO SQL: one query's unaligned result; never prompts for a password, gives up after 5 s.
q() { PGCONNECT_TIMEOUT=5 "$bindir/psql" -X -w -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# refused CONNINFO PATTERN: connecting fails, with PATTERN in psql's error.
refused() {
    local err
    if err=$(q "$1" "select 1" 2>&1); then
        fail "connected to $1, expected a refusal ($2)"
    fi
    grep -q -- "$2" <<<"$err" || fail "connecting to $1: expected \"$2\", got: $err"
}

# alive PID: PID runs and is not a zombie (orphans may wait a while to be reaped).
alive() {
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# children PID: the pids of PID's children (from /proc, as procps may be missing).
children() {
    local f stat fields
    for f in /proc/[0-9]*/stat; do
        { read -r stat <"$f"; } 2>/dev/null || continue
        read -r -a fields <<<"${stat##*) }"
        [ "${fields[1]}" != "$1" ] || { f=${f#/proc/}; echo "${f%/stat}"; }
    done
}

# mentioning TEXT: the live processes whose command line contains TEXT, as "pid: command".
mentioning() {
    local f pid words
    for f in /proc/[0-9]*/cmdline; do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        { mapfile -d '' words <"$f"; } 2>/dev/null || continue
        [[ "${words[*]}" != *"$1"* ]] || ! alive "$pid" || echo "$pid: ${words[*]}"
    done
}

# record_pids FILE: appends the postmaster's pid and its children's.
record_pids() {
    local postmaster
    postmaster=$(head -n 1 "$PERPLEXITY_PG_DIR/data/postmaster.pid")
    echo "$postmaster $(children "$postmaster" | tr '\n' ' ')" >>"$1"
}

# The body, run by `cluster run` with the cluster's variables exported.
inside() {
    local work=$1 var url_other url_wrong mode owner
    for var in SOCKET_CONNINFO URL HOST PORT PASSWORD DIR USER DATABASE OTHER_USER OTHER_PASSWORD CLUSTER; do
        var=PERPLEXITY_PG_$var
        [ -n "${!var:-}" ] || fail "$var is not set"
    done
    [ "$PERPLEXITY_PG_CLUSTER" = "$cluster" ] || fail "PERPLEXITY_PG_CLUSTER is $PERPLEXITY_PG_CLUSTER"
    [ "$PERPLEXITY_PG_DIR" = "$(realpath -m "$work/pg")" ] || fail "PERPLEXITY_PG_DIR is $PERPLEXITY_PG_DIR"
    echo "$PERPLEXITY_PG_DIR" >"$work/dir"
    record_pids "$work/pids"

    # The password file: the password, readable by the invoking user alone.
    read -r mode owner < <(stat -c '%a %u' "$PERPLEXITY_PG_DIR/password")
    [ "$mode" = 600 ] && [ "$owner" = "$(id -u)" ] || fail "password file: mode $mode, owner $owner"
    [ "$(cat "$PERPLEXITY_PG_DIR/password")" = "$PERPLEXITY_PG_PASSWORD" ] || fail "password file differs"

    # Over the Unix socket (no address) with trust, over TCP with the password; the same database.
    [ "$(q "$PERPLEXITY_PG_SOCKET_CONNINFO" "select current_user || ' ' || current_database() || ' ' ||
        coalesce(inet_server_addr()::text, 'socket')")" = "perplexity perplexity socket" ] ||
        fail "socket connection"
    [ "$(q "$PERPLEXITY_PG_URL" "select current_user || ' ' || current_database() || ' ' ||
        host(inet_server_addr()) || ' ' || inet_server_port()")" = "perplexity perplexity 127.0.0.1 $PERPLEXITY_PG_PORT" ] ||
        fail "TCP connection"
    # The superuser, over the socket.
    [ "$("$cluster" psql "$PERPLEXITY_PG_DIR" -At -c "select current_user || ' ' || current_database()")" = \
        "postgres perplexity" ] || fail "cluster psql"
    [ "$("$cluster" psql "$PERPLEXITY_PG_DIR" -At -c "show fsync" -c "show max_connections" \
        -c "show server_encoding" -c "show lc_collate" -c "show listen_addresses" | tr '\n' ' ')" = \
        "on 100 UTF8 C 127.0.0.1 " ] || fail "server settings"

    # Wrong credentials over TCP: another role's password, no password; the other role with its own.
    url_wrong="postgresql://perplexity:$PERPLEXITY_PG_OTHER_PASSWORD@127.0.0.1:$PERPLEXITY_PG_PORT/perplexity"
    refused "$url_wrong" 'password authentication failed for user "perplexity"'
    refused "postgresql://perplexity@127.0.0.1:$PERPLEXITY_PG_PORT/perplexity" "no password supplied"
    url_other="postgresql://$PERPLEXITY_PG_OTHER_USER:$PERPLEXITY_PG_OTHER_PASSWORD@127.0.0.1:$PERPLEXITY_PG_PORT/perplexity"
    [ "$(q "$url_other" "select current_user")" = perplexity_other ] || fail "the other role"

    # restart keeps committed data, on the same port and socket.
    q "$PERPLEXITY_PG_URL" "create table kept (v text); insert into kept values ('before restart')"
    "$cluster" restart "$PERPLEXITY_PG_DIR"
    record_pids "$work/pids"
    [ "$(q "$PERPLEXITY_PG_SOCKET_CONNINFO" "select string_agg(v, ',') from kept")" = "before restart" ] ||
        fail "data after restart"

    # kill (immediate shutdown) keeps committed data too: the next start recovers it.
    q "$PERPLEXITY_PG_URL" "insert into kept values ('before kill')"
    "$cluster" kill "$PERPLEXITY_PG_DIR"
    refused "$PERPLEXITY_PG_SOCKET_CONNINFO" "No such file or directory"
    "$cluster" up "$PERPLEXITY_PG_DIR"
    record_pids "$work/pids"
    [ "$(q "$PERPLEXITY_PG_URL" "select string_agg(v, ',' order by v) from kept")" = "before kill,before restart" ] ||
        fail "data after kill and up"

    # down refuses connections, over both ways, until up.
    "$cluster" down "$PERPLEXITY_PG_DIR"
    "$cluster" down "$PERPLEXITY_PG_DIR"   # a stopped server is fine
    refused "$PERPLEXITY_PG_URL" "Connection refused"
    refused "$PERPLEXITY_PG_SOCKET_CONNINFO" "No such file or directory"
    "$cluster" up "$PERPLEXITY_PG_DIR"
    record_pids "$work/pids"
    [ "$(q "$PERPLEXITY_PG_URL" "select count(*) from kept")" = 2 ] || fail "data after down and up"
    [ "$(q "$PERPLEXITY_PG_SOCKET_CONNINFO" "select count(*) from kept")" = 2 ] || fail "socket after up"
}

# The checks end with status 3 when they all pass (fail exits 1): so this run also shows that `run` exits
# with its command's status, and cleans up after a failing command as after any other.
if [ "${1:-}" = --inside ]; then
    inside "$2"
    exit 3
fi

# gone WORK: none of the processes recorded in WORK/pids is alive, nothing runs in WORK/dir's cluster,
# and the directory is gone.
gone() {
    local work=$1 dir pid left
    dir=$(cat "$work/dir")
    for pid in $(cat "$work/pids"); do
        ! alive "$pid" || fail "process $pid of the cluster in $dir is still running: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
    done
    left=$(mentioning "$dir/")
    [ -z "$left" ] || fail "processes of $dir are still running: $left"
    [ ! -e "$dir" ] || fail "$dir is still there"
}

# wait_for SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

began=$(date +%s%N)
elapsed() { echo "$((($(date +%s%N) - began) / 1000000)) ms"; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
chmod 0711 "$scratch"   # as root, the server's user (postgres) must reach the cluster directories in it

# A nonempty DIR is refused, and left as it was.
mkdir -p "$scratch/full/pg" && touch "$scratch/full/pg/mine"
! "$cluster" start "$scratch/full/pg" 2>/dev/null || fail "start took a nonempty directory"
! "$cluster" run "$scratch/full/pg" -- true 2>/dev/null || fail "run took a nonempty directory"
[ -f "$scratch/full/pg/mine" ] || fail "run removed a directory it did not make"
echo "$(elapsed) ok: a nonempty directory is refused and kept"

# Two runs in the background, each in a mktemp directory of its own (run -- COMMAND), to be signalled
# once the checks are done; their commands record the cluster's directory and processes.
export -f alive children
record='echo "$PERPLEXITY_PG_DIR" >"$0/dir"; postmaster=$(head -n 1 "$PERPLEXITY_PG_DIR/data/postmaster.pid");
        echo $postmaster $(children $postmaster) >"$0/pids"; echo $$ >"$0/command"; exec sleep 60'
mkdir "$scratch/term" "$scratch/kill"
"$cluster" run -- bash -c "$record" "$scratch/term" 2>"$scratch/term/stderr" &
term=$!
"$cluster" run -- bash -c "$record" "$scratch/kill" 2>"$scratch/kill/stderr" &
killed=$!

# The checks, in a cluster at a given DIR; then nothing of it remains.
mkdir "$scratch/checks"
status=0
"$cluster" run "$scratch/checks/pg" -- "$0" --inside "$scratch/checks" || status=$?
[ "$status" -ne 1 ] || fail "the checks inside the cluster failed"
[ "$status" -eq 3 ] || fail "run exited $status, expected its command's 3"
gone "$scratch/checks"
echo "$(elapsed) ok: connections, credentials, restart, kill, down and up; run exits with the command's status, nothing left"

wait_for 30 test -s "$scratch/term/command" || fail "the cluster for SIGTERM did not start: $(cat "$scratch/term/stderr")"
wait_for 30 test -s "$scratch/kill/command" || fail "the cluster for SIGKILL did not start: $(cat "$scratch/kill/stderr")"

# SIGTERM to run alone (as from a timeout): it stops the server, ends the command, exits 143.
kill -TERM "$term"
status=0
wait "$term" || status=$?
[ "$status" -eq 143 ] || fail "run exited $status after SIGTERM, expected 143: $(cat "$scratch/term/stderr")"
! alive "$(cat "$scratch/term/command")" || fail "the command outlived run's SIGTERM"
gone "$scratch/term"
echo "$(elapsed) ok: SIGTERM to run stops the server and the command, exits 143, leaves nothing"

# SIGKILL to run: its watcher stops the server and removes the directory. The command itself (sleep)
# outlives a run killed so; the cluster must not.
exec 3>&2 2>/dev/null   # not bash's "Killed" notice
kill -KILL "$killed"
wait "$killed" || true
exec 2>&3 3>&-
kill_dir=$(cat "$scratch/kill/dir")
no_trace() { [ ! -e "$kill_dir" ] && [ -z "$(mentioning "$kill_dir/")" ]; }
wait_for 10 no_trace || fail "the watcher did not clean up after SIGKILL"
kill -KILL "$(cat "$scratch/kill/command")" 2>/dev/null || true
gone "$scratch/kill"
echo "$(elapsed) ok: after SIGKILL to run, its watcher stops the server and removes the directory"

echo "all passed in $(elapsed)"

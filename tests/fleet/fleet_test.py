#!/usr/bin/env python3
"""A fleet of `service` replicas on one PostgreSQL ledger, against one perplexity-sim enforcing the tier.

usage (under a scratch server, whose PERPLEXITY_PG_* variables it reads):
  tests/postgres/cluster run -- tests/fleet/fleet_test.py --service PATH --sim PATH
      [--replicas 4] [--questions 200] [--kill 2] [--rate 600] [--lease-ms 2000] [--seed S]
      [--clients 24] [--in-progress-ms 1500] [--poll-interval 200] [--timeout 300] [--keep]
  tests/postgres/cluster run -- tests/fleet/fleet_test.py --restart-db --service PATH --sim PATH
      (defaults then: 2 replicas, 60 questions, no kills, rate 300)

What it does, in order:
 1. starts one perplexity-sim with `--creates-per-minute RATE --create-burst 2` (the account's tier) and
    `--in-progress-ms`, then REPLICAS replicas r1..rN of `service --ledger postgresql://... --replica rI
    --lease-ms LEASE --creates-per-minute RATE` (the fleet-wide rate, shared through the database);
 2. submits QUESTIONS questions from CLIENTS threads, each with its own Idempotency-Key q-0001...,
    round-robin over the replicas. A POST that fails (connection refused or reset, a 5xx, a replica that is
    dead) is sent again to the next live replica with the SAME key after a short backoff; a 409 (the
    key's create is under way elsewhere) is sent again later;
 3. meanwhile kills KILL replicas with SIGKILL at seeded random moments, uniformly between 10% and 60% of
    the expected create phase (QUESTIONS / RATE minutes after the first POST); or, with --restart-db,
    restarts the database (`cluster restart`) at 25% of it and takes it down for 3 s (`cluster down`,
    then `cluster up`) at 55%;
 4. polls the ledger (psql through `cluster psql`) until every question's entry is completed and nothing
    is pending or running, for at most --timeout seconds;
 5. checks: every key has exactly one ledger entry, completed, whose result carries the answer to its
    question; the job ids are distinct, QUESTIONS of them, and each is the id the client was given; the
    simulator made exactly QUESTIONS jobs (GET /sim/stats jobs_created); the fleet's achieved create rate,
    (admitted_creates - 1) * 60000 / admitted_create_span_ms, is at most 1.10 x RATE; the 429s of the
    tier (creates_rate_limited) are at most 5% of the creates received. The goal is none, and none was
    seen in development: a fleet that shares one pace should never be refused. The margin is for timing
    this test does not control (a replica starved of CPU sends a reserved create late, so that it and the
    next one arrive together; two such in a row overflow the bucket of 2), which should not fail CI; a
    fleet whose replicas paced themselves alone would send REPLICAS times the tier, and most of its
    creates would be refused. Then every id is read back through GET on a live replica other than the one
    that accepted it, and every key POSTed again to another live replica must give the same id and make
    no job;
 6. reports the CPU time of each replica (wait4's resource usage, killed replicas included), per job,
    of the simulator, and of the database (the postmaster and its processes, from /proc, including the
    backends it reaped, but not the backend of this driver's own psql session), durations, and a JSON
    summary as the last line on stdout (for bench/run fleet).

Everything it starts is stopped on every way out: the replicas and the simulator get SIGTERM, then SIGKILL
after 10 s, or after 2 s when a signal stopped the driver (tests/postgres/cluster run stops the database
first and sends SIGKILL 5 s later, and a replica that cannot reach its database takes 30 s or more to
stop). They get SIGKILL if the driver dies (PR_SET_PDEATHSIG), and the driver gets SIGTERM if its parent
dies. Exit 0 when every check passed, 1 when one failed, 2 on a usage error or a missing PERPLEXITY_PG_*
environment, 143 when stopped by a signal.
"""

import argparse
import ctypes
import http.client
import json
import os
import random
import re
import select
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
API_KEY = "fleet-key"
CLK_TCK = os.sysconf("SC_CLK_TCK")


LOG = None  # the driver's own copy of what it says, in the scratch directory (kept when a check fails)


def say(text):
    print(f"fleet: {text}", flush=True)
    if LOG is not None:
        LOG.write(f"fleet: {text}\n")
        LOG.flush()


class Stop(BaseException):
    """Raised in the main thread by SIGTERM, SIGINT or SIGHUP, so that the finally blocks stop everything."""


# Set with Stop. The clean-up is then quick (tests/postgres/cluster run has stopped the database already and
# sends SIGKILL 5 s after its SIGTERM), and the database is not started again.
INTERRUPTED = threading.Event()
STOP_GRACE_S = 10.0
INTERRUPTED_STOP_GRACE_S = 2.0


# ---------------------------------------------------------------------------------------------------------
# Processes


def on_parent_death(number):
    """Asks Linux to send this process signal `number` when the thread that forked it dies
    (PR_SET_PDEATHSIG); best effort."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(number))  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _die_with_parent():
    """In the child before exec: SIGKILL when the driver's thread that forked it (the main thread) dies, so
    that nothing outlives a driver killed before its clean-up. (Not SIGTERM: a replica stopping on SIGTERM
    tries to end its lease first, for up to 30 s while the database is unreachable.)"""
    on_parent_death(signal.SIGKILL)


def wait_for_line(path, pattern, child, timeout, what):
    """Polls the file at path until a line matches pattern; returns the match. Fails if child ends."""
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern, re.M)
    while time.monotonic() < deadline:
        try:
            match = regex.search(Path(path).read_text(errors="replace"))
        except FileNotFoundError:
            match = None
        if match:
            return match
        if child.reap(0):
            break
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not start (exit status {child.status}); its stderr:{tail(child.err)}")


def tail(path, lines=15):
    try:
        text = Path(path).read_text(errors="replace").rstrip().splitlines()
    except FileNotFoundError:
        return "(no output)"
    return "\n    ".join([""] + text[-lines:])


class Child:
    """A process the driver started: its output in files, its resource usage from wait4 once it ended."""

    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                            preexec_fn=_die_with_parent)
        self.pid = self.process.pid
        self.cpu_s = None      # user + sys, from wait4, once reaped
        self.status = None     # exit status (negative: the signal) once reaped
        self.killed_at = None  # seconds into the run, for the replicas killed on purpose
        self._lock = threading.Lock()

    @property
    def alive(self):
        return self.status is None and self.killed_at is None

    def reap(self, timeout):
        """Waits at most timeout seconds for the process to end; returns True once it is reaped."""
        with self._lock:
            if self.status is not None:
                return True
            deadline = time.monotonic() + timeout
            while True:
                try:
                    pid, status, usage = os.wait4(self.pid, os.WNOHANG)
                except ChildProcessError:  # reaped elsewhere: nothing to measure
                    self.status = self.process.returncode if self.process.returncode is not None else -1
                    self.cpu_s = 0.0
                    return True
                if pid == self.pid:
                    self.status = os.waitstatus_to_exitcode(status)
                    self.process.returncode = self.status  # reaped here, so Popen must not wait again
                    self.cpu_s = usage.ru_utime + usage.ru_stime
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.02)

    def signal(self, number):
        if self.status is None:
            try:
                os.kill(self.pid, number)
            except ProcessLookupError:
                pass

    def stop(self, grace=STOP_GRACE_S, terminate=True):
        """SIGTERM (unless already sent: a second one could find the default action restored while the
        process exits, and kill it), then SIGKILL after grace seconds; always reaps."""
        if terminate:
            self.signal(signal.SIGTERM)
        if not self.reap(grace):
            say(f"{self.name} did not stop within {grace:.1f} s of SIGTERM; SIGKILL"
                + ("" if INTERRUPTED.is_set() else self.backtrace()))
            self.signal(signal.SIGKILL)
            self.reap(30)

    def backtrace(self):
        """Where a process that does not stop is (gdb's backtraces, when gdb is installed), for the report."""
        gdb = shutil.which("gdb")
        if gdb is None:
            return ""
        path = self.out.with_suffix(".backtrace")
        try:
            with open(path, "w") as out:
                subprocess.run([gdb, "-p", str(self.pid), "-batch", "-ex", "thread apply all bt 40"],
                               stdout=out, stderr=subprocess.STDOUT, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        frames = [line for line in path.read_text(errors="replace").splitlines() if re.match(r"#\d+ ", line)]
        return f"; its backtrace (all of it in {path}):\n    " + "\n    ".join(frames[:25])


def stop_all(children, grace):
    """SIGTERM to all at once, then each gets what is left of grace before SIGKILL."""
    for child in children:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.stop(max(deadline - time.monotonic(), 0.0), terminate=False)
        except Exception as e:  # the others must still be stopped
            say(f"stopping {child.name}: {e!r}")


def proc_cpu(pid):
    """(own user+sys, reaped children's user+sys) in seconds of a running process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return own, children


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(entry))
    return found


class DatabaseCpu:
    """The CPU time of the cluster's server: its postmaster, its live processes, and those it reaped (their
    time is in the postmaster's cutime/cstime). Sampled now and then; a restarted server has a new
    postmaster, so the last sample of each is kept and the samples are summed (what an old postmaster did
    after its last sample is lost, so across a restart the sum is a slight undercount)."""

    def __init__(self, pg_dir, excluded):
        self.pid_file = Path(pg_dir) / "data" / "postmaster.pid"
        self.excluded = excluded  # pids left out: the driver's own psql backends (they never end before
        # the last sample, so their time never reaches the postmaster's cutime either)
        self.samples = {}  # postmaster pid -> its last total, seconds
        self.baseline = None

    def sample(self):
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return
        cpu = proc_cpu(pid)
        if cpu is None:
            return
        total = cpu[0] + cpu[1]
        for child in children_of(pid):
            if child in self.excluded:
                continue
            child_cpu = proc_cpu(child)
            if child_cpu is not None:
                total += child_cpu[0] + child_cpu[1]
        self.samples[pid] = max(total, self.samples.get(pid, 0.0))
        if self.baseline is None:
            self.baseline = total

    def used(self):
        """Seconds since the first sample."""
        if self.baseline is None:
            return None
        return sum(self.samples.values()) - self.baseline


# ---------------------------------------------------------------------------------------------------------
# The database


class PsqlSession:
    """A psql process (through `cluster psql`, as the superuser) reading queries from a pipe."""

    def __init__(self, script, directory):
        self.marker = f"--end-{os.getpid()}-{random.randrange(1 << 30)}--"
        self.process = subprocess.Popen(
            [script, "psql", directory, "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        self.buffer = b""
        self.alive = True

    def query(self, sql, timeout):
        """Rows, or None on an error (then alive says whether the session survived it)."""
        if not self.alive:
            return None
        try:
            self.process.stdin.write(f"{sql};\n\\echo {self.marker}\n".encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.alive = False
            return None
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        ending = f"{self.marker}\n".encode()
        while not (self.buffer.startswith(ending) or f"\n{self.marker}\n".encode() in self.buffer):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0))
            if not ready:
                self.alive = False  # a late answer would be taken for the next query's
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                self.alive = False
                return None
            self.buffer += chunk
        index = self.buffer.index(ending)
        text, self.buffer = self.buffer[:index].decode(errors="replace"), self.buffer[index + len(ending):]
        lines = text.splitlines()
        if any(re.match(r"(psql:|ERROR:|FATAL:|WARNING:|PANIC:|server closed|connection to server)", line)
               or "connection to server" in line for line in lines):
            # psql exits after losing its connection; a failed query leaves it running
            self.alive = self.process.poll() is None and not any("connection" in line for line in lines)
            return None
        return [line.split("\t") for line in lines]

    def close(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


class Cluster:
    def __init__(self):
        missing = [name for name in ("PERPLEXITY_PG_DIR", "PERPLEXITY_PG_PORT", "PERPLEXITY_PG_USER",
                                     "PERPLEXITY_PG_DATABASE") if not os.environ.get(name)]
        if missing:
            print(f"fleet: {', '.join(missing)} not set: run me under tests/postgres/cluster run --", file=sys.stderr)
            raise SystemExit(2)
        self.dir = os.environ["PERPLEXITY_PG_DIR"]
        self.port = os.environ["PERPLEXITY_PG_PORT"]
        self.script = os.environ.get("PERPLEXITY_PG_CLUSTER") or str(HERE.parent / "postgres" / "cluster")
        self._session = None
        self._session_lock = threading.Lock()
        self.monitor_backends = set()  # the server processes of this driver's own psql sessions
        # The socket directory as libpq's host parameter; the cluster script allows only [A-Za-z0-9_./+-]
        # in it, which a URI's query carries as it is.
        self.ledger_uri = (f"postgresql://{os.environ['PERPLEXITY_PG_USER']}@/{os.environ['PERPLEXITY_PG_DATABASE']}"
                           f"?host={self.dir}&port={self.port}")

    def psql(self, sql, timeout=30):
        """Rows of sql (lists of strings), or None when the server cannot be reached or the query fails.

        One psql session serves every query, so that polling the ledger costs the server one backend, not
        one per poll (a backend's start costs more CPU than the queries): the database's CPU is measured,
        and this backend's own is left out of it (monitor_backends). A lost session (the server restarted
        or went down) is started again at the next query."""
        with self._session_lock:
            for attempt in range(2):
                if self._session is None:
                    self._session = PsqlSession(self.script, self.dir)
                    backend = self._session.query("SELECT pg_backend_pid()", timeout)
                    if backend is None:
                        self._session.close()
                        self._session = None
                        return None
                    self.monitor_backends.add(int(backend[0][0]))
                rows = self._session.query(sql, timeout)
                if rows is not None or self._session.alive:
                    return rows
                self._session.close()
                self._session = None
            return None

    def close(self):
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def act(self, command):
        started = time.monotonic()
        result = subprocess.run([self.script, command, self.dir], capture_output=True, text=True, timeout=120)
        took = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"cluster {command} failed ({result.returncode}): {result.stderr.strip()}")
        return took


# ---------------------------------------------------------------------------------------------------------
# HTTP


def http_request(base, method, path, body=None, headers=None, timeout=60.0, context=None):
    """(status, parsed JSON or text, headers) of one request on a fresh connection; raises OSError and
    http.client.HTTPException on connection trouble."""
    parts = urllib.parse.urlsplit(base)
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        data = None
        all_headers = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["content-type"] = "application/json"
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return response.status, parsed, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


class Question:
    def __init__(self, index):
        self.index = index
        self.key = f"q-{index + 1:04d}"
        self.text = f"fleet question {self.key}: how many moons has planet number {index % 8 + 1}?"
        self.job_id = None
        self.accepted_by = None
        self.accepted_at = None
        self.attempts = 0
        self.outcomes = {}  # what each attempt met: 202, 409, 503, 'connection', ...
        self.error = None


class Fleet:
    def __init__(self, args, workdir, cluster):
        self.args = args
        self.workdir = workdir
        self.cluster = cluster
        self.sim = None
        self.sim_url = None
        self.ssl_context = None
        self.replicas = []  # Child objects with .url
        self.started = None  # monotonic time of the first POST
        self.lock = threading.Lock()

    # -- processes ------------------------------------------------------------------------------------

    def start_simulator(self):
        args = self.args
        cert_dir = self.workdir / "sim-certs"
        cert_dir.mkdir()
        self.sim = Child("sim", [args.sim, "--port", "0", "--cert-dir", str(cert_dir), "--api-key", API_KEY,
                                 "--creates-per-minute", str(args.rate), "--create-burst", "2",
                                 "--in-progress-ms", str(args.in_progress_ms), "--seed", str(args.seed)],
                         self.workdir)
        match = wait_for_line(self.sim.out, r"^listening on (\S+)$", self.sim, 20, "perplexity-sim")
        self.sim_url = match[1]
        self.ca_file = str(cert_dir / "ca.pem")
        self.ssl_context = ssl.create_default_context(cafile=self.ca_file)

    def start_replica(self, name):
        args = self.args
        env = dict(os.environ, PERPLEXITY_API_KEY=API_KEY)
        env.pop("PERPLEXITY_SERVICE_TOKEN", None)
        argv = [args.service, "--listen", "127.0.0.1:0", "--base-url", self.sim_url, "--ca-file", self.ca_file,
                "--poll-interval", str(args.poll_interval), "--ledger", self.cluster.ledger_uri,
                "--replica", name, "--lease-ms", str(args.lease_ms), "--creates-per-minute", str(args.rate)]
        replica = Child(name, argv, self.workdir, env=env)
        self.replicas.append(replica)
        match = wait_for_line(replica.out, r"^listening on (http://\S+)$", replica, 30, f"replica {name}")
        replica.url = match[1]
        return replica

    def live(self):
        return [replica for replica in self.replicas if replica.alive]

    def sim_stats(self):
        status, body, _ = http_request(self.sim_url, "GET", "/sim/stats", timeout=10, context=self.ssl_context)
        if status != 200 or not isinstance(body, dict):
            raise RuntimeError(f"GET /sim/stats answered {status}: {body}")
        return body

    # -- the clients ----------------------------------------------------------------------------------

    def submit(self, question, deadline):
        """POSTs question until a replica accepts it, moving to the next live replica after a failure."""
        position = question.index % len(self.replicas)
        backoff = 0.1
        while time.monotonic() < deadline:
            replica = self.replicas[position % len(self.replicas)]
            if not replica.alive:
                position += 1
                continue
            question.attempts += 1
            try:
                status, body, headers = http_request(
                    replica.url, "POST", "/questions", body={"question": question.text},
                    headers={"Idempotency-Key": question.key}, timeout=self.args.post_timeout)
                outcome = status
            except (OSError, http.client.HTTPException) as e:
                status, body, headers, outcome = None, str(e), {}, "connection"
            question.outcomes[outcome] = question.outcomes.get(outcome, 0) + 1
            if status in (200, 202) and isinstance(body, dict) and body.get("id"):
                question.job_id = body["id"]
                question.accepted_by = replica.name
                question.accepted_at = time.monotonic() - self.started
                return
            if status is not None and 400 <= status < 500 and status not in (409, 429):
                question.error = f"{replica.name} answered {status}: {body}"
                return
            if status == 409:
                # Its create is under way on another replica (or on a dead one until its lease runs out):
                # the same replica will know the id once it is there.
                pause = 0.25
            else:
                # connection refused or reset, a 5xx (503 too many in flight, 502 the API or the ledger
                # could not be reached): the next live replica, after a backoff.
                position += 1
                pause = backoff
                backoff = min(backoff * 2, 2.0)
                retry_after = headers.get("retry-after")
                if retry_after and retry_after.isdigit():
                    pause = max(pause, min(float(retry_after), 5.0))
            time.sleep(pause * (0.5 + random.random()))
        question.error = f"not accepted within the deadline (outcomes {question.outcomes})"

    def run_clients(self, questions, deadline):
        pending = list(questions)
        pending_lock = threading.Lock()

        def client():
            while True:
                with pending_lock:
                    if not pending:
                        return
                    question = pending.pop(0)
                try:
                    self.submit(question, deadline)
                except Exception as e:  # a bug here must fail the test, not hang it
                    question.error = f"client error: {e!r}"

        threads = [threading.Thread(target=client, daemon=True, name=f"client-{i}")
                   for i in range(self.args.clients)]
        for thread in threads:
            thread.start()
        return threads


# ---------------------------------------------------------------------------------------------------------
# Disturbances


def plan_kills(args, rng, create_phase_s):
    """(moment in seconds after the first POST, replica name) for each kill, sorted by moment."""
    victims = rng.sample([f"r{i + 1}" for i in range(args.replicas)], args.kill)
    moments = sorted(rng.uniform(0.10, 0.60) * create_phase_s for _ in victims)
    return list(zip(moments, victims))


def killer(fleet, plan, events, stop_event):
    for moment, name in plan:
        delay = fleet.started + moment - time.monotonic()
        if delay > 0 and stop_event.wait(delay):
            return
        replica = next(r for r in fleet.replicas if r.name == name)
        replica.signal(signal.SIGKILL)
        replica.killed_at = time.monotonic() - fleet.started
        replica.reap(10)
        events.append(f"{replica.killed_at:6.2f} s  SIGKILL {name} (planned {moment:.2f} s)")
        say(f"killed {name} with SIGKILL at {replica.killed_at:.2f} s")


def database_disturber(fleet, create_phase_s, events, stop_event, errors):
    cluster = fleet.cluster
    try:
        for fraction, action in ((0.25, "restart"), (0.55, "down")):
            delay = fleet.started + fraction * create_phase_s - time.monotonic()
            if delay > 0 and stop_event.wait(delay):
                return
            at = time.monotonic() - fleet.started
            took = cluster.act(action)
            events.append(f"{at:6.2f} s  cluster {action} ({took:.2f} s)")
            say(f"cluster {action} at {at:.2f} s took {took:.2f} s")
            if action == "down":
                if stop_event.wait(3.0):
                    if not INTERRUPTED.is_set():
                        cluster.act("up")
                    return
                at = time.monotonic() - fleet.started
                took = cluster.act("up")
                events.append(f"{at:6.2f} s  cluster up ({took:.2f} s)")
                say(f"cluster up at {at:.2f} s took {took:.2f} s")
    except Exception as e:
        errors.append(f"disturbing the database: {e}")


# ---------------------------------------------------------------------------------------------------------
# The run


class Checks:
    def __init__(self):
        self.failed = []
        self.passed = 0

    def check(self, condition, text):
        if condition:
            self.passed += 1
            say(f"ok: {text}")
        else:
            self.failed.append(text)
            say(f"FAILED: {text}")
        return condition


def ledger_progress(cluster):
    rows = cluster.psql("SELECT count(*) FILTER (WHERE state = 'completed'), "
                        "count(*) FILTER (WHERE state IN ('pending', 'running')), "
                        "count(*) FILTER (WHERE state IN ('failed', 'dropped')), count(*) FROM perplexity_entries")
    if not rows:
        return None
    try:
        return tuple(int(value) for value in rows[0])
    except (IndexError, ValueError):  # a notice instead of the row, e.g. while the server shuts down
        return None


def shut_down(args, fleet, cluster, db_cpu, stop_event, disturbers):
    """Stops the disturbers, the replicas (their CPU then includes their shutdown) and the simulator."""
    stop_event.set()
    for thread in disturbers:
        thread.join(timeout=60)
    grace = INTERRUPTED_STOP_GRACE_S if INTERRUPTED.is_set() else STOP_GRACE_S
    if INTERRUPTED.is_set():
        say(f"interrupted: stopping the replicas and the simulator (SIGKILL after {grace:.0f} s)")
    db_cpu.sample()
    stop_all(fleet.replicas, grace)
    if not INTERRUPTED.is_set():
        time.sleep(0.2)  # the postmaster reaps the replicas' backends; their CPU moves to its cutime
        db_cpu.sample()
    if fleet.sim is not None:
        stop_all([fleet.sim], grace)
    cluster.close()
    if args.restart_db and not INTERRUPTED.is_set():
        # The database must be up again for the cluster script to stop it cleanly.
        try:
            cluster.act("up")
        except Exception as e:
            say(f"cluster up at the end failed: {e}")


def run(args, workdir, cluster):
    checks = Checks()
    fleet = Fleet(args, workdir, cluster)
    db_cpu = DatabaseCpu(cluster.dir, cluster.monitor_backends)
    rng = random.Random(args.seed)
    create_phase_s = args.questions * 60.0 / args.rate
    mode = "restart-db" if args.restart_db else "kills"
    say(f"mode {mode}: {args.replicas} replicas, {args.questions} questions, {args.kill} kills, "
        f"rate {args.rate}/min (create phase ~{create_phase_s:.1f} s), lease {args.lease_ms} ms, "
        f"{args.clients} clients, seed {args.seed}")
    kill_plan = plan_kills(args, rng, create_phase_s)
    for moment, name in kill_plan:
        say(f"plan: SIGKILL {name} at {moment:.2f} s")

    events = []
    disturber_errors = []
    stop_event = threading.Event()
    summary = {"mode": mode, "replicas": args.replicas, "questions": args.questions, "kills": args.kill,
               "rate": args.rate, "lease_ms": args.lease_ms, "seed": args.seed}
    disturbers = []
    try:
        fleet.start_simulator()
        say(f"perplexity-sim on {fleet.sim_url}")
        if cluster.psql("SELECT 1") is None:  # the monitoring session, before the baseline
            raise RuntimeError(f"cannot query the database in {cluster.dir}")
        db_cpu.sample()
        for i in range(args.replicas):
            replica = fleet.start_replica(f"r{i + 1}")
            say(f"replica {replica.name} (pid {replica.pid}) on {replica.url}")

        questions = [Question(i) for i in range(args.questions)]
        fleet.started = time.monotonic()
        deadline = fleet.started + args.timeout
        threads = fleet.run_clients(questions, deadline)
        if kill_plan:
            disturbers.append(threading.Thread(target=killer, args=(fleet, kill_plan, events, stop_event),
                                               daemon=True))
        if args.restart_db:
            disturbers.append(threading.Thread(
                target=database_disturber, args=(fleet, create_phase_s, events, stop_event, disturber_errors),
                daemon=True))
        for thread in disturbers:
            thread.start()

        # Until every question is accepted and every entry completed (or the deadline).
        last_report = 0.0
        accepted_s = None
        completed_s = None
        progress = None
        while time.monotonic() < deadline:
            db_cpu.sample()
            clients_done = not any(thread.is_alive() for thread in threads)
            if clients_done and accepted_s is None:
                accepted_s = time.monotonic() - fleet.started
                say(f"all POSTs answered after {accepted_s:.2f} s")
            progress = ledger_progress(cluster) or progress
            now = time.monotonic() - fleet.started
            if progress and now - last_report >= 5:
                last_report = now
                say(f"{now:6.1f} s: ledger {progress[0]} completed, {progress[1]} unfinished, "
                    f"{progress[2]} failed or dropped, of {progress[3]}; "
                    f"{sum(q.job_id is not None for q in questions)} accepted")
            if (clients_done and progress and progress[1] == 0 and progress[0] + progress[2] >= args.questions
                    and not any(thread.is_alive() for thread in disturbers)):
                completed_s = now
                break
            time.sleep(0.25)
        stop_event.set()
        for thread in disturbers:
            thread.join(timeout=60)
        checks.check(completed_s is not None,
                     f"every question ended in the ledger within {args.timeout} s "
                     f"(last seen: {progress and progress[0]} completed, {progress and progress[1]} unfinished, "
                     f"{progress and progress[2]} failed or dropped)")
        if completed_s is not None:
            say(f"every entry ended after {completed_s:.2f} s")
        if args.restart_db:
            checks.check(not disturber_errors, "the database was restarted, and taken down and up, as planned"
                         + (f": {disturber_errors}" if disturber_errors else ""))
        if events:
            say("what happened:\n    " + "\n    ".join(events))

        # What the clients saw.
        unaccepted = [q for q in questions if q.job_id is None]
        checks.check(not unaccepted, f"every POST was accepted ({len(unaccepted)} not"
                     + (f"; first: {unaccepted[0].key}: {unaccepted[0].error}" if unaccepted else "") + ")")
        outcomes = {}
        for question in questions:
            for outcome, count in question.outcomes.items():
                outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + count
        say(f"POST outcomes over {sum(q.attempts for q in questions)} attempts: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
        summary["post_outcomes"] = outcomes

        # The ledger.
        db_cpu.sample()
        rows = cluster.psql("SELECT label, count(*), string_agg(state, ','), min(job_id), count(DISTINCT job_id),"
                            " bool_and(position(label IN result) > 0), string_agg(holder, ',')"
                            " FROM perplexity_entries GROUP BY label ORDER BY label")
        checks.check(rows is not None, "the ledger can be read")
        rows = rows or []
        by_label = {row[0]: row for row in rows}
        keys = {q.key for q in questions}
        extra = sorted(set(by_label) - keys)
        missing = sorted(keys - set(by_label))
        twice = sorted(label for label, row in by_label.items() if int(row[1]) != 1)
        not_completed = sorted(label for label, row in by_label.items() if row[2] != "completed")
        no_answer = sorted(label for label, row in by_label.items() if row[5] != "t")
        checks.check(not missing and not extra, f"the ledger holds one label per question "
                     f"({len(missing)} missing{': ' + ', '.join(missing[:5]) if missing else ''}, "
                     f"{len(extra)} unknown{': ' + ', '.join(extra[:5]) if extra else ''})")
        checks.check(not twice, f"each question has exactly one ledger entry ({len(twice)} have more"
                     + (f": {[(l, by_label[l][1], by_label[l][2]) for l in twice[:5]]}" if twice else "") + ")")
        checks.check(not not_completed, f"every entry is completed ({len(not_completed)} are not"
                     + (f": {[(l, by_label[l][2]) for l in not_completed[:5]]}" if not_completed else "") + ")")
        checks.check(not no_answer, f"every entry's result carries the answer to its question "
                     f"({len(no_answer)} do not{': ' + ', '.join(no_answer[:5]) if no_answer else ''})")
        job_ids = [row[3] for row in rows if row[0] in keys]
        distinct = set(job_ids) - {""}
        checks.check(len(distinct) == args.questions,
                     f"the ledger holds {len(distinct)} distinct job ids for {args.questions} questions")
        mismatched = [q.key for q in questions if q.job_id and q.key in by_label and by_label[q.key][3] != q.job_id]
        checks.check(not mismatched, f"each client was given its entry's job id ({len(mismatched)} were not"
                     + (f": {mismatched[:5]}" if mismatched else "") + ")")
        holders = {}
        for row in rows:
            for holder in row[6].split(","):
                holders[holder] = holders.get(holder, 0) + 1
        say("entries by final holder: " + ", ".join(f"{k}: {v}" for k, v in sorted(holders.items())))
        summary["holders"] = holders
        replicas_rows = cluster.psql("SELECT name, incarnation, lease_until FROM perplexity_replicas ORDER BY name")
        if replicas_rows:
            say("perplexity_replicas: " + "; ".join(" ".join(row) for row in replicas_rows))

        # The simulator, before anything below sends more requests.
        stats = fleet.sim_stats()
        say("sim stats: " + json.dumps(stats, separators=(",", ":")))
        checks.check(stats["jobs_created"] == args.questions,
                     f"the simulator made {stats['jobs_created']} jobs for {args.questions} questions")
        admitted, span = stats["admitted_creates"], stats["admitted_create_span_ms"]
        achieved = (admitted - 1) * 60000 / span if admitted > 1 and span > 0 else None
        ratio = achieved / args.rate if achieved is not None else None
        checks.check(ratio is not None and ratio <= args.max_rate_ratio,
                     f"the fleet's achieved create rate {achieved and round(achieved, 1)}/min is "
                     f"{ratio and round(ratio, 3)} x the tier's {args.rate}/min (at most {args.max_rate_ratio}): "
                     f"{admitted} creates admitted over {span} ms")
        refused = stats["creates_rate_limited"]
        received = stats["creates_received"] + stats.get("response_creates_received", 0)
        refused_share = refused / received if received else 0.0
        checks.check(refused_share <= args.max_429_share,
                     f"{refused} creates refused with 429 of {received} received ({refused_share:.1%}; goal 0, "
                     f"at most {args.max_429_share:.0%})")
        summary.update({"jobs_created": stats["jobs_created"], "creates_received": stats["creates_received"],
                        "creates_rate_limited": refused, "admitted_creates": admitted,
                        "admitted_create_span_ms": span,
                        "achieved_creates_per_minute": achieved and round(achieved, 1),
                        "rate_ratio": ratio and round(ratio, 4)})

        # Any replica answers for any id, and any replica knows any key.
        live = fleet.live()
        get_failures = []
        for i, question in enumerate(q for q in questions if q.job_id):
            others = [r for r in live if r.name != question.accepted_by] or live
            replica = others[i % len(others)]
            try:
                status, body, _ = http_request(replica.url, "GET", f"/questions/{question.job_id}", timeout=30)
            except (OSError, http.client.HTTPException) as e:
                status, body = None, str(e)
            if not (status == 200 and isinstance(body, dict) and body.get("status") == "COMPLETED"
                    and question.text in str(body.get("answer", ""))):
                get_failures.append(f"{question.key} on {replica.name}: {status} {str(body)[:200]}")
        checks.check(not get_failures, f"GET /questions/ID on another live replica shows every job COMPLETED "
                     f"with its answer ({len(get_failures)} do not"
                     + (f"; first: {get_failures[0]}" if get_failures else "") + ")")
        repost_failures = []
        for i, question in enumerate(q for q in questions if q.job_id):
            others = [r for r in live if r.name != question.accepted_by] or live
            replica = others[(i + 1) % len(others)]
            try:
                status, body, _ = http_request(replica.url, "POST", "/questions", body={"question": question.text},
                                               headers={"Idempotency-Key": question.key}, timeout=30)
            except (OSError, http.client.HTTPException) as e:
                status, body = None, str(e)
            if not (status in (200, 202) and isinstance(body, dict) and body.get("id") == question.job_id):
                repost_failures.append(f"{question.key} on {replica.name}: {status} {str(body)[:200]}")
        checks.check(not repost_failures, f"a repeated POST on another live replica gets the same job id "
                     f"({len(repost_failures)} do not" + (f"; first: {repost_failures[0]}" if repost_failures else "")
                     + ")")
        after = fleet.sim_stats()
        checks.check(after["jobs_created"] == stats["jobs_created"],
                     f"the repeated POSTs made no job ({after['jobs_created'] - stats['jobs_created']} made; "
                     f"{after['creates_received'] - stats['creates_received']} creates sent to the API)")

        summary.update({"accepted_s": accepted_s and round(accepted_s, 2),
                        "completed_s": completed_s and round(completed_s, 2)})
    finally:
        try:
            shut_down(args, fleet, cluster, db_cpu, stop_event, disturbers)
        except Stop:
            # A signal in the middle of the clean-up: what is left gets the short grace.
            say("interrupted during the clean-up: stopping what is left")
            stop_all(fleet.replicas + ([fleet.sim] if fleet.sim is not None else []), INTERRUPTED_STOP_GRACE_S)
            cluster.close()
            raise

    # CPU.
    total_replica_cpu = sum(r.cpu_s or 0.0 for r in fleet.replicas)
    per_replica = {}
    for replica in fleet.replicas:
        how = f"SIGKILL at {replica.killed_at:.2f} s" if replica.killed_at is not None else f"exit {replica.status}"
        per_replica[replica.name] = {"cpu_s": round(replica.cpu_s or 0.0, 3), "end": how}
        say(f"{replica.name}: {replica.cpu_s or 0.0:.3f} s CPU ({how})")
        if replica.killed_at is None:
            status = replica.status
            got = (f"killed by {signal.Signals(-status).name}" if status is not None and status < 0
                   else f"exit status {status}")
            checks.check(status == 0, f"{replica.name} exits 0 on SIGTERM within {STOP_GRACE_S:.0f} s (got {got})"
                         + ("" if status == 0 else f"; its last lines on stderr:{tail(replica.err, 5)}"))
    db_used = db_cpu.used()
    jobs = max(args.questions, 1)
    say(f"replicas: {total_replica_cpu:.3f} s CPU in all, {total_replica_cpu * 1e3 / jobs:.2f} ms per job")
    if db_used is not None:
        say(f"database: {db_used:.3f} s CPU, {db_used * 1e3 / jobs:.2f} ms per job"
            + (" (a lower bound: the server was restarted)" if args.restart_db else ""))
    if fleet.sim is not None and fleet.sim.cpu_s is not None:
        say(f"simulator: {fleet.sim.cpu_s:.3f} s CPU")
    summary.update({
        "replica_cpu": per_replica,
        "replica_cpu_s": round(total_replica_cpu, 3),
        "replica_cpu_ms_per_job": round(total_replica_cpu * 1e3 / jobs, 3),
        "db_cpu_s": db_used and round(db_used, 3),
        "db_cpu_ms_per_job": db_used and round(db_used * 1e3 / jobs, 3),
        "sim_cpu_s": fleet.sim and fleet.sim.cpu_s and round(fleet.sim.cpu_s, 3),
        "events": events,
    })
    leftovers = [c.name for c in fleet.replicas + ([fleet.sim] if fleet.sim else []) if c.status is None]
    checks.check(not leftovers, f"every process the test started has ended ({leftovers or 'none left'})")
    if checks.failed:
        for replica in fleet.replicas:
            say(f"{replica.name} stderr (last lines):{tail(replica.err)}")
        if fleet.sim is not None:
            say(f"sim stderr (last lines):{tail(fleet.sim.err)}")
    summary["passed"] = checks.passed
    summary["failed"] = checks.failed
    summary["ok"] = not checks.failed
    say(f"{checks.passed} passed, {len(checks.failed)} failed")
    print(json.dumps(summary, separators=(",", ":")), flush=True)
    return not checks.failed


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service", required=True, help="the service example's executable")
    parser.add_argument("--sim", required=True, help="perplexity-sim's executable")
    parser.add_argument("--restart-db", action="store_true",
                        help="restart the database and take it down for 3 s during the run (defaults: "
                             "2 replicas, 60 questions, no kills, rate 300)")
    parser.add_argument("--replicas", type=int)
    parser.add_argument("--questions", type=int)
    parser.add_argument("--kill", type=int, help="replicas killed with SIGKILL during the run")
    parser.add_argument("--rate", type=int, help="the tier and the fleet-wide --creates-per-minute")
    parser.add_argument("--lease-ms", type=int, default=2000)
    parser.add_argument("--seed", type=int, help="seeds the kill plan (default: from the clock; printed)")
    parser.add_argument("--clients", type=int, default=24, help="client threads POSTing at once")
    parser.add_argument("--in-progress-ms", type=int, default=1500, help="how long each simulated job runs")
    parser.add_argument("--poll-interval", type=int, default=200, help="the replicas' --poll-interval")
    parser.add_argument("--post-timeout", type=float, default=60.0, help="seconds one POST may take")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds from the first POST for every question to complete")
    parser.add_argument("--max-rate-ratio", type=float, default=1.10)
    parser.add_argument("--max-429-share", type=float, default=0.05)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory with the logs")
    args = parser.parse_args(argv)
    defaults = (2, 60, 0, 300) if args.restart_db else (4, 200, 2, 600)
    for name, default in zip(("replicas", "questions", "kill", "rate"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.seed is None:
        args.seed = int(time.time() * 1000) % 1000000
    if args.replicas < 1 or args.questions < 1 or args.rate < 1 or args.clients < 1:
        parser.error("--replicas, --questions, --rate and --clients must be at least 1")
    if not 0 <= args.kill < args.replicas:
        parser.error("--kill must leave at least one replica alive")
    for path in (args.service, args.sim):
        if not os.access(path, os.X_OK):
            parser.error(f"{path} is not an executable")
    return args


def main(argv):
    args = parse(argv)

    def on_signal(number, _frame):
        # Once: the clean-up that the exception sets off must not be cut short by a second signal.
        for other in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(other, signal.SIG_IGN)
        INTERRUPTED.set()
        raise Stop(f"signal {number}")

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, on_signal)
    # SIGTERM when the parent dies (`cluster run` killed with SIGKILL: its watcher stops the database), so that
    # this driver and what it started do not wait out the timeout against a database that is gone.
    parent = os.getppid()
    on_parent_death(signal.SIGTERM)
    if os.getppid() != parent:
        return 128 + signal.SIGTERM
    cluster = Cluster()  # exits 2 without the PERPLEXITY_PG_* environment
    workdir = Path(tempfile.mkdtemp(prefix="perplexity-fleet-"))
    global LOG
    LOG = open(workdir / "driver.log", "w")
    ok = False
    try:
        ok = run(args, workdir, cluster)
    except Stop as e:
        say(f"stopped by {e}")
        return 128 + signal.SIGTERM
    except (RuntimeError, OSError) as e:
        say(f"FAILED: {e}")
    except Exception:  # a bug of this driver: fail, with where it happened
        say(f"FAILED: unexpected error:\n{traceback.format_exc()}")
    finally:
        if args.keep or not ok:
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

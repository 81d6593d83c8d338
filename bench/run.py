"""The benchmark, in one command (not part of CI's pass/fail):

    .venv/bin/python bench/run.py   # ~10 min on an idle 2-core machine (14 at load average 4); writes bench/results.md

What it does, on the local PostgreSQL server (127.0.0.1:5432, trust auth, user postgres):

1. creates two throwaway databases: the service's (migrated, then seeded by bench/populate.py: an
   organization, a token, 1,000 data sources, workflows of 10, 100 and 10,000 nodes) and a small
   target database that the PostgreSQL data sources point at (connection tests, schema refresh);
2. counts the queries per request of every endpoint, API and floor (bench/queries.py);
3. starts gunicorn (2 sync workers, settings ``bench.settings``: the API plus the floor views
   of ``bench/floor.py``) and drives each endpoint with wrk (bench/lua/plan.lua, 2 threads x
   1 connection) for a fixed time per side after a warm-up, in alternating 2-second API and floor
   slices so that the machine's background load weighs on both alike (the 10,000-node repoint: twice
   the time, in 5-second slices, API-floor-floor-API, each after a VACUUM of the tables it writes);
4. restarts gunicorn with CONN_MAX_AGE=0 (a new database connection per request) for the GET and
   PATCH pair;
5. memory: each gunicorn worker records its own RSS (/proc/self/status) when it has served 2,000
   and 20,000 requests: mixed API requests up to 2,000 before the load of step 3, the benchmark's
   requests, then the same mix up to 20,000 (before step 4);
6. runs bench/repoint.py (one 10,000-node repoint, dry run and apply, with its query counts);
7. prints the table, writes bench/results.md, drops the databases.

Options: --duration S (per endpoint and side, default 10), --warmup S (default 1), --slice S
(default 2), --only KEY[,KEY] (endpoints), --skip-memory, --skip-conn-max-age-0,
--skip-repoint-script, --keep (keep the databases and the seed file, for bench/profile.py),
--out PATH, --json PATH (raw figures).
"""

from __future__ import annotations

import argparse
import base64
import bisect
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import worker_times

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
PG = "postgresql://postgres@127.0.0.1:5432/"
THREADS = 2  # wrk threads = connections: each thread's requests are sequential (see plan.lua)
WORKERS = 2
TAIL_TARGET = 3.0  # p99 <= 3x p50 (issue 18)
#: Django's cache for the servers: Redis (a database of its own) when it answers, so that the token cache
#: (organizations/token_cache.py) is on across the 2 workers, as in production; else process-local
#: memory, and gunicorn.conf.py turns the token cache off. The run empties that database first (FLUSHDB).
BENCH_CACHE_URL = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/11")

TARGET_SCHEMA = """
CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz);
CREATE TABLE products (id bigserial PRIMARY KEY, sku text NOT NULL, title text, price numeric(12, 2));
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint REFERENCES customers, placed_at timestamptz,
                     total numeric(12, 2), status text);
CREATE TABLE order_items (order_id bigint REFERENCES orders, product_id bigint REFERENCES products,
                          quantity int NOT NULL, PRIMARY KEY (order_id, product_id));
CREATE VIEW order_totals AS SELECT customer_id, sum(total) AS total FROM orders GROUP BY customer_id;
"""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (a gunicorn master's workers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def stop(proc: subprocess.Popen, log_file: Any) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log_file.close()


# ---- endpoints --------------------------------------------------------------------------------


@dataclass
class Endpoint:
    key: str
    label: str
    queries_key: str
    target: float | None  # the API/floor ratio to reach (issue 18); None: measured, no target
    min_slice: float = 0.0  # seconds: a slice must hold several requests
    duration_factor: float = 1.0  # x --duration: a slow endpoint needs more requests to be judged
    # VACUUM the written tables before every slice, as autovacuum would between them: each request
    # leaves ~15,000 dead rows, and a server with autovacuum off (this machine's) otherwise hands the
    # later slices a table bloated by the earlier ones.
    vacuum_slices: bool = False


ENDPOINTS = [
    Endpoint("get_ds", "GET a data source", "get_ds", 0.6),
    Endpoint("list_50", "GET list, page of 50", "list_50", 0.6),
    Endpoint("patch_plain", "PATCH description + tags", "patch_plain", 0.6),
    Endpoint("patch_conn", "PATCH connection (test + schema refresh)", "patch_conn", None),
    Endpoint("get_wds", "GET a workflow data source", "get_wds", 0.6),
    Endpoint("repoint", "PATCH workflow data source (repoint + remap, 10 nodes)", "repoint_10", 0.4),
    Endpoint("repoint_10k", "PATCH repoint + remap, 10,000 nodes", "repoint_10000", 0.9, min_slice=5.0,
             duration_factor=2.0, vacuum_slices=True),
]
BY_KEY = {e.key: e for e in ENDPOINTS}
CMA0_KEYS = ["get_ds", "patch_plain"]


class MemoryCheckFailed(Exception):
    pass


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = f"{int(time.time())}_{os.getpid()}"
        self.db = f"dsp_bench_{stamp}"
        self.target_db = f"dsp_bench_{stamp}_target"
        self.tmp = Path(tempfile.mkdtemp(prefix="dsp-bench-"))
        self.seed: dict[str, Any] = {}
        self.server: subprocess.Popen | None = None
        self.port = 0
        self.extra: tuple[subprocess.Popen, int, Any] | None = None  # the CONN_MAX_AGE=0 server
        self.rng = random.Random(20240601)  # noqa: S311 (load shuffling, not security)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": f"{PG}{self.db}",
            # DEBUG off refuses to start without both (config/settings.py): throwaway keys for the
            # throwaway databases, written to keys.env beside the seed file (bench/profile.py reads it).
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ENCRYPTION_KEYS": "bench:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "DATASOURCE_ALLOWED_NETWORKS": "127.0.0.0/8",
            "DATASOURCE_TEST_RATE_PER_TOKEN": "100000000",
            "DATASOURCE_TEST_RATE_PER_ORG": "100000000",
            "SCHEMA_REFRESH_ASYNC": "false",
            "CONN_MAX_AGE": "60",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "STATIC_ROOT": str(self.tmp),  # an existing folder: no whitenoise warning (no static served)
            "BENCH_STATS_DIR": str(self.tmp / "stats"),  # worker RSS records (bench/floor.py)
            "BENCH_RSS_AT": "1,2000,20000",
        }
        self.stats_dir = self.tmp / "stats"
        self.windows: list[worker_times.Window] = []  # the wrk slices, for the workers' own times
        self.phase = "main"
        self.stats_dir.mkdir()
        keys = self.tmp / "keys.env"
        keys.touch(mode=0o600)
        keys.write_text("".join(f"{k}={self.env[k]}\n" for k in ("SECRET_KEY", "ENCRYPTION_KEYS")))
        self.cache = "Redis" if redis_answers(BENCH_CACHE_URL) else "process-local memory (token cache off)"
        if self.cache == "Redis":
            self.env["CACHE_URL"] = BENCH_CACHE_URL
            # Empty at the start: the throwaway databases reuse ids, so a previous run's entries (an
            # organization's "no active webhook", say) would answer this run's first requests.
            redis.Redis.from_url(BENCH_CACHE_URL).flushdb()
        else:
            self.env.pop("CACHE_URL", None)

    # ---- setup ---------------------------------------------------------------------------------

    def check_tools(self) -> None:
        if shutil.which("wrk") is None:
            log("wrk not found: apt-get install -y wrk")
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False)  # noqa: S607
            if shutil.which("wrk") is None:
                subprocess.run(["apt-get", "update", "-q"], check=True)  # noqa: S607
                subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)  # noqa: S607
        if not (Path(PY).parent / "gunicorn").exists():
            raise SystemExit(f"gunicorn is not installed next to {PY}")
        with psycopg.connect(PG + "postgres", connect_timeout=5) as conn:
            conn.execute("SELECT 1")

    def create_databases(self) -> None:
        with psycopg.connect(PG + "postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db}"')
            conn.execute(f'CREATE DATABASE "{self.target_db}"')
        with psycopg.connect(PG + self.target_db, autocommit=True) as conn:
            conn.execute(TARGET_SCHEMA)

    def drop_databases(self) -> None:
        with psycopg.connect(PG + "postgres", autocommit=True) as conn:
            for name in (self.db, self.target_db):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def manage(self, *argv: str) -> None:
        subprocess.run([PY, "manage.py", *argv], cwd=ROOT, env=self.env, check=True)  # noqa: S603

    def run_script(self, *argv: str) -> None:
        subprocess.run([PY, *argv], cwd=ROOT, env=self.env, check=True)  # noqa: S603

    def sql(self, query: str, *params: Any) -> list[tuple]:
        with psycopg.connect(PG + self.db, autocommit=True) as conn:
            cursor = conn.execute(query, params or None)
            return cursor.fetchall() if cursor.description else []

    def vacuum(self) -> None:
        with psycopg.connect(PG + self.db, autocommit=True) as conn:
            for table in ("datasources_datasource", "workflows_nodeinput", "workflows_node",
                          "workflows_workflowdatasource", "organizations_auditevent"):
                conn.execute(f"VACUUM ANALYZE {table}")

    # ---- server --------------------------------------------------------------------------------

    def spawn(self, *, workers: int, conn_max_age: int) -> tuple[subprocess.Popen, int, Any]:
        """A gunicorn on a free loopback port; returns (process, port, log file) once it answers."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**self.env, "CONN_MAX_AGE": str(conn_max_age)}
        log_file = open(self.tmp / f"gunicorn-{port}.log", "w")
        proc = subprocess.Popen(  # noqa: S603
            [str(Path(PY).parent / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--worker-class", "sync", "--timeout", "120", "--backlog", "256",
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200 and len(children(proc.pid)) == workers:
                        return proc, port, log_file
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"gunicorn did not start; see {log_file.name}")

    def start_server(self, *, workers: int = WORKERS, conn_max_age: int = 60) -> None:
        self.stop_server()
        self.server, self.port, self.server_log = self.spawn(workers=workers, conn_max_age=conn_max_age)

    def workers(self) -> list[int]:
        return children(self.server.pid) if self.server is not None else []

    def stop_server(self) -> None:
        if self.server is not None:
            stop(self.server, self.server_log)
            self.server = None
        if self.extra is not None:
            stop(self.extra[0], self.extra[2])
            self.extra = None

    # ---- plans ---------------------------------------------------------------------------------

    def write_plan(self, name: str, per_thread: list[list[tuple[str, str, dict | None]]]) -> Path:
        path = self.tmp / f"{name}.plan"
        with path.open("w") as f:
            for tid, requests in enumerate(per_thread):
                f.write(f"#thread {tid}\n")
                for method, url, body in requests:
                    f.write(f"{method}\t{url}" + (f"\t{json.dumps(body)}" if body is not None else "") + "\n")
        return path

    def wds_version(self, wds: int) -> int:
        return self.sql("SELECT source_version FROM workflows_workflowdatasource WHERE id = %s", wds)[0][0]

    def ssl_mode(self, ds: int) -> str:
        row = self.sql("SELECT connection->'ssl'->>'mode' FROM datasources_datasource WHERE id = %s", ds)
        return row[0][0] or "prefer"

    def repoint_cycle(self, prefix: str, target: dict, bodies: dict) -> list[tuple[str, str, dict | None]]:
        url = f"{prefix}/workflows/{target['workflow']}/data-sources/{target['wds']}/"
        order = ["to_v2", "to_v1"] if self.wds_version(target["wds"]) == 1 else ["to_v1", "to_v2"]
        return [("PATCH", url, bodies[key]) for key in order]

    def conn_cycle(self, prefix: str, ds: int) -> list[tuple[str, str, dict | None]]:
        modes = ["disable", "prefer"] if self.ssl_mode(ds) != "disable" else ["prefer", "disable"]
        return [("PATCH", f"{prefix}/data-sources/{ds}/", {"connection": {"ssl": {"mode": m}}}) for m in modes]

    def shuffled_ids(self) -> list[int]:
        ids = list(self.seed["data_sources"])
        self.rng.shuffle(ids)
        return ids

    def plan_for(self, key: str, prefix: str) -> list[list[tuple[str, str, dict | None]]]:
        s = self.seed
        plans: list[list[tuple[str, str, dict | None]]] = []
        for tid in range(THREADS):
            if key == "get_ds":
                plan = [("GET", f"{prefix}/data-sources/{i}/", None) for i in self.shuffled_ids()]
            elif key == "list_50":
                pages = list(range(1, len(s["data_sources"]) // 50 + 1))
                self.rng.shuffle(pages)
                plan = [("GET", f"{prefix}/data-sources/?page_size=50&page={p}", None) for p in pages]
            elif key == "patch_plain":
                body = {"description": "bench @N@", "tags": ["bench", "t-@N@"]}
                plan = [("PATCH", f"{prefix}/data-sources/{i}/", body) for i in self.shuffled_ids()]
            elif key == "patch_conn":
                plan = self.conn_cycle(prefix, s["connection_sources"][tid])
            elif key == "get_wds":
                flow = s["flows"][tid]
                plan = [("GET", f"{prefix}/workflows/{flow['workflow']}/data-sources/{flow['wds']}/", None)]
            elif key == "repoint":
                plan = self.repoint_cycle(prefix, s["flows"][tid], s["shop_bodies"])
            elif key == "repoint_10k":
                plan = self.repoint_cycle(prefix, s["bigs"][tid], s["big_bodies"])
            else:
                raise KeyError(key)
            plans.append(plan)
        return plans

    def mixed_plan(self, tid: int) -> list[tuple[str, str, dict | None]]:
        """1,000 requests: GETs, lists, plain PATCHes, workflow GETs, repoints and connection PATCHes."""
        s, api = self.seed, "/api/v1"
        flow = s["flows"][tid]
        repoints = self.repoint_cycle(api, flow, s["shop_bodies"])
        conns = self.conn_cycle(api, s["connection_sources"][tid])
        ids = self.shuffled_ids()
        plan: list[tuple[str, str, dict | None]] = []
        for i in range(1000):
            ds = ids[i % len(ids)]
            if i % 50 == 25:  # 20 repoints, alternating (an even number: the cycle ends where it began)
                plan.append(repoints[(i // 50) % 2])
            elif i % 100 == 10:  # 10 connection PATCHes, alternating
                plan.append(conns[(i // 100) % 2])
            elif i % 10 in (1, 6):
                plan.append(("PATCH", f"{api}/data-sources/{ds}/", {"description": "mix @N@", "tags": ["@N@"]}))
            elif i % 10 == 3:
                plan.append(("GET", f"{api}/data-sources/?page_size=50&page={i % 20 + 1}", None))
            elif i % 10 == 8:
                plan.append(("GET", f"{api}/workflows/{flow['workflow']}/data-sources/{flow['wds']}/", None))
            else:
                plan.append(("GET", f"{api}/data-sources/{ds}/", None))
        return plan

    # ---- load ----------------------------------------------------------------------------------

    def wrk(self, plan: Path, seconds: float, *, threads: int = THREADS, stop_after: int = 0,
            port: int = 0) -> dict[str, Any]:
        env = {**os.environ, "BENCH_PLAN": str(plan), "BENCH_TOKEN": self.seed["token"],
               "BENCH_STOP": str(stop_after)}
        argv = ["wrk", "-t", str(threads), "-c", str(threads), "-d", f"{int(seconds)}s", "--timeout", "30s",
                "-s", str(BENCH / "lua" / "plan.lua"), f"http://127.0.0.1:{port or self.port}/"]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # noqa: S603
                                text=True)
        if stop_after:
            # A thread that reached BENCH_STOP stops; wrk itself sleeps out -d unless interrupted.
            assert proc.stderr is not None
            errors, stopped = [], 0
            for line in proc.stderr:
                if line.startswith("BENCH_STOPPED"):
                    stopped += 1
                    if stopped == threads:
                        proc.send_signal(signal.SIGINT)
                        break
                errors.append(line)
            out, rest = proc.communicate()
            err = "".join(errors) + rest
        else:
            out, err = proc.communicate()
        line = next((x for x in out.splitlines() if x.startswith("BENCH_JSON ")), None)
        if line is None:
            raise SystemExit(f"wrk failed: {out}\n{err}")
        result = json.loads(line.removeprefix("BENCH_JSON "))
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
        result["errors"] = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors",
                                                     "status_errors", "timeouts"))
        result["stderr"] = [x for x in err.splitlines() if x.startswith("BENCH_ERR")][:3]
        for message in result["stderr"]:
            log(f"  ! {message[:300]}")
        return result

    def slice(self, key: str, side: str, seconds: float, tag: str, port: int = 0) -> dict[str, Any]:
        """One wrk run against the current state; then wait out any request wrk left in flight, so
        that the next run's plan (repoint direction, SSL mode) is read from the committed state."""
        prefix = "/api/v1" if side == "api" else "/bench/floor"
        plan = self.write_plan(f"{key}-{side}-{tag}", self.plan_for(key, prefix))
        begin = time.time()
        result = self.wrk(plan, seconds, port=port)
        label, _, part = tag.rpartition("-")
        if part != "warm":
            self.windows.append((self.phase, key, label, begin, time.time()))
        self.settle(result["max"] / 1e6 + 0.1)
        return result

    def settle(self, at_least: float) -> None:
        """Wait until no request wrk abandoned at its deadline is still running: at least
        ``at_least`` seconds, then until neither database has had a busy session for 3 polls."""
        time.sleep(at_least)
        quiet, deadline = 0, time.time() + 15
        while quiet < 3 and time.time() < deadline:
            busy = self.sql("SELECT count(*) FROM pg_stat_activity WHERE datname IN (%s, %s) "
                            "AND pid <> pg_backend_pid() AND state <> 'idle'", self.db, self.target_db)[0][0]
            quiet = quiet + 1 if busy == 0 else 0
            time.sleep(0.05)

    def measure(self, key: str, targets: list[tuple[str, str, int]] | None = None) -> dict[str, dict[str, Any]]:
        """Warm every target up, then run them in short alternating slices (the order rotates each
        round) so that a change in the machine's background load weighs on all of them alike.
        A target is (label, "api" or "floor", port; 0 = the main server)."""
        targets = targets or [("api", "api", 0), ("floor", "floor", 0)]
        endpoint = BY_KEY[key]
        self.vacuum()
        if self.args.warmup:
            for label, side, port in targets:
                self.slice(key, side, self.args.warmup, f"{label}-warm", port)
        duration = self.args.duration * endpoint.duration_factor
        rounds = max(1, round(duration / max(self.args.slice, endpoint.min_slice)))
        seconds = duration / rounds
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in targets}
        for i in range(rounds):
            # Rotated each round (two targets: A B, B A, A B, ...): every target runs first as often.
            for label, side, port in targets[i % len(targets):] + targets[:i % len(targets)]:
                if endpoint.vacuum_slices:
                    self.vacuum()
                runs[label].append(self.slice(key, side, seconds, f"{label}-{i}", port))
                if os.environ.get("BENCH_SLICES"):
                    log(f"    slice {label}-{i}: {runs[label][-1]['requests']} requests, "
                        f"p50 {runs[label][-1]['p50'] / 1000:.1f} ms")
        merged = {label: merge_runs(r) for label, r in runs.items()}
        for label, result in merged.items():
            log(f"  {label:9s} {key:12s} {result['rps']:8.1f} req/s  p50 {result['p50'] / 1000:7.2f} ms  "
                f"p99 {result['p99'] / 1000:7.2f} ms  errors {result['errors']}")
        return merged

    def rss_records(self, pids: list[int]) -> dict[int, dict[int, int]]:
        """{pid: {request count: RSS KiB}} as the workers' RequestCountMiddleware recorded them."""
        out: dict[int, dict[int, int]] = {pid: {} for pid in pids}
        for pid in pids:
            path = self.stats_dir / f"worker-{pid}.jsonl"
            if path.exists():
                for line in path.read_text().splitlines():
                    record = json.loads(line)
                    out[pid][record["count"]] = record["rss_kib"]
        return out

    def drive_mixed_until(self, pids: list[int], count: int) -> dict[str, Any]:
        """Mixed API requests, in 5-second runs, until every worker has served ``count`` requests
        (its RequestCountMiddleware records its RSS at that count)."""
        requests = errors = 0
        started = time.time()
        while any(count not in r for r in self.rss_records(pids).values()):
            if set(self.workers()) != set(pids):
                tail = Path(self.server_log.name).read_text()[-1500:]
                raise MemoryCheckFailed(f"a gunicorn worker was replaced (it had died); gunicorn's log ends:\n{tail}")
            if time.time() - started > 900:
                raise MemoryCheckFailed(f"the workers did not reach {count} requests in 15 minutes")
            plan = self.write_plan("mixed", [self.mixed_plan(tid) for tid in range(THREADS)])
            result = self.wrk(plan, 5)
            self.settle(result["max"] / 1e6 + 0.1)
            requests, errors = requests + result["requests"], errors + result["errors"]
        return {"requests": requests, "errors": errors, "seconds": time.time() - started}

    def memory_summary(self, pids: list[int], mixed: list[dict[str, Any]]) -> dict[str, Any]:
        records = self.rss_records(pids)
        workers = []
        for pid in pids:
            r = records[pid]
            growth = (r[20000] - r[2000]) / r[2000]
            workers.append({"pid": pid, "rss_first_kib": r.get(1), "rss_2k_kib": r[2000], "rss_20k_kib": r[20000],
                            "growth": growth, "ok": abs(growth) <= 0.10})
        return {"workers": workers, "ok": all(w["ok"] for w in workers),
                "mixed_requests": sum(m["requests"] for m in mixed), "errors": sum(m["errors"] for m in mixed),
                "mixed_seconds": sum(m["seconds"] for m in mixed)}

    def repoint_script(self) -> dict[str, Any]:
        """bench/repoint.py (the workflows engineer's): one dry run and one apply of a repoint of
        10,000 nodes reading 1,000 tables, in its own throwaway test database, with query counts."""
        script = BENCH / "repoint.py"
        if not script.exists():
            return {"ok": False, "output": "bench/repoint.py is not there."}
        env = {**self.env, "ALLOWED_HOSTS": "127.0.0.1,testserver"}  # its test client's host
        proc = subprocess.run([PY, str(script)], cwd=ROOT, env=env, capture_output=True,  # noqa: S603
                              text=True, timeout=600, check=False)
        output = proc.stdout.strip()
        if proc.returncode:
            output += "\n(failed: " + (proc.stderr.strip().splitlines() or ["no message"])[-1][:500] + ")"
        return {"ok": proc.returncode == 0, "output": output}

    # ---- the whole run -------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.time()
        self.check_tools()
        log(f"databases {self.db} and {self.target_db}")
        self.create_databases()
        try:
            log("migrate")
            self.manage("migrate", "--noinput", "-v", "0")
            log("seed")
            seed_path = self.tmp / "seed.json"
            self.run_script("bench/populate.py", str(seed_path), self.target_db)
            self.seed = json.loads(seed_path.read_text())
            log("queries per request")
            queries_path = self.tmp / "queries.json"
            self.run_script("bench/queries.py", str(seed_path), str(queries_path))
            queries = json.loads(queries_path.read_text())
            keys = self.args.only.split(",") if self.args.only else [e.key for e in ENDPOINTS]
            results: dict[str, dict[str, Any]] = {}
            log(f"load: gunicorn {WORKERS} sync workers, wrk {THREADS} threads x 1 connection, "
                f"{self.args.duration:g} s per endpoint and side (+{self.args.warmup:g} s warm-up)")
            self.start_server()
            pids = self.workers()
            mixed = []
            memory_error = ""
            if not self.args.skip_memory:
                log("memory: mixed API requests until each worker has served 2,000 requests")
                try:
                    mixed.append(self.drive_mixed_until(pids, 2000))
                except MemoryCheckFailed as exc:
                    memory_error = str(exc)
            load_before = Path("/proc/loadavg").read_text().split()[:3]
            for key in keys:
                results[key] = self.measure(key)
            load_after = Path("/proc/loadavg").read_text().split()[:3]
            memory: dict[str, Any] | None = None
            if not self.args.skip_memory and not memory_error:
                log("memory: mixed API requests until each worker has served 20,000 requests")
                try:
                    mixed.append(self.drive_mixed_until(pids, 20000))
                except MemoryCheckFailed as exc:
                    memory_error = str(exc)
            if memory_error:
                log(f"  memory check failed: {memory_error}")
                memory = {"error": memory_error, "workers": [], "ok": False}
            elif not self.args.skip_memory:
                memory = self.memory_summary(pids, mixed)
                for w in memory["workers"]:
                    log(f"  worker {w['pid']}: RSS {w['rss_2k_kib']} KiB after 2,000 requests, "
                        f"{w['rss_20k_kib']} KiB after 20,000 ({w['growth']:+.1%})")
            cma0: dict[str, dict[str, Any]] = {}
            self.phase = "cma0"
            if not self.args.skip_conn_max_age_0:
                log("CONN_MAX_AGE=0 (a new database connection per request) beside CONN_MAX_AGE=60, interleaved")
                self.extra = self.spawn(workers=WORKERS, conn_max_age=0)
                port0 = self.extra[1]
                for key in CMA0_KEYS:
                    cma0[key] = self.measure(key, [("api", "api", port0), ("floor", "floor", port0),
                                                   ("api_cma60", "api", 0), ("floor_cma60", "floor", 0)])
            self.stop_server()  # the workers write their last request times as they exit
            inside = worker_times.tails(self.stats_dir, self.windows, "main")
            repoint_script = None
            if not self.args.skip_repoint_script:
                log("bench/repoint.py: one 10,000-node repoint, dry run and apply")
                repoint_script = self.repoint_script()
                for line in repoint_script["output"].splitlines():
                    log(f"  {line}")
        finally:
            self.stop_server()
            if self.args.keep:
                log(f"kept: DATABASE_URL={PG}{self.db}, seed file {self.tmp / 'seed.json'} "
                    f"(its keys: {self.tmp / 'keys.env'})")
            else:
                self.drop_databases()
                shutil.rmtree(self.tmp, ignore_errors=True)
        return {"results": results, "inside": inside, "cma0": cma0, "queries": queries, "memory": memory,
                "cache": self.cache,
                "repoint_script": repoint_script, "elapsed": time.time() - started,
                "load": [load_before, load_after]}


def merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several wrk runs as one: summed counts and time, latency percentiles of the merged distribution
    (from each run's quantile grid, weighted by its number of requests)."""
    total = sum(r["requests"] for r in runs)
    merged: dict[str, Any] = {
        "requests": total,
        "duration_us": sum(r["duration_us"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "max": max(r["max"] for r in runs),
        "slices": [{k: r[k] for k in ("requests", "rps", "p50", "p99", "errors")} for r in runs],
        "stderr": [m for r in runs for m in r["stderr"]][:3],
    }
    merged["rps"] = total / (merged["duration_us"] / 1e6) if merged["duration_us"] else 0.0
    grids = [(r["requests"], [p / 100 for p, _ in r["quantiles"]], [v for _, v in r["quantiles"]]) for r in runs]
    candidates = sorted({v for _, _, values in grids for v in values})

    def below(x: float) -> float:
        count = 0.0
        for n, ps, values in grids:
            i = bisect.bisect_right(values, x)
            count += n * (ps[i - 1] if i else 0.0)
        return count

    for name, p in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99)):
        merged[name] = next((x for x in candidates if below(x) >= p * total - 1e-9), merged["max"]) if total else 0
    return merged


# ---- report -----------------------------------------------------------------------------------


def reproducing_flags(argv: list[str]) -> list[str]:
    """The command-line flags that shaped the figures: where the report went (``--out``, ``--json``,
    either as ``--out F`` or ``--out=F``) is left out."""
    flags: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--out", "--json"):
            skip = True
        elif not arg.startswith(("--out=", "--json=")):
            flags.append(arg)
    return flags


def fmt_ms(us: float) -> str:
    return f"{us / 1000:.2f}"


@dataclass
class Report:
    data: dict[str, Any]
    args: argparse.Namespace
    lines: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    def row(self, label: str, api: dict, floor: dict, queries: dict | None, target: float | None) -> str:
        ratio = api["rps"] / floor["rps"] if floor["rps"] else 0.0
        tail = api["p99"] / api["p50"] if api["p50"] else 0.0
        ok = ((target is None or ratio >= target) and tail <= TAIL_TARGET and api["errors"] == 0
              and floor["errors"] == 0)
        if not ok:
            self.missed.append(label)
        q = f"{queries['api']} / {queries['floor']}" if queries else "-"
        return (f"| {label} | {api['rps']:.0f} | {fmt_ms(api['p50'])} | {fmt_ms(api['p99'])} | "
                f"{floor['rps']:.0f} | {fmt_ms(floor['p50'])} | {fmt_ms(floor['p99'])} | **{ratio:.2f}x** | "
                f"{'-' if target is None else f'{target:g}x'} | {tail:.1f} | {q} | {api['errors']}/{floor['errors']} | "
                f"{'yes' if ok else 'NO'} |")

    def inside_table(self, inside: dict[str, dict[str, dict[str, Any]]]) -> None:
        """The same slices timed inside the workers (bench/worker_times.py): what the service adds."""
        if not inside:
            return
        out = self.lines
        out += ["", "Timed inside the workers (Django's outermost middleware, the requests of the same slices; "
                "without the accept, the HTTP parsing and writing, the other processes on the cores and wrk's "
                "own wakeups):", "",
                "| endpoint | API p50 ms | API p99 ms | API p99/p50 | floor p50 ms | floor p99 ms | floor p99/p50 |",
                "|---|---|---|---|---|---|---|"]
        for key, sides in inside.items():
            api, floor = sides.get("api"), sides.get("floor")
            if not api or not floor or not api["p50"] or not floor["p50"]:
                continue
            out.append(f"| {BY_KEY[key].label} | {fmt_ms(api['p50'])} | {fmt_ms(api['p99'])} | "
                       f"{api['p99'] / api['p50']:.1f} | {fmt_ms(floor['p50'])} | {fmt_ms(floor['p99'])} | "
                       f"{floor['p99'] / floor['p50']:.1f} |")

    def build(self) -> str:
        d, a = self.data, self.args
        out = self.lines
        out.append("# Benchmark results")
        out.append("")
        out.append(f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores "
                   f"({platform.python_implementation()} {platform.python_version()}, "
                   f"PostgreSQL {pg_version()}); whole run {d['elapsed'] / 60:.1f} min.")
        out.append("")
        out.append("Command (from the repository root, PostgreSQL on 127.0.0.1:5432 with trust auth for "
                   "`postgres`):")
        out.append("")
        out.append("```")
        out.append(" ".join([".venv/bin/python bench/run.py", *reproducing_flags(sys.argv[1:])]))
        out.append("```")
        out.append("")
        out.append(f"gunicorn {WORKERS} sync workers (`bench.settings`, DEBUG off, CONN_MAX_AGE=60, "  # noqa: S608
                   f"Django's cache {d.get('cache', '?')}), "
                   f"wrk {THREADS} threads x 1 connection (closed-loop, loopback), {a.duration:g} s per endpoint "
                   f"and side (after a {a.warmup:g} s warm-up) in alternating {a.slice:g} s API and floor slices "
                   f"(the 10,000-node repoint: {a.duration * 2:g} s per side in 5 s slices, API-floor-floor-API, each "
                   "after a VACUUM of the tables it writes, as autovacuum would between them: it is off on "
                   "this machine's server); "
                   "1,000 data sources in the organization. "
                   "**Floor** = bare Django views in `bench/floor.py` doing the minimum SQL for the same "
                   "response (one indexed SELECT for a read, SELECT ... FOR UPDATE + UPDATE for a write; "
                   "same token check; no DRF, no service layer, no audit row). "
                   "Targets (issue 18): API >= the target ratio of its floor's req/s (0.6x for the reads and the "
                   "plain PATCH, 0.4x for the 10-node repoint, 0.9x for the 10,000-node one; none for the "
                   f"connection PATCH), p99 <= {TAIL_TARGET:g}x p50. The floor resolves its token with SQL on every "
                   "request; the API serves it from its token cache. "
                   f"Load average (1, 5, 15 min) before / after the load phase: {' '.join(d['load'][0])} / "
                   f"{' '.join(d['load'][1])} (the load generator, gunicorn and PostgreSQL share the cores, "
                   "with whatever else runs on the machine).")
        out.append("")
        header = ("| endpoint | API req/s | API p50 ms | API p99 ms | floor req/s | floor p50 ms | floor p99 ms | "
                  "API/floor | target | API p99/p50 | queries API / floor | errors API/floor | target met |")
        sep = "|" + "---|" * 13
        out.append("## Persistent connections (CONN_MAX_AGE=60)")
        out.append("")
        out += [header, sep]
        for key, sides in d["results"].items():
            e = BY_KEY[key]
            out.append(self.row(e.label, sides["api"], sides["floor"], d["queries"].get(e.queries_key), e.target))
        self.inside_table(d.get("inside") or {})
        if d["cma0"]:
            out.append("")
            out.append("## A new database connection per request (CONN_MAX_AGE=0), for comparison")
            out.append("")
            out += [header, sep]
            for key, sides in d["cma0"].items():
                e = BY_KEY[key]
                label = f"{e.label} (CONN_MAX_AGE=0)"
                line = self.row(label, sides["api"], sides["floor"], d["queries"].get(e.queries_key), e.target)
                self.missed = [m for m in self.missed if m != label]  # a comparison line, not a target
                out.append(line)
            out.append("")
            out.append("Measured beside a CONN_MAX_AGE=60 server in the same alternating slices:")
            out.append("")
            for key, sides in d["cma0"].items():
                out.append(f"- {BY_KEY[key].label}: persistent connections give "
                           f"{sides['api_cma60']['rps'] / sides['api']['rps']:.1f}x the API's req/s "
                           f"({sides['api_cma60']['rps']:.0f} vs {sides['api']['rps']:.0f}) and "
                           f"{sides['floor_cma60']['rps'] / sides['floor']['rps']:.1f}x the floor's "
                           f"({sides['floor_cma60']['rps']:.0f} vs {sides['floor']['rps']:.0f}).")
        q = d["queries"]
        out.append("")
        out.append("## Queries per request (API / floor), counted in-process")
        out.append("")
        out.append("| request | API | floor |")
        out.append("|---|---|---|")
        for key, label in (("get_ds", "GET a data source"), ("list_10", "list, page_size=10"),
                           ("list_50", "list, page_size=50"), ("list_200", "list, page_size=200"),
                           ("patch_plain", "PATCH description + tags"), ("patch_conn", "PATCH connection"),
                           ("get_wds", "GET workflow data source"), ("repoint_10", "repoint, 10 nodes"),
                           ("repoint_100", "repoint, 100 nodes"), ("repoint_10000", "repoint, 10,000 nodes")):
            if key in q:
                out.append(f"| {label} | {q[key]['api']} | {q[key]['floor']} |")
        flat_list = len({q[k]["api"] for k in ("list_10", "list_50", "list_200") if k in q}) == 1
        flat_repoint = len({q[k]["api"] for k in ("repoint_10", "repoint_100", "repoint_10000") if k in q}) == 1
        out.append("")
        out.append(f"- List: the query count {'does not grow' if flat_list else 'GROWS'} with the page size.")
        out.append(f"- Repoint: the query count {'does not grow' if flat_repoint else 'GROWS'} with the number "
                   "of nodes.")
        if not flat_list:
            self.missed.append("list query count")
        if not flat_repoint:
            self.missed.append("repoint query count")
        m = d["memory"]
        if m and m.get("error"):
            out.append("")
            out.append("## Memory: NOT MEASURED")
            out.append("")
            out.append("```")
            out.append(m["error"])
            out.append("```")
            self.missed.append("memory (not measured)")
        elif m:
            out.append("")
            out.append(f"## Memory (each of the {WORKERS} gunicorn workers)")
            out.append("")
            out.append("| worker | RSS after its 1st request | after 2,000 requests | after 20,000 requests | "
                       "growth 2,000 -> 20,000 | target (<= 10%) |")
            out.append("|---|---|---|---|---|---|")
            for w in m["workers"]:
                first = f"{w['rss_first_kib'] / 1024:.1f} MiB" if w["rss_first_kib"] else "-"
                out.append(f"| pid {w['pid']} | {first} | {w['rss_2k_kib'] / 1024:.1f} MiB | "
                           f"{w['rss_20k_kib'] / 1024:.1f} MiB | {w['growth']:+.1%} | {'yes' if w['ok'] else 'NO'} |")
            out.append("")
            out.append("Each worker's RSS is read by the worker itself (`/proc/self/status`, "
                       "`RequestCountMiddleware` of `bench.settings`) when it has served exactly 2,000 and "
                       "20,000 requests. The first 2,000 are mixed API requests (per 1,000: ~600 GETs of a data "
                       "source, 100 lists of 50, 180 plain PATCHes, 100 GETs of a workflow data source, 20 repoints, "
                       "10 connection PATCHes), so every code path has run before the 2,000 mark; then come the "
                       "benchmark's own requests (every endpoint, API and floor), topped up with the same mix up to "
                       f"20,000 ({m['mixed_requests']} mixed requests in {m['mixed_seconds']:.0f} s, "
                       f"{m['errors']} errors).")
            if not m["ok"]:
                self.missed.append("memory")
        r = d.get("repoint_script")
        if r:
            out.append("")
            out.append("## One 10,000-node repoint, request by request (`bench/repoint.py`)")
            out.append("")
            out.append("10,000 nodes reading 1,000 tables, in its own throwaway database; the full API request.")
            out.append("")
            out.append("```")
            out.append(r["output"] or "(no output)")
            out.append("```")
        out.append("")
        out.append("Missed targets: " + (", ".join(self.missed) if self.missed else "none") + ".")
        return "\n".join(out) + "\n"


def redis_answers(url: str) -> bool:
    """Whether a Redis server answers PING at ``url``'s host and port (a raw socket: no client needed)."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def pg_version() -> str:
    with psycopg.connect(PG + "postgres") as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint and side")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per endpoint and side")
    parser.add_argument("--slice", type=float, default=2.0,
                        help="the API and floor runs alternate in slices of about this many seconds")
    parser.add_argument("--only", default="", help=f"comma-separated endpoints: {','.join(BY_KEY)}")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-conn-max-age-0", action="store_true")
    parser.add_argument("--skip-repoint-script", action="store_true", help="do not run bench/repoint.py")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway databases")
    parser.add_argument("--out", default=str(BENCH / "results.md"))
    parser.add_argument("--json", default="", help="also write the raw figures to this JSON file")
    args = parser.parse_args()
    data = Bench(args).run()
    report = Report(data, args).build()
    print()
    print(report)
    Path(args.out).write_text(report)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1, default=str))
    log(f"written to {args.out}")


if __name__ == "__main__":
    main()

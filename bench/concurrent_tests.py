"""Slow connection tests against a real gunicorn (the project's gunicorn.conf.py): do reads keep flowing?

    .venv/bin/python bench/concurrent_tests.py [--tests 20] [--timeout 5] [--workers 2] [--threads 24]
        [--slots 20] [--clients 4] [--idle 4] [--cache-url redis://127.0.0.1:6379/13] [--sync]

On a throwaway PostgreSQL database (``dsp_bench_conc_<time>_<pid>``, dropped at the end): 5
organizations with 4 black-holed PostgreSQL data sources each (a loopback port that completes the
TCP handshake and never answers; connection_timeout ``--timeout``) and one readable data source.
gunicorn runs ``config.wsgi`` with ``--config gunicorn.conf.py`` (gthread) and the shared cache
``--cache-url`` (Redis, as in production). Then:

1. idle: ``--clients`` threads GET one data source over keep-alive connections for ``--idle`` s;
2. during: ``--tests`` POST .../test/ at once, spread over the organizations (the default bound of
   4 per organization), and, once every test holds its slot, the same GET load until just before
   the tests' timeout;
3. prints GET p50/p99 idle vs during (target: p99 during <= 2x idle) and each test's outcome and
   duration against its timeout (target: <= timeout + 1 s).

20 tests at once need 20 test slots: the defaults give 2 workers x 24 threads with 20 slots each
(TEST_SLOTS_PER_PROCESS), so that the tests fit however gunicorn spreads them; the default
deployment (8 threads, 6 slots per worker) would answer the extra tests 429 at once. ``--sync`` runs
the same with gunicorn's sync workers (the previous serving model) and 2 tests, to show the stall.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
PG = "postgresql://postgres@127.0.0.1:5432/"
ORGS = 5


def log(message: str) -> None:
    print(f"[concurrent {time.strftime('%H:%M:%S')}] {message}", flush=True)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def environment(db: str, cache_url: str, tmp: Path, args: argparse.Namespace) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k not in ("CACHE_URL", "DJANGO_SETTINGS_MODULE")},
        "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ENCRYPTION_KEYS": "k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
        "DATABASE_URL": PG + db, "CACHE_URL": cache_url, "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false", "DATASOURCE_ALLOWED_NETWORKS": "127.0.0.0/8",
        "DATASOURCE_TEST_RATE_PER_TOKEN": "100000000", "DATASOURCE_TEST_RATE_PER_ORG": "100000000",
        "GUNICORN_THREADS": str(args.threads), "TEST_SLOTS_PER_PROCESS": str(args.slots),
        "SCHEMA_REFRESH_ASYNC": "false", "CONN_MAX_AGE": "60", "LOG_LEVEL": "WARNING", "STATIC_ROOT": str(tmp),
    }


def seed(port: int, timeout: int) -> dict[str, Any]:
    """Organizations, tokens and data sources, through the services (this process: the bench database)."""
    import django

    django.setup()
    from django.core.management import call_command

    from core.references import new_reference_id
    from datasources.models import DataSource
    from organizations.models import ALL_SCOPES
    from organizations.services import create_organization, create_token

    call_command("migrate", verbosity=0)
    orgs = []
    for i in range(ORGS):
        org = create_organization(slug=f"bench-{i}")[0]
        _, raw = create_token(organization=org, name="bench", scopes=ALL_SCOPES)
        connection = {"host": "127.0.0.1", "port": port, "database": "d", "username": "u", "ssl": {"mode": "prefer"}}
        sources = [DataSource.objects.create(organization=org, reference_id=new_reference_id(DataSource),
                                             name=f"Silent {j}", type="postgresql", connection_timeout=timeout,
                                             connection=connection).pk for j in range(4)]
        orgs.append({"id": org.pk, "token": raw, "sources": sources})
    readable = DataSource.objects.create(organization_id=orgs[0]["id"], reference_id=new_reference_id(DataSource),
                                         name="Readable", type="sqlite",
                                         connection={"path": "shop.db"}).pk
    return {"orgs": orgs, "readable": readable}


def running_tests(orgs: list[dict]) -> int:
    from django.core.cache import cache

    from datasources.services.test_slots import KEY

    return len(cache.get_many([KEY.format(organization=o["id"], index=i) for o in orgs for i in range(32)]))


def start_gunicorn(env: dict[str, str], workers: int, sync: bool, log_path: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    extra = ["--worker-class", "sync", "--threads", "1"] if sync else []
    proc = subprocess.Popen(  # noqa: S603
        [str(Path(PY).parent / "gunicorn"), "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--timeout", "120", "--backlog", "256", *extra, "config.wsgi:application"],
        cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200 and log_path.read_text().count("Booting worker") >= workers:
                time.sleep(1.0)  # every worker has imported the app
                return proc, port
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not start; see {log_path}")


ERRORS: list[str] = []


def get_load(port: int, token: str, path: str, seconds: float, clients: int) -> list[float]:
    """``clients`` threads, each GETting ``path`` over its own keep-alive connection for ``seconds``;
    the latencies (ms) of the 200s (any other answer is recorded in ERRORS)."""
    latencies: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        while time.monotonic() < end:
            start = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            body = response.read()
            if response.status == 200:
                mine.append((time.perf_counter() - start) * 1000)
            else:
                with lock:
                    ERRORS.append(f"GET {response.status}: {body[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def one_test(port: int, token: str, source: int) -> tuple[int, str, float]:
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", f"/api/v1/data-sources/{source}/test/", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    body = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, body.get("stage") or body.get("code", ""), time.monotonic() - start


def run(args: argparse.Namespace) -> int:
    db = f"dsp_bench_conc_{int(time.time())}_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-conc-"))
    hole = socket.create_server(("127.0.0.1", 0), backlog=256)  # never accepts: every test waits its timeout
    env = environment(db, args.cache_url, tmp, args)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import psycopg

    with psycopg.connect(PG + "postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    proc = None
    try:
        seeded = seed(hole.getsockname()[1], args.timeout)
        from django.core.cache import cache

        cache.clear()  # this run's slots only (the bench's own cache database)
        proc, port = start_gunicorn(env, args.workers, args.sync, tmp / "gunicorn.log")
        orgs, readable = seeded["orgs"], seeded["readable"]
        path, reader = f"/api/v1/data-sources/{readable}/", orgs[0]["token"]
        mode = "sync workers" if args.sync else f"gthread, {args.threads} threads, {args.slots} test slots"
        log(f"gunicorn --config gunicorn.conf.py: {args.workers} workers ({mode}), CACHE_URL={args.cache_url}; "
            f"{args.tests} tests, connection_timeout {args.timeout} s; {args.clients} GET clients; "
            f"load average {os.getloadavg()[0]:.1f}")
        get_load(port, reader, path, 1.0, args.clients)  # warm-up: connections, token cache
        idle = get_load(port, reader, path, args.idle, args.clients)

        plan = [(orgs[i % ORGS]["token"], orgs[i % ORGS]["sources"][(i // ORGS) % 4]) for i in range(args.tests)]
        with ThreadPoolExecutor(args.tests) as pool:
            started = time.monotonic()
            futures = [pool.submit(one_test, port, token, source) for token, source in plan]
            while running_tests(orgs) < args.tests and time.monotonic() - started < args.timeout / 2:
                if any(f.done() for f in futures):
                    break
                time.sleep(0.02)
            in_flight = running_tests(orgs)
            ready = time.monotonic() - started
            during = get_load(port, reader, path, max(0.5, args.timeout - ready - 1.0), args.clients)
            still_running = sum(not f.done() for f in futures)
            results = [f.result() for f in futures]
        return report(args, idle, during, results, in_flight, still_running, ready)
    finally:
        if proc is not None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
        hole.close()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(PG + "postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def report(args: argparse.Namespace, idle: list[float], during: list[float], results: list[tuple[int, str, float]],
           in_flight: int, still_running: int, ready: float) -> int:
    if ERRORS:
        print(f"{len(ERRORS)} GETs were not answered 200 (e.g. PostgreSQL out of connections: each thread keeps its "
              f"own); first: {ERRORS[0]}")
    if not idle:
        print("no GET answered 200 while idle: nothing to compare")
        return 1
    p50_idle, p99_idle = quantile(idle, 0.5), quantile(idle, 0.99)
    p50_during, p99_during = (quantile(during, 0.5), quantile(during, 0.99)) if during else (float("nan"),) * 2
    ratio = p99_during / p99_idle
    print()
    print(f"GET a data source, {args.clients} clients    requests   p50 ms   p99 ms   max ms")
    print(f"  idle                              {len(idle):8d} {p50_idle:8.1f} {p99_idle:8.1f} {max(idle):8.1f}")
    print(f"  during {args.tests} black-holed tests      {len(during):8d} {p50_during:8.1f} {p99_during:8.1f} "
          f"{max(during) if during else float('nan'):8.1f}")
    print(f"  p99 during / idle: {ratio:.2f}x (target <= 2x): {'met' if ratio <= 2 else 'NOT met'}")
    print(f"  tests holding a slot when the GETs began: {in_flight} of {args.tests} ({ready:.2f} s after they were "
          f"sent); still running when the GETs ended: {still_running}")
    print()
    print(f"connection tests (connection_timeout {args.timeout} s; target <= {args.timeout + 1} s)")
    durations = [r[2] for r in results]
    for i, (status, stage, seconds) in enumerate(results):
        flag = "" if seconds <= args.timeout + 1 else "  OVER"
        print(f"  test {i + 1:2d}: {status} {stage:<14} {seconds:6.2f} s{flag}")
    over = sum(d > args.timeout + 1 for d in durations)
    print(f"  median {statistics.median(durations):.2f} s, slowest {max(durations):.2f} s; "
          f"{over} over timeout + 1 s; statuses {sorted({r[0] for r in results})}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    met = ratio <= 2 and over == 0 and all(r[0] == 400 and r[1] == "tcp" for r in results)
    return 0 if met or args.sync else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", type=int, default=20)
    parser.add_argument("--timeout", type=int, default=5, help="each test's connection_timeout (s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=24, help="GUNICORN_THREADS")
    parser.add_argument("--slots", type=int, default=20, help="TEST_SLOTS_PER_PROCESS")
    parser.add_argument("--clients", type=int, default=4, help="GET client threads (keep-alive connections)")
    parser.add_argument("--idle", type=float, default=4.0, help="seconds of idle GET load")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--sync", action="store_true", help="gunicorn's sync workers (the previous model), 2 tests")
    args = parser.parse_args()
    if args.sync and args.tests == 20:
        args.tests = 2
    if args.tests > ORGS * 4:
        parser.error(f"at most {ORGS * 4} tests (4 per organization, {ORGS} organizations)")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

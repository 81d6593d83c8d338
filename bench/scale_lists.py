"""Scale (issue 18): the list and its filters at 1,000 and at 100,000 data sources, the plans that
serve them, and the scheduler ticks at both sizes.

    .venv/bin/python bench/scale_lists.py [--requests 40] [--rounds 4] [--sources 100000]

In a throwaway PostgreSQL database (127.0.0.1:5432, trust auth for ``postgres``; dropped afterwards),
migrated, then seeded by ``bench/seed.py`` in two steps: 10 organizations with 100 sources each
(1,000), copied then to a second database, then 1,000 organizations (100,000 sources, 10,000
workflows). In-process (Django's test client, the token cache warm), it times ``--requests``
requests of each list of one organization at each size (100 sources, the same at both sizes: only
the table grows), in ``--rounds`` rounds that alternate between the two databases so that the
machine's drift weighs on both alike, and prints the median and 90th percentile, the statements per
request, and at the large size each query's plan (EXPLAIN ANALYZE: the indexes used, no sequential
scan of the data-source table). The ticks: the due ids of the schema refresh and the health check
(one statement each), timed, with their plans.
Target: each list's median at 100,000 within 1.5x of its median at 1,000.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
PG = "postgresql://postgres@127.0.0.1:5432/"
DB = f"dsp_scale_{int(time.time())}_{os.getpid()}"
SMALL_DB = f"{DB}_small"  # a copy of DB at 1,000 sources, taken before it grows
os.environ["DATABASE_URL"] = PG + DB
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ENCRYPTION_KEYS", "bench:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.pop("CACHE_URL", None)  # one process: the local-memory cache serves the token cache

import django  # noqa: E402

CASES = {
    "list": "",
    "type": "type=mysql",
    "tag": "tag=team-7",
    "status": "status=error",
    "search": "search=warehouse",
    "health": "health=failing",
}
TARGET = 1.5


def use_database(name: str) -> None:
    """Point Django's connection at another database (the next statement connects to it)."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name


def time_requests(client, requests: int, times: dict[str, list[float]]) -> None:
    """``requests`` timed requests of each list, added to ``times`` (after one untimed warm-up each:
    the token cache, the process's querysets, the connection's prepared statements)."""
    for name, query in CASES.items():
        path = f"/api/v1/data-sources/?page_size=50&{query}"
        assert client.get(path).status_code == 200
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(path)
            times.setdefault(name, []).append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:300]


def summary(client, times: dict[str, list[float]]) -> dict[str, dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    out = {}
    for name, query in CASES.items():
        with CaptureQueriesContext(connection) as queries:
            count = client.get(f"/api/v1/data-sources/?page_size=50&{query}").json()["count"]
        ordered = sorted(times[name])
        out[name] = {"median": statistics.median(ordered), "p90": ordered[int(0.9 * len(ordered)) - 1],
                     "statements": len(queries), "count": count, "sql": queries.captured_queries[-1]["sql"]}
    return out


def plan_of(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def indexes_in(plan: str) -> str:
    used = sorted(set(re.findall(r"(?:Index|Index Only) Scan (?:Backward )?using (\w+)|Bitmap Index Scan on (\w+)",
                                 plan)))
    names = sorted({a or b for a, b in used})
    seq = "SEQ SCAN of datasources_datasource" if "Seq Scan on datasources_datasource" in plan else "no seq scan"
    return f"{', '.join(names) or 'no index'}; {seq}"


def ticks() -> dict[str, dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from datasources.tasks import due_data_sources, due_health_checks

    out = {}
    for name, query in (("schema refresh", due_data_sources), ("health check", due_health_checks)):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            ids = list(query())
            elapsed = (time.perf_counter() - started) * 1000
        out[name] = {"due": len(ids), "ms": elapsed, "statements": len(queries),
                     "plan": indexes_in(plan_of(queries.captured_queries[0]["sql"]))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="timed requests of each list at each size")
    parser.add_argument("--rounds", type=int, default=4, help="alternations between the two sizes")
    parser.add_argument("--sources", type=int, default=100_000)
    args = parser.parse_args()
    with psycopg.connect(PG + "postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DB}"')
    try:
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(PG + "postgres", autocommit=True) as conn:
            for name in (DB, SMALL_DB):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args: argparse.Namespace) -> None:
    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client

    from bench.seed import SLUG, analyze, seed
    from organizations.models import ALL_SCOPES, Organization
    from organizations.services import create_token

    call_command("migrate", verbosity=0)
    small_orgs, large_orgs = 10, 1_000
    per_org = args.sources // large_orgs
    labels = ("1,000", f"{args.sources:,}")
    for orgs in (small_orgs, large_orgs):
        started = time.perf_counter()
        seed(sources=per_org * orgs, organizations=orgs, workflows=10 * orgs)
        analyze()
        print(f"seeded {per_org * orgs:,} sources in {orgs} organizations in {time.perf_counter() - started:.1f} s")
        if orgs == small_orgs:  # the token, then a copy of the small database: both sizes stay measurable
            org = Organization.objects.get(slug=SLUG.format(5))
            _, raw = create_token(organization=org, name="scale", scopes=list(ALL_SCOPES))
            client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
            connections.close_all()
            with psycopg.connect(PG + "postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{SMALL_DB}" TEMPLATE "{DB}"')
    # Both sizes in alternating rounds, so that the machine's drift over the minutes weighs on both alike.
    times: dict[str, dict[str, list[float]]] = {label: {} for label in labels}
    rounds = max(1, args.rounds)
    sides = list(zip(labels, (SMALL_DB, DB), strict=True))
    for index in range(rounds):
        for label, name in sides if index % 2 == 0 else sides[::-1]:  # small-large, large-small, ...
            use_database(name)
            time_requests(client, max(1, args.requests // rounds), times[label])
    timed = rounds * max(1, args.requests // rounds)
    figures = {}
    for label, name in zip(labels, (SMALL_DB, DB), strict=True):
        use_database(name)
        figures[label] = {"lists": summary(client, times[label]), "ticks": ticks()}
    small, large = figures.values()
    (small_label, large_label) = figures.keys()
    print()
    print(f"## The list of one organization (100 sources), {timed} requests each, in-process")
    print()
    print(f"| list | rows | statements | median ms at {small_label} | at {large_label} | ratio | p90 ms at "
          f"{small_label} | at {large_label} | within {TARGET}x | plan at {large_label} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    missed = []
    for name in CASES:
        a, b = small["lists"][name], large["lists"][name]
        ratio = b["median"] / a["median"]
        ok = ratio <= TARGET and a["count"] == b["count"]
        if not ok:
            missed.append(name)
        print(f"| {name} | {b['count']} | {b['statements']} | {a['median']:.1f} | {b['median']:.1f} | {ratio:.2f}x | "
              f"{a['p90']:.1f} | {b['p90']:.1f} | {'yes' if ok else 'NO'} | {indexes_in(plan_of(b['sql']))} |")
    print()
    print("## Scheduler ticks: the due ids (one statement each)")
    print()
    print(f"| tick | due at {small_label} | ms | statements | due at {large_label} | ms | statements | "
          f"plan at {large_label} |")
    print("|---|---|---|---|---|---|---|---|")
    for name in small["ticks"]:
        a, b = small["ticks"][name], large["ticks"][name]
        print(f"| {name} | {a['due']} | {a['ms']:.1f} | {a['statements']} | {b['due']} | {b['ms']:.1f} | "
              f"{b['statements']} | {b['plan']} |")
    print()
    print("Missed: " + (", ".join(missed) if missed else "none") + ".")
    for name in ("tag", "search"):
        print(f"\nEXPLAIN ANALYZE, {name} at {large_label}:\n{plan_of(large['lists'][name]['sql'])}")


if __name__ == "__main__":
    main()

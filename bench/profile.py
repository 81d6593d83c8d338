"""Profile one endpoint in-process (pyinstrument) and list the SQL of one request.

    DATABASE_URL=... python bench/profile.py SEED.json ENDPOINT [--side api|floor] [-n 300] [--sql]
        [--html OUT.html]

SEED.json is the file bench/populate.py wrote (``bench/run.py --keep`` keeps it and the databases and
prints where). ENDPOINT is one of bench/run.py's keys: get_ds, list_50, patch_plain, patch_conn,
get_wds, repoint, repoint_10k. Needs ``pip install pyinstrument``. The same environment variables
as bench/run.py's server are set here when absent, SECRET_KEY and ENCRYPTION_KEYS from the
keys.env that bench/run.py wrote beside SEED.json (the keys the seed was encrypted with).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for key, value in {
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_SSL_REDIRECT": "false",
    "DATASOURCE_ALLOWED_NETWORKS": "127.0.0.0/8",
    "DATASOURCE_TEST_RATE_PER_TOKEN": "100000000",
    "DATASOURCE_TEST_RATE_PER_ORG": "100000000",
    "LOG_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(key, value)
KEYS = Path(sys.argv[1]).parent / "keys.env" if len(sys.argv) > 1 else None
if KEYS is not None and KEYS.is_file():
    for line in KEYS.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            os.environ.setdefault(key, value)

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402


def source_version(wds: int) -> int | None:
    from workflows.models import WorkflowDataSource

    return WorkflowDataSource.objects.get(pk=wds).source_version


def ssl_mode(ds: int) -> str:
    from datasources.models import DataSource

    return (DataSource.objects.get(pk=ds).connection.get("ssl") or {}).get("mode") or "prefer"


def requests_for(seed: dict, key: str, prefix: str, n: int) -> list[tuple[str, str, dict | None]]:
    ids = seed["data_sources"]
    flow, big = seed["flows"][0], seed["bigs"][0]
    out: list[tuple[str, str, dict | None]] = []
    for i in range(n):
        ds = ids[(i * 37) % len(ids)]
        if key == "get_ds":
            out.append(("GET", f"{prefix}/data-sources/{ds}/", None))
        elif key == "list_50":
            out.append(("GET", f"{prefix}/data-sources/?page_size=50&page={i % 20 + 1}", None))
        elif key == "patch_plain":
            out.append(("PATCH", f"{prefix}/data-sources/{ds}/", {"description": f"profile {time.time()} {i}",
                                                                   "tags": ["bench", f"p{i}"]}))
        elif key == "patch_conn":
            modes = ["disable", "prefer"] if ssl_mode(seed["connection_sources"][0]) != "disable" else [
                "prefer", "disable"]
            mode = modes[i % 2]
            out.append(("PATCH", f"{prefix}/data-sources/{seed['connection_sources'][0]}/",
                        {"connection": {"ssl": {"mode": mode}}}))
        elif key == "get_wds":
            out.append(("GET", f"{prefix}/workflows/{flow['workflow']}/data-sources/{flow['wds']}/", None))
        elif key in ("repoint", "repoint_10k"):
            target, bodies = (flow, seed["shop_bodies"]) if key == "repoint" else (big, seed["big_bodies"])
            order = ["to_v2", "to_v1"] if source_version(target["wds"]) == 1 else ["to_v1", "to_v2"]
            body = bodies[order[i % 2]]
            out.append(("PATCH", f"{prefix}/workflows/{target['workflow']}/data-sources/{target['wds']}/", body))
        else:
            raise SystemExit(f"unknown endpoint {key}")
    return out


def send(client: Client, method: str, path: str, body: dict | None) -> int:
    if method == "GET":
        return client.get(path).status_code
    return client.patch(path, json.dumps(body), content_type="application/json").status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("seed")
    parser.add_argument("endpoint")
    parser.add_argument("--side", choices=["api", "floor"], default="api")
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--sql", action="store_true", help="print the SQL of one request")
    parser.add_argument("--html", default="")
    args = parser.parse_args()
    seed = json.loads(Path(args.seed).read_text())
    prefix = "/api/v1" if args.side == "api" else "/bench/floor"
    client = Client(HTTP_AUTHORIZATION=f"Bearer {seed['token']}", HTTP_HOST="127.0.0.1")
    if args.endpoint in ("repoint", "repoint_10k", "patch_conn") and args.n % 2:
        args.n += 1  # an even number of alternating requests leaves the state as it was
    for request in requests_for(seed, args.endpoint, prefix, 2):
        status = send(client, *request)
        if status != 200:
            raise SystemExit(f"{request[0]} {request[1]}: {status}")
    if args.sql:
        pair = requests_for(seed, args.endpoint, prefix, 2)
        with CaptureQueriesContext(connection) as ctx:
            status = send(client, *pair[0])
        print(f"status {status}: {len(ctx.captured_queries)} queries")
        for q in ctx.captured_queries:
            print(f"  [{q['time']}s] {q['sql'][:400]}")
        send(client, *pair[1])
        return
    from pyinstrument import Profiler

    batch = requests_for(seed, args.endpoint, prefix, args.n)
    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    with profiler:
        statuses = [send(client, *request) for request in batch]
    elapsed = time.perf_counter() - started
    bad = [s for s in statuses if s != 200]
    print(f"{args.side} {args.endpoint}: {len(batch)} requests in {elapsed:.2f} s "
          f"({elapsed / len(batch) * 1000:.2f} ms each), {len(bad)} not 200")
    print(profiler.output_text(unicode=True, color=False, show_all=bool(os.environ.get("PROFILE_SHOW_ALL"))))
    if args.html:
        Path(args.html).write_text(profiler.output_html())


if __name__ == "__main__":
    main()

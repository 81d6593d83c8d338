"""Queries per request, counted in-process (Django test client + CaptureQueriesContext).

    python bench/queries.py SEED.json OUT.json

Run by bench/run.py against the seeded benchmark database, before the load. For every endpoint it
counts the SQL statements of one warm request, for the API and for its floor; the list is counted at
page sizes 10, 50 and 200 and the repoint with 10, 100 and 10,000 nodes, to show whether the count
grows with the page size or the number of nodes. Every repoint is undone afterwards.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

API = "/api/v1"
FLOOR = "/bench/floor"


def count(client: Client, method: str, path: str, body: dict | None = None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        if method == "GET":
            response = client.get(path)
        else:
            response = client.patch(path, json.dumps(body), content_type="application/json")
    if response.status_code != 200:
        raise SystemExit(f"{method} {path}: {response.status_code} {response.content[:500]!r}")
    return len(ctx.captured_queries)


def main() -> None:
    seed = json.loads(Path(sys.argv[1]).read_text())
    client = Client(HTTP_AUTHORIZATION=f"Bearer {seed['token']}", HTTP_HOST="127.0.0.1")
    ds = seed["data_sources"][0]
    conn_ds = seed["connection_sources"][0]
    flow, mid, big = seed["flows"][0], seed["mid"], seed["bigs"][0]
    results: dict[str, dict[str, int]] = {}

    def both(key: str, method: str, path: str, bodies: list[dict | None] | None = None) -> None:
        results[key] = {}
        for side, prefix in (("api", API), ("floor", FLOOR)):
            sequence = bodies or [None, None]
            counts = [count(client, method, prefix + path, body) for body in sequence]
            results[key][side] = counts[-1]  # warm: the caches (token, "any active webhook?") filled

    both("get_ds", "GET", f"/data-sources/{ds}/")
    for size in (10, 50, 200):
        both(f"list_{size}", "GET", f"/data-sources/?page_size={size}")
    both("patch_plain", "PATCH", f"/data-sources/{ds}/",
         [{"description": "queries a", "tags": ["a"]}, {"description": "queries b", "tags": ["b"]}])
    both("patch_conn", "PATCH", f"/data-sources/{conn_ds}/",
         [{"connection": {"ssl": {"mode": "disable"}}}, {"connection": {"ssl": {"mode": "prefer"}}}])
    both("get_wds", "GET", f"/workflows/{flow['workflow']}/data-sources/{flow['wds']}/")
    shop, big_bodies = seed["shop_bodies"], seed["big_bodies"]
    for key, wf, bodies in (
        ("repoint_10", flow, shop),
        ("repoint_100", mid, big_bodies),
        ("repoint_10000", big, big_bodies),
    ):
        both(key, "PATCH", f"/workflows/{wf['workflow']}/data-sources/{wf['wds']}/",
             [bodies["to_v2"], bodies["to_v1"]])
    Path(sys.argv[2]).write_text(json.dumps(results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

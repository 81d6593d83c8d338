"""Seed the benchmark database (run by bench/run.py with the benchmark's environment).

    python bench/populate.py OUT.json TARGET_DB

One organization ``bench`` with a token (every scope), 1,000 PostgreSQL data sources pointing at
TARGET_DB on the local server (each with an encrypted password and its revision 1), and workflows
for the repoint endpoints:

- ``shop``: schema v1 (old_table, keep, spare) and v2 (old_table renamed new_table, a new table id);
  workflows ``flow-0``/``flow-1`` with 10 nodes each reading it (one workflow per load thread);
- ``big``: 100 tables in v1, all renamed in v2; workflows ``big-0``/``big-1`` with 10,000 nodes
  each (100 readers per table), and ``mid`` with 100 nodes (the query-count comparison).

Writes the ids, the token and the request bodies to OUT.json.
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

from django.db import transaction  # noqa: E402

from core.references import ALPHABET  # noqa: E402
from datasources import catalogue, crypto  # noqa: E402
from datasources.models import (  # noqa: E402
    Credential,
    DataSource,
    DataSourceRevision,
    DataSourceStatus,
    RevisionAction,
    SchemaSnapshot,
    SchemaTable,
)
from datasources.services import revisions  # noqa: E402
from datasources.services.connection import refresh_schema  # noqa: E402
from organizations.models import ALL_SCOPES  # noqa: E402
from organizations.services import create_organization, create_token  # noqa: E402
from workflows.models import Node, NodeInput, Workflow, WorkflowDataSource  # noqa: E402

N_SOURCES = 1000
N_BIG_NODES = 10_000
N_BIG_TABLES = 100
N_MID_NODES = 100
N_FLOW_NODES = 10
THREADS = 2


def ref(kind: str, n: int) -> str:
    """A deterministic unique reference id: a kind letter and n in base 32 (6 characters)."""
    digits = ""
    for _ in range(5):
        n, r = divmod(n, len(ALPHABET))
        digits = ALPHABET[r] + digits
    return kind + digits


def connection_for(database: str) -> dict:
    raw = {"host": "127.0.0.1", "port": 5432, "database": database, "schema": "public", "username": "postgres",
           "ssl": {"mode": "prefer"}}
    return catalogue.normalize_connection(catalogue.get_type("postgresql"), raw)


def snapshot(ds: DataSource, version: int, tables: list[tuple[str, str]]) -> dict[str, str]:
    snap = SchemaSnapshot.objects.create(data_source=ds, version=version, fingerprint=f"bench-v{version}",
                                         table_count=len(tables))
    columns = [{"name": "id", "type": "integer", "nullable": False, "ordinal": 1},
               {"name": "value", "type": "text", "nullable": True, "ordinal": 2}]
    SchemaTable.objects.bulk_create(
        [SchemaTable(snapshot=snap, reference_id=r, schema="public", name=name, columns=columns) for name, r in tables]
    )
    ds.schema_status, ds.schema_version, ds.schema_table_count = "ready", version, len(tables)
    ds.save(update_fields=["schema_status", "schema_version", "schema_table_count"])
    return {name: r for name, r in tables}


def workflow(org, token, name: str, n: int, source: DataSource, reads: list[tuple[str, str]]) -> dict:
    """A workflow reading ``source`` v1 with ``n`` nodes; node i reads reads[i % len(reads)]."""
    wf = Workflow.objects.create(organization=org, reference_id=ref("w", workflow.count), name=name,
                                 created_by_token=token, updated_by_token=token)
    wds = WorkflowDataSource.objects.create(workflow=wf, reference_id=ref("d", workflow.count),
                                            source_data_source=source, source_version=1,
                                            created_by_token=token, updated_by_token=token)
    workflow.count += 1
    start = workflow.nodes
    nodes = Node.objects.bulk_create(
        [Node(workflow=wf, reference_id=ref("n", start + i), name=f"node {i}", created_by_token=token,
              updated_by_token=token) for i in range(n)],
        batch_size=2000,
    )
    workflow.nodes += n
    NodeInput.objects.bulk_create(
        [NodeInput(node=node, workflow_data_source=wds, table_reference_id=reads[i % len(reads)][1],
                   table_name=reads[i % len(reads)][0]) for i, node in enumerate(nodes)],
        batch_size=2000,
    )
    return {"workflow": wf.pk, "wds": wds.pk, "nodes": n}


workflow.count = 0
workflow.nodes = 0


def repoint_bodies(source: DataSource, v1: dict[str, str], v2: dict[str, str], renames: dict[str, str]) -> dict:
    """Bodies that move v1 -> v2 and back, mapping each renamed table explicitly (name:reference_id)."""
    to_v2 = {f"{old}:{v1[old]}": f"{new}:{v2[new]}" for old, new in renames.items()}
    to_v1 = {f"{new}:{v2[new]}": f"{old}:{v1[old]}" for old, new in renames.items()}
    base = f"bench.{source.name}:{source.reference_id}"
    return {
        "to_v2": {"source_data_source": f"{base}:v2", "mapped_tables": to_v2},
        "to_v1": {"source_data_source": f"{base}:v1", "mapped_tables": to_v1},
    }


@transaction.atomic
def seed(target_db: str) -> dict:
    org, _ = create_organization(slug="bench", name="Benchmark")
    token, raw = create_token(organization=org, name="bench", scopes=list(ALL_SCOPES))
    conn = connection_for(target_db)
    sources = DataSource.objects.bulk_create(
        [
            DataSource(
                organization=org, reference_id=ref("s", i), name=f"source {i:04d}", type="postgresql",
                description=f"Benchmark source {i}", connection=conn, tags=["bench", f"group-{i % 10}"],
                metadata={"owner": "bench", "index": i}, status=DataSourceStatus.ACTIVE,
                created_by_token=token, updated_by_token=token,
            )
            for i in range(N_SOURCES)
        ],
        batch_size=500,
    )
    ring = crypto.load_keyring()
    credentials = []
    for ds in sources:
        key_id, ciphertext = crypto.encrypt("bench-password", row_id=ds.pk, field="password", keyring=ring)
        credentials.append(Credential(data_source=ds, field="password", key_id=key_id, ciphertext=ciphertext))
    Credential.objects.bulk_create(credentials, batch_size=500)
    # Revision 1 of each, as the create service records it (a real source always has one: its first
    # PATCH then writes its revision in one statement instead of sealing the secrets anew).
    DataSourceRevision.objects.bulk_create(
        [DataSourceRevision(organization=org, data_source_id=ds.pk, number=1, action=RevisionAction.CREATE,
                            actor_token=token, actor_repr="token:bench", changed=["name", "type", "connection"],
                            config=revisions.config_of(ds, None), secret_names=["password"],
                            **dict(zip(("key_id", "ciphertext"),
                                       revisions.seal(ds.pk, {"password": "bench-password"}), strict=True)))
         for ds in sources],
        batch_size=500,
    )

    def extra_source(name: str, n: int) -> DataSource:
        return DataSource.objects.create(
            organization=org, reference_id=ref("x", n), name=name, type="postgresql", connection=conn,
            status=DataSourceStatus.ACTIVE, created_by_token=token, updated_by_token=token,
        )

    shop = extra_source("shop", 0)
    shop_v1 = snapshot(shop, 1, [("old_table", ref("t", 0)), ("keep", ref("t", 1)), ("spare", ref("t", 2))])
    shop_v2 = snapshot(shop, 2, [("new_table", ref("t", 3)), ("keep", ref("t", 1)), ("spare", ref("t", 2))])
    big = extra_source("big", 1)
    big_v1 = snapshot(big, 1, [(f"t{i:03d}", ref("u", i)) for i in range(N_BIG_TABLES)])
    big_v2 = snapshot(big, 2, [(f"r{i:03d}", ref("u", N_BIG_TABLES + i)) for i in range(N_BIG_TABLES)])

    flow_reads = [("old_table", shop_v1["old_table"]), ("keep", shop_v1["keep"])]
    big_reads = sorted(big_v1.items())
    flows = [workflow(org, token, f"flow-{t}", N_FLOW_NODES, shop, flow_reads) for t in range(THREADS)]
    bigs = [workflow(org, token, f"big-{t}", N_BIG_NODES, big, big_reads) for t in range(THREADS)]
    mid = workflow(org, token, "mid", N_MID_NODES, big, big_reads)
    return {
        "token": raw,
        "org": org.slug,
        "data_sources": [ds.pk for ds in sources],
        "shop": shop.pk,
        "big": big.pk,
        "flows": flows,
        "bigs": bigs,
        "mid": mid,
        "shop_bodies": repoint_bodies(shop, shop_v1, shop_v2, {"old_table": "new_table"}),
        "big_bodies": repoint_bodies(big, big_v1, big_v2, {f"t{i:03d}": f"r{i:03d}" for i in range(N_BIG_TABLES)}),
    }


def main() -> None:
    out, target_db = sys.argv[1], sys.argv[2]
    data = seed(target_db)
    # The sources the connection PATCH toggles (one per load thread) get a real cached schema (v1)
    # from the target database, so each later refresh finds no change and makes no new version.
    data["connection_sources"] = data["data_sources"][-THREADS:]
    for pk in data["connection_sources"]:
        outcome = refresh_schema(data_source=DataSource.objects.get(pk=pk))
        if not outcome.ok:
            raise SystemExit(f"schema refresh of the target database failed: {outcome.error}")
    Path(out).write_text(json.dumps(data))
    print(f"seeded: {len(data['data_sources'])} data sources, workflows {2 * THREADS + 1}, "
          f"{THREADS * N_BIG_NODES + THREADS * N_FLOW_NODES + N_MID_NODES} nodes")


if __name__ == "__main__":
    main()

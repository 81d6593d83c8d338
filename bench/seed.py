"""A large installation for the scale figures (issue 18): organizations, data sources and workflows
written with PostgreSQL's COPY (100,000 sources in well under a minute).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/DB .venv/bin/python bench/seed.py \\
        [--sources 100000] [--organizations 1000] [--workflows 10000]

Into a migrated database (``bench/scale_lists.py`` makes a throwaway one and seeds it in two steps:
1,000 sources, then up to 100,000). Every organization gets the same share of sources and of
workflows (each workflow reads one of its organization's sources), so an organization looks the same
at both sizes: only the table grows. The sources vary in what the list filters on: type (8 types),
status, health state, tags (``team-<n>`` of 20, ``prod`` or ``dev``, ``rare`` on 1 in 1,000) and name
(``<word> <n>``, searchable); 1 in 50 refreshes its schema on a schedule, 1 in 100 has a health-check
interval of its own, and 1 organization in 10 a default one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

from django.db import connection, models, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from datasources.models import DataSource  # noqa: E402
from organizations.models import Organization  # noqa: E402
from workflows.models import Workflow, WorkflowDataSource  # noqa: E402

TYPES = ["postgresql", "mysql", "sqlite", "snowflake", "bigquery", "mssql", "clickhouse", "redshift"]
STATUSES = ["active", "active", "pending", "error"]
HEALTH = ["unknown", "healthy", "healthy", "failing"]
WORDS = ["orders", "billing", "warehouse", "events", "crm", "analytics", "inventory", "marketing"]
SLUG = "scale-{:05d}"


def copy_rows(model: type[models.Model], objects: list[models.Model]) -> None:
    """COPY ``objects`` into ``model``'s table (ids included): every concrete column, each value
    prepared as Django would save it (auto_now fields must already be set)."""
    fields = list(model._meta.concrete_fields)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
            for obj in objects:
                copy.write_row([f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields])


def next_id(model: type[models.Model]) -> int:
    return (model.objects.aggregate(m=models.Max("id"))["m"] or 0) + 1


def reset_sequence(model: type[models.Model]) -> None:
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM {table}))",  # noqa: S608
                       [table])  # (a model's table name, not input)


@transaction.atomic
def seed(*, sources: int, organizations: int, workflows: int) -> dict[str, Any]:
    """Top the installation up to ``organizations`` scale organizations holding ``sources`` data sources
    and ``workflows`` workflows in all (the shares per organization stay the same)."""
    have = Organization.objects.filter(slug__startswith="scale-").count()
    per_org, wf_per_org = sources // organizations, workflows // organizations
    now = timezone.now()
    orgs = Organization.objects.bulk_create(
        [Organization(slug=SLUG.format(o), name=f"Scale {o}", health_check_interval=3600 if o % 10 == 0 else None)
         for o in range(have, organizations)],
        batch_size=1000,
    )
    ds_id, wf_id, wds_id = next_id(DataSource), next_id(Workflow), next_id(WorkflowDataSource)
    rows, flows, reads = [], [], []
    for org in orgs:
        first = ds_id
        for _ in range(per_org):
            n = ds_id
            rows.append(DataSource(
                id=n, organization=org, reference_id=f"sc{n:08d}", name=f"{WORDS[n % 8]} {n:06d}", type=TYPES[n % 8],
                description=f"Scale source {n}", connection={"host": "db.internal", "database": f"db{n}"},
                tags=[f"team-{n % 20}", "prod" if n % 3 else "dev"] + (["rare"] if n % 1000 == 0 else []),
                metadata={"owner": f"team-{n % 20}"}, status=STATUSES[n % 4], health_state=HEALTH[n % 4],
                schema_auto_refresh=n % 50 == 0, schema_refresh_interval=86_400,
                schema_checked_at=now - timedelta(hours=n % 48), schema_status="ready",
                health_check_interval=600 if n % 100 == 0 else None,
                health_checked_at=now - timedelta(minutes=n % 120), created_at=now, updated_at=now,
            ))
            ds_id += 1
        for w in range(wf_per_org):
            flows.append(Workflow(id=wf_id, organization=org, reference_id=f"sw{wf_id:08d}", name=f"flow {w}",
                                  created_at=now, updated_at=now))
            reads.append(WorkflowDataSource(
                id=wds_id, workflow_id=wf_id, reference_id=f"sd{wds_id:08d}",
                source_data_source_id=first + w % max(per_org, 1), source_version=1, created_at=now, updated_at=now))
            wf_id, wds_id = wf_id + 1, wds_id + 1
    copy_rows(DataSource, rows)
    copy_rows(Workflow, flows)
    copy_rows(WorkflowDataSource, reads)
    for model in (DataSource, Workflow, WorkflowDataSource):
        reset_sequence(model)
    return {"organizations": organizations, "sources_added": len(rows), "workflows_added": len(flows)}


def analyze() -> None:
    with connection.cursor() as cursor:
        for model in (DataSource, Organization, Workflow, WorkflowDataSource):
            cursor.execute(f"ANALYZE {model._meta.db_table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=100_000)
    parser.add_argument("--organizations", type=int, default=1_000)
    parser.add_argument("--workflows", type=int, default=10_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("bench/seed.py writes with PostgreSQL's COPY: set DATABASE_URL to a PostgreSQL database")
    started = time.perf_counter()
    result = seed(sources=args.sources, organizations=args.organizations, workflows=args.workflows)
    analyze()
    print(f"seeded {result} in {time.perf_counter() - started:.1f} s; "
          f"{DataSource.objects.count()} data sources, {Workflow.objects.count()} workflows in all")


if __name__ == "__main__":
    main()

"""Benchmark: one scheduler tick over 10,000 data sources of which 500 are due.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dsp_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/schedule_tick.py [--sources 10000] [--due 500]

Builds the sources in a throwaway test database (dropped afterwards), then times
``schema_refresh_tick``: the due-source query, the bulk "pending" update and the 500 enqueues to the
configured broker (Redis here). The queued tasks go to a private queue that is purged afterwards.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Everything lives in a throwaway test database: throwaway keys do (DEBUG off needs both).
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ENCRYPTION_KEYS", "bench:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))
os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", f"bench-{uuid.uuid4().hex[:8]}")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from config.celery import app  # noqa: E402
from datasources.models import DataSource  # noqa: E402
from datasources.tasks import schema_refresh_tick  # noqa: E402
from organizations.services import create_organization  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=500)
    args = parser.parse_args()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        org, _ = create_organization(slug="bench")
        now = timezone.now()
        rows = [
            DataSource(
                organization=org, reference_id=f"b{i:06d}", name=f"source {i}", type="sqlite",
                connection={"path": "x.db", "read_only": True}, schema_auto_refresh=True,
                schema_refresh_interval=3600, schema_status="ready",
                schema_checked_at=now - timedelta(seconds=7200 if i < args.due else 60),
            )
            for i in range(args.sources)
        ]
        DataSource.objects.bulk_create(rows, batch_size=1000)
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            queued = schema_refresh_tick()
            elapsed = time.perf_counter() - start
        print(f"{connection.vendor}, broker {app.conf.broker_url.split('://')[0]}: tick over {args.sources} sources "
              f"queued {queued} in {elapsed * 1000:.0f} ms with {len(queries)} queries")
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(app.conf.task_default_queue)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()

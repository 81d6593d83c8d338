"""Scale (issue 18): the scheduler ticks run a fixed number of statements however many sources are
due, and on PostgreSQL the list's filters and the ticks' candidate queries find their rows through
an index (EXPLAIN over a table of 10,000 sources in 100 organizations, analyzed): no sequential scan
of the data-source table. bench/scale_lists.py measures the same at 100,000 sources.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from config.celery import app as celery_app
from datasources.models import DataSource
from datasources.selectors import data_sources_for_actor
from datasources.services import health
from datasources.tasks import due_data_sources, due_health_checks, schema_refresh_tick
from organizations.actors import Actor
from organizations.models import Organization
from tests.conftest import IN_CI
from tests.support.workers import forget_broker_connections

TABLE = "datasources_datasource"


@pytest.fixture
def memory_broker():
    """Tasks sent by a tick go to Celery's in-memory transport (no SQL, no worker)."""
    keys = ("task_always_eager", "broker_url")
    old = {k: celery_app.conf.get(k) for k in keys}
    celery_app.conf.update(task_always_eager=False, broker_url="memory://")
    forget_broker_connections()
    yield
    celery_app.conf.update(**old)
    forget_broker_connections()


def _sources(org: Organization, count: int, start: int = 0, **fields) -> None:
    DataSource.objects.bulk_create(
        [DataSource(organization=org, reference_id=f"z{org.pk}x{start + i}", name=f"s{start + i}", type="sqlite",
                    connection={"path": "x.db"}, **fields) for i in range(count)],
        batch_size=2000,
    )


@pytest.mark.parametrize("due", [3, 150])
def test_schema_refresh_tick_is_three_statements_whatever_is_due(org, memory_broker, due,
                                                                 django_assert_max_num_queries):
    old = timezone.now() - timedelta(days=2)
    _sources(org, due, schema_auto_refresh=True, schema_checked_at=old)
    _sources(org, 20, start=due, schema_auto_refresh=True, schema_checked_at=timezone.now())  # fresh
    _sources(org, 20, start=due + 20)  # no auto-refresh
    with django_assert_max_num_queries(3):  # expired pending credentials, the due ids, their "pending" mark
        assert schema_refresh_tick() == due
    assert DataSource.objects.filter(schema_status="pending").count() == due


@pytest.mark.parametrize("due", [3, 150])
def test_health_tick_queries_are_two_statements_whatever_is_due(org, other_org, due, django_assert_max_num_queries):
    Organization.objects.filter(pk=org.pk).update(health_check_interval=60)
    _sources(org, due)  # follow their organization's interval
    _sources(other_org, due, health_check_interval=60)  # their own
    _sources(other_org, 10, start=due)  # other_org's default: off
    now = timezone.now()
    with django_assert_max_num_queries(2):
        ids = list(due_health_checks(now))
        assert health.mark_queued(ids, now) == 2 * due
    assert list(due_health_checks(now)) == []


# --- PostgreSQL: the plans ---------------------------------------------------------------------------


@pytest.fixture
def big_table(db):
    """10,000 sources in 100 organizations (tags, types, statuses, health states, names varied; a few
    with auto-refresh or a health interval of their own), analyzed."""
    if connection.vendor != "postgresql":
        message = "set DATABASE_URL to PostgreSQL to check the plans (EXPLAIN) of the indexes"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    orgs = Organization.objects.bulk_create([Organization(slug=f"o{i:03d}", name=f"O {i}") for i in range(100)])
    Organization.objects.filter(pk=orgs[0].pk).update(health_check_interval=300)
    types, statuses, states = ["postgresql", "mysql", "sqlite", "snowflake"], ["pending", "active", "error"], [
        "unknown", "healthy", "failing"]
    rows = []
    for i in range(10_000):
        rows.append(DataSource(
            organization=orgs[i % 100], reference_id=f"b{i:06d}",
            name=f"warehouse {i:05d} {'alpha' if i % 7 else 'beta'}",
            type=types[i % 4], status=statuses[i % 3], health_state=states[i % 3], connection={"path": "x.db"},
            tags=[f"team-{i % 50}", "rare" if i % 1000 == 0 else "common"],
            schema_auto_refresh=i % 500 == 0, health_check_interval=60 if i % 700 == 0 else None,
        ))
    DataSource.objects.bulk_create(rows, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")
        cursor.execute("ANALYZE organizations_organization")
    return orgs


def _plan(queryset) -> str:
    return queryset.explain()


def _no_seq_scan(plan: str) -> None:
    assert f"Seq Scan on {TABLE}" not in plan, plan


def test_list_filters_use_indexes(big_table):
    org = big_table[5]
    scoped = data_sources_for_actor(Actor(organization=org))
    cases = {
        "list": scoped,
        "type": scoped.filter(type="mysql"),
        "status": scoped.filter(status="error"),
        "health": scoped.filter(health_state="failing"),
        "tag": scoped.filter(tags__contains=["team-5"]),
        "search": scoped.filter(name__icontains="beta"),
    }
    for name, queryset in cases.items():
        plan = _plan(queryset[:50])
        _no_seq_scan(plan)
        assert "organization_id" in plan, (name, plan)  # reached through an organization index


def test_tag_and_search_indexes_find_rare_rows_across_the_table(big_table):
    tag_plan = _plan(DataSource.objects.filter(tags__contains=["rare"]))
    assert "ds_tags_gin" in tag_plan, tag_plan
    search_plan = _plan(DataSource.objects.filter(name__icontains="warehouse 0042"))
    assert "ds_name_trgm" in search_plan, search_plan
    assert DataSource.objects.filter(tags__contains=["rare"]).count() == 10
    assert DataSource.objects.filter(name__icontains="WAREHOUSE 0042").count() == 10  # 00420..00429


def test_scheduler_ticks_read_only_their_candidates_through_partial_indexes(big_table):
    refresh_plan = _plan(due_data_sources())
    assert "ds_refresh_due" in refresh_plan, refresh_plan
    _no_seq_scan(refresh_plan)
    health_plan = _plan(due_health_checks())
    assert "ds_health_own_due" in health_plan and "ds_health_org_due" in health_plan, health_plan
    _no_seq_scan(health_plan)
    assert len(list(due_data_sources())) == 20
    assert len(list(due_health_checks())) == 100  # organization 0 on (85 follow it, 15 of its own), no other

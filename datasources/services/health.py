"""Scheduled health checks: the connector test of the stored configuration, run by the worker on each
source's interval, kept as a bounded history and turned into a state (``unknown``, ``healthy``,
``failing``) whose transitions are events (``data_source.health_changed``).

A check is the stored-configuration test of ``connection.test_stored`` (same connector, egress policy
and ``connection_timeout``) without its user-facing effects: it changes neither ``status`` nor
``last_test``, records no audit event and spends no test budget. At most one check of a source runs at
a time (a claim on the row, stale after HEALTH_CHECK_STALE_CLAIM_SECONDS).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, IntegerField, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.errors import ErrorCode
from datasources import fields
from datasources.connectors import TestResult
from datasources.models import DataSource, DataSourceStatus, HealthCheck, HealthOutcome, HealthState
from datasources.services.connection import ConnectorUnavailableError, build_config, run_test
from datasources.services.credentials import load_secrets
from datasources.services.outbox import source_ref
from eventlog.services import publish
from organizations import audit
from organizations.actors import Actor
from organizations.models import Organization

logger = logging.getLogger(__name__)

EVENT = "data_source.health_changed"
MESSAGE_LENGTH = 300  # HealthCheck.message
#: The tick's mark on a source it queued a check for (a claim no check holds yet).
QUEUED = "queued"

#: The organization's settings (``PATCH /api/v1/health-settings/``), with the data sources' rules.
ORGANIZATION_INTERVAL = fields.FieldSpec(
    "health_check_interval", "integer", nullable=True, min_value=0, max_value=2_592_000,
    floor_setting="HEALTH_CHECK_MIN_INTERVAL",
    help="Seconds between health checks of the organization's sources that set no interval of their own: "
         "`null` or `0` turns them off (the default), otherwise at least HEALTH_CHECK_MIN_INTERVAL (60 by "
         "default) and at most 2592000 (30 days).",
)
FAILURE_THRESHOLD = fields.FieldSpec(
    "health_failure_threshold", "integer", min_value=1, max_value=100,
    help="Consecutive failed checks that turn a source `failing` (3 by default).",
)
SETTINGS_FIELDS: tuple[fields.FieldSpec, ...] = (ORGANIZATION_INTERVAL, FAILURE_THRESHOLD)


@dataclass(frozen=True)
class Outcome:
    """What ``run_health_check`` did: ``result`` is ``passed``, ``failed``, ``busy`` (another check
    holds the claim), ``skipped`` (``credentials_required``) or ``gone``."""

    result: str
    state: str | None = None
    changed: bool = False  # the state changed (an event was published when it is a transition)


def stale_claim() -> timedelta:
    return timedelta(seconds=settings.HEALTH_CHECK_STALE_CLAIM_SECONDS)


def claim(data_source_id: int) -> str | None:
    """Compare-and-set the source's claim; None while another check holds a live one."""
    token, now = uuid.uuid4().hex, timezone.now()
    free = claimable(now) | Q(health_claim=QUEUED)  # a queued check takes the tick's mark
    taken = DataSource.objects.filter(pk=data_source_id).filter(free).update(
        health_claim=token, health_claimed_at=now)
    return token if taken else None


def release(data_source_id: int, token: str) -> None:
    DataSource.objects.filter(pk=data_source_id, health_claim=token).update(health_claim="", health_claimed_at=None)


def _test(ds: DataSource) -> tuple[TestResult | None, str, str, str]:
    """The stored configuration's test: (result, stage, code, message)."""
    try:
        result = run_test(build_config(ds, ds.connection, load_secrets(ds)))
    except ConnectorUnavailableError as exc:
        return None, "connector", ErrorCode.CONNECTOR_UNAVAILABLE, exc.message
    if result.ok:
        return result, "", "", ""
    return result, result.stage or "", ErrorCode.CREDENTIAL_TEST_FAILED, result.message


def run_health_check(data_source_id: int) -> Outcome:
    """Check one source now (whatever its interval): claim, test, record, release."""
    token = claim(data_source_id)
    if token is None:
        return Outcome("gone" if not DataSource.objects.filter(pk=data_source_id).exists() else "busy")
    try:
        ds = DataSource.objects.filter(pk=data_source_id).first()
        if ds is None:
            return Outcome("gone")
        if ds.status == DataSourceStatus.CREDENTIALS_REQUIRED:  # nothing to connect with: not a failure
            DataSource.objects.filter(pk=ds.pk).update(health_checked_at=timezone.now())
            return Outcome("skipped", ds.health_state)
        started = time.monotonic()
        try:
            result, stage, code, message = _test(ds)
        except Exception:  # a bug or a driver's surprise: a failed check, logged
            logger.exception("health check of data source %s raised", ds.pk)
            result, stage, code, message = None, "internal", ErrorCode.INTERNAL_SERVER_ERROR, "Unexpected error."
        duration = result.duration_ms if result is not None else (time.monotonic() - started) * 1000
        return record(ds.pk, passed=result is not None and result.ok, stage=stage, code=code, message=message,
                      duration_ms=int(round(duration)))
    finally:
        release(data_source_id, token)


def record(data_source_id: int, *, passed: bool, stage: str = "", code: str = "", message: str = "",
           duration_ms: int = 0) -> Outcome:
    """Store one check and apply the state machine in one transaction (the row locked briefly): a pass
    makes any state ``healthy`` (an event from ``failing`` only); K consecutive failures (the
    organization's ``health_failure_threshold``) make ``unknown``/``healthy`` ``failing`` (an event)."""
    now = timezone.now()
    with transaction.atomic():
        ds = DataSource.objects.select_for_update(of=("self",)).select_related("organization").get(pk=data_source_id)
        HealthCheck.objects.create(
            data_source_id=ds.pk, checked_at=now, outcome=HealthOutcome.PASSED if passed else HealthOutcome.FAILED,
            stage=stage[:32], duration_ms=max(duration_ms, 0), code=code[:64], message=_short(message))
        _trim(ds.pk)
        old = ds.health_state
        failures = 0 if passed else ds.health_failures + 1
        new: str
        if passed:
            new = HealthState.HEALTHY
        elif failures >= ds.organization.health_failure_threshold:
            new = HealthState.FAILING
        else:
            new = old
        since = now if new != old else ds.health_since
        DataSource.objects.filter(pk=ds.pk).update(
            health_state=new, health_since=since, health_checked_at=now, health_failures=failures)
        is_event = new != old and not (old == HealthState.UNKNOWN and new == HealthState.HEALTHY)
        if is_event:
            publish(organization_id=ds.organization_id, type=EVENT, data={
                "data_source": source_ref(ds), "from": old, "to": new, "since": _iso(since),
                "consecutive_failures": failures,
                "last_check": {"stage": stage or None, "code": code or None, "duration_ms": max(duration_ms, 0)},
            })
    return Outcome(HealthOutcome.PASSED if passed else HealthOutcome.FAILED, new, new != old)


def _short(message: str) -> str:
    message = " ".join((message or "").split())
    return message if len(message) <= MESSAGE_LENGTH else message[: MESSAGE_LENGTH - 1] + "…"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _trim(data_source_id: int) -> None:
    """Keep the newest HEALTH_HISTORY_SIZE checks of the source."""
    keep = max(int(settings.HEALTH_HISTORY_SIZE), 1)
    oldest_kept = (HealthCheck.objects.filter(data_source_id=data_source_id).order_by("-id")
                   .values_list("id", flat=True)[keep - 1:keep])
    HealthCheck.objects.filter(data_source_id=data_source_id, id__lt=oldest_kept).delete()


# --- the schedule and the organization's settings -------------------------------------------------


def effective_interval() -> Coalesce:
    """The source's own interval, else its organization's (null or 0: off)."""
    return Coalesce(F("health_check_interval"), F("organization__health_check_interval"),
                    output_field=IntegerField())


def claimable(now: datetime) -> Q:
    """Neither a live check nor a queued one holds the source (a claim older than the bound is abandoned)."""
    return Q(health_claim="") | Q(health_claimed_at__isnull=True) | Q(health_claimed_at__lt=now - stale_claim())


def mark_queued(ids: list[int], now: datetime) -> int:
    """The tick's mark, so that the next tick does not queue these again (one statement)."""
    return DataSource.objects.filter(pk__in=ids).filter(claimable(now)).update(health_claim=QUEUED,
                                                                               health_claimed_at=now)


def interval_of(ds: DataSource) -> tuple[int | None, str]:
    """(seconds or None when off, where it comes from: ``source``, ``organization`` or ``off``)."""
    if ds.health_check_interval is not None:
        return (ds.health_check_interval or None), ("source" if ds.health_check_interval else "off")
    org_interval = ds.organization.health_check_interval
    return (org_interval or None), ("organization" if org_interval else "off")


def settings_of(organization: Organization) -> dict[str, Any]:
    return {"health_check_interval": organization.health_check_interval,
            "health_failure_threshold": organization.health_failure_threshold}


def update_settings(*, actor: Actor, data: Any) -> dict[str, Any]:
    """PATCH the actor's organization's health settings: owners and admins only (403 otherwise), the
    body checked field by field (400 INVALID_REQUEST_BODY naming each, nothing changed); audited."""
    if not actor.is_org_admin:
        raise PermissionDenied("Changing the organization's health settings needs the owner or admin role.")
    values = fields.validate_fields(SETTINGS_FIELDS, data, partial=True)
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=actor.organization.pk)
        old = settings_of(organization)
        changes = {key: {"old": old[key], "new": value} for key, value in values.items() if old[key] != value}
        if changes:
            Organization.objects.filter(pk=organization.pk).update(**{key: values[key] for key in changes})
            organization.refresh_from_db()
            organization.organization_id = organization.pk  # type: ignore[attr-defined]  # audit's target
            audit.record(actor=actor, action="update_health_settings", target=organization, changes=changes)
    return settings_of(organization)

"""Connection tests and schema refreshes: the slow, networked part, never run under a row lock."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import metrics
from core.errors import ApiError, Conflict, ErrorCode
from core.references import ALPHABET
from datasources import dependants
from datasources.connectors import (
    ColumnInfo,
    ConnectionConfig,
    ConnectorError,
    ConnectorUnavailable,
    TableInfo,
    TestResult,
    get_connector,
)
from datasources.models import DataSource, DataSourceStatus, SchemaSnapshot, SchemaStatus, SchemaTable
from datasources.services import attempts, outbox, tenancy
from datasources.services.credentials import load_secrets
from datasources.services.destination import CredentialsRequired
from datasources.services.ratelimit import consume_test_budget
from datasources.services.snapshot_diff import diff_snapshots
from organizations.actors import Actor

logger = logging.getLogger(__name__)


class ConnectorUnavailableError(ApiError):
    code = ErrorCode.CONNECTOR_UNAVAILABLE
    status_code = 400


class CredentialTestFailed(ApiError):
    code = ErrorCode.CREDENTIAL_TEST_FAILED
    status_code = 400
    test_result: TestResult | None = None  # the failing test, for the audit trail


#: why a `credentials_required` source is not tested or refreshed
CREDENTIALS_REQUIRED_MESSAGE = (
    "This data source was moved without its stored credentials (they were withheld from the new destination "
    "and cleared): update its credentials first. The update is tested at the new destination and makes the "
    "source active again."
)


def require_credentials(data_source: DataSource) -> None:
    """400 CREDENTIALS_REQUIRED while the source waits for its credentials (``credentials_required``)."""
    if data_source.status == DataSourceStatus.CREDENTIALS_REQUIRED:
        raise CredentialsRequired(CREDENTIALS_REQUIRED_MESSAGE, extra={"status": data_source.status})


def build_config(data_source: DataSource, connection: dict, secrets: dict[str, str]) -> ConnectionConfig:
    return ConnectionConfig(
        type_key=data_source.type,
        connection=connection,
        secrets=secrets,
        connect_timeout=data_source.connection_timeout,
        query_timeout=data_source.query_timeout,
        file_folder=data_source.organization.slug if settings.DATASOURCE_FILE_ROOT_PER_ORGANIZATION else "",
    )


@metrics.observe_connection_test  # connection tests by type, stage and outcome (core/metrics.py)
def run_test(config: ConnectionConfig, *, introspect: bool = False) -> TestResult:
    """Test a configuration; ``CONNECTOR_UNAVAILABLE`` when no connector can test this type here.
    ``introspect``: a schema refresh follows at once, so the connector may also read the tables
    over the tested session (``result.tables``)."""
    try:
        connector = get_connector(config.type_key)
    except ConnectorUnavailable as exc:
        raise ConnectorUnavailableError(str(exc)) from exc
    return connector.test_and_introspect(config) if introspect else connector.test(config)


def require_passing(result: TestResult, *, recorded: bool = False) -> None:
    """400 CREDENTIAL_TEST_FAILED for a failed test. ``recorded``: the test of the stored configuration,
    whose outcome was saved (status, last_test); else the test of a change, which changed nothing."""
    if not result.ok:
        outcome = "The result was recorded." if recorded else "Nothing was changed."
        error = CredentialTestFailed(
            f"Connection test failed at stage '{result.stage}': {result.message} {outcome}",
            extra={"stage": result.stage, "test": result.as_dict()},
        )
        error.test_result = result
        raise error


def test_stored(*, data_source: DataSource, actor: Actor) -> TestResult:
    """Test the stored configuration and record the result (status, last_test, audit). A source that
    waits for its credentials is not tested: 400 CREDENTIALS_REQUIRED (audited as refused)."""
    try:
        require_credentials(data_source)
    except CredentialsRequired as exc:
        attempts.record_attempt(actor=actor, data_source=data_source, action="test", trigger="test", error=exc)
        raise
    consume_test_budget(actor, timeout=data_source.connection_timeout)
    try:
        result = run_test(build_config(data_source, data_source.connection, load_secrets(data_source)))
    except ConnectorUnavailableError as exc:
        attempts.record_attempt(actor=actor, data_source=data_source, action="test", trigger="test", error=exc)
        raise
    record_test_result(data_source, result)
    attempts.record_attempt(actor=actor, data_source=data_source, action="test", trigger="test", test=result)
    return result


def record_test_result(data_source: DataSource, result: TestResult) -> None:
    """Targeted update: a test result is not a configuration change, so ``version`` stays. A source
    moved without its secrets meanwhile keeps ``credentials_required``."""
    data_source.last_test = {**result.as_dict(), "tested_at": timezone.now().isoformat()}
    data_source.status = DataSourceStatus.ACTIVE if result.ok else DataSourceStatus.ERROR
    DataSource.objects.filter(pk=data_source.pk).exclude(status=DataSourceStatus.CREDENTIALS_REQUIRED).update(
        last_test=data_source.last_test, status=data_source.status)


@dataclass
class RefreshOutcome:
    ok: bool
    version: int | None
    created: bool
    error: str = ""
    busy: bool = False  # another refresh of this source is running
    credentials_required: bool = False  # not tried: the source waits for its credentials


#: A claim older than this is considered abandoned (a worker died mid-refresh).
STALE_CLAIM = timedelta(minutes=15)


def claim_refresh(data_source_id: int) -> str | None:
    """Atomically mark the source `refreshing`; None when another refresh holds a live claim.

    A compare-and-set on the row rather than a row lock, so no lock is held while introspecting.
    """
    token = uuid.uuid4().hex
    now = timezone.now()
    claimed = (
        DataSource.objects.filter(pk=data_source_id)
        .filter(~Q(schema_status=SchemaStatus.REFRESHING) | Q(schema_status_at__lt=now - STALE_CLAIM))
        .update(schema_status=SchemaStatus.REFRESHING, schema_status_at=now, schema_claim=token)
    )
    return token if claimed else None


def schema_digest(rows: list[tuple[str, str, str, list[tuple[str, str, bool, int]]]]) -> str:
    """The fingerprint of (schema, name, kind, columns as (name, type, nullable, ordinal)) rows. Columns
    count by their order, not their ordinal numbers: a column dropped and added again at the end has a
    new ordinal and the same place (no new version)."""
    canon = [
        [schema, name, kind, [[c[0], c[1], c[2]] for c in sorted(columns, key=lambda c: c[3])]]
        for schema, name, kind, columns in sorted(rows, key=lambda r: (r[0], r[1]))
    ]
    return hashlib.sha256(json.dumps(canon, separators=(",", ":")).encode()).hexdigest()


def _fingerprint(tables: list[TableInfo]) -> str:
    return schema_digest([(t.schema, t.name, t.kind, [(c.name, c.data_type, c.nullable, c.ordinal) for c in t.columns])
                    for t in tables])


def _stored_fingerprint(snapshot: SchemaSnapshot) -> str:
    """``_fingerprint`` of a stored snapshot's tables (one whose stored fingerprint an older rule made)."""
    rows = snapshot.tables.values_list("schema", "name", "kind", "columns")
    return schema_digest([(schema, name, kind, [(c["name"], c["type"], c["nullable"], c.get("ordinal", i))
                                          for i, c in enumerate(columns)])
                    for schema, name, kind, columns in rows])


def _same_as(snapshot: SchemaSnapshot, fingerprint: str) -> bool:
    """Whether ``snapshot`` holds the schema of ``fingerprint``: its stored fingerprint, or, made by an
    older rule, its tables' (then stored, so the next refresh compares at once)."""
    if snapshot.fingerprint == fingerprint:
        return True
    if _stored_fingerprint(snapshot) != fingerprint:
        return False
    SchemaSnapshot.objects.filter(pk=snapshot.pk).update(fingerprint=fingerprint)
    snapshot.fingerprint = fingerprint
    return True


def _new_ref(used: set[str]) -> str:
    size = 4
    while True:
        for _ in range(50):
            ref = "".join(secrets.choice(ALPHABET) for _ in range(size))
            if ref not in used:
                used.add(ref)
                return ref
        size += 1


def _text(value: str) -> str:
    """A name or type as stored: NUL characters dropped and lone surrogates replaced. A server (or a
    file a connector guessed columns from) may name things so; PostgreSQL's jsonb refuses ``\\u0000``
    and the API's JSON rules refuse both, so one odd column would fail the whole refresh."""
    if "\x00" not in value:
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            pass
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _storable(tables: list[TableInfo]) -> list[TableInfo]:
    """``tables`` with every name and type storable (``_text``); as they are when all already are."""
    if all(_text(t.schema) is t.schema and _text(t.name) is t.name
           and all(_text(c.name) is c.name and _text(c.data_type) is c.data_type for c in t.columns)
           for t in tables):
        return tables
    return [TableInfo(schema=_text(t.schema), name=_text(t.name), kind=t.kind,
                      columns=[ColumnInfo(name=_text(c.name), data_type=_text(c.data_type), nullable=c.nullable,
                                          ordinal=c.ordinal) for c in t.columns])
            for t in tables]


def _store_snapshot(data_source: DataSource, tables: list[TableInfo]) -> tuple[SchemaSnapshot, bool]:
    """Write a new version only when the fingerprint changed; table ids persist by (schema, name)."""
    tables = _storable(tables)
    fingerprint = _fingerprint(tables)
    newest = SchemaSnapshot.objects.filter(data_source_id=data_source.pk).order_by("-version").first()
    if newest is not None and newest.fingerprint == fingerprint:
        return newest, False  # the usual case, without a lock (snapshots are never edited, only added)
    with transaction.atomic():
        locked = DataSource.objects.select_for_update().only("id").get(pk=data_source.pk)
        latest = SchemaSnapshot.objects.filter(data_source=locked).order_by("-version").first()
        if latest is not None and _same_as(latest, fingerprint):
            return latest, False
        # A (schema, name) keeps the id it had the last time it was cached: while it persists, and when
        # it comes back (created again, or back inside MAX_TABLES after other tables pushed it out:
        # it never left the database). An id is never handed to another (schema, name).
        history = SchemaTable.objects.filter(snapshot__data_source=locked).order_by("snapshot__version")
        previous: dict[tuple[str, str], str] = {}
        used: set[str] = set()
        for schema, name, reference_id in history.values_list("schema", "name", "reference_id").iterator():
            previous[(schema, name)] = reference_id
            used.add(reference_id)
        snapshot = SchemaSnapshot.objects.create(
            data_source=locked,
            version=(latest.version + 1) if latest else 1,
            fingerprint=fingerprint,
            table_count=len(tables),
        )
        SchemaTable.objects.bulk_create(
            [
                SchemaTable(
                    snapshot=snapshot,
                    reference_id=previous.get((t.schema, t.name)) or _new_ref(used),
                    schema=t.schema,
                    name=t.name,
                    kind=t.kind,
                    columns=[
                        {"name": c.name, "type": c.data_type, "nullable": c.nullable, "ordinal": c.ordinal}
                        for c in t.columns
                    ],
                )
                for t in tables
            ],
            batch_size=500,
        )
        if latest is not None:  # a change of schema, not the first snapshot: the drift event, same transaction
            _publish_drift(locked, latest, snapshot)
    return snapshot, True


def _publish_drift(data_source: DataSource, old: SchemaSnapshot, new: SchemaSnapshot) -> None:
    """``data_source.schema_changed``: the diff, and the workflows reading a removed or changed table."""
    diff = diff_snapshots(old, new)
    touched: dict[str, dict[str, Any]] = {
        t["reference_id"]: {"schema": t["schema"], "name": t["name"], "change": "removed"}
        for t in diff["tables_removed"]
    }
    for t in diff["tables_changed"]:
        touched[t["reference_id"]] = {
            "schema": t["schema"], "name": t["name"], "change": "changed",
            "columns_removed": t["columns_removed"], "columns_changed": [c["name"] for c in t["columns_changed"]],
        }
    source = DataSource.objects.get(pk=data_source.pk)
    outbox.schema_changed(source, diff, dependants.readers_of_tables(source, touched),
                          tenancy.problems_in(source, new))


def _finish(data_source: DataSource, token: str, **fields: object) -> None:
    now = timezone.now()
    fields = {**fields, "schema_status_at": now, "schema_checked_at": now, "schema_claim": ""}
    DataSource.objects.filter(pk=data_source.pk, schema_claim=token).update(**fields)
    for key, value in fields.items():
        setattr(data_source, key, value)


@metrics.observe_schema_refresh  # refresh durations and failures (core/metrics.py)
def refresh_schema(
    *,
    data_source: DataSource,
    config: ConnectionConfig | None = None,
    final: bool = True,
    tables: list[TableInfo] | None = None,
) -> RefreshOutcome:
    """Introspect and store a new snapshot when the schema changed; keep the previous one on failure.

    At most one refresh of a source runs at a time (``claim_refresh``). ``final=False`` is for a
    failure that will be retried: the status goes back to `pending` instead of `failed`. ``tables``:
    already introspected (over the session of the connection test just passed). A source that waits
    for its credentials (``credentials_required``) is not connected to: the refresh fails at once,
    saying so, and the previous snapshot stays.
    """
    waiting = config is None and data_source.status == DataSourceStatus.CREDENTIALS_REQUIRED
    token = claim_refresh(data_source.pk)
    if token is None:
        return RefreshOutcome(ok=False, version=data_source.schema_version, created=False, busy=True,
                              error="A schema refresh of this data source is already running.")
    if waiting:
        _finish(data_source, token, schema_status=SchemaStatus.FAILED, schema_error=CREDENTIALS_REQUIRED_MESSAGE)
        return RefreshOutcome(ok=False, version=data_source.schema_version, created=False,
                              error=CREDENTIALS_REQUIRED_MESSAGE, credentials_required=True)
    if config is None:
        config = build_config(data_source, data_source.connection, load_secrets(data_source))
    try:
        if tables is None:
            tables = get_connector(data_source.type).introspect(config)
    except (ConnectorError, ConnectorUnavailable) as exc:
        message = str(getattr(exc, "message", "") or exc)[:2000]
        status = SchemaStatus.FAILED if final else SchemaStatus.PENDING
        _finish(data_source, token, schema_status=status, schema_error=message)
        return RefreshOutcome(ok=False, version=data_source.schema_version, created=False, error=message)
    except Exception:
        _finish(data_source, token, schema_status=SchemaStatus.FAILED, schema_error="Unexpected error.")
        raise
    snapshot, created = _store_snapshot(data_source, tables)
    _finish(
        data_source,
        token,
        schema_status=SchemaStatus.READY,
        schema_error="",
        schema_refreshed_at=timezone.now(),
        schema_version=snapshot.version,
        schema_table_count=snapshot.table_count,
    )
    return RefreshOutcome(ok=True, version=snapshot.version, created=created)


class SchemaCacheFailed(ApiError):
    code = ErrorCode.SCHEMA_CACHE_FAILED
    status_code = 500


def check_syncable(data_source: DataSource) -> None:
    """What a refresh on request checks before it tries anything, in this order: 400
    CREDENTIALS_REQUIRED while the source waits for its credentials, 400 CONNECTOR_UNAVAILABLE without
    a connector (``sync_schema``; the admin's action before it queues a refresh to a worker)."""
    require_credentials(data_source)
    try:
        get_connector(data_source.type)
    except ConnectorUnavailable as exc:
        raise ConnectorUnavailableError(str(exc)) from exc


def sync_schema(*, data_source: DataSource) -> RefreshOutcome:
    """Refresh now (Databrain's "Sync Datasource"): 400 without a connector, 409 while another
    refresh runs, 500 SCHEMA_CACHE_FAILED when introspection fails (the previous snapshot stays),
    400 CREDENTIALS_REQUIRED while the source waits for its credentials (nothing is tried)."""
    check_syncable(data_source)
    outcome = refresh_schema(data_source=data_source)
    if outcome.busy:
        raise Conflict("A schema refresh of this data source is already running; try again shortly.")
    if not outcome.ok:
        raise SchemaCacheFailed(
            f"The schema could not be cached: {outcome.error} The previous snapshot stays current.",
            extra={"schema_version": outcome.version},
        )
    return outcome

"""Connection tests and schema refreshes: the slow, networked part, never run under a row lock."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from config.errors import ApiError, ErrorCode
from config.references import ALPHABET
from datasources.connectors import (
    ConnectionConfig,
    ConnectorError,
    ConnectorUnavailable,
    TableInfo,
    TestResult,
    get_connector,
)
from datasources.models import DataSource, DataSourceStatus, SchemaSnapshot, SchemaStatus, SchemaTable
from datasources.services import audit
from datasources.services.credentials import load_secrets
from datasources.services.ratelimit import consume_test_budget
from organizations.actors import Actor

logger = logging.getLogger(__name__)


class ConnectorUnavailableError(ApiError):
    code = ErrorCode.CONNECTOR_UNAVAILABLE
    status_code = 400


class CredentialTestFailed(ApiError):
    code = ErrorCode.CREDENTIAL_TEST_FAILED
    status_code = 400


def build_config(data_source: DataSource, connection: dict, secrets: dict[str, str]) -> ConnectionConfig:
    return ConnectionConfig(
        type_key=data_source.type,
        connection=connection,
        secrets=secrets,
        connect_timeout=data_source.connection_timeout,
        query_timeout=data_source.query_timeout,
    )


def run_test(config: ConnectionConfig) -> TestResult:
    """Test a configuration; ``CONNECTOR_UNAVAILABLE`` when no connector can test this type here."""
    try:
        connector = get_connector(config.type_key)
    except ConnectorUnavailable as exc:
        raise ConnectorUnavailableError(str(exc)) from exc
    return connector.test(config)


def require_passing(result: TestResult) -> None:
    if not result.ok:
        raise CredentialTestFailed(
            f"Connection test failed at stage '{result.stage}': {result.message} Nothing was changed.",
            extra={"stage": result.stage, "test": result.as_dict()},
        )


def test_stored(*, data_source: DataSource, actor: Actor) -> TestResult:
    """Test the stored configuration and record the result (status, last_test, audit)."""
    consume_test_budget(actor)
    result = run_test(build_config(data_source, data_source.connection, load_secrets(data_source)))
    record_test_result(data_source, result)
    audit.record(actor=actor, action="test", target=data_source, detail={"test": result.as_dict()})
    return result


def record_test_result(data_source: DataSource, result: TestResult) -> None:
    """Targeted update: a test result is not a configuration change, so ``version`` stays."""
    data_source.last_test = {**result.as_dict(), "tested_at": timezone.now().isoformat()}
    data_source.status = DataSourceStatus.ACTIVE if result.ok else DataSourceStatus.ERROR
    DataSource.objects.filter(pk=data_source.pk).update(last_test=data_source.last_test, status=data_source.status)


@dataclass
class RefreshOutcome:
    ok: bool
    version: int | None
    created: bool
    error: str = ""


def _fingerprint(tables: list[TableInfo]) -> str:
    canon = [
        [t.schema, t.name, t.kind, [[c.name, c.data_type, c.nullable, c.ordinal] for c in t.columns]]
        for t in sorted(tables, key=lambda t: (t.schema, t.name))
    ]
    return hashlib.sha256(json.dumps(canon, separators=(",", ":")).encode()).hexdigest()


def _new_ref(used: set[str]) -> str:
    import secrets as _s

    size = 4
    while True:
        for _ in range(50):
            ref = "".join(_s.choice(ALPHABET) for _ in range(size))
            if ref not in used:
                used.add(ref)
                return ref
        size += 1


def refresh_schema(*, data_source: DataSource, config: ConnectionConfig | None = None) -> RefreshOutcome:
    """Introspect and store a new snapshot when the schema changed; keep the previous one on failure."""
    if config is None:
        config = build_config(data_source, data_source.connection, load_secrets(data_source))
    try:
        tables = get_connector(data_source.type).introspect(config)
    except (ConnectorError, ConnectorUnavailable) as exc:
        message = str(getattr(exc, "message", "") or exc)
        DataSource.objects.filter(pk=data_source.pk).update(
            schema_status=SchemaStatus.FAILED, schema_error=message[:2000]
        )
        data_source.schema_status, data_source.schema_error = SchemaStatus.FAILED, message[:2000]
        return RefreshOutcome(ok=False, version=data_source.schema_version, created=False, error=message)
    fingerprint = _fingerprint(tables)
    now = timezone.now()
    with transaction.atomic():
        locked = DataSource.objects.select_for_update().get(pk=data_source.pk)
        latest = SchemaSnapshot.objects.filter(data_source=locked).order_by("-version").first()
        created = latest is None or latest.fingerprint != fingerprint
        if created:
            previous = (
                {(s, n): r for s, n, r in latest.tables.values_list("schema", "name", "reference_id")}
                if latest
                else {}
            )
            used = set(previous.values())
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
            latest = snapshot
        fields = {
            "schema_status": SchemaStatus.READY,
            "schema_error": "",
            "schema_refreshed_at": now,
            "schema_version": latest.version,
            "schema_table_count": latest.table_count,
        }
        DataSource.objects.filter(pk=locked.pk).update(**fields)
    for key, value in fields.items():
        setattr(data_source, key, value)
    return RefreshOutcome(ok=True, version=latest.version, created=created)


class SchemaCacheFailed(ApiError):
    code = ErrorCode.SCHEMA_CACHE_FAILED
    status_code = 500

"""Create, update (PATCH/PUT) and delete data sources.

update: validate and merge -> test the connection (no lock, no transaction) -> lock the row,
re-check the version, apply, audit -> refresh the schema after commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import IntegrityError, transaction

from config.errors import Conflict, InvalidRequest, NotFound, PreconditionFailed
from datasources import catalogue
from datasources.connectors import TestResult
from datasources.models import DataSource, DataSourceStatus, SchemaStatus
from datasources.services import audit
from datasources.services.connection import (
    RefreshOutcome,
    build_config,
    record_test_result,
    refresh_schema,
    require_passing,
    run_test,
)
from datasources.services.credentials import load_secrets, secret_names, write_secrets
from datasources.services.merge import diff_paths, merge_patch
from organizations.actors import Actor
from organizations.models import Workspace

logger = logging.getLogger(__name__)

#: Plain writable fields and their defaults (``null`` or omission on PUT resets to these).
OPERATIONAL_DEFAULTS: dict[str, Any] = {
    "connection_pool_size": 5,
    "connection_timeout": 30,
    "query_timeout": 300,
    "max_retries": 3,
    "schema_auto_refresh": False,
    "schema_refresh_interval": 86400,
}
PLAIN_DEFAULTS: dict[str, Any] = {"description": "", "tags": [], "metadata": {}, **OPERATIONAL_DEFAULTS}
WRITABLE = {"name", "type", "description", "workspace", "connection", "credentials", *PLAIN_DEFAULTS}
MAX_ATTEMPTS = 5


@dataclass
class WriteOptions:
    if_match: str | None = None
    dry_run: bool = False
    test_connection: bool = True


@dataclass
class WriteResult:
    data_source: DataSource
    changed: list[str] = field(default_factory=list)
    test: TestResult | None = None
    schema: RefreshOutcome | None = None
    dry_run: bool = False


@dataclass
class _Plan:
    values: dict[str, Any]            # plain field -> new value (incl. connection, workspace_id)
    secrets: dict[str, str | None]    # secret writes (None = clear)
    secrets_after: dict[str, str]     # full secret set after the change, decrypted
    changes: dict[str, Any]           # audit-ready diff
    connection_changed: bool


def etag_matches(data_source: DataSource, if_match: str | None) -> bool:
    if if_match is None:
        return True
    candidates = [c.strip().removeprefix("W/") for c in if_match.split(",")]
    return "*" in candidates or data_source.etag in candidates


def _workspace_id(actor: Actor, value: Any) -> int | None:
    if value is None:
        return None
    if not Workspace.objects.filter(pk=value, organization=actor.organization).exists():
        raise InvalidRequest("Unknown workspace.", errors={"workspace": ["No such workspace in your organization."]})
    return int(value)


def _plan(
    ds: DataSource, data: dict[str, Any], *, mode: Literal["create", "patch", "put"], actor: Actor
) -> _Plan:
    """Validate ``data`` against the type and compute the full new state. Raises 400s."""
    source_type = catalogue.get_type(ds.type)
    errors: dict[str, list[str]] = {}
    if mode != "create" and "type" in data and data["type"] != ds.type:
        errors["type"] = ["The type of a data source cannot be changed."]
    values: dict[str, Any] = {}
    if mode == "patch":
        if "name" in data:
            values["name"] = data["name"]
        for key, default in PLAIN_DEFAULTS.items():
            if key in data:
                value = data[key]
                if key == "metadata" and value is not None:
                    value = merge_patch(ds.metadata, value)
                values[key] = default if value is None else value
        if "workspace" in data:
            values["workspace_id"] = _workspace_id(actor, data["workspace"])
        raw_connection = merge_patch(ds.connection, data["connection"]) if "connection" in data else ds.connection
    else:
        if not data.get("name"):
            errors["name"] = ["This field is required."]
        values["name"] = data.get("name")
        for key, default in PLAIN_DEFAULTS.items():
            value = data.get(key)
            values[key] = default if value is None else value
        values["workspace_id"] = _workspace_id(actor, data.get("workspace"))
        if data.get("connection") is None:
            errors["connection"] = ["This field is required."]
        raw_connection = data.get("connection") or {}
    connection = ds.connection
    try:
        connection = catalogue.normalize_connection(source_type, raw_connection)
    except catalogue.ConfigInvalid as exc:
        errors.update(exc.errors)
    values["connection"] = connection

    secret_writes: dict[str, str | None] = dict(data.get("credentials") or {})
    try:
        catalogue.validate_secret_values(source_type, secret_writes)
    except catalogue.ConfigInvalid as exc:
        errors.update(exc.errors)
    current_secrets = load_secrets(ds) if ds.pk else {}
    after = dict(current_secrets)
    for name, value in secret_writes.items():
        if value is None:
            after.pop(name, None)
        else:
            after[name] = value
    if not errors:
        try:
            catalogue.check_required_secrets(source_type, connection, set(after))
        except catalogue.ConfigInvalid as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidRequest("The data source is invalid for its type.", errors=errors)

    changes: dict[str, Any] = {}
    for key, new in values.items():
        old = getattr(ds, key) if ds.pk else None
        if key == "connection":
            changes.update(diff_paths(old or {}, new, "connection"))
        elif key == "metadata":
            changes.update({k: v for k, v in diff_paths(old or {}, new, "metadata").items()})
        elif old != new:
            changes[key.removesuffix("_id")] = {"old": old, "new": new}
    effective_secret_writes = {
        k: v for k, v in secret_writes.items() if current_secrets.get(k) != v and (v is not None or k in current_secrets)
    }
    for name, value in effective_secret_writes.items():
        changes[f"credentials.{name}"] = "cleared" if value is None else "changed"
    connection_changed = any(k.startswith("connection.") for k in changes) or bool(effective_secret_writes)
    return _Plan(values, effective_secret_writes, after, changes, connection_changed)


def _test(ds: DataSource, plan: _Plan, options: WriteOptions) -> TestResult | None:
    if not plan.connection_changed or not options.test_connection:
        return None
    probe = DataSource(type=ds.type, connection_timeout=plan.values.get("connection_timeout", ds.connection_timeout),
                       query_timeout=plan.values.get("query_timeout", ds.query_timeout))
    result = run_test(build_config(probe, plan.values["connection"], plan.secrets_after))
    require_passing(result)
    return result


def _apply(ds: DataSource, plan: _Plan, actor: Actor, test: TestResult | None) -> None:
    for key, value in plan.values.items():
        setattr(ds, key, value)
    if plan.connection_changed:
        if test is not None:
            ds.status = DataSourceStatus.ACTIVE
        else:
            ds.status = DataSourceStatus.PENDING
        if test is not None:
            record_test_result_fields(ds, test)
    ds.updated_by = actor.user if getattr(actor.user, "pk", None) else None
    ds.updated_by_token = actor.token


def record_test_result_fields(ds: DataSource, test: TestResult) -> None:
    from django.utils import timezone

    ds.last_test = {**test.as_dict(), "tested_at": timezone.now().isoformat()}


def _save_name_checked(ds: DataSource, **kwargs: Any) -> None:
    try:
        with transaction.atomic():
            ds.save(**kwargs)
    except IntegrityError as exc:
        raise Conflict(
            "A data source with this name already exists in your organization.",
            errors={"name": ["A data source with this name already exists."]},
        ) from exc


def _name_taken(actor: Actor, name: str, exclude_pk: int | None) -> bool:
    qs = DataSource.objects.filter(organization=actor.organization, name__iexact=name)
    return qs.exclude(pk=exclude_pk).exists() if exclude_pk else qs.exists()


def create_data_source(*, actor: Actor, data: dict[str, Any], options: WriteOptions | None = None) -> WriteResult:
    """Validate, test, create, audit, then cache the schema."""
    options = options or WriteOptions()
    type_key = data.get("type")
    try:
        catalogue.get_type(type_key or "")
    except KeyError:
        raise InvalidRequest("Unknown or missing type.", errors={"type": ["Choose a type from the catalogue."]}) from None
    ds = DataSource(organization=actor.organization, type=type_key)
    plan = _plan(ds, data, mode="create", actor=actor)
    if _name_taken(actor, plan.values["name"], None):
        raise Conflict("A data source with this name already exists in your organization.",
                       errors={"name": ["A data source with this name already exists."]})
    plan.connection_changed = True
    test = _test(ds, plan, options)
    for key, value in plan.values.items():
        setattr(ds, key, value)
    if options.dry_run:
        return WriteResult(ds, changed=sorted(plan.changes), test=test, dry_run=True)
    from config.references import new_reference_id

    with transaction.atomic():
        ds.reference_id = new_reference_id(DataSource)
        ds.status = DataSourceStatus.ACTIVE if test and test.ok else DataSourceStatus.PENDING
        if test is not None:
            record_test_result_fields(ds, test)
        ds.created_by = ds.updated_by = actor.user if getattr(actor.user, "pk", None) else None
        ds.created_by_token = ds.updated_by_token = actor.token
        _save_name_checked(ds)
        write_secrets(ds, {k: v for k, v in plan.secrets.items() if v is not None})
        audit.record(actor=actor, action="create", target=ds, changes=plan.changes,
                     detail={"test": test.as_dict() if test else None})
    schema = _refresh_after(ds, plan, test)
    return WriteResult(ds, changed=sorted(plan.changes), test=test, schema=schema)


def update_data_source(
    *,
    actor: Actor,
    data_source_id: int,
    data: dict[str, Any],
    mode: Literal["patch", "put"],
    options: WriteOptions | None = None,
) -> WriteResult:
    """PATCH (merge) or PUT (replace) a data source, testing connection changes before applying."""
    options = options or WriteOptions()
    for _attempt in range(MAX_ATTEMPTS):
        ds = get_data_source(actor, data_source_id)
        if not etag_matches(ds, options.if_match):
            raise PreconditionFailed()
        plan = _plan(ds, data, mode=mode, actor=actor)
        if "name" in plan.values and plan.values["name"].lower() != ds.name.lower() and _name_taken(
            actor, plan.values["name"], ds.pk
        ):
            raise Conflict("A data source with this name already exists in your organization.",
                           errors={"name": ["A data source with this name already exists."]})
        test = _test(ds, plan, options)
        if options.dry_run:
            preview = DataSource.objects.get(pk=ds.pk)
            for key, value in plan.values.items():
                setattr(preview, key, value)
            return WriteResult(preview, changed=sorted(plan.changes), test=test, dry_run=True)
        if not plan.changes:
            return WriteResult(ds)
        with transaction.atomic():
            locked = DataSource.objects.select_for_update().get(pk=ds.pk)
            if not etag_matches(locked, options.if_match):
                raise PreconditionFailed()
            if locked.version != ds.version:
                # Someone else wrote meanwhile: re-merge our change onto their state. If that
                # changes what the connection test saw, start over (outside the lock).
                fresh = _plan(locked, data, mode=mode, actor=actor)
                if fresh.connection_changed and (
                    fresh.values["connection"] != plan.values["connection"] or fresh.secrets_after != plan.secrets_after
                ):
                    continue
                plan, ds = fresh, locked
                if not plan.changes:
                    return WriteResult(ds)
            else:
                ds = locked
            _apply(ds, plan, actor, test)
            ds.version += 1
            _save_name_checked(ds)
            if plan.secrets:
                write_secrets(ds, plan.secrets)
            audit.record(actor=actor, action="update", target=ds, changes=plan.changes,
                         detail={"method": mode.upper(), "test": test.as_dict() if test else None})
        schema = _refresh_after(ds, plan, test)
        return WriteResult(ds, changed=sorted(plan.changes), test=test, schema=schema)
    raise Conflict("The data source kept changing during the update; try again.")


def _refresh_after(ds: DataSource, plan: _Plan, test: TestResult | None) -> RefreshOutcome | None:
    """After a tested connection change, re-cache the schema with the configuration just tested."""
    if test is None or not test.ok or not plan.connection_changed:
        return None
    DataSource.objects.filter(pk=ds.pk).update(schema_status=SchemaStatus.REFRESHING)
    outcome = refresh_schema(data_source=ds, config=build_config(ds, ds.connection, plan.secrets_after))
    ds.refresh_from_db()
    return outcome


def delete_data_source(*, actor: Actor, data_source_id: int, if_match: str | None = None) -> None:
    with transaction.atomic():
        ds = get_data_source(actor, data_source_id, for_update=True)
        if not etag_matches(ds, if_match):
            raise PreconditionFailed()
        audit.record(actor=actor, action="delete", target=ds,
                     changes={"name": {"old": ds.name, "new": None}})
        ds.delete()


def get_data_source(actor: Actor, data_source_id: Any, *, for_update: bool = False) -> DataSource:
    """The caller's organization's data source, or 404 (also for other organizations' ids)."""
    qs = DataSource.objects.filter(organization=actor.organization)
    if for_update:
        qs = qs.select_for_update()
    try:
        return qs.get(pk=int(data_source_id))
    except (DataSource.DoesNotExist, ValueError, TypeError):
        raise NotFound("Data source not found.") from None


def test_configuration(ds: DataSource) -> TestResult:
    """Test the stored configuration without recording (for dry runs from the admin)."""
    return run_test(build_config(ds, ds.connection, load_secrets(ds)))


__all__ = [
    "WriteOptions",
    "WriteResult",
    "create_data_source",
    "update_data_source",
    "delete_data_source",
    "get_data_source",
    "record_test_result",
    "secret_names",
]

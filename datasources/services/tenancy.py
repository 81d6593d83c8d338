"""Tenancy settings: validation (against the cached schema when there is one) and writes."""

from __future__ import annotations

import re
from typing import Any

from core.errors import ApiError, ErrorCode
from datasources.models import DataSource, SchemaSnapshot, SchemaTable, TenancySettings

FIELDS = ("level", "client_column_type", "schema", "table", "client_column", "primary_key_column")
TABLE_REQUIRED = ("client_column_type", "schema", "table", "client_column", "primary_key_column")
LEVELS = ("TABLE", "DATABASE")
CLIENT_TYPES = ("NUMBER", "STRING")
_NUMBER = re.compile(r"int|serial|numeric|decimal|number|real|double|float|bigint|smallint|tinyint|hugeint", re.I)
_STRING = re.compile(r"char|text|string|uuid|citext|enum|clob|varchar|name", re.I)


class TenancySettingsInvalid(ApiError):
    code = ErrorCode.TENANCY_SETTINGS_INVALID
    status_code = 400


def as_dict(settings: TenancySettings | None) -> dict[str, Any] | None:
    if settings is None:
        return None
    return {name: getattr(settings, name) for name in FIELDS}


def current(data_source: DataSource) -> dict[str, Any] | None:
    if hasattr(data_source, "preview_tenancy"):
        return data_source.preview_tenancy
    if data_source.pk is None:
        return None
    try:
        return as_dict(data_source.tenancy)
    except TenancySettings.DoesNotExist:
        return None


def merge(old: dict[str, Any] | None, data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """PATCH merges into the current settings; PUT replaces (omitted fields empty)."""
    base = dict(old or {}) if partial else {}
    for key, value in data.items():
        base[key] = "" if value is None else value
    return {name: base.get(name, "") or "" for name in FIELDS}


def validate(data_source: DataSource, values: dict[str, Any]) -> dict[str, Any]:
    """Check the seed's rules, then the named table and columns against the cached schema."""
    errors: dict[str, list[str]] = {}
    level = values.get("level")
    if level not in LEVELS:
        errors["tenancy_settings.level"] = ["Must be TABLE or DATABASE."]
    elif level == "DATABASE":
        return {**{name: "" for name in FIELDS}, "level": "DATABASE"}
    else:
        for name in TABLE_REQUIRED:
            if not values.get(name):
                errors[f"tenancy_settings.{name}"] = ["This field is required when level is TABLE."]
        if values.get("client_column_type") and values["client_column_type"] not in CLIENT_TYPES:
            errors["tenancy_settings.client_column_type"] = ["Must be NUMBER or STRING."]
    if errors:
        raise TenancySettingsInvalid("The tenancy settings are invalid.", errors=errors)
    _check_against_schema(data_source, values)
    return values


def _check_against_schema(data_source: DataSource, values: dict[str, Any]) -> None:
    if not data_source.pk:
        return
    snapshot = SchemaSnapshot.objects.filter(data_source=data_source).order_by("-version").first()
    if snapshot is None:
        return
    table = (
        SchemaTable.objects.filter(snapshot=snapshot, schema__iexact=values["schema"], name__iexact=values["table"])
        .only("columns")
        .first()
    )
    if table is None:
        raise TenancySettingsInvalid(
            f"Table {values['schema']}.{values['table']} is not in the cached schema (version {snapshot.version}).",
            errors={"tenancy_settings.table": ["No such table in the cached schema."]},
        )
    errors = column_problems(values, table.columns)
    if errors:
        raise TenancySettingsInvalid("The tenancy settings do not match the cached schema.", errors=errors)


def column_problems(values: dict[str, Any], columns: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What TABLE-level settings name that ``columns`` (a table's, as cached) lacks or types otherwise."""
    by_name = {c["name"].lower(): c for c in columns}
    errors: dict[str, list[str]] = {}
    for name in ("client_column", "primary_key_column"):
        if values[name].lower() not in by_name:
            errors[f"tenancy_settings.{name}"] = [f"No column '{values[name]}' in {values['table']}."]
    client = by_name.get(values["client_column"].lower())
    if client is not None:
        pattern = _NUMBER if values["client_column_type"] == "NUMBER" else _STRING
        if not pattern.search(client.get("type") or ""):
            errors["tenancy_settings.client_column_type"] = [
                f"Column '{client['name']}' has type {client.get('type')!r}, which is not a "
                f"{values['client_column_type']}."
            ]
    return errors


def write(data_source: DataSource, values: dict[str, Any] | None) -> None:
    """Apply validated settings (None deletes them). Call inside the update transaction."""
    if values is None:
        TenancySettings.objects.filter(data_source=data_source).delete()
        data_source._state.fields_cache.pop("tenancy", None)  # the instance reads "none" from now on
        return
    settings_row, _ = TenancySettings.objects.update_or_create(data_source=data_source, defaults=values)
    data_source.tenancy = settings_row  # the instance reads the new settings, not a cached old row

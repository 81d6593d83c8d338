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
    """Check the seed's rules, then the named table and columns against the cached schema; the
    names are stored as the cached schema spells them. Level DATABASE keeps no table fields (the
    contract says they are ignored, stored empty)."""
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
    return _check_against_schema(data_source, values)


def _one(candidates: list[Any], exact: Any, key: Any) -> Any:
    """The candidate named exactly, else the only one named so in another case; None when there is
    none, or several that differ only in case (PostgreSQL's "Orders" and "orders")."""
    for candidate in candidates:
        if key(candidate) == exact:
            return candidate
    return candidates[0] if len(candidates) == 1 else None


def _check_against_schema(data_source: DataSource, values: dict[str, Any]) -> dict[str, Any]:
    if not data_source.pk:
        return values
    snapshot = SchemaSnapshot.objects.filter(data_source=data_source).order_by("-version").first()
    if snapshot is None:
        return values
    in_schema = SchemaTable.objects.filter(snapshot=snapshot, schema__iexact=values["schema"])
    tables = list(in_schema.filter(name__iexact=values["table"]).only("schema", "name", "columns"))
    table = _one(tables, (values["schema"], values["table"]), lambda t: (t.schema, t.name))
    if table is None:
        where = f"{values['schema']}.{values['table']}"
        if len(tables) > 1:
            errors = {"tenancy_settings.table": [f"Several tables are named {where} in other cases: "
                                                 "send the exact name."]}
        elif not in_schema.exists():
            errors = {"tenancy_settings.schema": [f"No schema '{values['schema']}' in the cached schema."]}
        else:
            errors = {"tenancy_settings.table": ["No such table in the cached schema."]}
        raise TenancySettingsInvalid(f"Table {where} is not in the cached schema (version {snapshot.version}).",
                                     errors=errors)
    errors = column_problems(values, table.columns)
    if errors:
        raise TenancySettingsInvalid("The tenancy settings do not match the cached schema.", errors=errors)
    # Stored as the schema spells them (a client may have sent ORDERS for orders).
    columns = {name: _one([c for c in table.columns if c["name"].lower() == values[name].lower()], values[name],
                          lambda c: c["name"])["name"] for name in ("client_column", "primary_key_column")}
    return {**values, "schema": table.schema, "table": table.name, **columns}


def column_problems(values: dict[str, Any], columns: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What TABLE-level settings name that ``columns`` (a table's, as cached) lacks, names ambiguously
    (several columns in other cases) or types otherwise."""
    errors: dict[str, list[str]] = {}
    found: dict[str, Any] = {}
    for name in ("client_column", "primary_key_column"):
        same = [c for c in columns if c["name"].lower() == values[name].lower()]
        found[name] = _one(same, values[name], lambda c: c["name"])
        if not same:
            errors[f"tenancy_settings.{name}"] = [f"No column '{values[name]}' in {values['table']}."]
        elif found[name] is None:
            errors[f"tenancy_settings.{name}"] = [f"Several columns are named '{values[name]}' in other cases: "
                                                  f"send the exact name."]
    client = found["client_column"]
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

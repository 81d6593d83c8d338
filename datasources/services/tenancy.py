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
#: Base type names (parameters, ``Nullable(...)``/``LowCardinality(...)`` and sign words removed) that
#: hold one number or one string. Whole names: ``interval``, ``point``, ``int4range``, ``linestring``,
#: arrays (``text[]``, ``_int4``, ``Array(Int32)``) and the like are neither.
_NUMBER = re.compile(r"u?int(eger)?\d*|u?(tiny|small|medium|big|huge)int|(small|big)?serial\d*|(big)?numeric|"
                     r"(big)?decimal\d*|number|real|double( precision)?|float\d*")
_STRING = re.compile(r"n?char(acter)?( varying)?|n?varchar2?|bpchar|(tiny|medium|long|n)?text|string|"
                     r"fixedstring|uuid|citext|enum\d*|n?clob|name")
_WRAPPER = re.compile(r"(nullable|lowcardinality)\((.*)\)")


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


def validate(data_source: DataSource, values: dict[str, Any], *, against_schema: bool = True) -> dict[str, Any]:
    """Check the seed's rules, then (``against_schema``) the named table and columns against the
    cached schema; the names are stored as the cached schema spells them. Level DATABASE keeps no
    table fields (stored empty; one sent with a value is refused before: ``refuse_table_fields``). A
    change that also moves the connection is checked against its own test's tables (``check_tables``)."""
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
    return _check_against_schema(data_source, values) if against_schema else values


def refuse_table_fields(level: str, sent: dict[str, Any]) -> None:
    """Level DATABASE keeps no table fields: one sent with a value is refused by name (it was dropped
    silently), as the Databrain adapter refuses it; null or "" carry no value and pass."""
    if level != "DATABASE":
        return
    errors = {f"tenancy_settings.{name}": ["Only for level TABLE: leave it out (or null) with level DATABASE."]
              for name in TABLE_REQUIRED if sent.get(name) not in (None, "")}
    if errors:
        raise TenancySettingsInvalid("Level DATABASE takes no table fields.", errors=errors)


def _one(candidates: list[Any], exact: Any, key: Any) -> Any:
    """The candidate named exactly, else the only one named so in another case; None when there is
    none, or several that differ only in case (PostgreSQL's "Orders" and "orders")."""
    for candidate in candidates:
        if key(candidate) == exact:
            return candidate
    return candidates[0] if len(candidates) == 1 else None


def _pick_table(tables: list[Any], schema: str, table: str) -> Any:
    """Among the tables named so in any case: the schema, then the table within it, each by ``_one``
    (``PUBLIC``/``STRASSE`` names public's ``STRASSE`` beside its ``Straße``: the schema is the only
    one so named, the table the exact one)."""
    schemas = sorted({t[0] for t in tables})
    chosen = _one(schemas, schema, lambda name: name)
    return None if chosen is None else _one([t for t in tables if t[0] == chosen], table, lambda t: t[1])


def _check_against_schema(data_source: DataSource, values: dict[str, Any]) -> dict[str, Any]:
    if not data_source.pk:
        return values
    snapshot = SchemaSnapshot.objects.filter(data_source=data_source).order_by("-version").first()
    if snapshot is None:
        return values
    # Names compared in Python: the database's case folding (SQLite's) may know ASCII only.
    schema, name = values["schema"].casefold(), values["table"].casefold()
    names = SchemaTable.objects.filter(snapshot=snapshot).values_list("pk", "schema", "name")
    in_schema = [(pk, table_name) for pk, table_schema, table_name in names if table_schema.casefold() == schema]
    pks = [pk for pk, table_name in in_schema if table_name.casefold() == name]
    tables = [(t.schema, t.name, t.columns) for t in
              (SchemaTable.objects.filter(pk__in=pks).only("schema", "name", "columns") if pks else [])]
    return _matched(values, tables, bool(in_schema), "the cached schema", f" (version {snapshot.version})")


def problems_in(data_source: DataSource, snapshot: SchemaSnapshot) -> dict[str, Any] | None:
    """Whether the source's TABLE-level settings still fit ``snapshot`` (a refresh's new one):
    ``{"breaks", "errors"}``, or None when it has none (or DATABASE level)."""
    values = current(data_source)
    if not values or values.get("level") != "TABLE":
        return None
    schema, name = values["schema"].casefold(), values["table"].casefold()
    rows = SchemaTable.objects.filter(snapshot=snapshot).values_list("schema", "name", "columns")
    in_schema = [row for row in rows if row[0].casefold() == schema]
    try:
        _matched(values, [row for row in in_schema if row[1].casefold() == name], bool(in_schema),
                 "the cached schema", f" (version {snapshot.version})")
    except TenancySettingsInvalid as exc:
        return {"breaks": True, "errors": exc.errors}
    return {"breaks": False, "errors": {}}


def check_tables(values: dict[str, Any] | None, tables: list[Any]) -> dict[str, Any] | None:
    """TABLE-level settings checked against ``tables`` (``TableInfo``s a connection test just read):
    the change moves the connection, so its settings are judged by the new target, not the cache."""
    if not values or values.get("level") != "TABLE":
        return values
    schema, name = values["schema"].casefold(), values["table"].casefold()
    in_schema = [t for t in tables if t.schema.casefold() == schema]
    found = [(t.schema, t.name, [{"name": c.name, "type": c.data_type} for c in t.columns])
             for t in in_schema if t.name.casefold() == name]
    return _matched(values, found, bool(in_schema), "the new connection's schema")


def _matched(values: dict[str, Any], tables: list[tuple[str, str, list[dict[str, Any]]]], schema_found: bool,
             where_checked: str, version: str = "") -> dict[str, Any]:
    """``values`` with the names spelled as ``tables`` (the candidates named so in any case) spell them;
    else TenancySettingsInvalid naming each problem."""
    found = _pick_table(tables, values["schema"], values["table"])
    if found is None:
        where = f"{values['schema']}.{values['table']}"
        if len(tables) > 1:
            errors = {"tenancy_settings.table": [f"Several tables are named {where} in other cases: "
                                                 "send the exact name."]}
        elif not schema_found:
            errors = {"tenancy_settings.schema": [f"No schema '{values['schema']}' in {where_checked}."]}
        else:
            errors = {"tenancy_settings.table": [f"No such table in {where_checked}."]}
        raise TenancySettingsInvalid(f"Table {where} is not in {where_checked}{version}.", errors=errors)
    table_schema, table_name, columns = found
    errors = column_problems(values, columns)
    if errors:
        raise TenancySettingsInvalid(f"The tenancy settings do not match {where_checked}.", errors=errors)
    # Stored as the schema spells them (a client may have sent ORDERS for orders).
    spelled = {key: _one([c for c in columns if c["name"].casefold() == values[key].casefold()], values[key],
                         lambda c: c["name"])["name"] for key in ("client_column", "primary_key_column")}
    return {**values, "schema": table_schema, "table": table_name, **spelled}


def column_problems(values: dict[str, Any], columns: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What TABLE-level settings name that ``columns`` (a table's, as cached) lacks, names ambiguously
    (several columns in other cases) or types otherwise."""
    errors: dict[str, list[str]] = {}
    found: dict[str, Any] = {}
    for name in ("client_column", "primary_key_column"):
        same = [c for c in columns if c["name"].casefold() == values[name].casefold()]
        found[name] = _one(same, values[name], lambda c: c["name"])
        if not same:
            errors[f"tenancy_settings.{name}"] = [f"No column '{values[name]}' in {values['table']}."]
        elif found[name] is None:
            errors[f"tenancy_settings.{name}"] = [f"Several columns are named '{values[name]}' in other cases: "
                                                  f"send the exact name."]
    client = found["client_column"]
    if client is not None:
        pattern = _NUMBER if values["client_column_type"] == "NUMBER" else _STRING
        if not pattern.fullmatch(base_type(client.get("type") or "")):
            errors["tenancy_settings.client_column_type"] = [
                f"Column '{client['name']}' has type {client.get('type')!r}, which is not a "
                f"{values['client_column_type']}."
            ]
    return errors


def base_type(declared: str) -> str:
    """A column type's base name, lower case: ``character varying(255)`` -> ``character varying``,
    ``Nullable(Int64)`` -> ``int64``, ``int(11) unsigned`` -> ``int``; arrays keep their mark
    (``text[]``, ``array(...)``) so that they match neither kind."""
    name = declared.strip().lower()
    while match := _WRAPPER.fullmatch(name):
        name = match.group(2).strip()
    if name.startswith("array"):
        return name
    name = re.sub(r"\([^)]*\)", "", name)
    name = re.sub(r"\b(unsigned|signed|zerofill)\b", "", name)
    return " ".join(name.split())


def write(data_source: DataSource, values: dict[str, Any] | None) -> None:
    """Apply validated settings (None deletes them). Call inside the update transaction."""
    if values is None:
        TenancySettings.objects.filter(data_source=data_source).delete()
        data_source._state.fields_cache.pop("tenancy", None)  # the instance reads "none" from now on
        return
    settings_row, _ = TenancySettings.objects.update_or_create(data_source=data_source, defaults=values)
    data_source.tenancy = settings_row  # the instance reads the new settings, not a cached old row

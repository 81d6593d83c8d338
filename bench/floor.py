"""Benchmark *floor*: bare Django views doing the minimum SQL for the same result as the API.

Enabled only by ``bench.settings`` (through ``bench.urls``); ``bench/run.py`` drives
the same load at these views and at the real API and prints every API figure as a ratio to its floor.

What a floor view keeps: bearer-token authentication (hash lookup, revocation, expiry, scope, the
token user's role, ``last_used_at`` once a minute), org scoping, the If-Match check, the minimal
validation of the body and the same JSON representation. What it drops: DRF (request/parser,
serializers, permissions, pagination, renderers), the service layer, the audit INSERT and every
extra round trip. Each view is one statement for a read and ``SELECT ... FOR UPDATE`` plus its
UPDATE(s) for a write. The data-source connection PATCH tests the new configuration and
introspects the schema over ONE connection to the target database. The floors support what the
benchmark sends (ids in paths, ``org.name:ref:vN`` sources); anything else answers 400.
"""

from __future__ import annotations

import atexit
import hashlib
import ipaddress
import json
import os
import time
from datetime import datetime, timedelta
from typing import Any, cast

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from datasources import catalogue
from datasources.connectors.base import MAX_COLUMNS, MAX_TABLES
from datasources.connectors.postgresql import INTROSPECT_SQL, SYSTEM_SCHEMAS
from datasources.services.connection import schema_digest
from organizations.models import WRITE_ROLES
from workflows.references import (
    InvalidReference,
    name_key,
    parse_source_reference,
    parse_table_reference,
    render_source,
    render_workflow,
)

LAST_USED_RESOLUTION = timedelta(seconds=60)
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

# ---- shared SQL -------------------------------------------------------------------------------

AUTH_COLUMNS = "t.id, t.name, t.organization_id, t.user_id, t.scopes, t.last_used_at, tu.is_active, tm.role"
AUTH_FROM = """organizations_apitoken t
  LEFT JOIN auth_user tu ON tu.id = t.user_id
  LEFT JOIN organizations_membership tm ON tm.user_id = t.user_id AND tm.organization_id = t.organization_id"""
AUTH_WHERE = "t.token_hash = %s AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())"
N_AUTH = 8

# Per-row lookups are scalar subqueries rather than joins: PostgreSQL plans them without a join-order
# search (a seven-way join took ~5 ms to plan, more than running it).
DS_COLUMNS = """ds.id, ds.reference_id,
  (SELECT o.slug FROM organizations_organization o WHERE o.id = ds.organization_id),
  ds.workspace_id, ds.name, ds.type, ds.description, ds.connection,
  ds.connection_pool_size, ds.connection_timeout, ds.query_timeout, ds.max_retries, ds.schema_auto_refresh,
  ds.schema_refresh_interval, ds.tags, ds.metadata, ds.status, ds.last_test, ds.schema_status,
  ds.schema_version, ds.schema_refreshed_at, ds.schema_status_at, ds.schema_table_count, ds.schema_error,
  ds.version, ds.created_at, ds.updated_at,
  ds.created_by_token_id, (SELECT x.name FROM organizations_apitoken x WHERE x.id = ds.created_by_token_id),
  ds.created_by_id, (SELECT u.username FROM auth_user u WHERE u.id = ds.created_by_id),
  ds.updated_by_token_id, (SELECT x.name FROM organizations_apitoken x WHERE x.id = ds.updated_by_token_id),
  ds.updated_by_id, (SELECT u.username FROM auth_user u WHERE u.id = ds.updated_by_id),
  ARRAY(SELECT c.field FROM datasources_credential c WHERE c.data_source_id = ds.id ORDER BY c.field),
  (SELECT json_build_array(ten.level, ten.client_column_type, ten.schema, ten."table", ten.client_column,
     ten.primary_key_column) FROM datasources_tenancysettings ten WHERE ten.data_source_id = ds.id)"""
DS_FIELDS = (
    "id", "reference_id", "organization", "workspace", "name", "type", "description", "connection",
    "connection_pool_size", "connection_timeout", "query_timeout", "max_retries", "schema_auto_refresh",
    "schema_refresh_interval", "tags", "metadata", "status", "last_test", "schema_status", "schema_version",
    "schema_refreshed_at", "schema_status_at", "schema_table_count", "schema_error", "version", "created_at",
    "updated_at", "ct_id", "ct_name", "cu_id", "cu_name", "ut_id", "ut_name", "uu_id", "uu_name", "credentials",
    "tenancy",
)
N_DS = len(DS_FIELDS)
TENANCY_FIELDS = ("level", "client_column_type", "schema", "table", "client_column", "primary_key_column")

GET_DS_SQL = f"""SELECT {AUTH_COLUMNS}, {DS_COLUMNS}
FROM {AUTH_FROM}
  LEFT JOIN datasources_datasource ds ON ds.organization_id = t.organization_id AND ds.id = %s
WHERE {AUTH_WHERE}"""  # noqa: S608 (constant fragments; values are bound parameters)  # nosec B608

LIST_DS_SQL = f"""WITH a AS (SELECT {AUTH_COLUMNS} FROM {AUTH_FROM} WHERE {AUTH_WHERE}),
  page AS (SELECT x.* FROM datasources_datasource x, a WHERE x.organization_id = a.organization_id
           ORDER BY x.id LIMIT %s OFFSET %s),
  n AS (SELECT count(*) FROM datasources_datasource x, a WHERE x.organization_id = a.organization_id)
SELECT a.*, n.count, {DS_COLUMNS}
FROM a CROSS JOIN n LEFT JOIN page ds ON true ORDER BY ds.id"""  # noqa: S608 (module constants only; values are bound parameters)  # nosec B608

LOCK_DS_SQL = f"""SELECT {AUTH_COLUMNS}, {DS_COLUMNS}
FROM {AUTH_FROM}
  JOIN datasources_datasource ds ON ds.organization_id = t.organization_id AND ds.id = %s
WHERE {AUTH_WHERE}
FOR UPDATE OF ds"""  # noqa: S608 (module constants only; values are bound parameters)  # nosec B608

AUTH_SQL = f"SELECT {AUTH_COLUMNS} FROM {AUTH_FROM} WHERE {AUTH_WHERE}"  # noqa: S608 (module constants only; values are bound parameters)  # nosec B608


# ---- small helpers ----------------------------------------------------------------------------


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json_response(data: Any, status: int = 200, etag: str | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(data), status=status, content_type="application/json")
    if etag:
        response["ETag"] = etag
    return response


def _error(exc: Refused) -> HttpResponse:
    return _json_response({"code": exc.code, "message": exc.message}, exc.status)


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _dt(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _token_hash(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(header) != 2 or header[0].lower() != "bearer":
        raise Refused(401, "AUTHENTICATION_ERROR", "Authentication credentials were not provided.")
    return hashlib.sha256(header[1].encode()).hexdigest()


class Auth:
    """The token row: scope and role checks, and the once-a-minute ``last_used_at`` write."""

    def __init__(self, row: tuple | None, scope: str, write: bool) -> None:
        if row is None or row[0] is None:
            raise Refused(401, "AUTHENTICATION_ERROR", "Invalid, expired or revoked token.")
        self.id, self.name, self.org_id, self.user_id, scopes, last_used, user_active, role = row[:N_AUTH]
        if self.user_id is not None and (not user_active or role is None):
            raise Refused(401, "AUTHENTICATION_ERROR", "Invalid, expired or revoked token.")
        if scope not in _load(scopes):
            raise Refused(403, "FORBIDDEN", f"This token lacks the '{scope}' scope.")
        if write and role is not None and role not in WRITE_ROLES:
            raise Refused(403, "FORBIDDEN", f"Your role '{role}' cannot make changes.")
        now = timezone.now()
        if last_used is None or now - last_used > LAST_USED_RESOLUTION:
            with connection.cursor() as cursor:
                cursor.execute("UPDATE organizations_apitoken SET last_used_at = %s WHERE id = %s", [now, self.id])

    @property
    def actor(self) -> dict[str, Any]:
        return {"kind": "token", "id": self.id, "name": self.name}


def _actor(token_id: Any, token_name: Any, user_id: Any, username: Any) -> dict[str, Any] | None:
    if token_id is not None:
        return {"kind": "token", "id": token_id, "name": token_name}
    if user_id is not None:
        return {"kind": "user", "id": user_id, "name": username}
    return None


def _ds_repr(values: tuple) -> dict[str, Any]:
    r = dict(zip(DS_FIELDS, values, strict=True))
    connection_settings = _load(r["connection"])
    credentials = list(r["credentials"])
    tenancy = None
    if r["tenancy"] is not None:
        tenancy = dict(zip(TENANCY_FIELDS, _load(r["tenancy"]), strict=True))
    return {
        "id": r["id"], "reference_id": r["reference_id"], "organization": r["organization"],
        "workspace": r["workspace"], "name": r["name"], "type": r["type"], "description": r["description"],
        "connection": connection_settings, "credentials_set": credentials,
        "connection_pool_size": r["connection_pool_size"], "connection_timeout": r["connection_timeout"],
        "query_timeout": r["query_timeout"], "max_retries": r["max_retries"],
        "schema_auto_refresh": r["schema_auto_refresh"], "schema_refresh_interval": r["schema_refresh_interval"],
        "tags": _load(r["tags"]), "metadata": _load(r["metadata"]), "tenancy_settings": tenancy,
        "status": r["status"],
        "is_fully_configured": catalogue.is_fully_configured(
            catalogue.get_type(r["type"]), connection_settings, set(credentials)
        ),
        "last_test": _load(r["last_test"]),
        "schema": {
            "status": r["schema_status"], "version": r["schema_version"],
            "refreshed_at": _dt(r["schema_refreshed_at"]), "status_changed_at": _dt(r["schema_status_at"]),
            "table_count": r["schema_table_count"], "error": r["schema_error"],
        },
        "version": r["version"], "created_at": _dt(r["created_at"]),
        "created_by": _actor(r["ct_id"], r["ct_name"], r["cu_id"], r["cu_name"]),
        "updated_at": _dt(r["updated_at"]),
        "updated_by": _actor(r["ut_id"], r["ut_name"], r["uu_id"], r["uu_name"]),
    }


def _etag(pk: Any, version: Any) -> str:
    return f'"{pk}-{version}"'


def _check_if_match(request: HttpRequest, pk: Any, version: Any) -> None:
    if_match = request.headers.get("If-Match")
    if if_match is None:
        return
    candidates = [c.strip().removeprefix("W/") for c in if_match.split(",")]
    if "*" not in candidates and _etag(pk, version) not in candidates:
        raise Refused(412, "PRECONDITION_FAILED", "The resource changed since you read it.")


def _body(request: HttpRequest) -> dict[str, Any]:
    content_type = request.content_type or ""
    if content_type not in ("application/json", "application/merge-patch+json"):
        raise Refused(415, "UNSUPPORTED_MEDIA_TYPE", "Send JSON.")
    try:
        data = json.loads(request.body)
    except ValueError:
        raise Refused(400, "INVALID_REQUEST_BODY", "Malformed JSON.") from None
    if not isinstance(data, dict):
        raise Refused(400, "INVALID_REQUEST_BODY", "Expected a JSON object.")
    return data


def _refused_for_missing(cursor: Any, token_hash: str, scope: str) -> Refused:
    """A locking join found no row: 401 for a bad token, else 404."""
    cursor.execute(AUTH_SQL, [token_hash])
    Auth(cursor.fetchone(), scope, write=True)
    return Refused(404, "NOT_FOUND", "Not found.")


# ---- data sources -----------------------------------------------------------------------------


def _get_data_source(request: HttpRequest, pk: int) -> HttpResponse:
    token_hash = _token_hash(request)
    with connection.cursor() as cursor:
        cursor.execute(GET_DS_SQL, [pk, token_hash])
        row = cursor.fetchone()
    Auth(row, "datasource.read", write=False)
    if row[N_AUTH] is None:
        raise Refused(404, "NOT_FOUND", "Data source not found.")
    values = row[N_AUTH:]
    return _json_response(_ds_repr(values), etag=_etag(values[0], values[24]))


PLAIN_PATCH = {"description", "tags"}


def _validate_plain(data: dict[str, Any]) -> dict[str, Any]:
    unknown = set(data) - PLAIN_PATCH
    if unknown:
        raise Refused(400, "INVALID_REQUEST_BODY", f"Unknown or read-only fields: {', '.join(sorted(unknown))}.")
    values: dict[str, Any] = {}
    if "description" in data:
        description = data["description"]
        if description is not None and (not isinstance(description, str) or len(description) > 10_000):
            raise Refused(400, "INVALID_REQUEST_BODY", "description: a string of at most 10000 characters.")
        values["description"] = description or ""
    if "tags" in data:
        tags = data["tags"] or []
        if (
            not isinstance(tags, list)
            or len(tags) > 50
            or len(set(map(str, tags))) != len(tags)
            or not all(isinstance(t, str) and 1 <= len(t) <= 64 for t in tags)
        ):
            raise Refused(400, "INVALID_REQUEST_BODY", "tags: at most 50 unique strings of 1-64 characters.")
        values["tags"] = tags
    return values


def _patch_plain(request: HttpRequest, pk: int, data: dict[str, Any]) -> HttpResponse:
    values = _validate_plain(data)
    token_hash = _token_hash(request)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(LOCK_DS_SQL, [pk, token_hash])
        row = cursor.fetchone()
        if row is None:
            raise _refused_for_missing(cursor, token_hash, "datasource.write")
        auth = Auth(row, "datasource.write", write=True)
        rep = _ds_repr(row[N_AUTH:])
        _check_if_match(request, pk, rep["version"])
        changed = {k: v for k, v in values.items() if rep[k] != v}
        if changed:
            now = timezone.now()
            cursor.execute(
                "UPDATE datasources_datasource SET description = %s, tags = %s::jsonb, version = version + 1, "
                "updated_at = %s, updated_by_id = %s, updated_by_token_id = %s WHERE id = %s",
                [
                    changed.get("description", rep["description"]), json.dumps(changed.get("tags", rep["tags"])),
                    now, auth.user_id, auth.id, pk,
                ],
            )
            rep.update(changed, version=rep["version"] + 1, updated_at=_dt(now), updated_by=auth.actor)
    return _json_response(rep, etag=_etag(pk, rep["version"]))


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _allowed(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in settings.DATASOURCE_ALLOWED_NETWORKS)


def _test_and_introspect(conn_settings: dict[str, Any], timeout: int) -> tuple[str, str, int]:
    """One connection: the test queries, then the introspection. Returns (server version, fingerprint, tables)."""
    host = conn_settings.get("host") or ""
    if not _allowed(host):
        raise Refused(400, "CREDENTIAL_TEST_FAILED", "The host is not allowed.")
    schema = conn_settings.get("schema") or "public"
    ssl = conn_settings.get("ssl") or {}
    try:
        with psycopg.connect(
            host=host, port=conn_settings.get("port") or 5432, dbname=conn_settings.get("database"),
            user=conn_settings.get("username"), sslmode=ssl.get("mode") or "prefer", connect_timeout=timeout,
            autocommit=True, prepare_threshold=None,
        ) as target:
            server_version = cast("tuple[Any, ...]", target.execute("SELECT version()").fetchone())[0]  # always a row
            if not target.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                                  (schema,)).fetchone():
                raise Refused(400, "CREDENTIAL_TEST_FAILED", f"Schema '{schema}' not found.")
            rows = target.execute(INTROSPECT_SQL, {"schema": schema, "system": list(SYSTEM_SCHEMAS),
                                                   "max_tables": MAX_TABLES, "max_columns": MAX_COLUMNS}).fetchall()
    except psycopg.Error as exc:
        raise Refused(400, "CREDENTIAL_TEST_FAILED", str(exc).splitlines()[0]) from None
    tables: dict[tuple[str, str], tuple[str, str, str, list]] = {}
    for nsp, rel, kind, column, data_type, nullable in rows:
        entry = tables.setdefault((nsp, rel), (nsp, rel, "view" if kind in ("v", "m") else "table", []))
        if column is not None:
            entry[3].append((column, data_type, bool(nullable), len(entry[3]) + 1))
    fingerprint = schema_digest(list(tables.values()))
    return str(server_version)[:255], fingerprint, len(tables)


def _patch_connection(request: HttpRequest, pk: int, data: dict[str, Any]) -> HttpResponse:
    if set(data) != {"connection"} or not isinstance(data["connection"], dict):
        raise Refused(400, "INVALID_REQUEST_BODY", "This floor takes {\"connection\": {...}} only.")
    token_hash = _token_hash(request)
    with connection.cursor() as cursor:
        cursor.execute(GET_DS_SQL, [pk, token_hash])
        row = cursor.fetchone()
    auth = Auth(row, "datasource.write", write=True)
    if row[N_AUTH] is None:
        raise Refused(404, "NOT_FOUND", "Data source not found.")
    rep = _ds_repr(row[N_AUTH:])
    _check_if_match(request, pk, rep["version"])
    new_settings = _merge(rep["connection"], data["connection"])
    mode = (new_settings.get("ssl") or {}).get("mode", "prefer")
    if rep["type"] != "postgresql" or mode not in SSL_MODES:
        raise Refused(400, "INVALID_REQUEST_BODY", "This floor tests postgresql sources with a valid SSL mode.")
    if new_settings == rep["connection"]:
        return _json_response(rep, etag=_etag(pk, rep["version"]))
    # The test and the introspection run before any lock is taken, like the API.
    server_version, fingerprint, table_count = _test_and_introspect(new_settings, rep["connection_timeout"])
    now = timezone.now()
    last_test = {"ok": True, "stage": None, "server_version": server_version, "tested_at": now.isoformat()}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT ds.version, (SELECT s.fingerprint FROM datasources_schemasnapshot s "
            "WHERE s.data_source_id = ds.id ORDER BY s.version DESC LIMIT 1) "
            "FROM datasources_datasource ds WHERE ds.id = %s FOR UPDATE",
            [pk],
        )
        version, latest_fingerprint = cursor.fetchone()
        if version != rep["version"]:
            raise Refused(409, "CONFLICT", "Changed meanwhile (the floor does not re-merge).")
        if latest_fingerprint != fingerprint:
            raise Refused(409, "CONFLICT", "The schema changed: the floor stores no new snapshot.")
        cursor.execute(
            "UPDATE datasources_datasource SET connection = %s::jsonb, status = 'active', last_test = %s::jsonb, "
            "version = version + 1, updated_at = %s, updated_by_id = %s, updated_by_token_id = %s, "
            "schema_status = 'ready', schema_error = '', schema_status_at = %s, schema_checked_at = %s, "
            "schema_refreshed_at = %s, schema_table_count = %s WHERE id = %s",
            [json.dumps(new_settings), json.dumps(last_test), now, auth.user_id, auth.id, now, now, now,
             table_count, pk],
        )
    rep.update(
        connection=new_settings, status="active", last_test=last_test, version=version + 1, updated_at=_dt(now),
        updated_by=auth.actor,
    )
    rep["schema"].update(status="ready", error="", refreshed_at=_dt(now), status_changed_at=_dt(now),
                         table_count=table_count)
    return _json_response(rep, etag=_etag(pk, rep["version"]))


@csrf_exempt
def data_source(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        if request.method == "GET":
            return _get_data_source(request, pk)
        if request.method == "PATCH":
            data = _body(request)
            if "connection" in data:
                return _patch_connection(request, pk, data)
            return _patch_plain(request, pk, data)
        raise Refused(405, "METHOD_NOT_ALLOWED", "Method not allowed.")
    except Refused as exc:
        return _error(exc)


@csrf_exempt
def data_source_list(request: HttpRequest) -> HttpResponse:
    try:
        if request.method != "GET":
            raise Refused(405, "METHOD_NOT_ALLOWED", "Method not allowed.")
        try:
            page = max(1, int(request.GET.get("page", 1)))
            size = min(200, max(1, int(request.GET.get("page_size", 50))))
        except ValueError:
            raise Refused(404, "NOT_FOUND", "Invalid page.") from None
        token_hash = _token_hash(request)
        with connection.cursor() as cursor:
            cursor.execute(LIST_DS_SQL, [token_hash, size, (page - 1) * size])
            rows = cursor.fetchall()
        Auth(rows[0] if rows else None, "datasource.read", write=False)
        count = rows[0][N_AUTH]
        results = [_ds_repr(r[N_AUTH + 1:]) for r in rows if r[N_AUTH + 1] is not None]
        base = "http://%s/bench/floor/data-sources/?page_size=%d&page=%d"
        host = request.get_host()
        return _json_response({
            "count": count,
            "next": base % (host, size, page + 1) if page * size < count else None,
            "previous": (base % (host, size, page - 1)) if page > 1 else None,
            "results": results,
        })
    except Refused as exc:
        return _error(exc)


# ---- workflow data sources --------------------------------------------------------------------

WDS_COLUMNS = """w.id, w.reference_id, w.name,
  (SELECT o.slug FROM organizations_organization o WHERE o.id = w.organization_id),
  wds.id, wds.reference_id, wds.source_data_source_id,
  wds.source_version, wds.is_sample, wds.source_workflow_id, wds.version, wds.created_at, wds.updated_at,
  wds.created_by_token_id, (SELECT x.name FROM organizations_apitoken x WHERE x.id = wds.created_by_token_id),
  wds.created_by_id, (SELECT u.username FROM auth_user u WHERE u.id = wds.created_by_id),
  wds.updated_by_token_id, (SELECT x.name FROM organizations_apitoken x WHERE x.id = wds.updated_by_token_id),
  wds.updated_by_id, (SELECT u.username FROM auth_user u WHERE u.id = wds.updated_by_id),
  (SELECT json_build_array(sd.reference_id, sd.name, sd.schema_version) FROM datasources_datasource sd
     WHERE sd.id = wds.source_data_source_id),
  (SELECT json_build_array(sw.reference_id, sw.name, sw.version) FROM workflows_workflow sw
     WHERE sw.id = wds.source_workflow_id)"""
WDS_FIELDS = (
    "w_id", "w_ref", "w_name", "org", "id", "reference_id", "sd_id", "source_version", "is_sample", "sw_id",
    "version", "created_at", "updated_at", "ct_id", "ct_name", "cu_id", "cu_name", "ut_id", "ut_name", "uu_id",
    "uu_name", "sd", "sw",
)


def _wds_row(values: tuple) -> dict[str, Any]:
    r = dict(zip(WDS_FIELDS, values, strict=True))
    r["sd_ref"], r["sd_name"], r["sd_schema_version"] = _load(r.pop("sd")) or (None, None, None)
    r["sw_ref"], r["sw_name"], r["sw_version"] = _load(r.pop("sw")) or (None, None, None)
    return r


GET_WDS_SQL = f"""SELECT {AUTH_COLUMNS}, {WDS_COLUMNS}
FROM {AUTH_FROM}
  LEFT JOIN workflows_workflow w ON w.organization_id = t.organization_id AND w.id = %s
  LEFT JOIN workflows_workflowdatasource wds ON wds.workflow_id = w.id AND wds.id = %s
WHERE {AUTH_WHERE}"""  # noqa: S608 (module constants only; values are bound parameters)  # nosec B608
# The repoint's one read: the token, the workflow data source (locked), the target data source and
# the id of the target's schema snapshot (the pinned version, or the newest).
LOCK_WDS_SQL = f"""SELECT {AUTH_COLUMNS}, {WDS_COLUMNS}, nd.id, nd.name, nd.schema_version,
  (SELECT s.id FROM datasources_schemasnapshot s WHERE s.data_source_id = nd.id
     AND (%s::int IS NULL OR s.version = %s::int) ORDER BY s.version DESC LIMIT 1)
FROM {AUTH_FROM}
  JOIN workflows_workflow w ON w.organization_id = t.organization_id AND w.id = %s
  JOIN workflows_workflowdatasource wds ON wds.workflow_id = w.id AND wds.id = %s
  LEFT JOIN datasources_datasource nd ON nd.organization_id = t.organization_id AND nd.reference_id = %s
WHERE {AUTH_WHERE}
FOR UPDATE OF wds"""  # noqa: S608 (module constants only; values are bound parameters)  # nosec B608
# Every table read downstream (distinct, with the names stored for it) and every table of the target.
TABLES_SQL = """SELECT 'read', table_reference_id, array_agg(DISTINCT table_name) FROM workflows_nodeinput
  WHERE workflow_data_source_id = %s GROUP BY table_reference_id
UNION ALL
SELECT 'new', reference_id, ARRAY[name] FROM datasources_schematable WHERE snapshot_id = %s"""


def _wds_repr(r: dict[str, Any]) -> dict[str, Any]:
    org = r["org"]
    if r["sd_id"] is not None:
        reference = render_source(org, r["sd_name"], r["sd_ref"], sample=r["is_sample"], version=r["source_version"])
        source = {
            "type": "data_source", "id": r["sd_id"], "reference_id": r["sd_ref"], "name": r["sd_name"],
            "reference": reference, "version": "current" if r["source_version"] is None else r["source_version"],
            "resolved_version": r["sd_schema_version"] if r["source_version"] is None else r["source_version"],
            "is_sample": r["is_sample"], "url": f"/api/v1/data-sources/{r['sd_id']}/",
        }
    else:
        reference = render_workflow(org, r["sw_name"], r["sw_ref"])
        source = {
            "type": "workflow", "id": r["sw_id"], "reference_id": r["sw_ref"], "name": r["sw_name"],
            "reference": reference, "version": r["sw_version"], "resolved_version": r["sw_version"],
            "is_sample": False, "url": f"/api/v1/workflows/{r['sw_id']}/",
        }
    return {
        "kind": "dataSource", "id": r["id"], "reference_id": r["reference_id"], "reference": reference,
        "url": f"/api/v1/workflows/{r['w_id']}/data-sources/{r['id']}/", "is_sample": r["is_sample"],
        "source": source,
        "source_data_source": reference if r["sd_id"] is not None else None,
        "source_workflow": reference if r["sw_id"] is not None else None,
        "workflow": {
            "id": r["w_id"], "reference_id": r["w_ref"], "name": r["w_name"],
            "reference": render_workflow(org, r["w_name"], r["w_ref"]), "url": f"/api/v1/workflows/{r['w_id']}/",
        },
        "version": r["version"], "created_at": _dt(r["created_at"]),
        "created_by": _actor(r["ct_id"], r["ct_name"], r["cu_id"], r["cu_name"]),
        "updated_at": _dt(r["updated_at"]),
        "updated_by": _actor(r["ut_id"], r["ut_name"], r["uu_id"], r["uu_name"]),
    }


def _get_wds(request: HttpRequest, workflow: int, pk: int) -> HttpResponse:
    token_hash = _token_hash(request)
    with connection.cursor() as cursor:
        cursor.execute(GET_WDS_SQL, [workflow, pk, token_hash])
        row = cursor.fetchone()
    Auth(row, "workflow.read", write=False)
    r = _wds_row(row[N_AUTH:])
    if r["id"] is None:
        raise Refused(404, "NOT_FOUND", "Workflow data source not found.")
    return _json_response(_wds_repr(r), etag=_etag(r["id"], r["version"]))


def _table_key(text: str) -> tuple[str | None, str]:
    ref = parse_table_reference(text)
    return ref.reference_id, name_key(ref.name)


def _plan(read: dict[str, set[str]], new: dict[str, str], mapped: dict[str, str], same_lineage: bool) -> dict:
    """old reference id -> (new reference id, new name) for every table read downstream; 400 when unmapped."""
    new_by_name: dict[str, list[str]] = {}
    for ref, name in new.items():
        new_by_name.setdefault(name_key(name), []).append(ref)
    explicit: dict[str, str] = {}
    for key, value in mapped.items():
        try:
            (key_ref, key_name), (value_ref, value_name) = _table_key(key), _table_key(value)
        except InvalidReference as exc:
            raise Refused(400, "INVALID_REQUEST_BODY", f"mapped_tables: {exc}") from None
        if key_ref is not None:
            olds = [key_ref] if key_ref in read else []
        else:
            olds = [r for r, names in read.items() if key_name in {name_key(n) for n in names}]
        if value_ref is not None:
            target = [value_ref] if value_ref in new else []
        else:
            target = new_by_name.get(value_name, [])
        if len(olds) != 1 or len(target) != 1:
            raise Refused(400, "INVALID_REQUEST_BODY", f"mapped_tables: '{key}' -> '{value}' does not resolve.")
        explicit[olds[0]] = target[0]
    plan, unmapped = {}, []
    for ref, names in read.items():
        if ref in explicit:
            found = [explicit[ref]]
        elif same_lineage and ref in new:
            found = [ref]
        else:
            found = new_by_name.get(name_key(next(iter(names))), [])
        if len(found) != 1:
            unmapped.append(ref)
        else:
            plan[ref] = found[0]
    if unmapped:
        raise Refused(400, "UNMAPPED_TABLES", f"Unmapped tables: {', '.join(sorted(unmapped))}.")
    return plan


def _repoint(request: HttpRequest, workflow: int, pk: int) -> HttpResponse:
    data = _body(request)
    if set(data) - {"source_data_source", "mapped_tables"} or not isinstance(data.get("source_data_source"), str):
        raise Refused(400, "INVALID_REQUEST_BODY", "This floor takes source_data_source and mapped_tables.")
    mapped = data.get("mapped_tables") or {}
    if not isinstance(mapped, dict) or not all(isinstance(v, str) for v in mapped.values()):
        raise Refused(400, "INVALID_REQUEST_BODY", "mapped_tables: an object of strings.")
    try:
        ref = parse_source_reference(data["source_data_source"])
    except InvalidReference as exc:
        raise Refused(400, "INVALID_REQUEST_BODY", str(exc)) from None
    if ref.reference_id is None or ref.sample:
        raise Refused(400, "INVALID_REQUEST_BODY", "This floor takes 'org.name:reference_id[:vN]' sources.")
    version = ref.version if isinstance(ref.version, int) else None
    token_hash = _token_hash(request)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(LOCK_WDS_SQL, [version, version, workflow, pk, ref.reference_id, token_hash])
        row = cursor.fetchone()
        if row is None:
            raise _refused_for_missing(cursor, token_hash, "workflow.write")
        auth = Auth(row, "workflow.write", write=True)
        r = _wds_row(row[N_AUTH:N_AUTH + len(WDS_FIELDS)])
        new_id, new_name, new_schema_version, snapshot_id = row[N_AUTH + len(WDS_FIELDS):]
        _check_if_match(request, r["id"], r["version"])
        if new_id is None or ref.org != r["org"].lower():
            raise Refused(404, "NOT_FOUND", "No such data source in your organization.")
        if snapshot_id is None:
            raise Refused(400, "INVALID_REQUEST_BODY", "No such schema version.")
        cursor.execute(TABLES_SQL, [r["id"], snapshot_id])
        read: dict[str, set[str]] = {}
        new: dict[str, str] = {}
        for kind, table_ref, names in cursor.fetchall():
            if kind == "read":
                read[table_ref] = set(names)
            else:
                new[table_ref] = names[0]
        plan = _plan(read, new, mapped, same_lineage=new_id == r["sd_id"])
        changes = [(old, new_ref) for old, new_ref in plan.items() if new_ref != old or read[old] != {new[new_ref]}]
        if changes:
            params: list[Any] = []
            ref_cases, name_cases = [], []
            for old, new_ref in changes:
                ref_cases.append("WHEN %s THEN %s")
                params += [old, new_ref]
            for old, new_ref in changes:
                name_cases.append("WHEN %s THEN %s")
                params += [old, new[new_ref]]
            cursor.execute(
                "UPDATE workflows_nodeinput SET "  # noqa: S608 (only placeholders are interpolated)  # nosec B608
                f"table_reference_id = CASE table_reference_id {' '.join(ref_cases)} END, "
                f"table_name = CASE table_reference_id {' '.join(name_cases)} END "
                f"WHERE workflow_data_source_id = %s AND table_reference_id IN ({', '.join(['%s'] * len(changes))})",
                [*params, r["id"], *(old for old, _ in changes)],
            )
        now = timezone.now()
        cursor.execute(
            "UPDATE workflows_node SET version = version + 1, updated_at = %s, updated_by_id = %s, "
            "updated_by_token_id = %s WHERE id IN "
            "(SELECT node_id FROM workflows_nodeinput WHERE workflow_data_source_id = %s)",
            [now, auth.user_id, auth.id, r["id"]],
        )
        cursor.execute(
            "UPDATE workflows_workflowdatasource SET source_data_source_id = %s, source_version = %s, "
            "is_sample = false, source_workflow_id = NULL, version = version + 1, updated_at = %s, "
            "updated_by_id = %s, updated_by_token_id = %s WHERE id = %s",
            [new_id, version, now, auth.user_id, auth.id, r["id"]],
        )
    r.update(
        sd_id=new_id, sd_ref=ref.reference_id, sd_name=new_name, sd_schema_version=new_schema_version,
        source_version=version, is_sample=False, sw_id=None, version=r["version"] + 1, updated_at=now,
        ut_id=auth.id, ut_name=auth.name, uu_id=None, uu_name=None,
    )
    return _json_response(_wds_repr(r), etag=_etag(r["id"], r["version"]))


@csrf_exempt
def workflow_data_source(request: HttpRequest, workflow: int, pk: int) -> HttpResponse:
    try:
        if request.method == "GET":
            return _get_wds(request, workflow, pk)
        if request.method == "PATCH":
            return _repoint(request, workflow, pk)
        raise Refused(405, "METHOD_NOT_ALLOWED", "Method not allowed.")
    except Refused as exc:
        return _error(exc)


# ---- worker memory (bench/run.py) -------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RequestCountMiddleware:
    """Counts the requests this worker has served; at the counts listed in BENCH_RSS_AT it appends
    its pid, the count and its RSS (from /proc/self/status) to BENCH_STATS_DIR/worker-<pid>.jsonl.
    It also times each request inside Django (start and duration, written to times-<pid>.txt in
    blocks of 1,000 and at exit: bench/worker_times.py). Outermost in bench.settings, so API and floor
    requests alike are counted."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.count = 0
        self.folder = os.environ.get("BENCH_STATS_DIR", "")
        self.at = {int(n) for n in os.environ.get("BENCH_RSS_AT", "1,2000,20000").split(",") if n.strip()}
        self.times: list[str] = []
        atexit.register(self.write_times)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started, clock = time.time(), time.perf_counter()
        response = self.get_response(request)
        self.times.append(f"{started:.6f} {(time.perf_counter() - clock) * 1e6:.0f}\n")
        if len(self.times) >= 1000:
            self.write_times()
        self.count += 1
        if self.folder and self.count in self.at:
            pid = os.getpid()
            with open(os.path.join(self.folder, f"worker-{pid}.jsonl"), "a") as out:
                out.write(json.dumps({"pid": pid, "count": self.count, "rss_kib": _rss_kib()}) + "\n")
        return response

    def write_times(self) -> None:
        if self.folder and self.times:
            with open(os.path.join(self.folder, f"times-{os.getpid()}.txt"), "a") as out:
                out.writelines(self.times)
        self.times.clear()


urlpatterns = [
    path("data-sources/", data_source_list),
    path("data-sources/<int:pk>/", data_source),
    path("workflows/<int:workflow>/data-sources/<int:pk>/", workflow_data_source),
]

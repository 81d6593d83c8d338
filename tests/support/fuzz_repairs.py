"""Repairs of *positive* fuzz cases with real server state (see tests/core/test_fuzz_schemathesis.py).

Positive cases promise "schema-valid => accepted". Some acceptance rules depend on server state no
static schema can carry: the current ETag, which tables a source's cached schema has, which
references exist, that a data source's type never changes, which secrets are already stored, where
the one real database is. For *positive* cases only, ``repair_positive`` puts real state into those
parts before the request is sent (schemathesis re-validates the case afterwards, so a repaired case is
still judged as positive). Negative cases are never touched, and no check is skipped.
"""

from __future__ import annotations

from core.parsers import INT64_MAX, INT64_MIN
from tests.support.fuzz_world import (
    CANARY_DB,
    CANARY_PG_PASSWORD,
    CANARY_ROLE,
    CANARY_TOKEN,
    PEM_KEY,
    PG_TYPES,
    REAL_TENANCY,
    SERVICE_ACCOUNT,
)

STATE: dict = {}
DS_WRITE_PATHS = ("/api/v1/data-sources/", "/api/v1/data-sources/{id}/")


def _etag_of(path: str) -> str:
    status, headers, _ = STATE["live"].request("GET", path, token=STATE["token"])
    return headers.get("ETag", "*") if status == 200 else "*"


def _all_secrets(kind: str) -> dict:
    """A value for every secret the type can have (a PUT or PATCH keeps the stored ones it omits)."""
    from datasources.catalogue import CATALOGUE

    values = {"pem": PEM_KEY, "json": SERVICE_ACCOUNT}
    return {s.name: values.get(s.kind, CANARY_TOKEN) for s in CATALOGUE[kind].secrets} if kind in CATALOGUE else {}


def _conditional_fields(kind: str) -> dict:
    """A value for every plain "required when" string field of the type (SSH host and user...)."""
    from datasources.catalogue import CATALOGUE

    def walk(fields) -> dict:
        out = {}
        for f in fields:
            if f.kind == "object":
                inner = walk(f.fields)
                if inner:
                    out[f.name] = inner
            elif f.required_when is not None and f.kind == "string" and not f.pattern:
                out[f.name] = f"fuzz-{f.name}"
        return out

    return walk(CATALOGUE[kind].fields) if kind in CATALOGUE else {}


def _restore_secrets(pk: int, kind: str, *, conditional: bool = False) -> None:
    """Other cases may have cleared some of the target's secrets: store them all again (real state a
    replace or a merge relies on: "omitted secrets are kept"); for a merge, the stored connection also
    gets the fields other fields may come to require (a patch that turns the SSH tunnel on keeps them)."""
    secrets = {**_all_secrets(kind), **({"password": CANARY_PG_PASSWORD} if kind in PG_TYPES else {})}
    body = {"credentials": secrets, **({"connection": _conditional_fields(kind)} if conditional else {})}
    STATE["live"].request("PATCH", f"/api/v1/data-sources/{pk}/?test_connection=false", token=STATE["token"],
                          body=body)


def _scratch_of_type(body: dict) -> int | None:
    """A data source of the body's type to PUT it onto: created (untested) from the body itself."""
    kind = body.get("type")
    if kind in STATE["scratch"]:
        _restore_secrets(STATE["scratch"][kind], kind)
        return STATE["scratch"][kind]
    STATE["counter"] += 1
    status, _, created = STATE["live"].request(
        "POST", "/api/v1/data-sources/?test_connection=false", token=STATE["token"],
        body={**body, "name": f"scratch-{kind}-{STATE['counter']}", "tenancy_settings": None,
              "credentials": {**_all_secrets(kind), **(body.get("credentials") or {})}})
    if status != 201:
        return None  # the body is refused on create too: the PUT will show why
    STATE["scratch"][kind] = created["id"]
    return created["id"]


def _real_path(case, label: str) -> None:
    """Path parameters name real objects: the operation's own (scratch, victims, sources whose database
    is here), else one of the fixtures' in nine cases out of ten (the tenth keeps its generated value)."""
    pin = STATE["pins"].get(label)
    if _is_stateful(case) and (pin is None or pin[1] != STATE["pins_kept_in_chains"].get(label)):
        return  # a stateful step acts on what the chain created (its links), not on the fixtures' objects
    params = case.path_parameters  # edited in place: schemathesis tracks in-place edits of its containers
    for name, value in list(params.items()):
        if pin is not None and name == pin[0]:
            if value not in pin[1]:
                params[name] = pin[1][0]
            continue
        choices = STATE["paths"].get(name)
        digest = sum(str(value).encode())
        if choices and value not in choices and digest % 10:
            params[name] = choices[digest % len(choices)]


def _is_stateful(case) -> bool:
    return case.meta is None or case.meta.phase.name == "stateful"


def _repair_compat(case, method: str, path: str, body: dict) -> None:
    """Seed adapters act on the PostgreSQL "Compat" source and test every connection change against the
    real database (they have no `test_connection=false`): what names the database is the real one's, and
    the source is first put back on it (core writes of other cases may have pointed it elsewhere)."""
    conn = STATE["pg_connection"]
    real = {"host": conn["host"], "port": conn["port"], "username": CANARY_ROLE, "database": CANARY_DB,
            "database_name": CANARY_DB, "password": CANARY_PG_PASSWORD, "schema_name": "public", "schema": "public"}
    STATE["live"].request("PATCH", f"/api/v1/data-sources/{STATE['compat']}/?test_connection=false",
                           token=STATE["token"], body={"connection": {**conn, "ssh_tunnel": None, "schema": None},
                                                        "credentials": {"password": CANARY_PG_PASSWORD}})
    if path == "/compat/databrain/api/v2/datasource" and isinstance(body.get("credentials"), dict):
        creds = body["credentials"]
        if body.get("datasourceType") != "postgres":
            # Only PostgreSQL databases are here: no datasource of another type can pass its connection
            # test, so these cases name none (404) instead of a source some other case created.
            creds["name"] = f"no {body.get('datasourceType')} database here"
            return
        creds.update({k: v for k, v in real.items() if k in creds}, name="Compat")
        creds.update({k: v for k, v in (("enableSsl", False), ("sshTunnel", "disable")) if creds.get(k)})
    if path.startswith("/compat/rivergen/"):
        body.pop("file_path", None)  # a field of file sources
        for name in list(body):
            if path.endswith("/credentials") and name != "username" and name not in STATE["pg_secrets"]:
                body.pop(name)  # a secret of another type
            elif name in real:
                body[name] = real[name]
        if body.get("use_ssh_tunnel"):
            body["use_ssh_tunnel"] = False  # no SSH server in front of the cluster
    if path == "/compat/maiascore/datasources/{id}":
        for name in list(body):
            if name in real:
                body[name] = str(real[name]) if name == "port" else real[name]
            elif name in ("ssl", "ssh", "sshTunneling") and body[name]:
                body[name] = False  # no TLS or SSH server in front of the cluster
            elif name in ("certificate", "sslCA", "keyfile"):
                body.pop(name)
        if "driver" in body:
            body["driver"] = "postgres"  # must match the source's type
        body["port"] = str(conn["port"])  # the connection is replaced: an omitted port would be 5432


#: A well-formed Elastic Cloud ID (deployment "fuzz", host elastic.example.com:443): the catalogue decodes
#: cloud ids when they are written, a rule the schema states in words only (it is no pattern).
CLOUD_ID = "fuzz:ZWxhc3RpYy5leGFtcGxlLmNvbTo0NDMkZXNpZCRraWJpZA=="


def _rules_in_words(connection: dict) -> None:
    """Connection rules the schema says in words (the field's description), not as JSON Schema."""
    if isinstance(connection.get("cloud_id"), str) and connection["cloud_id"]:
        connection["cloud_id"] = CLOUD_ID
    if connection.get("srv") is True:
        connection.pop("port", None)  # a seed list (SRV) takes no port but its default


def _text(value: str) -> str:
    return value.replace("\x00", "").encode("utf-8", "ignore").decode("utf-8")


def _acceptable(value):
    """Free-form JSON (metadata) as the API accepts it: integers clamped to 64 bits, and no NUL or lone
    surrogate in any key or string (refused by design: core/parsers.py, README "Security": hostile
    bodies), which the OpenAPI schema cannot say of an object's keys (allow-x00 covers typed strings)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return max(INT64_MIN, min(INT64_MAX, value))
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(key): _acceptable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_acceptable(item) for item in value]
    return value


def repair_positive(case) -> None:
    op = case.operation
    method, path = op.method.upper(), op.path
    if isinstance(case.body, (dict, list)):
        case.body = _acceptable(case.body)
    body = case.body if isinstance(case.body, dict) else None
    _real_path(case, f"{method} {path}")
    if method == "DELETE" and path == "/api/v1/data-sources/{id}/" and str(case.path_parameters.get("id")) in STATE[
            "protected"]:
        # A chain's link may name a fixture (a tenancy answer carries its source's id): delete a victim instead.
        case.path_parameters["id"] = STATE["pins"]["DELETE /api/v1/data-sources/{id}/"][1][0]
    if body is not None and isinstance(body.get("connection_string"), str):
        # Like a host, a connection string names a real database.
        kind = "postgresql" if method == "PATCH" else body.get("type", "postgresql")  # PATCH: the scratch's
        body["connection_string"] = STATE["pg_dsn"] if kind in PG_TYPES else "mysql://app@127.0.0.1:1/app"
    if body is not None and "workspace" in body and path in DS_WRITE_PATHS:
        body["workspace"] = STATE["workspace"] if body["workspace"] is not None else None  # ids that exist
    if method in ("POST", "PUT", "PATCH") and path in DS_WRITE_PATHS:
        # A connection change is tested against the real database before it is applied; generated hosts
        # are not databases, so positive cases skip the test explicitly (a documented, write-scope option).
        case.query = {**(case.query or {}), "test_connection": "false"}
        if body is not None and isinstance(body.get("connection"), dict):
            _rules_in_words(body["connection"])
        if body is not None and method == "POST" and body.get("type") == "postgresql" and "connection" in body:
            # A PostgreSQL source created by a positive case points at the real cluster and is tested.
            body["connection"].update(STATE["pg_connection"], schema="public")
            body["connection"].pop("ssh_tunnel", None)
            body["credentials"] = {"password": CANARY_PG_PASSWORD}
            body.pop("connection_string", None)
            case.query.pop("test_connection")
        if body is not None and method == "PUT":
            target = _scratch_of_type(body)
            if target is not None:
                case.path_parameters["id"] = target
        if body is not None and method == "PATCH":
            pk, kind = str(case.path_parameters.get("id")), "postgresql"
            if pk == str(STATE["scratch"]["postgresql"]):  # the usual target: its type is known
                _restore_secrets(int(pk), "postgresql", conditional=True)
            else:
                status, _, target = STATE["live"].request("GET", case.formatted_path, token=STATE["token"])
                if status == 200:
                    kind = target["type"]
                    _restore_secrets(target["id"], kind, conditional=True)
            body.pop("type", None)  # immutable: only the current type could be sent
            validators = STATE["patch_validators"](kind)  # the target's type's fields (a chain's may be any)
            if "connection" in body and not validators["connection"].is_valid(body["connection"]):
                body.pop("connection")  # fields of another type than the target's
            if "credentials" in body and not validators["credentials"].is_valid(body["credentials"]):
                body.pop("credentials")
    if method == "POST" and path == "/api/v1/data-sources/{id}/plans/" and body is not None:
        # A plan is a PATCH of the scratch source, tested like one: keep the fields that need no server.
        case.path_parameters["id"] = STATE["scratch"]["postgresql"]
        for key in ("type", "name", "connection", "credentials", "connection_string", "tenancy_settings",
                    "workspace"):
            body.pop(key, None)
    if method == "POST" and path == "/api/v1/change-sets/" and body is not None:
        body["items"] = [{"data_source": STATE["scratch"]["postgresql"], "changes": {"description": "fuzz"}}]
    if path.startswith("/api/v1/webhooks") and body is not None and isinstance(body.get("url"), str):
        # A webhook URL is resolved and checked (egress policy): generated hosts are not receivers.
        body["url"] = "http://127.0.0.1:9/hook"
    if path.endswith("/schema/diff/") and str((case.query or {}).get("to")) == "1" and "from" not in case.query:
        case.query["to"] = 2  # version 1 has no earlier one to compare with; the warehouse has two
    tenancy = body.get("tenancy_settings") if body is not None and path in DS_WRITE_PATHS else None
    if isinstance(tenancy, dict) and tenancy.get("level") == "TABLE" and method != "POST":
        tenancy.update(REAL_TENANCY)  # names checked against the target's cached schema
    if path.endswith("/tenancy/") and method in ("PUT", "PATCH") and body is not None:
        if body.get("level", "TABLE") == "TABLE" or method == "PATCH":
            body.update(REAL_TENANCY)
    if path == "/api/v1/workflows/{workflow}/data-sources/" and method == "POST" and body is not None:
        if not str(body.get("source_data_source") or body.get("source_workflow") or "").startswith("acme."):
            body.pop("source_workflow", None)
            body["source_data_source"] = "acme.shop:v1"  # references name real sources
    if path == "/api/v1/workflows/{workflow}/data-sources/{data_source}/" and method == "PATCH" and body is not None:
        body.pop("source_workflow", None)
        body.pop("mapped_tables", None)
        body["source_data_source"] = "acme.warehouse:current"
    if path.startswith("/api/v1/workflows/{workflow}/nodes/") and method in ("POST", "PATCH") and body is not None:
        if "inputs" in body or method == "POST":
            in_flow = str(case.path_parameters.get("workflow")) in STATE["flow"]
            body["inputs"] = [{"data_source": STATE["wds"], "table": "customers"}] if in_flow else []
    if path == "/api/v1/workflows/{workflow}/nodes/{node}/" and method == "PATCH" and body is not None:
        output = body.get("output_table")
        if isinstance(output, dict) and not output.get("name"):
            # Merged into the node's output table: without one, the name must come from the body.
            status, _, node = STATE["live"].request("GET", case.formatted_path, token=STATE["token"])
            if status == 200 and node.get("output_table") is None:
                STATE["counter"] += 1
                output["name"] = f"out_{STATE['counter']}"
    if path.startswith(("/compat/rivergen/", "/compat/maiascore/", "/compat/databrain/")) and body is not None:
        _repair_compat(case, method, path, body)
    if path == "/api/v1/data-sources/{id}/tenancy/" and method in ("GET", "DELETE") and _is_stateful(case):
        # A chain reads or removes the settings of the source it created: give it some to act on.
        if STATE["live"].request("GET", case.formatted_path, token=STATE["token"])[0] == 404:
            STATE["live"].request("PUT", case.formatted_path, token=STATE["token"], body={"level": "DATABASE"})
    if path == "/api/v1/data-sources/{id}/tenancy/" and method == "PATCH" and not (body or {}).get("level"):
        # A PATCH merges into the current settings: there must be some (a DELETE may have removed them).
        STATE["live"].request("PUT", case.formatted_path, token=STATE["token"], body=REAL_TENANCY)
    if "If-Match" in case.headers:
        formatted = case.formatted_path.removesuffix("tenancy/")
        case.headers["If-Match"] = _etag_of(formatted)


def is_positive(case) -> bool:
    """Every part of the case is valid (stateful steps carry no metadata: they are positive)."""
    meta = case.meta
    if meta is None:
        return True
    return meta.generation.mode.is_positive and all(c.mode.is_positive for c in meta.components.values())

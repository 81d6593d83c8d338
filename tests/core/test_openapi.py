"""The OpenAPI document: valid, complete, per-type unions, errors, offline docs, and true to the API."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import sqlite3
from pathlib import Path

import jsonschema
import pytest
from django.core.management import call_command
from openapi_spec_validator import validate

from core.errors import ERROR_CATALOGUE
from datasources.api.openapi_docs import component_prefix
from datasources.catalogue import CATALOGUE

SCHEMAS = "#/components/schemas/"
ERROR_REF = {"$ref": SCHEMAS + "Error"}
METHODS = ("get", "put", "post", "patch", "delete")
DS = "/api/v1/data-sources/"
DS_ID = "/api/v1/data-sources/{id}/"

_CACHE: dict[str, dict] = {}


@pytest.fixture
def doc(client) -> dict:
    """The schema as served to an anonymous client (generated once per test module)."""
    if "doc" not in _CACHE:
        response = client.get("/api/schema/?format=json")
        assert response.status_code == 200, response.content[:500]
        _CACHE["doc"] = response.json()
    return copy.deepcopy(_CACHE["doc"])


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def params(operation: dict) -> dict[tuple[str, str], dict]:
    return {(p["in"], p["name"]): p for p in operation.get("parameters", [])}


def is_error_schema(doc: dict, schema: dict) -> bool:
    """``Error`` itself, or a schema that extends it with ``allOf``."""
    if schema == ERROR_REF:
        return True
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].removeprefix(SCHEMAS)]
    return ERROR_REF in schema.get("allOf", [])


# --- OpenAPI 3.0 -> JSON Schema, for validating real payloads -------------------------------------


def to_json_schema(node):
    """OpenAPI 3.0 ``nullable`` -> JSON Schema ``null``; everything else is already JSON Schema."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k not in ("nullable", "discriminator")}
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        elif "allOf" in out or "$ref" in out or "oneOf" in out or "anyOf" in out:
            return {"anyOf": [{"type": "null"}, out]}
    return out


def validator_for(doc: dict, component: str) -> jsonschema.Draft202012Validator:
    root = {"components": {"schemas": to_json_schema(doc["components"]["schemas"])},
            "$ref": SCHEMAS + component}
    return jsonschema.Draft202012Validator(root)


def assert_valid(doc: dict, component: str, instance) -> None:
    errors = sorted(validator_for(doc, component).iter_errors(instance), key=lambda e: e.path)
    assert not errors, [f"{list(e.path)}: {e.message[:300]}" for e in errors]


# --- the document ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_schema_endpoint_is_public_and_valid(client, doc):
    validate(doc)
    by_accept = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert by_accept.status_code == 200
    assert by_accept.json()["paths"].keys() == doc["paths"].keys()


@pytest.mark.django_db
def test_spectacular_command_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.read_text().startswith("openapi: 3.0")


@pytest.mark.django_db
def test_every_endpoint_is_described(doc):
    ops = {(path, method): op for path, method, op in operations(doc)}
    expected = {
        (DS, "get"), (DS, "post"), (DS_ID, "get"), (DS_ID, "put"), (DS_ID, "patch"), (DS_ID, "delete"),
        (DS_ID + "history/", "get"), (DS_ID + "test/", "post"), (DS_ID + "sync/", "post"),
        (DS_ID + "schema/", "get"), (DS_ID + "schema/status/", "get"), (DS_ID + "schema/versions/", "get"),
        (DS_ID + "schema/diff/", "get"),
        (DS_ID + "tenancy/", "get"), (DS_ID + "tenancy/", "put"), (DS_ID + "tenancy/", "patch"),
        (DS_ID + "tenancy/", "delete"), ("/api/v1/data-source-types/", "get"),
        ("/api/v1/data-source-types/{id}/", "get"),
    }
    assert expected <= ops.keys()
    ids = [op["operationId"] for op in ops.values()]
    assert len(ids) == len(set(ids))
    for op in ops.values():
        assert op.get("summary"), op["operationId"]
        ok = [code for code in op["responses"] if code.startswith("2")]
        assert ok, op["operationId"]


@pytest.mark.django_db
def test_error_component_lists_every_catalogue_code(doc):
    schemas = doc["components"]["schemas"]
    assert schemas["ErrorCode"]["enum"] == list(ERROR_CATALOGUE)
    error = schemas["Error"]
    assert set(error["required"]) == {"code", "message", "errors", "request_id"}
    assert error["properties"]["code"] == {"$ref": SCHEMAS + "ErrorCode"}
    assert {"stage", "test"} <= error["properties"].keys()


@pytest.mark.django_db
def test_test_result_schema_follows_the_dataclass(doc):
    from datasources.connectors.base import StageResult, TestResult

    schema = doc["components"]["schemas"]["TestResult"]
    rendered = TestResult(ok=True, stage=None, message="", stages=[], duration_ms=0.0).as_dict()  # what responses hold
    assert rendered.keys() <= schema["properties"].keys()
    assert {f.name for f in dataclasses.fields(TestResult)} - rendered.keys() == {"tables"}  # internal only
    stage = schema["properties"]["stages"]["items"]
    assert {f.name for f in dataclasses.fields(StageResult)} <= stage["properties"].keys()


@pytest.mark.django_db
def test_every_operation_documents_its_errors(doc):
    specific = {
        (DS, "post"): {"400", "409", "415"},
        (DS_ID, "put"): {"400", "409", "412", "415"},
        (DS_ID, "patch"): {"400", "409", "412", "415"},
        (DS_ID, "delete"): {"412"},
        (DS_ID + "schema/", "get"): {"400"},
        (DS_ID + "test/", "post"): {"400"},
        (DS_ID + "schema/diff/", "get"): {"400"},
        (DS_ID + "tenancy/", "put"): {"400", "412", "415"},
        (DS_ID + "tenancy/", "patch"): {"400", "412", "415"},
        (DS_ID + "tenancy/", "delete"): {"412"},
    }
    for path, method, op in operations(doc):
        if path.startswith("/compat/"):
            continue  # the seed adapters answer in their seeds' own error shapes, on purpose
        responses = op["responses"]
        wanted = {"401", "403", "429", "500"} | specific.get((path, method), set())
        if "{" in path:
            wanted.add("404")
        assert wanted <= responses.keys(), (path, method, wanted - responses.keys())
        for code, response in responses.items():
            assert response["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/X-Request-ID"}
            if int(code) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert is_error_schema(doc, schema), (path, method, code, schema)
                assert response["description"]
    assert "CREDENTIAL_TEST_FAILED" in doc["paths"][DS]["post"]["responses"]["400"]["description"]
    assert "Retry-After" in doc["paths"][DS]["get"]["responses"]["429"]["headers"]


@pytest.mark.django_db
def test_headers(doc):
    paths = doc["paths"]
    for path, method, code in [(DS_ID, "get", "200"), (DS, "post", "201"), (DS_ID, "put", "200"),
                               (DS_ID, "patch", "200"), (DS_ID + "sync/", "post", "200"),
                               (DS_ID + "tenancy/", "get", "200"), (DS_ID + "tenancy/", "put", "200")]:
        assert "ETag" in paths[path][method]["responses"][code]["headers"], (path, method)
    assert "Location" in paths[DS]["post"]["responses"]["201"]["headers"]
    for path in (DS_ID, DS_ID + "tenancy/"):
        for method in ("put", "patch", "delete"):
            if_match = params(paths[path][method])[("header", "If-Match")]
            assert if_match["schema"]["type"] == "string"
    assert ("header", "If-Match") not in params(paths[DS_ID]["get"])


@pytest.mark.django_db
def test_query_parameters(doc):
    paths = doc["paths"]
    listing = params(paths[DS]["get"])
    for name in ("type", "status", "workspace", "tag", "search", "ordering", "page", "page_size"):
        assert ("query", name) in listing, name
    assert set(listing[("query", "type")]["schema"]["enum"]) == set(CATALOGUE)
    for path, method in [(DS, "post"), (DS_ID, "put"), (DS_ID, "patch")]:
        p = params(paths[path][method])
        assert p[("query", "dry_run")]["schema"] == {"type": "boolean", "default": False}
        assert p[("query", "test_connection")]["schema"] == {"type": "boolean", "default": True}
    assert params(paths[DS_ID + "schema/"]["get"])[("query", "version")]["schema"]["type"] == "integer"
    assert {("query", "from"), ("query", "to")} <= params(paths[DS_ID + "schema/diff/"]["get"]).keys()
    history = params(paths[DS_ID + "history/"]["get"])
    assert {("query", "page"), ("query", "page_size")} <= history.keys()
    assert ("query", "search") not in history and ("query", "type") not in history
    assert params(paths[DS_ID]["get"])[("path", "id")]["schema"]["type"] == "integer"


# --- per-type unions -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("union,suffix", [("DataSource", "DataSource"), ("DataSourceRequest", "DataSourceRequest"),
                                          ("DataSourceReplaceRequest", "DataSourceReplaceRequest")])
def test_discriminated_unions_cover_the_catalogue(doc, union, suffix):
    schemas = doc["components"]["schemas"]
    schema = schemas[union]
    mapping = schema["discriminator"]["mapping"]
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(mapping) == set(CATALOGUE)
    assert [r["$ref"] for r in schema["oneOf"]] == list(mapping.values())
    for key, target in mapping.items():
        name = target.removeprefix(SCHEMAS)
        assert name == f"{component_prefix(key)}{suffix}" and re.fullmatch(r"[A-Za-z0-9]+", name)
        member = schemas[name]
        assert member["properties"]["type"]["enum"] == [key]
        assert "type" in member["required"]
        assert member["properties"]["connection"] == {"$ref": f"{SCHEMAS}{component_prefix(key)}Connection"}
        if suffix.endswith("Request"):
            assert member["properties"]["credentials"] == {"$ref": f"{SCHEMAS}{component_prefix(key)}Credentials"}
            assert {"name", "tags", "connection_pool_size", "metadata"} <= member["properties"].keys()
        else:
            assert {"id", "reference_id", "credentials_set", "version", "last_test"} <= member["properties"].keys()
            assert "credentials" not in member["properties"]


@pytest.mark.django_db
def test_per_type_components_exist(doc):
    schemas = doc["components"]["schemas"]
    for key in CATALOGUE:
        p = component_prefix(key)
        for name in (f"{p}Connection", f"Patched{p}Connection", f"{p}Credentials", f"{p}DataSourceRequest",
                     f"{p}DataSource"):
            assert name in schemas, name
        assert schemas[f"{p}Connection"]["additionalProperties"] is False
        assert "required" not in schemas[f"Patched{p}Connection"]


@pytest.mark.django_db
def test_request_bodies(doc):
    paths = doc["paths"]
    for path, method, union in [(DS, "post", "DataSourceRequest"), (DS_ID, "put", "DataSourceReplaceRequest")]:
        content = paths[path][method]["requestBody"]["content"]
        assert content["application/json"]["schema"] == {"$ref": SCHEMAS + union}
    patch = paths[DS_ID]["patch"]["requestBody"]["content"]
    for media_type in ("application/json", "application/merge-patch+json"):
        assert patch[media_type]["schema"] == {"$ref": SCHEMAS + "PatchedDataSourceRequest"}
    schemas = doc["components"]["schemas"]
    members = [r["$ref"].removeprefix(SCHEMAS) for r in schemas["PatchedDataSourceRequest"]["oneOf"]]
    assert members == [f"Patched{component_prefix(k)}DataSourceRequest" for k in CATALOGUE] + [
        "PatchedUntypedDataSourceRequest"]
    for key in CATALOGUE:  # `type` required, one value each: the members exclude each other
        member = schemas[f"Patched{component_prefix(key)}DataSourceRequest"]
        assert member["required"] == ["type"] and member["properties"]["type"]["enum"] == [key]
        assert member["properties"]["connection"] == {"$ref": f"{SCHEMAS}Patched{component_prefix(key)}Connection"}
        assert member["properties"]["credentials"] == {"$ref": f"{SCHEMAS}{component_prefix(key)}Credentials"}
    untyped = schemas["PatchedUntypedDataSourceRequest"]
    assert "type" not in untyped["properties"] and untyped["additionalProperties"] is False
    any_of = {r["$ref"] for r in untyped["properties"]["connection"]["not"]["not"]["anyOf"]}
    assert any_of == {f"{SCHEMAS}Patched{component_prefix(k)}Connection" for k in CATALOGUE}
    for path in (DS_ID + "test/", DS_ID + "sync/"):
        assert "requestBody" not in paths[path]["post"]


@pytest.mark.django_db
def test_request_examples_validate(doc, sqlite_file):
    body = {"name": "x", "type": "sqlite", "connection": {"path": sqlite_file}}
    assert_valid(doc, "DataSourceRequest", body)
    with pytest.raises(AssertionError):
        assert_valid(doc, "DataSourceRequest", {**body, "connection": {"path": "a.db", "host": "h"}})
    with pytest.raises(AssertionError):
        assert_valid(doc, "DataSourceRequest", {"name": "x", "type": "postgresql", "connection": {"host": "h"}})
    assert_valid(doc, "PatchedDataSourceRequest", {"connection": {"read_only": None}, "tags": ["a"]})
    assert_valid(doc, "PatchedDataSourceRequest", {"credentials": {"password": None}})
    with pytest.raises(AssertionError):
        assert_valid(doc, "PatchedDataSourceRequest", {"connection": {"no_such_field": 1}})
    assert_valid(doc, "PatchedDataSourceRequest", {"type": "mysql", "connection": {"port": 3307}})
    with pytest.raises(AssertionError):  # another type's field
        assert_valid(doc, "PatchedDataSourceRequest", {"type": "mysql", "connection": {"path": "a.db"}})
    with pytest.raises(AssertionError):
        assert_valid(doc, "PatchedDataSourceRequest", {"type": "nope", "name": "x"})


def resolve(schemas: dict, pointer: str):
    """A ``$ref`` into ``#/components/schemas/``: a component, or (shared rules) a JSON pointer inside one."""
    node = schemas
    for part in pointer.removeprefix(SCHEMAS).split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _schema_nodes(schema, schemas: dict, seen: set[str]):
    """Every schema object reachable from ``schema`` (through ``$ref`` too), property names excepted."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(SCHEMAS)
        if name not in seen:
            seen.add(name)
            yield from _schema_nodes(resolve(schemas, schema["$ref"]), schemas, seen)
        return
    yield schema
    for prop in schema.get("properties", {}).values():
        yield from _schema_nodes(prop, schemas, seen)
    for key in ("allOf", "anyOf", "oneOf"):
        for member in schema.get(key, ()):
            yield from _schema_nodes(member, schemas, seen)
    for key in ("items", "not", "additionalProperties"):
        yield from _schema_nodes(schema.get(key), schemas, seen)


@pytest.mark.django_db
def test_patch_bodies_have_no_defaults(doc):
    """A PATCH changes what it sends: a default in its shape becomes a value a generated client sends."""
    schemas = doc["components"]["schemas"]
    checked = set()
    for path, method, op in operations(doc):
        if method != "patch" or "requestBody" not in op:
            continue
        for media in op["requestBody"]["content"].values():
            for node in _schema_nodes(media["schema"], schemas, checked):
                assert "default" not in node, (path, node)
    assert {"PatchedPostgresqlConnection", "PatchedSqliteConnection", "PatchedUntypedDataSourceRequest"} <= checked
    # ...while the create and PUT shapes keep theirs (an omitted field does take its default there).
    assert schemas["PostgresqlConnection"]["properties"]["port"]["default"] == 5432


# --- real payloads against the document ----------------------------------------------------------


@pytest.mark.django_db
def test_real_responses_validate(api, doc, sqlite_file, _file_root):
    created = api.post(DS, {"name": "x", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert created.status_code == 201, created.json()
    assert_valid(doc, "DataSource", created.json())
    assert_valid(doc, "SqliteDataSource", created.json())
    with pytest.raises(AssertionError):
        assert_valid(doc, "PostgresqlDataSource", created.json())
    pk = created.json()["id"]
    assert_valid(doc, "PaginatedDataSourceList", api.get(DS).json())
    assert_valid(doc, "SchemaSnapshot", api.get(f"{DS}{pk}/schema/").json())
    assert_valid(doc, "SchemaCacheStatus", api.get(f"{DS}{pk}/schema/status/").json())
    assert_valid(doc, "TestResult", api.post(f"{DS}{pk}/test/").json())
    assert_valid(doc, "PaginatedAuditEventList", api.get(f"{DS}{pk}/history/").json())
    with sqlite3.connect(os.path.join(_file_root, sqlite_file)) as db:
        db.execute("ALTER TABLE items ADD COLUMN sku TEXT")
    assert_valid(doc, "DataSource", api.post(f"{DS}{pk}/sync/").json())
    versions = api.get(f"{DS}{pk}/schema/versions/").json()
    assert len(versions) == 2
    for version in versions:
        assert_valid(doc, "SchemaVersion", version)
    diff = api.get(f"{DS}{pk}/schema/diff/")
    assert diff.status_code == 200 and diff.json()["tables_changed"], diff.json()
    assert_valid(doc, "SchemaDiff", diff.json())
    tenancy = api.put(f"{DS}{pk}/tenancy/", {"level": "DATABASE"}, format="json")
    assert tenancy.status_code == 200, tenancy.json()
    assert_valid(doc, "TenancySettings", tenancy.json())
    assert_valid(doc, "TenancySettings", api.get(f"{DS}{pk}/tenancy/").json())
    assert_valid(doc, "DataSource", api.get(f"{DS}{pk}/").json())
    dry = api.patch(f"{DS}{pk}/?dry_run=true", {"name": "y"}, format="json")
    assert dry.status_code == 200
    assert_valid(doc, "DataSourceDryRun", dry.json())
    assert_valid(doc, "DataSource", dry.json()["data_source"])
    for entry in api.get("/api/v1/data-source-types/").json():
        assert_valid(doc, "DataSourceType", entry)


@pytest.mark.django_db
def test_error_bodies_validate(api, client, doc, sqlite_file):
    bodies = [
        client.get(DS),  # 401
        api.get(f"{DS}999999/"),  # 404
        api.post(DS, {"name": "", "type": "sqlite", "bogus": 1}, format="json"),  # 400
        api.post(DS, {"name": "x", "type": "sqlite", "connection": {"path": "missing.db"}}, format="json"),
        api.post(DS, "x", content_type="text/plain"),  # 415
    ]
    body = {"name": "dup", "type": "sqlite", "connection": {"path": sqlite_file}}
    pk = api.post(DS, body, format="json").json()["id"]
    bodies += [
        api.post(DS, {**body, "name": "DUP"}, format="json"),
        api.patch(f"{DS}{pk}/", {"name": "z"}, format="json", HTTP_IF_MATCH='"0-0"'),
    ]
    assert [r.status_code for r in bodies] == [401, 404, 400, 400, 415, 409, 412]
    for response in bodies:
        assert_valid(doc, "Error", response.json())
        assert response.json()["request_id"] == response["X-Request-ID"]
    failed = bodies[3].json()
    assert failed["code"] == "CREDENTIAL_TEST_FAILED" and failed["stage"] == failed["test"]["stage"]
    assert failed["test"]["ok"] is False
    with pytest.raises(AssertionError):
        assert_valid(doc, "Error", {"code": "NOPE", "message": "m", "errors": {}, "request_id": "r"})


# --- docs pages ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_are_self_hosted(client, url):
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn.jsdelivr" not in html and "unpkg" not in html
    scripts = re.findall(r"<script[^>]*\bsrc=[\"']([^\"']+)", html)
    assert scripts, "the UI bundle should be served"
    for src in scripts:
        assert src.startswith("/static/drf_spectacular_sidecar/"), src


def test_redoc_page_loads_nothing_from_other_sites(client):
    html = client.get("/api/redoc/").content.decode()
    assert "googleapis" not in html and "gstatic" not in html


# --- examples and determinism --------------------------------------------------------------------


def _examples(node, path=""):
    """(path, schema, example value) for every media-type and schema example in the document."""
    if isinstance(node, dict):
        for name, example in (node.get("examples") or {}).items() if "schema" in node else ():
            yield f"{path}/examples/{name}", node["schema"], example["value"]
        if "example" in node and "schema" in node:
            yield f"{path}/example", node["schema"], node["example"]
        for key, value in node.items():
            yield from _examples(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _examples(value, f"{path}/{i}")


@pytest.mark.django_db
def test_examples_are_fixed_realistic_and_valid(doc):
    """Request bodies have hand-written examples (docs UIs otherwise draw random strings for patterns),
    each valid against its schema; no example is DRF's placeholder."""
    root = {"components": {"schemas": to_json_schema(doc["components"]["schemas"])}}
    found = list(_examples(doc["paths"]))
    for where, schema, value in found:
        validator = jsonschema.Draft202012Validator({**root, **to_json_schema(schema)})
        errors = [e.message[:200] for e in validator.iter_errors(value)]
        assert not errors, (where, errors)
    operations_with_examples = {where.split("/requestBody")[0] for where, _, _ in found}
    for path, method in [(DS, "post"), (DS_ID, "put"), (DS_ID, "patch"), (DS_ID + "tenancy/", "put")]:
        assert f"/{path}/{method}" in operations_with_examples, (path, method)
    for name, schema in doc["components"]["schemas"].items():
        for prop, sub in schema.get("properties", {}).items():
            if "example" in sub:
                jsonschema.Draft202012Validator(to_json_schema(sub)).validate(sub["example"])
                assert "api.example.org" not in str(sub["example"]), (name, prop)
    page = doc["components"]["schemas"]["PaginatedNodeList"]["properties"]
    assert page["next"]["example"] == "https://dsp.example.com/api/v1/workflows/7/nodes/?page=3"
    assert "api.example.org" not in json.dumps(doc), "no page, inline ones included, keeps DRF's placeholder"
    events = doc["paths"]["/api/v1/events/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert events["properties"]["next"]["example"] == "https://dsp.example.com/api/v1/events/?page=3"


def test_document_generation_is_deterministic(tmp_path):
    """Two generations, in processes with different hash seeds, are byte-identical."""
    import subprocess
    import sys

    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"schema-{seed}.json"
        env = {**os.environ, "PYTHONHASHSEED": seed, "DEBUG": "true",
               "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings_test")}
        subprocess.run([sys.executable, "manage.py", "spectacular", "--format", "openapi-json", "--file", str(out)],
                       check=True, env=env, timeout=300, cwd=Path(__file__).resolve().parents[2])
        outputs.append(out.read_bytes())
    assert len(outputs[0]) > 10_000
    assert outputs[0] == outputs[1]

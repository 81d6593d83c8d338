"""Success bodies in the OpenAPI document: every one is described, and real ones validate under strict OpenAPI 3.0.3.

A 2xx response without ``content`` tells a generated client there is nothing to parse (openapi-python-client's
``parsed`` is then None): both restores answered a data source the document did not describe.

Real bodies are checked with ``openapi_schema_validator``'s OpenAPI 3.0 read validator against the document
as served, where ``nullable`` only widens a ``type`` of its own schema object: ``{"allOf": [$ref], "nullable":
true}`` refused ``null`` there (a source without tenancy settings, a node without an output table, a catalogue
field without ``required_when``).
"""

from __future__ import annotations

import pytest
from openapi_schema_validator import OAS30ReadValidator, OAS30Validator, oas30_format_checker

from tests.support.openapi_doc import operations, served_doc
from tests.support.workflows import add_node, add_source, create_source, create_workflow

DS = "/api/v1/data-sources/"
WF = "/api/v1/workflows/"
#: (path, method, status) of the success responses that have no body on purpose (none besides 204 today).
NO_BODY: set[tuple[str, str, str]] = set()


@pytest.fixture
def doc(client, db) -> dict:
    return served_doc(client)




def body_schema(doc: dict, path: str, method: str, status: int | str) -> dict:
    return doc["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]


def strict_errors(doc: dict, schema: dict, instance, validator=OAS30ReadValidator) -> list[str]:
    root = {"allOf": [schema], "components": doc["components"]}
    found = validator(root, format_checker=oas30_format_checker).iter_errors(instance)
    return [f"{list(e.absolute_path)}: {e.message[:300]}" for e in found]


def assert_body(doc: dict, path: str, method: str, response) -> None:
    schema = body_schema(doc, path, method, response.status_code)
    errors = strict_errors(doc, schema, response.json())
    assert not errors, (method, path, response.status_code, errors)


# --- every success response says what it answers --------------------------------------------------


@pytest.mark.django_db
def test_every_success_response_with_a_body_describes_it(doc):
    missing = []
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            if status.startswith("2") and status != "204" and (path, method, status) not in NO_BODY:
                if not response.get("content", {}).get("application/json", {}).get("schema"):
                    missing.append((method.upper(), path, status))
    assert not missing, missing


@pytest.mark.django_db
def test_both_restores_answer_the_data_source_the_document_describes(api, doc, sqlite_file):
    created = api.post(DS, {"name": "shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert api.patch(f"{DS}{pk}/", {"description": "second"}, format="json").status_code == 200
    restore = "/api/v1/data-sources/{id}/revisions/{number}/restore/"

    dry = api.post(f"{DS}{pk}/revisions/1/restore/?dry_run=true")
    assert dry.status_code == 200 and dry.json()["dry_run"] is True, dry.json()
    assert_body(doc, restore, "post", dry)
    restored = api.post(f"{DS}{pk}/revisions/1/restore/")
    assert restored.status_code == 200 and restored.json()["description"] == "", restored.json()
    assert_body(doc, restore, "post", restored)
    assert "ETag" in doc["paths"][restore]["post"]["responses"]["200"]["headers"]

    assert api.delete(f"{DS}{pk}/").status_code == 204
    undeleted = api.post(f"/api/v1/data-source-trash/{pk}/restore/")
    assert undeleted.status_code == 201 and undeleted.json()["id"] == pk, undeleted.json()
    assert_body(doc, "/api/v1/data-source-trash/{id}/restore/", "post", undeleted)
    headers = doc["paths"]["/api/v1/data-source-trash/{id}/restore/"]["post"]["responses"]["201"]["headers"]
    assert {"ETag", "Location"} <= headers.keys()
    assert undeleted["Location"] == f"/api/v1/data-sources/{pk}/"


# --- nullable objects under strict OpenAPI 3.0.3 ---------------------------------------------------


def _schema_nodes(node, where=""):
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            if key not in ("example", "examples", "enum", "default"):
                yield from _schema_nodes(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schema_nodes(value, f"{where}/{i}")


@pytest.mark.django_db
def test_every_nullable_schema_accepts_null(doc):
    """``nullable: true`` says ``null`` is a valid value: the strict validator must agree, wherever it is said."""
    refused = []
    for where, node in _schema_nodes({"paths": doc["paths"], "components": doc["components"]["schemas"]}):
        if node.get("nullable") is True:
            if strict_errors(doc, node, None, validator=OAS30Validator):
                refused.append(where)
    assert not refused, refused[:20]
    assert doc["components"]["schemas"]["NullEnum"] == {"enum": [None]}


@pytest.mark.django_db
def test_real_reads_validate_strictly(api, doc, sqlite_file):
    """Data sources (no tenancy settings, an actor, a test), nodes (with and without an output table) and the
    type catalogue (fields with and without ``required_when``), listed and read, as the server answers them."""
    source = create_source(api, "Shop", "shop2.db", "CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL);")
    untested = api.post(f"{DS}?test_connection=false",
                        {"name": "Later", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert untested.status_code == 201, untested.json()
    assert source["tenancy_settings"] is None and untested.json()["last_test"] is None
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop")
    with_output = add_node(api, workflow, "Clean", [(wds, "orders")],
                           output={"name": "clean_orders", "columns": [{"name": "id", "type": "integer"}]})
    without_output = add_node(api, workflow, "Peek", [(wds, "orders")])
    assert without_output["output_table"] is None and with_output["output_table"]

    reads = [
        (DS, DS), ("/api/v1/data-sources/{id}/", f"{DS}{source['id']}/"),
        ("/api/v1/data-sources/{id}/", f"{DS}{untested.json()['id']}/"),
        ("/api/v1/workflows/{workflow}/nodes/", f"{WF}{workflow['id']}/nodes/"),
        ("/api/v1/workflows/{workflow}/nodes/{node}/", f"{WF}{workflow['id']}/nodes/{with_output['id']}/"),
        ("/api/v1/workflows/{workflow}/nodes/{node}/", f"{WF}{workflow['id']}/nodes/{without_output['id']}/"),
        ("/api/v1/data-source-types/", "/api/v1/data-source-types/"),
        ("/api/v1/data-source-types/{id}/", "/api/v1/data-source-types/postgresql/"),
    ]
    for path, url in reads:
        response = api.get(url)
        assert response.status_code == 200, (url, response.json())
        assert_body(doc, path, "get", response)
    fields = [f for t in api.get("/api/v1/data-source-types/").json() for f in t["connection_fields"]]
    assert {f["required_when"] is None for f in fields} == {True, False}


@pytest.mark.django_db
def test_the_old_nullable_form_is_what_the_strict_validator_refused(doc):
    """The form the document no longer uses, refused for ``null``; the one it uses, accepted (and neither
    accepts a value of another shape)."""
    old = {"allOf": [{"$ref": "#/components/schemas/TenancySettings"}], "nullable": True}
    new = {"oneOf": [{"$ref": "#/components/schemas/TenancySettings"}, {"$ref": "#/components/schemas/NullEnum"}],
           "nullable": True}
    assert strict_errors(doc, old, None) and not strict_errors(doc, new, None)
    assert strict_errors(doc, new, 5) and strict_errors(doc, new, {"level": "NOPE"})

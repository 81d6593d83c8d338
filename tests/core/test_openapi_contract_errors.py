"""Error responses in the OpenAPI document: every one the server gives is listed, with every code it answers.

- 415: every write (POST, PUT, PATCH, the body-less actions too) reads its body through DRF's parsers, so a
  body of another Content-Type is 415 ``UNSUPPORTED_MEDIA_TYPE``. Only the data-source and tenancy writes and
  the health settings said so; the fuzzer never sends ``text/plain``, so nothing noticed.
- 400 codes: the data-source writes answer ``TENANCY_SETTINGS_INVALID`` and (updates) ``CREDENTIALS_REQUIRED``
  besides the three their description listed; so do plans, which go through the same update.
"""

from __future__ import annotations

import re

import pytest

from eventlog.models import Event
from tests.core.test_openapi_contract_bodies import strict_errors
from tests.support.openapi_doc import operations, served_doc
from webhooks.models import Delivery, Webhook

WRITES = ("post", "put", "patch")
DS = "/api/v1/data-sources/"
ERROR_REF = {"$ref": "#/components/schemas/Error"}


@pytest.fixture
def doc(client, db) -> dict:
    return served_doc(client)


def native_operations(doc: dict):
    return operations(doc, "/api/")


def codes(response: dict) -> set[str]:
    """The codes a response's description lists (``Codes: `A`, `B`.``)."""
    found = re.search(r"Codes: (.*)\.$", response["description"])
    return set(re.findall(r"`([A-Z_]+)`", found.group(1))) if found else set()


def assert_listed(doc: dict, path: str, method: str, response) -> None:
    """The server's answer is a status the operation lists, with a code that status lists, in its shape."""
    listed = doc["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in listed, (method, path, status)
    assert response.json()["code"] in codes(listed[status]), (method, path, response.json(), listed[status])
    schema = listed[status]["content"]["application/json"]["schema"]
    assert not strict_errors(doc, schema, response.json()), (method, path, response.json())


# --- 415 -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_write_lists_415_in_the_error_shape(doc):
    missing = [(m.upper(), p) for p, m, op in native_operations(doc) if m in WRITES and "415" not in op["responses"]]
    assert not missing, missing
    for path, method, op in native_operations(doc):
        if "415" in op["responses"]:
            assert op["responses"]["415"]["content"]["application/json"]["schema"] == ERROR_REF, (method, path)
            assert codes(op["responses"]["415"]) == {"UNSUPPORTED_MEDIA_TYPE"}
    for path, item in doc["paths"].items():  # the seed adapters list it in their own shapes
        for method in WRITES:
            if method in item:
                assert "415" in item[method]["responses"], (method, path)


def _world(api, sqlite_file) -> dict[str, object]:
    """A real object behind every path parameter, so each write reaches its view."""
    def post(url, body, status=201):
        response = api.post(url, body, format="json")
        assert response.status_code == status, (url, response.json())
        return response.json()

    ds = post(DS, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}})
    assert api.patch(f"{DS}{ds['id']}/", {"description": "x"}, format="json").status_code == 200
    trashed = post(DS, {"name": "Old", "type": "sqlite", "connection": {"path": sqlite_file}})
    assert api.delete(f"{DS}{trashed['id']}/").status_code == 204
    plan = post(f"{DS}{ds['id']}/plans/", {"description": "planned"})
    change_set = post("/api/v1/change-sets/", {"items": [{"data_source": ds["id"], "changes": {"description": "y"}}]})
    webhook = post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["data_source.updated"]})
    delivery = Delivery.objects.create(webhook=Webhook.objects.get(pk=webhook["id"]), event=Event.objects.first(),
                                       status="failed")
    workflow = post("/api/v1/workflows/", {"name": "Flow"})
    wds = post(f"/api/v1/workflows/{workflow['id']}/data-sources/", {"source_data_source": "acme.shop"})
    node = post(f"/api/v1/workflows/{workflow['id']}/nodes/",
                {"name": "n", "inputs": [{"data_source": wds["id"], "table": "items"}]})
    by_path = {"/api/v1/data-source-trash/": trashed["id"], "/api/v1/change-sets/": change_set["id"],
               "/api/v1/webhooks/": webhook["id"]}
    return {"id": ds["id"], "number": 1, "plan_id": plan["id"], "delivery_id": delivery.pk,
            "workflow": workflow["id"], "data_source": wds["id"], "node": node["id"], "by_path": by_path}


@pytest.mark.django_db
def test_every_write_that_lists_415_answers_it_for_text_plain(api, doc, sqlite_file, allow_loopback):
    """Each write, on real objects, given a text/plain body: 415 in the shape and with the code it lists.
    DELETEs read no body (they answer as without one), and list no 415."""
    world = _world(api, sqlite_file)
    answered = []
    for path, method, op in native_operations(doc):
        if method == "delete" or method not in WRITES:
            continue
        values = dict(world)
        for prefix, pk in world["by_path"].items():  # type: ignore[union-attr]
            if path.startswith(prefix):
                values["id"] = pk
        url = re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)
        response = getattr(api, method)(url, "name=x", content_type="text/plain")
        assert response.status_code == 415, (method, path, response.status_code, response.content[:300])
        assert_listed(doc, path, method, response)
        answered.append((method, path))
    assert len(answered) >= 25  # 27 today
    assert all("415" not in op["responses"] for _, m, op in native_operations(doc) if m == "delete")


# --- 400 codes of the data-source writes ---------------------------------------------------------------


BAD_TENANCY = {"level": "TABLE", "client_column_type": "NUMBER", "schema": "main", "table": "nope",
               "client_column": "id", "primary_key_column": "id"}


@pytest.mark.django_db
def test_data_source_writes_list_every_code_they_answer(api, doc, org, make_client, sqlite_file):
    sqlite = {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}
    created = api.post(DS, sqlite, format="json")
    assert created.status_code == 201, created.json()
    pk, item = created.json()["id"], DS + "{id}/"
    pg = {"name": "Warehouse", "type": "postgresql",
          "connection": {"host": "db.example.com", "database": "d", "username": "u"},
          "credentials": {"password": "a-stored-secret"}}
    pg_pk = api.post(f"{DS}?test_connection=false", pg, format="json").json()["id"]
    writer = make_client(org, ["datasource.read", "datasource.write"])  # not an admin: must resend secrets
    moved = {**pg, "connection": {**pg["connection"], "port": 5999}}
    del moved["credentials"]

    answers = [
        (DS, "post", api.post(DS, {**sqlite, "name": "T", "tenancy_settings": {"level": "TABLE"}}, format="json"),
         "TENANCY_SETTINGS_INVALID"),
        (DS, "post", api.post(DS, {**sqlite, "name": "B", "bogus": 1}, format="json"), "INVALID_REQUEST_BODY"),
        (DS, "post", api.post(DS, {**sqlite, "name": "M", "connection": {"path": "missing.db"}}, format="json"),
         "CREDENTIAL_TEST_FAILED"),
        (item, "patch", api.patch(f"{DS}{pk}/", {"tenancy_settings": BAD_TENANCY}, format="json"),
         "TENANCY_SETTINGS_INVALID"),
        (item, "put", api.put(f"{DS}{pk}/", {**sqlite, "tenancy_settings": BAD_TENANCY}, format="json"),
         "TENANCY_SETTINGS_INVALID"),
        (item, "patch", writer.patch(f"{DS}{pg_pk}/?test_connection=false", {"connection": {"port": 5999}},
                                     format="json"), "CREDENTIALS_REQUIRED"),
        (item, "put", writer.put(f"{DS}{pg_pk}/?test_connection=false", moved, format="json"),
         "CREDENTIALS_REQUIRED"),
        (DS + "{id}/plans/", "post", api.post(f"{DS}{pk}/plans/", {"tenancy_settings": BAD_TENANCY}, format="json"),
         "TENANCY_SETTINGS_INVALID"),
        (DS + "{id}/plans/", "post", writer.post(f"{DS}{pg_pk}/plans/", {"connection": {"port": 5999}},
                                                 format="json"), "CREDENTIALS_REQUIRED"),
        (DS + "{id}/test/", "post", api.post(f"{DS}{pk}/test/", {"x": 1}, format="json"), "INVALID_REQUEST_BODY"),
        (DS + "{id}/sync/", "post", api.post(f"{DS}{pk}/sync/", {"x": 1}, format="json"), "INVALID_REQUEST_BODY"),
    ]
    for path, method, response, code in answers:
        assert response.status_code == 400 and response.json()["code"] == code, (method, path, response.json())
        assert_listed(doc, path, method, response)


@pytest.mark.django_db
def test_updates_list_the_codes_of_the_update_they_go_through(doc):
    """PUT, PATCH, a restore and the plans (a dry-run PATCH, applied as one) answer what the update answers;
    a create cannot move stored secrets, so it never answers CREDENTIALS_REQUIRED."""
    create = {"INVALID_REQUEST_BODY", "TENANCY_SETTINGS_INVALID", "CREDENTIAL_TEST_FAILED", "CONNECTOR_UNAVAILABLE"}
    update = create | {"CREDENTIALS_REQUIRED"}
    paths = doc["paths"]
    assert codes(paths[DS]["post"]["responses"]["400"]) == create
    for path, method in [(DS + "{id}/", "put"), (DS + "{id}/", "patch"),
                         (DS + "{id}/revisions/{number}/restore/", "post"),
                         (DS + "{id}/revisions/{number}/plan/", "post"), (DS + "{id}/plans/", "post"),
                         (DS + "{id}/plans/{plan_id}/apply/", "post")]:
        assert codes(paths[path][method]["responses"]["400"]) == update, (method, path)

"""What the contract says and the server does agree (the rules the schemathesis run relies on).

- a path segment that cannot name an object (malformed reference, non-ASCII digits) is a 404, like
  an unknown one; a malformed reference in a *body* stays a 400;
- list parameters: an empty, malformed or unknown value is a 400, documented on every list;
- request bodies: the schema refuses what the server refuses (blank strings, "exactly one of",
  secrets a type requires on create but not on PUT, "required when" rules, maiascore's fields).
"""

from __future__ import annotations

import pytest

from tests.core.test_openapi import assert_valid, doc, params  # noqa: F401 - `doc` is a fixture

WF = "/api/v1/workflows/"
DS = "/api/v1/data-sources/"


@pytest.fixture
def flow(api, sqlite_file) -> dict:
    shop = api.post(DS, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert shop.status_code == 201, shop.content
    wf = api.post(WF, {"name": "Flow"}, format="json").json()
    wds = api.post(f"{WF}{wf['id']}/data-sources/", {"source_data_source": "acme.shop"}, format="json")
    assert wds.status_code == 201, wds.content
    return wf


@pytest.mark.parametrize("suffix,param", [
    ("no_org_part/", "workflow"), ("²/", "workflow"), ("acme.flow:v1/", "workflow"), ("acme.flow:a:b/", "workflow"),
    ("{wf}/data-sources/acme.shop:bad!/", "data_source"), ("{wf}/data-sources/³/", "data_source"),
    ("{wf}/nodes/a:b:c/", "node"), ("{wf}/tables/a:b:c/", "table"),
])
def test_a_path_segment_that_names_nothing_is_404(api, flow, suffix, param):
    url = WF + suffix.format(wf=flow["id"])
    for method in ("get", "delete"):
        response = getattr(api, method)(url)
        assert response.status_code == 404, (method, url, response.content)
        body = response.json()
        assert body["code"] == "NOT_FOUND" and list(body["errors"]) == [param], body


def test_non_ascii_digits_are_a_name_not_an_id(api, flow):
    assert api.get(f"{WF}{flow['id']}/nodes/²/").status_code == 404  # no node is named '²'; not a server error


def test_malformed_references_in_bodies_stay_400(api, flow):
    response = api.post(f"{WF}{flow['id']}/data-sources/", {"source_data_source": "no_org_part"}, format="json")
    assert response.status_code == 400 and "source_data_source" in response.json()["errors"]


def test_redivis_path_references_follow_the_same_rule(api, flow):
    response = api.patch("/compat/redivis/api/v1/workflows/no_org_part/dataSources/acme.shop",
                         {"sourceDataset": "acme.shop"}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == 404


@pytest.mark.parametrize("url,query", [
    (DS, "type="), (DS, "status="), (DS, "workspace="), (DS, "tag="), (DS, "type=nope"),
    (DS, "ordering=name,,id"), (DS, "ordering=-"), (DS, "ordering=%20name"), (DS, "page=%C2%B2"),
    (DS, "page_size=%C2%B2"), (WF, "ordering="), (WF, "ordering=nope"), (WF, "page=0"), (WF, "page_size=201"),
    (WF + "{wf}/nodes/", "ordering="), (WF + "{wf}/data-sources/", "page=-1"), (WF + "{wf}/tables/", "page_size="),
])
def test_list_parameters_that_cannot_apply_are_400(api, flow, url, query):
    response = api.get(f"{url.format(wf=flow['id'])}?{query}")
    assert response.status_code == 400, (url, query, response.content)
    body = response.json()
    assert body["code"] == "INVALID_REQUEST_BODY" and len(body["errors"]) == 1, body


@pytest.mark.parametrize("url,query", [(DS, "search="), (DS, "ordering=-name,id"), (DS, "type=sqlite&tag=x"),
                                       (WF, "search=&ordering=name"), (WF, "page=1&page_size=200")])
def test_well_formed_list_parameters_are_accepted(api, flow, url, query):
    assert api.get(f"{url}?{query}").status_code == 200


@pytest.mark.django_db
def test_lists_document_their_parameters_and_400(doc):  # noqa: F811
    for path in (DS, WF, WF + "{workflow}/nodes/", WF + "{workflow}/data-sources/", WF + "{workflow}/tables/",
                 DS + "{id}/history/"):
        operation = doc["paths"][path]["get"]
        assert "400" in operation["responses"], path
        p = params(operation)
        assert p[("query", "page")]["schema"] == {"type": "integer", "minimum": 1}, path
        assert p[("query", "page_size")]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200}, path
    for path in (DS, WF, WF + "{workflow}/nodes/"):
        ordering = params(doc["paths"][path]["get"])[("query", "ordering")]
        assert ordering["schema"]["minItems"] == 1 and "-id" in ordering["schema"]["items"]["enum"], path
        assert (ordering["style"], ordering["explode"]) == ("form", False)
    for path in (WF + "{workflow}/data-sources/", WF + "{workflow}/tables/"):  # paged by id, nothing else
        assert {name for _, name in params(doc["paths"][path]["get"])} == {"workflow", "page", "page_size"}
    assert params(doc["paths"][DS]["get"])[("query", "tag")]["schema"]["minLength"] == 1


def test_an_output_table_needs_a_name_on_create(api, flow):
    body = {"name": "N", "inputs": [], "output_table": {"columns": [{"name": "id"}]}}
    response = api.post(f"{WF}{flow['id']}/nodes/", body, format="json")
    assert response.status_code == 400 and "output_table.name" in response.json()["errors"]


@pytest.mark.django_db
@pytest.mark.parametrize("component,body,valid", [
    ("SourceWriteRequest", {}, False),
    ("SourceWriteRequest", {"source_data_source": "acme.a", "source_workflow": "acme.b"}, False),
    ("SourceWriteRequest", {"source_data_source": None, "source_workflow": None}, False),
    ("SourceWriteRequest", {"source_data_source": "acme.a", "source_workflow": None}, True),
    ("PatchedRepointRequest", {"mapped_tables": {}}, False),
    ("PatchedRepointRequest", {"source_workflow": "acme.b"}, True),
    ("PatchedRedivisDataSourcePatchRequest", {"sourceDataset": "acme.a", "sourceWorkflow": "acme.b"}, False),
    ("NodeWriteRequest", {"name": "\t"}, False),
    ("NodeWriteRequest", {"name": "n", "output_table": {}}, False),
    ("PatchedNodeWriteRequest", {"output_table": {}}, True),  # merged into the current output table
    ("WorkflowWriteRequest", {"name": "\x1c\x85 "}, False),  # blank as Python (and DRF) strip it
    ("WorkflowWriteRequest", {"name": "\ufeff"}, True),  # not whitespace to Python
])
def test_request_schemas_refuse_what_the_server_refuses(doc, component, body, valid):  # noqa: F811
    _check(doc, component, body, valid)


MIXPANEL = {"name": "m", "type": "mixpanel", "connection": {"project_id": 1, "username": "u"}}
MYSQL = {"name": "m", "type": "mysql", "connection": {"host": "h", "username": "u"}}
TUNNEL = {"enabled": True, "host": "bastion", "username": "t"}
ES = {"name": "e", "type": "elasticsearch", "connection": {"server_type": "elastic-cloud", "cloud_id": "c"}}


@pytest.mark.django_db
@pytest.mark.parametrize("component,body,valid", [
    ("DataSourceRequest", MIXPANEL, False),  # its secret is required on create...
    ("DataSourceReplaceRequest", MIXPANEL, True),  # ...and kept when a PUT omits it, but not cleared
    ("DataSourceReplaceRequest", {**MIXPANEL, "credentials": {"service_account_secret": None}}, False),
    ("DataSourceRequest", {**MIXPANEL, "credentials": {"service_account_secret": " "}}, False),
    ("DataSourceRequest", {**MIXPANEL, "credentials": {"service_account_secret": "s"}}, True),
    ("DataSourceRequest", {**MYSQL, "name": "\f"}, False),
    ("DataSourceRequest", {**MYSQL, "connection": {"host": "\f", "username": "u"}}, False),
    ("DataSourceRequest", MYSQL, True),
    ("DataSourceRequest", {**MYSQL, "connection": {**MYSQL["connection"], "ssh_tunnel": {"enabled": True}}}, False),
    ("DataSourceRequest", {**MYSQL, "connection": {**MYSQL["connection"], "ssh_tunnel": TUNNEL}}, False),
    ("DataSourceRequest", {**MYSQL, "connection": {**MYSQL["connection"], "ssh_tunnel": TUNNEL},
                           "credentials": {"ssh_password": "p"}}, True),
    ("DataSourceReplaceRequest", {**MYSQL, "connection": {**MYSQL["connection"], "ssh_tunnel": TUNNEL}}, True),
    ("DataSourceRequest", {"name": "p", "type": "mssql", "connection": {"host": "h", "username": "u"}}, False),
    ("DataSourceRequest", {**ES, "connection": {**ES["connection"], "disable_auth": True}}, False),
    ("DataSourceRequest", {**ES, "connection": {"server_type": "elastic-cloud", "username": "u"},
                           "credentials": {"password": "p"}}, False),  # no cloud id
    ("DataSourceRequest", {**ES, "connection": {**ES["connection"], "username": "u"},
                           "credentials": {"password": "p"}}, True),
    ("DataSourceRequest", {"name": "p", "type": "postgresql", "connection_string": "postgresql://u@h/d"}, True),
    # a merge patch: only what it says itself (turning the tunnel on while blanking its host) is refused
    ("PatchedDataSourceRequest", {"connection": {"ssh_tunnel": {"enabled": True, "host": " "}}}, False),
    ("PatchedDataSourceRequest", {"connection": {"ssh_tunnel": {"enabled": True}}}, True),
    ("PatchedRivergenDataSourceUpdateRequest", {"tags": ["a", "a"]}, False),
])
def test_data_source_schemas_state_the_catalogue_rules(doc, component, body, valid):  # noqa: F811
    _check(doc, component, body, valid)


@pytest.mark.django_db
@pytest.mark.parametrize("body,valid", [
    ({}, False),
    ({"host": "h", "username": "u"}, False),  # database: required unless the driver is MySQL-family
    ({"host": "h", "username": "u", "database": "d"}, True),
    ({"driver": "mysql", "host": "h", "username": "u"}, True),
    ({"host": "h", "username": "u", "database": "d", "port": "70000"}, False),
    ({"host": "h", "username": "u", "database": "d", "port": "²"}, False),
    ({"host": "h", "username": "u", "database": "d", "sshTunneling": True}, False),
    ({"host": "h", "username": "u", "database": "d", "ssh": True, "sshTunneling": False}, False),
])
def test_maiascore_schema_states_what_the_replaced_connection_needs(doc, body, valid):  # noqa: F811
    _check(doc, "MaiascoreDatasourceUpdateRequest", body, valid)


def test_maiascore_port_is_ascii_digits(api, flow):
    ds = api.get(DS).json()["results"][0]
    response = api.put(f"/compat/maiascore/datasources/{ds['id']}", {"host": "h", "port": "²"}, format="json")
    assert response.status_code == 400  # not a server error: '²'.isdigit() is true, int('²') fails


def _check(document: dict, component: str, body: dict, valid: bool) -> None:
    if valid:
        assert_valid(document, component, body)
    else:
        with pytest.raises(AssertionError):
            assert_valid(document, component, body)


def test_put_keeps_omitted_secrets_but_cannot_clear_a_required_one(api):
    body = {**MIXPANEL, "credentials": {"service_account_secret": "s"}}
    created = api.post(f"{DS}?test_connection=false", body, format="json")
    assert created.status_code == 201, created.content
    url = f"{DS}{created.json()['id']}/?test_connection=false"
    assert api.put(url, MIXPANEL, format="json").status_code == 200  # omitted: kept
    cleared = api.put(url, {**MIXPANEL, "credentials": {"service_account_secret": None}}, format="json")
    assert cleared.status_code == 400 and "credentials.service_account_secret" in cleared.json()["errors"]


def test_databrain_enum_fields_refuse_objects_with_a_400_not_a_500(api):
    body = {"name": "Pg", "type": "postgresql", "connection": {"host": "h", "database": "d", "username": "u"},
            "credentials": {"password": "p"}}
    assert api.post(f"{DS}?test_connection=false", body, format="json").status_code == 201
    credentials = {"name": "Pg", "host": "h", "port": 5432, "username": "u", "password": "p", "database": "d",
                   "schema": "public", "sshTunnel": {}}  # an object where "enable" or "disable" goes
    response = api.put("/compat/databrain/api/v2/datasource", {"datasourceType": "postgres",
                                                               "credentials": credentials}, format="json")
    assert response.status_code == 400, response.content
    assert "credentials.sshTunnel" in response.json()["error"]["errors"]

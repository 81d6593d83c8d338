"""Selectors: every read is scoped to the caller's organization (another organization's id is a
404 or simply absent), lists filter as documented, and the hot reads keep their statement counts."""

from __future__ import annotations

import pytest

from core.errors import NotFound
from datasources import selectors as ds_selectors
from datasources.api.filters import DataSourceFilter
from datasources.api.representation import data_source_dict
from organizations import selectors as org_selectors
from organizations.actors import Actor
from organizations.models import ApiToken, Membership, Role
from tests.support.workflows import add_node, add_source, change_schema, create_source, create_workflow
from workflows import selectors as wf_selectors
from workflows.api.serializers import WorkflowDataSourceSerializer
from workflows.references import parse_table_reference

SCRIPT = "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT);"


@pytest.fixture
def acme(org):
    return Actor.system(org)


@pytest.fixture
def globex(other_org):
    return Actor.system(other_org)


@pytest.fixture
def shop(api):
    return create_source(api, "Shop", "shop.db", SCRIPT)


@pytest.fixture
def theirs(other_api):
    return create_source(other_api, "Theirs", "theirs.db", SCRIPT)


@pytest.fixture
def flow(api, shop):
    wf = create_workflow(api, "Flow")
    wds = add_source(api, wf, source_data_source="acme.shop")
    node = add_node(api, wf, "Clean", [(wds, "items")], output={"name": "clean"})
    return {"workflow": wf, "wds": wds, "node": node}


# --- data sources ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lookup", ["data_source_for_actor", "renderable_data_source_for_actor",
                                    "data_source_with_people_for_actor"])
def test_a_data_source_of_another_organization_is_not_found_like_an_unknown_or_malformed_id(
    acme, globex, shop, theirs, lookup
):
    select = getattr(ds_selectors, lookup)
    assert select(acme, shop["id"]).pk == shop["id"]
    assert select(acme, str(shop["id"])).pk == shop["id"]
    for wrong in (theirs["id"], 999999, "abc", None, "1.5"):
        with pytest.raises(NotFound):
            select(acme, wrong)
    assert select(globex, theirs["id"]).pk == theirs["id"]


def test_the_data_source_list_holds_only_the_callers_organization(acme, globex, shop, theirs):
    assert [ds.pk for ds in ds_selectors.data_sources_for_actor(acme)] == [shop["id"]]
    assert [ds.pk for ds in ds_selectors.data_sources_for_actor(globex)] == [theirs["id"]]


def test_a_data_source_is_found_by_name_case_insensitively_in_its_organization_only(acme, globex, shop, theirs):
    assert ds_selectors.data_source_named(acme, "SHOP").pk == shop["id"]
    assert ds_selectors.data_source_named(acme, "Theirs") is None
    assert ds_selectors.data_source_named(globex, "shop") is None


def test_the_list_filters_as_documented(api, acme, sqlite_file):
    for i, tags in enumerate([["even"], ["odd"], ["even", "x"]]):
        body = {"name": f"src {i}", "type": "sqlite", "connection": {"path": sqlite_file}, "tags": tags}
        assert api.post("/api/v1/data-sources/?test_connection=false", body, format="json").status_code == 201

    def names(**params):
        listed = DataSourceFilter(params, queryset=ds_selectors.data_sources_for_actor(acme))
        assert listed.is_valid(), listed.errors
        return sorted(ds.name for ds in listed.qs)

    assert names(tag="even") == ["src 0", "src 2"]
    assert names(type="sqlite", status="pending") == ["src 0", "src 1", "src 2"]
    assert names(type="postgresql") == []
    assert not DataSourceFilter({"type": ""}, queryset=ds_selectors.data_sources_for_actor(acme)).is_valid()


def test_schema_snapshots_are_the_sources_own_newest_first(api, acme, shop):
    change_schema(api, shop, "shop.db", "CREATE TABLE more (id INTEGER PRIMARY KEY);")
    ds = ds_selectors.data_source_for_actor(acme, shop["id"])
    assert [s.version for s in ds_selectors.schema_snapshots(ds)] == [2, 1]
    assert ds_selectors.schema_snapshot(ds).version == 2
    assert ds_selectors.schema_snapshot(ds, 1).version == 1
    with pytest.raises(NotFound, match="No schema version 3"):
        ds_selectors.schema_snapshot(ds, 3)


def test_the_audit_trail_is_the_objects_own(api, acme, shop, theirs):
    api.patch(f"/api/v1/data-sources/{shop['id']}/", {"description": "x"}, format="json")
    ds = ds_selectors.data_source_for_actor(acme, shop["id"])
    events = list(org_selectors.audit_events_for(ds))
    assert [e.action for e in events] == ["update", "create"]  # newest first
    assert {(e.target_type, e.target_id) for e in events} == {("datasources.datasource", shop["id"])}


def test_a_data_source_to_render_is_one_statement_and_renders_without_another(
    acme, shop, django_assert_num_queries
):
    with django_assert_num_queries(1):
        ds = ds_selectors.renderable_data_source_for_actor(acme, shop["id"])
    with django_assert_num_queries(0):
        data_source_dict(ds)


def test_the_list_is_one_statement_whatever_its_length(api, acme, sqlite_file, django_assert_num_queries):
    for i in range(5):
        body = {"name": f"src {i}", "type": "sqlite", "connection": {"path": sqlite_file},
                "credentials": {}, "tags": ["t"]}
        assert api.post("/api/v1/data-sources/?test_connection=false", body, format="json").status_code == 201
    with django_assert_num_queries(1):
        listed = list(ds_selectors.data_sources_for_actor(acme))
    with django_assert_num_queries(0):
        [data_source_dict(ds) for ds in listed]
    assert len(listed) == 5


# --- workflows -------------------------------------------------------------------------------------


def test_a_workflow_of_another_organization_is_not_found_by_id_or_reference(acme, globex, flow, other_api):
    theirs = create_workflow(other_api, "Flow")
    wf = flow["workflow"]
    for lookup in (wf["id"], str(wf["id"]), "acme.flow", wf["reference"]):
        assert wf_selectors.workflow_for_actor(acme, lookup).pk == wf["id"]
    for wrong in (theirs["id"], "globex.flow", theirs["reference"], 999999):
        with pytest.raises(NotFound):
            wf_selectors.workflow_for_actor(acme, wrong)
    assert [w.pk for w in wf_selectors.workflows_for_actor(acme)] == [wf["id"]]
    assert [w.pk for w in wf_selectors.workflows_for_actor(globex)] == [theirs["id"]]


def test_a_workflow_data_source_is_found_only_in_its_workflow(api, acme, flow):
    other = create_workflow(api, "Other")
    wf = wf_selectors.workflow_for_actor(acme, flow["workflow"]["id"])
    empty = wf_selectors.workflow_for_actor(acme, other["id"])
    wds_id = flow["wds"]["id"]
    assert wf_selectors.workflow_data_source_for_actor(acme, wf, wds_id).pk == wds_id
    assert wf_selectors.workflow_data_source_for_actor(acme, wf, "acme.shop").pk == wds_id
    with pytest.raises(NotFound):
        wf_selectors.workflow_data_source_for_actor(acme, empty, wds_id)
    with pytest.raises(NotFound):
        wf_selectors.workflow_data_source_for_actor(acme, wf, "globex.shop")
    assert [w.pk for w in wf_selectors.workflow_data_sources_of(wf)] == [wds_id]
    assert list(wf_selectors.workflow_data_sources_of(empty)) == []


def test_nodes_and_output_tables_are_the_workflows_own(api, acme, flow):
    other = wf_selectors.workflow_for_actor(acme, create_workflow(api, "Other")["id"])
    wf = wf_selectors.workflow_for_actor(acme, flow["workflow"]["id"])
    node_id = flow["node"]["id"]
    assert [n.pk for n in wf_selectors.nodes_for(wf)] == [node_id]
    assert wf_selectors.node_for(wf, node_id).pk == node_id
    assert wf_selectors.node_for(wf, "clean").pk == node_id  # by name, case-insensitively
    with pytest.raises(NotFound):
        wf_selectors.node_for(other, node_id)
    assert [n.pk for n in wf_selectors.output_tables_of(wf)] == [node_id]
    assert wf_selectors.output_table(wf, parse_table_reference("clean")).pk == node_id
    with pytest.raises(NotFound):
        wf_selectors.output_table(other, parse_table_reference("clean"))


def test_dependants_name_the_workflows_reading_a_source_or_a_workflow(api, acme, shop, flow):
    reader = create_workflow(api, "Reader")
    add_source(api, reader, source_workflow="acme.flow")
    ds = ds_selectors.data_source_for_actor(acme, shop["id"])
    wf = wf_selectors.workflow_for_actor(acme, flow["workflow"]["id"])
    assert wf_selectors.dependants_of_data_source(ds) == [flow["workflow"]["reference"]]
    assert wf_selectors.dependants_of_workflow(wf) == [reader["reference"]]


def test_the_hot_workflow_reads_keep_their_statement_counts(acme, flow, django_assert_num_queries):
    with django_assert_num_queries(1):
        wf = wf_selectors.workflow_for_actor(acme, flow["workflow"]["id"])
    with django_assert_num_queries(1):
        wds = wf_selectors.workflow_data_source_for_actor(acme, wf, flow["wds"]["id"])
    with django_assert_num_queries(0):
        WorkflowDataSourceSerializer(wds).data
    with django_assert_num_queries(2):  # the nodes, then all their inputs with their sources
        nodes = list(wf_selectors.nodes_for(wf))
    with django_assert_num_queries(0):
        [list(n.inputs.all()) for n in nodes]


# --- organizations (the admin's scopes) ------------------------------------------------------------


def test_tokens_and_memberships_are_visible_to_owners_and_admins_of_their_organization_only(
    org, other_org, owner, viewer, outsider, django_user_model, api, other_api
):
    ours = set(ApiToken.objects.filter(organization=org).values_list("pk", flat=True))
    assert ours and set(ApiToken.objects.values_list("pk", flat=True)) > ours
    assert set(org_selectors.tokens_visible_to(owner).values_list("pk", flat=True)) == ours
    assert not org_selectors.tokens_visible_to(viewer).exists()  # a viewer administers nothing
    members = set(org_selectors.memberships_visible_to(owner).values_list("user__username", flat=True))
    assert members == {"owner", "viewer"}
    assert set(org_selectors.memberships_visible_to(outsider).values_list("user__username", flat=True)) == {
        "outsider"}
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    assert org_selectors.tokens_visible_to(root).count() == ApiToken.objects.count()
    assert org_selectors.memberships_visible_to(root).count() == Membership.objects.count()


def test_any_member_sees_their_organizations_workspaces_and_audit_events(org, other_org, viewer, shop, theirs):
    assert list(org_selectors.organizations_visible_to(viewer)) == [org]
    events = org_selectors.audit_events_visible_to(viewer)
    assert events.exists() and set(events.values_list("organization_id", flat=True)) == {org.pk}
    roles = {org.pk: Role.VIEWER}
    assert list(org_selectors.organizations_visible_to(viewer, roles)) == [org]  # known roles: no lookup
    assert list(org_selectors.workspaces_visible_to(viewer, {})) == []

"""Every field rule lives below the serializer: a direct service call (as a management command or a
shell makes it) gets the API's 400s, the defaults have one definition, the model checks the small
invariants, and the admin form refuses the same values with the same messages."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from core.errors import ApiError
from datasources import fields
from datasources.models import DataSource
from datasources.services import plan
from datasources.services.datasources import WriteOptions, create_data_source, update_data_source
from datasources.shapes import DataSourceWriteSerializer
from organizations.actors import Actor
from organizations.models import ALL_SCOPES, Membership, Role
from workflows.api.serializers import WorkflowWriteSerializer
from workflows.services import rules as workflow_rules
from workflows.services.workflows import create_workflow, update_workflow

URL = "/api/v1/data-sources/"

#: (case, body field values) refused by a rule, on create and on PATCH alike.
REFUSED = [
    ("name blank", {"name": "   "}),
    ("name too long", {"name": "n" * 256}),
    ("name not a string", {"name": 7}),
    ("description too long", {"description": "d" * 10_001}),
    ("tags duplicate", {"tags": ["a", "a"]}),
    ("tags duplicate once trimmed", {"tags": ["a", " a "]}),
    ("too many tags", {"tags": [f"t{i}" for i in range(51)]}),
    ("tag too long", {"tags": ["t" * 65]}),
    ("tag blank", {"tags": ["ok", ""]}),
    ("tags not a list", {"tags": "a,b"}),
    ("pool size too small", {"connection_pool_size": 0}),
    ("pool size too big", {"connection_pool_size": 101}),
    ("connection timeout too big", {"connection_timeout": 301}),
    ("query timeout too big", {"query_timeout": 86_401}),
    ("retries negative", {"max_retries": -1}),
    ("refresh interval too short", {"schema_refresh_interval": 59}),
    ("timeout as a string", {"connection_timeout": "30"}),
    ("timeout as a boolean", {"connection_timeout": True}),
    ("auto refresh not a boolean", {"schema_auto_refresh": "yes"}),
    ("metadata too big", {"metadata": {"blob": "m" * 16_400}}),
    ("metadata not an object", {"metadata": ["a"]}),
    ("workspace zero", {"workspace": 0}),
    ("connection_string too long", {"connection_string": "postgresql://h/" + "d" * 4096}),
    ("connection_string null", {"connection_string": None}),
    ("credentials not an object", {"credentials": "secret"}),
    ("credential blank", {"credentials": {"password": ""}}),
    ("connection null", {"connection": None}),
    ("tenancy level unknown", {"tenancy_settings": {"level": "ROW"}}),
    ("tenancy unknown key", {"tenancy_settings": {"level": "DATABASE", "rows": 1}}),
    ("tenancy not an object", {"tenancy_settings": "TABLE"}),
    ("type not in the catalogue", {"type": "oracle9"}),
    ("read-only field", {"status": "active"}),
    ("unknown field", {"colour": "blue"}),
]


@pytest.fixture
def actor(org):
    return Actor(organization=org, is_system=True)


@pytest.fixture
def source(api, sqlite_file):
    response = api.post(URL, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert response.status_code == 201, response.json()
    return DataSource.objects.get(pk=response.json()["id"])


def _service_error(call) -> dict:
    with pytest.raises(ApiError) as caught:
        call()
    exc = caught.value
    return {"status": exc.status_code, "code": exc.code, "message": exc.message, "errors": exc.errors}


def _api_error(response) -> dict:
    body = response.json()
    return {"status": response.status_code, "code": body["code"], "message": body["message"], "errors": body["errors"]}


@pytest.mark.parametrize("case,values", REFUSED, ids=[c for c, _ in REFUSED])
def test_a_direct_create_gets_the_api_400(api, actor, sqlite_file, case, values):
    body = {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}, **values}
    from_api = _api_error(api.post(URL, body, format="json"))
    from_service = _service_error(lambda: create_data_source(actor=actor, data=body))
    assert from_api["status"] == 400 and from_api["code"] == "INVALID_REQUEST_BODY"
    assert from_service == from_api
    assert not DataSource.objects.exists()


@pytest.mark.parametrize("case,values", REFUSED, ids=[c for c, _ in REFUSED])
def test_a_direct_patch_gets_the_api_400(api, actor, source, case, values):
    if case == "type not in the catalogue":
        values = {"type": "oracle9"}
    from_api = _api_error(api.patch(f"{URL}{source.pk}/", values, format="json"))
    from_service = _service_error(
        lambda: update_data_source(actor=actor, data_source_id=source.pk, data=values, mode="patch")
    )
    assert from_api["status"] == 400
    assert from_service == from_api
    assert DataSource.objects.get(pk=source.pk).version == source.version


def test_put_requires_the_name_in_both(api, actor, source):
    body = {"type": "sqlite", "connection": source.connection}
    from_api = _api_error(api.put(f"{URL}{source.pk}/", body, format="json"))
    from_service = _service_error(lambda: update_data_source(actor=actor, data_source_id=source.pk, data=body,
                                                             mode="put"))
    assert from_service == from_api
    assert from_api["errors"] == {"name": ["This field is required."]}


def test_messages_are_the_apis(actor, sqlite_file):
    body = {"name": "n" * 256, "type": "sqlite", "connection": {"path": sqlite_file}, "tags": ["a", "a"],
            "connection_timeout": 0, "metadata": {"x": "m" * 16_400}, "workspace": 0}
    error = _service_error(lambda: create_data_source(actor=actor, data=body))
    assert error["message"] == "The request is invalid."
    assert error["errors"] == {
        "name": ["Ensure this field has no more than 255 characters."],
        "tags": ["Tags must be unique."],
        "connection_timeout": ["Ensure this value is greater than or equal to 1."],
        "metadata": ["Too large: at most 16384 bytes of JSON."],
        "workspace": ["Ensure this value is greater than or equal to 1."],
    }


def test_unknown_workspace_and_unknown_id(api, actor, source, other_org):
    from organizations.models import Workspace

    elsewhere = Workspace.objects.create(organization=other_org, name="theirs")
    body = {"workspace": elsewhere.pk}
    from_api = _api_error(api.patch(f"{URL}{source.pk}/", body, format="json"))
    from_service = _service_error(
        lambda: update_data_source(actor=actor, data_source_id=source.pk, data=body, mode="patch")
    )
    assert from_service == from_api
    assert from_api["errors"] == {"workspace": ["No such workspace in your organization."]}
    # An unknown id with a refused body: 404 first, as the API answers.
    missing = _service_error(lambda: update_data_source(actor=actor, data_source_id=source.pk + 999,
                                                        data={"name": ""}, mode="patch"))
    assert missing["status"] == 404
    assert _api_error(api.patch(f"{URL}{source.pk + 999}/", {"name": ""}, format="json"))["status"] == 404


def test_the_service_keeps_the_apis_cleaning(actor, sqlite_file):
    data = {"name": "  Padded  ", "type": "sqlite", "connection": {"path": sqlite_file}, "tags": [" a ", "b"],
            "description": "  words  "}
    ds = create_data_source(actor=actor, data=data).data_source
    assert (ds.name, ds.tags, ds.description) == ("Padded", ["a", "b"], "words")


def test_defaults_come_from_one_place(actor, source):
    assert plan.OPERATIONAL_DEFAULTS is fields.OPERATIONAL_DEFAULTS and plan.PLAIN_DEFAULTS is fields.PLAIN_DEFAULTS
    for name, default in fields.PLAIN_DEFAULTS.items():
        model_default = DataSource._meta.get_field(name).get_default()
        assert model_default == default, name
    # The serializer is built from the specs: same bounds, required flags and nullability.
    drf = DataSourceWriteSerializer().fields
    assert list(drf) == [spec.name for spec in fields.FIELDS]
    for spec in fields.FIELDS:
        field = drf[spec.name]
        assert field.required == spec.required and field.allow_null == spec.nullable, spec.name
        for bound in ("min_value", "max_value", "max_length", "min_length"):
            if spec.kind in ("integer", "string") and getattr(spec, bound) is not None:
                assert getattr(field, bound) == getattr(spec, bound), (spec.name, bound)
    assert drf["tags"].max_length == fields.TAGS.max_length and drf["tags"].child.max_length == fields.TAG.max_length
    # PUT without the plain fields returns each to the spec's default.
    update_data_source(actor=actor, data_source_id=source.pk, mode="patch",
                       data={"connection_timeout": 9, "tags": ["x"], "metadata": {"a": 1}, "description": "d"})
    update_data_source(actor=actor, data_source_id=source.pk, mode="put",
                       data={"name": "Shop", "type": "sqlite", "connection": source.connection})
    source.refresh_from_db()
    assert {name: getattr(source, name) for name in fields.PLAIN_DEFAULTS} == fields.PLAIN_DEFAULTS


def test_validation_is_idempotent():
    body = {"name": " n ", "tags": [" a "], "description": " d ", "connection_string": " x ",
            "tenancy_settings": {"level": "TABLE", "table": " t "}}
    once = fields.validate(body, partial=True)
    assert fields.validate(once, partial=True) == once
    serializer = DataSourceWriteSerializer(data=body, partial=True)
    assert serializer.is_valid() and dict(serializer.validated_data) == once


def test_the_model_checks_its_small_invariants(source):
    source.full_clean()
    for name, value, message in [
        ("name", "   ", "The name cannot be blank."),
        ("name", "n" * 256, "Ensure this value has at most 255 characters (it has 256)."),
        ("tags", ["a"] * 2, "Tags must be unique."),
        ("tags", [f"t{i}" for i in range(51)], "Ensure this field has no more than 50 elements."),
        ("metadata", {"x": "m" * 16_400}, "Too large: at most 16384 bytes of JSON."),
        ("connection_timeout", 301, "Ensure this value is less than or equal to 300."),
        ("max_retries", 11, "Ensure this value is less than or equal to 10."),
    ]:
        original = getattr(source, name)
        setattr(source, name, value)
        with pytest.raises(ValidationError) as caught:
            source.full_clean()
        assert message in caught.value.message_dict[name], (name, caught.value.message_dict)
        setattr(source, name, original)


# --- the admin ---------------------------------------------------------------------------------------

ADMIN_REFUSED = [
    ("name", "n" * 256, "Ensure this field has no more than 255 characters."),
    ("description", "d" * 10_001, "Ensure this field has no more than 10000 characters."),
    ("connection_pool_size", "101", "Ensure this value is less than or equal to 100."),
    ("connection_timeout", "0", "Ensure this value is greater than or equal to 1."),
    ("query_timeout", "86401", "Ensure this value is less than or equal to 86400."),
    ("max_retries", "11", "Ensure this value is less than or equal to 10."),
    ("schema_refresh_interval", "59", "Ensure this value is greater than or equal to 60."),
    ("tags", ",".join(f"t{i}" for i in range(51)), "Ensure this field has no more than 50 elements."),
    ("tags", "t" * 65, "Ensure this field has no more than 64 characters."),
    ("metadata", '{"x": "' + "m" * 16_400 + '"}', "Too large: at most 16384 bytes of JSON."),
]


@pytest.mark.parametrize("field,value,message", ADMIN_REFUSED, ids=[f"{f}-{m[:20]}" for f, _, m in ADMIN_REFUSED])
def test_the_admin_form_refuses_with_the_same_messages(admin_client, admin_user, org, source, actor, field, value,
                                                       message):
    Membership.objects.create(organization=org, user=admin_user, role=Role.OWNER)
    url = reverse("admin:datasources_datasource_change", args=[source.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name, f in form.fields.items()
            if not f.disabled and form[name].value() is not None and f.__class__.__name__ != "BooleanField"}
    data["metadata"] = "{}"
    data[field] = value
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get(field) == [message]
    # The service says the same for the same value.
    service_value = {"tags": value.split(",") if field == "tags" else None}.get(field) or value
    if field in ("connection_pool_size", "connection_timeout", "query_timeout", "max_retries",
                 "schema_refresh_interval"):
        service_value = int(value)
    if field == "metadata":
        service_value = {"x": "m" * 16_400}
    error = _service_error(lambda: update_data_source(actor=actor, data_source_id=source.pk,
                                                      data={field: service_value}, mode="patch"))
    assert message in [m for messages in error["errors"].values() for m in messages]
    assert DataSource.objects.get(pk=source.pk).version == source.version


def test_the_admin_form_imports_no_api_serializer():
    import datasources.admin.forms as admin_forms

    source = open(admin_forms.__file__).read()
    assert "datasources.api" not in source


# --- workflows -----------------------------------------------------------------------------------------


WORKFLOW_REFUSED = [
    ("blank name", {"name": "   "}),
    ("name too long", {"name": "w" * 256}),
    ("description too long", {"name": "ok", "description": "d" * 10_001}),
    ("unknown field", {"name": "ok", "colour": "blue"}),
    ("read-only field", {"name": "ok", "version": 3}),
]


@pytest.mark.parametrize("case,body", WORKFLOW_REFUSED, ids=[c for c, _ in WORKFLOW_REFUSED])
def test_a_direct_workflow_write_gets_the_api_400(api, actor, case, body):
    from_api = _api_error(api.post("/api/v1/workflows/", body, format="json"))
    from_service = _service_error(lambda: create_workflow(actor=actor, data=body))
    assert from_api["status"] == 400 and from_service == from_api
    created = api.post("/api/v1/workflows/", {"name": "Flow"}, format="json").json()
    from_api = _api_error(api.patch(f"/api/v1/workflows/{created['id']}/", body, format="json"))
    from_service = _service_error(
        lambda: update_workflow(actor=actor, workflow=created["id"], data=body, mode="patch")
    )
    assert from_service == from_api


def test_workflow_serializers_are_built_from_the_rules():
    drf = WorkflowWriteSerializer().fields
    assert drf["name"].max_length == workflow_rules.NAME.max_length
    assert drf["description"].max_length == workflow_rules.DESCRIPTION.max_length
    assert workflow_rules.WORKFLOW_DEFAULTS == {"name": None, "description": ""}


def test_the_admin_actor_sees_the_rules_too(org, admin_user):
    actor = Actor(organization=org, user=admin_user, role=Role.OWNER, scopes=frozenset(ALL_SCOPES))
    with pytest.raises(ApiError) as caught:
        create_data_source(actor=actor, data={"name": "", "type": "sqlite", "connection": {"path": "x"}},
                           options=WriteOptions(test_connection=False))
    assert caught.value.errors == {"name": ["This field may not be blank."]}

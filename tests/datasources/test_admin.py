"""The admin: every page loads, writes go through the services, secrets never show."""

from __future__ import annotations

import re
import socket

import pytest
from django.contrib import admin
from django.urls import reverse

from datasources.models import Credential, DataSource, SchemaSnapshot
from datasources.services.credentials import load_secrets
from datasources.services.datasources import WriteOptions, create_data_source
from organizations.actors import Actor
from organizations.models import ALL_SCOPES, ApiToken, AuditEvent, Membership, Role, hash_token
from organizations.services import create_token
from tests.datasources.test_empty_password import mariadb_no_password, mysql_body  # noqa: F401
from tests.support.admin_forms import form_data

CANARY = "Canary-s3cr3t-7f1e9d"
CANARY2 = "Second-canary-0b44a2"
DS = "admin:datasources_datasource"


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def operator(admin_user, org):
    Membership.objects.create(organization=org, user=admin_user, role=Role.OWNER)
    return admin_user


def actor_for(org, user):
    return Actor(organization=org, user=user, role=Role.OWNER, scopes=frozenset(ALL_SCOPES))


@pytest.fixture
def pg_source(org, operator):
    """A PostgreSQL source with secrets, created without a test (nothing listens there)."""
    data = {
        "name": "Orders DB", "type": "postgresql",
        "connection": {"host": "db.example.com", "database": "orders", "username": "reader"},
        "credentials": {"password": CANARY},
        "tags": ["prod"], "metadata": {"team": "data"},
    }
    return create_data_source(actor=actor_for(org, operator), data=data,
                              options=WriteOptions(test_connection=False)).data_source


@pytest.fixture
def sqlite_source(org, operator, sqlite_file):
    data = {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}
    return create_data_source(actor=actor_for(org, operator), data=data).data_source


def change_url(obj) -> str:
    return reverse(f"{DS}_change", args=[obj.pk])


def credential_rows(ds) -> list[tuple]:
    return list(Credential.objects.filter(data_source=ds).order_by("field").values_list("field", "key_id",
                                                                                         "ciphertext"))


def test_every_changelist_and_page_loads(admin_client, operator, pg_source, sqlite_source, org):
    create_token(organization=org, name="ci", scopes=ALL_SCOPES)
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        response = admin_client.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert response.status_code == 200, model
        obj = model_admin.get_queryset(response.wsgi_request).first()
        if obj is not None:
            response = admin_client.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
            assert response.status_code == 200, model
        if model_admin.has_add_permission(response.wsgi_request):
            assert admin_client.get(reverse("admin:{}_{}_add".format(*info))).status_code == 200, model


def test_type_picker_then_add_sqlite_source(admin_client, operator, org, sqlite_file):
    picker = admin_client.get(reverse(f"{DS}_add"))
    assert picker.status_code == 200
    assert "?type=sqlite" in picker.content.decode()
    url = reverse(f"{DS}_add") + "?type=sqlite"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert 'name="connection__path"' in page.content.decode()
    data = form_data(page)
    data.update(name="Shop", organization=org.pk, connection__path=sqlite_file, tags="sales, eu",
                metadata='{"owner": "bi"}')
    response = admin_client.post(url, data, follow=True)
    assert response.status_code == 200, response.context["adminform"].form.errors
    ds = DataSource.objects.get(name="Shop")
    assert (ds.type, ds.organization, ds.connection["path"]) == ("sqlite", org, sqlite_file)
    assert ds.tags == ["sales", "eu"] and ds.metadata == {"owner": "bi"}
    assert ds.status == "active" and ds.schema_version == 1
    assert SchemaSnapshot.objects.get(data_source=ds).table_count == 2
    event = AuditEvent.objects.get(target_type="datasources.datasource", target_id=ds.pk, action="create")
    assert event.actor_repr == f"user:{operator.get_username()}"
    assert "Connection test passed" in response.content.decode()


def test_add_with_failing_test_saves_nothing(admin_client, operator, org, sqlite_file):
    url = reverse(f"{DS}_add") + "?type=sqlite"
    data = form_data(admin_client.get(url))
    data.update(name="Broken", organization=org.pk, connection__path="missing.db")
    response = admin_client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert errors and "stage" in errors[0]
    assert not DataSource.objects.filter(name="Broken").exists()


def test_edit_description_only(admin_client, pg_source):
    before = credential_rows(pg_source)
    page = admin_client.get(change_url(pg_source))
    html = page.content.decode()
    assert "Password (set)" in html
    data = form_data(page)
    data["description"] = "Nightly orders replica"
    response = admin_client.post(change_url(pg_source), data, follow=True)
    assert response.status_code == 200
    ds = DataSource.objects.get(pk=pg_source.pk)
    assert ds.description == "Nightly orders replica"
    assert ds.version == pg_source.version + 1
    assert ds.connection == pg_source.connection and ds.tags == ["prod"] and ds.metadata == {"team": "data"}
    assert credential_rows(ds) == before and load_secrets(ds) == {"password": CANARY}
    event = AuditEvent.objects.filter(target_id=ds.pk, action="update").get()
    assert set(event.changes) == {"description"}


def test_unchanged_save_writes_nothing(admin_client, pg_source):
    data = form_data(admin_client.get(change_url(pg_source)))
    admin_client.post(change_url(pg_source), data)
    assert DataSource.objects.get(pk=pg_source.pk).version == pg_source.version
    assert not AuditEvent.objects.filter(target_id=pg_source.pk, action="update").exists()


def test_bad_port_is_a_form_error_and_changes_nothing(admin_client, pg_source):
    data = form_data(admin_client.get(change_url(pg_source)))
    data.update(connection__port="70000", description="changed", credentials__password=CANARY2,
                credentials__ssl_client_key=f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----")
    response = admin_client.post(change_url(pg_source), data)
    assert response.status_code == 200
    assert "connection__port" in response.context["adminform"].form.errors
    assert CANARY2 not in response.content.decode() and CANARY not in response.content.decode()
    ds = DataSource.objects.get(pk=pg_source.pk)
    assert (ds.version, ds.description, ds.connection) == (pg_source.version, "", pg_source.connection)
    assert load_secrets(ds) == {"password": CANARY}


def test_service_errors_land_on_their_fields(admin_client, pg_source):
    data = form_data(admin_client.get(change_url(pg_source)))
    data["connection__ssh_tunnel__enabled"] = "on"
    response = admin_client.post(change_url(pg_source), data)
    errors = response.context["adminform"].form.errors
    assert "connection__ssh_tunnel__host" in errors and "connection__ssh_tunnel__username" in errors
    data.update(connection__ssh_tunnel__host="bastion.example.com", connection__ssh_tunnel__username="u")
    response = admin_client.post(change_url(pg_source), data)
    assert "credentials__ssh_password" in response.context["adminform"].form.errors
    assert DataSource.objects.get(pk=pg_source.pk).version == pg_source.version


def test_failed_connection_test_changes_nothing(admin_client, pg_source, allow_loopback):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    data = form_data(admin_client.get(change_url(pg_source)))
    data.update(connection__host="127.0.0.1", connection__port=str(closed_port), credentials__password=CANARY2)
    response = admin_client.post(change_url(pg_source), data)
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.non_field_errors())
    assert "Connection test failed at stage" in errors and "Nothing was changed" in errors
    ds = DataSource.objects.get(pk=pg_source.pk)
    assert ds.version == pg_source.version and ds.connection == pg_source.connection
    assert load_secrets(ds) == {"password": CANARY}
    assert CANARY2 not in response.content.decode()


def test_skip_test_and_clear_secret(admin_client, pg_source):
    data = form_data(admin_client.get(change_url(pg_source)))
    data.update(connection__host="db2.example.com", credentials__password__clear="on", skip_test="on")
    response = admin_client.post(change_url(pg_source), data, follow=True)
    assert response.status_code == 200
    ds = DataSource.objects.get(pk=pg_source.pk)
    assert ds.connection["host"] == "db2.example.com" and ds.status == "pending"
    assert load_secrets(ds) == {}
    event = AuditEvent.objects.get(target_id=ds.pk, action="update")
    assert event.changes["credentials.password"] == "cleared"


def test_stale_form_is_refused(admin_client, pg_source, org, operator):
    data = form_data(admin_client.get(change_url(pg_source)))
    from datasources.services.datasources import update_data_source

    update_data_source(actor=actor_for(org, operator), data_source_id=pg_source.pk,
                       data={"description": "theirs"}, mode="patch")
    data["description"] = "mine"
    response = admin_client.post(change_url(pg_source), data)
    assert "changed by someone else" in " ".join(response.context["adminform"].form.non_field_errors())
    assert DataSource.objects.get(pk=pg_source.pk).description == "theirs"


def test_actions_and_delete(admin_client, sqlite_source):
    changelist = reverse(f"{DS}_changelist")
    for action, expected in (("test_connection", "connection OK"), ("refresh_schema_action", "schema version 1")):
        response = admin_client.post(changelist, {"action": action, "_selected_action": [sqlite_source.pk]},
                                     follow=True)
        assert expected in response.content.decode()
    page = admin_client.get(change_url(sqlite_source)).content.decode()
    snapshots = re.search(r'href="([^"]+)">snapshots</a>', page).group(1).replace("&amp;", "&")
    response = admin_client.get(snapshots)
    assert response.status_code == 200 and response.context["cl"].result_count == 1
    snapshot = SchemaSnapshot.objects.get(data_source=sqlite_source)
    page = admin_client.get(reverse("admin:datasources_schemasnapshot_change", args=[snapshot.pk])).content.decode()
    table = snapshot.tables.order_by("name").first()
    assert table is not None and table.name in page  # the read-only inline lists the tables, with their columns
    assert table.columns[0]["name"] in page and 'name="tables-0-name"' not in page  # shown, not editable
    admin_client.post(reverse(f"{DS}_delete", args=[sqlite_source.pk]), {"post": "yes"})
    assert not DataSource.objects.filter(pk=sqlite_source.pk).exists()
    assert AuditEvent.objects.filter(target_id=sqlite_source.pk, action="delete").exists()


def test_bulk_delete_goes_through_the_service(admin_client, sqlite_source, pg_source):
    ids = [sqlite_source.pk, pg_source.pk]
    admin_client.post(reverse(f"{DS}_changelist"), {"action": "delete_selected", "_selected_action": ids,
                                                     "post": "yes"})
    assert not DataSource.objects.filter(pk__in=ids).exists()
    assert AuditEvent.objects.filter(target_id__in=ids, action="delete").count() == 2


def test_history_lists_audit_events(admin_client, pg_source):
    page = admin_client.get(change_url(pg_source)).content.decode()
    assert 'id="audit-history"' in page and "create" in page
    response = admin_client.get(reverse(f"{DS}_history", args=[pg_source.pk]), follow=True)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_secret_canary_never_rendered(admin_client, pg_source, org):
    data = form_data(admin_client.get(change_url(pg_source)))
    data.update(description="v2")
    admin_client.post(change_url(pg_source), data)
    create_token(organization=org, name="ops", scopes=ALL_SCOPES)
    ciphertexts = [c for _f, _k, c in credential_rows(pg_source)]
    credential = Credential.objects.get(data_source=pg_source)
    event = AuditEvent.objects.filter(target_id=pg_source.pk).first()
    urls = [
        reverse(f"{DS}_changelist"), change_url(pg_source), reverse(f"{DS}_history", args=[pg_source.pk]),
        reverse("admin:organizations_auditevent_changelist"),
        reverse("admin:organizations_auditevent_change", args=[event.pk]),
        reverse("admin:datasources_credential_changelist"),
        reverse("admin:datasources_credential_change", args=[credential.pk]),
        reverse("admin:organizations_apitoken_changelist"),
        reverse("admin:organizations_apitoken_add"),
        reverse("admin:organizations_apitoken_change", args=[ApiToken.objects.get().pk]),
        reverse(f"{DS}_delete", args=[pg_source.pk]),
    ]
    for url in urls:
        response = admin_client.get(url, follow=True)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert CANARY not in html, url
        assert not any(c in html for c in ciphertexts), url


def test_token_add_shows_raw_token_once(admin_client, operator, org):
    add = reverse("admin:organizations_apitoken_add")
    page = admin_client.get(add).content.decode()
    assert 'type="checkbox"' in page and "token_hash" not in page
    response = admin_client.post(add, {"name": "deploy", "organization": org.pk, "user": operator.pk,
                                       "scopes": ["datasource.read", "datasource.write"]})
    assert response.status_code == 200
    raw = re.search(r"dsp_[A-Za-z0-9_\-]+", response.content.decode()).group(0)
    token = ApiToken.objects.get(name="deploy")
    assert token.token_hash == hash_token(raw) and token.user == operator
    assert token.scopes == ["datasource.read", "datasource.write"]
    for url in (reverse("admin:organizations_apitoken_change", args=[token.pk]),
                reverse("admin:organizations_apitoken_changelist")):
        html = admin_client.get(url).content.decode()
        assert raw not in html and token.token_hash not in html
        assert token.prefix in html


def test_token_add_refuses_non_member(admin_client, org, other_org, outsider):
    add = reverse("admin:organizations_apitoken_add")
    response = admin_client.post(add, {"name": "x", "organization": org.pk, "user": outsider.pk,
                                       "scopes": ["datasource.read"]})
    assert "user" in response.context["adminform"].form.errors
    assert not ApiToken.objects.filter(name="x").exists()


def test_revoke_action(admin_client, org):
    token, _raw = create_token(organization=org, name="old", scopes=["datasource.read"])
    admin_client.post(reverse("admin:organizations_apitoken_changelist"),
                      {"action": "revoke_selected", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None and not token.is_active


def test_audit_events_are_read_only(admin_client, pg_source):
    event = AuditEvent.objects.first()
    assert admin_client.get(reverse("admin:organizations_auditevent_add")).status_code == 403
    assert admin_client.post(reverse("admin:organizations_auditevent_delete", args=[event.pk]),
                             {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_tenancy_settings_checked_against_the_schema(admin_client, sqlite_source):
    data = form_data(admin_client.get(change_url(sqlite_source)))
    tenancy = {"tenancy_settings__level": "TABLE", "tenancy_settings__client_column_type": "NUMBER",
               "tenancy_settings__schema": "main", "tenancy_settings__table": "items",
               "tenancy_settings__client_column": "nope", "tenancy_settings__primary_key_column": "id"}
    response = admin_client.post(change_url(sqlite_source), {**data, **tenancy})
    assert "tenancy_settings__client_column" in response.context["adminform"].form.errors
    tenancy["tenancy_settings__client_column"] = "id"
    response = admin_client.post(change_url(sqlite_source), {**data, **tenancy}, follow=True)
    ds = DataSource.objects.get(pk=sqlite_source.pk)
    assert ds.tenancy.level == "TABLE" and ds.tenancy.client_column == "id"
    data = form_data(admin_client.get(change_url(sqlite_source)))
    assert data["tenancy_settings__table"] == "items"
    data["tenancy_settings__level"] = ""
    admin_client.post(change_url(sqlite_source), data)
    assert not type(ds.tenancy).objects.filter(data_source=ds).exists()


def test_source_read_by_a_workflow_is_protected(admin_client, sqlite_source, api):
    from tests.support.workflows import add_source, create_workflow

    add_source(api, create_workflow(api, "Sales"), source_data_source="acme.shop")
    url = reverse(f"{DS}_delete", args=[sqlite_source.pk])
    assert "still a source of acme.sales" in admin_client.get(url).content.decode().lower()
    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert DataSource.objects.filter(pk=sqlite_source.pk).exists()


def test_refused_delete_is_reported(admin_client, sqlite_source, monkeypatch):
    from core.errors import Conflict

    def refuse(**kwargs):
        raise Conflict("The data source is still a source of: Sales.")

    monkeypatch.setattr("datasources.admin.delete_data_source", refuse)
    response = admin_client.post(reverse(f"{DS}_delete", args=[sqlite_source.pk]), {"post": "yes"}, follow=True)
    html = response.content.decode()
    assert "not deleted" in html and "deleted successfully" not in html
    assert DataSource.objects.filter(pk=sqlite_source.pk).exists()


# --- an empty password (issue 16): a checkbox, distinct from a blank input (kept) -------------------


def test_set_an_empty_password_explicitly(admin_client, pg_source):
    page = admin_client.get(change_url(pg_source))
    html = page.content.decode()
    assert 'name="credentials__password__empty"' in html and "Set an empty password" in html
    assert 'name="credentials__ssh_password__empty"' not in html  # only the password may be empty
    data = form_data(page)
    assert "credentials__password__empty" not in data  # unticked by default: a blank input keeps
    data.update(credentials__password__empty="on", skip_test="on")
    response = admin_client.post(change_url(pg_source), data, follow=True)
    assert response.status_code == 200
    ds = DataSource.objects.get(pk=pg_source.pk)
    assert load_secrets(ds) == {"password": ""}
    event = AuditEvent.objects.get(target_id=ds.pk, action="update")
    assert event.changes == {"credentials.password": "changed"}
    page = admin_client.get(change_url(pg_source)).content.decode()
    assert "Password (set)" in page  # an empty password is a password that is set
    data = form_data(admin_client.get(change_url(pg_source)))
    data["description"] = "kept"
    admin_client.post(change_url(pg_source), data)
    assert load_secrets(DataSource.objects.get(pk=pg_source.pk)) == {"password": ""}


@pytest.mark.parametrize("extra", [{"credentials__password": CANARY2}, {"credentials__password__clear": "on"}])
def test_empty_with_a_value_or_clear_is_a_form_error(admin_client, pg_source, extra):
    data = form_data(admin_client.get(change_url(pg_source)))
    data.update(credentials__password__empty="on", skip_test="on", **extra)
    response = admin_client.post(change_url(pg_source), data)
    assert response.status_code == 200
    assert "credentials__password" in response.context["adminform"].form.errors
    assert CANARY2 not in response.content.decode()
    assert load_secrets(DataSource.objects.get(pk=pg_source.pk)) == {"password": CANARY}


def test_no_empty_checkbox_where_a_password_is_required(admin_client, org, operator):
    data = {"name": "Warehouse", "type": "redshift",
            "connection": {"host": "rs.example.com", "database": "dev", "username": "u"},
            "credentials": {"password": CANARY}}
    ds = create_data_source(actor=actor_for(org, operator), data=data,
                            options=WriteOptions(test_connection=False)).data_source
    html = admin_client.get(change_url(ds)).content.decode()
    assert 'name="credentials__password"' in html and "__empty" not in html


def test_empty_password_is_tested_against_a_mariadb_user_without_one(admin_client, org, operator,
                                                                      mariadb_no_password, allow_loopback):  # noqa: F811
    body = mysql_body(mariadb_no_password, password="wrong-password")
    ds = create_data_source(actor=actor_for(org, operator), data=body,
                            options=WriteOptions(test_connection=False)).data_source
    data = form_data(admin_client.get(change_url(ds)))
    data["connection__ssl__mode"] = "prefer"  # a connection change without a password: tested with the kept one
    response = admin_client.post(change_url(ds), data)
    assert "stage 'auth'" in " ".join(response.context["adminform"].form.non_field_errors())
    data["credentials__password__empty"] = "on"
    response = admin_client.post(change_url(ds), data, follow=True)
    assert response.status_code == 200
    ds = DataSource.objects.get(pk=ds.pk)
    assert load_secrets(ds) == {"password": ""} and ds.last_test["ok"] and ds.connection["ssl"]["mode"] == "prefer"

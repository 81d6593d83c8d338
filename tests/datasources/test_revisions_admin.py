"""Revisions and the trash in the admin (issue 19): the same services and rules as the API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from datasources.models import DataSource, DataSourceRevision, TrashedDataSource
from datasources.services.credentials import load_secrets, write_secrets
from organizations.models import AuditEvent, Membership

DS = "/api/v1/data-sources/"
CANARY = "admin-Canary-55aa"


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def source(api, sqlite_file):
    ds = api.post(DS, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file},
                       "metadata": {"owner": CANARY}}, format="json").json()
    api.patch(f"{DS}{ds['id']}/", {"description": "second"}, format="json")
    return DataSource.objects.get(pk=ds["id"])


@pytest.fixture
def operator(client, django_user_model, org):
    def make(role: str, perms=("view_datasource", "change_datasource", "view_trasheddatasource",
                               "change_trasheddatasource")):
        user = django_user_model.objects.create_user(f"op-{role}", password="pw", is_staff=True)
        for codename in perms:
            user.user_permissions.add(Permission.objects.get(codename=codename))
        Membership.objects.create(organization=org, user=user, role=role)
        client.force_login(user)
        return user

    return make


@pytest.mark.django_db
def test_the_change_page_lists_revisions_and_a_restore_applies_one(client, operator, source):
    operator("editor")
    page = client.get(reverse("admin:datasources_datasource_change", args=[source.pk])).content.decode()
    assert 'id="revisions"' in page and "Restore…" in page
    url = reverse("admin:datasources_datasource_restore_revision", args=[source.pk, 1])
    shown = client.get(url)
    assert shown.status_code == 200
    html = shown.content.decode()
    assert "description" in html and "second" in html
    preview = client.post(url, {"_preview": "1"})
    body = preview.content.decode()
    assert preview.status_code == 200 and 'id="restore-impact"' in body
    assert DataSource.objects.get(pk=source.pk).description == "second"  # a preview saves nothing
    done = client.post(url, {"_restore": "1"})
    assert done.status_code == 302
    after = DataSource.objects.get(pk=source.pk)
    assert after.description == "" and after.metadata == {"owner": CANARY}
    assert DataSourceRevision.objects.filter(data_source_id=source.pk).first().action == "restore"
    assert AuditEvent.objects.filter(action="restore", target_id=source.pk).exists()


@pytest.mark.django_db
def test_a_viewer_cannot_restore(client, operator, source):
    operator("viewer")
    url = reverse("admin:datasources_datasource_restore_revision", args=[source.pk, 1])
    assert client.post(url, {"_restore": "1"}).status_code == 403
    assert DataSource.objects.get(pk=source.pk).description == "second"


@pytest.mark.django_db
def test_the_trash_restores_for_writers_and_purges_for_admins_only(client, operator, api, source):
    write_secrets(source, {"password": CANARY})
    api.delete(f"{DS}{source.pk}/")
    trashed = TrashedDataSource.objects.get()
    operator("editor")
    changelist = reverse("admin:datasources_trasheddatasource_changelist")
    page = client.get(changelist).content.decode()
    assert "Shop" in page and CANARY not in page
    purge = client.post(changelist, {"action": "purge_selected", "_selected_action": [trashed.pk]})
    assert purge.status_code in (200, 302, 403) and TrashedDataSource.objects.filter(pk=trashed.pk).exists()
    restored = client.post(changelist, {"action": "restore_selected", "_selected_action": [trashed.pk]})
    assert restored.status_code == 302
    assert DataSource.objects.filter(pk=source.pk, status="pending").exists()
    assert load_secrets(DataSource.objects.get(pk=source.pk)) == {"password": CANARY}
    assert not TrashedDataSource.objects.exists()


@pytest.mark.django_db
def test_an_owner_purges_from_the_admin(client, operator, api, source):
    api.delete(f"{DS}{source.pk}/")
    trashed = TrashedDataSource.objects.get()
    operator("owner")
    changelist = reverse("admin:datasources_trasheddatasource_changelist")
    done = client.post(changelist, {"action": "purge_selected", "_selected_action": [trashed.pk]})
    assert done.status_code == 302
    assert not TrashedDataSource.objects.exists()
    assert not DataSourceRevision.objects.filter(data_source_id=source.pk).exists()

"""Accounts (Django's users and groups) are managed by superusers only. A staff member holding every
Django permission, an owner of their organization, could tick ``is_superuser`` on their own account
in the stock user admin (or build a group with every permission) and then see every organization."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from organizations.models import Membership, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, org, django_user_model):
    user = django_user_model.objects.create_user(username="staffed", password="pw-staffed", is_staff=True)
    user.user_permissions.set(Permission.objects.all())
    Membership.objects.create(organization=org, user=user, role=Role.OWNER)
    client.force_login(user)
    return user


@pytest.mark.parametrize("name", ["admin:auth_user_changelist", "admin:auth_user_add", "admin:auth_group_changelist",
                                  "admin:auth_group_add"])
def test_a_staff_member_with_every_permission_cannot_open_the_account_pages(client, staff, name):
    assert client.get(reverse(name)).status_code == 403


def test_a_staff_member_cannot_make_their_account_superuser(client, staff):
    url = reverse("admin:auth_user_change", args=[staff.pk])
    assert client.get(url).status_code == 403
    response = client.post(url, {"username": "staffed", "is_active": "on", "is_staff": "on", "is_superuser": "on",
                                 "date_joined_0": "2026-12-06", "date_joined_1": "08:40:00"})
    assert response.status_code == 403
    staff.refresh_from_db()
    assert not staff.is_superuser
    every = list(Permission.objects.values_list("pk", flat=True))
    group_add = client.post(reverse("admin:auth_group_add"), {"name": "all", "permissions": every})
    assert group_add.status_code == 403 and not Group.objects.exists()
    index = client.get(reverse("admin:index")).content.decode()
    assert "/admin/auth/user/" not in index and "/admin/auth/group/" not in index


def test_a_superuser_manages_accounts(admin_client, staff):
    assert admin_client.get(reverse("admin:auth_user_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:auth_user_change", args=[staff.pk])).status_code == 200
    assert admin_client.get(reverse("admin:auth_group_changelist")).status_code == 200

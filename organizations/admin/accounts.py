"""Django's user and group admins, for superusers only.

An account's ``is_superuser``, ``is_staff``, permissions and groups decide what the rest of the admin
lets it do, across every organization; organizations and roles are what scope it below that. So only
a superuser (who already sees every organization) manages accounts: a staff member holding Django's
``auth`` permissions could otherwise tick ``is_superuser`` on their own account (or put it in a group
with every permission) and leave their organizations' scope. Members and their roles are managed on
the organization's page; a superuser creates the accounts."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.http import HttpRequest


class SuperusersOnly:
    """Every permission of the page: the signed-in user is a superuser (whatever model permissions
    a staff account holds)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)


class AccountAdmin(SuperusersOnly, UserAdmin):
    pass


class AccountGroupAdmin(SuperusersOnly, GroupAdmin):
    pass


for model, model_admin in ((User, AccountAdmin), (Group, AccountGroupAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)

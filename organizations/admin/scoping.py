"""The organization scoping every admin class shares: who sees and may change what."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from organizations import selectors
from organizations.models import (
    ALL_SCOPES,
    WRITE_ROLES,
    Organization,
    Workspace,
)

SCOPE_CHOICES = [(s, s) for s in ALL_SCOPES]
ORGANIZATION_FILTER = ("organization", admin.RelatedOnlyFieldListFilter)  # lists only the visible ones

SHOWN_ONCE_PAGE = """{% extends "admin/base_site.html" %}
{% block breadcrumbs %}<div class="breadcrumbs"><a href="{% url 'admin:index' %}">Home</a>
&rsaquo; <a href="{% url 'admin:organizations_apitoken_changelist' %}">API tokens</a>
&rsaquo; {{ token.name }}</div>{% endblock %}
{% block content %}<div id="content-main">
<p>The token <strong>{{ token.name }}</strong> of <strong>{{ token.organization }}</strong> was created
with scopes {{ scopes }}.</p>
<p><strong>Copy it now: it is shown only once and cannot be recovered.</strong></p>
<p><code id="raw-token" style="font-size:1.2em;user-select:all">{{ raw_token }}</code></p>
<p>Use it as <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<p><a class="button" href="{% url 'admin:organizations_apitoken_change' token.pk %}">Open the token</a>
<a class="button" href="{% url 'admin:organizations_apitoken_changelist' %}">Back to tokens</a></p>
</div>{% endblock %}
"""


def audit_url(obj: Any) -> str:
    """The audit events of one object, in the audit-event admin."""
    base = reverse("admin:organizations_auditevent_changelist")
    return f"{base}?target_type={obj._meta.label_lower}&target_id={obj.pk}"


def organization_roles_of(request: Any) -> dict[int, str]:
    """The requesting user's ``{organization id: role}``, read once per request."""
    roles = getattr(request, "_organization_roles", None)
    if roles is None:
        roles = selectors.organization_roles(request.user)
        request._organization_roles = roles
    return roles


def organizations_with_role(request: Any, roles: Collection[str] | None) -> set[int]:
    """Ids of the organizations where the user's role is in ``roles`` (None: any role)."""
    return selectors.organizations_with_role(organization_roles_of(request), roles)


# --- organization scoping for non-superusers ------------------------------------------------------


class OrganizationScopedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose objects belong to an organization (``organization_field``, a lookup path).

    Superusers see and may change everything (within Django's model permissions, which they all
    have). Anyone else sees the objects of organizations where their role is in ``view_roles``
    (None: any membership); changing, adding, deleting and the acting actions need the model
    permission *and* a role in ``write_roles`` in the object's organization. Another
    organization's object is not in the queryset, so its pages answer as for a missing object.
    """

    organization_field = "organization"
    view_roles: frozenset[str] | None = None
    write_roles: frozenset[str] = frozenset(WRITE_ROLES)

    def viewable_organizations(self, request: Any) -> set[int]:
        return organizations_with_role(request, self.view_roles)

    def writable_organizations(self, request: Any) -> set[int]:
        return organizations_with_role(request, self.write_roles)

    def organization_id_of(self, obj: Any) -> int | None:
        if self.organization_field == "pk":
            return obj.pk
        *path, last = self.organization_field.split("__")
        for part in path:
            obj = getattr(obj, part)
        return getattr(obj, f"{last}_id")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return selectors.visible_to(request.user, queryset, self.viewable_organizations(request),
                                    self.organization_field)

    def _may_write(self, request: Any, obj: Any) -> bool:
        if request.user.is_superuser:
            return True
        writable = self.writable_organizations(request)
        return bool(writable) if obj is None else self.organization_id_of(obj) in writable

    def has_view_permission(self, request, obj=None):
        if not super().has_view_permission(request, obj):
            return False
        if obj is None or request.user.is_superuser:
            return True
        return self.organization_id_of(obj) in self.viewable_organizations(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_write(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_write(request, obj)

    def has_add_permission(self, request, *args: Any) -> bool:
        return super().has_add_permission(request, *args) and self._may_write(request, None)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """A non-superuser picks only organizations (and their workspaces) where they may write;
        the form refuses any other id (it is not in the field's queryset)."""
        if not request.user.is_superuser:
            writable = self.writable_organizations(request)
            if db_field.related_model is Organization:
                kwargs["queryset"] = selectors.organizations_among(writable)
            elif db_field.related_model is Workspace:
                kwargs["queryset"] = selectors.workspaces_of(writable)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def changelist_view(self, request, extra_context=None):
        """A POSTed action this user is not offered (e.g. forged by a view-only user) is a 403,
        rather than Django's silent "No action selected"."""
        if request.method == "POST":
            offered = self.get_actions(request)
            if any(name and name not in offered for name in request.POST.getlist("action")):
                raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def check_action_allowed(self, request: Any, queryset: Any) -> None:
        """For actions that change or test something: the change permission and a writing role in
        every selected object's organization, or 403 and nothing happens."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.user.is_superuser:
            return
        selected = set(queryset.values_list(self.organization_field, flat=True))
        if not selected <= self.writable_organizations(request):
            raise PermissionDenied


class ReadOnlyTabularInline(admin.TabularInline):
    """Rows shown on their parent's page that the admin never adds, changes or deletes (a log, a
    snapshot's tables): ``fields`` are all read-only."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        return self.fields or ()

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

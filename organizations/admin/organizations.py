"""Organizations, their members and workspaces."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpResponseRedirect

from organizations.actors import Actor
from organizations.admin.scoping import ORGANIZATION_FILTER, OrganizationScopedAdmin, audit_url, organizations_with_role
from organizations.models import (
    ADMIN_ROLES,
    Membership,
    Organization,
    Workspace,
)
from organizations.services import (
    remove_membership,
    set_membership,
)


class _AdminRoleInline(admin.TabularInline):
    """An inline of the organization page: changing it needs the owner or admin role there."""

    extra = 0

    def _may_write(self, request: Any, obj: Any) -> bool:
        if request.user.is_superuser or obj is None:
            return request.user.is_superuser
        return obj.pk in organizations_with_role(request, ADMIN_ROLES)

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and self._may_write(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_write(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_write(request, obj)


class MembershipInline(_AdminRoleInline):
    model = Membership
    raw_id_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


class WorkspaceInline(_AdminRoleInline):
    model = Workspace
    fields = ["name", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    """Members see their organizations; owners and admins change them; only superusers create or
    delete organizations."""

    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at"]
    inlines = [MembershipInline, WorkspaceInline]
    organization_field = "pk"
    write_roles = frozenset(ADMIN_ROLES)

    def has_add_permission(self, request, *args: Any) -> bool:
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def save_formset(self, request, form, formset, change):
        """Membership rows go through the services (role checks and audit events)."""
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        organization = form.instance
        actor = Actor.for_member(organization, request.user)
        formset.save(commit=False)
        for membership in formset.deleted_objects:
            remove_membership(actor=actor, membership=membership)
        for membership, fields in formset.changed_objects:
            if "user" in fields:  # another user on the same row: a removal and an addition
                remove_membership(actor=actor, membership=Membership.objects.get(pk=membership.pk))
                formset.new_objects.append(membership)
            else:
                set_membership(actor=actor, organization=organization, user=membership.user, role=membership.role)
        for membership in formset.new_objects:
            set_membership(actor=actor, organization=organization, user=membership.user, role=membership.role)
        return None


@admin.register(Membership)
class MembershipAdmin(OrganizationScopedAdmin):
    """Members of the organizations where the operator is an owner or admin; every addition, role
    change and removal goes through the services and is recorded in the audit trail."""

    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", ORGANIZATION_FILTER]
    search_fields = ["user__username", "user__email", "organization__slug", "organization__name"]
    raw_id_fields = ["user"]
    list_select_related = ["user", "organization"]
    view_roles = frozenset(ADMIN_ROLES)
    write_roles = frozenset(ADMIN_ROLES)

    def get_fields(self, request, obj=None):
        return ["organization", "user", "role", "created_at"] if obj is not None else ["organization", "user", "role"]

    def get_readonly_fields(self, request, obj=None):
        return ["organization", "user", "created_at"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        organization = obj.organization
        membership, _created = set_membership(
            actor=Actor.for_member(organization, request.user), organization=organization, user=obj.user,
            role=obj.role,
        )
        obj.pk, obj.created_at = membership.pk, membership.created_at
        obj._state.adding = False

    def delete_model(self, request, obj):
        remove_membership(actor=Actor.for_member(obj.organization, request.user), membership=obj)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("organization", "user"):
            self.delete_model(request, membership)

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_or_change_permission(request, obj):
            return super().history_view(request, object_id, extra_context)
        return HttpResponseRedirect(audit_url(obj))


@admin.register(Workspace)
class WorkspaceAdmin(OrganizationScopedAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = [ORGANIZATION_FILTER]
    search_fields = ["name", "organization__slug"]
    list_select_related = ["organization"]
    write_roles = frozenset(ADMIN_ROLES)

    def get_readonly_fields(self, request, obj=None):
        """A workspace stays in its organization (its data sources belong there), as a source's type stays."""
        return ["organization"] if obj is not None else []


# --- API tokens -----------------------------------------------------------------------------------


#: Session key: the add form's submission ids that created a token -> that token's pk (never its value).

"""Organizations, their members and workspaces. Every admin save is audited (``organizations.audit``):
memberships through their services; an organization's health settings as the API's
``update_health_settings`` event (``PATCH /api/v1/health-settings/``), its other settings as
``update``; workspaces as ``create``/``update``/``delete``; each with the changed fields' old and new
values.

The health-settings service lives in ``datasources``, above this app (the import contracts): the
admin records the same event, with the same shape, and the model's validators are its rules."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect

from core.admin_forms import STALE_MESSAGE, SeenStateForm, state_hash
from organizations import audit
from organizations.actors import Actor
from organizations.admin.scoping import ORGANIZATION_FILTER, OrganizationScopedAdmin, audit_url, organizations_with_role
from organizations.models import (
    ADMIN_ROLES,
    Membership,
    Organization,
    Role,
    Workspace,
)
from organizations.services import (
    RoleChange,
    check_owner_rules,
    remove_membership,
    set_membership,
)

#: The fields of ``PATCH /api/v1/health-settings/`` (its event: ``update_health_settings``).
HEALTH_FIELDS = ("health_check_interval", "health_failure_threshold")


def _changes(old: models.Model | None, new: models.Model, names: list[str]) -> dict[str, dict[str, Any]]:
    """``{field: {"old", "new"}}`` for the named fields whose value differs (``old`` None: a creation)."""
    out = {}
    for name in names:
        before, after = (getattr(old, name) if old is not None else None), getattr(new, name)
        if old is None or before != after:
            out[name] = {"old": before, "new": after}
    return out


def _model_fields(names: Any) -> list[str]:
    """The organization's own fields among a form's (not the page's ``seen_state``)."""
    return [name for name in names if name != "seen_state"]


def _as_target(organization: Organization) -> Organization:
    """The audit writer files an event under its target's ``organization_id``: an organization's own."""
    organization.organization_id = organization.pk  # type: ignore[attr-defined]
    return organization


def _lock_organization(pk: Any) -> Organization | None:
    """The organization's row, read under the lock member changes take (``organizations.locks``): the
    organization page checks what it showed under it, and workspace saves take it first."""
    return Organization.objects.select_for_update(no_key=True).filter(pk=pk).first()


def _record_workspace(request: Any, action: str, workspace: Workspace, old: Workspace | None = None) -> None:
    """A workspace's ``create``, ``update`` (``old``: the row before) or ``delete`` event, when its name changed."""
    if action == "delete":
        changes = {"name": {"old": workspace.name, "new": None}}
    else:
        changes = _changes(old, workspace, ["name"])
    if changes:
        audit.record(actor=Actor.for_member(workspace.organization, request.user), action=action, target=workspace,
                     changes=changes)


def _save_workspaces(request: Any, formset: Any) -> None:
    """The organization page's workspace rows, each change audited as on the workspace's own page."""
    olds = Workspace.objects.select_for_update().in_bulk([f.instance.pk for f in formset.initial_forms])
    formset.save(commit=False)
    for workspace in formset.deleted_objects:
        _record_workspace(request, "delete", workspace)
        workspace.delete()
    for workspace, _fields in formset.changed_objects:
        workspace.save()
        _record_workspace(request, "update", workspace, olds.get(workspace.pk))
    for workspace in formset.new_objects:
        workspace.save()
        _record_workspace(request, "create", workspace)


class OrganizationForm(SeenStateForm):
    """A page opened before someone else changed the organization's settings, members or workspaces is
    refused (a stale tab would put back, say, a four-eyes rule another owner switched on, or a role
    another admin revoked): the digest covers the inline rows as the page showed them, each member's
    user and role and each workspace's name, so a row changed, added or removed since is a change too.

    The organization's row is locked (the admin's change view is one transaction) before the digest is
    compared, as member and workspace changes lock it (``set_membership``, ``remove_membership``, the
    workspace page): a save of this page beside another save of it, a member's or a workspace's page
    waits for it, then finds it and is refused, rather than reading the rows around it."""

    stale_what = "organization"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["seen_state"] = self._page_state(self.instance)

    def _page_state(self, organization: Organization) -> str:
        rows = {
            "organization": state_hash(organization, self._guarded()),
            "memberships": sorted(Membership.objects.filter(organization_id=organization.pk)
                                  .values_list("pk", "user_id", "role")),
            "workspaces": sorted(Workspace.objects.filter(organization_id=organization.pk).values_list("pk", "name")),
        }
        text = json.dumps(rows, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def clean(self) -> dict[str, Any]:
        data = forms.ModelForm.clean(self) or self.cleaned_data  # SeenStateForm's check, on the whole page
        seen = data.get("seen_state")
        if self.instance.pk is not None and seen:
            current = _lock_organization(self.instance.pk)
            if current is None or seen != self._page_state(current):  # read under the lock, not as loaded
                raise ValidationError(STALE_MESSAGE.format(what=self.stale_what), code="stale")
        return data


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


def _owner_rule_refusal(request: Any, organization: Organization, changes: list[RoleChange]) -> str | None:
    """Why the owner role's rules refuse ``changes`` (``check_owner_rules``), for a form; else None."""
    try:
        check_owner_rules(Actor.for_member(organization, request.user), organization, changes)
    except ValidationError as exc:
        return exc.messages[0]
    except PermissionDenied as exc:
        return str(exc)
    return None


class MembershipFormSet(BaseInlineFormSet):
    """The organization page's member rows: the owner rules apply to the page's changes together (a
    new owner and the old one's demotion may be one save; the services then grant before they take)."""

    request: Any = None

    def clean(self) -> None:
        super().clean()
        if any(self.errors) or self.request is None or self.instance.pk is None:
            return
        before = dict(Membership.objects.filter(organization=self.instance).values_list("pk", "role"))
        changes: list[RoleChange] = []
        for form in self.forms:
            old, role = before.get(form.instance.pk), form.cleaned_data.get("role")
            if self.can_delete and form.cleaned_data.get("DELETE"):
                changes.append((old, None))
            elif form.instance.pk is None or "user" in form.changed_data:  # an addition (or another user)
                changes += [(old, None), (None, role)] if form.has_changed() else []
            elif "role" in form.changed_data:
                changes.append((old, role))
        refusal = _owner_rule_refusal(self.request, self.instance, changes)
        if refusal:
            raise ValidationError(refusal)


class MembershipInline(_AdminRoleInline):
    model = Membership
    formset = MembershipFormSet
    raw_id_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        return type(formset.__name__, (formset,), {"request": request})


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
    form = OrganizationForm
    inlines = [MembershipInline, WorkspaceInline]
    organization_field = "pk"
    write_roles = frozenset(ADMIN_ROLES)

    def has_add_permission(self, request, *args: Any) -> bool:
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        """Audited: a new organization as ``create``; a change as ``update`` (name, slug, revisions,
        second person) and ``update_health_settings`` (as the API records it), old values read under
        the row's lock; an unchanged save writes nothing."""
        if not change:
            super().save_model(request, obj, form, change)
            audit.record(actor=Actor.for_member(obj, request.user), action="create", target=_as_target(obj),
                         changes=_changes(None, obj, _model_fields(form.fields)))
            return
        with transaction.atomic():
            current = Organization.objects.select_for_update().get(pk=obj.pk)
            changes = _changes(current, obj, _model_fields(form.changed_data))
            if not changes:
                return
            obj.save(update_fields=list(changes))
            actor, target = Actor.for_member(obj, request.user), _as_target(obj)
            for action, part in (("update", {k: v for k, v in changes.items() if k not in HEALTH_FIELDS}),
                                 ("update_health_settings", {k: v for k, v in changes.items() if k in HEALTH_FIELDS})):
                if part:
                    audit.record(actor=actor, action=action, target=target, changes=part)

    def save_formset(self, request, form, formset, change):
        """Membership rows go through the services (role checks and audit events); workspace rows
        are audited."""
        if formset.model is Workspace:
            return _save_workspaces(request, formset)
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        organization = form.instance
        actor = Actor.for_member(organization, request.user)
        formset.save(commit=False)
        removals, sets = list(formset.deleted_objects), list(formset.new_objects)
        for membership, fields in formset.changed_objects:
            if "user" in fields:  # another user on the same row: an addition and a removal
                removals.append(Membership.objects.get(pk=membership.pk))
            sets.append(membership)
        # grants first, removals last: a page that makes a new owner and demotes the old one passes
        for membership in sorted(sets, key=lambda m: m.role != Role.OWNER):
            set_membership(actor=actor, organization=organization, user=membership.user, role=membership.role)
        for membership in removals:
            remove_membership(actor=actor, membership=membership)
        return None


class MembershipForm(forms.ModelForm):
    """A member's own page: the owner rules refuse on the role field, before anything is saved."""

    request: Any = None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        existing = self.instance.pk is not None
        organization = self.instance.organization if existing else data.get("organization")
        user = self.instance.user if existing else data.get("user")
        if organization is None or user is None or not data.get("role") or self.request is None:
            return data
        old = Membership.objects.filter(organization=organization, user=user).values_list("role", flat=True).first()
        refusal = _owner_rule_refusal(self.request, organization, [(old, data["role"])])
        if refusal:
            self.add_error("role", refusal)
        return data


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
    form = MembershipForm

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def get_deleted_objects(self, objs, request):
        """A removal the owner rules refuse is listed as what stops it (the page then deletes nothing)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        by_organization: dict[Organization, list[RoleChange]] = {}
        for membership in objs:
            by_organization.setdefault(membership.organization, []).append((membership.role, None))
        refusals = [refusal for organization, changes in by_organization.items()
                    if (refusal := _owner_rule_refusal(request, organization, changes))]
        return deleted, counts, perms_needed, [*protected, *refusals]

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

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        _lock_organization(obj.organization_id)  # as the organization page's rows: see OrganizationForm
        old = Workspace.objects.select_for_update().get(pk=obj.pk) if change else None
        super().save_model(request, obj, form, change)
        _record_workspace(request, "update" if change else "create", obj, old)

    @transaction.atomic  # also from the "delete selected" action, outside the change view's transaction
    def delete_model(self, request, obj):
        _lock_organization(obj.organization_id)
        _record_workspace(request, "delete", obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for workspace in queryset.select_related("organization"):
            self.delete_model(request, workspace)

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_or_change_permission(request, obj):
            return super().history_view(request, object_id, extra_context)
        return HttpResponseRedirect(audit_url(obj))


# --- API tokens -----------------------------------------------------------------------------------


#: Session key: the add form's submission ids that created a token -> that token's pk (never its value).

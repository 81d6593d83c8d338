"""Admin for tenancy and access: organizations, members, workspaces, API tokens, audit events.

API tokens are created through ``organizations.services.create_token``; the raw token is shown
once, on a page rendered directly in the add response (never stored in a message cookie or the
session), and only its hash is kept. The add form carries a one-time submission id: reloading that
page re-posts the form, and a re-post of an id that already created a token creates nothing and
redirects to that token (without its value). Tokens are revoked (for good), never deleted. Token and
membership changes go through the services, which record them in the audit trail. Audit events
are read-only.

Non-superusers see only their organizations' objects (``OrganizationScopedAdmin``, also used by
the data-source and workflow admins): viewing needs a membership (tokens and members: the owner
or admin role), and changing, adding, deleting or running an action needs both Django's model
permission and the role the API requires for the same operation (a ``viewer`` cannot write).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html

from organizations import selectors
from organizations.actors import Actor
from organizations.models import (
    ADMIN_ROLES,
    ALL_SCOPES,
    WRITE_ROLES,
    ApiToken,
    AuditEvent,
    Membership,
    Organization,
    Workspace,
)
from organizations.services import (
    TOKEN_FIELDS,
    create_token,
    remove_membership,
    revoke_token,
    set_membership,
    update_token,
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


# --- API tokens -----------------------------------------------------------------------------------


#: Session key: the add form's submission ids that created a token -> that token's pk (never its value).
ADD_SUBMISSIONS_SESSION_KEY = "apitoken_add_submissions"
_SUBMISSIONS_KEPT = 20


def _new_submission_id() -> str:
    return secrets.token_urlsafe(16)


class ApiTokenAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple)
    # One id per rendered form: a second POST of the same form (a reload of the "token created"
    # page) is recognised and creates nothing.
    submission = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64,
                                 initial=_new_submission_id)

    class Meta:
        model = ApiToken
        fields = ["name", "organization", "user", "scopes", "expires_at"]

    def clean(self):
        cleaned = cast("dict[str, Any]", super().clean())  # ModelForm.clean returns cleaned_data
        org, user = cleaned.get("organization"), cleaned.get("user")
        if org and user and not org.memberships.filter(user=user).exists():
            self.add_error("user", f"'{user.get_username()}' is not a member of '{org.slug}'.")
        expires_at = cleaned.get("expires_at")
        if expires_at and expires_at <= timezone.now():
            self.add_error("expires_at", "The expiry must be in the future.")
        return cleaned


class ApiTokenChangeForm(forms.ModelForm):
    """Name, scopes and expiry; revocation is the "Revoke selected tokens" action, and final."""

    scopes = forms.MultipleChoiceField(choices=SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiToken
        fields = list(TOKEN_FIELDS)


@admin.register(ApiToken)
class ApiTokenAdmin(OrganizationScopedAdmin):
    """Tokens of the organizations where the operator is an owner or admin (the API's
    ``organization.admin``). Created, changed and revoked through the services (audited); a
    revoked token stays revoked, and tokens are never deleted (the audit trail refers to them)."""

    list_display = ["name", "organization", "prefix", "scope_list", "user", "expires_at", "revoked_at",
                    "last_used_at", "active"]
    list_filter = [ORGANIZATION_FILTER, ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "organization__slug", "user__username"]
    list_select_related = ["organization", "user"]
    actions = ["revoke_selected"]
    view_roles = frozenset(ADMIN_ROLES)
    write_roles = frozenset(ADMIN_ROLES)
    # ``token_hash`` is never listed in any form, fieldset or read-only field.
    change_readonly = ["organization", "user", "prefix", "created_at", "revoked_at", "last_used_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ApiTokenChangeForm if obj is not None else ApiTokenAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "organization", "user", "scopes", "expires_at", "submission"]
        return ["name", "organization", "user", "prefix", "scopes", "created_at", "expires_at",
                "revoked_at", "last_used_at"]

    def get_readonly_fields(self, request, obj=None):
        return self.change_readonly if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:  # members of the operator's organizations
            writable = self.writable_organizations(request)
            kwargs["queryset"] = selectors.members_of(writable)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes or [])

    @admin.display(boolean=True, description="active")
    def active(self, obj: ApiToken) -> bool:
        return obj.is_active

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            current = ApiToken.objects.select_related("organization").get(pk=obj.pk)
            changed = {key: data[key] for key in TOKEN_FIELDS if key in form.changed_data}
            update_token(actor=Actor.for_member(current.organization, request.user), token=current, **changed)
            return
        organization = data["organization"]
        # The form checked membership, scopes and expiry, so this does not raise.
        token, raw = create_token(
            organization=organization,
            name=data["name"],
            scopes=data["scopes"],
            username=data["user"].get_username() if data.get("user") else None,
            expires_at=data.get("expires_at"),
            actor=Actor.for_member(organization, request.user),
        )
        for attr in ("pk", "id", "prefix", "token_hash", "scopes", "created_at", "user_id"):
            setattr(obj, attr, getattr(token, attr))
        obj._raw_token = raw  # only in memory, for response_add
        submission = data.get("submission")
        if submission:
            done = {**request.session.get(ADD_SUBMISSIONS_SESSION_KEY, {}), submission: token.pk}
            request.session[ADD_SUBMISSIONS_SESSION_KEY] = dict(list(done.items())[-_SUBMISSIONS_KEPT:])

    def add_view(self, request, form_url="", extra_context=None):
        if request.method == "POST":
            already = self._already_created(request)
            if already is not None:
                return already
        return super().add_view(request, form_url, extra_context)

    def _already_created(self, request: Any) -> HttpResponseRedirect | None:
        """A re-POST of an add form that already created a token (the browser's reload of the
        "token created" page): create nothing, show nothing secret, go to that token."""
        submission = request.POST.get("submission")
        pk = request.session.get(ADD_SUBMISSIONS_SESSION_KEY, {}).get(submission) if submission else None
        if pk is None or not ApiToken.objects.filter(pk=pk).exists():
            return None
        self.message_user(request, "This form already created this token; nothing new was created. Its value "
                          "was shown once, when it was created, and cannot be shown again.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:organizations_apitoken_change", args=[pk]))

    def response_add(self, request, obj, post_url_continue=None):
        raw = getattr(obj, "_raw_token", None)
        if raw is None or admin.options.IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        template = engines["django"].from_string(SHOWN_ONCE_PAGE)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Token created",
            "token": obj,
            "raw_token": raw,
            "scopes": ", ".join(obj.scopes),
        }
        response = TemplateResponse(request, template, context)
        add_never_cache_headers(response)
        return response

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_or_change_permission(request, obj):
            return super().history_view(request, object_id, extra_context)
        return HttpResponseRedirect(audit_url(obj))

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_selected(self, request, queryset):
        self.check_action_allowed(request, queryset)
        count = 0
        for token in queryset.select_related("organization"):
            count += revoke_token(actor=Actor.for_member(token.organization, request.user), token=token)
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


# --- audit events (read-only) ---------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(OrganizationScopedAdmin):
    """Read-only; a non-superuser sees the events of the organizations they are a member of."""

    list_display = ["created_at", "action", "target_type", "target_link", "actor_repr", "changed_fields",
                    "organization", "request_id"]
    list_filter = ["action", "target_type", ORGANIZATION_FILTER]
    search_fields = ["target_repr", "actor_repr", "request_id", "target_type"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    fields = ("created_at", "organization", "action", "target_type", "target_id", "target_link",
              "actor_repr", "actor_user", "actor_token", "request_id", "changes_pretty", "detail_pretty")
    readonly_fields = fields

    def has_add_permission(self, request, *args: Any) -> bool:
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="target")
    def target_link(self, obj: AuditEvent) -> str:
        """A link to the target's admin page (data sources, workflows, tokens, memberships, ...),
        unless it was deleted; the label is what the target was called at the time."""
        label = obj.target_repr or f"{obj.target_type}:{obj.target_id}"
        app_model = obj.target_type.replace(".", "_")
        try:
            url = reverse(f"admin:{app_model}_change", args=[obj.target_id])
        except NoReverseMatch:
            return label
        if obj.action == "delete":
            return label
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="fields")
    def changed_fields(self, obj: AuditEvent) -> str:
        return ", ".join(sorted(obj.changes or {}))

    @admin.display(description="changes")
    def changes_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.changes, indent=2, sort_keys=True, default=str))

    @admin.display(description="detail")
    def detail_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.detail, indent=2, sort_keys=True, default=str))

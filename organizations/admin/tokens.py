"""API tokens: created through the services, shown once, revoked for good."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from core.admin_forms import SeenStateForm
from organizations import selectors
from organizations.actors import Actor
from organizations.admin import shown_once
from organizations.admin.scoping import (
    ORGANIZATION_FILTER,
    SCOPE_CHOICES,
    SHOWN_ONCE_PAGE,
    OrganizationScopedAdmin,
    audit_url,
)
from organizations.models import (
    ADMIN_ROLES,
    ApiToken,
)
from organizations.services import (
    TOKEN_FIELDS,
    create_token,
    require_may_act_for,
    revoke_token,
    update_token,
)

ADD_SUBMISSIONS_SESSION_KEY = "apitoken_add_submissions"
EXPIRY_IN_PAST = "The expiry must be in the future."


class ApiTokenAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple)
    # One id per rendered form: a second POST of the same form (a reload of the "token created"
    # page) is recognised and creates nothing.
    submission = shown_once.submission_field()

    class Meta:
        model = ApiToken
        fields = ["name", "organization", "user", "scopes", "expires_at"]

    request: Any = None  # set by ApiTokenAdmin.get_form

    def clean(self):
        cleaned = cast("dict[str, Any]", super().clean())  # ModelForm.clean returns cleaned_data
        org, user = cleaned.get("organization"), cleaned.get("user")
        if org and user and not org.memberships.filter(user=user).exists():
            self.add_error("user", f"'{user.get_username()}' is not a member of '{org.slug}'.")
        elif org and user and self.request is not None:
            try:  # the service's rule (create_token checks it again): a token acts only for its creator
                require_may_act_for(Actor.for_member(org, self.request.user), user)
            except PermissionDenied as exc:
                self.add_error("user", str(exc))
        expires_at = cleaned.get("expires_at")
        if expires_at and expires_at <= timezone.now():
            self.add_error("expires_at", EXPIRY_IN_PAST)
        return cleaned


class ApiTokenChangeForm(SeenStateForm):
    """Name, scopes and expiry; revocation is the "Revoke selected tokens" action, and final.

    A new expiry must be in the future, as when adding; an expiry left as it is stays, even past
    (renaming an expired token does not ask for a new date). A page opened before someone else
    changed the token is refused (a stale tab would put back scopes another operator narrowed)."""

    scopes = forms.MultipleChoiceField(choices=SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple)
    stale_what = "token"

    class Meta:
        model = ApiToken
        fields = list(TOKEN_FIELDS)

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if "expires_at" in self.changed_data and expires_at and expires_at <= timezone.now():
            raise forms.ValidationError(EXPIRY_IN_PAST)
        return expires_at


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
        form = super().get_form(request, obj, change=change, **kwargs)
        return form if obj is not None else type(form.__name__, (form,), {"request": request})

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "organization", "user", "scopes", "expires_at", "submission"]
        return ["name", "organization", "user", "prefix", "scopes", "created_at", "expires_at",
                "revoked_at", "last_used_at", "seen_state"]

    def get_readonly_fields(self, request, obj=None):
        return self.change_readonly if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """A non-superuser's token acts for themself or for no user (``may_act_for``): the only user
        offered is the operator (a member of the organizations they administer)."""
        if db_field.name == "user" and not request.user.is_superuser:
            writable = self.writable_organizations(request)
            kwargs["queryset"] = selectors.members_of(writable).filter(pk=request.user.pk)
            kwargs["help_text"] = ("Leave empty for a token that acts for no user, or pick yourself: the token then "
                                   "acts for you and is limited by your role. Only you can create a token that "
                                   "acts for you.")
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
        # The form checked membership, whom the token may act for, scopes and expiry, so this does not raise.
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
        shown_once.remember(request, ADD_SUBMISSIONS_SESSION_KEY, data.get("submission"), token.pk)

    def add_view(self, request, form_url="", extra_context=None):
        if request.method == "POST":
            already = self._already_created(request)
            if already is not None:
                return already
        return super().add_view(request, form_url, extra_context)

    def _already_created(self, request: Any) -> HttpResponseRedirect | None:
        """A re-POST of an add form that already created a token (the browser's reload of the
        "token created" page): create nothing, show nothing secret, go to that token."""
        pk = shown_once.already_created(request, ADD_SUBMISSIONS_SESSION_KEY)
        if pk is None or not ApiToken.objects.filter(pk=pk).exists():
            return None
        self.message_user(request, "This form already created this token; nothing new was created. Its value "
                          "was shown once, when it was created, and cannot be shown again.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:organizations_apitoken_change", args=[pk]))

    def response_add(self, request, obj, post_url_continue=None):
        raw = getattr(obj, "_raw_token", None)
        if raw is None or admin.options.IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Token created",
            "token": obj,
            "raw_token": raw,
            "scopes": ", ".join(obj.scopes),
        }
        return shown_once.response(request, SHOWN_ONCE_PAGE, context)

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

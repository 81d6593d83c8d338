"""Organization, token and membership services (shared by commands, the admin and the API).

Every token and membership change is recorded in the audit trail here (``organizations.audit``):
who did it, the target, and what changed. The raw token and its hash are never recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from organizations import audit
from organizations.actors import Actor
from organizations.locks import lock_organization
from organizations.models import ALL_SCOPES, ApiToken, Membership, Organization, Role

TOKEN_FIELDS = ("name", "scopes", "expires_at")  # what update_token may change
ACTING_FOR_ANOTHER_USER = ("A token that acts for '{username}' can be created only by '{username}' (or a platform "
                          "superuser): create one that acts for you, or for no user.")


def create_organization(*, slug: str, name: str | None = None) -> tuple[Organization, bool]:
    """The organization ``slug``, created (named ``name``, default the slug) when there is none; an
    existing one is returned as it is, its name included (a rename is an admin change, audited there)."""
    return Organization.objects.get_or_create(slug=slug, defaults={"name": name or slug})


def parse_scopes(value: str | list[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    scopes = [s.strip() for s in items if s.strip()]
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise ValidationError(f"Unknown scopes: {', '.join(unknown)}. Known: {', '.join(ALL_SCOPES)}.")
    if not scopes:
        raise ValidationError("At least one scope is required.")
    return sorted(set(scopes), key=ALL_SCOPES.index)


def organization_roles(user: Any) -> dict[int, str]:
    """``{organization id: role}`` of every membership of ``user`` (empty for anonymous users)."""
    if not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        return {}
    return dict(Membership.objects.filter(user_id=user.pk).values_list("organization_id", "role"))


def require_org_admin(actor: Actor, organization: Organization) -> None:
    """Token and membership administration needs an owner or admin of that organization."""
    if actor.organization.pk != organization.pk or not actor.is_org_admin:
        raise PermissionDenied(f"Administering tokens and members of '{organization.slug}' needs the owner or "
                               f"admin role there.")


def _plain(value: Any) -> Any:
    """A JSON-friendly audit value."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, AbstractBaseUser):
        return value.get_username()
    return value


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {key: {"old": _plain(old.get(key)), "new": _plain(new[key])}
            for key in new if _plain(old.get(key)) != _plain(new[key])}


# --- tokens -----------------------------------------------------------------------------------


def may_act_for(actor: Actor, user: AbstractBaseUser) -> bool:
    """Whether ``actor`` may create a token that acts for ``user``: only ``user`` themself (signed
    in, or a token of theirs), a signed-in superuser (the platform's operator) or the system (the
    ``create_token`` command, run by whoever operates the machine). Anyone else's token for another
    member would act, and be audited, as that member: an admin could then write a connection
    change with one token and apply it as "the owner" with another (the four-eyes rule)."""
    if actor.is_system:
        return True
    acting = actor.user
    if acting is None:
        return False
    if acting.pk == user.pk:
        return True
    return actor.token is None and bool(getattr(acting, "is_superuser", False))


def require_may_act_for(actor: Actor, user: AbstractBaseUser) -> None:
    """PermissionDenied unless ``may_act_for``; the message says what the actor may create instead."""
    if not may_act_for(actor, user):
        raise PermissionDenied(ACTING_FOR_ANOTHER_USER.format(username=user.get_username()))


@transaction.atomic
def create_token(
    *,
    organization: Organization,
    name: str,
    scopes: list[str] | str,
    username: str | None = None,
    expires_at: datetime | None = None,
    actor: Actor | None = None,
    raw: str | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns (token, raw). The raw value is never stored and shown only once.

    ``actor`` defaults to the system (scripts and fixtures); ``raw`` is for a token whose value is
    derived elsewhere (the demo token), otherwise a random one is generated. A token that acts for
    ``username`` is created only by that user, a signed-in superuser or the system
    (``require_may_act_for``: PermissionDenied otherwise, and nothing is created)."""
    if actor is None:
        actor = Actor.system(organization)
    require_org_admin(actor, organization)
    user = None
    if username:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise ValidationError(f"No user named '{username}'.")
        if not organization.memberships.filter(user=user).exists():
            raise ValidationError(f"User '{username}' is not a member of '{organization.slug}'.")
        require_may_act_for(actor, user)
    raw = raw or ApiToken.generate()
    token = ApiToken(
        organization=organization, name=name, scopes=parse_scopes(scopes), user=user, expires_at=expires_at
    )
    token.set_token(raw)
    token.save()
    changes = _diff({}, {"name": token.name, "scopes": token.scopes, "user": user, "expires_at": expires_at})
    audit.record(actor=actor, action="create", target=token, changes=changes)
    return token, raw


def _locked(token: ApiToken) -> ApiToken:
    return ApiToken.objects.select_for_update().select_related("organization").get(pk=token.pk)


@transaction.atomic
def update_token(*, actor: Actor, token: ApiToken, **fields: Any) -> dict[str, dict[str, Any]]:
    """Change a token's name, scopes or expiry; returns (and records) what changed.

    Revocation is ``revoke_token`` and is final: a revoked token is never re-activated."""
    unknown = set(fields) - set(TOKEN_FIELDS)
    if unknown:
        raise ValidationError(f"A token's {', '.join(sorted(unknown))} cannot be changed.")
    current = _locked(token)
    require_org_admin(actor, current.organization)
    if "scopes" in fields:
        fields["scopes"] = parse_scopes(fields["scopes"])
    if "name" in fields and not (fields["name"] or "").strip():
        raise ValidationError("A token needs a name.")
    changes = _diff({key: getattr(current, key) for key in fields}, fields)
    if changes:
        for key in changes:
            setattr(current, key, fields[key])
        current.save(update_fields=list(changes))
        audit.record(actor=actor, action="update", target=current, changes=changes)
    for key in changes:
        setattr(token, key, fields[key])
    return changes


@transaction.atomic
def revoke_token(*, actor: Actor, token: ApiToken) -> bool:
    """Revoke a token (for good); False when it already was. Recorded as a ``revoke`` event."""
    current = _locked(token)
    require_org_admin(actor, current.organization)
    if current.revoked_at is not None:
        return False
    current.revoked_at = timezone.now()
    current.save(update_fields=["revoked_at"])
    token.revoked_at = current.revoked_at
    audit.record(actor=actor, action="revoke", target=current,
                 changes={"revoked_at": {"old": None, "new": current.revoked_at.isoformat()}})
    return True


# --- memberships ------------------------------------------------------------------------------


RoleChange = tuple[str | None, str | None]  # (role before, role after); None: not a member


def check_owner_rules(actor: Actor, organization: Organization, changes: list[RoleChange], *,
                      lock: bool = False) -> None:
    """The owner role's two rules, for ``changes`` applied together: only an owner grants or takes it
    away (PermissionDenied: an admin may not make themself or anyone owner, nor demote or remove one),
    and an organization that has an owner keeps one (ValidationError). ``lock``: the owners' rows
    are locked while counted, so two operators each demoting the other cannot both pass."""
    touching = [(old, new) for old, new in changes if old != new and Role.OWNER in (old, new)]
    if not touching:
        return
    if not (actor.is_system or actor.role in (None, Role.OWNER)):
        raise PermissionDenied(f"Only an owner of '{organization.slug}' may grant or take away the owner role.")
    owners_qs = Membership.objects.filter(organization=organization, role=Role.OWNER)
    owners = len(owners_qs.select_for_update().values_list("pk", flat=True)) if lock else owners_qs.count()
    left = owners - sum(old == Role.OWNER for old, _ in touching) + sum(new == Role.OWNER for _, new in touching)
    if owners and left <= 0:
        raise ValidationError(f"'{organization.slug}' would have no owner left: make another member owner first.",
                              code="last_owner")


@transaction.atomic
def set_membership(
    *, actor: Actor, organization: Organization, user: AbstractBaseUser, role: str
) -> tuple[Membership, bool]:
    """Add ``user`` to the organization with ``role``, or change their role; returns (membership, created).

    Under the organization's lock (``lock_organization``), as the organization page's check of the rows
    it showed: that page, saved beside this change, waits for it and then sees it (stale: refused)."""
    require_org_admin(actor, organization)
    if role not in Role.values:
        raise ValidationError(f"Unknown role '{role}'. Known: {', '.join(Role.values)}.")
    lock_organization(actor)
    membership = (
        Membership.objects.select_for_update().filter(organization=organization, user_id=user.pk).first()
    )
    check_owner_rules(actor, organization, [(membership.role if membership else None, role)], lock=True)
    if membership is None:
        membership = Membership.objects.create(organization=organization, user_id=user.pk, role=role)
        audit.record(actor=actor, action="create", target=membership,
                     changes={"user": {"old": None, "new": user.get_username()}, "role": {"old": None, "new": role}})
        return membership, True
    if membership.role != role:
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit.record(actor=actor, action="update", target=membership, changes={"role": {"old": old, "new": role}},
                     detail={"user": user.get_username()})
    return membership, False


@transaction.atomic
def remove_membership(*, actor: Actor, membership: Membership) -> None:
    """Remove a member from an organization (their user tokens stop working there); under the
    organization's lock, as ``set_membership``."""
    lock_organization(actor)  # the actor's organization: require_org_admin refuses any other
    current = Membership.objects.select_for_update().select_related("organization", "user").get(pk=membership.pk)
    require_org_admin(actor, current.organization)
    check_owner_rules(actor, current.organization, [(current.role, None)], lock=True)
    audit.record(actor=actor, action="delete", target=current, changes={
        "user": {"old": current.user.get_username(), "new": None}, "role": {"old": current.role, "new": None}})
    current.delete()

"""Who is acting: a user, a token (optionally for a user), or the system (commands)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from organizations.models import ADMIN_ROLES, ALL_SCOPES, WRITE_ROLES, ApiToken, Membership, Organization


@dataclass
class Actor:
    organization: Organization
    user: AbstractBaseUser | None = None
    token: ApiToken | None = None
    role: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    is_system: bool = False
    origin: str = ""  # what a system actor is (e.g. the management command), for its label

    @classmethod
    def system(cls, organization: Organization, origin: str = "") -> Actor:
        """The actor of a management command or another unattended job: may do anything."""
        return cls(organization=organization, is_system=True, origin=origin)

    @classmethod
    def for_member(cls, organization: Organization, user: AbstractBaseUser) -> Actor:
        """A logged-in operator (the admin): their role in the organization, every scope.

        A superuser who is not a member has no role, so no role limit (as ``admin_actor`` below); anyone
        else who is not a member gets the empty role, which may neither write nor administer."""
        role = (
            Membership.objects.filter(organization=organization, user_id=user.pk)
            .values_list("role", flat=True)
            .first()
        )
        if role is None and not getattr(user, "is_superuser", False):
            role = ""
        return cls(organization=organization, user=user, role=role, scopes=frozenset(ALL_SCOPES))

    @property
    def label(self) -> str:
        if self.token is not None:
            base = f"token:{self.token.name}"
            return f"{base} (user:{self.user.get_username()})" if self.user else base
        if self.user is not None:
            return f"user:{self.user.get_username()}"
        return f"system:{self.origin}" if self.origin else "system"

    def has_scope(self, scope: str) -> bool:
        return self.is_system or scope in self.scopes

    @property
    def can_write(self) -> bool:
        return self.is_system or self.role is None or self.role in WRITE_ROLES

    @property
    def is_org_admin(self) -> bool:
        """Owners and admins, with the organization.admin scope: a token needs it whether it acts for
        no user or for an owner or admin (a token narrowed to datasource.write does not act as the
        owner it belongs to); a session and the admin site carry every scope of their role."""
        if self.is_system:
            return True
        return "organization.admin" in self.scopes and (self.role is None or self.role in ADMIN_ROLES)

    def audit_fields(self) -> dict:
        return {
            "actor_user": self.user if getattr(self.user, "pk", None) else None,
            "actor_token": self.token,
            "actor_repr": self.label,
        }


def admin_actor(request: Any, organization: Organization) -> Actor:
    """The actor for an operator of the admin site (``request.user``): their role in the
    organization if they are a member (else no role, so no role limit: the admin site's own
    permissions decide), every scope. The data-source and workflow admins both act through it."""
    role = (
        Membership.objects.filter(organization=organization, user=request.user)
        .values_list("role", flat=True)
        .first()
    )
    return Actor(organization=organization, user=request.user, role=role, scopes=frozenset(ALL_SCOPES))

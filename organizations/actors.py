"""Who is acting: a user, a token (optionally for a user), or the system (commands)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser

from organizations.models import ADMIN_ROLES, WRITE_ROLES, ApiToken, Organization


@dataclass
class Actor:
    organization: Organization
    user: AbstractBaseUser | None = None
    token: ApiToken | None = None
    role: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    is_system: bool = False

    @property
    def label(self) -> str:
        if self.token is not None:
            base = f"token:{self.token.name}"
            return f"{base} (user:{self.user.get_username()})" if self.user else base
        if self.user is not None:
            return f"user:{self.user.get_username()}"
        return "system"

    def has_scope(self, scope: str) -> bool:
        return self.is_system or scope in self.scopes

    @property
    def can_write(self) -> bool:
        return self.is_system or self.role is None or self.role in WRITE_ROLES

    @property
    def is_org_admin(self) -> bool:
        """Owners and admins; a token acting for no user needs the organization.admin scope."""
        if self.is_system or self.role in ADMIN_ROLES:
            return True
        return self.role is None and "organization.admin" in self.scopes

    def audit_fields(self) -> dict:
        return {
            "actor_user": self.user if getattr(self.user, "pk", None) else None,
            "actor_token": self.token,
            "actor_repr": self.label,
        }

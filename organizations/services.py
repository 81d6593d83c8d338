"""Organization and token services (shared by commands, the admin and the API)."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from organizations.models import ALL_SCOPES, ApiToken, Organization


def create_organization(*, slug: str, name: str | None = None) -> tuple[Organization, bool]:
    org, created = Organization.objects.get_or_create(slug=slug, defaults={"name": name or slug})
    if not created and name and org.name != name:
        org.name = name
        org.save(update_fields=["name"])
    return org, created


def parse_scopes(value: str | list[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    scopes = [s.strip() for s in items if s.strip()]
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise ValidationError(f"Unknown scopes: {', '.join(unknown)}. Known: {', '.join(ALL_SCOPES)}.")
    if not scopes:
        raise ValidationError("At least one scope is required.")
    return sorted(set(scopes), key=ALL_SCOPES.index)


@transaction.atomic
def create_token(
    *,
    organization: Organization,
    name: str,
    scopes: list[str],
    username: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns (token, raw). The raw value is never stored and shown only once."""
    user = None
    if username:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise ValidationError(f"No user named '{username}'.")
        if not organization.memberships.filter(user=user).exists():
            raise ValidationError(f"User '{username}' is not a member of '{organization.slug}'.")
    raw = ApiToken.generate()
    token = ApiToken(
        organization=organization, name=name, scopes=parse_scopes(scopes), user=user, expires_at=expires_at
    )
    token.set_token(raw)
    token.save()
    return token, raw

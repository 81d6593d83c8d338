"""Reads of organizations, members, tokens and audit events, scoped to who is asking.

The admin shows a non-superuser only the objects of organizations where their role allows it
(``visible_to``); the ``*_visible_to(user)`` selectors are those scopes for each model. Another
organization's object is simply not in the queryset, so its pages answer as for a missing one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.db.models import Model, QuerySet

from organizations.models import ADMIN_ROLES, ApiToken, AuditEvent, Membership, Organization, Workspace

M = TypeVar("M", bound=Model)


def organization_roles(user: Any) -> dict[int, str]:
    """``{organization id: role}`` of every membership of ``user`` (empty for anonymous users)."""
    if not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        return {}
    return dict(Membership.objects.filter(user_id=user.pk).values_list("organization_id", "role"))


def organizations_with_role(roles_by_organization: Mapping[int, str], roles: Collection[str] | None) -> set[int]:
    """Ids of the organizations where the role is in ``roles`` (None: any membership)."""
    return {org for org, role in roles_by_organization.items() if roles is None or role in roles}


def visible_to(user: Any, queryset: QuerySet[M], organization_ids: Collection[int],
               organization_field: str = "organization") -> QuerySet[M]:
    """``queryset`` as ``user`` may see it: everything for a superuser, else the rows whose
    ``organization_field`` (a lookup path; ``pk`` for organizations) is in ``organization_ids``."""
    if getattr(user, "is_superuser", False):
        return queryset
    return queryset.filter(**{f"{organization_field}__in": organization_ids})


def _ids(user: Any, roles: Collection[str] | None, known: Mapping[int, str] | None) -> set[int]:
    return organizations_with_role(organization_roles(user) if known is None else known, roles)


def organizations_visible_to(user: Any, roles_by_organization: Mapping[int, str] | None = None
                             ) -> QuerySet[Organization]:
    """The organizations the user is a member of (all of them for a superuser)."""
    return visible_to(user, Organization.objects.all(), _ids(user, None, roles_by_organization), "pk")


def workspaces_visible_to(user: Any, roles_by_organization: Mapping[int, str] | None = None) -> QuerySet[Workspace]:
    return visible_to(user, Workspace.objects.all(), _ids(user, None, roles_by_organization))


def memberships_visible_to(user: Any, roles_by_organization: Mapping[int, str] | None = None
                           ) -> QuerySet[Membership]:
    """Members of the organizations where the user is an owner or admin."""
    return visible_to(user, Membership.objects.all(), _ids(user, ADMIN_ROLES, roles_by_organization))


def tokens_visible_to(user: Any, roles_by_organization: Mapping[int, str] | None = None) -> QuerySet[ApiToken]:
    """API tokens of the organizations where the user is an owner or admin (the API's ``organization.admin``)."""
    return visible_to(user, ApiToken.objects.all(), _ids(user, ADMIN_ROLES, roles_by_organization))


def audit_events_visible_to(user: Any, roles_by_organization: Mapping[int, str] | None = None
                            ) -> QuerySet[AuditEvent]:
    return visible_to(user, AuditEvent.objects.all(), _ids(user, None, roles_by_organization))


# --- choices offered to an operator who may write in some organizations -------------------------


def organizations_among(organization_ids: Collection[int]) -> QuerySet[Organization]:
    return Organization.objects.filter(pk__in=organization_ids)


def workspaces_of(organization_ids: Collection[int]) -> QuerySet[Workspace]:
    return Workspace.objects.filter(organization_id__in=organization_ids)


def members_of(organization_ids: Collection[int]) -> QuerySet[Any]:
    """The users with a membership in any of these organizations."""
    return get_user_model().objects.filter(memberships__organization_id__in=organization_ids).distinct()


# --- audit trail -----------------------------------------------------------------------------------


def audit_events_for(target: Model) -> QuerySet[AuditEvent]:
    """The audit events of one object (a data source, a workflow, a token, ...), newest first."""
    return AuditEvent.objects.filter(target_type=target._meta.label_lower, target_id=target.pk)

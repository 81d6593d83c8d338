"""Webhooks are the organization's administration: an owner or admin (a token with the
``organization.admin`` scope; a token acting for a user needs that user to be an owner or admin too)."""

from __future__ import annotations

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from organizations.authentication import require_actor


class OrganizationAdminPermission(permissions.BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        actor = require_actor(request)
        if not actor.has_scope("organization.admin"):
            raise exceptions.PermissionDenied("This token lacks the 'organization.admin' scope.")
        if not actor.is_org_admin:
            raise exceptions.PermissionDenied(f"Your role '{actor.role}' cannot manage webhooks.")
        return True

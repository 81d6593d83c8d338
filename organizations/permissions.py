"""Scope and role checks. Views declare ``scope_resource`` ("datasource" or "workflow")."""

from __future__ import annotations

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from organizations.authentication import require_actor


class ScopePermission(permissions.BasePermission):
    """Reading needs `<resource>.read`, writing `<resource>.write` and a role that may write."""

    def has_permission(self, request: Request, view) -> bool:
        actor = require_actor(request)
        resource = getattr(view, "scope_resource", None)
        if resource is None:
            return True
        write = request.method not in permissions.SAFE_METHODS or getattr(view, "action_is_write", False)
        scope = f"{resource}.{'write' if write else 'read'}"
        if not actor.has_scope(scope):
            raise exceptions.PermissionDenied(f"This token lacks the '{scope}' scope.")
        if write and not actor.can_write:
            raise exceptions.PermissionDenied(f"Your role '{actor.role}' cannot make changes.")
        return True

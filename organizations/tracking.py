"""Who created and last changed a `Tracked` row, read cheaply.

Rendering ``created_by``/``updated_by`` needs only an id and a name per side. Joining the user and
token tables four times (``select_related``) makes PostgreSQL search join orders for every query
(several milliseconds of planning on a list page) and Django build four model instances per row;
four scalar subqueries for the names are planned in a fraction of that and yield plain strings.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.db.models import OuterRef, QuerySet, Subquery

from organizations.models import ApiToken

Q = TypeVar("Q", bound=QuerySet)
SIDES = ("created", "updated")


def with_actor_names(queryset: Q) -> Q:
    """Annotate ``_<side>_by_user_name`` and ``_<side>_by_token_name`` for both sides."""
    user_model = get_user_model()
    names: dict[str, Any] = {}
    for side in SIDES:
        names[f"_{side}_by_user_name"] = Subquery(
            user_model.objects.filter(pk=OuterRef(f"{side}_by_id")).values(user_model.USERNAME_FIELD)[:1]
        )
        names[f"_{side}_by_token_name"] = Subquery(
            ApiToken.objects.filter(pk=OuterRef(f"{side}_by_token_id")).values("name")[:1]
        )
    return queryset.annotate(**names)


def actor_of(obj: Any, side: str) -> dict[str, Any] | None:
    """``{"kind", "id", "name"}`` of who created (``side="created"``) or last updated the row:
    the token when one was used, else the user. Reads the annotations when present, else the
    relations (one query each unless they were selected)."""
    token_id = getattr(obj, f"{side}_by_token_id")
    user_id = getattr(obj, f"{side}_by_id")
    if hasattr(obj, f"_{side}_by_token_name"):
        if token_id is not None:
            return {"kind": "token", "id": token_id, "name": getattr(obj, f"_{side}_by_token_name")}
        if user_id is not None:
            return {"kind": "user", "id": user_id, "name": getattr(obj, f"_{side}_by_user_name")}
        return None
    if token_id is not None:
        token = getattr(obj, f"{side}_by_token")
        return {"kind": "token", "id": token.pk, "name": token.name}
    if user_id is not None:
        return {"kind": "user", "id": user_id, "name": getattr(obj, f"{side}_by").get_username()}
    return None

"""Bearer-token and session authentication that resolve the caller's organization."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, cast

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from organizations import token_cache
from organizations.actors import Actor
from organizations.models import ALL_SCOPES, ApiToken, Membership, Scope, hash_token

if TYPE_CHECKING:
    from django.contrib.auth.models import User

LAST_USED_RESOLUTION = timedelta(seconds=60)


class TokenUser:
    """Stands in for request.user when a token acts for no user."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token: ApiToken) -> None:
        self.token = token

    def get_username(self) -> str:
        return f"token:{self.token.name}"

    def __str__(self) -> str:
        return self.get_username()


class NotAMember(exceptions.AuthenticationFailed):
    """The token's user is not a member of the token's organization (any more): the token does not
    authenticate (401). ``of_none``: the user is a member of no organization at all, which an adapter
    whose seed answers that case with 403 may say so (Rivergen)."""

    def __init__(self, *, of_none: bool) -> None:
        super().__init__("The token's user is not a member of its organization.")
        self.of_none = of_none


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <token>'.")
        try:
            raw = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        token_hash = hash_token(raw)
        generation = token_cache.current_generation()  # before the database is read (token_cache)
        entry = token_cache.lookup(token_hash, generation)
        if entry is not None:
            token, role = self._from_cache(entry)
        else:
            token, role = self._from_database(token_hash)
            token_cache.store(token_hash, generation, token, role)
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
            token_cache.note_last_use(token_hash, now)
        request._actor = Actor(  # type: ignore[attr-defined]
            organization=token.organization,
            user=token.user,
            token=token,
            role=role,
            scopes=frozenset(s for s in token.scopes if s in ALL_SCOPES),
        )
        return (token.user or TokenUser(token), token)

    @staticmethod
    def _from_cache(entry: token_cache.Entry) -> tuple[ApiToken, str | None]:
        """A token resolved within TOKEN_CACHE_SECONDS and unchanged since: no statement. Expiry is
        checked here, on every request."""
        if token_cache.is_expired(entry):
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        token, _, _ = token_cache.build(entry)
        return token, entry.role

    @staticmethod
    def _from_database(token_hash: str) -> tuple[ApiToken, str | None]:
        try:  # by the unique hash alone; expiry and revocation are checked on the row
            token = ApiToken.objects.select_related("organization").get(token_hash=token_hash)
        except ApiToken.DoesNotExist:
            token = None
        if token is None or not token.is_active:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        role = None
        if token.user_id is not None:  # a user's token: their membership and the user, in one query
            membership = (
                Membership.objects.select_related("user")
                .filter(organization_id=token.organization_id, user_id=token.user_id)
                .first()
            )
            if membership is None:
                raise NotAMember(of_none=not Membership.objects.filter(user_id=token.user_id).exists())
            if not membership.user.is_active:
                raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
            token.user = membership.user
            role = membership.role
        return token, role

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def actor_for_session(request: Request) -> Actor | None:
    """A logged-in user acts in one organization: X-Organization (slug) or their first membership."""
    if not getattr(request.user, "is_authenticated", False) or getattr(request.user, "pk", None) is None:
        return None
    user = cast("User", request.user)  # authenticated, so not AnonymousUser
    memberships = Membership.objects.select_related("organization").filter(user=user).order_by("id")
    slug = request.headers.get("X-Organization")
    if slug:
        memberships = memberships.filter(organization__slug=slug)
    membership = memberships.first()
    if membership is None:
        return None
    return Actor(
        organization=membership.organization,
        user=user,
        role=membership.role,
        scopes=frozenset(ALL_SCOPES if membership.role in ("owner", "admin") else [
            Scope.DATASOURCE_READ, Scope.DATASOURCE_WRITE, Scope.WORKFLOW_READ, Scope.WORKFLOW_WRITE
        ]),
    )


def get_actor(request: Request) -> Actor | None:
    actor = getattr(request, "_actor", None)
    if actor is None:
        actor = actor_for_session(request)
        request._actor = actor  # type: ignore[attr-defined]
    return actor


def require_actor(request: Request) -> Actor:
    """The caller's actor where one is required (every API view, through ``ScopePermission``): a
    user who is a member of no organization is a 403, anyone else who presents nothing a 401."""
    actor = get_actor(request)
    if actor is None:
        if request.user is not None and getattr(request.user, "is_authenticated", False):
            raise exceptions.PermissionDenied("You are not a member of any organization.")
        raise exceptions.NotAuthenticated("Authentication credentials were not provided.")
    return actor


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "BearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An organization API token: `Bearer dsp_...`."}

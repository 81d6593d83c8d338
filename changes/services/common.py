"""What plans and change sets share: settings, public ids, sealed bodies, authorship, the planned
diff, who may apply, and the stored form of a test result."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from core.errors import ApiError, ErrorCode, Forbidden
from datasources import crypto
from datasources.connectors import StageResult, TestResult
from datasources.models import DataSource
from datasources.services.plan import build_plan, validate_body
from organizations.actors import Actor

#: Defaults of the settings (config/settings.py may override each).
DEFAULTS = {
    "CHANGE_PLAN_TTL_SECONDS": 3600,
    "CHANGE_SET_TTL_SECONDS": 3600,
    "CHANGE_SET_MAX_ITEMS": 200,
    "CHANGE_SET_CONCURRENCY": 8,
    "CHANGE_SET_ITEMS_PER_TEST_COUNT": 25,
}
#: A sealed body once it can no longer be applied (applied, cancelled, expired, its source deleted):
#: the reviewed summary (``changes``) stays, the secrets it carried do not.
FORGOTTEN = {"key_id": "", "ciphertext": ""}
#: Paths that make a change a connection change (the four-eyes rule).
CONNECTION_PREFIXES = ("connection", "credentials", "connection_string")


class Expired(ApiError):
    code = ErrorCode.PLAN_EXPIRED
    status_code = 410


def setting(name: str) -> int:
    return int(getattr(settings, name, DEFAULTS[name]))


def new_public_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(15)}"


def expiry(name: str) -> datetime:
    return timezone.now() + timedelta(seconds=setting(name))


def _field(owner_id: str) -> str:
    return f"change:{owner_id}"


def seal(data_source_id: int, owner_id: str, body: dict[str, Any]) -> tuple[str, str]:
    """(key_id, ciphertext) of a PATCH body, bound to the data source and the plan or set."""
    return crypto.encrypt(json.dumps(body, sort_keys=True, default=str), row_id=data_source_id,
                          field=_field(owner_id))


def unseal(data_source_id: int, owner_id: str, key_id: str, ciphertext: str) -> dict[str, Any]:
    return json.loads(crypto.decrypt(key_id, ciphertext, row_id=data_source_id, field=_field(owner_id)))


def author_fields(actor: Actor) -> dict[str, Any]:
    return {"created_by": actor.label[:255],
            "created_by_user": actor.user if getattr(actor.user, "pk", None) else None,
            "created_by_token": actor.token}


def is_author(obj: Any, actor: Actor) -> bool:
    """The same person: the same user (whichever token), or the same token acting for no user."""
    user_id = getattr(actor.user, "pk", None)
    if user_id is not None and obj.created_by_user_id is not None:
        return bool(obj.created_by_user_id == user_id)
    return actor.token is not None and obj.created_by_token_id == getattr(actor.token, "pk", None)


def touches_connection(changed: list[str]) -> bool:
    return any(path.split(".", 1)[0] in CONNECTION_PREFIXES for path in changed)


def check_may_apply(obj: Any, actor: Actor, connection: bool) -> None:
    """The author, or an owner/admin; with the organization's ``changes_need_second_person`` a
    connection change needs an owner/admin user other than its author. 403 FORBIDDEN otherwise."""
    author = is_author(obj, actor)
    if connection and actor.organization.changes_need_second_person and not actor.is_system:
        if getattr(actor.user, "pk", None) is None:  # two such tokens could be one person's
            raise Forbidden("This organization needs a second person to apply connection changes: a user (signed "
                            "in, or a token acting for a user); a token acting for no user is nobody in particular.")
        if author:
            raise Forbidden("This organization needs a second person to apply connection changes: an owner or "
                            "admin other than the author.")
        if not actor.is_org_admin:
            raise Forbidden("Applying another member's connection change needs the owner or admin role.")
        return
    if not author and not actor.is_org_admin:
        raise Forbidden("Only the author or an owner/admin may apply this.")


def planned_diff(actor: Actor, ds: DataSource, body: dict[str, Any]) -> dict[str, Any]:
    """The PATCH's diff against ``ds`` as the update service computes it (secrets as changed/cleared)."""
    plan = build_plan(ds, validate_body(body, "patch"), mode="patch", actor=actor)
    return json.loads(json.dumps(plan.changes, default=str))


def test_from_dict(data: dict[str, Any] | None) -> TestResult | None:
    """A stored (``as_dict``) test result, as the update service takes it for ``pretested``."""
    if not data:
        return None
    return TestResult(ok=data["ok"], stage=data.get("stage"), message=data.get("message", ""),
                      stages=[StageResult(**stage) for stage in data.get("stages", [])],
                      duration_ms=data.get("duration_ms", 0.0), server_version=data.get("server_version"),
                      ssh_host_key_fingerprint=data.get("ssh_host_key_fingerprint"))


def error_of(exc: ApiError) -> dict[str, Any]:
    """An item's refusal as stored and shown: code, message, per-field errors (never a secret)."""
    out: dict[str, Any] = {"code": exc.code, "message": exc.message, "errors": exc.errors}
    for key in ("stage", "test"):
        if key in exc.extra:
            out[key] = exc.extra[key]
    return out



def _reseal(ring: crypto.Keyring, row: Any, source_id: int, owner_id: str, counts: dict[str, int]) -> None:
    if row.key_id == ring.primary_id:
        counts["already_current"] += 1
        return
    try:
        plain = crypto.decrypt(row.key_id, row.ciphertext, row_id=source_id, field=_field(owner_id), keyring=ring)
    except crypto.DecryptionError:
        counts["failed"] += 1
        return
    key_id, ciphertext = crypto.encrypt(plain, row_id=source_id, field=_field(owner_id), keyring=ring)
    type(row).objects.filter(pk=row.pk).update(key_id=key_id, ciphertext=ciphertext)
    counts["re_encrypted"] += 1


def rotate_all() -> dict[str, int]:
    """Re-encrypt the sealed bodies of plans and change-set items with the newest key (registered with
    ``rotate_encryption_key``); call inside a transaction."""
    from changes.models import ChangePlan, ChangeSetItem

    ring = crypto.load_keyring()
    counts = {"re_encrypted": 0, "already_current": 0, "failed": 0}
    for plan in ChangePlan.objects.select_for_update().exclude(**FORGOTTEN).only(
            "pk", "data_source_id", "public_id", "key_id", "ciphertext").iterator():
        _reseal(ring, plan, plan.data_source_id, plan.public_id, counts)
    for item in ChangeSetItem.objects.select_for_update(of=("self",)).exclude(**FORGOTTEN).select_related(
            "change_set").only(
            "pk", "source_pk", "key_id", "ciphertext", "change_set__public_id").iterator():
        _reseal(ring, item, item.source_pk, item.change_set.public_id, counts)
    return counts

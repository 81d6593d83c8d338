"""A destination move and its new credentials in two requests, in either order (the Rivergen
adapter's "Update Data Source" and "Update Credentials"), for a writer the destination rule binds.

The rule (``destination``) stays whole: a stored secret never travels a moved hop unless resent.

- **Move first.** A change that moves a hop without the secrets that travel it is applied as a move
  that *withholds* them: those stored secrets are cleared in the same write (so nothing can ever
  send them to the new destination), nothing is tested, the source is ``credentials_required``
  (tests and refreshes refused), and the ``update`` audit event names what was withheld. The
  credentials update that follows is tested at the new destination and re-activates the source.
- **Credentials first.** A credentials update is tested at the current destination and applies if
  it passes. If the server answers but refuses them (stage ``auth`` or ``database``) they are kept
  as *pending* (``pending``) for the same writer's next move within the hour: that move is tested
  at its new destination with them, and applies together with them, or fails and changes nothing.

Owners and admins are exempt from the rule: their writes are plain updates, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from core.errors import ApiError, InvalidRequest
from datasources import catalogue, connection_strings
from datasources.models import DataSource, DataSourceStatus
from datasources.services import pending as pending_store
from datasources.services.connection import CredentialTestFailed
from datasources.services.datasources import WriteOptions, WriteResult, get_data_source, update_data_source
from datasources.services.destination import CredentialsRequired, moved_hops
from datasources.services.merge import merge_patch
from datasources.services.pending import Pending
from datasources.services.plan import planned_connection
from organizations.actors import Actor

Kind = Literal["updated", "withheld", "with_pending", "pending_kept"]


@dataclass
class Outcome:
    result: WriteResult
    kind: Kind = "updated"
    pending: Pending | None = None  # with_pending: the credentials used; pending_kept: those kept
    failure: ApiError | None = None  # pending_kept: the failed test at the current destination
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def data_source(self) -> DataSource:
        return self.result.data_source


def _body_sends_secrets(ds: DataSource, data: dict[str, Any]) -> bool:
    if any(value is not None for value in (data.get("credentials") or {}).values()):
        return True
    if data.get("connection_string") is None:
        return False
    try:
        _, secrets = connection_strings.parse(ds.type, data["connection_string"])
    except catalogue.ConfigInvalid:
        return False  # the write answers the 400
    return bool(secrets)


def _moves_a_hop(ds: DataSource, data: dict[str, Any]) -> bool:
    after = planned_connection(ds, data)
    return after is not None and bool(moved_hops(catalogue.get_type(ds.type), ds.connection, after).paths)


def _with_pending(data: dict[str, Any], kept: Pending) -> dict[str, Any]:
    """The move's body with the pending credentials (what the body itself sets wins)."""
    merged = dict(data)
    merged["credentials"] = {**kept.secrets, **(data.get("credentials") or {})}
    kept_connection = kept.data.get("connection") or {}
    if kept_connection:
        merged["connection"] = merge_patch(kept_connection, data.get("connection") or {})
    return merged


def _failed_with_pending(exc: CredentialTestFailed, kept: Pending) -> CredentialTestFailed:
    stage = exc.extra.get("stage")
    error = CredentialTestFailed(
        f"{exc.message.removesuffix(' Nothing was changed.')} The move was tested with the credentials you "
        f"sent at {kept.created_at:%Y-%m-%d %H:%M:%S %Z} ({', '.join(kept.names)}), kept for your next move "
        f"until {kept.expires_at:%H:%M:%S %Z}. Nothing was changed. Send working credentials with Update "
        "Credentials (they replace these), then repeat the move.",
        extra={**exc.extra, "stage": stage},
    )
    error.test_result = exc.test_result
    return error


def update_connection(*, actor: Actor, data_source_id: Any, data: dict[str, Any],
                      if_match: str | None = None) -> Outcome:
    """PATCH a data source: a move without its secrets withholds them; the writer's pending
    credentials, if any, are tried at the new destination first."""
    if actor.is_org_admin:  # exempt from the rule: a plain update, as before
        return Outcome(update_data_source(actor=actor, data_source_id=data_source_id, data=data, mode="patch",
                                          options=WriteOptions(if_match=if_match)))
    ds = get_data_source(actor, data_source_id)
    kept = None
    if not _body_sends_secrets(ds, data) and _moves_a_hop(ds, data):
        kept = pending_store.for_actor(actor, ds)
    if kept is not None:
        try:
            result = update_data_source(actor=actor, data_source_id=ds.pk, data=_with_pending(data, kept),
                                        mode="patch", options=WriteOptions(if_match=if_match))
        except (CredentialsRequired, InvalidRequest):
            pass  # they do not cover every secret the move needs: the move withholds them all (below; a
            # body that is invalid in itself answers its 400 there)
        except CredentialTestFailed as exc:
            raise _failed_with_pending(exc, kept) from exc
        else:
            return Outcome(result, "with_pending", pending=kept)
    result = update_data_source(actor=actor, data_source_id=ds.pk, data=data, mode="patch",
                                options=WriteOptions(if_match=if_match, withhold_moved_secrets=True))
    return Outcome(result, "withheld" if result.awaits_credentials else "updated")


def update_credentials(*, actor: Actor, data_source_id: Any, data: dict[str, Any],
                       if_match: str | None = None) -> Outcome:
    """PATCH a data source's credentials, tested at its current destination; refused there at stage
    auth or database, they wait (pending) for the same writer's next move."""
    ds = get_data_source(actor, data_source_id)
    try:
        result = update_data_source(actor=actor, data_source_id=ds.pk, data=data, mode="patch",
                                    options=WriteOptions(if_match=if_match))
    except CredentialTestFailed as exc:
        stage = exc.extra.get("stage")
        if (actor.is_org_admin or stage not in pending_store.KEEP_STAGES or not pending_store.sends_a_secret(data)
                or ds.status == DataSourceStatus.CREDENTIALS_REQUIRED):  # then they were meant for here
            raise
        kept = pending_store.keep(actor=actor, data_source=ds, data=data, stage=str(stage))
        return Outcome(WriteResult(get_data_source(actor, ds.pk)), "pending_kept", pending=kept, failure=exc)
    if pending_store.sends_a_secret(data):  # a successful credentials update (even an unchanged one) voids them
        pending_store.clear(result.data_source)
    return Outcome(result)

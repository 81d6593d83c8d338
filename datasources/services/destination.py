"""Which stored secrets a change must carry itself: a secret never follows a new hop on a writer's word.

A change "moves" a hop when it changes a field the catalogue marks ``transit=ENDPOINT`` (where
the secrets go: host, port, URL, account, region, CA pin, any SSH tunnel setting) or lowers one
marked ``transit=PROTECTION`` (how they travel: SSL mode, a TLS switch). The secrets that travel
a moved hop must be resent in the same request (or cleared), unless an organization owner or
admin asks. A secret is resent when its name is in the body: an explicit empty password (``""``,
where the catalogue allows it) is resent like any value, since it replaces the stored one and so
nothing stored travels:

- database hop moved: every stored database secret (password, client key, token, ...);
- SSH hop moved: the SSH secrets too when the tunnel is on afterwards, and the database secrets
  in any case, since they now travel through the new hop (or, with the tunnel turned off, without it).

A writer may instead *withhold* them (``build_plan(..., withhold=True)``, the Rivergen adapter's
two-step move): the secrets that would travel a moved hop are cleared in the same change, so they
can never reach the new destination, and the source waits in ``credentials_required`` for its
credentials to be updated (and tested there).

Pure: reads the source type, the connections before and after, and secret names; raises a 400.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import ApiError, ErrorCode
from datasources import catalogue
from organizations.actors import Actor


class CredentialsRequired(ApiError):
    code = ErrorCode.CREDENTIALS_REQUIRED
    status_code = 400
    missing: list[str] = []  # the secrets to resend (names)
    moved: list[str] = []  # the connection paths that moved a hop


@dataclass(frozen=True)
class MovedHops:
    database: tuple[str, ...] = ()  # connection paths that moved or weakened the database hop
    ssh: tuple[str, ...] = ()  # connection paths that moved the SSH hop
    tunnel_after: bool = False  # the SSH tunnel is on after the change

    @property
    def paths(self) -> tuple[str, ...]:
        return self.database + self.ssh


def _value(connection: Mapping[str, Any], path: str, f: catalogue.Field) -> Any:
    node: Any = connection
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return f.default if node is None else node


def _rank(f: catalogue.Field, value: Any) -> int:
    """Position in ``strength`` (weakest first); an unknown value ranks weakest."""
    for index, candidate in enumerate(f.strength):
        if value == candidate and isinstance(value, bool) == isinstance(candidate, bool):
            return index
    return -1


def _moved(f: catalogue.Field, before: Any, after: Any) -> bool:
    if f.transit == catalogue.PROTECTION:
        return _rank(f, after) < _rank(f, before)
    return before != after or isinstance(before, bool) != isinstance(after, bool)


def _tunnel_on(connection: Mapping[str, Any]) -> bool:
    tunnel = connection.get(catalogue.TUNNEL_FIELD)
    return isinstance(tunnel, dict) and tunnel.get("enabled") is True


def moved_hops(source_type: catalogue.SourceType, before: Mapping[str, Any], after: Mapping[str, Any]) -> MovedHops:
    """The hops that ``before`` -> ``after`` moves; tunnel settings count only while a tunnel is on."""
    tunnel_before, tunnel_after = _tunnel_on(before), _tunnel_on(after)
    database: list[str] = []
    ssh: list[str] = []
    for path, f in sorted(source_type.transit_fields().items()):
        if not _moved(f, _value(before, path, f), _value(after, path, f)):
            continue
        if path.startswith(catalogue.TUNNEL_FIELD + "."):
            if tunnel_before or tunnel_after:
                ssh.append(path)
        else:
            database.append(path)
    return MovedHops(tuple(database), tuple(ssh), tunnel_after)


def secrets_to_resend(source_type: catalogue.SourceType, hops: MovedHops, stored: Iterable[str]) -> list[str]:
    """The stored secrets that travel a moved hop."""
    need: list[str] = []
    for name in sorted(stored):
        spec = source_type.secret(name)
        hop = spec.hop if spec else catalogue.DATABASE_HOP
        if hop == catalogue.DATABASE_HOP and hops.paths:
            need.append(name)
        elif hop == catalogue.SSH_HOP and hops.ssh and hops.tunnel_after:
            need.append(name)
    return need


def missing_secrets(
    actor: Actor,
    source_type: catalogue.SourceType,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    stored: Iterable[str],
    sent: Mapping[str, Any],
) -> tuple[MovedHops, list[str]]:
    """The moved hops, and the stored secrets that would travel them without being resent (none for an
    organization owner or admin, who is exempt)."""
    hops = moved_hops(source_type, before, after)
    if actor.is_org_admin:
        return hops, []
    return hops, [name for name in secrets_to_resend(source_type, hops, stored) if name not in sent]


def credentials_required(hops: MovedHops, missing: list[str]) -> CredentialsRequired:
    moved = ", ".join(f"connection.{path}" for path in hops.paths)
    error = CredentialsRequired(
        f"This change moves where or how stored credentials travel ({moved}): resend them "
        f"({', '.join(missing)}) in the same request, or ask an organization owner or admin.",
        errors={f"credentials.{name}": ["Resend this secret with the changed connection."] for name in missing},
    )
    error.missing = list(missing)
    error.moved = [f"connection.{path}" for path in hops.paths]
    return error


def check_destination(
    actor: Actor,
    source_type: catalogue.SourceType,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    stored: Iterable[str],
    sent: Mapping[str, Any],
) -> None:
    """400 CREDENTIALS_REQUIRED when the change would send stored secrets over a moved hop."""
    hops, missing = missing_secrets(actor, source_type, before, after, stored, sent)
    if missing:
        raise credentials_required(hops, missing)

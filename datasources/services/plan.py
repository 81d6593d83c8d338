"""Compute and validate the full new state of a data source from a create/PATCH/PUT body.

Pure with respect to the data source row: nothing is written here. Raises 400-class errors.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from core.errors import InvalidRequest
from datasources import catalogue, connection_strings, fields
from datasources.models import DataSource, DataSourceStatus
from datasources.services import tenancy
from datasources.services.credentials import load_secrets
from datasources.services.destination import MovedHops, credentials_required, missing_secrets
from datasources.services.merge import diff_paths, merge_patch
from organizations.actors import Actor
from organizations.models import Workspace

Mode = Literal["create", "patch", "put"]

#: Plain writable fields and their defaults (``null`` on PATCH, or omission on PUT, resets to these):
#: read from their one definition, ``datasources.fields``.
OPERATIONAL_DEFAULTS: dict[str, Any] = fields.OPERATIONAL_DEFAULTS
PLAIN_DEFAULTS: dict[str, Any] = fields.PLAIN_DEFAULTS
UNCHANGED = object()
#: Body keys that can change where the stored secrets go (or the secrets themselves).
CONNECTION_KEYS = frozenset({"connection", "credentials", "connection_string"})


@dataclass
class Plan:
    values: dict[str, Any]  # model field -> new value (incl. connection, workspace_id)
    secrets: dict[str, str | None]  # effective secret writes (None = clear)
    secrets_after: dict[str, str]  # the whole secret set after the change, decrypted
    changes: dict[str, Any]  # audit-ready diff; secrets reduced to "changed"/"cleared"
    connection_changed: bool
    tenancy: Any = UNCHANGED  # dict, None (delete) or UNCHANGED
    secrets_loaded: bool = True  # False: the body touched no connection field, secrets_after is empty
    #: ``withhold``: the change is applied untested and leaves the source ``credentials_required``
    awaits_credentials: bool = False
    withheld: tuple[str, ...] = ()  # stored secrets cleared because the change moves their hop (names)
    moved: tuple[str, ...] = ()  # the connection paths that moved a hop
    needs: tuple[str, ...] = ()  # what the credentials update must then provide ("a or b" for a choice)
    #: tenancy settings sent with a connection change: checked against that change's test, not the
    #: cache of the old connection (``settle_tenancy``)
    tenancy_unchecked: bool = False


def validate_body(data: Any, mode: Mode) -> dict[str, Any]:
    """The field rules (``datasources.fields``) on a raw body, as the API applies them: its cleaned
    values, or ``InvalidRequest`` ("The request is invalid.") naming each refused field. Every write
    service calls it first, so a management command or a shell call gets the API's 400s."""
    return fields.validate(data, partial=mode == "patch")


def _workspace_id(actor: Actor, value: Any) -> int | None:
    if value is None:
        return None
    if not Workspace.objects.filter(pk=value, organization=actor.organization).exists():
        raise InvalidRequest("Unknown workspace.", errors={"workspace": ["No such workspace in your organization."]})
    return int(value)


def _plain_values(ds: DataSource, data: dict[str, Any], mode: Mode, actor: Actor, errors: dict) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if mode == "patch":
        if "name" in data:
            values["name"] = data["name"]
        for key, default in PLAIN_DEFAULTS.items():
            if key in data:
                value = data[key]
                if key == "metadata" and value is not None:
                    value = merge_patch(ds.metadata, value)
                values[key] = copy.deepcopy(default) if value is None else value
        if "workspace" in data:
            values["workspace_id"] = _workspace_id(actor, data["workspace"])
        return values
    if not data.get("name"):
        errors["name"] = ["This field is required."]
    values["name"] = data.get("name")
    for key, default in PLAIN_DEFAULTS.items():
        value = data.get(key)
        values[key] = copy.deepcopy(default) if value is None else value
    values["workspace_id"] = _workspace_id(actor, data.get("workspace"))
    return values


def _raw_connection(ds: DataSource, data: dict[str, Any], mode: Mode, errors: dict) -> tuple[dict, dict]:
    """The merged (not yet validated) connection, and secrets parsed out of a connection string."""
    from_string: dict[str, Any] = {}
    string_secrets: dict[str, str] = {}
    if data.get("connection_string") is not None:
        try:
            from_string, string_secrets = connection_strings.parse(ds.type, data["connection_string"])
        except catalogue.ConfigInvalid as exc:
            errors.update(exc.errors)
        if isinstance(data.get("connection"), dict):  # what the string overrides is still checked as sent
            errors.update(catalogue.value_errors(catalogue.get_type(ds.type), data["connection"]))
    if mode == "patch":
        raw = merge_patch(ds.connection, data["connection"]) if "connection" in data else ds.connection
    else:
        if data.get("connection") is None and not from_string and "connection_string" not in errors:
            errors["connection"] = ["This field is required."]
        raw = data.get("connection") or {}
    return merge_patch(raw, from_string), string_secrets


REQUIRED = "This field is required."


def _beside_string_errors(found: dict[str, list[str]], errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """The connection's errors, less the fields it misses when a refused connection string was to
    give them (they are noise beside the string's own error)."""
    if "connection_string" not in errors:
        return found
    return {path: messages for path, messages in found.items() if set(messages) != {REQUIRED}}


def planned_connection(ds: DataSource, data: dict[str, Any]) -> dict[str, Any] | None:
    """The connection a PATCH body would leave (merged and normalized), or None when it is invalid
    (the write itself then answers the 400)."""
    errors: dict[str, list[str]] = {}
    raw, _ = _raw_connection(ds, data, "patch", errors)
    if errors:
        return None
    try:
        return catalogue.normalize_connection(catalogue.get_type(ds.type), raw)
    except catalogue.ConfigInvalid:
        return None


def build_plan(
    ds: DataSource, data: dict[str, Any], *, mode: Mode, actor: Actor, tenancy_replace: bool = False,
    withhold: bool = False, restoring: bool = False,
) -> Plan:
    """Validate ``data`` against the type and compute the full new state.

    ``restoring``: the secrets in ``data`` are a revision's (a restore), not a writer's; those equal to
    the stored ones are no change.

    ``withhold`` (a writer's two-step move, ``moves``): a change that moves a hop without resending
    the stored secrets that travel it clears those secrets instead of answering 400
    CREDENTIALS_REQUIRED (``Plan.withheld``); such a move, or one whose new configuration lacks a
    secret it needs (a tunnel turned on without an SSH secret), or a connection change without a
    secret to a source already ``credentials_required``, is applied untested and leaves the source
    ``credentials_required`` (``Plan.awaits_credentials``, ``Plan.needs``)."""
    source_type = catalogue.get_type(ds.type)
    errors: dict[str, list[str]] = {}
    if mode != "create" and "type" in data and data["type"] != ds.type:
        errors["type"] = ["The type of a data source cannot be changed."]
    values = _plain_values(ds, data, mode, actor, errors)
    # A PATCH that leaves connection and credentials alone needs no secret: skip their decryption. When
    # the stored connection is valid and already normalized (as every write leaves it) it is the new
    # one: no hop moves, no secret is missing (``_stored_normal_form``).
    touches_connection = mode != "patch" or not CONNECTION_KEYS.isdisjoint(data)
    stored = None if touches_connection or not ds.pk else _stored_normal_form(ds)
    string_secrets: dict[str, str] = {}
    if stored is not None:
        connection = stored
    else:
        raw_connection, string_secrets = _raw_connection(ds, data, mode, errors)
        connection = ds.connection
        try:
            connection = catalogue.normalize_connection(source_type, raw_connection)
        except catalogue.ConfigInvalid as exc:
            errors.update(_beside_string_errors(exc.errors, errors))
    values["connection"] = connection

    sent: dict[str, str | None] = {**string_secrets, **(data.get("credentials") or {})}
    try:
        catalogue.validate_secret_values(source_type, sent)
    except catalogue.ConfigInvalid as exc:
        errors.update(exc.errors)
    current = load_secrets(ds) if ds.pk and touches_connection else {}
    hops: MovedHops | None = None
    missing: list[str] = []
    if mode != "create" and not errors and stored is None:
        hops, missing = missing_secrets(actor, source_type, ds.connection, connection, current, sent)
    sends_a_secret = any(value is not None for value in sent.values())
    withheld = missing if withhold else []
    sent.update({name: None for name in withheld})  # cleared: they never reach the new destination
    after = {k: v for k, v in {**current, **sent}.items() if v is not None}
    unmet: dict[str, list[str]] = {}
    if not errors and touches_connection:
        try:
            catalogue.check_required_secrets(source_type, connection, set(after))
        except catalogue.ConfigInvalid as exc:
            unmet = exc.errors
    awaits = withhold and hops is not None and (
        bool(hops.paths and (withheld or unmet))
        or (ds.status == DataSourceStatus.CREDENTIALS_REQUIRED and not sends_a_secret and connection != ds.connection)
    )
    if not awaits:  # awaiting its credentials, the source may lack what the credentials update provides
        errors.update(unmet)
    if errors:
        raise InvalidRequest("The data source is invalid for its type.", errors=errors)

    changes: dict[str, Any] = {}
    for key, new in values.items():
        old = getattr(ds, key) if ds.pk else None
        if old == new and ds.pk:
            continue
        if key in ("connection", "metadata"):
            changes.update(diff_paths(old or {}, new, key))
        elif old != new:
            changes[key.removesuffix("_id")] = {"old": old, "new": new}
    # A secret sent is a secret written, even one equal to the stored value: comparing would tell a
    # writer whether a guess is the stored password (changed_fields, the audit, the test, the version).
    # A restore's secrets are the server's own (a revision's), no guess: those equal to now are no change.
    effective = {k: v for k, v in sent.items()
                 if (v is not None or k in current) and not (restoring and current.get(k) == v)}
    for name, value in effective.items():
        changes[f"credentials.{name}"] = "cleared" if value is None else "changed"
    if missing and not withhold and hops is not None:
        raise credentials_required(hops, missing)

    plan = Plan(values, effective, after, changes, connection_changed=False, secrets_loaded=touches_connection)
    plan.connection_changed = any(k.startswith("connection.") for k in changes) or bool(effective)
    if awaits and hops is not None:
        plan.awaits_credentials = True
        plan.withheld = tuple(withheld)
        plan.moved = tuple(f"connection.{path}" for path in hops.paths)
        plan.needs = _needs(source_type, withheld, unmet)
    if "tenancy_settings" in data:
        _plan_tenancy(ds, data["tenancy_settings"], plan, partial=mode == "patch" and not tenancy_replace)
    return plan


def _stored_normal_form(ds: DataSource) -> dict[str, Any] | None:
    """A fresh copy of ``normalize_connection`` of the stored connection (its key order too) when that
    equals the stored one, else None (invalid, or not normalized yet: the full plan then says so).
    Memoized on the connection's JSON: normalizing and looking for moved hops was most of a plain
    PATCH's planning."""
    try:
        text = json.dumps(ds.connection)
    except (TypeError, ValueError):
        return None
    normal = _normal_json(ds.type, text)
    return None if normal is None else json.loads(normal)


@lru_cache(maxsize=1024)
def _normal_json(type_key: str, connection_json: str) -> str | None:
    stored = json.loads(connection_json)
    try:
        normal = catalogue.normalize_connection(catalogue.get_type(type_key), stored)
    except (catalogue.ConfigInvalid, KeyError):
        return None
    return json.dumps(normal) if normal == stored else None


def _needs(source_type: catalogue.SourceType, withheld: list[str], unmet: dict[str, list[str]]) -> tuple[str, ...]:
    """The secrets a credentials update must provide: the withheld ones and any other the new configuration
    lacks; a choice (``OneOfSecrets``) reads "a or b"."""
    names = set(withheld) | {path.removeprefix("credentials.") for path in unmet}
    needs = sorted(names)
    for rule in source_type.secret_rules:
        choice = [name for name in rule.names if name in names]
        if len(choice) > 1 and not any(name in withheld for name in choice):
            needs = [n for n in needs if n not in choice] + [" or ".join(choice)]
    return tuple(needs)


def _plan_tenancy(ds: DataSource, raw: dict[str, Any] | None, plan: Plan, *, partial: bool) -> None:
    old = tenancy.current(ds) if ds.pk else None
    if raw is not None:
        tenancy.refuse_table_fields(tenancy.merge(old, raw, partial=partial)["level"], raw)
    defer = plan.connection_changed and raw is not None  # a create too: it has no cache, its test has tables
    new = None if raw is None else tenancy.validate(ds, tenancy.merge(old, raw, partial=partial),
                                                      against_schema=not defer)
    plan.tenancy_unchecked = defer and new is not None and new.get("level") == "TABLE"
    _set_tenancy(ds, plan, old, new)


def _set_tenancy(ds: DataSource, plan: Plan, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
    plan.changes = {k: v for k, v in plan.changes.items() if not k.startswith("tenancy_settings")}
    plan.tenancy = new if new != old else UNCHANGED
    if new != old:
        plan.changes.update(diff_paths(old or {}, new or {}, "tenancy_settings"))


def settle_tenancy(ds: DataSource, plan: Plan, tables: list[Any] | None) -> None:
    """Check tenancy settings sent with a connection change (``Plan.tenancy_unchecked``) against the
    tables that change's test read (the new target's); without them (no test, no introspection),
    against the cache as any other change. 400 TENANCY_SETTINGS_INVALID when they do not fit."""
    if not plan.tenancy_unchecked or plan.tenancy is UNCHANGED:
        return
    settled = tenancy.validate(ds, plan.tenancy) if tables is None else tenancy.check_tables(plan.tenancy, tables)
    plan.tenancy_unchecked = False
    _set_tenancy(ds, plan, tenancy.current(ds), settled)

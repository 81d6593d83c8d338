"""Create, update (PATCH/PUT) and delete data sources.

update: validate and merge -> test the connection (no lock, no transaction) -> lock the row,
re-check the version, apply, audit -> refresh the schema after commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import write_batch as batch
from core.errors import ApiError, Conflict, Forbidden, InvalidRequest, PreconditionFailed
from core.references import escape_name, name_key, new_reference_id
from core.write_batch import write_batch
from datasources import catalogue
from datasources.connectors import TestResult
from datasources.models import DataSource, DataSourceStatus, RevisionAction
from datasources.selectors import data_source_for_actor
from datasources.services import audit, outbox, pending, refresh_queue, revisions, tenancy
from datasources.services.attempts import failed_test, record_attempt
from datasources.services.connection import RefreshOutcome, build_config, refresh_schema, require_passing, run_test
from datasources.services.credentials import write_secrets
from datasources.services.impact import impact_of
from datasources.services.plan import (
    CONNECTION_KEYS,
    OPERATIONAL_DEFAULTS,
    UNCHANGED,
    Plan,
    build_plan,
    settle_tenancy,
    validate_body,
)
from datasources.services.ratelimit import consume_test_budget
from organizations.actors import Actor
from organizations.locks import lock_organization

if TYPE_CHECKING:
    from django.contrib.auth.models import User

__all__ = ["OPERATIONAL_DEFAULTS", "WriteOptions", "WriteResult", "create_data_source", "update_data_source"]
logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


@dataclass
class WriteOptions:
    if_match: str | None = None
    dry_run: bool = False
    test_connection: bool = True
    tenancy_replace: bool = False  # PUT .../tenancy/: replace rather than merge
    #: a move without the stored secrets of its hop clears them (untested, `credentials_required`)
    #: instead of answering 400 CREDENTIALS_REQUIRED (``destination``); the Rivergen adapter's two-step move
    withhold_moved_secrets: bool = False
    #: a connection test of exactly this change that already passed (a change set's): used instead of a new one
    pretested: TestResult | None = None
    #: leave the schema refresh after a connection change to the caller (a change set, after its commit)
    defer_refresh: bool = False
    #: the revision this write restores: audited as ``restore``, recorded as a ``restore`` revision
    restores: int | None = None
    #: False: the caller already took the test budget for this test (a change set budgets its items as a whole)
    test_budget: bool = True
    #: re-cache the schema before answering even where refreshes go to a worker (SCHEMA_REFRESH_ASYNC):
    #: Databrain's PUT answers SCHEMA_CACHE_FAILED when the re-cache fails
    inline_refresh: bool = False
    #: the HTTP method the audit records when it is not ``mode``'s (an adapter's PUT that merges)
    method: str | None = None
    #: a plan's or change set's apply, whose caller checked the four-eyes rule (``changes``): a
    #: direct connection change is refused where the organization needs a second person
    reviewed: bool = False


@dataclass
class WriteResult:
    data_source: DataSource
    changed: list[str] = field(default_factory=list)
    test: TestResult | None = None
    schema: RefreshOutcome | None = None
    dry_run: bool = False
    awaits_credentials: bool = False  # applied untested, the source is now `credentials_required`
    withheld: list[str] = field(default_factory=list)  # secrets cleared by a withheld move (names)
    moved: list[str] = field(default_factory=list)  # the connection paths of that move
    needs: list[str] = field(default_factory=list)  # what its credentials update must provide
    impact: dict[str, Any] | None = None  # a dry run's impact report (``services.impact``)


class HasETag(Protocol):
    @property
    def etag(self) -> str: ...


def etag_matches(data_source: HasETag, if_match: str | None) -> bool:
    if if_match is None:
        return True
    candidates = [c.strip().removeprefix("W/") for c in if_match.split(",")]
    return "*" in candidates or data_source.etag in candidates


#: The caller's organization's data source, or 404: the selector, under the services' name for it.
get_data_source = data_source_for_actor


def _conflict(name: str | None = None, other: str | None = None) -> Conflict:
    """409: ``name`` is taken, by the data source named ``other`` when known (the same name as
    references compare names: escaped, in any case)."""
    if name is None or other is None or other.lower() == name.lower():
        return Conflict(
            "A data source with this name already exists in your organization" + (f": '{other}'." if other else "."),
            errors={"name": ["A data source with this name already exists."]},
        )
    escaped = escape_name(name).lower()
    return Conflict(
        f"Data source '{other}' already has this name as references read it ('{escaped}': case, spaces and "
        "punctuation aside): choose another name.",
        errors={"name": [f"References would not tell it from data source '{other}' ({escaped})."]},
    )


def _check_name_free(actor: Actor, name: str | None, exclude_pk: int | None) -> None:
    """409 unless ``name`` is free in the organization as references compare names (escaped, in any
    case: ``Demo SQLite`` and ``demo-sqlite`` are one name), so that ``org.name`` names one data
    source. Reads the organization's names (one statement); the unique constraint sees case only."""
    if name is None:
        return
    key = name_key(name)
    qs = DataSource.objects.filter(organization=actor.organization)
    names = (qs.exclude(pk=exclude_pk) if exclude_pk else qs).values_list("name", flat=True)
    other = next((n for n in names if name_key(n) == key), None)
    if other is not None:
        raise _conflict(name, other)


def _test(actor: Actor, ds: DataSource, plan: Plan, options: WriteOptions) -> TestResult | None:
    """Test the merged new configuration (never under a lock); 400 when it fails. A withheld move is
    never tested: its secrets are not sent anywhere, and the new destination gets none."""
    if not plan.connection_changed or not options.test_connection or plan.awaits_credentials:
        return None
    if options.pretested is not None:
        return options.pretested
    probe = DataSource(
        type=ds.type,
        # Its file folder (DATASOURCE_FILE_ROOT_PER_ORGANIZATION); the caller's, loaded, unless moved elsewhere.
        organization=actor.organization if ds.organization_id in (None, actor.organization.pk) else ds.organization,
        connection_timeout=plan.values.get("connection_timeout", ds.connection_timeout),
        query_timeout=plan.values.get("query_timeout", ds.query_timeout),
    )
    if options.test_budget:  # a change set budgets its items as a whole
        consume_test_budget(actor, timeout=probe.connection_timeout)
    config = build_config(probe, plan.values["connection"], plan.secrets_after)
    # The tables too when an inline refresh follows, or for a dry run's impact report (no second connection).
    result = run_test(config, introspect=(options.dry_run or options.inline_refresh or plan.tenancy_unchecked
                                          or not settings.SCHEMA_REFRESH_ASYNC))
    require_passing(result)
    _pin_ssh_host_key(plan, result)
    return result


def _pin_ssh_host_key(plan: Plan, result: TestResult) -> None:
    """Trust on first use: record the SSH host key seen by a passing test when none was pinned."""
    seen = getattr(result, "ssh_host_key_fingerprint", None)
    tunnel = plan.values["connection"].get("ssh_tunnel") or {}
    if seen and tunnel.get("enabled") and not tunnel.get("host_key_fingerprint"):
        tunnel["host_key_fingerprint"] = seen
        plan.changes["connection.ssh_tunnel.host_key_fingerprint"] = {"old": None, "new": seen}


def _apply(ds: DataSource, plan: Plan, actor: Actor, test: TestResult | None) -> set[str]:
    """Set the new state on ``ds``; returns the fields whose value it changed (an update writes
    those, besides the version and who and when: ``_ALWAYS``)."""
    before = {key: getattr(ds, key) for key in (*plan.values, "status", "last_test")}
    for key, value in plan.values.items():
        setattr(ds, key, value)
    if plan.awaits_credentials:
        ds.status = DataSourceStatus.CREDENTIALS_REQUIRED
    elif plan.connection_changed:
        waiting = ds.status == DataSourceStatus.CREDENTIALS_REQUIRED and not any(
            value is not None for value in plan.secrets.values())  # untested, and still no secret: it keeps waiting
        if test is not None:
            ds.status = DataSourceStatus.ACTIVE
        elif not waiting:
            ds.status = DataSourceStatus.PENDING
        if test is not None:
            ds.last_test = {**test.as_dict(), "tested_at": timezone.now().isoformat()}
    ds.updated_by = cast("User | None", actor.user if getattr(actor.user, "pk", None) else None)
    ds.updated_by_token = actor.token
    return {key for key, old in before.items() if getattr(ds, key) != old}


#: What every update of a row writes besides the columns whose value changed (``_apply``).
_ALWAYS = frozenset({"version", "updated_at", "updated_by", "updated_by_token"})
_COLUMNS = frozenset(name for f in DataSource._meta.concrete_fields if not f.primary_key
                     for name in (f.name, f.attname))


def _save(ds: DataSource, plan: Plan, changed: set[str]) -> None:
    """Inside the caller's transaction: a name clash raised here rolls the whole write back. An update
    writes the columns whose value changed only (the row is locked: the others hold what was read);
    inside a ``write_batch()`` its UPDATE is queued unless it renames (the clash must surface here)."""
    try:
        if ds._state.adding:
            ds.save()
        elif batch.active() and "name" not in plan.values:
            batch.queue_update(ds, sorted(_ALWAYS | (_COLUMNS & changed)))
        else:
            ds.save(update_fields=sorted(_ALWAYS | (_COLUMNS & changed)))
    except IntegrityError as exc:
        raise _conflict() from exc
    if plan.secrets:
        write_secrets(ds, plan.secrets)
        if not plan.awaits_credentials:
            pending.clear(ds)  # the credentials were updated: any that waited for a move are void
    if plan.tenancy is not UNCHANGED:
        tenancy.write(ds, plan.tenancy)


def _trigger(mode: str, options: WriteOptions) -> str:
    """What an attempt's audit record says triggered it: the HTTP method, lower-case."""
    return (options.method or mode).lower()


def _detail(mode: str, test: TestResult | None, plan: Plan | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"method": mode.upper(), "test": test.as_dict() if test else None}
    if plan is not None and plan.awaits_credentials:  # names only: which secrets the move did not carry
        detail.update(withheld=list(plan.withheld), moved=list(plan.moved), needs=list(plan.needs),
                      status=DataSourceStatus.CREDENTIALS_REQUIRED.value)
    return detail


def _preview(ds: DataSource, plan: Plan) -> DataSource:
    """An unsaved copy showing the state a dry run would produce (secrets by name only)."""
    preview = DataSource.objects.get(pk=ds.pk) if ds.pk else ds
    for key, value in plan.values.items():
        setattr(preview, key, value)
    # Attributes of this unsaved preview only (read by the serializer), not model fields.
    if plan.secrets_loaded:  # else the secrets are unchanged: the serializer reads their names
        setattr(preview, "preview_secret_names", sorted(plan.secrets_after))  # noqa: B010
    setattr(preview, "preview_tenancy", tenancy.current(preview) if plan.tenancy is UNCHANGED else plan.tenancy)  # noqa: B010
    return preview


def create_data_source(*, actor: Actor, data: dict[str, Any], options: WriteOptions | None = None) -> WriteResult:
    """Validate, test, create, audit, then cache the schema."""
    options = options or WriteOptions()
    data = validate_body(data, "create")  # the field rules, whoever calls (API, admin, adapter, shell)
    type_key = data.get("type") or ""
    if type_key not in catalogue.CATALOGUE:
        raise InvalidRequest("Unknown or missing type.", errors={"type": ["Choose a type from the catalogue."]})
    ds = DataSource(organization=actor.organization, type=type_key)
    plan = build_plan(ds, data, mode="create", actor=actor)
    _check_name_free(actor, plan.values["name"], None)
    plan.connection_changed = True
    test = _test(actor, ds, plan, options)
    settle_tenancy(ds, plan, test.tables if test else None)
    if options.dry_run:
        return WriteResult(_preview(ds, plan), changed=sorted(plan.changes), test=test, dry_run=True,
                           impact=impact_of(ds, plan, test))
    with transaction.atomic():
        lock_organization(actor)  # names unique as references compare them: checked again, serialised
        _check_name_free(actor, plan.values["name"], None)
        ds.reference_id = new_reference_id(DataSource)
        _apply(ds, plan, actor, test)
        ds.created_by, ds.created_by_token = ds.updated_by, ds.updated_by_token
        _save(ds, plan, set())  # a new row: every column
        with write_batch():  # PostgreSQL: the audit event, revision and outbox event in one statement
            event = audit.record(actor=actor, action="create", target=ds, changes=plan.changes,
                                 detail=_detail("post", test))
            revisions.record(ds, plan, actor, event, RevisionAction.CREATE)
            outbox.created(ds, actor, list(plan.changes))
    return WriteResult(ds, changed=sorted(plan.changes), test=test, schema=_refresh_after(ds, plan, test, options))


def update_data_source(
    *,
    actor: Actor,
    data_source_id: int | str,  # a path's id is a str; one that names nothing is a 404
    data: dict[str, Any],
    mode: Literal["patch", "put"],
    options: WriteOptions | None = None,
) -> WriteResult:
    """PATCH (merge) or PUT (replace) a data source, testing connection changes before applying."""
    options = options or WriteOptions()
    try:
        data = validate_body(data, mode)  # the field rules, whoever calls (API, admin, adapter, shell)
    except InvalidRequest:
        get_data_source(actor, data_source_id)  # an unknown id is a 404 before the body's 400, as in the API
        raise
    if options.dry_run:
        return _dry_run(actor, data_source_id, data, mode, options)
    if not _may_test(data, mode, options):
        return _update_without_test(actor, data_source_id, data, mode, options)
    ds = get_data_source(actor, data_source_id)
    tested: list[TestResult] = []  # the test this request ran, if any (the last attempt's)
    try:
        return _update_with_test(actor, ds, data, mode, options, tested)
    except ApiError as exc:
        # A test of this source ran (or failed) and the change was not applied: say so in the audit.
        test = failed_test(exc) or (tested[-1] if tested else None)
        if test is not None:
            record_attempt(actor=actor, data_source=ds, action="test", trigger=_trigger(mode, options), data=data,
                           test=test, error=exc)
        raise


def _update_with_test(
    actor: Actor,
    ds: DataSource,
    data: dict[str, Any],
    mode: Literal["patch", "put"],
    options: WriteOptions,
    tested: list[TestResult],
) -> WriteResult:
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            ds = get_data_source(actor, ds.pk)
        plan = _checked_plan(actor, ds, data, mode, options)
        test = _test(actor, ds, plan, options)
        if test is not None:
            tested.append(test)
        settle_tenancy(ds, plan, test.tables if test else None)
        if not plan.changes:
            return WriteResult(ds)
        with transaction.atomic():
            if _renames(ds, plan):  # checked again under the organization's lock, taken first
                lock_organization(actor)
                _check_name_free(actor, plan.values["name"], ds.pk)
            locked = DataSource.objects.select_for_update().get(pk=ds.pk)
            if not etag_matches(locked, options.if_match):
                raise PreconditionFailed()
            if locked.version != ds.version:
                # Someone else wrote meanwhile: re-merge this change onto their state. If that
                # alters what the connection test saw, start over outside the lock.
                fresh = build_plan(locked, data, mode=mode, actor=actor, tenancy_replace=options.tenancy_replace,
                                   withhold=options.withhold_moved_secrets, restoring=options.restores is not None)
                if (fresh.awaits_credentials, fresh.withheld) != (plan.awaits_credentials, plan.withheld):
                    continue  # the move now withholds other secrets (or none, and needs a test): start over
                tested_same = (fresh.values["connection"], fresh.secrets_after) == (
                    plan.values["connection"],
                    plan.secrets_after,
                )
                # A change that needed no test on the state it read may need one on theirs (it sets a
                # connection field back to what they changed): untested, it starts over too.
                needs_test = fresh.connection_changed and options.test_connection and not fresh.awaits_credentials
                if needs_test and (test is None or not tested_same):
                    continue
                if fresh.connection_changed and test is not None:
                    _pin_ssh_host_key(fresh, test)
                settle_tenancy(locked, fresh, test.tables if test else None)
                plan = fresh
                if not plan.changes:
                    return WriteResult(locked)
            ds = locked
            _write(ds, plan, actor, test, mode, options)
        return WriteResult(ds, changed=sorted(plan.changes), test=test,
                           schema=_refresh_after(ds, plan, test, options),
                           awaits_credentials=plan.awaits_credentials, withheld=list(plan.withheld),
                           moved=list(plan.moved), needs=list(plan.needs))
    raise Conflict("The data source kept changing during the update; try again.")


def _dry_run(
    actor: Actor, data_source_id: Any, data: dict[str, Any], mode: Literal["patch", "put"], options: WriteOptions
) -> WriteResult:
    """Validate and test, save nothing; the attempt is audited whatever its outcome."""
    ds = get_data_source(actor, data_source_id)
    test: TestResult | None = None
    try:
        plan = _checked_plan(actor, ds, data, mode, options)
        test = _test(actor, ds, plan, options)
        settle_tenancy(ds, plan, test.tables if test else None)
    except ApiError as exc:
        record_attempt(actor=actor, data_source=ds, action="dry_run", trigger=_trigger(mode, options), data=data,
                       test=failed_test(exc), error=exc)
        raise
    record_attempt(actor=actor, data_source=ds, action="dry_run", trigger=_trigger(mode, options), data=data, test=test)
    return WriteResult(_preview(ds, plan), changed=sorted(plan.changes), test=test, dry_run=True,
                       impact=impact_of(ds, plan, test))


def _checked_plan(
    actor: Actor, ds: DataSource, data: dict[str, Any], mode: Literal["patch", "put"], options: WriteOptions
) -> Plan:
    """412 on a stale If-Match, then the validated plan (400s), then 409 on a name taken."""
    if not etag_matches(ds, options.if_match):
        raise PreconditionFailed()
    plan = build_plan(ds, data, mode=mode, actor=actor, tenancy_replace=options.tenancy_replace,
                      withhold=options.withhold_moved_secrets, restoring=options.restores is not None)
    _check_second_person(actor, ds, plan, options)
    if _renames(ds, plan):
        _check_name_free(actor, plan.values["name"], ds.pk)
    return plan


def _renames(ds: DataSource, plan: Plan) -> bool:
    return "name" in plan.values and plan.values["name"].lower() != ds.name.lower()


def _check_second_person(actor: Actor, ds: DataSource, plan: Plan, options: WriteOptions) -> None:
    """Where the organization needs a second person for connection changes
    (``changes_need_second_person``), such a change is applied only from a plan or change set another
    owner/admin applies: written directly (PATCH, PUT, a restore, an adapter, the admin) it is 403.
    Dry runs pass: they are how plans are made."""
    if (options.dry_run or options.reviewed or actor.is_system or not plan.connection_changed
            or not actor.organization.changes_need_second_person):
        return
    how = (f"POST /api/v1/data-sources/{ds.pk}/revisions/{options.restores}/plan/" if options.restores
           else f"POST /api/v1/data-sources/{ds.pk}/plans/")
    raise Forbidden(f"This organization needs a second person for connection changes: save this change as a plan "
                    f"({how}) for an owner or admin other than you to apply.")


def _may_test(data: dict[str, Any], mode: str, options: WriteOptions) -> bool:
    """Whether this write could need a connection test (which must not run under the row lock)."""
    return options.test_connection and (mode != "patch" or not CONNECTION_KEYS.isdisjoint(data))


def _update_without_test(
    actor: Actor, data_source_id: Any, data: dict[str, Any], mode: Literal["patch", "put"], options: WriteOptions
) -> WriteResult:
    """No test can be needed: plan and write under the row lock at once (one read, no re-merge)."""
    with transaction.atomic():
        if "name" in data:  # a rename's name check then runs under the organization's lock, taken first
            lock_organization(actor)
        ds = get_data_source(actor, data_source_id, for_update=True)
        plan = _checked_plan(actor, ds, data, mode, options)
        settle_tenancy(ds, plan, None)
        if not plan.changes:
            return WriteResult(ds)
        _write(ds, plan, actor, None, mode, options)
    return WriteResult(ds, changed=sorted(plan.changes))


def _write(ds: DataSource, plan: Plan, actor: Actor, test: TestResult | None, mode: str,
           options: WriteOptions) -> None:
    """Apply, bump the version, save, audit, record the revision, publish the event: inside the
    caller's transaction, on the locked row. On PostgreSQL these writes are one statement
    (``write_batch``; a rename's UPDATE runs first on its own): a plain PATCH is BEGIN, the locked
    read, that statement, COMMIT."""
    changed = _apply(ds, plan, actor, test)
    ds.version += 1
    detail = _detail(options.method or mode, test, plan)
    if options.restores is not None:
        detail["restored_revision"] = options.restores
    with write_batch():
        _save(ds, plan, changed)
        event = audit.record(actor=actor, action="restore" if options.restores else "update", target=ds,
                             changes=plan.changes, detail=detail)
        revisions.record(ds, plan, actor, event,
                         RevisionAction.RESTORE if options.restores else RevisionAction.UPDATE)
        outbox.updated(ds, actor, list(plan.changes), options.method or mode, restored_revision=options.restores)


def _refresh_after(ds: DataSource, plan: Plan, test: TestResult | None,
                   options: WriteOptions) -> RefreshOutcome | None:
    """After a tested connection change, re-cache the schema: queued to a worker when one is
    configured (the response then says `pending`), else inline with the configuration just tested."""
    if test is None or not plan.connection_changed or options.defer_refresh:
        return None
    if settings.SCHEMA_REFRESH_ASYNC and not options.inline_refresh:
        refresh_queue.enqueue_refresh(ds.pk)
        ds.refresh_from_db()
        return None
    config = build_config(ds, ds.connection, plan.secrets_after)
    outcome = refresh_schema(data_source=ds, config=config, tables=test.tables)
    if outcome.busy:  # another refresh holds the claim: read the state it left (refresh_schema's
        ds.refresh_from_db()  # own outcomes are already on the instance)
    return outcome

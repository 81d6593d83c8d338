"""Change sets: PATCH bodies of many data sources, tested together in a bounded pool and applied in
one transaction, all or nothing.

Test budget (README "Change sets"): a change set counts one connection test against the per-token
and per-organization per-minute rates for every CHANGE_SET_ITEMS_PER_TEST_COUNT items (25; a set of
100 counts 4), holds one of the organization's running-test slots while it tests, and at most one
change set of an organization tests at a time (429 RATE_LIMITED otherwise). Its items are tested by
at most CHANGE_SET_CONCURRENCY threads (8), each closing its database connection when done."""

from __future__ import annotations

import contextvars
import logging
import math
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from changes.models import ChangeSet, ChangeSetItem, ChangeSetStatus
from changes.services import common
from core.errors import ApiError, Conflict, ErrorCode, InvalidRequest, NotFound
from datasources.fields import CONNECTION_TIMEOUT
from datasources.models import DataSource
from datasources.services import refresh_queue
from datasources.services.connection import refresh_schema
from datasources.services.datasources import WriteOptions, update_data_source
from datasources.services.ratelimit import RateLimited, consume_test_budget
from organizations import audit
from organizations.actors import Actor

logger = logging.getLogger(__name__)
PREFIX = "chs"
RUNNING_KEY = "changeset:testing:{organization}"
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome:
    """One item's test: what it would change, or why it cannot."""

    ok: bool
    changed: list[str] = field(default_factory=list)
    changes: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] | None = None
    impact: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def run_bounded(func: Callable[[T], R], inputs: list[T], workers: int) -> list[R]:
    """``func`` over ``inputs`` in at most ``workers`` threads, each carrying the caller's context
    (request id) and closing its DB connection when done. On SQLite (one writer at a time) in the
    calling thread."""
    if connection.vendor == "sqlite" or workers <= 1:
        return [func(value) for value in inputs]
    results: list[Any] = [None] * len(inputs)
    work: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(inputs)):
        work.put(index)
    context = contextvars.copy_context()

    def worker() -> None:
        try:
            while True:
                try:
                    index = work.get_nowait()
                except queue.Empty:
                    return
                results[index] = func(inputs[index])
        finally:
            connection.close()

    threads = [threading.Thread(target=context.copy().run, args=(worker,), name=f"change-set-{i}", daemon=True)
               for i in range(max(1, min(workers, len(inputs))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _parse(actor: Actor, items: Any) -> list[tuple[DataSource, dict[str, Any]]]:
    """400 naming the item for a malformed list or item, or a repeated source; 404 naming the item for
    an id that is no data source of the organization (another organization's, or none)."""
    limit = common.setting("CHANGE_SET_MAX_ITEMS")
    if not isinstance(items, list) or not items:
        raise InvalidRequest("`items` must be a non-empty list.", errors={"items": ["A non-empty list is required."]})
    if len(items) > limit:
        raise InvalidRequest(f"At most {limit} items (CHANGE_SET_MAX_ITEMS).",
                             errors={"items": [f"At most {limit} items."]})
    errors: dict[str, list[str]] = {}
    seen: dict[int, int] = {}
    for index, item in enumerate(items):
        pk = item.get("data_source") if isinstance(item, dict) else None
        if not isinstance(pk, int) or isinstance(pk, bool) or pk < 1:
            errors[f"items.{index}.data_source"] = ["A data source id is required."]
        elif pk in seen:
            errors[f"items.{index}.data_source"] = [f"Data source {pk} is already item {seen[pk]}."]
        else:
            seen[pk] = index
        if not isinstance(item, dict) or not isinstance(item.get("changes"), dict):
            errors[f"items.{index}.changes"] = ["A PATCH body (an object) is required."]
        for key in sorted(set(item) - {"data_source", "changes"}) if isinstance(item, dict) else []:
            errors[f"items.{index}.{key}"] = ["Unknown field."]
    if errors:
        raise InvalidRequest("The change set is invalid; nothing was tested.", errors=errors)
    found = {ds.pk: ds for ds in DataSource.objects.filter(organization=actor.organization, pk__in=list(seen))}
    missing = {f"items.{index}.data_source": ["No such data source in your organization."]
               for pk, index in seen.items() if pk not in found}
    if missing:
        raise NotFound("An item names no data source of your organization; nothing was tested.", errors=missing)
    return [(found[item["data_source"]], item["changes"]) for item in items]


def _test_item(actor: Actor, ds: DataSource, body: dict[str, Any]) -> Outcome:
    try:
        result = update_data_source(actor=actor, data_source_id=ds.pk, data=body, mode="patch",
                                    options=WriteOptions(dry_run=True, test_budget=False))
        changes = common.planned_diff(actor, ds, body)
    except ApiError as exc:
        return Outcome(ok=False, error=common.error_of(exc))
    except Exception:  # one item's unexpected failure must not hide the others' outcomes
        logger.exception("change-set item of data source %s could not be tested", ds.pk)
        return Outcome(ok=False, error={"code": ErrorCode.INTERNAL_SERVER_ERROR, "errors": {},
                                        "message": "The item could not be tested (server error)."})
    return Outcome(ok=True, changed=result.changed, changes=changes,
                   test=result.test.as_dict() if result.test else None, impact=result.impact)


def _budget(actor: Actor, sources: list[DataSource]) -> tuple[str, str]:
    """Take the set's test budget (see the module docstring); returns the running-set key to free."""
    key = RUNNING_KEY.format(organization=actor.organization.pk)
    workers = common.setting("CHANGE_SET_CONCURRENCY")
    longest = max((ds.connection_timeout or CONNECTION_TIMEOUT.default) for ds in sources)
    lease = math.ceil(len(sources) / workers) * int(longest) + 60
    value = uuid.uuid4().hex
    if actor.is_system:
        return key, ""
    if not cache.add(key, value, timeout=lease):
        raise RateLimited("Another change set of this organization is being tested; retry when it is done.",
                          headers={"Retry-After": "10"}, extra={"retry_after": 10})
    try:
        for _ in range(math.ceil(len(sources) / common.setting("CHANGE_SET_ITEMS_PER_TEST_COUNT"))):
            consume_test_budget(actor, timeout=longest)
    except BaseException:
        cache.delete(key)
        raise
    return key, value


def create_change_set(*, actor: Actor, items: Any) -> ChangeSet:
    """Validate the list, test every item (bounded pool), store the set and each item's outcome."""
    parsed = _parse(actor, items)
    key, value = _budget(actor, [ds for ds, _ in parsed])
    try:
        outcomes = run_bounded(lambda pair: _test_item(actor, *pair), parsed,
                               common.setting("CHANGE_SET_CONCURRENCY"))
    finally:
        if value and cache.get(key) == value:
            cache.delete(key)
    failed = sum(1 for o in outcomes if not o.ok)
    change_set = ChangeSet(organization=actor.organization, public_id=common.new_public_id(PREFIX),
                           status=ChangeSetStatus.FAILED if failed else ChangeSetStatus.OPEN,
                           item_count=len(parsed), failed_count=failed,
                           expires_at=common.expiry("CHANGE_SET_TTL_SECONDS"), **common.author_fields(actor))
    rows = []
    for position, ((ds, body), outcome) in enumerate(zip(parsed, outcomes, strict=True)):
        key_id, ciphertext = common.seal(ds.pk, change_set.public_id, body)
        rows.append(ChangeSetItem(position=position, data_source=ds, source_pk=ds.pk, base_version=ds.version,
                                  key_id=key_id, ciphertext=ciphertext, ok=outcome.ok, changed=outcome.changed,
                                  changes=outcome.changes, test=outcome.test, impact=outcome.impact,
                                  error=outcome.error))
    with transaction.atomic():
        change_set.save()
        for row in rows:
            row.change_set = change_set
        ChangeSetItem.objects.bulk_create(rows)
    return change_set


def change_sets_for(actor: Actor) -> QuerySet[ChangeSet]:
    _expire_due(actor)
    return ChangeSet.objects.filter(organization=actor.organization).order_by("-created_at", "-id")


def _expire_due(actor: Actor) -> None:
    """Sets past their expiry become expired; the bodies of sets that can never apply are forgotten."""
    mine = ChangeSet.objects.filter(organization=actor.organization)
    mine.filter(status__in=[ChangeSetStatus.OPEN, ChangeSetStatus.FAILED],
                expires_at__lte=timezone.now()).update(status=ChangeSetStatus.EXPIRED)
    closed = [ChangeSetStatus.EXPIRED, ChangeSetStatus.FAILED]
    ChangeSetItem.objects.filter(change_set__in=mine.filter(status__in=closed)).exclude(
        **common.FORGOTTEN).update(**common.FORGOTTEN)


def change_set_for(actor: Actor, change_set_id: Any) -> ChangeSet:
    _expire_due(actor)
    found = ChangeSet.objects.filter(organization=actor.organization, public_id=str(change_set_id)).first()
    if found is None:
        raise NotFound("No such change set.", errors={"id": ["No such change set."]})
    return found


def _refuse_unless_applicable(change_set: ChangeSet, items: list[ChangeSetItem]) -> None:
    if change_set.status == ChangeSetStatus.EXPIRED:
        raise common.Expired("The change set expired: make a new one. Nothing was changed.")
    if change_set.status == ChangeSetStatus.APPLIED:
        raise Conflict("The change set was already applied.")
    failed = {f"items.{i.position}": [f"{(i.error or {}).get('code')}: {(i.error or {}).get('message')}"]
              for i in items if not i.ok}
    if failed or change_set.status != ChangeSetStatus.OPEN:
        raise ApiError(f"{len(failed)} item(s) of the change set failed their test: it cannot be applied. Nothing "
                       "was changed.", code=ErrorCode.CHANGE_SET_FAILED, errors=failed)


def apply_change_set(*, actor: Actor, change_set_id: Any) -> tuple[ChangeSet, list[DataSource]]:
    """Lock every source in id order, check each version against the one tested, apply each item
    with its passing test (no re-test under the transaction), commit; then refresh the schemas of
    the sources whose connection changed. Any refusal changes nothing."""
    change_set = change_set_for(actor, change_set_id)
    items = list(change_set.items.order_by("source_pk"))
    common.check_may_apply(change_set, actor, any(common.touches_connection(i.changed) for i in items))
    _refuse_unless_applicable(change_set, items)
    applied: list[DataSource] = []
    with transaction.atomic():
        pks = [i.source_pk for i in items]
        locked = {ds.pk: ds for ds in DataSource.objects.select_for_update()
                  .filter(organization=actor.organization, pk__in=pks).order_by("pk")}
        stale = {f"items.{i.position}.data_source": [_why_stale(i, locked.get(i.source_pk))] for i in items
                 if i.source_pk not in locked or locked[i.source_pk].version != i.base_version}
        if stale:
            raise Conflict(f"{len(stale)} data source(s) changed since the set was tested: make a new change set. "
                           "Nothing was changed.", errors=stale)
        for item in items:
            body = common.unseal(item.source_pk, change_set.public_id, item.key_id, item.ciphertext)
            options = WriteOptions(if_match=f'"{item.source_pk}-{item.base_version}"', defer_refresh=True,
                                   pretested=common.test_from_dict(item.test), test_budget=False,
                                   reviewed=True)
            try:
                result = update_data_source(actor=actor, data_source_id=item.source_pk, data=body, mode="patch",
                                            options=options)
            except ApiError as exc:
                raise _naming_item(exc, item.position) from None
            applied.append(result.data_source)
        now = timezone.now()
        if not ChangeSet.objects.filter(pk=change_set.pk, status=ChangeSetStatus.OPEN).update(
                status=ChangeSetStatus.APPLIED, applied_at=now, applied_by=actor.label[:255]):
            raise Conflict("The change set was applied meanwhile.")
        ChangeSetItem.objects.filter(change_set=change_set).update(**common.FORGOTTEN)  # the bodies are spent
        for ds in applied:
            audit.record(actor=actor, action="change_set_apply", target=ds,
                         detail={"change_set": change_set.public_id, "version": ds.version})
    _refresh([ds for ds, item in zip(applied, items, strict=True)
              if item.test is not None and common.touches_connection(item.changed)])
    change_set.refresh_from_db()
    return change_set, applied


def _naming_item(exc: ApiError, position: int) -> ApiError:
    """An item's refusal at apply time (a name taken since its test, say) as the set's refusal: same
    code and status, its message and field errors under ``items.N``; the transaction rolls back."""
    errors = {f"items.{position}.{name}": messages for name, messages in exc.errors.items()}
    return ApiError(f"Item {position} was refused: {exc.message} Nothing was changed.",
                    errors=errors or {f"items.{position}": [exc.message]}, code=exc.code,
                    status_code=exc.status_code, extra=exc.extra, headers=exc.headers)


def _why_stale(item: ChangeSetItem, ds: DataSource | None) -> str:
    if ds is None:
        return "The data source no longer exists."
    return f"The data source changed since the set was tested (version {item.base_version}, now {ds.version})."


def _refresh(sources: list[DataSource]) -> None:
    """After the commit: queue each refresh to the worker, or run them here in the bounded pool."""
    from django.conf import settings

    if settings.SCHEMA_REFRESH_ASYNC:
        for ds in sources:
            refresh_queue.enqueue_refresh(ds.pk)
        return

    def refresh(ds: DataSource) -> None:
        try:
            refresh_schema(data_source=DataSource.objects.get(pk=ds.pk))
        except Exception:  # the source is applied; its refresh is retried by the schedule or a sync
            logger.exception("schema refresh after change set failed for data source %s", ds.pk)

    run_bounded(refresh, sources, common.setting("CHANGE_SET_CONCURRENCY"))

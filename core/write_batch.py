"""One statement for a write's row and its trailing INSERTs (issue 18).

A change writes its row, then an audit event, a revision and an outbox event: each its own round
trip. Inside ``with write_batch():`` the writers that know about it (``organizations.audit.record``,
``eventlog.services.publish``, ``datasources.services.revisions.record``, the data-source update's
own UPDATE) *queue* their statement instead of running it, and the block's end runs them all as one
statement on PostgreSQL, as data-modifying CTEs::

    WITH _wb0 AS (INSERT ... RETURNING id), _wb1 AS (INSERT ... (SELECT id FROM _wb0) ...), ...
    SELECT (SELECT json_agg(_wb0)::text FROM _wb0), (SELECT json_agg(_wb1)::text FROM _wb1), ...

A statement whose rows nobody reads is queued with ``queue_unread``: no RETURNING, and ``NULL`` in
its place in the final SELECT. A later statement refers to an earlier one's new id with a ``Ref``
(``ref_or_pk``) in its parameters. The statement is prepared once per connection (``core.prepared``)
unless the block says ``prepare=False``. Elsewhere (SQLite, MariaDB) the block does nothing: the
writers run their statements one by one, as they always did. So does a nested block (the outer one
runs the batch).

Until the block ends, a queued instance has no ``pk``: use ``ref_or_pk`` for it inside the block.
The statements of one batch share one snapshot: none sees another's rows (PostgreSQL's rule for
data-modifying CTEs), only the RETURNING values that a ``Ref`` reads; so queue no two writes of
the same row, nor a statement that reads what an earlier one wrote.
Queued rows send Django's ``pre_save``/``post_save`` signals (when the batch is queued / has run),
as ``Model.save`` does. An exception inside the block drops the queue (the caller's transaction
rolls back what ran before it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Field, ForeignKey, Model
from django.db.models.signals import post_save, pre_save

from core.prepared import prepared_cursor

#: What a queued statement's ``on_rows`` receives: its RETURNING rows as JSON objects (column ->
#: value; timestamps as ISO strings, JSON columns as JSON), ``[]`` when it wrote none.
Rows = list[dict[str, Any]]

_PLACEHOLDER = re.compile(r"%%|%s|%\((\w+)\)s")


@dataclass(frozen=True)
class Ref:
    """A column (``id``) of the row that the queued statement ``name`` (its CTE) writes, as a scalar
    subquery. Put it among a later queued statement's parameters, or leave it to ``queue_insert``
    (a foreign key to a queued instance): it is written into the SQL in its place."""

    name: str
    column: str = "id"

    def as_sql(self) -> str:
        return f"(SELECT {self.column} FROM {self.name})"  # noqa: S608  # nosec B608 (identifiers of ours)


@dataclass
class _Queued:
    sql: str
    params: list[Any]
    on_rows: Callable[[Rows], None] | None
    returning: bool = True  # False: no RETURNING (``queue_unread``), nothing is sent back


@dataclass
class _Batch:
    using: str
    prepare: bool = True
    items: list[_Queued] = field(default_factory=list)

    def run(self) -> None:
        if not self.items:
            return
        ctes = ", ".join(f"_wb{i} AS ({item.sql})" for i, item in enumerate(self.items))
        results = ", ".join(f"(SELECT json_agg(_wb{i})::text FROM _wb{i})"  # noqa: S608  # nosec B608 (our names)
                            if item.returning else "NULL" for i, item in enumerate(self.items))
        params = [param for item in self.items for param in item.params]
        with prepared_cursor(self.using) if self.prepare else connections[self.using].cursor() as cursor:
            cursor.execute(f"WITH {ctes} SELECT {results}", params)
            row = cursor.fetchone()
        for item, rows in zip(self.items, row, strict=True):
            if item.on_rows is not None:
                item.on_rows(json.loads(rows) if rows else [])


_current: ContextVar[_Batch | None] = ContextVar("write_batch", default=None)


@contextmanager
def write_batch(using: str = DEFAULT_DB_ALIAS, *, prepare: bool = True) -> Iterator[None]:
    """Queue the batch-aware writers' statements inside the block and run them as one at its end
    (PostgreSQL; elsewhere, or nested, a no-op). Use it inside the write's transaction. The statement
    is prepared once per connection (``core.prepared``: its text repeats for writes of one shape);
    ``prepare=False`` for a batch whose best plan depends on its values (PostgreSQL would settle on a
    generic plan after five runs), such as a repoint's rewrite of one data source's inputs."""
    if connections[using].vendor != "postgresql" or _current.get() is not None:
        yield
        return
    batch = _Batch(using, prepare)
    token = _current.set(batch)
    try:
        yield
    finally:
        _current.reset(token)
    batch.run()


def active(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether a statement for ``using`` would be queued now (a writer then calls ``queue``)."""
    batch = _current.get()
    return batch is not None and batch.using == using


def queue(sql: str, params: Sequence[Any] | Mapping[str, Any] = (), *,
          on_rows: Callable[[Rows], None] | None = None) -> Ref:
    """Queue one data-modifying statement (``INSERT``/``UPDATE``/``DELETE`` ... ``RETURNING`` the
    columns ``on_rows`` reads and any ``Ref`` to it reads: ``id``). Placeholders ``%s`` or
    ``%(name)s``; a ``Ref`` parameter is written into the SQL. ``on_rows`` runs once the batch has
    run, in queue order. Only inside an ``active()`` batch."""
    batch = _current.get()
    if batch is None:
        raise RuntimeError("write_batch.queue() outside a write_batch() block on PostgreSQL")
    name = f"_wb{len(batch.items)}"
    batch.items.append(_Queued(*_positional(sql, params), on_rows))
    return Ref(name)


def queue_unread(sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> None:
    """Queue a data-modifying statement whose rows nobody reads (no ``RETURNING``, no ``Ref`` to it):
    PostgreSQL runs it all the same, and nothing comes back (a repoint's 10,000 node ids sent back
    as JSON cost more than a tenth of its write). Only inside an ``active()`` batch."""
    batch = _current.get()
    if batch is None:
        raise RuntimeError("write_batch.queue_unread() outside a write_batch() block on PostgreSQL")
    batch.items.append(_Queued(*_positional(sql, params), None, returning=False))


def queue_insert(obj: Model) -> Ref:
    """Queue the INSERT of a new instance (as ``obj.save()`` would write it, with its values now);
    its ``pk`` is set when the batch runs. A foreign key to an instance queued earlier in the batch
    (``obj.event = queued``) is written as a ``Ref`` to it."""
    model = type(obj)
    batch = _current.get()
    using = batch.using if batch is not None else DEFAULT_DB_ALIAS
    conn = connections[using]
    if pre_save.has_listeners(model):
        pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=None)
    sql, fields, pk = _insert_statement(model, using, obj.pk is None)
    waiting = {f: ref for f in fields if isinstance(f, ForeignKey) and getattr(obj, f.attname) is None
               and f.is_cached(obj) and isinstance(ref := ref_or_pk(f.get_cached_value(obj)), Ref)}
    # As SQLInsertCompiler prepares each value (``pre_save`` first: auto_now and the like).
    params = [waiting.get(f) or f.get_db_prep_save(f.pre_save(obj, True), connection=conn) for f in fields]

    def saved(rows: Rows) -> None:
        setattr(obj, pk.attname, rows[0][pk.column])
        for f in waiting:
            obj.__dict__[f.attname] = ref_or_pk(f.get_cached_value(obj))  # (its own INSERT ran first)
        obj._state.adding, obj._state.db = False, using
        if post_save.has_listeners(model):
            post_save.send(sender=model, instance=obj, created=True, update_fields=None, raw=False, using=using)

    ref = queue(sql, params, on_rows=saved)
    obj._write_batch_ref = ref  # type: ignore[attr-defined]
    return ref


def queue_update(obj: Model, update_fields: Sequence[str]) -> Ref:
    """Queue the UPDATE of a saved instance's ``update_fields`` (as ``obj.save(update_fields=...)``
    would write them, ``auto_now`` included, with its values now). The batch fails as ``save`` does
    when the row is gone."""
    model = type(obj)
    batch = _current.get()
    using = batch.using if batch is not None else DEFAULT_DB_ALIAS
    conn = connections[using]
    if pre_save.has_listeners(model):
        pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=frozenset(update_fields))
    meta = model._meta
    sql, fields = _update_statement(model, using, tuple(update_fields))
    params = [f.get_db_prep_save(f.pre_save(obj, False), connection=conn) for f in fields]

    def saved(rows: Rows) -> None:
        if not rows:
            raise DatabaseError("Save with update_fields did not affect any rows.")
        if post_save.has_listeners(model):
            post_save.send(sender=model, instance=obj, created=False, update_fields=frozenset(update_fields),
                           raw=False, using=using)

    return queue(sql, [*params, meta.pk.get_db_prep_value(obj.pk, conn)], on_rows=saved)


@lru_cache(maxsize=64)
def _update_statement(model: type[Model], using: str, update_fields: tuple[str, ...]) -> tuple[str, list[Field]]:
    """The UPDATE ... RETURNING pk of ``update_fields`` (a placeholder each, then the pk's) and their
    fields: built once per model and set of fields."""
    meta = model._meta
    fields = [cast("Field", meta.get_field(name)) for name in update_fields]
    if any(hasattr(f, "get_placeholder") or not f.concrete or f.primary_key for f in fields):
        raise NotImplementedError(f"{model.__name__}: only plain concrete fields are batched")
    quote = connections[using].ops.quote_name
    assignments = ", ".join(f"{quote(str(f.column))} = %s" for f in fields)
    pk = quote(str(meta.pk.column))
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {pk} = %s RETURNING {pk}"  # noqa: S608  # nosec B608
    return sql, fields


@cache
def _insert_statement(model: type[Model], using: str, without_pk: bool) -> tuple[str, list[Any], Any]:
    """The INSERT ... RETURNING pk of a model's row with a placeholder per column, the columns' fields
    in that order, and the pk field: built once per model (compiling an InsertQuery per row cost a
    tenth of a plain PATCH's CPU time)."""
    meta = model._meta
    fields = [f for f in meta.local_concrete_fields if not f.generated and not (f is meta.auto_field and without_pk)]
    if any(hasattr(f, "get_placeholder") for f in fields):
        raise NotImplementedError(f"{model.__name__}: a field with its own placeholder is not batched")
    quote = connections[using].ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = (f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608  # nosec B608
           f" RETURNING {quote(str(meta.pk.column))}")
    return sql, fields, meta.pk


def ref_or_pk(obj: Model | None) -> Any:
    """``obj.pk``, or a ``Ref`` to it while its INSERT waits in the batch (a parameter for ``queue``)."""
    if obj is None or obj.pk is not None:
        return None if obj is None else obj.pk
    return getattr(obj, "_write_batch_ref", None)


def _positional(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The statement with ``%s`` placeholders only (named ones in order) and each ``Ref`` written in
    as its subquery, so that statements of either style join into one."""
    chunks, keys = _placeholders(sql) if len(sql) <= _CACHED_UP_TO else _placeholders.__wrapped__(sql)
    if not isinstance(params, Mapping) and not any(isinstance(value, Ref) for value in params):
        return sql, list(params)  # already positional: as it is
    values = [params[key] for key in keys]
    parts, out = [chunks[0]], []
    for value, chunk in zip(values, chunks[1:], strict=True):
        if isinstance(value, Ref):
            parts.append(value.as_sql())
        else:
            parts.append("%s")
            out.append(value)
        parts.append(chunk)
    return "".join(parts), out


#: Statements up to this long (the writers' fixed ones) are parsed once; a long one built per request
#: (a repoint's CASE over its tables) is parsed each time rather than kept.
_CACHED_UP_TO = 8000


@lru_cache(maxsize=128)
def _placeholders(sql: str) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """A statement's text between its placeholders and each placeholder's key (a name, or the
    position of a ``%s``)."""
    chunks: list[str] = []
    keys: list[str | int] = []
    start, position = 0, 0
    for match in _PLACEHOLDER.finditer(sql):
        if match.group(0) == "%%":
            continue
        chunks.append(sql[start:match.start()])
        if match.group(1):
            keys.append(match.group(1))
        else:
            keys.append(position)
            position += 1
        start = match.end()
    chunks.append(sql[start:])
    return tuple(chunks), tuple(keys)

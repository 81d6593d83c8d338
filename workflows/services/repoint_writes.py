"""A repoint's writes: the node inputs rewritten, the workflow data source and its readers' versions.

Each is one hand-written statement (the ORM's CASE of 2,000 ``When`` for 1,000 tables cost more to
build than to run). The readers' versions run first, on their own (``bump_readers``: on PostgreSQL
their UPDATE answers the reference ids the audit record lists); inside a ``core.write_batch`` block
(PostgreSQL) the rest are queued with the audit and outbox events, without RETURNING, and run as one
statement at its end; elsewhere they run one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from django.db import connection
from django.db.models import CharField, F, Field, Model, Value
from django.db.models.functions import Concat

from core import write_batch as wb
from workflows.mapping import Table
from workflows.models import Node, NodeInput, WorkflowDataSource

CHUNK = 1000  # tables per UPDATE: ~5 bound parameters each, far below SQLite's and PostgreSQL's limits
PENDING = "~"  # marks rows mid-rewrite when several chunks are needed; never starts a reference id


def _now(sql: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _run(sql: str, params: list[Any]) -> None:
    """Queue the write in the batch (PostgreSQL, inside ``write_batch``), else run it now."""
    if wb.active():
        wb.queue_unread(sql, params)
    else:
        _now(sql, params)


def _names(model: type[Model], *fields: str) -> list[str]:
    """The quoted table name and the quoted columns of ``fields``."""
    quote, meta = connection.ops.quote_name, model._meta
    return [quote(meta.db_table), *(quote(str(cast("Field", meta.get_field(f)).column)) for f in fields)]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _case_update(wds_id: int, chunk: list[tuple[str, Table]], prefix: str) -> tuple[str, list[Any]]:
    """One UPDATE of the chunk's inputs: each old reference id (``prefix`` + old) to its new table.
    Each row is matched on its old reference id only, so swaps (a→b, b→a) are safe. PostgreSQL joins
    the rows to a VALUES list (hashed: a CASE of 1,000 tables compared each row with every WHEN, most
    of a 10,000-node repoint's time); elsewhere CASEs, the name's first (MySQL and MariaDB assign
    left to right: it must read the old reference id too)."""
    table, ref, name, wds = _names(NodeInput, "table_reference_id", "table_name", "workflow_data_source")
    olds = [prefix + old for old, _ in chunk]
    if connection.vendor == "postgresql":
        rows = ", ".join(["(%s, %s, %s)"] * len(chunk))
        sql = (f"UPDATE {table} SET {ref} = v.new_ref, {name} = v.new_name FROM (VALUES {rows}) "  # noqa: S608  # nosec B608 (identifiers of ours)
               f"AS v(old_ref, new_ref, new_name) WHERE {table}.{wds} = %s AND {table}.{ref} = v.old_ref")
        values = [value for old, (_, new) in zip(olds, chunk, strict=True)
                  for value in (old, new.reference_id, new.name)]
        return sql, [*values, wds_id]
    whens = " ".join(["WHEN %s THEN %s"] * len(chunk))
    sql = (
        f"UPDATE {table} SET {name} = CASE {ref} {whens} ELSE {name} END, "  # noqa: S608  # nosec B608 (identifiers of ours)
        f"{ref} = CASE {ref} {whens} ELSE {ref} END "
        f"WHERE {wds} = %s AND {ref} IN ({', '.join(['%s'] * len(chunk))})"
    )
    names = [value for old, (_, new) in zip(olds, chunk, strict=True) for value in (old, new.name)]
    refs = [value for old, (_, new) in zip(olds, chunk, strict=True) for value in (old, new.reference_id)]
    return sql, [*names, *refs, wds_id, *olds]


def _delete_duplicates(wds_id: int, by_old: dict[str, Table]) -> tuple[str, list[Any]]:
    """PostgreSQL: DELETE every input of the data source but the first (by id) of each node and new
    table, the new table of each row per ``by_old`` (its ids were not read: ``repoint_reads``)."""
    table, node, ref, source = _names(NodeInput, "node", "table_reference_id", "workflow_data_source")
    sql = (f"DELETE FROM {table} d USING (SELECT i.id, row_number() OVER (PARTITION BY i.{node}, "  # noqa: S608  # nosec B608 (identifiers of ours)
           f"COALESCE(v.new_ref, i.{ref}) ORDER BY i.id) AS n FROM {table} i LEFT JOIN "
           f"unnest(%s::text[], %s::text[]) AS v(old_ref, new_ref) ON v.old_ref = i.{ref} WHERE i.{source} = %s) x "
           "WHERE d.id = x.id AND x.n > 1")
    return sql, [list(by_old), [new.reference_id for new in by_old.values()], wds_id]


def rewrite_inputs(wds_id: int, by_old: dict[str, Table], names: dict[str, set[str]],
                   duplicates: list[int] | None) -> None:
    """Rewrite every node input of the data source per the plan (``by_old``: old reference id -> new
    table; ``names``: old reference id -> stored names) in a bounded number of statements: one,
    queued when in a batch, unless there are ``duplicates`` to delete first (ids, or None: some, found
    in SQL; a node keeps a single input of a table) or more than CHUNK tables change."""
    changes = [(old, new) for old, new in by_old.items() if new.reference_id != old or names[old] != {new.name}]
    if duplicates == [] and len(changes) <= CHUNK:
        if changes:
            _run(*_case_update(wds_id, changes, ""))
        return
    # Statement by statement, now: each must see the rows the previous one wrote.
    if duplicates is None:
        _now(*_delete_duplicates(wds_id, by_old))
    for chunk in _chunks(duplicates or [], CHUNK):
        NodeInput.objects.filter(pk__in=chunk).delete()
    if len(changes) <= CHUNK:
        if changes:
            _now(*_case_update(wds_id, changes, ""))
        return
    # Several statements: mark first so a later chunk never re-matches rows an earlier one rewrote.
    for chunk in _chunks(changes, CHUNK):
        NodeInput.objects.filter(
            workflow_data_source_id=wds_id, table_reference_id__in=[old for old, _ in chunk]
        ).update(table_reference_id=Concat(Value(PENDING), F("table_reference_id"), output_field=CharField()))
    for chunk in _chunks(changes, CHUNK):
        _now(*_case_update(wds_id, chunk, PENDING))


def write_repointed(wds: WorkflowDataSource) -> None:
    """UPDATE the workflow data source as the caller left the instance (source, version, who and
    when: ``stamp``)."""
    table, *columns = _names(WorkflowDataSource, "source_data_source", "source_workflow", "source_version",
                             "is_sample", "version", "updated_at", "updated_by", "updated_by_token")
    sets = ", ".join(f"{c} = %s" for c in columns)
    _run(f"UPDATE {table} SET {sets} WHERE {connection.ops.quote_name('id')} = %s",  # noqa: S608  # nosec B608
         [wds.source_data_source_id, wds.source_workflow_id, wds.source_version, wds.is_sample, wds.version,
          connection.ops.adapt_datetimefield_value(wds.updated_at), wds.updated_by_id, wds.updated_by_token_id,
          wds.pk])


def bump_readers(wds: WorkflowDataSource, node_ids: list[int]) -> dict[int, str] | None:
    """Give the data source's readers a new version and its stamp (``node_ids``: read under the
    workflow's lock, which every change of a node's inputs takes first). On PostgreSQL the UPDATE
    finds them by id (a semi-join with the inputs scanned both tables: ~15% of it) and answers each
    one's reference id (node id -> reference id): the audit's plan lists them, and the rows it
    updates are read anyway, where joining the nodes to the read of the inputs read them again.
    Elsewhere it finds them through the inputs and answers None (their read named them)."""
    nodes, version, updated_at, updated_by, updated_by_token, reference_id = _names(
        Node, "version", "updated_at", "updated_by", "updated_by_token", "reference_id")
    inputs, node, source = _names(NodeInput, "node", "workflow_data_source")
    sets = f"{version} = {version} + 1, {updated_at} = %s, {updated_by} = %s, {updated_by_token} = %s"
    stamp = [connection.ops.adapt_datetimefield_value(wds.updated_at), wds.updated_by_id, wds.updated_by_token_id]
    node_id = connection.ops.quote_name("id")
    if connection.vendor != "postgresql":
        _now(f"UPDATE {nodes} SET {sets} WHERE {node_id} IN (SELECT {node} FROM {inputs} WHERE {source} = %s)",  # noqa: S608  # nosec B608
             [*stamp, wds.pk])
        return None
    if not node_ids:
        return {}
    ids = "{" + ",".join(map(str, node_ids)) + "}"  # one text parameter: the client cursor quoted a list by element
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {nodes} SET {sets} WHERE {node_id} = ANY(%s::bigint[]) "  # noqa: S608  # nosec B608
                       f"RETURNING {node_id}, {reference_id}", [*stamp, ids])
        return dict(cursor.fetchall())

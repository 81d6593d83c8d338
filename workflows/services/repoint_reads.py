"""A repoint's one read of the data source's node inputs, summed up per table read downstream.

PostgreSQL sums them up in SQL, one row per table with its reader nodes in the order of their first
input (as the floor does): reading 10,000 input rows into Python was what a 10,000-node repoint cost
beyond the writes the floor shares. A dry run's read names the nodes (JSON of id, reference id and
name: its plan lists them); a write's reads their ids only, without joining the nodes' rows. Elsewhere
every input row is read and summed up here, the same way, nodes named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

from django.db import connection
from django.db.models import Field

from workflows.mapping import Table
from workflows.models import Node, NodeInput


@dataclass
class Inputs:
    """The tables a data source's nodes read, in the order of their first input (by input id)."""

    tables: list[Table]  # named as their first input names them
    ids: dict[str, list[int]]  # reference id -> its nodes' ids, once each, by first input
    names: dict[str, set[str]]  # reference id -> every name stored for it
    counts: dict[str, int]  # reference id -> inputs reading it
    rows: list[tuple[int, int, str]] | None  # (input id, node id, reference id); not read on PostgreSQL
    repeats: bool = False  # a node reads one table twice (PostgreSQL; elsewhere ``rows`` tell)
    # reference id -> its nodes ({id, reference_id, name}) as ``ids`` lists them; empty when not
    # ``named`` (PostgreSQL, ``read_inputs(named=False)``)
    readers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    named: bool = True

    def node_ids(self) -> list[int]:
        """Every node reading a table of the data source, by id."""
        return sorted({node_id for ids in self.ids.values() for node_id in ids})

    def duplicates(self, by_old: dict[str, Table]) -> list[int] | None:
        """Inputs the rewrite makes duplicates of (a node would read a table twice; the first by id
        stays): their ids, or None when there are some but their ids were not read (PostgreSQL
        deletes them in SQL: ``repoint_writes``)."""
        if self.rows is not None:
            seen: set[tuple[int, str]] = set()
            duplicates = []
            for input_id, node_id, ref in self.rows:
                key = (node_id, by_old[ref].reference_id)
                if key in seen:
                    duplicates.append(input_id)
                seen.add(key)
            return duplicates
        if self.repeats:
            return None
        if len({new.reference_id for new in by_old.values()}) == len(by_old):  # no two tables onto one
            return []
        nodes_of: dict[str, set[int]] = {}
        for old, ids in self.ids.items():
            merged = nodes_of.setdefault(by_old[old].reference_id, set())
            if merged.intersection(ids):
                return None
            merged.update(ids)
        return []


def _names(model: type[Any], *fields: str) -> list[str]:
    """The quoted table name and the quoted columns of ``fields``."""
    quote, meta = connection.ops.quote_name, model._meta
    return [quote(meta.db_table), *(quote(str(cast("Field", meta.get_field(f)).column)) for f in fields)]


def _aggregated(wds_id: int, named: bool) -> Inputs:
    inputs, node, ref, name, source = _names(NodeInput, "node", "table_reference_id", "table_name",
                                             "workflow_data_source")
    nodes, node_ref, node_name = _names(Node, "reference_id", "name")
    if named:
        readers = (f"json_agg(json_build_object('id', n.id, 'reference_id', n.{node_ref}, 'name', n.{node_name}) "
                   f"ORDER BY i.id)::text FROM {inputs} i JOIN {nodes} n ON n.id = i.{node}")
    else:  # the node ids only: no join (reading 10,000 nodes' rows was most of the read)
        readers = f"array_agg(i.{node} ORDER BY i.id) FROM {inputs} i"
    sql = (f"SELECT i.{ref}, (array_agg(i.{name} ORDER BY i.id))[1], array_agg(DISTINCT i.{name}), count(*), "  # nosec B608 (identifiers of ours)
           f"count(DISTINCT i.{node}), {readers} WHERE i.{source} = %s GROUP BY i.{ref} ORDER BY min(i.id)")
    with connection.cursor() as cursor:
        cursor.execute(sql, [wds_id])
        rows = cursor.fetchall()
    found = Inputs([], {}, {}, {}, None, named=named)
    for table_ref, first_name, names, count, distinct, readers in rows:
        if named:
            listed = json.loads(readers)
            if distinct != count:  # a node reads this table more than once: list it once
                seen: set[int] = set()
                listed = [r for r in listed if not (r["id"] in seen or seen.add(r["id"]))]  # type: ignore[func-returns-value]
            found.readers[table_ref], found.ids[table_ref] = listed, [r["id"] for r in listed]
        else:
            found.ids[table_ref] = readers if distinct == count else list(dict.fromkeys(readers))
        found.repeats = found.repeats or distinct != count
        found.tables.append(Table(table_ref, first_name))
        found.names[table_ref], found.counts[table_ref] = set(names), count
    return found


def _rows(wds_id: int) -> Inputs:
    """Every input row, fetched without the ORM's iterator; each table's and node's objects made once."""
    query = NodeInput.objects.filter(workflow_data_source_id=wds_id).order_by("id").values_list(
        "id", "node_id", "node__reference_id", "node__name", "table_reference_id", "table_name"
    ).query
    with connection.cursor() as cursor:
        cursor.execute(*query.sql_with_params())
        rows = cursor.fetchall()
    found = Inputs([], {}, {}, {}, [])
    readers: dict[str, dict[int, dict[str, Any]]] = {}
    slim = cast("list[tuple[int, int, str]]", found.rows)
    for input_id, node_id, node_ref, node_name, ref, name in rows:
        by_node = readers.get(ref)
        if by_node is None:  # the first row of a table names it
            found.tables.append(Table(ref, name))
            by_node, found.names[ref], found.counts[ref] = {}, {name}, 0
            readers[ref] = by_node
        else:
            found.names[ref].add(name)
        found.counts[ref] += 1
        if node_id not in by_node:
            by_node[node_id] = {"id": node_id, "reference_id": node_ref, "name": node_name}
        slim.append((input_id, node_id, ref))
    found.readers = {ref: list(by_node.values()) for ref, by_node in readers.items()}
    found.ids = {ref: list(by_node) for ref, by_node in readers.items()}
    return found


def read_inputs(wds_id: int, *, named: bool = True) -> Inputs:
    """Every input of the data source, with its node, in one statement. ``named=False``: on
    PostgreSQL the nodes' ids only (``Inputs.readers`` empty), for a write that learns their reference
    ids from its own UPDATE (``repoint_writes.bump_readers``); elsewhere they are named anyway."""
    return _aggregated(wds_id, named) if connection.vendor == "postgresql" else _rows(wds_id)

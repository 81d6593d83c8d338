"""Property-based tests of the pure table mapper (workflows.mapping.plan_mapping)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.mapping import MappingError, Table, column_changes, plan_mapping
from workflows.references import name_key

REFS = st.text(alphabet="abcdek2345", min_size=4, max_size=4)
# A small pool so that names collide, also after escaping and case folding.
NAMES = st.sampled_from(["orders", "Orders", "items", "old table", "old-table", "users", "t1", "T_1", "new"])


@st.composite
def scenario(draw):
    """Read tables, a new source derived from them (kept, renamed, re-created, dropped, added), an explicit map."""
    read = draw(st.lists(st.tuples(REFS, NAMES), max_size=8, unique_by=lambda t: t[0]))
    read = [Table(r, n) for r, n in read]
    new: dict[str, Table] = {}
    for table in read:
        fate = draw(st.sampled_from(["keep", "rename", "recreate", "drop"]))
        if fate == "keep":
            new.setdefault(table.reference_id, table)
        elif fate == "rename":
            new.setdefault(table.reference_id, Table(table.reference_id, draw(NAMES)))
        elif fate == "recreate":
            ref = draw(REFS)
            new.setdefault(ref, Table(ref, table.name))
    for ref, name in draw(st.lists(st.tuples(REFS, NAMES), max_size=5)):
        new.setdefault(ref, Table(ref, name))
    new_tables = list(new.values())
    explicit: dict[str, str] = {}
    covered: set[str] = set()
    for table in read:
        how = draw(st.sampled_from(["none", "by_ref", "by_name"]))
        same_name = [t for t in read if name_key(t.name) == name_key(table.name)]
        if how == "none" or not new_tables or table.reference_id in covered:
            continue
        if how == "by_name" and any(t.reference_id in covered for t in same_name):
            continue
        target = draw(st.sampled_from(new_tables))
        value = draw(st.sampled_from([target.name, f"{target.name}:{target.reference_id}",
                                      f"not_a_name:{target.reference_id}"]))
        if how == "by_ref":
            explicit[f"{draw(NAMES)}:{table.reference_id}"] = value
            covered.add(table.reference_id)
        else:
            explicit[table.name] = value
            covered.update(t.reference_id for t in same_name)
    return read, new_tables, explicit, draw(st.booleans())


def _by_name(tables: list[Table], name: str) -> list[Table]:
    """Oracle: the tables a name matches (escaped, any case); of several, the only exact spelling if there is one."""
    found = [t for t in tables if name_key(t.name) == name_key(name)]
    exact = [t for t in found if t.name == name]
    return exact if len(found) > 1 and len(exact) == 1 else found


def _value_target(value: str, new: list[Table]) -> Table | None:
    """Oracle: the new table an explicit value names (the id wins), or None."""
    name, _, ref = value.partition(":")
    found = [t for t in new if t.reference_id == ref] if ref else _by_name(new, name)
    return found[0] if len(found) == 1 else None


def _oracle(read, new, explicit, match_ids):
    """Expected (mapping by read ref, bad targets, unmapped refs), written independently of the mapper."""
    entries: dict[str, tuple[Table | None, str]] = {}
    for key, value in explicit.items():
        name, _, ref = key.partition(":")
        covered = [t for t in read if t.reference_id == ref] if ref else _by_name(read, name)
        for table in covered:
            entries[table.reference_id] = (_value_target(value, new), key)
    expected, bad_targets, unmapped = {}, set(), set()
    for table in read:
        target, key = entries.get(table.reference_id, (None, None))
        if key is not None and target is None:
            bad_targets.add(key)
        by_name = _by_name(new, table.name)
        by_ref = [t for t in new if t.reference_id == table.reference_id] if match_ids else []
        if target is not None:
            expected[table.reference_id] = (target, "explicit")
        elif by_ref:
            expected[table.reference_id] = (by_ref[0], "reference_id")
        elif len(by_name) == 1:
            expected[table.reference_id] = (by_name[0], "name")
        else:
            unmapped.add(table.reference_id)
    return expected, bad_targets, unmapped


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_the_plan_is_total_or_names_exactly_the_unmapped_tables(case):
    read, new, explicit, match_ids = case
    expected, bad_targets, unmapped = _oracle(read, new, explicit, match_ids)
    try:
        matches = plan_mapping(read, new, explicit, match_reference_ids=match_ids)
    except MappingError as error:
        assert not error.bad_keys
        assert {u.table.reference_id for u in error.unmapped} == unmapped
        assert set(error.bad_targets) == bad_targets
        assert unmapped or bad_targets
        for u in error.unmapped:
            assert set(u.candidates) <= set(new) and (u.reason == "ambiguous") == bool(u.candidates)
        return
    assert not unmapped and not bad_targets
    assert sorted(m.old.reference_id for m in matches) == sorted(t.reference_id for t in read)
    for match in matches:
        assert match.new in new  # never a table outside the new source
        assert (match.new, match.matched_by) == expected[match.old.reference_id]


@settings(max_examples=200)
@given(scenario(), st.lists(st.sampled_from(["nobody_reads_this", "ghost:zzzz", "x:9999"]), min_size=1, unique=True))
def test_keys_that_no_node_reads_are_each_reported(case, typos):
    read, new, explicit, match_ids = case
    explicit = {**explicit, **{typo: "whatever" for typo in typos}}
    with pytest.raises(MappingError) as info:
        plan_mapping(read, new, explicit, match_reference_ids=match_ids)
    assert set(info.value.bad_keys) == set(typos)


@settings(max_examples=200)
@given(scenario())
def test_an_explicit_copy_of_a_plan_gives_the_same_plan(case):
    read, new, _, match_ids = case
    try:
        automatic = plan_mapping(read, new, {}, match_reference_ids=match_ids)
    except MappingError:
        return
    explicit = {m.old.reference: m.new.reference for m in automatic}
    again = plan_mapping(read, new, explicit, match_reference_ids=match_ids)
    assert {(m.old, m.new) for m in again} == {(m.old, m.new) for m in automatic}
    assert all(m.matched_by == "explicit" for m in again)


@given(st.lists(st.tuples(REFS, NAMES), max_size=6, unique_by=lambda t: t[0]))
def test_tables_nobody_reads_never_need_a_mapping(new):
    assert plan_mapping([], [Table(r, n) for r, n in new], {}) == []


def test_column_changes_by_name():
    old = [{"name": "id", "type": "int", "nullable": False}, {"name": "gone", "type": "text", "nullable": True}]
    new = [{"name": "ID", "type": "bigint", "nullable": False}, {"name": "added", "type": "text", "nullable": True}]
    assert column_changes(old, new) == {
        "added": ["added"], "removed": ["gone"],
        "changed": [{"name": "ID", "old": {"type": "int", "nullable": False},
                     "new": {"type": "bigint", "nullable": False}}],
    }
    assert column_changes(None, new) is None


def test_column_changes_keep_columns_apart_that_differ_only_in_case():
    """PostgreSQL allows "Id" and "id" in one table: dropping one is a removal (the plan said nothing),
    and a type change compares the column of that exact name (it compared whichever came last)."""
    old = [{"name": "Id", "type": "int", "nullable": True}, {"name": "id", "type": "int", "nullable": True},
           {"name": "Total", "type": "integer", "nullable": True}, {"name": "total", "type": "text", "nullable": True}]
    new = [{"name": "Id", "type": "int", "nullable": True}, {"name": "Total", "type": "bigint", "nullable": True},
           {"name": "total", "type": "text", "nullable": True}]
    assert column_changes(old, new) == {
        "added": [], "removed": ["id"],
        "changed": [{"name": "Total", "old": {"type": "integer", "nullable": True},
                     "new": {"type": "bigint", "nullable": True}}],
    }
    renamed = column_changes([{"name": "cid", "type": "int", "nullable": True}],
                             [{"name": "CID", "type": "int", "nullable": True}])
    assert renamed == {"added": [], "removed": [], "changed": []}  # one column on each side: the same one

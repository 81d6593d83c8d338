"""The table mapper (pure): for every table read downstream, find its table in the new source.

Order: an explicit ``mapped_tables`` entry, else the same reference id (only when the new source is
the same data source or workflow: reference ids are not comparable across sources), else the same
name (escaped, case-insensitive; among names that escape alike, the exact spelling). Tables nobody
reads are never looked at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from workflows.references import InvalidReference, name_key, parse_table_reference, render_table

MatchKind = Literal["explicit", "reference_id", "name"]


@dataclass(frozen=True)
class Table:
    """A concrete table: its stable reference id and its name."""

    reference_id: str
    name: str

    @property
    def reference(self) -> str:
        """``name:reference_id``."""
        return render_table(self.name, self.reference_id)


@dataclass(frozen=True)
class Match:
    """One read table and the new table it maps to."""

    old: Table
    new: Table
    matched_by: MatchKind


@dataclass(frozen=True)
class Unmapped:
    """A read table with no table in the new source; ``candidates`` when the name is ambiguous."""

    table: Table
    reason: Literal["missing", "ambiguous"]
    candidates: tuple[Table, ...] = ()


@dataclass(eq=False)
class MappingError(Exception):
    """Everything wrong with a mapping: unmapped read tables and bad ``mapped_tables`` entries."""

    unmapped: list[Unmapped] = field(default_factory=list)
    bad_keys: dict[str, str] = field(default_factory=dict)  # entry key -> why no read table matches it
    bad_targets: dict[str, str] = field(default_factory=dict)  # entry key -> why its value is not in the new source

    def __str__(self) -> str:
        return f"{len(self.unmapped)} unmapped, {len(self.bad_keys) + len(self.bad_targets)} bad entries"


def named(by_name: Mapping[str, list[Table]], name: str) -> list[Table]:
    """The tables ``name`` matches (escaped, in any case); among several, the one spelled exactly as
    given is the one meant (``ORDER-ITEMS`` beside ``order items``)."""
    found = by_name.get(name_key(name), [])
    exact = [t for t in found if t.name == name]
    return exact if len(found) > 1 and len(exact) == 1 else found


def _index(tables: Iterable[Table]) -> tuple[dict[str, Table], dict[str, list[Table]]]:
    by_ref: dict[str, Table] = {}
    by_name: dict[str, list[Table]] = {}
    for table in tables:
        if table.reference_id in by_ref:
            continue
        by_ref[table.reference_id] = table
        by_name.setdefault(name_key(table.name), []).append(table)
    return by_ref, by_name


def _resolve_target(value: str, new_by_ref: dict[str, Table], new_by_name: dict[str, list[Table]]) -> Table:
    """The new table an entry's value names; raises ValueError saying why there is none."""
    ref = parse_table_reference(value)
    if ref.reference_id is not None:
        if ref.reference_id not in new_by_ref:
            raise ValueError(f"No table with reference id '{ref.reference_id}' in the new source.")
        return new_by_ref[ref.reference_id]
    candidates = named(new_by_name, ref.name)
    if not candidates:
        raise ValueError(f"No table called '{ref.name}' in the new source.")
    if len(candidates) > 1:
        listed = ", ".join(t.reference for t in candidates)
        raise ValueError(f"'{ref.name}' names several tables in the new source ({listed}); add the reference id.")
    return candidates[0]


def _explicit(
    explicit: Mapping[str, str],
    read_by_ref: dict[str, Table],
    read_by_name: dict[str, list[Table]],
    new_by_ref: dict[str, Table],
    new_by_name: dict[str, list[Table]],
    error: MappingError,
    current: tuple[dict[str, Table], dict[str, list[Table]]],
) -> dict[str, Table]:
    """The explicit entries' matches. A key naming a table of the current source that no node reads
    needs no mapping and is let be (a full table map is fine), its value still checked; a key naming
    no table of the current source is refused (a typo)."""
    chosen: dict[str, tuple[Table, int, str]] = {}  # read ref -> (new table, precedence, entry key)
    for key, value in explicit.items():
        try:
            key_ref = parse_table_reference(key)
        except InvalidReference as exc:
            error.bad_keys[key] = exc.problem
            continue
        if key_ref.reference_id is not None:  # the id wins over the name
            sources = [read_by_ref[key_ref.reference_id]] if key_ref.reference_id in read_by_ref else []
            what = f"reference id '{key_ref.reference_id}'"
        else:
            sources = named(read_by_name, key_ref.name)
            what = f"name '{key_ref.name}'"
        unread = not sources and (key_ref.reference_id in current[0] if key_ref.reference_id is not None
                                  else bool(named(current[1], key_ref.name)))
        if not sources and not unread:
            error.bad_keys[key] = f"The data source has no table with {what}."
            continue
        try:
            target = _resolve_target(value, new_by_ref, new_by_name) if isinstance(value, str) else None
        except (InvalidReference, ValueError) as exc:
            error.bad_targets[key] = exc.problem if isinstance(exc, InvalidReference) else str(exc)
            continue
        if target is None:
            error.bad_targets[key] = "Expected a table reference string ('name' or 'name:reference_id')."
            continue
        precedence = 2 if key_ref.reference_id is not None else 1
        for source in sources:
            previous = chosen.get(source.reference_id)
            if previous is None or precedence > previous[1]:
                chosen[source.reference_id] = (target, precedence, key)
            elif precedence == previous[1] and previous[0] != target:
                error.bad_keys[key] = f"Conflicts with the entry '{previous[2]}' for {source.reference}."
    return {ref: target for ref, (target, _, _) in chosen.items()}


def plan_mapping(
    read: Iterable[Table],
    new: Iterable[Table],
    explicit: Mapping[str, str] | None = None,
    *,
    match_reference_ids: bool = True,
    current: Iterable[Table] = (),
) -> list[Match]:
    """A match for every read table (deduplicated by reference id), or MappingError listing every
    problem. ``current``: every table of the current source (explicit keys may name unread ones)."""
    read = list(read)
    read_by_ref, read_by_name = _index(read)
    new_by_ref, new_by_name = _index(new)
    error = MappingError()
    chosen = _explicit(explicit or {}, read_by_ref, read_by_name, new_by_ref, new_by_name, error,
                       _index([*read, *current]))
    matches: list[Match] = []
    for ref, table in read_by_ref.items():
        if ref in chosen:
            matches.append(Match(table, chosen[ref], "explicit"))
        elif match_reference_ids and ref in new_by_ref:
            matches.append(Match(table, new_by_ref[ref], "reference_id"))
        else:
            candidates = named(new_by_name, table.name)
            if len(candidates) == 1:
                matches.append(Match(table, candidates[0], "name"))
            else:
                reason: Literal["missing", "ambiguous"] = "ambiguous" if candidates else "missing"
                error.unmapped.append(Unmapped(table, reason, tuple(candidates)))
    if error.unmapped or error.bad_keys or error.bad_targets:
        raise error
    return matches


def column_changes(old: list[dict] | None, new: list[dict]) -> dict | None:
    """Columns added, removed and changed (type or nullability) by name; None when the old ones are
    unknown. Names pair exactly first; a column left on each side whose names differ only in case is
    one column (another source may fold case), but ``Id`` and ``id`` of one table stay two."""
    if old is None:
        return None
    before = {str(c.get("name", "")): c for c in old}
    after = {str(c.get("name", "")): c for c in new}
    pairs = [(before[name], after[name]) for name in before.keys() & after.keys()]
    gone = {name: c for name, c in before.items() if name not in after}
    came = {name: c for name, c in after.items() if name not in before}
    for folded in {n.casefold() for n in gone} & {n.casefold() for n in came}:
        was = [n for n in gone if n.casefold() == folded]
        now = [n for n in came if n.casefold() == folded]
        if len(was) == 1 == len(now):
            pairs.append((gone.pop(was[0]), came.pop(now[0])))
    changed = [
        {"name": b.get("name"), "old": {"type": a.get("type"), "nullable": a.get("nullable")},
         "new": {"type": b.get("type"), "nullable": b.get("nullable")}}
        for a, b in pairs
        if (a.get("type"), a.get("nullable")) != (b.get("type"), b.get("nullable"))
    ]
    return {
        "added": sorted(came),
        "removed": sorted(gone),
        "changed": sorted(changed, key=lambda c: c["name"]),
    }

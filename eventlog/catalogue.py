"""The event types: one entry per type, what it means and what its ``data`` carries.

Payloads carry ids, names, changed field names and codes, never a secret value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    key: str
    description: str


EVENT_TYPES: dict[str, EventType] = {
    t.key: t
    for t in (
        EventType("data_source.created", "A data source was created (API, admin or an adapter)."),
        EventType("data_source.updated",
                  "A data source's configuration changed; `changed` names the fields (secrets by name)."),
        EventType("data_source.deleted", "A data source was deleted."),
        EventType("data_source.test_failed",
                  "A connection test failed: of the stored configuration, or of a change that was then "
                  "not applied; `stage` and `code` say where and why."),
        EventType("data_source.health_changed",
                  "A scheduled health check changed the source's state (healthy <-> failing)."),
        EventType("data_source.schema_changed",
                  "A schema refresh stored a new snapshot: tables and columns added, removed or changed, "
                  "and the workflows whose tables are affected."),
        EventType("workflow.repointed", "A workflow's data source was repointed to another source."),
    )
}


def is_known(key: str) -> bool:
    return key in EVENT_TYPES

"""The impact report (blast radius) of a change, before it is applied.

For the change as sent: which workflows, nodes and output tables read this source; which of the
tables they read would be missing on the new target, or lose columns or change column types (the
target's schema as the change's own connection test introspected it, against the cached tables the
workflows read); tenancy settings the new target would break; what happens to the scheduled
refreshes and health checks.

Three statements whatever the number of workflows: the tables read (one join), their cached
definitions, the tenancy settings. No second connection: without the test's introspection (the
connection is unchanged, or the connector read no tables) the tables are not compared and
``schema_compared`` is false.
"""

from __future__ import annotations

from typing import Any

from datasources import dependants
from datasources.connectors import TableInfo, TestResult
from datasources.models import DataSource, SchemaTable
from datasources.services import tenancy
from datasources.services.plan import UNCHANGED, Plan

#: Lists in the report are cut to this many entries (``truncated`` says so); the counts stay whole.
MAX_LISTED = 200
SCHEDULE_FIELDS = ("schema_auto_refresh", "schema_refresh_interval", "health_check_interval")


def _key(schema: str, name: str) -> tuple[str, str]:
    return (schema or "").lower(), name.lower()


def _cached(ds: DataSource, refs: set[str]) -> dict[str, dict[str, Any]]:
    """Reference id -> its newest cached definition (schema, name, columns)."""
    out: dict[str, dict[str, Any]] = {}
    rows = (SchemaTable.objects.filter(snapshot__data_source=ds, reference_id__in=list(refs))
            .order_by("reference_id", "-snapshot__version").values_list("reference_id", "schema", "name", "columns"))
    for ref, schema, name, columns in rows:
        out.setdefault(ref, {"schema": schema, "name": name, "columns": columns})
    return out


def _compare(cached: dict[str, Any] | None, name: str, target: dict[tuple[str, str], TableInfo]) -> dict[str, Any]:
    """A read table against the target: ``ok``, ``missing`` or ``changed`` (columns removed, types changed)."""
    found = target.get(_key(cached["schema"], cached["name"])) if cached else None
    if found is None and not cached:  # never cached (an older pin): by name alone
        found = next((t for key, t in target.items() if key[1] == name.lower()), None)
    if found is None:
        return {"status": "missing"}
    if not cached:
        return {"status": "ok"}
    new = {c.name.lower(): c for c in found.columns}
    removed, retyped = [], []
    for column in cached["columns"]:
        now = new.get(column["name"].lower())
        if now is None:
            removed.append(column["name"])
        elif (now.data_type or "").lower() != (column.get("type") or "").lower():
            retyped.append({"name": column["name"], "old": column.get("type"), "new": now.data_type})
    if removed or retyped:
        return {"status": "changed", "columns_removed": removed, "columns_type_changed": retyped}
    return {"status": "ok"}


def _tenancy(ds: DataSource, plan: Plan, target: dict[tuple[str, str], TableInfo] | None) -> dict[str, Any] | None:
    values = tenancy.current(ds) if plan.tenancy is UNCHANGED else plan.tenancy
    if not values:
        return None
    if values.get("level") != "TABLE" or target is None:
        return {"level": values.get("level"), "checked": target is not None, "breaks": False, "errors": {}}
    table = target.get(_key(values["schema"], values["table"]))
    if table is None:
        errors = {"tenancy_settings.table": [f"No table {values['schema']}.{values['table']} on the new target."]}
    else:
        columns = [{"name": c.name, "type": c.data_type} for c in table.columns]
        errors = tenancy.column_problems(values, columns)
    return {"level": "TABLE", "checked": True, "breaks": bool(errors), "errors": errors}


def _schedule(plan: Plan) -> dict[str, Any]:
    return {
        "changes": {key: plan.changes[key] for key in SCHEDULE_FIELDS if key in plan.changes},
        "recached_after_apply": plan.connection_changed and not plan.awaits_credentials,
        "paused": plan.awaits_credentials,  # credentials_required: no refresh or health check until updated
    }


def impact_of(ds: DataSource, plan: Plan, test: TestResult | None) -> dict[str, Any]:
    """The report for applying ``plan`` to ``ds`` (``test``: the change's own connection test, if any)."""
    reads = dependants.tables_read_from(ds) if ds.pk else []
    target = None
    if test is not None and test.ok and test.tables is not None:
        target = {_key(t.schema, t.name): t for t in test.tables}
    cached = _cached(ds, {r["table_reference_id"] for r in reads}) if target is not None and reads else {}
    verdicts: dict[str, dict[str, Any]] = {}
    workflows: dict[int, dict[str, Any]] = {}
    for row in reads:
        ref = row["table_reference_id"]
        if ref not in verdicts:
            verdicts[ref] = (_compare(cached.get(ref), row["table_name"], target) if target is not None
                             else {"status": "unchecked"})
        wf = workflows.setdefault(row["workflow_id"], {
            "id": row["workflow_id"], "reference_id": row["workflow_reference_id"], "name": row["workflow_name"],
            "nodes": {}, "tables": {}, "breaks": False})
        wf["nodes"][row["node_reference_id"]] = {"reference_id": row["node_reference_id"], "name": row["node_name"],
                                                 "output_table": row["output_table"] or None}
        wf["tables"][ref] = {"reference_id": ref, "name": row["table_name"], **verdicts[ref]}
        wf["breaks"] = wf["breaks"] or verdicts[ref]["status"] in ("missing", "changed")
    listed = [{**w, "nodes": list(w["nodes"].values()), "tables": list(w["tables"].values())}
              for w in workflows.values()]
    statuses = [v["status"] for v in verdicts.values()]
    nodes = {(w["id"], n["reference_id"]): n for w in listed for n in w["nodes"]}
    tenancy_report = _tenancy(ds, plan, target)
    return {
        "schema_compared": target is not None,
        "breaking": any(w["breaks"] for w in listed) or bool(tenancy_report and tenancy_report["breaks"]),
        "counts": {
            "workflows": len(listed), "workflows_broken": sum(w["breaks"] for w in listed), "nodes": len(nodes),
            "output_tables": sum(1 for n in nodes.values() if n["output_table"]),
            "tables_read": len(verdicts), "tables_missing": statuses.count("missing"),
            "tables_changed": statuses.count("changed"),
        },
        "workflows": listed[:MAX_LISTED],
        "truncated": len(listed) > MAX_LISTED,
        "tenancy": tenancy_report,
        "schedule": _schedule(plan),
    }

"""Hand-written OpenAPI components of the data-source endpoints (catalogue, schema cache, tenancy, dry run)."""

from __future__ import annotations

from typing import Any

from core import openapi as oa
from datasources import catalogue

ref, nullable_ref = oa.ref, oa.nullable_ref
_obj, _array = oa.object_schema, oa.array_schema


S, B, I, DT = oa.STRING, oa.BOOLEAN, oa.INTEGER, oa.DATE_TIME  # noqa: E741
NS, NI = {**S, "nullable": True}, {**I, "nullable": True}
ACTOR = {"type": "object", "required": ["kind", "id", "name"], "description": "Who made a change.",
         "properties": {"kind": {"type": "string", "enum": ["user", "token"]}, "id": I, "name": S}}


def static_components() -> dict[str, dict[str, Any]]:
    condition = _obj(path=S, **{"in": _array({}), "not_in": _array({})}, description=S)
    condition["description"] = "Holds when the value at `path` is in `in` (if given) and not in `not_in`."
    return {
        "CatalogueCondition": condition,
        "CatalogueField": _obj(
            name=S, kind={"type": "string", "enum": sorted(catalogue.FIELD_KINDS)}, label=S, required=B,
            required_when=nullable_ref("CatalogueCondition"), default={"nullable": True, "description": "Any."},
            choices=_array(S), min_value=NI, max_value=NI, max_length=NI, pattern=NS, help=S,
            affects_connection=B,
            transit={"type": "string", "enum": [catalogue.ENDPOINT, catalogue.PROTECTION, None], "nullable": True,
                     "description": "`endpoint`: any change sends the stored secrets elsewhere; `protection`: a "
                                    "weaker value lowers how they travel. Either needs the hop's secrets resent."},
            fields=_array(ref("CatalogueField")),
        ),
        "CatalogueSecretField": _obj(
            name=S, label=S, kind={"type": "string", "enum": sorted(catalogue.SECRET_KINDS)}, required=B,
            required_when=nullable_ref("CatalogueCondition"), help=S,
            hop={"type": "string", "enum": [catalogue.DATABASE_HOP, catalogue.SSH_HOP],
                 "description": "The hop the secret travels: the database's, or the SSH bastion's."},
            allow_empty={**B, "description": "true: the exact empty string `\"\"` is a value of its own (a "
                                             "server user without password), distinct from omitting the secret "
                                             "(kept) and `null` (cleared). false: a blank value is refused."},
        ),
        "CatalogueSecretRule": _obj(names=_array(S), when=nullable_ref("CatalogueCondition"), description=S),
        "DataSourceType": {
            **_obj(key={"type": "string", "enum": list(catalogue.CATALOGUE)}, label=S, family=S, connector=S,
                   driver_extra={**S, "description": "Optional driver its connection test needs; may be blank."},
                   file_based=B, connection_fields=_array(ref("CatalogueField")),
                   secret_fields=_array(ref("CatalogueSecretField")),
                   secret_rules=_array(ref("CatalogueSecretRule")),
                   connector_status=ref("ConnectorStatus")),
            "description": "A catalogue entry: everything a client needs to build a form for the type.",
        },
        "ConnectorStatus": {
            **_obj(available=B, driver=NS, driver_version=NS, install=NS, tested_against=NS,
                   verified_with={"type": "string", "nullable": True,
                                  "enum": ["real server", "emulator", "protocol stand-in", "local engine", None]},
                   stages=_array(S)),
            "description": "Whether this install can test the type: `available`, the driver package and its "
                           "installed version, what to install when it is missing, what the project's tests run "
                           "it against (`verified_with`: real server, emulator, protocol stand-in, or the engine run "
                           "locally) and the stages a test reports.",
        },
        "SchemaColumn": _obj(name=S, type=S, nullable=B, ordinal=I),
        "SchemaTable": _obj(reference_id={**S, "description": "Stable while (schema, name) persists."},
                            schema=S, name=S, kind={**S, "description": "`table` or `view`."},
                            columns=_array(ref("SchemaColumn"))),
        "SchemaSnapshot": _obj(version=I, created_at=DT, table_count=I, tables=_array(ref("SchemaTable"))),
        "SchemaCacheStatus": {"allOf": [ref("SchemaSummary"), _obj(checked_at={**DT, "nullable": True})]},
        "SchemaVersion": _obj(version=I, created_at=DT, table_count=I),
        "SchemaDiff": _obj(from_version=I, to_version=I, tables_added=_array(ref("SchemaTableLabel")),
                           tables_removed=_array(ref("SchemaTableLabel")),
                           tables_changed=_array(ref("SchemaTableChange"))),
        "SchemaTableLabel": _obj(schema=S, name=S, reference_id=S, kind=S),
        "SchemaTableChange": _obj(
            schema=S, name=S, reference_id=S, kind=S, old_kind=S, columns_added=_array(S), columns_removed=_array(S),
            columns_changed=_array(_obj(name=S, old=_obj(type=S, nullable=B), new=_obj(type=S, nullable=B))),
            columns_reordered=B,
        ),
        "TenancySettings": {
            **_obj(level={"type": "string", "enum": ["TABLE", "DATABASE"]},
                   client_column_type={"type": "string", "enum": ["NUMBER", "STRING", ""]},
                   schema=S, table=S, client_column=S, primary_key_column=S),
            "description": "How tenants are isolated. With `DATABASE` the other fields are empty strings.",
        },
        "DataSourceDryRun": {
            **_obj(
                dry_run={"type": "boolean", "enum": [True]},
                changed_fields=_array(S),
                test={**nullable_ref("TestResult"),
                      "description": "Null when nothing connection-related changed or the test was skipped."},
                impact=ref("ImpactReport"),
                data_source={"type": "object", "additionalProperties": {},
                             "description": "The representation as it would be after the change (shaped like "
                                            "DataSource; on create, server-assigned fields are null)."},
            ),
            "description": "Answer to `dry_run=true`: validated (and tested), nothing saved.",
        },
        **impact_components(),
    }


def impact_components() -> dict[str, dict[str, Any]]:
    """The impact report of a dry run or a plan (``datasources.services.impact``)."""
    verdict = {"type": "string", "enum": ["ok", "missing", "changed", "unchecked"],
               "description": "On the new target: `missing` table, `changed` (columns removed or retyped), "
                              "`unchecked` when the schema was not compared."}
    table = _obj(reference_id=S, name=S, status=verdict, columns_removed=_array(S),
                 columns_type_changed=_array(_obj(name=S, old=NS, new=NS)))
    table["required"] = ["reference_id", "name", "status"]  # the column lists only for a `changed` table
    node = _obj(reference_id=S, name=S, output_table=NS)
    workflow = _obj(id=I, reference_id=S, name=S, nodes=_array(node), tables=_array(table), breaks=B)
    counts = _obj(workflows=I, workflows_broken=I, nodes=I, output_tables=I, tables_read=I, tables_missing=I,
                  tables_changed=I)
    tenancy = {**_obj(level=S, checked=B, breaks=B, errors={"type": "object", "additionalProperties": _array(S)}),
               "nullable": True, "description": "Null without tenancy settings."}
    schedule = _obj(changes={"type": "object", "additionalProperties": _obj(old={}, new={})},
                    recached_after_apply=B, paused=B)
    report = _obj(schema_compared=B, breaking=B, counts=counts, workflows=_array(workflow), truncated=B,
                  tenancy=tenancy, schedule=schedule)
    report["description"] = (
        "What the change would break, before it is applied: the workflows, nodes and output tables reading "
        "this source; each table they read checked against the new target's schema as the change's own "
        "connection test introspected it (`schema_compared` false when the connection is unchanged or no "
        "tables were read); tenancy settings the target breaks; refresh and health schedule changes.")
    return {"ImpactReport": report}

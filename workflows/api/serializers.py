"""Request and response shapes for /api/v1/workflows/. Semantics live in the services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import ActorSerializer, StrictBooleanField, StrictCharField, StrictSerializer
from organizations.models import Organization
from organizations.tracking import actor_of
from workflows.models import Node, NodeKind, Workflow, WorkflowDataSource
from workflows.references import render_table, render_workflow
from workflows.services import rules
from workflows.services.sources import source_reference, source_repr, target_of

WORKFLOW_READ_ONLY = rules.WORKFLOW_READ_ONLY


class TrackedSerializer(serializers.ModelSerializer):
    """Version, timestamps and who created/updated, shared by every representation."""

    created_by = serializers.SerializerMethodField()
    updated_by = serializers.SerializerMethodField()

    @extend_schema_field(ActorSerializer(allow_null=True))
    def get_created_by(self, obj: Any) -> dict[str, Any] | None:
        return actor_of(obj, "created")

    @extend_schema_field(ActorSerializer(allow_null=True))
    def get_updated_by(self, obj: Any) -> dict[str, Any] | None:
        return actor_of(obj, "updated")


# ---- requests ---------------------------------------------------------------------------------


class WorkflowWriteSerializer(StrictSerializer):
    """Create, PUT and PATCH body of a workflow."""

    read_only_names = WORKFLOW_READ_ONLY
    # Built from the rules (workflows/services/rules.py), which the services apply to every body.
    name = StrictCharField(min_length=rules.NAME.min_length, max_length=rules.NAME.max_length)
    description = StrictCharField(allow_blank=True, allow_null=True, max_length=rules.DESCRIPTION.max_length,
                                  required=False)


class SourceWriteSerializer(StrictSerializer):
    """Exactly one qualified reference: a data source (with version/sample) or a workflow."""

    read_only_names = frozenset({"kind", "id", "reference_id", "reference", "url", "is_sample", "source",
                                 "workflow", "version", "created_at", "created_by", "updated_at", "updated_by"})
    source_data_source = StrictCharField(
        required=False, allow_null=True, max_length=600,
        help_text="`org.source_name[:reference_id][:sample][:vN|:current]`, e.g. `acme.shop:xje9:v2`.",
    )
    source_workflow = StrictCharField(
        required=False, allow_null=True, max_length=600, help_text="`org.workflow_name[:reference_id]`."
    )


class RepointSerializer(SourceWriteSerializer):
    """PATCH body of a workflow data source: the new source and optional explicit table mappings."""

    mapped_tables = serializers.DictField(
        child=StrictCharField(max_length=600),
        required=False,
        allow_empty=True,
        help_text='Old table -> new table, each `name` or `name:reference_id`: `{"old_table:xje9": "new_table:a842"}`.',
    )


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class IdOrReferenceField(serializers.Field):
    """A workflow data source id, or the qualified reference of its source."""

    default_error_messages = {"invalid": "Expected a data source id or a qualified reference."}

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, bool) or not isinstance(data, (int, str)) or data == "":
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class NodeInputWriteSerializer(StrictSerializer):
    data_source = IdOrReferenceField(help_text="The workflow data source: its id or its source's reference.")
    table = StrictCharField(max_length=600, help_text="`table_name[:reference_id]` in that source.")


class ColumnSerializer(StrictSerializer):
    name = StrictCharField(min_length=1, max_length=255)
    type = StrictCharField(max_length=255, required=False, allow_blank=True)
    nullable = StrictBooleanField(required=False)


class OutputTableWriteSerializer(StrictSerializer):
    """A node's output table. On create its name is required; a PATCH merges it into the node's current
    output table, so there the name may be left out when the node already has one."""

    name = StrictCharField(min_length=1, max_length=255)
    columns = ColumnSerializer(many=True, required=False)


class NodeWriteSerializer(StrictSerializer):
    """Create and PATCH body of a node; ``inputs`` replaces the list, ``output_table: null`` removes it."""

    read_only_names = frozenset({"id", "reference_id", "url", "workflow", "version", "created_at", "created_by",
                                 "updated_at", "updated_by"})
    name = StrictCharField(min_length=1, max_length=255)
    kind = serializers.ChoiceField(choices=NodeKind.choices, required=False)
    # many=True builds a ListSerializer, which takes max_length; the stub types the call as the child's __init__.
    inputs = NodeInputWriteSerializer(many=True, required=False, max_length=10_000)  # type: ignore[call-arg]
    output_table = OutputTableWriteSerializer(required=False, allow_null=True)


# ---- responses --------------------------------------------------------------------------------


class WorkflowSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reference_id = serializers.CharField()
    name = serializers.CharField()
    reference = serializers.CharField()
    url = serializers.CharField()


def workflow_summary(wf: Workflow) -> dict[str, Any]:
    """A short workflow reference object."""
    return {"id": wf.pk, "reference_id": wf.reference_id, "name": wf.name,
            "reference": render_workflow(wf.organization.slug, wf.name, wf.reference_id),
            "url": f"/api/v1/workflows/{wf.pk}/"}


class WorkflowSerializer(TrackedSerializer):
    """A workflow."""

    kind = serializers.SerializerMethodField()
    reference = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    organization: serializers.SlugRelatedField[Organization] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = Workflow
        fields = ["kind", "id", "reference_id", "reference", "url", "organization", "name", "description",
                  "version", "created_at", "created_by", "updated_at", "updated_by"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=["workflow"]))
    def get_kind(self, obj: Workflow) -> str:
        return "workflow"

    def get_reference(self, obj: Workflow) -> str:
        return render_workflow(obj.organization.slug, obj.name, obj.reference_id)

    def get_url(self, obj: Workflow) -> str:
        return f"/api/v1/workflows/{obj.pk}/"


class SourceSerializer(serializers.Serializer):
    """What a workflow data source points at, with its version."""

    type = serializers.ChoiceField(choices=["data_source", "workflow"])
    id = serializers.IntegerField()
    reference_id = serializers.CharField()
    name = serializers.CharField()
    reference = serializers.CharField()
    version = serializers.JSONField(help_text="Schema version (integer) or `current`; a workflow's own version.")
    resolved_version = serializers.IntegerField(allow_null=True, help_text="The version `current` means now.")
    is_sample = serializers.BooleanField()
    url = serializers.CharField()


class WorkflowDataSourceSerializer(TrackedSerializer):
    """Redivis's "get" representation of a dataSource."""

    kind = serializers.SerializerMethodField()
    reference = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    # A declared field, not Field.source (DRF's metaclass takes fields out of the class body; the stub can't tell).
    source = serializers.SerializerMethodField()  # type: ignore[assignment]
    source_data_source = serializers.SerializerMethodField()
    source_workflow = serializers.SerializerMethodField()
    workflow = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowDataSource
        fields = ["kind", "id", "reference_id", "reference", "url", "is_sample", "source", "source_data_source",
                  "source_workflow", "workflow", "version", "created_at", "created_by", "updated_at", "updated_by"]
        read_only_fields = fields

    def _org(self, obj: WorkflowDataSource) -> str:
        return obj.workflow.organization.slug

    @extend_schema_field(serializers.ChoiceField(choices=["dataSource"]))
    def get_kind(self, obj: WorkflowDataSource) -> str:
        return "dataSource"

    def get_reference(self, obj: WorkflowDataSource) -> str:
        return source_reference(target_of(obj), self._org(obj))

    def get_url(self, obj: WorkflowDataSource) -> str:
        return f"/api/v1/workflows/{obj.workflow_id}/data-sources/{obj.pk}/"

    @extend_schema_field(SourceSerializer)
    def get_source(self, obj: WorkflowDataSource) -> dict[str, Any]:
        return source_repr(target_of(obj), self._org(obj))

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_source_data_source(self, obj: WorkflowDataSource) -> str | None:
        return self.get_reference(obj) if obj.source_data_source_id else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_source_workflow(self, obj: WorkflowDataSource) -> str | None:
        return self.get_reference(obj) if obj.source_workflow_id else None

    @extend_schema_field(WorkflowSummarySerializer)
    def get_workflow(self, obj: WorkflowDataSource) -> dict[str, Any]:
        return workflow_summary(obj.workflow)


class TableSerializer(serializers.Serializer):
    name = serializers.CharField()
    reference_id = serializers.CharField()
    reference = serializers.CharField()


class NodeInputSerializer(serializers.Serializer):
    data_source = serializers.DictField(help_text="{id, reference_id, reference, url} of the workflow data source.")
    table = TableSerializer()


class OutputTableSerializer(serializers.Serializer):
    name = serializers.CharField()
    reference_id = serializers.CharField()
    reference = serializers.CharField()
    columns = serializers.ListField(child=serializers.DictField())


class NodeSerializer(TrackedSerializer):
    """A transform or notebook, the tables it reads and its output table."""

    url = serializers.SerializerMethodField()
    inputs = serializers.SerializerMethodField()
    output_table = serializers.SerializerMethodField()
    workflow = serializers.SerializerMethodField()

    class Meta:
        model = Node
        fields = ["kind", "id", "reference_id", "url", "name", "inputs", "output_table", "workflow", "version",
                  "created_at", "created_by", "updated_at", "updated_by"]
        read_only_fields = fields

    def get_url(self, obj: Node) -> str:
        return f"/api/v1/workflows/{obj.workflow_id}/nodes/{obj.pk}/"

    @extend_schema_field(NodeInputSerializer(many=True))
    def get_inputs(self, obj: Node) -> list[dict[str, Any]]:
        org = obj.workflow.organization.slug
        out = []
        for item in obj.inputs.all():
            wds = item.workflow_data_source
            out.append({
                "data_source": {"id": wds.pk, "reference_id": wds.reference_id,
                                "reference": source_reference(target_of(wds), org),
                                "url": f"/api/v1/workflows/{obj.workflow_id}/data-sources/{wds.pk}/"},
                "table": {"name": item.table_name, "reference_id": item.table_reference_id,
                          "reference": render_table(item.table_name, item.table_reference_id)},
            })
        return out

    @extend_schema_field(OutputTableSerializer(allow_null=True))
    def get_output_table(self, obj: Node) -> dict[str, Any] | None:
        if not obj.output_table_name:
            return None
        return {"name": obj.output_table_name, "reference_id": obj.reference_id,
                "reference": render_table(obj.output_table_name, obj.reference_id), "columns": obj.output_columns}

    @extend_schema_field(WorkflowSummarySerializer)
    def get_workflow(self, obj: Node) -> dict[str, Any]:
        return workflow_summary(obj.workflow)


class WorkflowTableSerializer(serializers.Serializer):
    """An output table of a workflow (what other workflows can read)."""

    kind = serializers.ChoiceField(choices=["table"])
    name = serializers.CharField()
    reference_id = serializers.CharField()
    reference = serializers.CharField()
    columns = serializers.ListField(child=serializers.DictField())
    node = serializers.DictField(help_text="{id, reference_id, name, url} of the node that outputs it.")


def table_repr(node: Node) -> dict[str, Any]:
    """A node's output table as a workflow table."""
    return {"kind": "table", "name": node.output_table_name, "reference_id": node.reference_id,
            "reference": render_table(node.output_table_name, node.reference_id), "columns": node.output_columns,
            "node": {"id": node.pk, "reference_id": node.reference_id, "name": node.name,
                     "url": f"/api/v1/workflows/{node.workflow_id}/nodes/{node.pk}/"}}


class PlanTableSerializer(serializers.Serializer):
    old = TableSerializer()
    new = TableSerializer()
    matched_by = serializers.ChoiceField(choices=["explicit", "reference_id", "name"])
    reference_changed = serializers.BooleanField(help_text="Whether node inputs are rewritten (id or name differ).")
    nodes = serializers.ListField(child=serializers.DictField(), help_text="Nodes that read the table.")
    column_changes = serializers.DictField(allow_null=True, help_text="{added, removed, changed}; null if unknown.")


class MergedTablesSerializer(serializers.Serializer):
    new = TableSerializer()
    old = TableSerializer(many=True)


class RepointPlanSerializer(serializers.Serializer):
    """The answer to ``?dry_run=true``: what a repoint would do, changing nothing."""

    dry_run = serializers.BooleanField()
    data_source = WorkflowDataSourceSerializer()
    to = SourceSerializer()
    tables = PlanTableSerializer(many=True)
    merged_tables = MergedTablesSerializer(
        many=True, help_text="Tables read downstream that map onto one new table: a node that read several of "
                             "them reads it once afterwards. Empty when no two tables merge.")
    nodes_affected = serializers.IntegerField()
    inputs_rewritten = serializers.IntegerField()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = SourceSerializer()  # "from" is a keyword: declared here, not as an attribute
        return fields

"""Shapes of plans and change sets (reading), and of the change-set request (for the docs; the
view validates each item's body as PATCH does)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from changes.models import ChangePlan, ChangeSet, ChangeSetItem, ChangeSetStatus, PlanStatus
from core.openapi import nullable_ref, ref
from core.serializers import StrictSerializer

PATCH_BODY_COMPONENT = "PatchedDataSourceRequest"
_CHANGES_HELP = ("The planned diff: dotted paths with `old` and `new` values; secrets only as `changed` or "
                 "`cleared`, never their values.")


@extend_schema_field({**nullable_ref("TestResult"), "description": "The connection test of the change (null when "
                                                                   "the connection is unchanged)."})
class TestField(serializers.JSONField):
    pass


@extend_schema_field({**nullable_ref("ImpactReport"), "description": "What the change would break."})
class ImpactField(serializers.JSONField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": {}, "description": _CHANGES_HELP})
class ChangesField(serializers.JSONField):
    pass


@extend_schema_field(ref(PATCH_BODY_COMPONENT))
class PatchBodyField(serializers.JSONField):
    pass


class PlanSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True, help_text="The plan's id (`pln_...`).")
    data_source = serializers.IntegerField(source="data_source_id", read_only=True)
    status = serializers.ChoiceField(choices=PlanStatus.choices, read_only=True)
    version = serializers.IntegerField(source="base_version", read_only=True,
                                       help_text="The source's version the plan was made against.")
    changed = serializers.ListField(child=serializers.CharField(), read_only=True,
                                    help_text="Changed field paths (secrets by name).")
    changes = ChangesField(read_only=True)
    touches_connection = serializers.BooleanField(read_only=True, help_text=(
        "It changes connection.*, credentials.* or connection_string (the four-eyes rule applies)."))
    restores = serializers.IntegerField(read_only=True, allow_null=True, help_text=(
        "The revision number this plan restores (made with POST .../revisions/{number}/plan/), else null."))
    test = TestField(read_only=True)
    created_by = serializers.CharField(read_only=True, help_text="The author (user or token label).")
    stale = serializers.SerializerMethodField(help_text=(
        "Open, but the source changed since the plan was made (its version is not the plan's): applying it "
        "would be 409. Such plans are left out of the list."))

    class Meta:
        model = ChangePlan
        fields = ["id", "data_source", "status", "stale", "version", "changed", "changes", "touches_connection",
                  "restores", "test",
                  "created_by", "created_at", "expires_at", "applied_at", "applied_by", "cancelled_at",
                  "cancelled_by"]
        read_only_fields = fields


    def get_stale(self, plan: ChangePlan) -> bool:
        source = plan.data_source
        return plan.status == PlanStatus.OPEN and source is not None and source.version != plan.base_version


class PlanDetailSerializer(PlanSerializer):
    impact = ImpactField(read_only=True)

    class Meta(PlanSerializer.Meta):
        fields = [*PlanSerializer.Meta.fields, "impact"]
        read_only_fields = fields


@extend_schema_field(ref("DataSource"))
class DataSourceField(serializers.JSONField):
    pass


class AppliedPlanSerializer(PlanDetailSerializer):
    data_source_after = DataSourceField(read_only=True, help_text="The data source after the plan was applied.")

    class Meta(PlanDetailSerializer.Meta):
        fields = [*PlanDetailSerializer.Meta.fields, "data_source_after"]
        read_only_fields = fields


@extend_schema_field({"type": "object", "nullable": True, "additionalProperties": {}, "description": (
    "Why the item failed: `code` (the error catalogue), `message`, `errors`, and for a failed test `stage` and "
    "`test`.")})
class ItemErrorField(serializers.JSONField):
    pass


class ChangeSetItemSerializer(serializers.ModelSerializer):
    data_source = serializers.IntegerField(source="data_source_id", read_only=True, allow_null=True,
                                           help_text="The source's id; null once the source was deleted.")
    version = serializers.IntegerField(source="base_version", read_only=True,
                                       help_text="The source's version the item was tested against.")
    ok = serializers.BooleanField(read_only=True, help_text="Validated and (for a connection change) tested.")
    changed = serializers.ListField(child=serializers.CharField(), read_only=True)
    changes = ChangesField(read_only=True)
    test = TestField(read_only=True)
    impact = ImpactField(read_only=True)
    error = ItemErrorField(read_only=True)

    class Meta:
        model = ChangeSetItem
        fields = ["position", "data_source", "version", "ok", "changed", "changes", "test", "impact", "error"]
        read_only_fields = fields


class ChangeSetSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True, help_text="The change set's id (`chs_...`).")
    status = serializers.ChoiceField(choices=ChangeSetStatus.choices, read_only=True)
    created_by = serializers.CharField(read_only=True)

    class Meta:
        model = ChangeSet
        fields = ["id", "status", "item_count", "failed_count", "created_by", "created_at", "expires_at",
                  "applied_at", "applied_by"]
        read_only_fields = fields


class ChangeSetDetailSerializer(ChangeSetSerializer):
    items = ChangeSetItemSerializer(many=True, read_only=True)

    class Meta(ChangeSetSerializer.Meta):
        fields = [*ChangeSetSerializer.Meta.fields, "items"]
        read_only_fields = fields


class AppliedSourceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    etag = serializers.CharField()


class AppliedChangeSetSerializer(ChangeSetDetailSerializer):
    applied = AppliedSourceSerializer(many=True, read_only=True, help_text="Each source's new version and ETag.")

    class Meta(ChangeSetDetailSerializer.Meta):
        fields = [*ChangeSetDetailSerializer.Meta.fields, "applied"]
        read_only_fields = fields


class ChangeSetItemRequestSerializer(StrictSerializer):
    data_source = serializers.IntegerField(min_value=1, help_text="A data source of your organization.")
    changes = PatchBodyField(help_text="A PATCH body of that source (the same fields and rules as PATCH).")


class ChangeSetRequestSerializer(StrictSerializer):
    items = serializers.ListField(child=ChangeSetItemRequestSerializer(), min_length=1, max_length=200,
                                  help_text="At most CHANGE_SET_MAX_ITEMS (200) items, each source at most once.")

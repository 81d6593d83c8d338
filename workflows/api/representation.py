"""The JSON representation of a workflow data source, built directly.

``WorkflowDataSourceSerializer`` declares the fields (the OpenAPI schema, the field order); rendering
them one by one through DRF was a good part of the hot GET's CPU time. This builds the same dict in
one pass; ``tests/workflows/test_workflow_reads.py`` holds it equal to the serializer's output.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from organizations.tracking import actor_of
from workflows.api.serializers import workflow_summary
from workflows.models import WorkflowDataSource
from workflows.services.sources import source_repr, target_of


def _when(value: datetime) -> str:
    """DRF's ISO 8601 rendering of an aware datetime in the default time zone ("Z" for UTC),
    without its per-call lookup of the active time zone (the API never activates another)."""
    text = value.astimezone(timezone.get_default_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def workflow_data_source_dict(wds: WorkflowDataSource) -> dict[str, Any]:
    """``WorkflowDataSourceSerializer(wds).data``, the same keys in the same order."""
    source = source_repr(target_of(wds), wds.workflow.organization.slug)
    reference = source["reference"]
    return {
        "kind": "dataSource",
        "id": wds.pk,
        "reference_id": wds.reference_id,
        "reference": reference,
        "url": f"/api/v1/workflows/{wds.workflow_id}/data-sources/{wds.pk}/",
        "is_sample": wds.is_sample,
        "source": source,
        "source_data_source": reference if wds.source_data_source_id else None,
        "source_workflow": reference if wds.source_workflow_id else None,
        "workflow": workflow_summary(wds.workflow),
        "version": wds.version,
        "created_at": _when(wds.created_at),
        "created_by": actor_of(wds, "created"),
        "updated_at": _when(wds.updated_at),
        "updated_by": actor_of(wds, "updated"),
    }

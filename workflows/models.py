"""Workflows, their data sources (pointers at a DataSource version or another workflow) and nodes."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower

from core.models import Tracked
from datasources.models import DataSource
from organizations.models import Organization


class Workflow(Tracked):
    """A pipeline of transforms and notebooks reading tables of its data sources."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="workflows")
    reference_id = models.CharField(max_length=16, unique=True, editable=False)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint("organization", Lower("name"), name="uniq_workflow_name_per_org")]

    def __str__(self) -> str:
        return self.name


class WorkflowDataSource(Tracked):
    """Redivis's ``dataSource``: a workflow's pointer at a DataSource version (maybe a sample) or a workflow."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="data_sources")
    reference_id = models.CharField(max_length=16, unique=True, editable=False)
    # RESTRICT (not PROTECT) so that deleting a whole organization, which cascades to both ends, still works.
    source_data_source = models.ForeignKey(
        DataSource, null=True, blank=True, on_delete=models.RESTRICT, related_name="workflow_uses"
    )
    source_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="Schema snapshot version; empty follows the newest (current)."
    )
    is_sample = models.BooleanField(default=False)
    source_workflow = models.ForeignKey(
        Workflow, null=True, blank=True, on_delete=models.RESTRICT, related_name="dependants"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(source_data_source__isnull=False, source_workflow__isnull=True)
                    | models.Q(
                        source_data_source__isnull=True,
                        source_workflow__isnull=False,
                        source_version__isnull=True,
                        is_sample=False,
                    )
                ),
                name="workflow_source_exactly_one",
            ),
            models.CheckConstraint(
                condition=~models.Q(source_workflow=models.F("workflow")), name="workflow_source_not_self"
            ),
        ]

    def __str__(self) -> str:
        source = self.source_data_source or self.source_workflow
        return f"{self.workflow} ← {source}"

    @property
    def organization_id(self) -> int:
        """The workflow's organization (audit records need it)."""
        return self.workflow.organization_id


class NodeKind(models.TextChoices):
    TRANSFORM = "transform", "Transform"
    NOTEBOOK = "notebook", "Notebook"


class Node(Tracked):
    """A transform or notebook; reads tables of the workflow's data sources, may output one table."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="nodes")
    reference_id = models.CharField(
        max_length=16, unique=True, editable=False, help_text="Also the reference id of its output table."
    )
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=NodeKind.choices, default=NodeKind.TRANSFORM)
    output_table_name = models.CharField(max_length=255, blank=True, default="")
    output_columns = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint("workflow", Lower("name"), name="uniq_node_name_per_workflow"),
            models.UniqueConstraint(
                "workflow",
                Lower("output_table_name"),
                condition=~models.Q(output_table_name=""),
                name="uniq_output_table_per_workflow",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def organization_id(self) -> int:
        """The workflow's organization (audit records need it)."""
        return self.workflow.organization_id


class NodeInput(models.Model):
    """One table a node reads: held by the table's stable reference id and its name, so repoints bulk-update."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="inputs")
    workflow_data_source = models.ForeignKey(WorkflowDataSource, on_delete=models.CASCADE, related_name="inputs")
    # Wider than reference ids: a repoint briefly marks rows with a prefix while it rewrites them.
    table_reference_id = models.CharField(max_length=32)
    table_name = models.CharField(max_length=255)

    class Meta:
        ordering = ["id"]
        # No unique (node, source, table): a repoint that swaps two tables rewrites them in one statement.
        indexes = [models.Index(fields=["workflow_data_source", "table_reference_id"])]

    def __str__(self) -> str:
        return f"{self.node_id} reads {self.table_name}:{self.table_reference_id}"

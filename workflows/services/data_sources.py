"""Add and remove a workflow's data sources (repointing lives in ``repoint``)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core.errors import Conflict, PreconditionFailed
from core.references import new_reference_id
from datasources.services import audit
from organizations.actors import Actor
from workflows.models import Node, WorkflowDataSource
from workflows.services.common import (
    etag_matches,
    get_workflow,
    get_workflow_data_source,
    lock_organization,
    stamp,
)
from workflows.services.sources import check_no_cycle, ensure_org, resolve_target, source_reference, target_of


def add_data_source(
    *, actor: Actor, workflow: Any, source_data_source: str | None = None, source_workflow: str | None = None
) -> WorkflowDataSource:
    """Add a source to a workflow: a data source (version, sample) or another workflow, never a cycle.

    The source is resolved under the locks (the organization, the workflow, then the data source
    itself, read locked): a concurrent deletion of it either waits and then sees this workflow among
    its dependants (409), or commits first and this finds no such source (404), never a row that
    points at a deleted one (it failed at COMMIT: 500)."""
    with transaction.atomic():
        lock_organization(actor)  # serialises cycle checks and workflow deletions across the organization
        wf = get_workflow(actor, workflow, for_update=True)
        target = resolve_target(actor, source_data_source=source_data_source, source_workflow=source_workflow,
                                lock=True)
        ensure_org(actor, target)
        check_no_cycle(wf, target)
        existing = WorkflowDataSource.objects.filter(workflow=wf)
        if target.workflow is not None:
            existing = existing.filter(source_workflow=target.workflow)
        else:
            existing = existing.filter(
                source_data_source=target.data_source, source_version=target.version, is_sample=target.is_sample
            )
        if existing.exists():
            field = "source_workflow" if target.workflow else "source_data_source"
            raise Conflict("This workflow already has that source.", errors={field: ["Already a data source."]})
        wds = WorkflowDataSource(
            workflow=wf,
            reference_id=new_reference_id(WorkflowDataSource),
            source_data_source=target.data_source,
            source_workflow=target.workflow,
            source_version=target.version,
            is_sample=target.is_sample,
        )
        stamp(wds, actor, created=True)
        wds.save()
        reference = source_reference(target, wf.organization.slug)
        audit.record(actor=actor, action="create", target=wds, changes={"source": {"old": None, "new": reference}})
    return wds


def delete_data_source(*, actor: Actor, workflow: Any, data_source: Any, if_match: str | None = None) -> None:
    """Remove a workflow data source that no node reads (409 naming the nodes otherwise)."""
    with transaction.atomic():
        lock_organization(actor)  # the order every workflow write takes: organization, workflow, data source
        wf = get_workflow(actor, workflow, for_update=True)
        wds = get_workflow_data_source(actor, wf, data_source, for_update=True)
        if not etag_matches(wds, if_match):
            raise PreconditionFailed()
        readers = sorted(
            Node.objects.filter(inputs__workflow_data_source=wds).distinct().values_list("name", flat=True)
        )
        if readers:
            raise Conflict(
                f"Nodes still read tables of this data source: {', '.join(readers)}.",
                errors={"nodes": readers},
                extra={"nodes": readers},
            )
        old = source_reference(target_of(wds), wf.organization.slug)
        audit.record(actor=actor, action="delete", target=wds, changes={"source": {"old": old, "new": None}})
        wds.delete()

"""Lookups shared by the workflow services: organization scoping, qualified references, actors."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from core.errors import InvalidRequest, NotFound
from core.numbers import parse_ascii_int
from datasources.models import DataSource
from datasources.services.datasources import etag_matches
from organizations.actors import Actor
from organizations.tracking import with_actor_names
from workflows.models import Workflow, WorkflowDataSource
from workflows.references import (
    CURRENT,
    InvalidReference,
    SourceReference,
    name_key,
    parse_source_reference,
    parse_workflow_reference,
)

M = TypeVar("M", bound=Model)

__all__ = ["etag_matches", "stamp", "bad_reference", "check_org", "pick", "get_workflow", "get_workflow_data_source"]


def stamp(obj: Any, actor: Actor, *, created: bool = False) -> None:
    """Set updated_by (and created_by) from the actor."""
    user = actor.user if getattr(actor.user, "pk", None) else None
    obj.updated_by, obj.updated_by_token = user, actor.token
    if created:
        obj.created_by, obj.created_by_token = user, actor.token


def bad_reference(field: str, exc: InvalidReference) -> InvalidRequest:
    """A 400 naming the field and the part of the reference that is wrong."""
    return InvalidRequest(f"Malformed reference in '{field}': the {exc.part} is wrong.", errors={field: [str(exc)]})


def check_org(actor: Actor, ref: SourceReference, field: str, what: str) -> None:
    """Another organization's slug answers 404, exactly like an unknown name."""
    if ref.org != actor.organization.slug.lower():
        raise NotFound(f"No such {what} in your organization.", errors={field: [f"No such {what}."]})


def pick(items: Iterable[M], ref: SourceReference, *, field: str, what: str) -> M:
    """The one object whose reference id (wins) or escaped name matches ``ref``; 404 or 400 (ambiguous)."""
    if ref.reference_id is not None:
        found = [o for o in items if getattr(o, "reference_id", None) == ref.reference_id]
    else:
        key = name_key(ref.name)
        found = [o for o in items if name_key(o.name) == key]  # type: ignore[attr-defined]
    if not found:
        raise NotFound(f"No such {what} in your organization.", errors={field: [f"No such {what}."]})
    if len(found) > 1:
        raise InvalidRequest(
            f"The name '{ref.name}' matches several {what}s; add the reference id.",
            errors={field: [f"Ambiguous: {', '.join(getattr(o, 'reference_id', '') for o in found)}."]},
        )
    return found[0]


def get_workflow(actor: Actor, lookup: Any, *, for_update: bool = False, field: str = "workflow") -> Workflow:
    """The caller's organization's workflow by id or qualified reference; 404 otherwise."""
    qs = Workflow.objects.filter(organization=actor.organization).select_related("organization")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    text = str(lookup)
    pk = parse_ascii_int(text)
    if pk is not None:
        workflow = by_pk(qs, pk)
        if workflow is None:
            raise NotFound("Workflow not found.")
        return workflow
    try:
        ref = parse_workflow_reference(text)
    except InvalidReference as exc:
        raise bad_reference(field, exc) from None
    check_org(actor, ref, field, "workflow")
    if ref.reference_id is not None:  # the id wins over the name
        return _one(qs.filter(reference_id=ref.reference_id), field)
    candidates = Workflow.objects.filter(organization=actor.organization).only("id", "name", "reference_id")
    return _one(qs.filter(pk=pick(candidates, ref, field=field, what="workflow").pk), field)


def by_pk(qs: QuerySet[M], pk: int) -> M | None:
    """The row with this primary key, or None: ``.first()`` without its ORDER BY, which costs
    more to compile than the lookup itself on an annotated queryset."""
    return next(iter(qs.filter(pk=pk).order_by()[:1]), None)


def _one(qs: Any, field: str) -> Any:
    obj = qs.first()
    if obj is None:
        raise NotFound("Workflow not found.", errors={field: ["No such workflow."]})
    return obj


#: What a representation reads of the data source a workflow data source points at.
_SOURCE_FIELDS = {"id", "organization", "reference_id", "name", "type", "schema_version"}


@cache
def _renderable() -> QuerySet[WorkflowDataSource]:
    unread = [f"source_data_source__{f.name}" for f in DataSource._meta.concrete_fields if f.name not in _SOURCE_FIELDS]
    return with_actor_names(
        WorkflowDataSource.objects.select_related("workflow__organization", "source_data_source", "source_workflow")
        .defer(*unread)  # its connection, secrets' metadata, test result...: loaded only if ever touched
    )


def renderable() -> QuerySet[WorkflowDataSource]:
    """Workflow data sources with what their representation reads, in one statement (the annotated
    queryset is built once per process: resolving its subqueries costs more than running them)."""
    return _renderable().all()


def get_workflow_data_source(
    actor: Actor, workflow: Workflow, lookup: Any, *, for_update: bool = False, field: str = "data_source"
) -> WorkflowDataSource:
    """A workflow's data source by id or by the qualified reference of its current source
    (unlocked: with everything its representation reads)."""
    if for_update:
        qs = WorkflowDataSource.objects.filter(workflow=workflow).select_for_update(of=("self",)).select_related(
            "workflow__organization", "source_data_source", "source_workflow"
        )
    else:
        qs = renderable().filter(workflow=workflow)
    text = str(lookup)
    pk = parse_ascii_int(text)
    if pk is not None:
        found = by_pk(qs, pk)
        if found is None:
            raise NotFound("Workflow data source not found.")
        return found
    try:
        ref = parse_source_reference(text)
    except InvalidReference as exc:
        raise bad_reference(field, exc) from None
    check_org(actor, ref, field, "workflow data source")
    key = name_key(ref.name)
    matches = []
    for wds in qs:
        source = wds.source_data_source or wds.source_workflow
        assert source is not None  # a check constraint: exactly one of the two is set
        if ref.reference_id is not None and source.reference_id != ref.reference_id:
            continue
        if ref.reference_id is None and name_key(source.name) != key:
            continue
        if ref.sample and not wds.is_sample:
            continue
        if ref.version is not None:
            if wds.source_workflow_id is not None:
                continue
            if wds.source_version != (None if ref.version == CURRENT else ref.version):
                continue
        matches.append(wds)
    if not matches:
        raise NotFound("Workflow data source not found.")
    if len(matches) > 1:
        raise InvalidRequest(
            "Several data sources of this workflow match; use the id or add the version.",
            errors={field: [f"Matches ids {', '.join(str(m.pk) for m in matches)}."]},
        )
    return matches[0]

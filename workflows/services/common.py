"""Shared by the workflow services: who acts (``stamp``), ETags, the organization lock every write
takes first (``lock_organization``), and the scoped lookups (``workflows.selectors``) under the names
the services use."""

from __future__ import annotations

from typing import Any

from datasources.services.datasources import etag_matches
from organizations.actors import Actor
from organizations.models import Organization
from workflows.selectors import (
    bad_reference,
    by_pk,
    check_org,
    pick,
    workflow_data_source_for_actor,
    workflow_for_actor,
)

__all__ = ["etag_matches", "stamp", "bad_reference", "by_pk", "check_org", "pick", "get_workflow",
           "get_workflow_data_source", "lock_organization"]

#: The caller's organization's workflow by id or qualified reference; 404 otherwise.
get_workflow = workflow_for_actor
#: A workflow's data source by id or by the qualified reference of its current source; 404 otherwise.
get_workflow_data_source = workflow_data_source_for_actor


def stamp(obj: Any, actor: Actor, *, created: bool = False) -> None:
    """Set updated_by (and created_by) from the actor."""
    user = actor.user if getattr(actor.user, "pk", None) else None
    obj.updated_by, obj.updated_by_token = user, actor.token
    if created:
        obj.created_by, obj.created_by_token = user, actor.token


def lock_organization(actor: Actor) -> None:
    """Lock the caller's organization row: the first lock of every workflow write that checks another
    workflow, before the workflow, its data source or node, then a data source it points at (that
    order, always: no deadlock). What one workflow's write checks of another's (the nodes reading an
    output table before it is deleted, the output tables a new input names, a workflow's dependants,
    cycles, names unique after escaping) is then never read while the other changes it. A repoint
    onto a data source checks nothing of another workflow and does not take it (``repoint``).

    ``FOR NO KEY UPDATE``: unlike ``FOR UPDATE`` it leaves alone the key-share lock that PostgreSQL's
    foreign-key checks take on the row, so the inserts of other transactions that reference the
    organization (audit events, data sources) do not queue behind it at their COMMIT."""
    Organization.objects.select_for_update(no_key=True).filter(pk=actor.organization.pk).values_list(
        "pk", flat=True).first()

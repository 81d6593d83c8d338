"""Shared by the workflow services: who acts (``stamp``), ETags, the organization lock every write
takes first (``lock_organization``), and the scoped lookups (``workflows.selectors``) under the names
the services use."""

from __future__ import annotations

from typing import Any

from datasources.services.datasources import etag_matches
from organizations.actors import Actor
from organizations.locks import lock_organization
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

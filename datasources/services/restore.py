"""Restoring a revision: an update to that revision's configuration and secrets through the normal
update service (validated, tested before anything is applied, If-Match honoured, dry run available),
audited as ``restore``."""

from __future__ import annotations

import dataclasses
from typing import Any

from datasources.services import revisions
from datasources.services.datasources import WriteOptions, WriteResult, get_data_source, update_data_source
from organizations.actors import Actor


def restore_revision(*, actor: Actor, data_source_id: Any, number: Any,
                     options: WriteOptions | None = None) -> WriteResult:
    ds = get_data_source(actor, data_source_id)
    revision = revisions.revision_of(ds, number)
    body = revisions.restore_body(ds, revision)
    options = dataclasses.replace(options or WriteOptions(), restores=revision.number)
    return update_data_source(actor=actor, data_source_id=ds.pk, data=body, mode="put", options=options)

"""The organization row lock: how writes that check the organization's other objects serialise."""

from __future__ import annotations

from organizations.actors import Actor
from organizations.models import Organization


def lock_organization(actor: Actor) -> None:
    """Lock the caller's organization row: the first lock of every write that checks what another
    request could change beside it, before anything else it locks (that order, always: no deadlock).
    Workflow writes that check another workflow take it before the workflow, its data source or node,
    then a data source it points at: the nodes reading an output table before it is deleted, the
    output tables a new input names, a workflow's dependants, cycles, names unique after escaping are
    then never read while another write changes them. Data-source creates, renames and trash restores
    take it before the data source's row: names unique after escaping (``Demo SQLite`` and
    ``demo-sqlite``), which no constraint can check. A repoint onto a data source checks nothing of
    another workflow and does not take it (``workflows.services.repoint``).

    ``FOR NO KEY UPDATE``: unlike ``FOR UPDATE`` it leaves alone the key-share lock that PostgreSQL's
    foreign-key checks take on the row, so the inserts of other transactions that reference the
    organization (audit events, data sources) do not queue behind it at their COMMIT."""
    Organization.objects.select_for_update(no_key=True).filter(pk=actor.organization.pk).values_list(
        "pk", flat=True).first()

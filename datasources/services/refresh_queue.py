"""Queue a schema refresh from the services without importing the task module (which imports them).

``DatasourcesConfig.ready()`` registers the Celery task's enqueuer; until then queuing is an error,
never a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

_enqueuer: list[Callable[[int], None]] = []


def register(enqueue: Callable[[int], None]) -> None:
    _enqueuer[:] = [enqueue]


def enqueue_refresh(data_source_id: int) -> None:
    """Mark the source `pending` and queue its refresh (datasources.tasks.enqueue_refresh)."""
    if not _enqueuer:
        raise ImproperlyConfigured("No schema-refresh queue is registered (DatasourcesConfig.ready).")
    _enqueuer[0](data_source_id)

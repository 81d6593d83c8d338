"""Who still reads a data source: a registry the apps built on data sources fill at startup.

``datasources`` sits below ``workflows`` (workflows import data sources, never the reverse), so
deleting a data source cannot ask the workflows directly whether one still reads it. Each app
that reads data sources registers a provider instead (``workflows`` does in
``WorkflowsConfig.ready``); ``dependants_of`` asks every provider.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasources.models import DataSource

#: Given a data source, the qualified names of what still reads it (empty when nothing does).
Provider = Callable[["DataSource"], list[str]]

_providers: list[Provider] = []


def register(provider: Provider) -> None:
    """Add a provider (once: registering the same one again changes nothing)."""
    if provider not in _providers:
        _providers.append(provider)


def dependants_of(data_source: DataSource) -> list[str]:
    """What still reads ``data_source``, from every registered provider, in registration order."""
    return [name for provider in _providers for name in provider(data_source)]

"""Who still reads a data source: a registry the apps built on data sources fill at startup.

``datasources`` sits below ``workflows`` (workflows import data sources, never the reverse), so
deleting a data source cannot ask the workflows directly whether one still reads it. Each app
that reads data sources registers a provider instead (``workflows`` does in
``WorkflowsConfig.ready``); ``dependants_of`` asks every provider. Likewise, ``readers_of_tables``
asks the ``TableReaders`` providers which workflows read tables a schema change removed or changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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


#: Given a data source and {table reference id: what happened to it}, who reads those tables: one dict
#: per workflow (id, reference_id, name, and the nodes and tables concerned).
TableReaders = Callable[["DataSource", dict[str, dict[str, Any]]], list[dict[str, Any]]]

_table_readers: list[TableReaders] = []


def register_table_readers(provider: TableReaders) -> None:
    if provider not in _table_readers:
        _table_readers.append(provider)


def readers_of_tables(data_source: DataSource, tables: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The workflows reading any of ``tables`` (by reference id), from every provider."""
    if not tables:
        return []
    return [reader for provider in _table_readers for reader in provider(data_source, tables)]


#: Given a data source, every table its workflows read: one dict per (workflow, node, table) with the
#: workflow's id/reference_id/name, the node's reference_id/name/output_table, and the table's
#: reference_id and name as the node holds them.
TableUsers = Callable[["DataSource"], list[dict[str, Any]]]

_table_users: list[TableUsers] = []


def register_table_users(provider: TableUsers) -> None:
    if provider not in _table_users:
        _table_users.append(provider)


def tables_read_from(data_source: DataSource) -> list[dict[str, Any]]:
    """What the workflows read of ``data_source``, from every provider (one statement each)."""
    return [row for provider in _table_users for row in provider(data_source)]

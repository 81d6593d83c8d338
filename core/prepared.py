"""Server-side prepared statements for the hot statements this project writes itself (issue 18).

Django's PostgreSQL cursors bind parameters on the client and never prepare (``prepare_threshold``
is None), so PostgreSQL parses and plans every statement on every request: a quarter of a millisecond
for the plain PATCH's one write statement, as much again for the read that locks its row. The hot
statements are built once per connection anyway (``datasources.selectors.CompiledLookup``,
``core.write_batch``), so their text repeats exactly: ``prepared_cursor()`` runs them through a
server-binding psycopg cursor that prepares each text once per connection (psycopg keeps the 100
latest) and then only binds and executes it.

The cursor is wrapped by Django as its own are (query logging, ``execute_wrapper``, error
translation), so statement counts and errors are unchanged. ``DATABASE_PREPARED_STATEMENTS=false``
turns it off: needed behind a connection pooler in transaction mode that does not carry prepared
statements (PgBouncer before 1.21, or without ``max_prepared_statements``). SQLite and MariaDB take
Django's own cursor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections


def _preparing_class() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor

    class Preparing(ServerBindingCursor):  # type: ignore[misc,valid-type]
        """Prepares every statement it runs (Django's wrapper passes no ``prepare``)."""

        def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                    binary: bool | None = None) -> Any:
            return super().execute(query, params, prepare=True, binary=binary)

    return Preparing


_PREPARING: list[type] = []
NEVER = 2**62  # executions before psycopg would prepare on its own: only ``prepare=True`` prepares


def enabled(using: str = DEFAULT_DB_ALIAS) -> bool:
    return connections[using].vendor == "postgresql" and bool(settings.DATABASE_PREPARED_STATEMENTS)


@contextmanager
def prepared_cursor(using: str = DEFAULT_DB_ALIAS) -> Iterator[Any]:
    """A cursor whose statements are prepared once per connection (PostgreSQL, when enabled), else
    Django's own. Use it only for statements whose text repeats (no literal values in it)."""
    conn = connections[using]
    if not enabled(using):
        with conn.cursor() as cursor:
            yield cursor
        return
    if not _PREPARING:
        _PREPARING.append(_preparing_class())
    conn.close_if_health_check_failed()  # as Django's own cursor() does
    conn.ensure_connection()
    if conn.connection.prepare_threshold is None:  # Django's None makes psycopg ignore prepare=True;
        conn.connection.prepare_threshold = NEVER  # Django's own (client-binding) cursors never prepare
    with conn.wrap_database_errors:
        cursor = conn._prepare_cursor(_PREPARING[0](conn.connection))
    with cursor:
        yield cursor

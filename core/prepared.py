"""Server-side prepared statements for the hot statements this project writes itself (issue 18).

Django's PostgreSQL cursors bind parameters on the client and never prepare (``prepare_threshold``
is None), so PostgreSQL parses and plans every statement on every request: a quarter of a millisecond
for the plain PATCH's one write statement, as much again for the read that locks its row. The hot
statements are built once per connection anyway (``datasources.selectors.CompiledLookup``,
``core.write_batch``), so their text repeats exactly: ``prepared_cursor()`` runs them through a
server-binding psycopg cursor that prepares each text once per connection (psycopg keeps the 100
latest) and then only binds and executes it.

The cursor is wrapped by Django as its own are (``execute_wrapper``, error translation; with queries
logged, each is logged with its values as Django's own cursor logs it), so statement counts and errors
are unchanged. ``DATABASE_PREPARED_STATEMENTS=false`` turns it off: needed behind a connection pooler
in transaction mode that does not carry prepared statements (PgBouncer before 1.21, or without
``max_prepared_statements``). SQLite and MariaDB take Django's own cursor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.postgresql.base import TIMESTAMPTZ_OID, CursorDebugWrapper, ServerBindingCursor
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg import ClientCursor
from psycopg.pq import Format

#: psycopg's prepare threshold while this cursor runs a statement: Django leaves it None, which makes
#: psycopg ignore ``prepare=True``. Set only for that call: left set, psycopg would also keep every
#: client-bound statement Django runs (values inlined: a repoint's is large) among its candidates,
#: up to 100 per connection.
NEVER = 2**62


class _Preparing(ServerBindingCursor):
    """Prepares every statement it runs (Django's wrapper passes no ``prepare``)."""

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                binary: bool | None = None) -> Any:
        conn = self.connection  # type: ignore[attr-defined]  # (psycopg's Cursor.connection)
        threshold, conn.prepare_threshold = conn.prepare_threshold, NEVER
        try:
            return super().execute(query, params, prepare=True, binary=binary)  # type: ignore[misc]
        finally:
            conn.prepare_threshold = threshold


class _LoggedPreparing(CursorDebugWrapper):
    """Django's debug wrapper, logging the statement with its values inlined (Django reads them back
    from a client-binding cursor, which a prepared statement does not go through)."""

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self.db.wrap_database_errors:
            shown = ClientCursor(self.db.connection).mogrify(sql, params)
        with self.debug_sql(shown):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


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
    conn.close_if_health_check_failed()  # what Django's own cursor() does first
    conn.ensure_connection()
    conn.validate_thread_sharing()
    with conn.wrap_database_errors:
        raw = _Preparing(conn.connection)  # type: ignore[call-arg]  # (the stubs': psycopg's Cursor(conn))
        if conn.timezone != conn.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone:
            register_tzloader(conn.timezone, raw)  # as Django's create_cursor() does
    cursor = _LoggedPreparing(raw, conn) if conn.queries_logged else conn.make_cursor(raw)  # type: ignore[arg-type]
    with cursor:
        yield cursor

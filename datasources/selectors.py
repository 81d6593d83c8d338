"""Reads of data sources, scoped to the caller: the API, the admin and the compat adapters use these
rather than building querysets of their own.

Another organization's object is never found: ``*_for_actor`` lookups answer 404 (``NotFound``)
for its id exactly as for an unknown or malformed one. Writes stay in ``datasources.services``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, cast
from weakref import WeakKeyDictionary

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import BooleanField, CharField, Field, IntegerField, Model, Prefetch, QuerySet
from django.db.models.base import ModelState
from django.db.models.expressions import RawSQL
from django.db.models.query import get_related_populators
from django.db.models.signals import post_init
from django.db.transaction import TransactionManagementError

from core.errors import NotFound
from core.numbers import path_id
from core.prepared import prepared_cursor
from datasources.models import Credential, DataSource, HealthCheck, SchemaSnapshot, TenancySettings
from organizations.actors import Actor
from organizations.models import ApiToken


def _scalar(sql: str) -> RawSQL:
    return RawSQL(sql, (), output_field=CharField())  # noqa: S611  # nosec B611 (model metadata only)


@cache
def actor_name_annotations(model: type[Model]) -> dict[str, RawSQL]:
    """``_<side>_by_user_name`` and ``_<side>_by_token_name`` of a ``Tracked`` model's rows (what
    ``organizations.tracking.actor_of`` reads), as scalar subqueries on the row's own columns.

    Written as SQL text once per process: the ORM's ``Subquery`` expressions cost more to compile
    on every request than the statement costs to run. They name the model's table itself, so the
    queryset they annotate must never be used as a subquery (its alias would change)."""
    table = connection.ops.quote_name(model._meta.db_table)
    user = get_user_model()
    users = connection.ops.quote_name(user._meta.db_table)
    username_field = cast("Field", user._meta.get_field(user.USERNAME_FIELD))
    username = connection.ops.quote_name(str(username_field.column))
    tokens = connection.ops.quote_name(ApiToken._meta.db_table)
    names = {}
    for side in ("created", "updated"):
        names[f"_{side}_by_user_name"] = _scalar(
            f"SELECT u.{username} FROM {users} u WHERE u.id = {table}.{side}_by_id")  # noqa: S608  # nosec B608
        names[f"_{side}_by_token_name"] = _scalar(
            f"SELECT t.name FROM {tokens} t WHERE t.id = {table}.{side}_by_token_id")  # noqa: S608  # nosec B608
    return names


@cache
def _representation_annotations() -> dict[str, RawSQL]:
    """The names the representation reads beside the row: who created and last updated it, and
    the set secrets' names (comma-joined: catalogue secret names never hold a comma)."""
    ds = connection.ops.quote_name(DataSource._meta.db_table)
    credentials = connection.ops.quote_name(Credential._meta.db_table)
    joined = "STRING_AGG(c.field, ',')" if connection.vendor == "postgresql" else "GROUP_CONCAT(c.field, ',')"
    return {
        **actor_name_annotations(DataSource),
        "_secret_names": _scalar(
            f"SELECT {joined} FROM {credentials} c WHERE c.data_source_id = {ds}.id"),  # noqa: S608  # nosec B608
    }


def for_representation(queryset: QuerySet[DataSource]) -> QuerySet[DataSource]:
    """Everything the API's representation (``datasources.api.representation``) reads, in the same
    statement: organization and tenancy (joined), the names of the set secrets and of who
    created/updated (scalar subqueries)."""
    return queryset.select_related("organization", "tenancy").annotate(**_representation_annotations())


@cache
def _annotated() -> QuerySet[DataSource]:
    """Built once per process (resolving five subqueries costs more than the statement itself);
    callers only ever filter clones of it, never evaluate it."""
    return for_representation(DataSource.objects.all())


def _pk(data_source_id: Any) -> int:
    """A path's id as an int (ASCII digits: ' 1', '+1' or '١' name nothing); else 404."""
    pk = path_id(data_source_id)
    if pk is None:
        raise NotFound("Data source not found.")
    return pk


# --- the hot reads: one statement each -------------------------------------------------------------


def data_sources_for_actor(actor: Actor) -> QuerySet[DataSource]:
    """The caller's organization's data sources, ready to render (the list; GET filters it by id).
    The list's query-string filters are ``datasources.api.filters.DataSourceFilter``."""
    return _annotated().filter(organization=actor.organization)


class CompiledPage:
    """The caller's organization's data sources in id order, sliced by Django's paginator, through a
    statement compiled once per connection (compiling it was ~1.7 ms of a page of 50) that also
    counts them (``_page``): given the page the request asks for (``limit``, ``offset``), the
    paginator's count and its slice are one statement; a page past the end counts apart. For the
    unfiltered list only; filters, search and ordering take the queryset path.
    ``tests/datasources/test_list.py`` holds both paths to the same pages."""

    ordered = True  # the paginator's unordered-list warning

    def __init__(self, actor: Actor, limit: int | None = None, offset: int = 0) -> None:
        self.organization, self.limit, self.offset = actor.organization, limit, offset
        self._fetched: list[DataSource] | None = None

    def count(self) -> int:
        if self.limit is not None:
            self._fetched = self._fetch(self.limit, self.offset)
            if self._fetched:
                return self._fetched[0]._page_total  # type: ignore[attr-defined]
        return DataSource.objects.filter(organization_id=self.organization.pk).count()

    def __getitem__(self, window: slice) -> list[DataSource]:
        start, stop = window.start or 0, window.stop
        if self._fetched and start == self.offset and stop - start <= len(self._fetched):
            return self._fetched[:stop - start]
        return self._fetch(stop - start, start)

    def _fetch(self, limit: int, offset: int) -> list[DataSource]:
        rows = _PAGE.fetch_all(organization_id=self.organization.pk, limit=limit, offset=offset)
        cache_organization = DataSource.organization.field.set_cached_value  # every row's is the caller's
        for row in rows:
            cache_organization(row, self.organization)
        return rows


def renderable_data_source_for_actor(actor: Actor, data_source_id: Any) -> DataSource:
    """One of the caller's data sources with everything its representation reads (one indexed
    statement, compiled once per connection), or 404 (also for another organization's id or a
    malformed one)."""
    found = _RENDERABLE_ONE.fetch(organization_id=actor.organization.pk, pk=_pk(data_source_id))
    if found is None:
        raise NotFound("Data source not found.")
    return found


class CompiledLookup:
    """A statement compiled once per database connection (each thread has its own) and run with each
    request's values, its rows turned into the instances Django's own iterator would make (converters,
    the row, ``select_related`` relations, annotations); on PostgreSQL it is also prepared once per
    connection (``core.prepared``). Compiling the statement was most of a hot GET's CPU time.
    ``build(**placeholders)`` makes the queryset; each value is an integer (an id, a limit, an offset)
    found again among the compiled parameters by its placeholder, wherever it is bound."""

    def __init__(self, build: Callable[..., QuerySet], *names: str) -> None:
        self.build, self.names = build, names
        self._by_connection: WeakKeyDictionary[Any, _Compiled] = WeakKeyDictionary()

    def fetch(self, **values: int) -> Any:
        """The row (an instance) or None; None too for a value outside the bigint range (names nothing)."""
        if any(not -(2**63) <= value < 2**63 for value in values.values()):
            return None
        return self._compiled().fetch(values)

    def fetch_all(self, **values: int) -> list[Any]:
        """Every row of the statement, in its order (a list page)."""
        return self._compiled().fetch_all(values)

    def _compiled(self) -> _Compiled:
        conn = connections[DEFAULT_DB_ALIAS]
        compiled = self._by_connection.get(conn)
        if compiled is None:
            compiled = self._by_connection[conn] = _Compiled(conn, self.build, self.names)
        return compiled


class _Compiled:
    PLACEHOLDER = -918_273_600  # then -918_273_601, ...: values no id ever has

    def __init__(self, conn: Any, build: Callable[..., QuerySet], names: tuple[str, ...]) -> None:
        placeholders = {name: self.PLACEHOLDER - i for i, name in enumerate(names)}
        compiler = build(**placeholders).query.get_compiler(connection=conn)
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        self.at = {name: [i for i, param in enumerate(self.params) if param == value]
                   for name, value in placeholders.items()}  # a value may be bound more than once
        if not all(self.at.values()):  # a value the statement never binds would be silently ignored
            raise ValueError(f"{self.sql[:80]}...: no parameter for {[n for n, at in self.at.items() if not at]}")
        self.conn, self.compiler = conn, compiler
        self.select, self.klass_info = compiler.select, compiler.klass_info
        self.model = self.klass_info["model"]
        self.converters = compiler.get_converters([column[0] for column in self.select])
        fields = self.klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.attnames = [column[0].target.attname for column in self.select[self.start:self.end]]
        concrete = [field.attname for field in self.model._meta.concrete_fields]
        self.plain = self.attnames == concrete and not post_init.has_listeners(self.model)
        self.annotations = list(compiler.annotation_col_map.items())
        # Stateless once built (Django's iterator reuses them for every row of a result).
        self.populators = get_related_populators(self.klass_info, self.select, conn.alias)  # type: ignore[call-arg]

    def fetch(self, values: dict[str, int]) -> Any:
        with prepared_cursor(self.conn.alias) as cursor:
            cursor.execute(self.sql, self._params(values))
            rows = cursor.fetchmany(2)
        return self._instance(rows[0]) if len(rows) == 1 else None

    def fetch_all(self, values: dict[str, int]) -> list[Any]:
        with prepared_cursor(self.conn.alias) as cursor:
            cursor.execute(self.sql, self._params(values))
            rows = cursor.fetchall()
        return [self._instance(row) for row in rows]

    def _params(self, values: dict[str, int]) -> list[Any]:
        params = list(self.params)
        for name, value in values.items():
            for position in self.at[name]:
                params[position] = value
        return params

    def _instance(self, row: Any) -> Any:
        if self.converters:
            row = next(iter(self.compiler.apply_converters([row], self.converters)))
        if self.plain:  # what Model.from_db makes of a row of every field, without __init__'s setattr per field
            obj = self.model.__new__(self.model)
            obj.__dict__.update(zip(self.attnames, row[self.start:self.end], strict=True))
            state = obj._state = ModelState()
            state.adding, state.db = False, self.conn.alias
        else:
            obj = self.model.from_db(self.conn.alias, self.attnames, row[self.start:self.end])
        for populator in self.populators:  # (the stubs are of a newer Django: fetch_mode)
            populator.populate(row, obj)
        for name, position in self.annotations:
            setattr(obj, name, row[position])
        return obj


_RENDERABLE_ONE = CompiledLookup(
    lambda organization_id, pk: _annotated().filter(organization_id=organization_id, pk=pk), "organization_id", "pk")


@cache
def _page_sql() -> tuple[str, str]:
    """Which rows are the page (a condition on the row's id) and the organization's count, as SQL."""
    table = connection.ops.quote_name(DataSource._meta.db_table)
    ids = f"SELECT p.id FROM {table} p WHERE p.organization_id = %s ORDER BY p.id LIMIT %s OFFSET %s"  # noqa: S608  # nosec B608
    if connection.vendor == "postgresql":  # an array of the page's ids: fetched by the primary key's index
        on_page = f"{table}.id = ANY(ARRAY({ids}))"
    else:  # SQLite (and MariaDB, which takes no LIMIT in an IN subquery but does in a derived table)
        on_page = f"{table}.id IN (SELECT page.id FROM ({ids}) page)"  # noqa: S608  # nosec B608
    return on_page, f"SELECT COUNT(*) FROM {table} n WHERE n.organization_id = %s"  # noqa: S608  # nosec B608


def _page(organization_id: int, limit: int, offset: int) -> QuerySet[DataSource]:
    """The page's rows with everything the representation reads, and the organization's count: the
    page's ids are chosen first (index order, ``LIMIT``/``OFFSET``) and the count is one uncorrelated
    subquery, so the per-row subqueries run for the page's rows only (a window count made
    PostgreSQL run them for every row up to the page's end: 5 x 1,000 for page 20 of 50)."""
    on_page, count = _page_sql()
    return (DataSource.objects.select_related("tenancy").annotate(**_representation_annotations())
            .annotate(_page_total=RawSQL(count, (organization_id,), output_field=IntegerField()))  # noqa: S611  # nosec B611
            .filter(RawSQL(on_page, (organization_id, limit, offset), output_field=BooleanField()))  # noqa: S611  # nosec B611
            .filter(organization_id=organization_id).order_by("id"))


_PAGE = CompiledLookup(_page, "organization_id", "limit", "offset")  # the organization is set on each row, not joined


_LOCKED_ONE = CompiledLookup(
    lambda organization_id, pk: _annotated().filter(organization_id=organization_id, pk=pk).order_by()
    .select_for_update(of=("self",)), "organization_id", "pk")


def data_source_for_actor(actor: Actor, data_source_id: Any, *, for_update: bool = False) -> DataSource:
    """The caller's organization's data source, or 404 (also for other organizations' ids): the plain
    row, or when ``for_update`` the row locked (only it: ``of=self``) with everything its
    representation reads, so that the answer to the write needs no second read
    (``rendered_after_write``); that statement is compiled once per connection (``CompiledLookup``)."""
    if for_update:
        if not connections[DEFAULT_DB_ALIAS].in_atomic_block:  # as the ORM's select_for_update() insists
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        found = _LOCKED_ONE.fetch(organization_id=actor.organization.pk, pk=_pk(data_source_id))
        if found is None:
            raise NotFound("Data source not found.")
        return found
    try:
        return DataSource.objects.filter(organization=actor.organization).get(pk=_pk(data_source_id))
    except DataSource.DoesNotExist:
        raise NotFound("Data source not found.") from None


def rendered_after_write(actor: Actor, ds: DataSource, changed: list[str]) -> DataSource:
    """The source a write just saved, ready to render: the written instance itself when it was read
    for rendering (``data_source_for_actor(for_update=True)``) and the write left its secrets alone
    (the updater is ``actor``; tenancy settings are kept current on the instance by
    ``services.tenancy.write``), else one more read."""
    if not hasattr(ds, "_secret_names") or any(c.split(".", 1)[0] == "credentials" for c in changed):
        return renderable_data_source_for_actor(actor, ds.pk)
    if not changed:  # nothing was written: the names read with the row are still right
        return ds
    ds._updated_by_token_name = actor.token.name if actor.token is not None else None  # type: ignore[attr-defined]
    user = actor.user
    ds._updated_by_user_name = (  # type: ignore[attr-defined]
        user.get_username() if user is not None and getattr(user, "pk", None) else None)
    return ds


def data_source_with_people_for_actor(actor: Actor, data_source_id: Any) -> DataSource:
    """One of the caller's data sources with its creator and updater (users and tokens) joined and
    the names of its secrets prefetched (what the compat adapters' representations read); 404 otherwise."""
    qs = (
        DataSource.objects.filter(organization=actor.organization)
        .select_related("created_by", "updated_by", "created_by_token", "updated_by_token")
        .prefetch_related(Prefetch("credentials", queryset=Credential.objects.only("id", "data_source_id", "field")))
    )
    try:
        return qs.get(pk=_pk(data_source_id))
    except DataSource.DoesNotExist:
        raise NotFound("Data source not found.") from None


def data_source_named(actor: Actor, name: str) -> DataSource | None:
    """The caller's data source whose name matches case-insensitively (names are unique that way), or None."""
    return DataSource.objects.filter(organization=actor.organization, name__iexact=name).first()


def has_tenancy_settings(data_source: DataSource) -> bool:
    return TenancySettings.objects.filter(data_source=data_source).exists()


# --- health checks ---------------------------------------------------------------------------------


def health_of_for_actor(actor: Actor, data_source_id: Any) -> DataSource:
    """One of the caller's data sources with its organization (the health settings), or 404."""
    try:
        return DataSource.objects.select_related("organization").get(
            organization=actor.organization, pk=_pk(data_source_id))
    except DataSource.DoesNotExist:
        raise NotFound("Data source not found.") from None


def health_history(data_source: DataSource) -> QuerySet[HealthCheck]:
    """The source's kept health checks, newest first."""
    return HealthCheck.objects.filter(data_source=data_source).order_by("-checked_at", "-id")


# --- schema snapshots ------------------------------------------------------------------------------


def schema_snapshots(data_source: DataSource) -> QuerySet[SchemaSnapshot]:
    """A data source's schema snapshots, newest first."""
    return SchemaSnapshot.objects.filter(data_source=data_source).order_by("-version")


def schema_snapshot(data_source: DataSource, version: int | None = None) -> SchemaSnapshot:
    """The snapshot of ``version``, or the newest when None; 404 when there is none."""
    snapshots = SchemaSnapshot.objects.filter(data_source=data_source)
    snapshot = (snapshots.filter(version=version) if version else snapshots).order_by("-version").first()
    if snapshot is None:
        raise NotFound(f"No schema version {version}." if version else "No schema snapshot for this data source yet.")
    return snapshot


# --- the admin -------------------------------------------------------------------------------------


def credentials_without_ciphertext(queryset: QuerySet[Credential]) -> QuerySet[Credential]:
    """Which secrets exist and under which key; the ciphertext is never loaded."""
    return queryset.defer("ciphertext")

"""Page-number pagination that refuses malformed paging parameters instead of ignoring them, and a
paginated queryset that builds a page's rows only."""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import F, Lookup, Model, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from rest_framework.pagination import PageNumberPagination

from core.errors import InvalidRequest
from core.numbers import parse_ascii_int
from core.params import single_param


def page_parameters(max_page_size: int = 200, default_page_size: int = 50) -> list[dict]:
    """The two paging query parameters as OpenAPI 3.0 parameter objects (what the server accepts)."""
    return [
        {"name": "page", "in": "query", "required": False,
         "description": "Page number, from 1 (default 1). A page past the last answers 404.",
         "schema": {"type": "integer", "minimum": 1}},
        {"name": "page_size", "in": "query", "required": False,
         "description": f"Results per page, 1 to {max_page_size} (default {default_page_size}).",
         "schema": {"type": "integer", "minimum": 1, "maximum": max_page_size}},
    ]


def check_positive(request, name: str, maximum: int | None = None) -> None:
    """400 unless the query parameter ``name`` is absent or an integer from 1 (to ``maximum``)."""
    raw = single_param(request, name)
    if raw is None:
        return
    if parse_ascii_int(raw, minimum=1, maximum=maximum) is None:
        expected = f"an integer between 1 and {maximum}" if maximum else "an integer of at least 1"
        raise InvalidRequest(f"'{name}' must be {expected}.", errors={name: [f"Must be {expected}."]})


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):
        check_positive(request, self.page_query_param)
        check_positive(request, self.page_size_query_param, self.max_page_size)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        return page_parameters(self.max_page_size, self.page_size)


class IdsFirst:
    """A filtered, ordered queryset for Django's paginator whose rows are costly to build (subqueries
    per row): a page picks its primary keys first, by the filters and the ordering alone, and builds
    only those rows, in one statement (``pk IN (SELECT pk ... LIMIT ... OFFSET ...)``). Sliced as it
    is, the database builds every row before the page too (OFFSET skips rows after building them):
    page 100 of a filtered list of 5,000 data sources took 43 ms against 12 ms for page 1 (now 15 ms).
    The first page in primary-key order is sliced as it is: the index yields its rows first.

    The primary key breaks ties in the ordering, so that pages neither repeat nor skip rows. Filters or
    an ordering that read raw SQL (``RawSQL`` names the outer table, which the ids' subquery renames)
    keep the plain slice."""

    ordered = True  # the paginator's unordered-list warning

    def __init__(self, queryset: QuerySet) -> None:
        ordering = list(queryset.query.order_by)
        names = ("pk", queryset.model._meta.pk.name)
        keys = [isinstance(o, str) and o.lstrip("-") in names for o in ordering]
        #: in primary-key order, the first page is the first rows the index gives: built as they come
        self.key_order = not ordering or keys[0]
        self.ids_first = not _reads_raw_sql(queryset, ordering)
        if not any(keys):
            ordering.append("pk")
        self.queryset = queryset.order_by(*ordering)

    def count(self) -> int:
        return self.queryset.count()

    def __getitem__(self, window: slice) -> list[Model]:
        if (not window.start and self.key_order) or not self.ids_first:
            return list(self.queryset[window])
        ids = self.queryset.values("pk")[window]
        if connections[self.queryset.db].vendor == "postgresql":  # a probe per id ("IN" may hash the table)
            return list(self.queryset.filter(_AnyOf(F("pk"), Subquery(ids))))
        return list(self.queryset.filter(pk__in=ids))


def _reads_raw_sql(queryset: QuerySet, ordering: list[Any]) -> bool:
    """Whether the queryset's filters or ``ordering`` (names or expressions) read a ``RawSQL``."""
    annotations = queryset.query.annotations
    pending: list[Any] = [queryset.query.where]
    pending += [annotations.get(o.lstrip("-")) if isinstance(o, str) else o for o in ordering]
    while pending:
        node = pending.pop()
        if isinstance(node, RawSQL):
            return True
        if hasattr(node, "children"):  # a WhereNode: its lookups and nested nodes
            pending += node.children
        elif hasattr(node, "get_source_expressions"):
            pending += node.get_source_expressions()
    return False


class _AnyOf(Lookup):
    """PostgreSQL's ``lhs = ANY(ARRAY(subquery))``: the subquery runs once, then each id is an index probe."""

    lookup_name = "any_of"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = compiler.compile(self.rhs)  # "(SELECT ...)"
        return f"{lhs} = ANY(ARRAY{rhs})", (*lhs_params, *rhs_params)

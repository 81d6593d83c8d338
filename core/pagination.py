"""Page-number pagination that refuses malformed paging parameters instead of ignoring them."""

from rest_framework.pagination import PageNumberPagination

from core.errors import InvalidRequest
from core.numbers import parse_ascii_int


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
    raw = request.query_params.get(name)
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

"""Page-number pagination that refuses malformed paging parameters instead of ignoring them."""

from rest_framework.pagination import PageNumberPagination

from config.errors import InvalidRequest


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def _positive(self, request, name: str, maximum: int | None = None) -> None:
        raw = request.query_params.get(name)
        if raw is None:
            return
        if not raw.isdigit() or int(raw) < 1 or (maximum is not None and int(raw) > maximum):
            limit = f" between 1 and {maximum}" if maximum else ""
            raise InvalidRequest(f"'{name}' must be an integer{limit}.", errors={name: [f"Must be an integer{limit}."]})

    def paginate_queryset(self, queryset, request, view=None):
        self._positive(request, self.page_query_param)
        self._positive(request, self.page_size_query_param, self.max_page_size)
        return super().paginate_queryset(queryset, request, view)

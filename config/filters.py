"""List filters that refuse what they cannot apply, instead of silently ignoring it."""

from rest_framework.filters import OrderingFilter

from config.errors import InvalidRequest


class StrictOrderingFilter(OrderingFilter):
    """An unknown ``ordering`` field is a 400 naming the fields that can be used."""

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if params is not None:
            fields = [p.strip() for p in params.split(",")]
            allowed = {name for name, _label in self.get_valid_fields(queryset, view, {"request": request})}
            bad = [f for f in fields if f.lstrip("-") not in allowed]
            if bad or not params.strip():
                choices = ", ".join(sorted(allowed))
                raise InvalidRequest(
                    f"Cannot order by {', '.join(bad) or 'nothing'}; use one of: {choices}.",
                    errors={self.ordering_param: [f"Choose from: {choices} (prefix '-' to reverse)."]},
                )
        return super().get_ordering(request, queryset, view)

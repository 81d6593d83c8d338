"""Query-string filters of the data-source list."""

from __future__ import annotations

import json

from django import forms
from django.db import connection as db_connection
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django_filters import rest_framework as filters

from core.numbers import is_ascii_digits
from datasources import catalogue
from datasources.models import DataSource, DataSourceStatus, HealthState


class IdField(forms.IntegerField):
    """An id in a query parameter: ASCII digits only (Django's own fields read ' 1' and '١' as 1, and
    a 5,000-digit value past int()'s limit as an error of their own)."""

    def to_python(self, value: object) -> int | None:
        if value in self.empty_values:
            return None
        if not is_ascii_digits(value):
            raise forms.ValidationError("Must be an id (ASCII digits).", code="invalid")
        return int(value)


class IdFilter(filters.Filter):
    field_class = IdField


class DataSourceFilter(filters.FilterSet):
    type = filters.ChoiceFilter(choices=catalogue.TYPE_CHOICES)
    status = filters.ChoiceFilter(choices=DataSourceStatus.choices)
    workspace = IdFilter(field_name="workspace_id", min_value=1, max_value=2**63 - 1)  # a 64-bit id
    tag = filters.CharFilter(method="filter_tag", label="Has this tag")
    health = filters.ChoiceFilter(field_name="health_state", choices=HealthState.choices,
                                  label="Health state (scheduled health checks)")

    class Meta:
        model = DataSource
        fields = ["type", "status", "workspace", "tag", "health"]

    def is_valid(self) -> bool:
        """An empty value (``type=``) is refused like any other value that is not one, not ignored; so is
        a parameter given twice (only one value would count)."""
        form = self.form
        form.is_valid()
        data = self.data or {}  # never None: FilterSet keeps `data or QueryDict()` (the stub says Optional)
        for name in self.filters:
            if name in data and data.get(name) == "" and name not in form.errors:
                form.add_error(name, "Must not be empty; leave the parameter out to not filter on it.")
            # ?type=a&type=b filtered on b alone, silently
            if hasattr(data, "getlist") and len(data.getlist(name)) > 1 and name not in form.errors:
                form.add_error(name, "Give this parameter once (one value).")
        return not form.errors

    def filter_tag(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if db_connection.vendor == "postgresql":
            return queryset.filter(tags__contains=[value])
        # SQLite has no JSON containment: match the quoted tag in the JSON text.
        return queryset.annotate(_tags=Cast("tags", TextField())).filter(_tags__contains=json.dumps(value))

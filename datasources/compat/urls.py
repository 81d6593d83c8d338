"""Seed-compatible endpoints, each under its product's prefix (mounted at /compat/)."""

from django.urls import path

from core.compat import register_seed_prefix
from datasources.compat.camelai import CamelaiSourceView
from datasources.compat.databrain import DatabrainDatasourceView
from datasources.compat.maiascore import MaiascoreDatasourceView
from datasources.compat.rivergen import RivergenCredentialsView, RivergenDataSourceView

urlpatterns = [
    path("rivergen/api/v1/data-sources/<str:data_source_id>", RivergenDataSourceView.as_view()),
    path("rivergen/api/v1/data-sources/<str:data_source_id>/credentials", RivergenCredentialsView.as_view()),
    path("databrain/api/v2/datasource", DatabrainDatasourceView.as_view()),
    path("camelai/api/v1/sources/<str:id>/", CamelaiSourceView.as_view()),
    path("maiascore/datasources/<str:id>", MaiascoreDatasourceView.as_view()),
]

# An unknown path under a seed's prefix answers 404 in that seed's shape.
for _prefix, _view in (("rivergen/", RivergenDataSourceView), ("databrain/", DatabrainDatasourceView),
                       ("camelai/", CamelaiSourceView), ("maiascore/", MaiascoreDatasourceView)):
    register_seed_prefix(f"/compat/{_prefix}", _view)

"""Redivis-compatible endpoint (mounted at /compat/redivis/)."""

from django.urls import path

from core.compat import register_seed_prefix
from workflows.compat.redivis import RedivisDataSourceView

urlpatterns = [
    path(
        "api/v1/workflows/<str:workflowReference>/dataSources/<str:dataSourceReference>",
        RedivisDataSourceView.as_view(),
    ),
]

register_seed_prefix("/compat/redivis/", RedivisDataSourceView)  # an unknown path: 404 in Redivis's shape

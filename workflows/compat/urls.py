"""Redivis-compatible endpoint (mounted at /compat/redivis/)."""

from django.urls import path

from workflows.compat.redivis import RedivisDataSourceView

urlpatterns = [
    path(
        "api/v1/workflows/<str:workflowReference>/dataSources/<str:dataSourceReference>",
        RedivisDataSourceView.as_view(),
    ),
]

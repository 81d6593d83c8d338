from django.urls import path
from rest_framework.routers import DefaultRouter

from datasources.api.health_views import HealthSettingsView
from datasources.api.revision_views import DataSourceTrashViewSet
from datasources.api.views import DataSourceTypeViewSet, DataSourceViewSet

# DRF takes a bool here: the "/?" this passed was truthy, so the routes have always ended in "/".
router = DefaultRouter(trailing_slash=True)
router.register("data-sources", DataSourceViewSet, basename="data-source")
router.register("data-source-types", DataSourceTypeViewSet, basename="data-source-type")
router.register("data-source-trash", DataSourceTrashViewSet, basename="data-source-trash")

urlpatterns = [
    *router.urls,
    path("health-settings/", HealthSettingsView.as_view(), name="health-settings"),
]

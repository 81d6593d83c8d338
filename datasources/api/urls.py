from rest_framework.routers import DefaultRouter

from datasources.api.views import DataSourceTypeViewSet, DataSourceViewSet

router = DefaultRouter(trailing_slash="/?")
router.register("data-sources", DataSourceViewSet, basename="data-source")
router.register("data-source-types", DataSourceTypeViewSet, basename="data-source-type")

urlpatterns = router.urls

from rest_framework.routers import DefaultRouter

from webhooks.api.views import EventTypeViewSet, WebhookViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("event-types", EventTypeViewSet, basename="event-type")

urlpatterns = router.urls

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from core.health import healthz, readyz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("datasources.api.urls")),
    path("api/v1/", include("workflows.api.urls")),
    path("api/v1/", include("webhooks.api.urls")),
    path("api/v1/", include("eventlog.api.urls")),
    path("api/v1/", include("changes.api.urls")),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(permission_classes=[AllowAny], authentication_classes=[]),
        name="schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[AllowAny], authentication_classes=[]),
        name="swagger-ui",
    ),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(
            template_name="api/redoc.html", url_name="schema", permission_classes=[AllowAny], authentication_classes=[]
        ),
        name="redoc",
    ),
    path("compat/", include("datasources.compat.urls")),
    path("compat/redivis/", include("workflows.compat.urls")),
    # Probes (core/health.py): unauthenticated, outside /api/. core.health.ProbeMiddleware answers GET/HEAD
    # on them before host validation and the HTTPS redirect; these routes give the same views (405 otherwise).
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]

from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("datasources.api.urls")),
    path("api/v1/", include("workflows.api.urls")),
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
    path("healthz", healthz),
]

"""URLs of the benchmark settings: the real API plus the floor views under /bench/floor/."""

from django.urls import include, path

from config.urls import urlpatterns as api_urlpatterns

urlpatterns = [
    *api_urlpatterns,
    path("bench/floor/", include("bench.floor")),
]

"""Benchmark settings: the production settings plus the floor views (bare Django, raw SQL).

Used only by ``bench/run.py`` (DJANGO_SETTINGS_MODULE=bench.settings); never in production.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
BENCH_FLOOR_ENABLED = True
# Counts each worker's requests and records its RSS at given counts (bench/run.py's memory check).
MIDDLEWARE = ["bench.floor.RequestCountMiddleware", *MIDDLEWARE]  # noqa: F405

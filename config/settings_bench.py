"""Benchmark settings: the production settings plus the floor views (bare Django, raw SQL).

Used only by ``bench/run.py`` (DJANGO_SETTINGS_MODULE=config.settings_bench); never in production.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "config.urls_bench"
BENCH_FLOOR_ENABLED = True
# Counts each worker's requests and records its RSS at given counts (bench/run.py's memory check).
MIDDLEWARE = ["config.bench_floor.RequestCountMiddleware", *MIDDLEWARE]  # noqa: F405

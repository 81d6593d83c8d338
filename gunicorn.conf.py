"""Read by gunicorn from the working directory: the Django settings load in the master, so a
refusal to start (no SECRET_KEY or ENCRYPTION_KEYS with DEBUG off) is one line, before any worker forks.

Threaded workers (gthread, GUNICORN_THREADS threads each; WEB_CONCURRENCY processes): a connection
test waiting up to its connection_timeout holds one thread, and at most TEST_SLOTS_PER_PROCESS
threads of a process test at once (datasources/services/test_slots.py), so the others keep serving.
Command-line options (--workers, --threads, --worker-class) still win over these.
"""

import copy
import logging
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings

from config import envvars, metrics_dir

settings.INSTALLED_APPS  # noqa: B018

worker_class = "gthread"
threads = settings.GUNICORN_THREADS
# gunicorn reads both itself too: a WEB_CONCURRENCY that is not a number stops it with a traceback while
# it imports its own configuration, before this file runs. A number below 1, or a PORT out of range, stops here.
workers = envvars.integer("WEB_CONCURRENCY", 1, minimum=1)
if envvars.text("PORT").strip():
    envvars.integer("PORT", 8000, minimum=1, maximum=65535)
# Each worker's heartbeat touches a file between requests; on a disk-backed /tmp that write can wait
# for the filesystem's journal and hold the worker (and gunicorn may take it for hung). tmpfs never does.
# (gunicorn creates them with mkstemp: private, unpredictable names.)
SHARED_MEMORY = "/dev/shm"  # noqa: S108
worker_tmp_dir = SHARED_MEMORY if os.path.isdir(SHARED_MEMORY) else None

# gunicorn's own lines (Starting gunicorn, Listening at, Booting worker, WORKER TIMEOUT, the warning below)
# and Python warnings go through the project's LOGGING: one JSON object per line with LOG_FORMAT=json,
# like the application's. gunicorn.error keeps gunicorn's --log-level (info by default). gunicorn's access
# log stays off: core.access already writes one line per request (with its request id and actor).
logconfig_dict = {
    **copy.deepcopy(settings.LOGGING),
    "loggers": {
        **settings.LOGGING.get("loggers", {}),
        "gunicorn.error": {"handlers": ["console"], "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
logging.captureWarnings(True)  # (logger py.warnings; the workers inherit it)

LOCAL_CACHE = "django.core.cache.backends.locmem.LocMemCache"


def _process_local_cache() -> bool:
    return settings.CACHES["default"]["BACKEND"] == LOCAL_CACHE


def on_starting(server) -> None:
    """PROMETHEUS_MULTIPROC_DIR: this host's files of processes no longer running (an earlier start of
    this container or server) are removed, so /metrics sums only what runs now (config/metrics_dir.py)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.path.isdir(directory):
        removed = metrics_dir.remove_dead_files(directory)
        if removed:
            logging.getLogger("gunicorn.error").info(
                "PROMETHEUS_MULTIPROC_DIR: removed %d file(s) of processes no longer running", len(removed))


def when_ready(server) -> None:
    if server.cfg.workers > 1 and _process_local_cache():
        logging.getLogger("gunicorn.error").warning(
            "%d workers share no cache (CACHE_URL unset: process-local memory): the token cache is off, and "
            "the connection-test rate and concurrency limits count per worker. Set CACHE_URL=redis://...",
            server.cfg.workers)


def post_fork(server, worker) -> None:
    """A token-cache invalidation must reach every process that serves: with a process-local cache
    it reaches only its own, so with several workers the token cache is off (organizations/token_cache.py)."""
    if server.cfg.workers > 1 and _process_local_cache():
        settings.TOKEN_CACHE_SECONDS = 0

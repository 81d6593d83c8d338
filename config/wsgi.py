"""The WSGI application (gunicorn: ``config.wsgi:application``).

Settings are loaded first: when config/settings.py refuses to start (a secret missing with DEBUG
off), its one-line message is printed and the process exits with status 3, gunicorn's "worker
failed to boot": the arbiter then stops instead of starting new workers that would fail the same.

After start-up, every view module is imported and the objects made so far are frozen out of the
cyclic garbage collector: a full collection then scans only what requests create. Measured on the
benchmark seed, a full collection paused a request for 180 ms over 145,000 start-up objects, and
about 25 ms once they were frozen (bench/FINDINGS.md).
"""

import gc
import os
import sys

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
BOOT_ERROR = 3  # gunicorn's WORKER_BOOT_ERROR

try:
    settings.INSTALLED_APPS  # noqa: B018 (loads config/settings.py, which may refuse to start)
except SystemExit as refused:
    if not isinstance(refused.code, str):
        raise
    print(refused.code, file=sys.stderr, flush=True)
    raise SystemExit(BOOT_ERROR) from None

application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 (imports every view, serializer and schema module now)
gc.freeze()

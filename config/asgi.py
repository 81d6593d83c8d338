"""The ASGI application (``config.asgi:application``).

As in config/wsgi.py: when config/settings.py refuses to start, its one-line message is printed
and the process exits with status 3 (gunicorn's "worker failed to boot", for its uvicorn workers).
"""

import os
import sys

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
BOOT_ERROR = 3  # gunicorn's WORKER_BOOT_ERROR

try:
    settings.INSTALLED_APPS  # noqa: B018 (loads config/settings.py, which may refuse to start)
except SystemExit as refused:
    if not isinstance(refused.code, str):
        raise
    print(refused.code, file=sys.stderr, flush=True)
    raise SystemExit(BOOT_ERROR) from None

application = get_asgi_application()

"""The WSGI application (gunicorn: ``config.wsgi:application``).

After start-up, every view module is imported and the objects made so far are frozen out of the
cyclic garbage collector: a full collection then scans only what requests create. Measured on the
benchmark seed, a full collection paused a request for 180 ms over 145,000 start-up objects, and
about 25 ms once they were frozen (bench/FINDINGS.md).
"""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 (imports every view, serializer and schema module now)
gc.freeze()

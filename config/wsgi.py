"""The WSGI application (gunicorn: ``config.wsgi:application``).

Settings are loaded first: when config/settings.py refuses to start (a secret missing with DEBUG
off), its one-line message is printed and the process exits with status 3, gunicorn's "worker
failed to boot": the arbiter then stops instead of starting new workers that would fail the same.

After start-up, every view module is imported and the objects made so far are frozen out of the
cyclic garbage collector: a full collection then scans only what requests create. Measured on the
benchmark seed, a full collection paused a request for 180 ms over 145,000 start-up objects, and
about 25 ms once they were frozen (bench/FINDINGS.md). Then the collector is moved out of requests:
a request's garbage is collected once its response is closed (core/gc_between_requests.py).
"""

import gc

from config.boot import load_settings_or_exit

load_settings_or_exit()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from core import gc_between_requests  # noqa: E402

django_application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 (imports every view, serializer and schema module now)
gc.freeze()
application = gc_between_requests.wrap(django_application)

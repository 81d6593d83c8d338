"""The ASGI application (``config.asgi:application``).

As in config/wsgi.py: when config/settings.py refuses to start, its one-line message is printed
and the process exits with status 3 (gunicorn's "worker failed to boot", for its uvicorn workers).
"""

from config.boot import load_settings_or_exit

load_settings_or_exit()

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()

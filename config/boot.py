"""Start-up of a server process: load the settings, or exit with their one-line refusal."""

import os
import sys

BOOT_ERROR = 3  # gunicorn's WORKER_BOOT_ERROR: the arbiter stops instead of re-forking workers


def load_settings_or_exit() -> None:
    """Load config/settings.py. When it refuses to start (a secret missing with DEBUG off), print
    its one-line message and exit with ``BOOT_ERROR``."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 (loads config/settings.py, which may refuse to start)
    except SystemExit as refused:
        if not isinstance(refused.code, str):
            raise
        print(refused.code, file=sys.stderr, flush=True)
        raise SystemExit(BOOT_ERROR) from None

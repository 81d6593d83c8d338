"""Read by gunicorn from the working directory: the Django settings load in the master, so a
refusal to start (no SECRET_KEY or ENCRYPTION_KEYS with DEBUG off) is one line, before any worker forks."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings

settings.INSTALLED_APPS  # noqa: B018

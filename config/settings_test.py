"""Test settings: the production settings (DEBUG off) with secrets made up for this run.

pytest.ini points here. A random SECRET_KEY and ENCRYPTION_KEYS entry are put into the
environment (unless already set) *before* config/settings.py reads it, so that it does not refuse
to start, and so that the processes the tests start (gunicorn, celery workers, manage.py) inherit
the same keys and read what this process encrypted. Never used outside the test suite.
"""

import base64
import os
import secrets

os.environ.setdefault("SECRET_KEY", "test-" + secrets.token_urlsafe(50))
os.environ.setdefault("ENCRYPTION_KEYS", "test:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))

from config.settings import *  # noqa: F403

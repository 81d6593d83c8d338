"""With LOG_FORMAT=json every line gunicorn writes is one JSON object, its own lines included.

gunicorn's own loggers (gunicorn.error: "Starting gunicorn", "Listening at", "Booting worker", "WORKER
TIMEOUT", when_ready's warning, the shutdown; gunicorn.access if enabled) wrote plain text between the
application's JSON lines. gunicorn.conf.py now hands gunicorn the project's LOGGING (logconfig_dict),
with its loggers on the same handler and formatter. The server is started, asked for a page, made to
warn (two workers on a process-local cache), and stopped; every line of its output must parse.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.support.gunicorn_server import gunicorn_server


def test_every_gunicorn_line_is_json(tmp_path):
    env = {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "CACHE_URL": "locmemcache://"}
    with gunicorn_server(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, workers=2, env=env) as server:
        assert server.request("GET", "/healthz")[0] == 200
        os.kill(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=30)
        output = server.output()
    lines = [line for line in output.splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not JSON: {line!r}\n{output[-3000:]}")
    messages = [(record.get("logger"), record.get("message", "")) for record in records]
    for expected in ("Starting gunicorn", "Listening at", "Booting worker", "share no cache", "Shutting down"):
        assert any(logger == "gunicorn.error" and expected in message for logger, message in messages), (
            expected, messages)
    assert any(logger == "core.access" for logger, _ in messages)

"""The app under a real gunicorn (the project's gunicorn.conf.py) on a loopback port, sharing the test
database: for tests that need several worker processes or threads (the token cache's invalidation
across processes, connection tests that must not starve the API).

Use it from a test on ``transactional_db`` (the workers see only committed rows)::

    with gunicorn_server(workers=2, env={"CACHE_URL": "redis://127.0.0.1:6379/14"}) as server:
        status, headers, body = server.request("GET", "/api/v1/data-sources/", token=raw)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.http_client import http_request

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class GunicornServer:
    url: str
    process: subprocess.Popen
    log: Path

    def request(self, method: str, path: str, *, token: str | None = None, body: Any = None,
                timeout: float = 60) -> tuple[int, dict[str, str], Any]:
        """One request on a new connection; (status, headers, decoded JSON body or text)."""
        return http_request(self.url + path, method, token=token, body=body, timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    """The production settings (DEBUG off) on plain HTTP over loopback, this run's secrets."""
    env = {key: value for key, value in os.environ.items() if key not in ("CACHE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false", "DATABASE_URL": database_url,
        "ALLOWED_HOSTS": HOST, "SECURE_SSL_REDIRECT": "false", "DATASOURCE_ALLOWED_NETWORKS": "127.0.0.0/8",
        "LOG_LEVEL": "WARNING", "SCHEMA_REFRESH_ASYNC": "false",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    env.update(extra)
    return env


@contextlib.contextmanager
def gunicorn_server(database_url: str, log_dir: Path, *, workers: int = 2, env: dict[str, str] | None = None,
                    args: tuple[str, ...] = ()) -> Iterator[GunicornServer]:
    """gunicorn --config gunicorn.conf.py config.wsgi:application, as the image runs it, with
    ``workers`` workers; stopped (the whole process group) when the block ends."""
    port = free_port()
    log = log_dir / f"gunicorn-{port}.log"
    cmd = [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py", "--bind", f"{HOST}:{port}",
           "--workers", str(workers), "--timeout", "120", *args, "config.wsgi:application"]
    with log.open("w") as out:
        process = subprocess.Popen(cmd, cwd=REPO, env=server_env(database_url, **(env or {})), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = GunicornServer(url=f"http://{HOST}:{port}", process=process, log=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{server.output()[-3000:]}")
            try:
                if server.request("GET", "/healthz", timeout=5)[0] == 200 and server.output().count(
                        "Booting worker") >= workers:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 60 s:\n{server.output()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

"""Real Celery worker processes against the real Redis, sharing the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def database_url() -> str:
    s = connection.settings_dict
    host = s.get("HOST") or "127.0.0.1"
    auth = s.get("USER") or "postgres"
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    return f"postgres://{auth}@{host}:{s.get('PORT') or 5432}/{s['NAME']}"


class WorkerPool:
    """Start N `celery worker` processes on a private queue; stop them on close."""

    def __init__(self, broker: str, log_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.broker = broker
        self.queue = f"test-{uuid.uuid4().hex[:8]}"
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker,
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "DATASOURCE_FILE_ROOT": str(settings.DATASOURCE_FILE_ROOT),
            "DATASOURCE_ALLOWED_NETWORKS": ",".join(settings.DATASOURCE_ALLOWED_NETWORKS),
            "SCHEMA_REFRESH_RETRY_BASE_SECONDS": "0.2",
            **(extra_env or {}),
        }

    def start(self, count: int = 1) -> None:
        for i in range(count):
            log = self.log_dir / f"worker{len(self.procs)}.log"
            cmd = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO",
                   "-Q", self.queue, "-n", f"w{i}-{self.queue}@%h", "--without-gossip", "--without-mingle",
                   "--without-heartbeat"]
            self.procs.append(subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=log.open("w"),
                                               stderr=subprocess.STDOUT))
            self.logs.append(log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if all("ready." in p.read_text() for p in self.logs):
                return
            time.sleep(0.2)
        raise RuntimeError("celery workers did not start:\n" + "\n".join(p.read_text()[-2000:] for p in self.logs))

    def output(self) -> str:
        return "\n".join(p.read_text() for p in self.logs)

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


REDIS_FOR_WORKERS = "redis://127.0.0.1:6379/7"


def forget_broker_connections() -> None:
    """Drop the Celery app's connection and producer pools (as Celery does after a fork), so the next
    message goes to the broker configured now, not to one a pool was opened on before."""
    from config.celery import app

    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def serve_worker_pool(tmp_path: Path, extra_env: dict[str, str] | None = None):
    """Fixture body: real workers on a private Redis queue, sharing the PostgreSQL test database;
    the app's broker settings are restored afterwards. In CI a missing prerequisite fails; locally
    it skips saying what to start."""
    import pytest

    from config.celery import app
    from tests.conftest import IN_CI, require_service

    if connection.vendor != "postgresql":
        message = "worker tests share the test database with worker processes: set DATABASE_URL to PostgreSQL"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    require_service("127.0.0.1", 6379, "Redis")
    pool = WorkerPool(REDIS_FOR_WORKERS, tmp_path, extra_env=extra_env)
    old = {k: app.conf.get(k) for k in ("broker_url", "task_default_queue", "broker_transport_options")}
    app.conf.update(broker_url=REDIS_FOR_WORKERS, task_default_queue=pool.queue, broker_transport_options={})
    forget_broker_connections()
    try:
        yield pool
    finally:
        pool.close()
        app.conf.update(**old)
        forget_broker_connections()

"""PROMETHEUS_MULTIPROC_DIR at gunicorn's start: this host's files of processes that are gone are removed;
live processes' files (a Celery worker beside gunicorn) and other hosts' (other containers on the shared
volume) stay (config/metrics_dir.py, called by gunicorn.conf.py's on_starting)."""

from __future__ import annotations

import os
import subprocess
import sys

from config.metrics_dir import host_identity, remove_dead_files
from tests.support.gunicorn_server import gunicorn_server


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_this_hosts_files_of_gone_processes_are_removed(tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    host, gone = host_identity(), dead_pid()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        names = [f"counter_{host}-{gone}.db", f"histogram_{host}-{gone}.db", f"gauge_all_{host}-{gone}.db",
                 f"counter_{host}-{alive.pid}.db", f"counter_{host}-{os.getpid()}.db",
                 f"counter_other-host-{gone}.db", f"counter_{host}x-{gone}.db", "notes.txt"]
        for name in names:
            (directory / name).write_bytes(b"")
        removed = remove_dead_files(directory)
    finally:
        alive.kill()
        alive.wait()
    assert sorted(removed) == sorted(names[:3])
    assert sorted(p.name for p in directory.iterdir()) == sorted(names[3:])


def test_gunicorn_removes_them_as_it_starts(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    stale = metrics / f"counter_{host_identity()}-{dead_pid()}.db"
    stale.write_bytes(b"")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    with gunicorn_server(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, workers=1, env=env) as server:
        assert server.request("GET", "/healthz")[0] == 200
        assert not stale.exists()

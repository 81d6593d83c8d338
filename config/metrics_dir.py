"""Emptying ``PROMETHEUS_MULTIPROC_DIR`` of what earlier processes of this host left there.

Every process that serves metrics (gunicorn workers, Celery workers) writes its samples to files named
after its identity, ``<host>-<pid>`` (core/metrics.py), and ``/metrics`` sums every file of the
directory: files of processes that are gone would be summed forever (their gauges too). The directory
may be shared with other hosts (a volume mounted in several containers, each its own host name) and with
other processes of this host that are still running (a Celery worker beside gunicorn), so only this
host's files whose process no longer runs are removed. gunicorn.conf.py calls it as the master starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from pathlib import Path


def host_identity() -> str:
    """The host part of core/metrics.py's process identity (same sanitising)."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True


def remove_dead_files(directory: str | os.PathLike[str], host: str | None = None) -> list[str]:
    """Delete this host's ``*.db`` files of processes no longer running; the names removed."""
    pattern = re.compile(rf"_{re.escape(host or host_identity())}-(\d+)\.db$")
    removed = []
    for path in sorted(Path(directory).glob("*.db")):
        match = pattern.search(path.name)
        if match and int(match.group(1)) != os.getpid() and not _running(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path.name)
    return removed

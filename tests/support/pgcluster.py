"""A throwaway PostgreSQL cluster (initdb) with real password (scram) authentication."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass


@dataclass
class PgCluster:
    host: str
    port: int
    user: str
    password: str
    database: str
    datadir: str


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start_cluster(password: str = "s3cret-Pg-pass") -> PgCluster:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("initdb/pg_ctl not found: install postgresql (Debian package)")
    base = tempfile.mkdtemp(prefix="pgcluster-")
    os.chmod(base, 0o755)
    datadir = os.path.join(base, "data")
    pwfile = os.path.join(base, "pw")
    with open(pwfile, "w") as fh:
        fh.write(password)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(pwfile, "postgres")
    subprocess.run(
        _as_postgres([initdb, "-D", datadir, "-U", "owner", "--pwfile", pwfile, "--auth=scram-sha-256", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base}"
    subprocess.run(
        _as_postgres([pg_ctl, "-D", datadir, "-o", opts, "-l", os.path.join(base, "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    return PgCluster("127.0.0.1", port, "owner", password, "postgres", datadir)


def stop_cluster(cluster: PgCluster) -> None:
    pg_ctl = _bin("pg_ctl")
    subprocess.run(_as_postgres([pg_ctl, "-D", cluster.datadir, "-m", "immediate", "stop"]), capture_output=True)
    shutil.rmtree(os.path.dirname(cluster.datadir), ignore_errors=True)

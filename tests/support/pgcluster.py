"""A throwaway PostgreSQL cluster (initdb) with real password (scram) authentication, optionally TLS."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field


@dataclass
class PgCluster:
    host: str
    port: int
    user: str
    password: str
    database: str
    datadir: str


@dataclass
class ClusterTLS:
    """Server certificate, key and CA (PEM text) for ``ssl=on``; ``hba`` lines go first in pg_hba.conf."""

    cert_pem: str
    key_pem: str
    ca_pem: str | None = None
    hba: tuple[str, ...] = field(default_factory=tuple)


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _write(path: str, text: str, mode: int = 0o600) -> str:
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres")
    return path


def _tls_options(base: str, datadir: str, tls: ClusterTLS) -> str:
    """Write the TLS files and pg_hba lines; returns the server options that turn TLS on."""
    opts = " -c ssl=on"
    opts += f" -c ssl_cert_file={_write(os.path.join(base, 'server.crt'), tls.cert_pem)}"
    opts += f" -c ssl_key_file={_write(os.path.join(base, 'server.key'), tls.key_pem)}"
    if tls.ca_pem:
        opts += f" -c ssl_ca_file={_write(os.path.join(base, 'ca.crt'), tls.ca_pem)}"
    if tls.hba:
        hba = os.path.join(datadir, "pg_hba.conf")
        with open(hba) as fh:
            original = fh.read()
        _write(hba, "\n".join(tls.hba) + "\n" + original)
    return opts


def start_cluster(password: str = "s3cret-Pg-pass", tls: ClusterTLS | None = None) -> PgCluster:
    """initdb and start a cluster on 127.0.0.1:<free port>; with ``tls``, TLS is on."""
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
    if tls:
        opts += _tls_options(base, datadir, tls)
    log = os.path.join(base, "log")
    started = subprocess.run(
        _as_postgres([pg_ctl, "-D", datadir, "-o", opts, "-l", log, "-w", "start"]), capture_output=True
    )
    if started.returncode:
        tail = open(log).read()[-2000:] if os.path.exists(log) else started.stderr.decode()[-2000:]
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {tail}")
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

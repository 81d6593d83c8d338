"""A throwaway ClickHouse server: Debian's ``clickhouse-server`` (18.16) with a config of its own.

``start_server`` writes config.xml and users.xml into a temp dir and starts the real server binary
as a subprocess: it listens on 127.0.0.1 only, on a free native-protocol port (``tcp_port``) and a
free native-over-TLS port (``tcp_port_secure``, certificate for 127.0.0.1/localhost from
``tests/support/certs.py``); no HTTP or interserver port. Data, tmp, user files and logs live under
the temp dir, which ``stop_server`` removes. One user with a SHA-256 password; queries are logged
to system.query_log. The server runs as the current user (root included) and starts in about 0.1 s
using about 100 MB of memory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.certs import CertBundle, make_bundle

BINARY = "/usr/sbin/clickhouse-server"
HOST = "127.0.0.1"
USER = "dsp_user"
INSTALL_HINT = "apt-get install clickhouse-server"

CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{base}/log/server.log</log>
        <errorlog>{base}/log/server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
        <console>0</console>
    </logger>
    <listen_host>{host}</listen_host>
    <tcp_port>{port}</tcp_port>
    <tcp_port_secure>{secure_port}</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>{base}/server.crt</certificateFile>
            <privateKeyFile>{base}/server.key</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
    <max_connections>256</max_connections>
    <max_concurrent_queries>50</max_concurrent_queries>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <path>{base}/data/</path>
    <tmp_path>{base}/tmp/</tmp_path>
    <user_files_path>{base}/user_files/</user_files_path>
    <format_schema_path>{base}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mlock_executable>false</mlock_executable>
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <flush_interval_milliseconds>500</flush_interval_milliseconds>
    </query_log>
</yandex>
"""

USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default><log_queries>1</log_queries></default></profiles>
    <users>
        <{user}>
            <password_sha256_hex>{digest}</password_sha256_hex>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </{user}>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default>
    </quotas>
</yandex>
"""


@dataclass
class ClickHouseServer:
    host: str
    port: int  # native protocol, plain
    secure_port: int  # native protocol over TLS
    user: str
    password: str
    certs: CertBundle
    base: Path
    process: subprocess.Popen

    @property
    def ca_pem(self) -> str:
        return self.certs.ca.cert_pem

    def client(self, **options: Any) -> Any:
        """An administrating driver client on the plain port (the tests' own setup, not the connector)."""
        from clickhouse_driver import Client

        return Client(self.host, self.port, user=self.user, password=self.password, **options)

    def memory_kb(self) -> int:
        """Resident memory of the server process."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def available() -> bool:
    return os.access(BINARY, os.X_OK)


def require() -> None:
    """Go on only where the server binary is installed: else skip locally, fail in CI (where a
    missing server is never a silent skip), saying how to install it."""
    if available():
        return
    import pytest

    message = f"{BINARY} is missing: {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _answers(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _launch(base: Path, password: str, certs: CertBundle) -> tuple[subprocess.Popen, int, int]:
    port, secure_port = _free_ports(2)
    (base / "config.xml").write_text(CONFIG.format(base=base, host=HOST, port=port, secure_port=secure_port))
    digest = hashlib.sha256(password.encode()).hexdigest()
    (base / "users.xml").write_text(USERS.format(user=USER, digest=digest))
    with open(base / "stdout.log", "ab") as out:
        process = subprocess.Popen(
            [BINARY, f"--config-file={base / 'config.xml'}"], cwd=base, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if _answers(port) and _answers(secure_port):
            return process, port, secure_port
        time.sleep(0.05)
    _terminate(process)
    errors = base / "log" / "server.err.log"
    tail = errors.read_text()[-2000:] if errors.exists() else (base / "stdout.log").read_text()[-2000:]
    raise RuntimeError(f"clickhouse-server did not start on {HOST}:{port}/{secure_port}: {tail}")


def start_server(password: str) -> ClickHouseServer:
    """Start the server (a second try on other ports if a free port was taken meanwhile)."""
    if not available():
        raise FileNotFoundError(f"{BINARY} is not installed: {INSTALL_HINT}")
    base = Path(tempfile.mkdtemp(prefix="clickhouse-"))
    certs = make_bundle()
    for name, pem in (("server.crt", certs.server.cert_pem), ("server.key", certs.server.key_pem)):
        (base / name).write_text(pem)
        os.chmod(base / name, 0o600)
    for attempt in range(2):
        try:
            process, port, secure_port = _launch(base, password, certs)
            break
        except RuntimeError:
            if attempt:
                shutil.rmtree(base, ignore_errors=True)
                raise
    return ClickHouseServer(HOST, port, secure_port, USER, password, certs, base, process)


def _terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def stop_server(server: ClickHouseServer) -> None:
    _terminate(server.process)
    shutil.rmtree(server.base, ignore_errors=True)

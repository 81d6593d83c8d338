"""A throwaway OpenSSH server on 127.0.0.1:<free port> with generated host and user keys.

Runs as root (CI): a dedicated user (unique per run, so concurrent runs do not clash) with a
random password is created with useradd and removed again on stop. User keys: authorized
ones in several formats, plus a stranger key.
Use ``serve_sshd()`` in a fixture: it fails in CI and skips locally when sshd cannot run.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
PASSPHRASE = "key-Passphrase-42"
# name -> ssh-keygen options; "stranger" is not authorized
USER_KEYS = {
    "ed25519": ["-t", "ed25519"],
    "rsa_pem": ["-t", "rsa", "-b", "2048", "-m", "PEM"],
    "ecdsa_pem": ["-t", "ecdsa", "-b", "256", "-m", "PEM"],
    "ed25519_passphrase": ["-t", "ed25519", "-N", PASSPHRASE],
    "stranger": ["-t", "ed25519"],
}


@dataclass
class SSHServer:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    workdir: Path
    process: subprocess.Popen
    keys: dict[str, str] = field(default_factory=dict, repr=False)  # name -> private key text

    @property
    def host_key_pub(self) -> Path:
        return self.workdir / "host_ed25519.pub"

    def log(self) -> str:
        return (self.workdir / "sshd.log").read_text(errors="replace")

    def connections(self) -> int:
        """How many TCP connections sshd has logged (LogLevel VERBOSE)."""
        return self.log().count("Connection from ")


def missing_reason() -> str | None:
    """Why no sshd can be started here, or ``None``."""
    if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        return f"{SSHD} or ssh-keygen is missing: apt-get install -y openssh-server"
    if os.geteuid() != 0 or not shutil.which("useradd"):
        return "the sshd tests need root (to run sshd and create a test user with useradd)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, options: list[str]) -> str:
    args = options if "-N" in options else [*options, "-N", ""]
    subprocess.run(["ssh-keygen", "-q", *args, "-C", path.name, "-f", str(path)], check=True, capture_output=True)
    return path.read_text()


def _version() -> tuple[int, int]:
    out = subprocess.run([SSHD, "-V"], capture_output=True, text=True)
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stderr + out.stdout)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def _create_user(password: str) -> str:
    """Create a test user (no home, nologin shell) with ``password``; returns its name."""
    user = f"dsp_ssh_{secrets.token_hex(4)}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", user], check=True, capture_output=True)
    subprocess.run(["chpasswd"], input=f"{user}:{password}".encode(), check=True, capture_output=True)
    return user


def keygen_fingerprint(pub: Path, hash_name: str = "sha256") -> str:
    """The fingerprint OpenSSH prints for a public key file (``ssh-keygen -l``)."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", hash_name, "-f", str(pub)], check=True, capture_output=True)
    return out.stdout.decode().split()[1]


def _config(work: Path, port: int) -> str:
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {work / 'host_ed25519'}",
        f"PidFile {work / 'sshd.pid'}",
        f"AuthorizedKeysFile {work / 'authorized_keys'}",
        "StrictModes no",
        "UsePAM no",
        "PermitRootLogin yes",
        "PubkeyAuthentication yes",
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        "AllowTcpForwarding yes",
        "X11Forwarding no",
        "PermitTTY no",
        "LogLevel VERBOSE",
        "MaxStartups 100",
    ]
    if _version() >= (9, 8):  # do not penalize the tests' deliberate auth failures
        lines.append("PerSourcePenaltyExemptList 127.0.0.1")
    return "\n".join(lines) + "\n"


def start_sshd() -> SSHServer:
    """Generate keys and a config, start ``sshd -D -e``, and wait until it listens."""
    work = Path(tempfile.mkdtemp(prefix="sshd-"))
    work.chmod(0o755)  # sshd reads authorized_keys as the logged-in user
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
    _keygen(work / "host_ed25519", ["-t", "ed25519"])
    keys = {name: _keygen(work / f"user_{name}", options) for name, options in USER_KEYS.items()}
    authorized = [(work / f"user_{n}.pub").read_text() for n in USER_KEYS if n != "stranger"]
    (work / "authorized_keys").write_text("".join(authorized))
    (work / "authorized_keys").chmod(0o644)
    port = _free_port()
    config = work / "sshd_config"
    config.write_text(_config(work, port))
    checked = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    if checked.returncode:
        raise RuntimeError(f"sshd rejected its test config: {checked.stderr.strip()}")
    password = secrets.token_urlsafe(12)
    user = _create_user(password)
    log = open(work / "sshd.log", "wb")
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    server = SSHServer("127.0.0.1", port, user, password, work, process, keys)
    deadline = time.time() + 10
    while time.time() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    stop_sshd(server)
    raise RuntimeError(f"sshd did not start: {server.log()[-1000:]}")


def stop_sshd(server: SSHServer) -> None:
    """Stop sshd, remove the temp dir and the test user."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(5)
        except subprocess.TimeoutExpired:
            server.process.kill()
    subprocess.run(["userdel", server.user], capture_output=True)
    shutil.rmtree(server.workdir, ignore_errors=True)


def serve_sshd() -> Iterator[SSHServer]:
    """Fixture body: a running sshd, stopped afterwards; fails in CI, skips locally, when unavailable."""
    unavailable = pytest.fail if os.environ.get("CI") == "true" else pytest.skip
    reason = missing_reason()
    if reason:
        unavailable(f"sshd tests cannot run: {reason}")
    try:
        server = start_sshd()
    except Exception as exc:
        unavailable(f"could not start sshd: {exc}")
    try:
        yield server
    finally:
        stop_sshd(server)

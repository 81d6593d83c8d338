"""SSH tunnels (paramiko): reach a database through a bastion, for any TCP-based connector.

Staged test (the bastion resolves the target, so only the SSH host meets the egress policy;
the target host is syntax-checked: no Unix sockets or host lists)::

    with SSHTunnel(config) as tunnel:  # when SSHTunnel.enabled(config)
        host, (local_host, local_port), greeting = run_tunnel_stages(runner, tunnel, db_host, db_port, probe)
        ...  # the driver connects to local_host:local_port (127.0.0.1, ephemeral); TLS checks ``host``

Stage tcp ends only once the SSH host has sent an SSH-2.0 banner: anything else reads like a closed
port. Within stage ssh, ``probe(local_address)`` checks that the target speaks the database's
protocol; if not, it reads like a target the bastion could not connect to.
Introspection: ``with forwarded(config, db_host, db_port, probe) as ((local_host, local_port), greeting):``
(raises ``ConnectorError``). Settings: ``connection.ssh_tunnel`` {enabled, host, port,
username, host_key_fingerprint}; secrets ``ssh_password``, ``ssh_private_key`` (PEM/OpenSSH
text), ``ssh_private_key_passphrase``. A pinned fingerprint (``SHA256:<base64>`` or
``MD5:aa:bb:..``) must match; unpinned, the key seen is accepted and given as
``tunnel.recorded_fingerprint`` (``run_tunnel_stages`` puts it on the runner's result). The
forwarder accepts at most ``max_connections`` connections and closes with the tunnel.
"""

from __future__ import annotations

import base64
import io
import logging
import select
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from .base import ConnectionConfig, ConnectorError, StageRunner
from .egress import check_host_syntax, resolve_checked
from .reach import connect_and_greet, peek, ssh_banner

logging.getLogger("paramiko").setLevel(logging.WARNING)
T = TypeVar("T")

KEY_UNREADABLE = "The SSH private key could not be read: check its format and passphrase."
KEY_ENCRYPTED = "The SSH private key is encrypted: give its passphrase."
INCOMPLETE = "The SSH tunnel needs a host, a username, and a password or private key."
_KEY_CLASSES: tuple[tuple[type, type[paramiko.PKey]], ...] = (
    (rsa.RSAPrivateKey, paramiko.RSAKey),
    (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
    (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey),
)


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """A paramiko key from PEM/OpenSSH text (RSA, Ed25519, ECDSA); raises ``ConnectorError``."""
    data = text.strip().encode() + b"\n"
    password = passphrase.encode() if passphrase else None
    encrypted = False
    for loader in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
        for pw in (password, None) if password else (None,):  # a needless passphrase is ignored
            try:
                loaded: Any = loader(data, password=pw)
            except TypeError:  # with no password: the key is encrypted
                encrypted = encrypted or pw is None
                continue
            except (ValueError, UnsupportedAlgorithm):
                continue
            key_class = next((k for c, k in _KEY_CLASSES if isinstance(loaded, c)), None)
            if key_class is None:
                raise ConnectorError("ssh", "Unsupported SSH key type: use RSA, Ed25519 or ECDSA.")
            try:
                plain = loaded.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
                return key_class.from_private_key(io.StringIO(plain))
            except (ValueError, paramiko.SSHException):
                raise ConnectorError("ssh", KEY_UNREADABLE) from None
    raise ConnectorError("ssh", KEY_ENCRYPTED if encrypted and not password else KEY_UNREADABLE)


def fingerprint_md5(key: paramiko.PKey) -> str:
    """OpenSSH-style ``MD5:aa:bb:...``."""
    return "MD5:" + ":".join(f"{b:02x}" for b in key.get_fingerprint())


def fingerprint_matches(pinned: str, key: paramiko.PKey) -> tuple[bool, str]:
    """Whether ``key`` matches ``pinned`` (SHA256 or MD5), and the key's fingerprint in that algorithm."""
    algorithm, _, value = pinned.strip().partition(":")
    if algorithm.upper() == "MD5":
        seen = fingerprint_md5(key)
        return value.replace(":", "").lower() == seen[4:].replace(":", ""), seen
    seen = str(key.fingerprint)  # "SHA256:<base64 without padding>", as OpenSSH prints it
    try:
        wanted = base64.b64decode(value.strip().rstrip("=") + "===")
    except ValueError:
        return False, seen
    return algorithm.upper() == "SHA256" and wanted == base64.b64decode(seen[7:] + "==="), seen


class SSHTunnel:
    """One SSH session to the bastion plus a local 127.0.0.1 forwarder to one target."""

    def __init__(self, config: ConnectionConfig, max_connections: int = 8):
        settings = config.connection.get("ssh_tunnel") or {}
        self.host: str = settings.get("host") or ""
        self.port: int = settings.get("port") or 22
        self.username: str = settings.get("username") or ""
        self.pinned: str = (settings.get("host_key_fingerprint") or "").strip()
        self.secrets = config.secrets
        self.timeout = float(config.connect_timeout)
        self.max_connections = max_connections
        self.fingerprint: str | None = None  # SHA256 of the host key seen
        self.local_port: int | None = None
        self._ip = ""
        self._sock: socket.socket | None = None
        self._transport: paramiko.Transport | None = None
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: list[Any] = []  # sockets and channels to close
        self._threads: list[threading.Thread] = []

    @staticmethod
    def enabled(config: ConnectionConfig) -> bool:
        """Whether the connection asks for an SSH tunnel."""
        return bool((config.connection.get("ssh_tunnel") or {}).get("enabled"))

    @property
    def recorded_fingerprint(self) -> str | None:
        """The host key seen on an unpinned connection (for the caller to pin), else ``None``."""
        return None if self.pinned else self.fingerprint

    @property
    def describe(self) -> str:
        """A short success message for the ssh stage."""
        return f"Tunnel through {self.host}:{self.port}; host key {self.fingerprint}."

    def resolve(self) -> str:
        """Check the SSH host against the egress policy; returns the IP to connect to."""
        if not (self.host and self.username and any(self.secrets.get(k) for k in ("ssh_password", "ssh_private_key"))):
            raise ConnectorError("ssh", INCOMPLETE)
        self._ip = resolve_checked(self.host, self.port, self.timeout)
        return self._ip

    def connect(self) -> None:
        """Stage tcp: connect to the checked SSH address and wait for an SSH-2.0 banner (left unread).

        A peer that does not identify as an SSH server reads like a closed port.
        """
        self._sock, _ = connect_and_greet(
            self._ip or self.resolve(), self.port, self.timeout, self.host, lambda s, d: peek(s, d, ssh_banner)
        )

    def open(self, target_host: str, target_port: int) -> tuple[str, int]:
        """Handshake, verify the host key, authenticate, start the forwarder (stage ssh)."""
        if self._sock is None:
            self.connect()
        transport = self._transport = paramiko.Transport(cast(socket.socket, self._sock))  # set by connect()
        transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = self.timeout
        done = threading.Event()
        try:
            transport.start_client(event=done)
        except paramiko.SSHException:
            raise self._not_ssh() from None
        done.wait(self.timeout)
        if not done.is_set() or not transport.is_active():
            raise self._not_ssh()
        self._check_host_key(transport.get_remote_server_key())
        self._authenticate(transport)
        first = self._channel(target_host, target_port)
        self._listen(target_host, target_port, first)
        return "127.0.0.1", int(self.local_port or 0)

    def _not_ssh(self) -> ConnectorError:
        return ConnectorError("ssh", f"The server at {self.host}:{self.port} did not complete an SSH handshake.")

    def _check_host_key(self, key: paramiko.PKey) -> None:
        self.fingerprint = str(key.fingerprint)
        if not self.pinned:
            return
        matches, seen = fingerprint_matches(self.pinned, key)
        if not matches:
            raise ConnectorError(
                "ssh",
                f"The SSH host key of {self.host}:{self.port} does not match the pinned fingerprint: "
                f"expected {self.pinned}, got {seen}.",
            )

    def _authenticate(self, transport: paramiko.Transport) -> None:
        key_text = self.secrets.get("ssh_private_key")
        password = self.secrets.get("ssh_password")
        key = load_private_key(key_text, self.secrets.get("ssh_private_key_passphrase")) if key_text else None
        for kind, value in (("key", key), ("password", password)):
            if not value:
                continue
            try:
                if kind == "key":
                    transport.auth_publickey(self.username, cast(paramiko.PKey, value))
                else:
                    transport.auth_password(self.username, cast(str, value))
            except paramiko.AuthenticationException:
                continue
            except (paramiko.SSHException, OSError, EOFError):
                raise ConnectorError("ssh", "The SSH server closed the connection during authentication.") from None
            if transport.is_authenticated():
                return
        raise ConnectorError("ssh", f"SSH authentication failed for user '{self.username}'.")

    def _channel(self, host: str, port: int) -> paramiko.Channel:
        assert self._transport is not None
        try:
            return self._transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=self.timeout)
        except paramiko.ChannelException as exc:
            if exc.code == 1:
                raise ConnectorError("ssh", "The SSH server does not allow TCP forwarding.") from None
            raise ConnectorError("ssh", f"The SSH server could not connect to {host}:{port}.") from None
        except (paramiko.SSHException, OSError, EOFError):
            raise ConnectorError("ssh", f"The SSH server did not open a connection to {host}:{port} in time.") from None

    def _listen(self, host: str, port: int, first: paramiko.Channel) -> None:
        listener = self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(self.max_connections)
        self.local_port = listener.getsockname()[1]
        self._open.append(first)
        self._spawn(self._accept_loop, host, port, first, name="ssh-forward-accept")

    def _spawn(self, target: Any, *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, host: str, port: int, first: paramiko.Channel | None) -> None:
        accepted, listener = 0, self._listener
        while listener and not self._stop.is_set() and accepted < self.max_connections:
            try:
                ready, _, _ = select.select([listener], [], [], 0.2)
                if not ready:
                    continue
                client, _addr = listener.accept()
            except (OSError, ValueError):
                return
            accepted += 1
            try:
                channel, first = first or self._channel(host, port), None
            except ConnectorError:
                client.close()
                continue
            with self._lock:
                self._open += [client, channel]
            self._spawn(self._pump, client, channel, name="ssh-forward-pump")
        if listener:
            listener.close()  # no more connections than allowed

    def _pump(self, client: socket.socket, channel: paramiko.Channel) -> None:
        watched: list[Any] = [client, channel]  # a socket and a paramiko Channel (both have fileno())
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select(watched, [], [], 0.2)
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        break
                    channel.sendall(data)
                if channel in ready:
                    data = channel.recv(65536)
                    if not data:
                        break
                    client.sendall(data)
        except (OSError, ValueError, EOFError, paramiko.SSHException):
            pass
        finally:
            try:
                channel.close()  # the transport may already be gone (tunnel closed meanwhile)
            except (OSError, EOFError, paramiko.SSHException):
                pass
            client.close()

    def close(self) -> None:
        """Stop the forwarder, close every connection and the SSH session."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for item in self._open:
                item.close()
        if self._transport is not None:
            self._transport.close()
        if self._sock is not None:
            self._sock.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(2)

    def __enter__(self) -> SSHTunnel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _through(tunnel: SSHTunnel, host: str, port: int, probe: Callable[[tuple[str, int]], T]) -> T:
    """``probe`` the target through the tunnel's local end; a target that does not answer like the
    expected server reads like one the bastion could not connect to."""
    try:
        return probe(("127.0.0.1", int(tunnel.local_port or 0)))
    except ConnectorError:
        raise ConnectorError("ssh", f"The SSH server could not connect to {host}:{port}.") from None


def run_tunnel_stages(
    runner: StageRunner, tunnel: SSHTunnel, host: str, port: int, probe: Callable[[tuple[str, int]], T]
) -> tuple[str, tuple[str, int], T]:
    """Stages resolve, tcp and ssh for a tunnelled target; returns the checked host, the local address,
    and what ``probe`` (run on the local address within stage ssh) returned."""

    def resolve() -> str:
        checked = check_host_syntax(host, port)
        tunnel.resolve()
        return checked

    def ssh() -> tuple[tuple[str, int], T]:
        local = tunnel.open(checked, port)
        return local, _through(tunnel, checked, port, probe)

    checked = runner.run("resolve", resolve)
    runner.run("tcp", tunnel.connect)
    try:
        local, greeting = runner.run("ssh", ssh)
    finally:
        runner.ssh_host_key_fingerprint = tunnel.recorded_fingerprint
    runner.stages[-1].message = tunnel.describe
    return checked, local, greeting


@contextmanager
def forwarded(
    config: ConnectionConfig, host: str, port: int, probe: Callable[[tuple[str, int]], T]
) -> Iterator[tuple[tuple[str, int], T]]:
    """A tunnel to ``host:port`` for one use (e.g. introspection): the local address and what ``probe``
    returned for it; raises ``ConnectorError``."""
    checked = check_host_syntax(host, port)
    with SSHTunnel(config) as tunnel:
        tunnel.resolve()
        tunnel.connect()
        local = tunnel.open(checked, port)
        yield local, _through(tunnel, checked, port, probe)

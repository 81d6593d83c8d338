"""MongoDB stages tcp and tls: the connector's own hello, before pymongo connects.

tcp: an OP_QUERY ``isMaster`` to the checked address of each seed in turn (one deadline for all); only a
valid OP_REPLY/OP_MSG answer proves a MongoDB server, every failure before reads like a closed port
(reach.py). A replica-set name the server does not carry fails here. With TLS on, a server whose handshake
fails but that answers the same hello in plain text on a new connection is MongoDB without TLS: stage tls
says so (as PostgreSQL's "The server does not support SSL"). tls: a handshake verifying the chain and the
host name, as pymongo will; ``ca_certificate`` reaches pymongo in a private temporary file.
"""

from __future__ import annotations

import os
import secrets
import socket
import ssl
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bson

from .base import ConnectorError
from .http_stages import tls_context
from .mongodb_srv import Seed
from .reach import Deadline, NotTheServer, connect_and_greet, tcp_connect, unreachable

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
MAX_HELLO = 16384  # bytes: a hello answer is a few hundred
NO_TLS = "The server does not support TLS, but TLS is required (tls or srv is on)."


def _is_master(request_id: int) -> bytes:
    body = struct.pack("<i", 0) + b"admin.$cmd\0" + struct.pack("<ii", 0, -1) + bson.encode({"isMaster": 1})
    return struct.pack("<iiii", 16 + len(body), request_id, 0, OP_QUERY) + body


def hello_answer(data: bytes, request_id: int) -> dict[str, Any] | None | bool:
    """Judge of the probe: the hello document, None while incomplete, False when not MongoDB's answer."""
    if len(data) < 16:
        return None
    length, _, response_to, opcode = struct.unpack_from("<iiii", data)
    if response_to != request_id or opcode not in (OP_REPLY, OP_MSG) or not 21 <= length <= MAX_HELLO:
        return False
    if len(data) < length:
        return None
    at = 36 if opcode == OP_REPLY else 21  # OP_REPLY: flags, cursor id, start, count; OP_MSG: flags, kind 0
    if (opcode == OP_MSG and data[20] != 0) or length < at + 5:
        return False
    try:
        document = bson.decode(data[at:length])
    except (bson.errors.BSONError, ValueError, struct.error):
        return False
    known = ("ok", "ismaster", "isWritablePrimary", "maxWireVersion")
    return document if any(key in document for key in known) else False


_UNVERIFIED = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # the probe's: no CA store to load (tls verifies)
_UNVERIFIED.check_hostname, _UNVERIFIED.verify_mode = False, ssl.CERT_NONE


def _probe(seed: Seed, deadline: Deadline, tls: bool) -> dict[str, Any]:
    """Connect to the checked address and exchange isMaster (over unverified TLS when ``tls``)."""
    request_id = secrets.randbelow(2**31 - 1) + 1

    def greet(sock: socket.socket, deadline: Deadline) -> dict[str, Any]:
        sock.settimeout(max(deadline.remaining(), 0.001))
        try:
            stream = _UNVERIFIED.wrap_socket(sock, server_hostname=seed.host) if tls else sock
        except (ssl.SSLError, OSError):
            if _answers_plain(seed, deadline):
                raise ConnectorError("tls", NO_TLS) from None
            raise NotTheServer("no TLS") from None
        stream.sendall(_is_master(request_id))
        data = b""
        while (answer := hello_answer(data, request_id)) is None:
            stream.settimeout(max(deadline.remaining(), 0.001))
            chunk = stream.recv(4096)
            if not chunk:
                raise NotTheServer("closed")
            data += chunk
        stream.close()
        if not isinstance(answer, dict):
            raise NotTheServer("not a hello answer")
        return answer

    if deadline.remaining() <= 0:
        raise unreachable(seed.host, seed.port)
    sock, answer = connect_and_greet(seed.ip, seed.port, deadline.remaining(), seed.host, greet)
    sock.close()
    return answer


def _answers_plain(seed: Seed, deadline: Deadline) -> bool:
    """Whether the seed answers hello in plain text on a new connection (after a failed TLS handshake)."""
    try:
        _probe(seed, deadline, False)
    except ConnectorError:
        return False
    return True


def reach(seeds: list[Seed], tls: bool, replica_set: str, timeout: float) -> Seed:
    """Stage tcp: the first seed that answers hello (one deadline for all); its replica-set name checked.
    When none does, a seed found to speak MongoDB without TLS is the failure reported (stage tls)."""
    deadline, failure = Deadline(timeout), None
    for seed in seeds:
        try:
            answer = _probe(seed, deadline, tls)
        except ConnectorError as exc:
            failure = exc if exc.stage == "tls" and (failure is None or failure.stage != "tls") else failure or exc
            continue
        if replica_set and answer.get("setName") != replica_set:
            raise ConnectorError("tcp", f"The server at {seed.host}:{seed.port} is not a member of replica set "
                                        f"'{replica_set}'.")
        return seed
    raise failure or unreachable(seeds[0].host, seeds[0].port)


def verify_tls(seed: Seed, ca_pem: str, timeout: float) -> None:
    """Stage tls: a handshake verifying the chain (system CAs or ``ca_certificate`` alone) and the host name."""
    try:
        context = tls_context(ca_pem)
    except (ssl.SSLError, ValueError):
        raise ConnectorError("tls", "The CA certificate (ca_certificate) could not be read.") from None
    sock = tcp_connect(seed.ip, seed.port, timeout, seed.host)
    try:
        context.wrap_socket(sock, server_hostname=seed.host).close()
    except ssl.SSLCertVerificationError as exc:
        reason = str(exc.verify_message or "unknown reason").rstrip(".")
        raise ConnectorError("tls", f"The server's certificate could not be verified: {reason}.") from None
    except (ssl.SSLError, OSError):
        raise ConnectorError("tls", "The TLS handshake with the server failed.") from None
    finally:
        sock.close()


@contextmanager
def ca_file(ca_pem: str) -> Iterator[str | None]:
    """The source's CA in a private temporary file for pymongo (removed after); None: the system's CAs."""
    if not ca_pem:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="mongodb-ca-") as directory:
        path = Path(directory) / "ca.pem"
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(ca_pem)
        yield str(path)

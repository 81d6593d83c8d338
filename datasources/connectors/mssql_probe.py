"""The first TDS messages of the SQL Server connector, spoken by the connector itself (stages tcp and tls).

A PRELOGIN exchange (the record pytds sends too) proves the peer is a TDS server: until it has answered, every
failure reads like a closed port. With ``encrypt``, the TLS handshake that follows, carried in PRELOGIN packets
as MS-TDS requires, is verified with the standard library (system CAs, or ``ca_certificate`` alone; host name
checked; TLS 1.2, the version pytds speaks).
"""

from __future__ import annotations

import socket
import ssl
import struct

from .base import ConnectorError
from .http_stages import tls_context
from .reach import Deadline, NotTheServer, connect_and_greet, peek, take

Target = tuple[str, int, str]  # host name (TLS, messages), port, the checked IP to connect to

PRELOGIN, REPLY = 0x12, 0x04
VERSION, ENCRYPTION, INSTOPT, THREADID, MARS, TERMINATOR = 0, 1, 2, 3, 4, 0xFF
ENCRYPT_ON, ENCRYPT_NOT_SUP, ENCRYPT_REQ = 1, 2, 3
PACKET_SIZE = 4096


def _packets(kind: int, payload: bytes) -> bytes:
    """``payload`` as TDS packets of at most PACKET_SIZE bytes, the last one marked end-of-message."""
    step = PACKET_SIZE - 8
    chunks = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
    return b"".join(
        struct.pack(">BBHHBB", kind, int(n == len(chunks)), len(chunk) + 8, 0, n % 256, 0) + chunk
        for n, chunk in enumerate(chunks, 1)
    )


def _prelogin(encrypt: bool) -> bytes:
    """The PRELOGIN record pytds sends too, so the server's answer predicts the driver's."""
    values = [(VERSION, struct.pack(">LH", 0x01000000, 0)), (ENCRYPTION, bytes([ENCRYPT_ON if encrypt else
              ENCRYPT_NOT_SUP])), (INSTOPT, b"MSSQLServer\0"), (THREADID, b"\0\0\0\0"), (MARS, b"\0")]
    header, body, start = b"", b"", 5 * len(values) + 1
    for token, value in values:
        header += struct.pack(">BHH", token, start + len(body), len(value))
        body += value
    return header + bytes([TERMINATOR]) + body


def _options(payload: bytes) -> dict[int, bytes] | None:
    """PRELOGIN option tokens -> values; None when the record is malformed."""
    options: dict[int, bytes] = {}
    i = 0
    while i < len(payload) and payload[i] != TERMINATOR:
        if i + 5 > len(payload):
            return None
        token, offset, length = struct.unpack(">BHH", payload[i : i + 5])
        if offset + length > len(payload):
            return None
        options[token] = payload[offset : offset + length]
        i += 5
    return options if i < len(payload) else None


def _prelogin_reply(data: bytes) -> bool | None:
    """Judge: one whole TDS reply packet holding a PRELOGIN record with VERSION and ENCRYPTION."""
    if data[:1] != bytes([REPLY]):
        return False
    if len(data) < 8:
        return None
    status, length = data[1], struct.unpack(">H", data[2:4])[0]
    if not status & 0x01 or not 8 < length <= PACKET_SIZE:
        return False
    if len(data) < length:
        return None
    options = _options(data[8:length]) if len(data) == length else None
    return bool(options and len(options.get(VERSION, b"")) >= 6 and len(options.get(ENCRYPTION, b"")) >= 1)


def probe(target: Target, timeout: float, encrypt: bool) -> tuple[socket.socket, int]:
    """Stage tcp: connect and exchange PRELOGIN; the open socket and the server's encryption answer."""
    host, port, ip = target

    def greet(sock: socket.socket, deadline: Deadline) -> int:
        sock.settimeout(max(deadline.remaining(), 0.001))
        sock.sendall(_packets(PRELOGIN, _prelogin(encrypt)))
        reply = take(sock, len(peek(sock, deadline, _prelogin_reply)))
        return (_options(reply[8:]) or {})[ENCRYPTION][0]

    return connect_and_greet(ip, port, timeout, host, greet)


def _message(sock: socket.socket, deadline: Deadline) -> tuple[int, bytes]:
    """One TDS message (packets up to end-of-message) read within ``deadline``."""
    kind, payload = None, b""
    while True:
        sock.settimeout(max(deadline.remaining(), 0.001))
        header = take(sock, 8)
        length = struct.unpack(">H", header[2:4])[0]
        if length < 8 or len(payload) > 1 << 20:
            raise NotTheServer("bad packet")
        kind = header[0] if kind is None else kind
        payload += take(sock, length - 8)
        if header[1] & 0x01:
            return kind, payload


def handshake(sock: socket.socket, host: str, ca_pem: str, timeout: float) -> None:
    """Stage tls: the TLS handshake inside PRELOGIN packets, the chain and host name verified."""
    try:
        context = tls_context(ca_pem)
    except (ssl.SSLError, ValueError):
        raise ConnectorError("tls", "The CA certificate (ca_certificate) could not be read.") from None
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # what pytds (pyOpenSSL, TLSv1_2_METHOD) speaks
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
    deadline = Deadline(timeout)
    try:
        while True:
            try:
                tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                pass
            if pending := outgoing.read():
                sock.sendall(_packets(PRELOGIN, pending))
            kind, payload = _message(sock, deadline)
            if kind != PRELOGIN:
                raise NotTheServer("not a handshake packet")
            incoming.write(payload)
    except ssl.SSLCertVerificationError as exc:
        raise ConnectorError("tls", f"The server's certificate could not be verified: {exc.verify_message}.") from None
    except ssl.SSLError as exc:
        raise ConnectorError("tls", f"The TLS handshake failed ({exc.reason or 'protocol error'}).") from None
    except (OSError, NotTheServer):
        raise ConnectorError("tls", "The server did not complete the TLS handshake.") from None

"""A SQL Server stand-in speaking TDS 7.4 (MS-TDS) on 127.0.0.1, for the real python-tds driver.

No SQL Server installs here, so the mssql connector's tests talk to this small threaded server
instead. It answers exactly what pytds (and the connector's own pre-login probe) sends:

- PRELOGIN (packet 0x12): the client's options are read (VERSION, ENCRYPTION, INSTOPT, THREADID,
  MARS); the reply (packet 0x04) carries VERSION 16.0, ENCRYPTION, INSTOPT, THREADID and MARS off.
  ENCRYPTION follows ``encryption`` and the client's flag: ``"off"`` answers ENCRYPT_NOT_SUP;
  ``"on"`` answers ENCRYPT_ON to a client asking for it (ON or OFF) and ENCRYPT_NOT_SUP otherwise;
  ``"required"`` answers ENCRYPT_REQ, and closes the connection when the client cannot encrypt.
  (Login-only encryption is never offered.)
- The TLS handshake, carried inside PRELOGIN packets both ways as MS-TDS 2.2.6.5 requires, with
  the server certificate ``cert`` (tests/support/certs.py material; ``later_cert``, when given, from
  the second connection on); TLS then runs directly on the
  stream for the rest of the connection (ssl.MemoryBIO on the server side).
- LOGIN7 (packet 0x10): user name, password (unscrambled: XOR 0xA5, then nibble swap), database,
  application name and the read-only intent flag are recorded in ``logins``. Answers: ENVCHANGE
  database and packet size, LOGINACK (TDS 7.4), [ENVCHANGE routing (type 20) to ``route_to`` for a
  read-only login], DONE; a wrong user or password: ERROR 18456 and
  DONE(error), then the connection is closed; an unknown database: ERROR 4060, ERROR 18456,
  DONE(error), closed (as SQL Server does).
- SQL_BATCH (packet 0x01, ALL_HEADERS skipped): the UTF-16 text is recorded in ``batches``.
  A batch with ``@@VERSION`` gets one row (version, DB_NAME()); one reading INFORMATION_SCHEMA.TABLES
  gets the table map as INFORMATION_SCHEMA rows (TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, COLUMN_NAME,
  DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE; ``TOP (n)`` is
  honoured); ``USE [db]`` an ENVCHANGE; anything else ERROR 102 (incorrect syntax).
- ATTENTION (packet 0x06): DONE with the attention bit.

Results are COLMETADATA (NVARCHAR and INTN columns), ROW and DONE tokens, in packets of at most
4,096 bytes (the size pytds negotiates).
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.certs import Issued

PRELOGIN, REPLY, LOGIN7, SQL_BATCH, ATTENTION = 0x12, 0x04, 0x10, 0x01, 0x06
ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_NOT_SUP, ENCRYPT_REQ = 0, 1, 2, 3
PACKET = 4096
COLLATION = b"\x09\x04\xd0\x00\x34"  # Latin1_General_CI_AS
VERSION = "Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (X64) \n\tOct  8 2022 05:58:25 \n\tTDS stand-in"
TYPE = re.compile(r"^(\w+)(?:\((max|\d+)(?:,\s*(\d+))?\))?$")


@dataclass
class Table:
    """One table (or view) of the map; columns are (name, type as declared e.g. "nvarchar(50)", nullable)."""

    schema: str
    name: str
    columns: list[tuple[str, str, bool]]
    kind: str = "BASE TABLE"  # or "VIEW"


@dataclass
class Login:
    user: str
    password: str
    database: str
    app_name: str
    read_only: bool
    encrypted: bool


class Closed(Exception):
    """The client went away."""


def _b_varchar(text: str) -> bytes:
    return bytes([len(text)]) + text.encode("utf-16-le")


def _us_varchar(text: str) -> bytes:
    return struct.pack("<H", len(text)) + text.encode("utf-16-le")


def _token(marker: int, body: bytes) -> bytes:
    return bytes([marker]) + struct.pack("<H", len(body)) + body


def done(status: int = 0, count: int = 0, command: int = 0xC1) -> bytes:
    return b"\xfd" + struct.pack("<HHQ", status, command, count)


def message(number: int, text: str, severity: int = 14, error: bool = True) -> bytes:
    body = struct.pack("<iBB", number, 1, severity) + _us_varchar(text) + _b_varchar("standin") + _b_varchar("")
    return _token(0xAA if error else 0xAB, body + struct.pack("<i", 1))


def envchange(kind: int, new: str, old: str = "") -> bytes:
    return _token(0xE3, bytes([kind]) + _b_varchar(new) + _b_varchar(old))


def result_set(columns: list[tuple[str, str]], rows: list[tuple[Any, ...]]) -> bytes:
    """COLMETADATA, ROWs and DONE; column kinds are "nvarchar" or "int" (INTN, nullable)."""
    out = bytearray(b"\x81" + struct.pack("<H", len(columns)))
    for name, kind in columns:
        info = b"\xe7" + struct.pack("<H", 8000) + COLLATION if kind == "nvarchar" else b"\x26\x04"
        out += struct.pack("<IH", 0, 0x0001) + info + _b_varchar(name)
    for row in rows:
        out += b"\xd1"
        for (_, kind), value in zip(columns, row, strict=True):
            if kind == "nvarchar":
                data = None if value is None else str(value).encode("utf-16-le")
                out += b"\xff\xff" if data is None else struct.pack("<H", len(data)) + data
            else:
                out += b"\x00" if value is None else b"\x04" + struct.pack("<i", value)
    return bytes(out + done(0x0010, len(rows)))


class Wire:
    """TDS packets over the raw socket, or over TLS once ``start_tls`` completed."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""
        self.tls: ssl.SSLObject | None = None
        self.bio_in, self.bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()

    def _more(self) -> None:
        if self.tls is not None:
            try:
                self.buffer += self.tls.read(65536)
                return
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLError):
                raise Closed from None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed
        if self.tls is not None:
            self.bio_in.write(chunk)
        else:
            self.buffer += chunk

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._more()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_message(self) -> tuple[int, bytes]:
        """One TDS message: the packets up to the one with the end-of-message bit."""
        payload, kind = b"", None
        while True:
            kind_, status, length = struct.unpack(">BBH", self.read(4))
            self.read(4)  # SPID, packet id, window
            kind = kind_ if kind is None else kind
            payload += self.read(length - 8)
            if status & 0x01:
                return kind, payload

    def send(self, data: bytes) -> None:
        if self.tls is not None:
            self.tls.write(data)
            data = self.bio_out.read()
        self.sock.sendall(data)

    def send_message(self, kind: int, payload: bytes) -> None:
        chunks = [payload[i : i + PACKET - 8] for i in range(0, len(payload), PACKET - 8)] or [b""]
        for number, chunk in enumerate(chunks, 1):
            last = 1 if number == len(chunks) else 0
            self.send(struct.pack(">BBHHBB", kind, last, len(chunk) + 8, 52, number % 256, 0) + chunk)

    def start_tls(self, context: ssl.SSLContext) -> None:
        """The handshake inside PRELOGIN packets, then TLS records directly on the stream."""
        tls = context.wrap_bio(self.bio_in, self.bio_out, server_side=True)
        while True:
            kind, payload = self.read_message()
            if kind != PRELOGIN:
                raise Closed
            self.bio_in.write(payload)
            try:
                tls.do_handshake()
                finished = True
            except ssl.SSLWantReadError:
                finished = False
            except ssl.SSLError:
                raise Closed from None  # e.g. the client refused our certificate
            if pending := self.bio_out.read():
                self.send_message(PRELOGIN, pending)
            if finished:
                self.tls = tls
                return


def prelogin_options(payload: bytes) -> dict[int, bytes]:
    """PRELOGIN option tokens -> values (MS-TDS 2.2.6.5)."""
    options, i = {}, 0
    while i < len(payload) and payload[i] != 0xFF:
        token, offset, length = struct.unpack(">BHH", payload[i : i + 5])
        options[token] = payload[offset : offset + length]
        i += 5
    return options


def prelogin_reply(encryption: int) -> bytes:
    values = [(0x00, struct.pack(">BBHH", 16, 0, 1000, 0)), (0x01, bytes([encryption])), (0x02, b"\x00"),
              (0x03, b""), (0x04, b"\x00")]
    offset, header, body = 5 * len(values) + 1, b"", b""
    for token, value in values:
        header += struct.pack(">BHH", token, offset + len(body), len(value))
        body += value
    return header + b"\xff" + body


def _unscramble(data: bytes) -> str:
    return bytes(((b ^ 0xA5) << 4 & 0xF0) | ((b ^ 0xA5) >> 4) for b in data).decode("utf-16-le")


def parse_login7(payload: bytes, encrypted: bool) -> Login:
    """User, password, database, application name and read-only intent from a LOGIN7 record."""
    def text(at: int, scrambled: bool = False) -> str:
        offset, chars = struct.unpack("<HH", payload[at : at + 4])
        raw = payload[offset : offset + 2 * chars]
        return _unscramble(raw) if scrambled else raw.decode("utf-16-le")

    read_only = bool(payload[26] & 0x20)  # TypeFlags.fReadOnlyIntent
    return Login(text(40), text(44, True), text(68), text(48), read_only, encrypted)


def _split_type(declared: str) -> tuple[str, int | None, int | None, int | None]:
    """"nvarchar(50)" -> DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE."""
    match = TYPE.match(declared)
    if not match:
        return declared, None, None, None
    name, size, scale = match.groups()
    if size is None:
        return name, None, None, None
    if scale is not None or name in ("decimal", "numeric"):
        return name, None, int(size), int(scale or 0)
    return name, -1 if size == "max" else int(size), None, None


class TDSServer:
    """The stand-in: ``with TDSServer(...) as server:`` listens on 127.0.0.1:``server.port``."""

    def __init__(self, *, users: dict[str, str], databases: tuple[str, ...] = ("master",),
                 tables: list[Table] | None = None, encryption: str = "on", cert: Issued | None = None,
                 later_cert: Issued | None = None, route_to: tuple[str, int] | None = None):
        """``later_cert``: presented from the second connection on (a server whose certificate changes);
        ``route_to``: read-only logins are routed there (an availability group's read-only routing)."""
        assert encryption in ("off", "on", "required") and (cert or encryption == "off")
        self.users, self.databases, self.tables = users, databases, tables or []
        self.encryption, self.cert, self.route_to = encryption, cert, route_to
        self.batches: list[str] = []
        self.logins: list[Login] = []
        self.connections = 0
        self.host = "127.0.0.1"
        self._listener = socket.create_server((self.host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._tmp = tempfile.TemporaryDirectory(prefix="tds-standin-")
        self._contexts: list[ssl.SSLContext] = []
        for number, issued in enumerate(c for c in (cert, later_cert) if c is not None):
            path = Path(self._tmp.name) / f"server-{number}.pem"
            path.write_text(issued.cert_pem + issued.key_pem)
            self._contexts.append(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
            self._contexts[-1].load_cert_chain(path)

    def __enter__(self) -> TDSServer:
        threading.Thread(target=self._accept, daemon=True, name="tds-standin").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        self._tmp.cleanup()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            context = self._contexts[min(self.connections, len(self._contexts)) - 1] if self._contexts else None
            threading.Thread(target=self._serve, args=(sock, context), daemon=True, name="tds-standin-conn").start()

    def _serve(self, sock: socket.socket, context: ssl.SSLContext | None) -> None:
        try:
            with sock:
                sock.settimeout(30)
                self._session(Wire(sock), context)
        except (Closed, OSError):
            pass

    def _negotiate(self, client: int) -> int:
        if self.encryption == "off":
            return ENCRYPT_NOT_SUP
        if self.encryption == "required":
            return ENCRYPT_REQ
        return ENCRYPT_NOT_SUP if client == ENCRYPT_NOT_SUP else ENCRYPT_ON

    def _session(self, wire: Wire, context: ssl.SSLContext | None) -> None:
        kind, payload = wire.read_message()
        if kind != PRELOGIN:
            return
        client = prelogin_options(payload).get(0x01, bytes([ENCRYPT_NOT_SUP]))[:1] or b"\x02"
        answer = self._negotiate(client[0])
        wire.send_message(REPLY, prelogin_reply(answer))
        if answer == ENCRYPT_REQ and client[0] == ENCRYPT_NOT_SUP:
            return  # the client cannot encrypt: SQL Server ends the connection
        if answer in (ENCRYPT_ON, ENCRYPT_REQ):
            assert context is not None
            wire.start_tls(context)
        kind, payload = wire.read_message()
        if kind != LOGIN7:
            return
        login = parse_login7(payload, wire.tls is not None)
        self.logins.append(login)
        database = self._login(wire, login)
        if database is None:
            return
        while True:
            kind, payload = wire.read_message()
            if kind == ATTENTION:
                wire.send_message(REPLY, done(0x0020))
            elif kind == SQL_BATCH:
                (headers,) = struct.unpack("<I", payload[:4])
                database = self._batch(wire, payload[headers:].decode("utf-16-le"), database)

    def _login(self, wire: Wire, login: Login) -> str | None:
        refused = message(18456, f"Login failed for user '{login.user}'.")
        if self.users.get(login.user) != login.password:
            wire.send_message(REPLY, refused + done(0x0002, command=0))
            return None
        database = login.database or self.databases[0]
        if database not in self.databases:
            cannot = message(4060, f'Cannot open database "{database}" requested by the login. The login failed.')
            wire.send_message(REPLY, cannot + refused + done(0x0002, command=0))
            return None
        name = "Microsoft SQL Server"
        ack = _token(0xAD, b"\x01" + struct.pack(">I", 0x74000004) + _b_varchar(name) + bytes([16, 0, 3, 232]))
        tokens = envchange(1, database, "master") + envchange(4, str(PACKET), str(PACKET)) + ack
        if self.route_to and login.read_only:
            route = struct.pack("<BH", 0, self.route_to[1]) + _us_varchar(self.route_to[0])
            tokens += _token(0xE3, b"\x14" + struct.pack("<H", len(route)) + route + b"\0\0")
        tokens += done(command=0)
        wire.send_message(REPLY, tokens)
        return database

    def _batch(self, wire: Wire, sql: str, database: str) -> str:
        self.batches.append(sql)
        if "@@VERSION" in sql.upper():
            reply = result_set([("version", "nvarchar"), ("database", "nvarchar")], [(VERSION, database)])
        elif "INFORMATION_SCHEMA.TABLES" in sql.upper():
            reply = self._introspection(sql)
        elif use := re.match(r"\s*use\s+\[(.+)\]\s*$", sql, re.IGNORECASE):
            if use.group(1) not in self.databases:
                reply = message(911, f"Database '{use.group(1)}' does not exist.", 16) + done(0x0002)
            else:
                reply, database = envchange(1, use.group(1), database) + done(command=0), use.group(1)
        else:
            reply = message(102, "Incorrect syntax.", 15) + done(0x0002)
        wire.send_message(REPLY, reply)
        return database

    def _introspection(self, sql: str) -> bytes:
        top = re.search(r"TOP\s*\(\s*(\d+)\s*\)", sql, re.IGNORECASE)
        tables = sorted(self.tables, key=lambda t: (t.schema, t.name))[: int(top.group(1)) if top else None]
        names = ("TABLE_SCHEMA", "TABLE_NAME", "TABLE_TYPE", "COLUMN_NAME", "DATA_TYPE", "CHARACTER_MAXIMUM_LENGTH",
                 "NUMERIC_PRECISION", "NUMERIC_SCALE", "IS_NULLABLE")
        kinds = ("nvarchar",) * 5 + ("int",) * 3 + ("nvarchar",)
        rows: list[tuple[Any, ...]] = []
        for table in tables:
            for column, declared, nullable in table.columns:
                rows.append((table.schema, table.name, table.kind, column, *_split_type(declared),
                             "YES" if nullable else "NO"))
        return result_set(list(zip(names, kinds, strict=True)), rows)


@dataclass
class SilentListener:
    """Accepts connections and never answers (a port that looks open but speaks no TDS)."""

    host: str = "127.0.0.1"
    accepted: list[socket.socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server((self.host, 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="tds-silent").start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self._listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self._listener.close()
        for sock in self.accepted:
            sock.close()

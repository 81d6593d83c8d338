"""A MongoDB stand-in speaking the wire protocol on 127.0.0.1, for the real pymongo driver.

No MongoDB server installs here, so the mongodb connector's tests talk to this small threaded server.
It answers what pymongo (and the connector's own hello probe) sends, over plain TCP or TLS (``tls``:
certificate material from tests/support/certs.py):

- OP_QUERY (2004) on ``<db>.$cmd`` -- the legacy handshake pymongo and the probe send first -- answered
  with OP_REPLY (1); OP_MSG (2013, kind-0 body and kind-1 sequences, checksum flag honoured) answered
  with OP_MSG. Any other opcode closes the connection.
- ``hello`` / ``isMaster`` / ``ismaster``: a writable primary (wire version 21, sessions, ``helloOk``),
  or a replica-set member when ``set_name`` is set (``hosts``, ``primary``, ``me``: tests set them, the
  own address is ``server.address``); ``saslSupportedMechs`` for a known ``<db>.<user>``; the
  ``speculativeAuthenticate`` of the handshake is ignored (the driver then authenticates normally).
- ``saslStart`` / ``saslContinue``: the server side of SCRAM-SHA-256 and SCRAM-SHA-1 against ``users``
  in ``auth_db`` (tests/support/mongo_scram.py); error 18 AuthenticationFailed for a wrong password.
- ``ping``, ``buildInfo``, ``endSessions``: need no login. Every other command does (error 13
  Unauthorized before it), and commands named in ``refuse`` answer 13 even after it.
- ``listDatabases``: databases holding a collection, ``filter: {name}`` and ``nameOnly`` honoured.
- ``listCollections``: collections (``type`` "collection") and views (``View``: "view", ``viewOn``),
  ``filter`` on ``name``/``type`` equality, ``nameOnly``, ``cursor.batchSize`` (default 101).
- ``find``: the documents (a view answers its source's), ``limit``, ``batchSize`` (default 101) and
  ``singleBatch``; ``find_delay`` seconds before each answer. ``getMore`` / ``killCursors`` on the
  cursors left open. Unknown commands: error 59 CommandNotFound.
- Without ``tls``, a connection that opens with a TLS handshake record (0x16 0x03) is closed at once, as
  mongod does ("SSL handshake received but server is started without SSL support").

``commands`` records (database, command document) of every command; ``returned`` counts the documents
sent per ``db.collection``. The mongodb+srv tests' DNS stand-in is tests/support/mongo_dns.py.
"""

from __future__ import annotations

import datetime
import itertools
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bson
from bson.int64 import Int64

from tests.support.certs import Issued
from tests.support.mongo_scram import Conn, ScramServer, error

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
OPEN = {"hello", "isMaster", "ismaster", "saslStart", "saslContinue", "ping", "buildInfo", "buildinfo", "endSessions"}


@dataclass
class View:
    """A view on another collection of the same database."""

    view_on: str


def _cstring(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\0", at)
    return data[at:end].decode(), end + 1


def _document(data: bytes, at: int) -> tuple[dict[str, Any], int]:
    size = struct.unpack_from("<i", data, at)[0]
    return bson.decode(data[at : at + size]), at + size


def parse_op_msg(body: bytes) -> dict[str, Any]:
    """The command of an OP_MSG body: the kind-0 document plus kind-1 sequences as arrays."""
    flags = struct.unpack_from("<I", body)[0]
    end = len(body) - (4 if flags & 1 else 0)
    pos, command = 4, {}  # type: tuple[int, dict[str, Any]]
    sequences: dict[str, list[Any]] = {}
    while pos < end:
        kind, pos = body[pos], pos + 1
        if kind == 0:
            command, pos = _document(body, pos)
        else:
            size = struct.unpack_from("<i", body, pos)[0]
            stop = pos + size
            name, at = _cstring(body, pos + 4)
            while at < stop:
                doc, at = _document(body, at)
                sequences.setdefault(name, []).append(doc)
            pos = stop
    return {**command, **sequences}


class MongoServer:
    """``with MongoServer(databases, users=...) as server:`` listens on 127.0.0.1:``server.port``.

    ``databases``: database -> collection -> a list of documents or a ``View``.
    """

    def __init__(self, databases: dict[str, Any], *, users: dict[str, str] | None = None,
                 auth_db: str = "admin", tls: Issued | None = None,
                 mechanisms: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-1"), refuse: tuple[str, ...] = (),
                 version: str = "7.0.14", find_delay: float = 0.0):
        self.databases = databases
        self.users = users or {}
        self.auth_db = auth_db
        self.mechanisms = list(mechanisms)
        self.refuse = set(refuse)
        self.version = version
        self.find_delay = find_delay
        self.set_name = ""
        self.hosts: list[str] = []
        self.primary: str | None = None
        self.me: str | None = None
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.returned: Counter[str] = Counter()
        self.connections = 0
        self._cursors: dict[int, tuple[str, list[Any]]] = {}
        self._ids = itertools.count(7001)
        self.scram = ScramServer(self.users, auth_db, self.mechanisms)
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="mongo-standin-")
        self.context: ssl.SSLContext | None = None
        if tls is not None:
            cert, key = Path(self._tmp.name, "cert.pem"), Path(self._tmp.name, "key.pem")
            cert.write_text(tls.cert_pem)
            key.write_text(tls.key_pem)
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(str(cert), str(key))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", self._listener.getsockname()[1]
        self.address = f"{self.host}:{self.port}"

    def __enter__(self) -> MongoServer:
        threading.Thread(target=self._accept, daemon=True, name="mongo-standin").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        self._tmp.cleanup()

    def names(self, command: str) -> list[dict[str, Any]]:
        """The recorded command documents named ``command``."""
        return [doc for _, doc in self.commands if next(iter(doc), "") == command]

    # --- the wire -------------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True, name="mongo-standin-conn").start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as mongod does
            stream = self.context.wrap_socket(sock, server_side=True) if self.context else sock
            conn = Conn()
            first = not self.context  # a plain connection's first bytes: a TLS ClientHello is closed, as by mongod
            while True:
                header = _read(stream, 2) if first else _read(stream, 16)
                if first:
                    if header == b"\x16\x03":
                        return
                    header, first = header + _read(stream, 14), False
                length, request_id, _, opcode = struct.unpack("<iiii", header)
                body = _read(stream, length - 16)
                if opcode == OP_QUERY:
                    collection, pos = _cstring(body, 4)
                    command, _ = _document(body, pos + 8)
                    command = command.get("$query", command)
                    reply = bson.encode(self.command(conn, collection.split(".", 1)[0], command))
                    payload = struct.pack("<iqii", 0, 0, 0, 1) + reply
                    stream.sendall(struct.pack("<iiii", 16 + len(payload), 0, request_id, OP_REPLY) + payload)
                elif opcode == OP_MSG:
                    command = parse_op_msg(body)
                    payload = b"\0\0\0\0\0" + bson.encode(self.command(conn, str(command.pop("$db", "admin")), command))
                    stream.sendall(struct.pack("<iiii", 16 + len(payload), 0, request_id, OP_MSG) + payload)
                else:
                    return
        except (OSError, ValueError, struct.error, bson.errors.BSONError, _Closed):
            return
        finally:
            sock.close()

    # --- the commands ---------------------------------------------------------------------------

    def command(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        name = next(iter(doc), "")
        with self._lock:
            self.commands.append((db, doc))
        if self.users and conn.user is None and name not in OPEN:
            return error(13, "Unauthorized", f"Command {name} requires authentication")
        if name in self.refuse:
            return error(13, "Unauthorized", f"not authorized on {db} to execute command {{ {name}: ... }}")
        handler = getattr(self, f"_{name.lower()}", None)
        if handler is None:
            return error(59, "CommandNotFound", f"no such command: '{name}'")
        return {**handler(conn, db, doc), "ok": 1.0} if name not in ("saslStart", "saslContinue") else handler(
            conn, db, doc)

    def _hello(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        writable = not self.set_name or self.primary == (self.me or self.address)
        reply: dict[str, Any] = {
            "isWritablePrimary" if "hello" in doc else "ismaster": writable, "helloOk": True,
            "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000,
            "localTime": datetime.datetime.now(datetime.UTC), "logicalSessionTimeoutMinutes": 30,
            "connectionId": self.connections, "minWireVersion": 0, "maxWireVersion": 21, "readOnly": False,
        }
        if self.set_name:
            reply.update(setName=self.set_name, setVersion=1, hosts=self.hosts, me=self.me or self.address,
                         secondary=not writable, **({"primary": self.primary} if self.primary else {}))
        mechs = str(doc.get("saslSupportedMechs", ""))
        if mechs.partition(".")[2] in self.users and mechs.partition(".")[0] == self.auth_db:
            reply["saslSupportedMechs"] = self.mechanisms
        return reply

    _ismaster = _hello

    def _ping(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _buildinfo(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        return {"version": self.version, "versionArray": [int(p) for p in self.version.split(".")] + [0]}

    def _endsessions(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _listdatabases(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        wanted = (doc.get("filter") or {}).get("name")
        names = [n for n, colls in sorted(self.databases.items()) if colls and wanted in (None, n)]
        if doc.get("nameOnly"):
            return {"databases": [{"name": n} for n in names]}
        return {"databases": [{"name": n, "sizeOnDisk": 8192, "empty": False} for n in names], "totalSize": 8192}

    def _listcollections(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        entries = []
        for name, coll in self.databases.get(db, {}).items():
            kind = "view" if isinstance(coll, View) else "collection"
            wanted = doc.get("filter") or {}
            if wanted.get("name", name) != name or wanted.get("type", kind) != kind:
                continue
            entry: dict[str, Any] = {"name": name, "type": kind}
            if not doc.get("nameOnly"):
                options = {"viewOn": coll.view_on, "pipeline": []} if isinstance(coll, View) else {}
                entry.update(options=options, info={"readOnly": isinstance(coll, View)})
            entries.append(entry)
        return self._cursor(f"{db}.$cmd.listCollections", entries, (doc.get("cursor") or {}).get("batchSize"))

    def _find(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        if self.find_delay:
            time.sleep(self.find_delay)
        coll = self.databases.get(db, {}).get(doc["find"], [])
        source = self.databases[db].get(coll.view_on, []) if isinstance(coll, View) else coll
        docs = source if isinstance(source, list) else []
        limit = int(doc.get("limit") or 0)
        docs = list(docs[:limit] if limit else docs)
        ns = f"{db}.{doc['find']}"
        if doc.get("singleBatch"):
            batch = docs[: int(doc.get("batchSize") or 101)]
            with self._lock:
                self.returned[ns] += len(batch)
            return {"cursor": {"firstBatch": batch, "id": Int64(0), "ns": ns}}
        return self._cursor(ns, docs, doc.get("batchSize"))

    def _cursor(self, ns: str, docs: list[Any], batch_size: Any) -> dict[str, Any]:
        size = int(batch_size) if batch_size is not None else 101
        batch, rest = docs[:size], docs[size:]
        cursor_id = 0
        with self._lock:
            self.returned[ns] += len(batch)
            if rest:
                cursor_id = next(self._ids)
                self._cursors[cursor_id] = (ns, rest)
        return {"cursor": {"firstBatch": batch, "id": Int64(cursor_id), "ns": ns}}

    def _getmore(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            found = self._cursors.pop(int(doc["getMore"]), None)
            if found is None:
                return error(43, "CursorNotFound", f"cursor id {doc['getMore']} not found")
            ns, docs = found
            size = int(doc.get("batchSize") or len(docs))
            batch, rest = docs[:size], docs[size:]
            self.returned[ns] += len(batch)
            if rest:
                self._cursors[int(doc["getMore"])] = (ns, rest)
        return {"cursor": {"nextBatch": batch, "id": Int64(int(doc["getMore"]) if rest else 0), "ns": ns}}

    def _killcursors(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            killed = [c for c in doc.get("cursors", []) if self._cursors.pop(int(c), None) is not None]
        return {"cursorsKilled": killed, "cursorsNotFound": [], "cursorsAlive": [], "cursorsUnknown": []}

    # --- SCRAM: tests/support/mongo_scram.py ----------------------------------------------------

    def _saslstart(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        return self.scram.start(conn, db, doc)

    def _saslcontinue(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        return self.scram.proceed(conn, db, doc)


class _Closed(Exception):
    pass


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise _Closed
        data += chunk
    return data

"""MongoDB connector on pymongo, MongoDB's own driver (wire protocol, SCRAM, TLS, replica sets).

Egress: pymongo connects from its own monitor threads, where the test thread's egress scope does not
apply. Every connection it opens, in any thread, is made by a pool whose class the client takes from
``_pool_class`` (pymongo's hook for deep customisation): ``CheckedPool`` runs each ``Pool.connect``
inside an egress scope of its own. There a host name resolves only to a checked address (the seeds'
addresses are pinned; a member announced in hello's ``hosts`` is resolved once, checked and pinned for
later connections), so TLS still verifies the host name itself (``tlsAllowInvalidHostnames`` is never
set). A refused member fails its lookup before any packet; a member announced as a Unix socket path
(pymongo opens ``*.sock`` hosts over AF_UNIX) is refused the same way. The client is built from keyword
arguments, never a URI; ``directConnection`` unless a replica set or seed list is configured; no
retries; OCSP responders are never contacted.

``srv``: the connector reads the SRV and TXT records itself with dnspython within the connection
timeout (``DNS_NAMESERVERS``/``DNS_PORT`` name the resolver; default: the system's), applies the
seed-list rule (targets share the name's parent domain) and checks every A/AAAA address of every
target: one blocked target refuses the list before any connection. pymongo gets the targets as plain
seeds (no ``mongodb+srv://``, so no lookups of its own). TXT may set ``replicaSet`` and ``authSource``
(the source's own values win). TLS is always on, as ``mongodb+srv`` implies.

Stages: resolve; tcp (the connector's own OP_QUERY ``isMaster``: only a valid OP_REPLY/OP_MSG answer
proves a MongoDB server, every failure before reads like a closed port; a replica-set name the server
does not carry fails here); tls (chain and host name; pymongo verifies the same, ``ca_certificate`` in a
private temporary file); auth (SCRAM-SHA-256/SHA-1 negotiated by pymongo); database; introspect.

"Unknown database": MongoDB creates databases lazily, so a database exists once it holds data. The
database stage asks ``listDatabases`` (``authorizedDatabases``, filtered by name): a database it does not
list is unknown. For a user who may not run ``listDatabases``, ``listCollections`` on the database decides.

Introspection: collections (``system.*`` skipped) and views (kind "view") from ``listCollections``, at
most MAX_TABLES; each sampled by one ``find`` of at most SAMPLE_DOCS documents in a single batch
(``singleBatch``: no getMore; the server caps a batch at 16 MiB), no projection. A field's type is the
BSON types seen (MongoDB's ``$type`` names, "int|long" when mixed); nested documents give dotted paths
down to FIELD_DEPTH levels, arrays are "array"; nullable when missing from a sampled document or null;
MAX_COLUMNS per collection. One request per collection (O(N), SAMPLE_WORKERS connections in parallel),
the whole introspection bounded by ``query_timeout``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import bson
import dns.exception
import dns.resolver
import pymongo
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError
from pymongo.synchronous.pool import Pool

from .base import (
    MAX_COLUMNS,
    MAX_TABLES,
    ColumnInfo,
    ConnectionConfig,
    ConnectorError,
    SessionConnector,
    StageRunner,
    TableInfo,
    TestResult,
    sanitize,
)
from .egress import EgressBlocked, check_host_syntax, connect_failed_message, is_blocked, resolve_checked
from .guard import TimedOut, call_bounded, egress_scope
from .http_stages import tls_context
from .reach import Deadline, NotTheServer, connect_and_greet, tcp_connect, unreachable

# pymongo logs commands and replies (documents of the user's data) at DEBUG: keep it to warnings.
logging.getLogger("pymongo").setLevel(logging.WARNING)
logger = logging.getLogger(__name__)

T = TypeVar("T")
APPLICATION_NAME = "datasource-control-plane"
OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
MAX_HELLO = 16384  # bytes: a hello answer is a few hundred
SAMPLE_DOCS = 100  # documents sampled per collection
FIELD_DEPTH = 4  # nested documents become dotted paths down to a.b.c.d
SAMPLE_WORKERS = 4  # collections sampled in parallel
MAX_SRV_HOSTS = 16
DNS_NAMESERVERS: tuple[str, ...] = ()  # the resolver of SRV/TXT lookups; empty: the system's (resolv.conf)
DNS_PORT = 53
UNAUTHORIZED, AUTH_FAILED = 13, 18
HOST_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(\.(?!-)[a-z0-9_-]{1,63})*")
BAD_DB_CHARS = set('/\\. "$*<>:|?\0')
RAW = CodecOptions(document_class=RawBSONDocument)
BSON_TYPES = {1: "double", 2: "string", 3: "object", 4: "array", 5: "binData", 6: "undefined", 7: "objectId",
              8: "bool", 9: "date", 10: "null", 11: "regex", 12: "dbPointer", 13: "javascript", 14: "symbol",
              15: "javascriptWithScope", 16: "int", 17: "timestamp", 18: "long", 19: "decimal", 255: "minKey",
              127: "maxKey"}
FIXED_SIZES = {1: 8, 6: 0, 7: 12, 8: 1, 9: 8, 10: 0, 16: 4, 17: 8, 18: 8, 19: 16, 255: 0, 127: 0}


@dataclass(frozen=True)
class Seed:
    host: str  # the name pymongo connects to and TLS verifies
    port: int
    ip: str  # its checked address


@dataclass
class Plan:
    seeds: list[Seed]
    database: str
    user: str
    auth_source: str
    replica_set: str
    tls: bool
    srv: bool


def _is_host(host: str) -> bool:
    """An IP literal or a DNS name (never a Unix socket path, which pymongo would open for ``*.sock``)."""
    with suppress(ValueError):
        return bool(ipaddress.ip_address(host))
    return bool(HOST_NAME.fullmatch(host)) and not host.endswith(".sock")


def _host(config: ConnectionConfig, port: int) -> str:
    host = check_host_syntax(config.connection.get("host") or "", port).rstrip(".").lower()
    if not _is_host(host):
        raise ConnectorError("resolve", "Give a host name (ASCII letters, digits, '-', '.') or an IP address.")
    return host


def _lookup(resolver: dns.resolver.Resolver, name: str, kind: str, deadline: Deadline) -> list[Any]:
    """Records of ``name`` (empty when there are none); raises ConnectorError (resolve) when DNS fails."""
    try:
        seconds = max(deadline.remaining(), 0.01)
        resolver.timeout = seconds
        return list(resolver.resolve(name, kind, lifetime=seconds, search=False))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.Timeout:
        raise ConnectorError("resolve", f"The DNS lookup of '{name}' ({kind}) did not finish in time.") from None
    except dns.exception.DNSException:
        raise ConnectorError("resolve", f"The DNS lookup of '{name}' ({kind}) failed.") from None


def _in_domain(host: str, target: str) -> bool:
    """The seed-list rule: a target shares the SRV name's parent domain (its name, for two labels or fewer)."""
    labels = host.split(".")
    parent = labels[1:] if len(labels) > 2 else labels
    return (target != host or len(labels) > 2) and target.split(".")[1:][-len(parent):] == parent


def _seed_list(host: str, timeout: float) -> tuple[list[Seed], dict[str, str]]:
    """SRV targets (each address checked) and the TXT options of a ``mongodb+srv`` host."""
    with suppress(ValueError):
        ipaddress.ip_address(host)
        raise ConnectorError("resolve", "A DNS seed list (srv) needs a host name, not an IP address.")
    deadline = Deadline(timeout)
    try:
        resolver = dns.resolver.Resolver(configure=not DNS_NAMESERVERS)
    except dns.exception.DNSException:
        raise ConnectorError("resolve", "No DNS resolver is configured for the SRV lookup.") from None
    if DNS_NAMESERVERS:
        resolver.nameservers, resolver.port = list(DNS_NAMESERVERS), DNS_PORT
    records = _lookup(resolver, f"_mongodb._tcp.{host}", "SRV", deadline)
    if not records:
        raise ConnectorError("resolve", f"No SRV record _mongodb._tcp.{host} was found.")
    targets = list(dict.fromkeys((r.target.to_text(omit_final_dot=True).lower(), int(r.port)) for r in records))
    seeds = []
    for target, port in targets[:MAX_SRV_HOSTS]:
        if not _is_host(target) or not _in_domain(host, target):
            raise ConnectorError("resolve", f"The SRV record names host '{target[:100]}', outside the domain of "
                                            f"'{host}'.")
        addresses = [r.to_text() for kind in ("A", "AAAA") for r in _lookup(resolver, target, kind, deadline)]
        if not addresses:
            raise ConnectorError("resolve", f"Could not resolve host '{target}'.")
        if any(is_blocked(address) for address in addresses):
            logger.info("Egress policy refused a connection to %s:%s (SRV target)", target, port)
            raise EgressBlocked(target, port)
        seeds.append(Seed(target, port, addresses[0]))
    texts = _lookup(resolver, host, "TXT", deadline)
    if len(texts) > 1:
        raise ConnectorError("resolve", f"'{host}' has more than one TXT record.")
    options: dict[str, str] = {}
    for part in b"".join(texts[0].strings).decode("utf-8", "replace").split("&") if texts else []:
        key, _, value = part.partition("=")
        if key.lower() in ("authsource", "replicaset"):
            options[key.lower()] = value
        elif key.lower() != "loadbalanced" or value.lower() != "false":
            raise ConnectorError("resolve", f"The TXT record of '{host}' sets an option other than "
                                            "replicaSet and authSource.")
    return seeds, options


def _plan(config: ConnectionConfig) -> Plan:
    """Stage resolve: the seeds with their checked addresses."""
    c = config.connection
    timeout = float(config.connect_timeout)
    srv = bool(c.get("srv"))
    port = int(c.get("port") or 27017)
    host = _host(config, port)
    options: dict[str, str] = {}
    if srv:
        seeds, options = _seed_list(host, timeout)
    else:
        seeds = [Seed(host, port, resolve_checked(host, port, timeout))]
    return Plan(seeds, str(c.get("database") or ""), str(c.get("username") or ""),
                str(c.get("auth_source") or options.get("authsource") or "admin"),
                str(c.get("replica_set") or options.get("replicaset") or ""), bool(c.get("tls")) or srv, srv)


# --- stage tcp and tls: the connector's own hello -------------------------------------------------


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


def _reach(plan: Plan, timeout: float) -> Seed:
    """Stage tcp: the first seed that answers hello (one deadline for all); its replica-set name checked."""
    deadline, failure = Deadline(timeout), None
    for seed in plan.seeds:
        try:
            answer = _probe(seed, deadline, plan.tls)
        except ConnectorError as exc:
            failure = failure or exc
            continue
        if plan.replica_set and answer.get("setName") != plan.replica_set:
            raise ConnectorError("tcp", f"The server at {seed.host}:{seed.port} is not a member of replica set "
                                        f"'{plan.replica_set}'.")
        return seed
    raise failure or unreachable(plan.seeds[0].host, plan.seeds[0].port)


def _verify_tls(seed: Seed, ca_pem: str, timeout: float) -> None:
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
def _ca_file(ca_pem: str) -> Iterator[str | None]:
    """The source's CA in a private temporary file for pymongo (removed after); None: the system's CAs."""
    if not ca_pem:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="mongodb-ca-") as directory:
        path = Path(directory) / "ca.pem"
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(ca_pem)
        yield str(path)


# --- pymongo under the egress policy ---------------------------------------------------------------


class Egress:
    """The addresses pymongo's pools may connect to, shared by all of one test's threads."""

    def __init__(self, timeout: float, seeds: list[Seed]):
        self.timeout = timeout
        self.pins = {seed.host: seed.ip for seed in seeds}
        self.refused: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def connect(self, address: tuple[str, int | None], connect: Callable[[], T]) -> T:
        """Run one pool connection under an egress scope of its own (in whatever thread pymongo uses)."""
        host, port = str(address[0]), int(address[1] or 27017)
        if not _is_host(host):
            self._refuse([(host, port)])
            raise OSError("refused by the egress policy")
        with egress_scope(self.timeout) as scope:
            with self._lock:
                pins = dict(self.pins)
            for name, ip in pins.items():
                scope.pin(name, ip)
            try:
                return connect()
            finally:
                with self._lock:
                    for name, ip in scope.pins.items():
                        self.pins.setdefault(name, ip)
                self._refuse(scope.refused)

    def _refuse(self, refused: list[tuple[str, int]]) -> None:
        for host, port in refused:
            logger.info("Egress policy refused a connection to %s:%s (announced by the server)", host[:255], port)
        with self._lock:
            self.refused.extend(refused)

    def pool_class(self) -> type[Pool]:
        egress = self

        class CheckedPool(Pool):
            def connect(self, *args: Any, **kwargs: Any) -> Any:
                return egress.connect(self.address, lambda: Pool.connect(self, *args, **kwargs))

        return CheckedPool

    def blocked_error(self) -> ConnectorError | None:
        with self._lock:
            if not self.refused:
                return None
            host, port = self.refused[0]
        return ConnectorError("tcp", connect_failed_message(host if _is_host(host) else "?", port))


def _client(plan: Plan, config: ConnectionConfig, cafile: str | None, egress: Egress) -> MongoClient[Any]:
    ms = config.connect_timeout * 1000
    options: dict[str, Any] = {
        "appname": APPLICATION_NAME, "connect": False, "serverSelectionTimeoutMS": ms, "connectTimeoutMS": ms,
        "socketTimeoutMS": ms, "retryReads": False, "retryWrites": False, "maxPoolSize": SAMPLE_WORKERS + 1,
        "serverMonitoringMode": "poll", "readPreference": "primaryPreferred", "_pool_class": egress.pool_class(),
        "directConnection": not plan.replica_set and not plan.srv, "tls": plan.tls,
    }
    if plan.replica_set:
        options["replicaSet"] = plan.replica_set
    if plan.tls:
        options.update(tlsDisableOCSPEndpointCheck=True, **({"tlsCAFile": cafile} if cafile else {}))
    if plan.user:
        options.update(username=plan.user, password=config.secrets.get("password") or "",
                       authSource=plan.auth_source)
    hosts = [f"[{s.host}]:{s.port}" if ":" in s.host else f"{s.host}:{s.port}" for s in plan.seeds]
    return MongoClient(hosts, **options)


def _close(client: MongoClient[Any]) -> None:
    with suppress(Exception):  # ending sessions on a server that is gone needs no report
        call_bounded(client.close, 2.0)


# --- the session ----------------------------------------------------------------------------------


def _shown(value: str, config: ConnectionConfig) -> str:
    return sanitize(value, config.secrets, 128) or "?"


def _db_name(name: str, what: str) -> str:
    if not name or len(name.encode()) > 63 or set(name) & BAD_DB_CHARS:
        raise ConnectorError("database" if what == "Database" else "auth",
                             f"{what} name '{name[:64]}' is not a valid MongoDB database name.")
    return name


class Session:
    """One test's client and the classification of its failures."""

    def __init__(self, plan: Plan, config: ConnectionConfig, client: MongoClient[Any], egress: Egress):
        self.plan, self.config, self.client, self.egress = plan, config, client, egress

    def call(self, stage: str, what: str, fn: Callable[[], T], seconds: float) -> T:
        try:
            return call_bounded(fn, seconds + 1.0)
        except (PyMongoError, TimedOut, OSError) as exc:
            raise self.failure(exc, stage, what, seconds) from None

    def failure(self, exc: BaseException, stage: str, what: str, seconds: float) -> ConnectorError:
        """Our own message for a driver error (no driver text: it names hosts and echoes commands)."""
        code = getattr(exc, "code", None) if isinstance(exc, OperationFailure) else None
        if code == AUTH_FAILED:
            return ConnectorError("auth", "Authentication failed.")
        if code == UNAUTHORIZED:
            if not self.plan.user:
                return ConnectorError("auth", "The server requires authentication: give a username and password.")
            return ConnectorError(stage, f"User '{_shown(self.plan.user, self.config)}' is not allowed to run {what}.")
        if not isinstance(exc, OperationFailure) and (blocked := self.egress.blocked_error()):
            return blocked
        if not isinstance(exc, OperationFailure) and "certificate" in str(exc).lower():
            return ConnectorError("tls", "A server's certificate could not be verified by the driver.")
        if isinstance(exc, TimedOut) or getattr(exc, "timeout", False):
            return ConnectorError(stage, f"The server did not answer {what} within {seconds:g} seconds.")
        if isinstance(exc, OperationFailure):
            name = sanitize(str((exc.details or {}).get("codeName") or ""), self.config.secrets, 60)
            return ConnectorError(stage, f"The server refused {what} (error {exc.code}{' ' + name if name else ''}).")
        if isinstance(exc, ConfigurationError):  # e.g. a server too old for the driver
            detail = sanitize(str(exc), self.config.secrets)
            return ConnectorError(stage, "The driver cannot use this server." + (f" {detail}" if detail else ""))
        return ConnectorError(stage, f"The connection was closed during {what}.")

    def login(self) -> None:
        """Stage auth: pymongo's handshake and SCRAM conversation, then a ping."""
        if self.plan.user and not self.config.secrets.get("password"):
            raise ConnectorError("auth", f"A password is required for user '{_shown(self.plan.user, self.config)}'.")
        _db_name(self.plan.auth_source, "Authentication database")
        self.call("auth", "the login", lambda: self.client.admin.command("ping"), self.config.connect_timeout)

    def check_database(self) -> str:
        """Stage database: the database is listed (it exists) and its collections may be listed."""
        name = _db_name(self.plan.database, "Database")
        seconds = float(self.config.connect_timeout)
        info = self.call("database", "buildInfo", lambda: self.client.admin.command("buildInfo"), seconds)

        def listed() -> bool | None:
            try:
                reply = self.client.admin.command("listDatabases", nameOnly=True, filter={"name": name},
                                                  authorizedDatabases=True)
                return name in [entry.get("name") for entry in reply.get("databases", [])]
            except OperationFailure as exc:
                if exc.code == UNAUTHORIZED and self.plan.user:
                    return None  # not allowed to list databases: listCollections decides
                raise

        if self.call("database", "listDatabases", listed, seconds) is False:
            raise ConnectorError("database", f"Database '{_shown(name, self.config)}' does not exist or this user "
                                             "may not use it (MongoDB lists a database once it holds data).")
        self.call("database", f"listCollections on database '{_shown(name, self.config)}'",
                  lambda: self.client[name].list_collection_names(filter={"name": ""}), seconds)
        return f"MongoDB {info.get('version', '')}".strip()[:255]

    def catalogue(self) -> list[TableInfo]:
        """Collections and views with fields sampled from their documents, within ``query_timeout``."""
        seconds = float(self.config.query_timeout)
        deadline = time.monotonic() + seconds
        database = self.client.get_database(self.plan.database, codec_options=RAW)

        def listing() -> list[tuple[str, str]]:
            entries: list[tuple[str, str]] = []
            with pymongo.timeout(seconds), database.list_collections() as cursor:
                for info in cursor:
                    name = info.get("name")
                    if isinstance(name, str) and not name.startswith("system."):
                        entries.append((name, "view" if info.get("type") == "view" else "table"))
                        if len(entries) >= MAX_TABLES:
                            break
            return entries

        def sample(name: str) -> list[ColumnInfo]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimedOut("query timeout")
            with pymongo.timeout(remaining):
                try:
                    docs = [doc.raw for doc in database[name].find({}, limit=-SAMPLE_DOCS)]
                except OperationFailure as exc:
                    if exc.timeout:
                        raise
                    return []  # not readable (a privilege, a failing view): listed without fields
            return fields(docs)

        def work() -> list[TableInfo]:
            entries = listing()
            pool = ThreadPoolExecutor(SAMPLE_WORKERS, thread_name_prefix="mongodb-sample")
            try:
                futures = [pool.submit(sample, name) for name, _ in entries]
                columns = [future.result() for future in futures]
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
            pairs = zip(entries, columns, strict=True)
            return [TableInfo(self.plan.database, name, kind, cols) for (name, kind), cols in pairs]

        return self.call("introspect", "the introspection", work, seconds)


# --- fields from BSON ------------------------------------------------------------------------------


def _walk(data: bytes, pos: int, end: int, prefix: str, depth: int, out: dict[str, str]) -> None:
    """path -> BSON type of each element of the document body ``data[pos:end]``; stops at anything malformed."""
    while pos < end:
        kind = data[pos]
        name_end = data.index(b"\0", pos + 1, end)
        path = prefix + data[pos + 1 : name_end].decode("utf-8", "replace")
        pos = name_end + 1
        if kind in FIXED_SIZES:
            size = FIXED_SIZES[kind]
        elif kind in (2, 13, 14, 5, 12):
            size = 4 + struct.unpack_from("<i", data, pos)[0] + {5: 1, 12: 12}.get(kind, 0)
        elif kind in (3, 4, 15):
            size = struct.unpack_from("<i", data, pos)[0]
        elif kind == 11:
            size = data.index(b"\0", data.index(b"\0", pos, end) + 1, end) + 1 - pos
        else:
            return
        if size < 0 or pos + size > end:
            return
        out.setdefault(path, BSON_TYPES[kind])
        if kind == 3 and depth < FIELD_DEPTH and size >= 5:
            _walk(data, pos + 4, pos + size - 1, path + ".", depth + 1, out)
        pos += size


def fields(docs: list[bytes]) -> list[ColumnInfo]:
    """Columns of a sample: first-seen order, types by frequency, nullable when missing or null somewhere."""
    kinds: dict[str, Counter[str]] = {}
    for raw in docs:
        found: dict[str, str] = {}
        with suppress(ValueError, IndexError, struct.error):
            _walk(raw, 4, len(raw) - 1, "", 1, found)
        for path, kind in found.items():
            if path in kinds or len(kinds) < MAX_COLUMNS:
                kinds.setdefault(path, Counter())[kind] += 1
    columns = []
    for ordinal, (path, seen) in enumerate(kinds.items(), 1):
        types = [kind for kind, _ in seen.most_common() if kind != "null"] or ["null"]
        columns.append(ColumnInfo(path, "|".join(types), sum(seen.values()) < len(docs) or "null" in seen, ordinal))
    return columns


class MongoDBConnector(SessionConnector):
    """Stages: resolve, tcp, tls (when ``tls`` or ``srv``), auth, database; introspect over the same client."""

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        result = self.run(config, introspect=True, strict=True)
        if not result.ok or result.tables is None:
            raise ConnectorError(result.stage or "introspect", result.message)
        return result.tables

    def run(self, config: ConnectionConfig, *, introspect: bool, strict: bool = False) -> TestResult:
        timeout = float(config.connect_timeout)
        tables: list[TableInfo] | None = None
        with StageRunner(config.secrets) as runner, ExitStack() as stack:
            plan = runner.run("resolve", lambda: _plan(config))
            scope = stack.enter_context(egress_scope(timeout, only=tuple(s.host for s in plan.seeds)))
            for seed in plan.seeds:
                scope.pin(seed.host, seed.ip)
            seed = runner.run("tcp", lambda: _reach(plan, timeout))
            ca_pem = str(config.connection.get("ca_certificate") or "")
            if plan.tls:
                runner.run("tls", lambda: _verify_tls(seed, ca_pem, timeout), "The certificate is valid.")
            cafile = stack.enter_context(_ca_file(ca_pem if plan.tls else ""))
            egress = Egress(timeout, plan.seeds)

            def login() -> Session:
                try:
                    client = _client(plan, config, cafile, egress)
                except ConfigurationError as exc:
                    detail = sanitize(str(exc), config.secrets)
                    message = "The driver refused the settings." + (f" {detail}" if detail else "")
                    raise ConnectorError("auth", message) from None
                stack.callback(_close, client)
                session = Session(plan, config, client, egress)
                session.login()
                return session

            session = runner.run("auth", login)
            runner.server_version = runner.run("database", session.check_database)
            if strict:
                tables = runner.run("introspect", session.catalogue)
            elif introspect:
                with suppress(ConnectorError):  # the refresh that follows tries again and records why
                    tables = session.catalogue()
        result = runner.result()
        result.tables = tables if result.ok else None
        return result

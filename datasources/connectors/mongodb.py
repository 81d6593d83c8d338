"""MongoDB connector on pymongo, MongoDB's own driver (wire protocol, SCRAM, TLS, replica sets).

Its modules: mongodb_srv.py (what a host may be; the ``srv`` seed list read with dnspython and checked),
mongodb_probe.py (stages tcp and tls: the connector's own hello), mongodb_egress.py (``CheckedPool``:
each of pymongo's connections, in any thread, in an egress scope of its own), mongodb_fields.py (field
types from sampled BSON documents). This one: the connector, its resolve plan, the client and the session.

The client is built from keyword arguments, never a URI; ``directConnection`` unless a replica set or
seed list is configured; no retries; OCSP responders are never contacted. TLS is on when ``tls`` or ``srv``.

Stages: resolve; tcp (the connector's own OP_QUERY ``isMaster``: only a valid OP_REPLY/OP_MSG answer
proves a MongoDB server, every failure before reads like a closed port; a replica-set name the server
does not carry fails here); tls (chain and host name; pymongo verifies the same, ``ca_certificate`` in a
private temporary file); auth (SCRAM-SHA-256/SHA-1 negotiated by pymongo); database; introspect.

"Unknown database": MongoDB creates databases lazily, so a database exists once it holds data. The
database stage asks ``listDatabases`` (``authorizedDatabases``, filtered by name): a database it does not
list is unknown. For a user who may not run ``listDatabases``, ``listCollections`` on the database decides.

Introspection: collections (``system.*`` skipped) and views (kind "view") from ``listCollections``, at
most MAX_TABLES; each sampled by one ``find`` of at most SAMPLE_DOCS documents in a single batch
(``singleBatch``: no getMore; the server caps a batch at 16 MiB), no projection; fields as
mongodb_fields.py infers them. One request per collection (O(N), SAMPLE_WORKERS connections in
parallel), the whole introspection bounded by ``query_timeout``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import pymongo
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from .base import (
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
from .egress import check_host_syntax, resolve_checked
from .guard import TimedOut, call_bounded, egress_scope
from .mongodb_egress import Egress
from .mongodb_fields import fields
from .mongodb_probe import ca_file, reach, verify_tls
from .mongodb_srv import Seed, is_host, seed_list

# pymongo logs commands and replies (documents of the user's data) at DEBUG: keep it to warnings.
logging.getLogger("pymongo").setLevel(logging.WARNING)

T = TypeVar("T")
APPLICATION_NAME = "datasource-control-plane"
SAMPLE_DOCS = 100  # documents sampled per collection
SAMPLE_WORKERS = 4  # collections sampled in parallel
UNAUTHORIZED, AUTH_FAILED = 13, 18
BAD_DB_CHARS = set('/\\. "$*<>:|?\0')
RAW = CodecOptions(document_class=RawBSONDocument)


@dataclass
class Plan:
    seeds: list[Seed]
    database: str
    user: str
    auth_source: str
    replica_set: str
    tls: bool
    srv: bool


def _host(config: ConnectionConfig, port: int) -> str:
    host = check_host_syntax(config.connection.get("host") or "", port).rstrip(".").lower()
    if not is_host(host):
        raise ConnectorError("resolve", "Give a host name (ASCII letters, digits, '-', '.') or an IP address.")
    return host


def _plan(config: ConnectionConfig) -> Plan:
    """Stage resolve: the seeds with their checked addresses."""
    c = config.connection
    timeout = float(config.connect_timeout)
    srv = bool(c.get("srv"))
    port = int(c.get("port") or 27017)
    host = _host(config, port)
    options: dict[str, str] = {}
    if srv:
        seeds, options = seed_list(host, timeout)
    else:
        seeds = [Seed(host, port, resolve_checked(host, port, timeout))]
    return Plan(seeds, str(c.get("database") or ""), str(c.get("username") or ""),
                str(c.get("auth_source") or options.get("authsource") or "admin"),
                str(c.get("replica_set") or options.get("replicaset") or ""), bool(c.get("tls")) or srv, srv)


# --- pymongo's client -----------------------------------------------------------------------------


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
            seed = runner.run("tcp", lambda: reach(plan.seeds, plan.tls, plan.replica_set, timeout))
            ca_pem = str(config.connection.get("ca_certificate") or "")
            if plan.tls:
                runner.run("tls", lambda: verify_tls(seed, ca_pem, timeout), "The certificate is valid.")
            cafile = stack.enter_context(ca_file(ca_pem if plan.tls else ""))
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
            elif introspect:  # may fail without failing the test: the refresh that follows tries again
                tables = runner.optional("introspect", session.catalogue,
                                         lambda found: f"{len(found)} collections and views.")
        result = runner.result()
        result.tables = tables if result.ok else None
        return result

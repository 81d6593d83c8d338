"""Connector interface: configuration, staged test results, schema shapes and errors."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NoReturn, TypeVar

STAGES = ("resolve", "tcp", "tls", "ssh", "auth", "database", "introspect")
#: Introspection stops after this many tables (and this many columns per table): the schema cache
#: of one source stays bounded whatever the warehouse holds (README: "Connections").
MAX_TABLES = 10_000
MAX_COLUMNS = 1_000

T = TypeVar("T")


@dataclass
class ConnectionConfig:
    """Everything a connector needs: normalized settings plus decrypted secrets."""

    type_key: str
    connection: dict
    secrets: dict[str, str]
    connect_timeout: int = 10
    query_timeout: int = 30
    #: file-based sources: the folder of the file root their paths must stay in ("" = the whole root)
    file_folder: str = ""

    def __post_init__(self) -> None:
        # A zero timeout would mean "wait forever" to several drivers: keep at least one second.
        self.connect_timeout = max(1, int(self.connect_timeout or 10))
        self.query_timeout = max(1, int(self.query_timeout or 30))

    def __repr__(self) -> str:  # never show secret values in tracebacks or logs
        return (
            f"ConnectionConfig(type_key={self.type_key!r}, connection={self.connection!r}, "
            f"secrets=<{len(self.secrets)} hidden>, connect_timeout={self.connect_timeout}, "
            f"query_timeout={self.query_timeout}, file_folder={self.file_folder!r})"
        )


@dataclass
class StageResult:
    name: str
    ok: bool
    duration_ms: float
    message: str = ""


@dataclass
class TestResult:
    """Outcome of a connection test; ``message`` is always a cleaned, secret-free text."""

    __test__ = False  # not a pytest test class

    ok: bool
    stage: str | None
    message: str
    stages: list[StageResult]
    duration_ms: float
    server_version: str | None = None
    ssh_host_key_fingerprint: str | None = None  # host key seen through an unpinned SSH tunnel
    #: Introspected over the tested session (``test_and_introspect``); never part of the result's JSON.
    tables: list[TableInfo] | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able representation (without ``tables``)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "tables"}
        data["stages"] = [asdict(stage) for stage in self.stages]
        return data


@dataclass
class ColumnInfo:
    name: str
    data_type: str
    nullable: bool
    ordinal: int


@dataclass
class TableInfo:
    schema: str
    name: str
    kind: str  # "table" | "view"
    columns: list[ColumnInfo] = field(default_factory=list)


class ConnectorError(Exception):
    """A connection or introspection failure at ``stage`` with a cleaned ``message``."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage
        self.message = message


EXTRA = "pip install -r requirements-connectors.txt"


class ConnectorUnavailable(Exception):
    """The type has no built connector here, or its optional driver is absent."""

    def __init__(self, type_key: str, requirement: str):
        if " " in requirement:
            hint = f"it needs {requirement}"
        else:
            hint = f"install the optional driver '{requirement}' (pip install {requirement}; every driver: {EXTRA})"
        message = f"No connection test is available for type '{type_key}' yet: {hint}."
        super().__init__(message)
        self.type_key = type_key
        self.requirement = requirement
        self.message = message


def mask(text: str, values: list[str]) -> str:
    """``text`` with every line of ``values`` (of four characters or more) as ``***``, longest first."""
    for value in sorted(values, key=len, reverse=True):
        for part in value.splitlines() or [value]:
            if len(part) >= 4:
                text = text.replace(part, "***")
    return text


def sanitize(text: str, secrets: dict[str, str], limit: int = 200) -> str:
    """First line of a raw driver message with every secret value masked; empty if unsafe."""
    values = [v for v in secrets.values() if isinstance(v, str) and v]
    if any(len(v) < 4 for v in values):
        return ""  # masking very short secrets would not be reliable
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return mask(line, values)[:limit]


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


class _Stop(Exception):
    pass


class StageRunner:
    """Runs test stages in order, timing each and stopping at the first failure.

    A ``ConnectorError`` raised while running stage X names the stage that failed. When it
    names a later stage (e.g. a blocked address found while resolving is reported as a failed
    TCP connect), X is recorded as passed; a record already made for the failing stage is
    replaced by the failure.
    """

    def __init__(self, secrets: dict[str, str]):
        self.secrets = secrets
        self.stages: list[StageResult] = []
        self.failed: StageResult | None = None
        self.server_version: str | None = None
        self.ssh_host_key_fingerprint: str | None = None
        self.optional_failure: ConnectorError | None = None
        self._start = time.perf_counter()

    def run(self, name: str, func: Callable[[], T], ok_message: str = "") -> T:
        """Run one stage; raise an internal stop signal when it fails."""
        start = time.perf_counter()
        try:
            value = func()
        except ConnectorError as exc:
            self._fail(name, exc.stage, exc.message, _ms(start))
            raise _Stop from None
        except Exception as exc:
            detail = sanitize(str(exc), self.secrets)
            message = f"Connection failed at stage {name}." + (f" {detail}" if detail else "")
            self._fail(name, name, message, _ms(start))
            raise _Stop from None
        self.stages.append(StageResult(name, True, _ms(start), ok_message))
        return value

    def stop(self, name: str, error: ConnectorError) -> NoReturn:
        """Record ``error``, found before stage ``name`` could run (an invalid setting), as that stage's failure
        (or, when it names a later stage, ``name`` passed and that one failed); then stop."""

        def fail() -> NoReturn:
            raise error

        self.run(name, fail)

    def optional(self, name: str, func: Callable[[], T], ok_message: str | Callable[[T], str] = "") -> T | None:
        """A last stage that may fail without failing the test (introspection over the tested session): timed
        and recorded with ``ok_message`` (a text, or one made from the value) when ``func`` returns; None and not
        recorded when it raises ``ConnectorError``, kept in ``optional_failure`` (the refresh that follows tries
        on its own and records why)."""
        start = time.perf_counter()
        try:
            value = func()
        except ConnectorError as exc:
            self.optional_failure = exc
            return None
        message = ok_message(value) if callable(ok_message) else ok_message
        self.stages.append(StageResult(name, True, _ms(start), message))
        return value

    def _fail(self, running: str, stage: str, message: str, duration: float) -> None:
        order = {s: i for i, s in enumerate(STAGES)}
        if stage != running and order.get(stage, -1) > order.get(running, -1):
            self.stages.append(StageResult(running, True, duration))
            duration = 0.0
        self.stages = [s for s in self.stages if s.name != stage]
        self.failed = StageResult(stage, False, duration, message)
        self.stages.append(self.failed)

    def result(self) -> TestResult:
        """Build the final ``TestResult``."""
        total = _ms(self._start)
        failed = self.failed
        extra = (self.server_version, self.ssh_host_key_fingerprint)
        if failed:
            return TestResult(False, failed.name, failed.message, self.stages, total, *extra)
        return TestResult(True, None, "Connection succeeded.", self.stages, total, *extra)

    def __enter__(self) -> StageRunner:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is _Stop


class Connector(ABC):
    """Tests connections and introspects schemas for one family of source types."""

    key: str = ""

    @abstractmethod
    def test(self, config: ConnectionConfig) -> TestResult:
        """Run the stages in order, stopping at the first failure; never raises for connection problems."""

    @abstractmethod
    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """List tables and views with their columns; raises ``ConnectorError``."""

    def test_and_introspect(self, config: ConnectionConfig) -> TestResult:
        """The test, plus ``tables`` when the connector can introspect over the tested session
        (a refresh follows at once); by default just the test."""
        return self.test(config)

    def test_then_read_local(self, config: ConnectionConfig) -> TestResult:
        """``test_and_introspect`` of a local source (a file under the file root: no network, no
        session to share): the test, then the tables when it passed (None when only they failed)."""
        result = self.test(config)
        if result.ok:
            try:
                result.tables = self.introspect(config)
            except ConnectorError:
                result.tables = None
        return result


class SessionConnector(Connector):
    """A connector whose test may go on to introspect over the tested session: one ``run`` does both."""

    def __init__(self, key: str):
        self.key = key

    def test(self, config: ConnectionConfig) -> TestResult:
        """Run the stages in order, stopping at the first failure."""
        return self.run(config, introspect=False)

    def test_and_introspect(self, config: ConnectionConfig) -> TestResult:
        """The test, then the tables over the same session when it passed (``tables`` is None when only
        the introspection failed: the refresh that follows tries again and records why)."""
        return self.run(config, introspect=True)

    @abstractmethod
    def run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        """The staged test, with ``tables`` read over the tested session when ``introspect``."""

"""Google Sheets connector: the Sheets REST API v4 over ``requests``, the access token from google-auth.

Why not gspread: it hard-codes https://sheets.googleapis.com (no endpoint override, so neither a
Private Service Connect endpoint nor a test stand-in could be reached) and adds Drive API calls this
connector does not need. Two read-only GET methods suffice, and we bound, pin and scrub them ourselves.

Credentials are the uploaded service-account JSON alone, exchanged for an access token (JWT-bearer
grant, scope spreadsheets.readonly) at its ``token_uri``, with the rules of google_service_account.py
(shared with BigQuery): never Application Default Credentials, the metadata server, proxies, netrc or
CA bundles from the environment, nor the regional-access-boundary lookup; both endpoints (the API,
``endpoint_url`` or https://sheets.googleapis.com, and the ``token_uri``) resolved once through the
egress policy and pinned, https unless the checked address is a private one the operator opened; no
redirects, no retries, every call under ``call_bounded``.

Stages: resolve, tcp, tls (https) for the API via ``reach_http``; auth = the token exchange;
database = spreadsheets.get (``fields=sheets.properties``): 404 or 403 means "not found or not shared
with <client_email>"; introspect = values:batchGet of the first rows of every worksheet at once.

What a table is: a worksheet (grid sheet) of the spreadsheet, or only ``sheet_name``. Its columns
come from the header row (row 1): a blank header is named ``column_<n>`` (n = its position), a
repeated one ``<name>_2``, ``<name>_3`` (case-insensitively), and data cells right of the last header
cell are columns too. Types come from up to SAMPLE_ROWS - 1 data rows read as unformatted values
(dates as their formatted text): NUMBER, BOOLEAN, DATE, DATETIME, TIME, else STRING; every column is
nullable (a sheet enforces nothing). The ranges stay inside each sheet's grid, at most MAX_COLUMNS
wide, and go in one request unless the URL would exceed URL_BUDGET characters (~200 sheets each).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from .base import MAX_COLUMNS, MAX_TABLES, ColumnInfo, ConnectionConfig, ConnectorError, TableInfo, sanitize
from .google_service_account import Plan, ServiceAccountConnector, Session, harden, plan_fields
from .guard import EgressScope, TimedOut, call_bounded
from .http_stages import USER_AGENT

DEFAULT_ENDPOINT = "https://sheets.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/spreadsheets.readonly",)
SPREADSHEET_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
SAMPLE_ROWS = 50  # the header row and up to 49 data rows per worksheet
CELL_BUDGET = 250_000  # fewer sample rows when many wide worksheets would exceed it
URL_BUDGET = 8_000  # characters of ranges in one batchGet URL
BYTE_LIMIT = 32 * 1024 * 1024  # an API answer larger than this is refused
VALUE_OPTIONS = (("valueRenderOption", "UNFORMATTED_VALUE"), ("dateTimeRenderOption", "FORMATTED_STRING"),
                 ("majorDimension", "ROWS"))
ERROR_VALUES = frozenset({"#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NUM!", "#NULL!", "#ERROR!"})
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE = (rf"(?:\d{{4}}[-/]\d{{1,2}}[-/]\d{{1,2}}|\d{{1,2}}[-/.]\d{{1,2}}[-/.]\d{{2,4}}|\d{{1,2}} {_MONTH},? \d{{4}}"
         rf"|{_MONTH} \d{{1,2}},? \d{{4}})")
_TIME = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?: ?[ap]\.?m\.?)?"
PATTERNS = (("DATETIME", re.compile(rf"^{_DATE}[ T,]+{_TIME}(?:z|[+-]\d{{2}}:?\d{{2}})?$", re.I)),
            ("DATE", re.compile(rf"^{_DATE}$", re.I)), ("TIME", re.compile(rf"^{_TIME}$", re.I)))


@dataclass(frozen=True)
class _Plan(Plan):
    """The service account's plan, and the spreadsheet (and worksheet) asked for."""

    spreadsheet_id: str
    sheet_name: str

    @property
    def api(self) -> str:
        return f"{self.endpoint.base_url}{self.endpoint.path}/v4/spreadsheets/{self.spreadsheet_id}"


class _TooLarge(Exception):
    pass


def _read(response: requests.Response) -> bytes:
    body = bytearray()
    for chunk in response.iter_content(65536):
        body += chunk
        if len(body) > BYTE_LIMIT:
            raise _TooLarge
    return bytes(body)


def _reasons(error: dict[str, Any]) -> set[str]:
    found = {str(error.get("status") or "")}
    for key in ("errors", "details"):
        items = error.get(key)
        found |= {str(i.get("reason")) for i in items if isinstance(i, dict)} if isinstance(items, list) else set()
    return found


class _Session(Session[_Plan]):
    """One test's egress scope, token and HTTP session; every API call goes through ``get``."""

    def __init__(self, plan: _Plan, config: ConnectionConfig, masks: dict[str, str], scope: EgressScope):
        super().__init__(plan, config, masks, scope)
        self.http = harden(requests.Session())
        self.http.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.worksheets: list[dict[str, Any]] = []

    def authenticate(self) -> None:
        """The token exchange; the token session is done with once it has answered."""
        try:
            credentials = self.exchange(SCOPES)
        finally:
            self.token_session.close()
        self.http.headers["Authorization"] = f"Bearer {credentials.token}"

    def get(self, stage: str, path: str, params: Any, seconds: float) -> dict[str, Any]:
        """One GET bounded by ``seconds``. Until the API has answered like the API a failure reads like a
        closed port; then its error documents fail ``stage`` (401: auth)."""
        def fetch() -> tuple[int, bytes]:
            with self.http.get(self.plan.api + path, params=params, timeout=(self.timeout, seconds),
                               allow_redirects=False, stream=True) as response:
                return response.status_code, _read(response)

        try:
            status, raw = call_bounded(fetch, seconds + 0.5, self.scope)
        except _TooLarge:
            raise ConnectorError(stage, f"The Sheets API's answer exceeded {BYTE_LIMIT >> 20} MiB.") from None
        except (requests.RequestException, TimedOut, OSError) as exc:
            if not self.proven or self.scope.blocked_error():
                raise self.unreachable(self.plan.endpoint) from None
            if isinstance(exc, TimedOut):
                raise ConnectorError(stage, f"The Sheets API did not answer within {seconds:g} seconds.") from None
            raise ConnectorError(stage, "The connection to the Sheets API failed.") from None
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            document = None
        error = document.get("error") if isinstance(document, dict) else None
        if status == 200 and isinstance(document, dict):
            self.proven = True
            return document
        if not isinstance(error, dict):
            if not self.proven:
                raise self.unreachable(self.plan.endpoint)
            raise ConnectorError(stage, f"The Sheets API gave an unexpected answer (HTTP {status}).")
        self.proven = True
        raise self._refusal(stage, status, error)

    def _refusal(self, stage: str, status: int, error: dict[str, Any]) -> ConnectorError:
        if status == 401:
            return ConnectorError("auth", "The Sheets API refused the service account's access token.")
        if status == 403 and _reasons(error) & {"SERVICE_DISABLED", "accessNotConfigured"}:
            return ConnectorError(stage, "The Google Sheets API is not enabled in the service account's Google "
                                         "Cloud project: enable it there, then test again.")
        if status in (403, 404):
            return ConnectorError(stage, f"Spreadsheet '{self.plan.spreadsheet_id}' was not found or is not shared "
                                         f"with {self.plan.info.get('client_email')}: share it with that address "
                                         "(Viewer is enough).")
        if status == 429:
            return ConnectorError(stage, "The Sheets API's request quota is used up for now: try again in a minute.")
        detail = sanitize(str(error.get("message") or ""), self.masks) or f"HTTP {status}"
        return ConnectorError(stage, f"The Sheets API refused the request: {detail}")

    def check_database(self) -> None:
        """The spreadsheet's worksheets (spreadsheets.get, properties only), and ``sheet_name`` among them."""
        plan = self.plan
        if not SPREADSHEET_ID.match(plan.spreadsheet_id):
            raise ConnectorError("database", "The spreadsheet ID is the part of the sheet's URL after "
                                             "/spreadsheets/d/ (letters, digits, '-' and '_').")
        document = self.get("database", "", {"fields": "sheets.properties"}, self.timeout)
        if not isinstance(document.get("sheets"), list):  # a spreadsheet has at least one sheet
            raise ConnectorError("database", "The Sheets API gave an unexpected answer (no worksheets).")
        sheets = [s.get("properties") for s in document["sheets"] if isinstance(s, dict)]
        grids = [p for p in sheets if isinstance(p, dict) and isinstance(p.get("title"), str)
                 and p.get("sheetType", "GRID") == "GRID"]  # chart sheets hold no cells
        grids.sort(key=lambda p: int(p.get("index") or 0))
        if plan.sheet_name:
            wanted = plan.sheet_name
            grids = ([p for p in grids if p["title"] == wanted]
                     or [p for p in grids if p["title"].casefold() == wanted.casefold()])[:1]
            if not grids:
                raise ConnectorError("database", f"Worksheet '{wanted}' was not found in the spreadsheet.")
        self.worksheets = grids[:MAX_TABLES]

    def catalogue(self) -> list[TableInfo]:
        """The first rows of every worksheet: one values:batchGet (more only past URL_BUDGET)."""
        shapes = [(p["title"], *_grid(p)) for p in self.worksheets]
        rows = max(2, min(SAMPLE_ROWS, CELL_BUDGET // max(1, sum(width for _, _, width in shapes))))
        ranges = [_a1(title, min(rows, height), width) for title, height, width in shapes if height and width]
        seconds = float(self.config.query_timeout)
        deadline = time.monotonic() + seconds
        values: list[Any] = []
        for batch in _batches(ranges):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectorError("introspect", f"The Sheets API did not answer within {seconds:g} seconds.")
            document = self.get("introspect", "/values:batchGet", [("ranges", r) for r in batch] + list(VALUE_OPTIONS),
                                left)
            answered = document.get("valueRanges")
            if not isinstance(answered, list) or len(answered) != len(batch):
                raise ConnectorError("introspect", "The Sheets API answered a different number of ranges.")
            values += [v.get("values") if isinstance(v, dict) else None for v in answered]
        found = iter(values)
        return [_table(title, next(found) if height and width else None) for title, height, width in shapes]

    def close(self) -> None:
        self.http.close()
        super().close()


# --- worksheets as tables --------------------------------------------------------------------------


def _grid(properties: dict[str, Any]) -> tuple[int, int]:
    grid = properties.get("gridProperties")
    grid = grid if isinstance(grid, dict) else {}
    try:
        return max(0, int(grid.get("rowCount", 1000))), min(max(0, int(grid.get("columnCount", 26))), MAX_COLUMNS)
    except (TypeError, ValueError):
        return 0, 0


def column_letters(number: int) -> str:
    """1 -> A, 26 -> Z, 27 -> AA, 1000 -> ALL."""
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _a1(title: str, rows: int, width: int) -> str:
    """A range inside the sheet's grid; the name always quoted, its quotes doubled."""
    return "'{}'!A1:{}{}".format(title.replace("'", "''"), column_letters(width), rows)


def _batches(ranges: list[str]) -> list[list[str]]:
    batches: list[list[str]] = []
    size = URL_BUDGET + 1
    for item in ranges:
        cost = len(quote(item, safe="")) + len("&ranges=")
        if size + cost > URL_BUDGET:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += cost
    return batches


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value if value is not None else "").split())[:200]


def column_names(header: list[Any], width: int) -> list[str]:
    """Deterministic names: blank -> column_<n>, repeated (case-insensitively) -> <name>_2, <name>_3."""
    texts = [_text(header[i]) if i < len(header) else "" for i in range(width)]
    first: dict[str, int] = {}
    for i, text in enumerate(texts):
        if text:
            first.setdefault(text.casefold(), i)
    taken, names = set(first), []
    for i, text in enumerate(texts):
        if text and first[text.casefold()] == i:
            names.append(text)
            continue
        base = text or f"column_{i + 1}"
        candidate, n = (f"{base}_2", 3) if text else (base, 2)
        while candidate.casefold() in taken:
            candidate, n = f"{base}_{n}", n + 1
        taken.add(candidate.casefold())
        names.append(candidate)
    return names


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, (int, float)):
        return "NUMBER"
    text = str(value).strip()
    return next((kind for kind, pattern in PATTERNS if pattern.match(text)), "STRING")


def infer_type(values: list[Any]) -> str:
    """The cells' common type; dates with datetimes are DATETIME; blanks and error values count for nothing."""
    kinds = {_kind(v) for v in values if v is not None and v != "" and not (isinstance(v, str) and v in ERROR_VALUES)}
    if len(kinds) == 1:
        return kinds.pop()
    return "DATETIME" if kinds == {"DATE", "DATETIME"} else "STRING"


def _table(title: str, values: Any) -> TableInfo:
    rows = [r if isinstance(r, list) else [] for r in values[:SAMPLE_ROWS]] if isinstance(values, list) else []
    header, data = (rows[0], rows[1:]) if rows else ([], [])
    width = min(max([len(r) for r in rows], default=0), MAX_COLUMNS)
    columns = [ColumnInfo(name, infer_type([r[i] for r in data if i < len(r)]), True, i + 1)
               for i, name in enumerate(column_names(header, width))]
    return TableInfo(schema="", name=title, kind="table", columns=columns)


class GoogleSheetsConnector(ServiceAccountConnector[_Plan]):
    """Stages: resolve, tcp, tls (https), auth, database; introspection over the tested session."""

    def plan(self, config: ConnectionConfig) -> _Plan:
        c = config.connection
        return _Plan(*plan_fields(config, DEFAULT_ENDPOINT), str(c.get("spreadsheet_id") or "").strip(),
                     str(c.get("sheet_name") or "").strip())

    def session(self, plan: _Plan, config: ConnectionConfig, masks: dict[str, str], scope: EgressScope) -> _Session:
        return _Session(plan, config, masks, scope)

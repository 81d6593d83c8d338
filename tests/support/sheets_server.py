"""A protocol stand-in for Google's OAuth 2.0 token endpoint and the Google Sheets API v4.

One threaded ``http.server`` on 127.0.0.1 (ephemeral port, optionally over TLS) answers, in Google's shapes:

- ``POST /token``: tests/support/google_oauth.py's token endpoint, granting a Sheets or Drive ``scope``.
- ``GET /v4/spreadsheets/{id}`` (spreadsheets.get): ``spreadsheetId``, ``properties`` (title, locale,
  timeZone), ``sheets[].properties`` (sheetId, title, index, sheetType, gridProperties for GRID sheets)
  and ``spreadsheetUrl``, pruned to the ``fields`` mask (comma-separated dotted paths, ``a(b,c)``
  sub-selections). An unknown id: 404 NOT_FOUND "Requested entity was not found."; an id in
  ``unshared``: 403 PERMISSION_DENIED "The caller does not have permission"; ``api_disabled``: 403
  PERMISSION_DENIED with an ErrorInfo detail of reason SERVICE_DISABLED (on every /v4 call).
- ``GET /v4/spreadsheets/{id}/values:batchGet`` (``ranges`` repeated, ``valueRenderOption``,
  ``dateTimeRenderOption``, ``majorDimension``): one ``valueRanges`` item per range, in order. A range is
  A1 notation: a sheet name (quoted with ``'``, quotes doubled, or bare) then ``!`` and ``A1:E50``,
  ``1:50``, ``A:C`` or ``B2``; or the sheet alone. An unknown sheet: 400 "Unable to parse range: ...";
  past the sheet's grid: 400 "Range (...) exceeds grid limits. Max rows: R, max columns: C".
  Values: FORMATTED_VALUE (the default) renders every cell as text; UNFORMATTED_VALUE and FORMULA give
  numbers and booleans as JSON, and a ``SheetDate`` as its serial number unless
  ``dateTimeRenderOption=FORMATTED_STRING``. Empty cells are ``""``, trailing ones and trailing empty rows
  are left out, and ``values`` is absent for an empty range, as Sheets does.
- ``HEAD`` anything: 404 (the connector's reachability probe only needs an HTTP answer).

Every ``/v4`` call needs ``Authorization: Bearer <a token this server issued>`` (else 401
UNAUTHENTICATED). ``requests`` records each (method, path, query string), ``tokens`` each token issued.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, parse_qs, unquote

from datasources.connectors.google_sheets import column_letters
from tests.support.google_oauth import ApiError, GoogleStandIn, serve

SCOPES = ("https://www.googleapis.com/auth/spreadsheets.readonly", "https://www.googleapis.com/auth/spreadsheets",
          "https://www.googleapis.com/auth/drive.readonly", "https://www.googleapis.com/auth/drive")
API = re.compile(r"^/v4/spreadsheets/(?P<id>[^/]+?)(?P<values>/values:batchGet)?$")
CELLS = re.compile(r"^(?P<c1>[A-Z]*)(?P<r1>\d*)(?::(?P<c2>[A-Z]*)(?P<r2>\d*))?$", re.I)
STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}


@dataclass(frozen=True)
class SheetDate:
    """A date cell: its serial number (days since 1899-12-30) and the text its number format shows."""

    serial: float
    formatted: str


@dataclass
class Worksheet:
    """A sheet: its cells row by row (None or "" for empty), its grid size and type (GRID or OBJECT)."""

    title: str
    rows: list[list[Any]] = field(default_factory=list)
    row_count: int = 0  # 0: max(1000, rows)
    column_count: int = 0  # 0: max(26, widest row)
    sheet_type: str = "GRID"

    @property
    def grid(self) -> tuple[int, int]:
        return (self.row_count or max(1000, len(self.rows)),
                self.column_count or max([26, *(len(r) for r in self.rows)]))


@dataclass
class Spreadsheet:
    sheets: list[Worksheet]
    title: str = "Untitled spreadsheet"


def _col(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number


def _mask(text: str) -> dict[str, Any]:
    """A field mask as a tree: ``sheets.properties,properties(title,locale)``."""
    tree: dict[str, Any] = {}
    depth, start, items = 0, 0, []
    for i, char in enumerate(text + ","):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    for item in filter(None, items):
        path, _, inner = item.partition("(")
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
        if inner:
            node.update(_mask(inner[:-1]))
    return tree


def _prune(value: Any, tree: dict[str, Any]) -> Any:
    if not tree:
        return value
    if isinstance(value, list):
        return [_prune(v, tree) for v in value]
    if isinstance(value, dict):
        return {k: _prune(v, tree[k]) for k, v in value.items() if k in tree}
    return value


def _render(cell: Any, value_option: str, date_option: str) -> Any:
    if cell is None:
        return ""
    if isinstance(cell, SheetDate):
        return cell.formatted if value_option == "FORMATTED_VALUE" or date_option == "FORMATTED_STRING" else cell.serial
    if value_option != "FORMATTED_VALUE":
        return cell
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


@dataclass
class SheetsStandIn(GoogleStandIn):
    """Spreadsheets by id, the service accounts it trusts, and what clients sent."""

    spreadsheets: dict[str, Spreadsheet] = field(default_factory=dict)
    scopes: tuple[str, ...] = SCOPES
    unshared: set[str] = field(default_factory=set)  # spreadsheet ids the service account may not open
    api_disabled: bool = False
    requests: list[tuple[str, str, str]] = field(default_factory=list)

    def api_requests(self, suffix: str = "") -> list[tuple[str, str, str]]:
        return [r for r in self.requests if r[1].startswith("/v4/") and r[1].endswith(suffix)]

    def batch_gets(self) -> list[dict[str, list[str]]]:
        """The query of every values:batchGet received."""
        return [parse_qs(r[2]) for r in self.api_requests("/values:batchGet")]

    def record(self, method: str, parts: SplitResult) -> None:
        with self._lock:
            self.requests.append((method, parts.path, parts.query))

    def answer(self, method: str, parts: SplitResult, body: bytes, authorization: str) -> dict[str, Any]:
        if method != "GET":
            raise ApiError(404, "NOT_FOUND", "Not found.")
        self.bearer(authorization, "UNAUTHENTICATED")
        return self.api(parts.path, parse_qs(parts.query))

    def error(self, exc: ApiError) -> dict[str, Any]:
        error: dict[str, Any] = {"code": exc.status, "message": exc.message, "status": STATUSES.get(exc.status, "")}
        if exc.reason == "SERVICE_DISABLED":
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
                                 "domain": "googleapis.com", "metadata": {"service": "sheets.googleapis.com"}}]
        return {"error": error}

    # --- Sheets API v4 ----------------------------------------------------------------------------

    def api(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        if self.api_disabled:
            raise ApiError(403, "SERVICE_DISABLED", "Google Sheets API has not been used in project 104857600000 "
                                                    "before or it is disabled.")
        match = API.match(path)
        if not match:
            raise ApiError(404, "NOT_FOUND", "Requested entity was not found.")
        sid = unquote(match["id"])
        spreadsheet = self.spreadsheets.get(sid)
        if spreadsheet is None:
            raise ApiError(404, "NOT_FOUND", "Requested entity was not found.")
        if sid in self.unshared:
            raise ApiError(403, "PERMISSION_DENIED", "The caller does not have permission")
        if match["values"]:
            return self._batch_get(sid, spreadsheet, query)
        document = {
            "spreadsheetId": sid,
            "properties": {"title": spreadsheet.title, "locale": "en_US", "timeZone": "Etc/GMT"},
            "sheets": [{"properties": _properties(i, sheet)} for i, sheet in enumerate(spreadsheet.sheets)],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{sid}/edit",
        }
        return _prune(document, _mask(query.get("fields", [""])[0]))

    def _batch_get(self, sid: str, spreadsheet: Spreadsheet, query: dict[str, list[str]]) -> dict[str, Any]:
        value_option = query.get("valueRenderOption", ["FORMATTED_VALUE"])[0]
        date_option = query.get("dateTimeRenderOption", ["SERIAL_NUMBER"])[0]
        dimension = query.get("majorDimension", ["ROWS"])[0]
        if value_option not in ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"):
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid value at 'value_render_option' ({value_option})")
        if date_option not in ("SERIAL_NUMBER", "FORMATTED_STRING") or dimension not in ("ROWS", "COLUMNS"):
            raise ApiError(400, "INVALID_ARGUMENT", "Invalid value at 'date_time_render_option' or 'major_dimension'")
        if not query.get("ranges"):
            raise ApiError(400, "INVALID_ARGUMENT", "Must specify at least one range.")
        answered = []
        for text in query["ranges"]:
            sheet, (c1, r1, c2, r2) = _parse_range(spreadsheet, text)
            rows = [[_render(c, value_option, date_option) for c in row[c1 - 1:c2]] for row in sheet.rows[r1 - 1:r2]]
            rows = [row[:max([i + 1 for i, c in enumerate(row) if c != ""], default=0)] for row in rows]
            while rows and not rows[-1]:
                rows.pop()
            if dimension == "COLUMNS":
                width = max([len(r) for r in rows], default=0)
                rows = [[r[i] if i < len(r) else "" for r in rows] for i in range(width)]
            title = sheet.title.replace("'", "''")
            # echoed only: the ranges the connector sent were parsed with this stand-in's own _col
            item: dict[str, Any] = {"range": f"'{title}'!{column_letters(c1)}{r1}:{column_letters(c2)}{r2}",
                                    "majorDimension": dimension}
            if rows:
                item["values"] = rows
            answered.append(item)
        return {"spreadsheetId": sid, "valueRanges": answered}


def _properties(index: int, sheet: Worksheet) -> dict[str, Any]:
    properties: dict[str, Any] = {"sheetId": 1000 + index, "title": sheet.title, "index": index,
                                  "sheetType": sheet.sheet_type}
    if sheet.sheet_type == "GRID":
        rows, columns = sheet.grid
        properties["gridProperties"] = {"rowCount": rows, "columnCount": columns}
    return properties


def _parse_range(spreadsheet: Spreadsheet, text: str) -> tuple[Worksheet, tuple[int, int, int, int]]:
    """A1 notation -> the sheet and (first column, first row, last column, last row), inside the grid."""
    refused = ApiError(400, "INVALID_ARGUMENT", f"Unable to parse range: {text}")
    if text.startswith("'"):
        end = 1
        while True:
            end = text.find("'", end)
            if end < 0:
                raise refused
            if text[end + 1:end + 2] != "'":
                break
            end += 2
        name, rest = text[1:end].replace("''", "'"), text[end + 1:]
        if rest and not rest.startswith("!"):
            raise refused
        cells = rest[1:]
    elif "!" in text:
        name, cells = text.split("!", 1)
    elif any(s.title == text for s in spreadsheet.sheets) or not CELLS.match(text):
        name, cells = text, ""
    else:
        name, cells = spreadsheet.sheets[0].title if spreadsheet.sheets else "", text
    sheet = next((s for s in spreadsheet.sheets if s.title.casefold() == name.casefold()), None)
    bounds = CELLS.match(cells)
    if sheet is None or sheet.sheet_type != "GRID" or bounds is None or (cells and not any(bounds.groups())):
        raise refused
    rows, columns = sheet.grid
    c1, r1 = _col(bounds["c1"]) or 1, int(bounds["r1"] or 1)
    c2 = _col(bounds["c2"]) if bounds["c2"] else (columns if bounds["c2"] is not None or not cells else c1)
    r2 = int(bounds["r2"]) if bounds["r2"] else (rows if bounds["r2"] is not None or not cells else r1)
    if max(c1, c2) > columns or max(r1, r2) > rows:
        raise ApiError(400, "INVALID_ARGUMENT", f"Range ({text}) exceeds grid limits. Max rows: {rows}, "
                                                f"max columns: {columns}")
    return sheet, (min(c1, c2), min(r1, r2), max(c1, c2), max(r1, r2))


def serve_sheets(standin: SheetsStandIn,
                 tls: tuple[str, str] | None = None) -> AbstractContextManager[SheetsStandIn]:
    """Run ``standin`` on 127.0.0.1 (ephemeral port) in a thread until the block ends; over TLS with
    ``tls`` = (certificate PEM, key PEM)."""
    return serve(standin, tls, "sheets-standin")

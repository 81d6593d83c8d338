"""Google Sheets connector: google-auth's token exchange and the Sheets API v4 over requests, against
tests/support/sheets_server.py (the OAuth token endpoint verifying the JWT grant's RS256 signature, and
spreadsheets.get / values:batchGet with Google's value rendering). The service-account key comes from
tests/support/google_oauth.py; the whole JSON is the secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from datasources.connectors import ConnectionConfig, get_connector
from datasources.connectors.base import MAX_COLUMNS, MAX_TABLES
from datasources.connectors.google_sheets import column_letters
from tests.support.google_oauth import ServiceAccountTests, google_config
from tests.support.google_oauth import new_key as _key
from tests.support.sheets_server import SheetDate, SheetsStandIn, Spreadsheet, Worksheet, serve_sheets

SID = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
EMAIL = "reader@acme-analytics.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[rsa.RSAPrivateKey, str]]:
    return {"right": _key(), "wrong": _key()}  # the registered key, and one the stand-in does not know


def _book() -> Spreadsheet:
    return Spreadsheet([
        Worksheet("Orders", [["id", "amount", "paid", "ordered_on", "note"],
                             [1, 19.5, True, SheetDate(45306, "2024-01-15"), "first"],
                             [2, 7, False, SheetDate(45307, "2024-01-16"), None],
                             [3, 120.25, True, SheetDate(45308, "2024-01-17"), "rush"]]),
        Worksheet("Customers", [["id", "email"], [1, "ada@example.com"], [2, "grace@example.com"]]),
        Worksheet("Chart", sheet_type="OBJECT"),
        Worksheet("Empty"),
    ], title="Shop")


@pytest.fixture
def standin(keys) -> Iterator[SheetsStandIn]:
    server = SheetsStandIn(spreadsheets={SID: _book()}, public_keys={EMAIL: keys["right"][0].public_key()})
    with serve_sheets(server) as running:
        yield running


_config = partial(google_config, "google_sheets", EMAIL, {"spreadsheet_id": SID})


def _test(config: ConnectionConfig):
    return get_connector("google_sheets").test(config)


def _tables(standin: SheetsStandIn, pem: str, **connection: str) -> dict[str, list[tuple[str, str, int]]]:
    tables = get_connector("google_sheets").introspect(_config(standin, pem, **connection))
    return {t.name: [(c.name, c.data_type, c.ordinal) for c in t.columns] for t in tables}


# --- stages ---------------------------------------------------------------------------------------


def test_passes_every_stage_with_a_signed_grant(allow_loopback, standin, keys):
    result = _test(_config(standin, keys["right"][1]))
    assert result.ok, result
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database"]
    assert standin.requests.count(("POST", "/token", "")) == 1
    assert standin.api_requests() == [("GET", f"/v4/spreadsheets/{SID}", "fields=sheets.properties")]


def test_unknown_spreadsheet_fails_at_database_with_the_share_hint(allow_loopback, standin, keys):
    result = _test(_config(standin, keys["right"][1], spreadsheet_id="1NoSuchSheetXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"))
    assert result.stage == "database"
    assert result.message == ("Spreadsheet '1NoSuchSheetXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX' was not found or is not "
                              f"shared with {EMAIL}: share it with that address (Viewer is enough).")


def test_unshared_spreadsheet_fails_at_database_with_the_share_hint(allow_loopback, standin, keys):
    standin.unshared.add(SID)
    result = _test(_config(standin, keys["right"][1]))
    assert result.stage == "database" and f"is not shared with {EMAIL}" in result.message


def test_disabled_api_is_named(allow_loopback, standin, keys):
    standin.api_disabled = True
    result = _test(_config(standin, keys["right"][1]))
    assert result.stage == "database" and "Google Sheets API is not enabled" in result.message


def test_access_token_refused_by_the_api_fails_at_auth(allow_loopback, standin, keys):
    issuer = SheetsStandIn(public_keys={EMAIL: keys["right"][0].public_key()})  # another server's tokens
    with serve_sheets(issuer) as tokens:
        result = _test(_config(standin, keys["right"][1], token_uri=tokens.token_uri))
    assert (result.stage, result.message) == ("auth", "The Sheets API refused the service account's access token.")
    assert tokens.tokens and not standin.tokens


def test_invalid_spreadsheet_id_is_refused_before_the_api(allow_loopback, standin, keys):
    result = _test(_config(standin, keys["right"][1], spreadsheet_id="../../drive/v3/files"))
    assert result.stage == "database" and "after /spreadsheets/d/" in result.message
    assert not standin.api_requests()


def test_unknown_sheet_name_fails_at_database(allow_loopback, standin, keys):
    result = _test(_config(standin, keys["right"][1], sheet_name="Invoices"))
    assert (result.stage, result.message) == ("database", "Worksheet 'Invoices' was not found in the spreadsheet.")


# --- the service account: auth, the token_uri's egress, the environment, secrets ------------------


class TestServiceAccount(ServiceAccountTests):
    type_key = "google_sheets"
    missing = {"spreadsheet_id": "1Unknown"}
    contract_tables = {"Orders", "Customers"}
    contract_patch = {"sheet_name": "Customers"}
    config = staticmethod(_config)

    def check_schema(self, tables):
        assert {t["name"] for t in tables} == {"Orders", "Customers", "Empty"}  # the chart sheet is no table


# --- introspection --------------------------------------------------------------------------------


def test_worksheets_are_tables_with_typed_columns(allow_loopback, standin, keys):
    tables = _tables(standin, keys["right"][1])
    assert list(tables) == ["Orders", "Customers", "Empty"]  # sheet order; the chart sheet holds no cells
    assert tables["Orders"] == [("id", "NUMBER", 1), ("amount", "NUMBER", 2), ("paid", "BOOLEAN", 3),
                                ("ordered_on", "DATE", 4), ("note", "STRING", 5)]
    assert tables["Empty"] == []
    (query,) = standin.batch_gets()
    assert query["valueRenderOption"] == ["UNFORMATTED_VALUE"]
    assert query["dateTimeRenderOption"] == ["FORMATTED_STRING"]


def test_sheet_name_limits_to_one_worksheet(allow_loopback, standin, keys):
    assert _tables(standin, keys["right"][1], sheet_name="Customers") == {
        "Customers": [("id", "NUMBER", 1), ("email", "STRING", 2)]}
    (query,) = standin.batch_gets()
    assert query["ranges"] == ["'Customers'!A1:Z50"]


def test_header_edge_cases(allow_loopback, standin, keys):
    standin.spreadsheets[SID].sheets = [Worksheet("Messy", [
        ["name", "", "Name", "name", "column_2", None, "  spaced \n out  ", 2024, True],
        ["a", 1, "b", "c", "d", "e", "f", "g", "h", 10, 20],
    ])]
    assert _tables(standin, keys["right"][1])["Messy"] == [
        ("name", "STRING", 1), ("column_2_2", "NUMBER", 2), ("Name_2", "STRING", 3), ("name_3", "STRING", 4),
        ("column_2", "STRING", 5), ("column_6", "STRING", 6), ("spaced out", "STRING", 7), ("2024", "STRING", 8),
        ("TRUE", "STRING", 9), ("column_10", "NUMBER", 10), ("column_11", "NUMBER", 11)]


def test_types_inferred_from_a_bounded_sample(allow_loopback, standin, keys):
    rows: list[list] = [["n", "flag", "day", "at", "mixed_dates", "clock", "text", "mixed", "blank", "errors"]]
    for i in range(60):
        rows.append([i + 0.5, i % 2 == 0, SheetDate(45306 + i, f"1/{i % 28 + 1}/2024"),
                     SheetDate(45306.5 + i, f"2024-01-{i % 28 + 1:02d} 10:30:00"),
                     SheetDate(45306 + i, "2024-01-15" if i % 2 else "2024-01-15 08:00"), "10:30 AM",
                     "x", i if i % 2 else "y", None, "#N/A" if i % 3 == 0 else 3])
    rows.append(["late text"] * 10)  # row 62: outside the sample, so it changes nothing
    standin.spreadsheets[SID].sheets = [Worksheet("Typed", rows)]
    assert _tables(standin, keys["right"][1])["Typed"] == [
        ("n", "NUMBER", 1), ("flag", "BOOLEAN", 2), ("day", "DATE", 3), ("at", "DATETIME", 4),
        ("mixed_dates", "DATETIME", 5), ("clock", "TIME", 6), ("text", "STRING", 7), ("mixed", "STRING", 8),
        ("blank", "STRING", 9), ("errors", "NUMBER", 10)]
    (query,) = standin.batch_gets()
    assert query["ranges"] == ["'Typed'!A1:Z50"]  # 50 rows: the header and 49 data rows


def test_sheet_names_quoted_and_ranges_inside_the_grid(allow_loopback, standin, keys):
    names = ["It's Q1", "Sales!2024", "A1", "Ümsatz 'final'", "=1+1", "Sheet 1"]
    standin.spreadsheets[SID].sheets = [Worksheet(n, [["k", "v"], [n, 1]], row_count=3, column_count=2)
                                        for n in names]
    tables = _tables(standin, keys["right"][1])
    assert list(tables) == names and all(cols == [("k", "STRING", 1), ("v", "NUMBER", 2)] for cols in tables.values())
    (query,) = standin.batch_gets()
    assert query["ranges"][:2] == ["'It''s Q1'!A1:B3", "'Sales!2024'!A1:B3"]


def test_two_hundred_worksheets_in_one_batch_get(allow_loopback, standin, keys):
    standin.spreadsheets[SID].sheets = [
        Worksheet(f"Sheet {i}", [["id", "name", "at"], [i, f"n{i}", SheetDate(45306, "2024-01-15")]],
                  column_count=5) for i in range(1, 201)]
    standin.requests.clear()
    result = get_connector("google_sheets").test_and_introspect(_config(standin, keys["right"][1], timeout=15))
    assert result.ok and result.tables is not None and len(result.tables) == 200
    assert all([c.data_type for c in t.columns] == ["NUMBER", "STRING", "DATE"] for t in result.tables)
    assert len(standin.batch_gets()) == 1 and len(standin.batch_gets()[0]["ranges"]) == 200
    assert len(standin.api_requests()) == 2  # spreadsheets.get and one values:batchGet
    assert len(standin.requests) == 4, standin.requests  # and the HEAD probe and the token


def test_bounds_max_tables_and_max_columns(allow_loopback, standin, keys):
    wide = Worksheet("Wide", [[f"c{i}" for i in range(MAX_COLUMNS + 5)]], row_count=10)
    standin.spreadsheets[SID].sheets = [wide] + [
        Worksheet(f"t{i}", [["id"]], row_count=2, column_count=1) for i in range(MAX_TABLES + 4)]
    tables = get_connector("google_sheets").introspect(_config(standin, keys["right"][1], timeout=15))
    assert len(tables) == MAX_TABLES and len(tables[0].columns) == MAX_COLUMNS
    assert tables[0].columns[-1].name == f"c{MAX_COLUMNS - 1}"
    gets = standin.batch_gets()
    assert gets[0]["ranges"][0] == f"'Wide'!A1:{column_letters(MAX_COLUMNS)}10"
    assert sum(len(q["ranges"]) for q in gets) == MAX_TABLES and len(gets) < MAX_TABLES // 150


def test_column_letters():
    assert [column_letters(n) for n in (1, 26, 27, 52, 702, 703, 1000)] == ["A", "Z", "AA", "AZ", "ZZ", "AAA", "ALL"]


# --- secrets --------------------------------------------------------------------------------------

"""What connectors report is stored as JSON both application databases accept: a name or type with a
NUL character (a binary file a connector guessed columns from) or a lone surrogate must not fail the
refresh (PostgreSQL's jsonb refuses \\u0000)."""

from __future__ import annotations

import os

from datasources.connectors import ColumnInfo, TableInfo
from datasources.models import SchemaTable
from datasources.services.connection import _storable

URL = "/api/v1/data-sources/"


def test_odd_characters_are_made_storable_and_clean_names_are_kept_as_they_are():
    clean = [TableInfo("main", "ünï表", "table", [ColumnInfo("id", "INTEGER", False, 1)])]
    assert _storable(clean) is clean
    odd = _storable([TableInfo("main", "t\x00", "table", [ColumnInfo("\x00\x01a\ud800", "VARCHAR", True, 1)])])
    assert (odd[0].name, odd[0].columns[0].name) == ("t", "\x01a?")


def test_a_binary_file_read_as_csv_refreshes(api, _file_root):
    with open(os.path.join(_file_root, "bad.csv"), "wb") as handle:
        handle.write(b"\x00\x01\x02garbage\n\x00\x00\n")
    created = api.post(URL, {"name": "Bad", "type": "csv", "connection": {"path": "bad.csv"}}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["schema"]["status"] == "ready", created.json()["schema"]
    names = [c["name"] for t in SchemaTable.objects.all() for c in t.columns]
    assert all("\x00" not in name for name in names)
    assert api.get(f"{URL}{created.json()['id']}/schema/").status_code == 200

"""Qualified references: escaping, parsing (with the wrong part named) and rendering."""

from __future__ import annotations

import pytest

from workflows.references import (
    InvalidReference,
    SourceReference,
    TableReference,
    escape_name,
    name_key,
    parse_source_reference,
    parse_table_reference,
    parse_workflow_reference,
    render_source,
    render_table,
    render_workflow,
)


@pytest.mark.parametrize(
    ("name", "escaped"),
    [("Sales data", "Sales_data"), ("a--b  c", "a_b_c"), ("x__y", "x_y"), ("public.items", "public_items"),
     ("Café 2024!", "Café_2024_"), ("ok_name", "ok_name")],
)
def test_escaping_replaces_non_word_characters_and_collapses_runs(name, escaped):
    assert escape_name(name) == escaped


def test_names_compare_case_insensitively_after_escaping():
    assert name_key("Sales Data") == name_key("sales-data") == name_key("SALES__DATA")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acme.shop", SourceReference("acme", "shop")),
        ("ACME.Shop DB", SourceReference("acme", "Shop DB")),
        ("acme.shop:xje9", SourceReference("acme", "shop", "xje9")),
        ("acme.shop:XJE9:sample", SourceReference("acme", "shop", "xje9", sample=True)),
        ("acme.shop:xje9:sample:v3", SourceReference("acme", "shop", "xje9", True, 3)),
        ("acme.shop:v12", SourceReference("acme", "shop", version=12)),
        ("acme.shop:current", SourceReference("acme", "shop", version="current")),
        ("acme.shop:sample:current", SourceReference("acme", "shop", sample=True, version="current")),
        # A version-like token right after the name is a reference id when a version follows.
        ("acme.shop:v234:v2", SourceReference("acme", "shop", "v234", version=2)),
        ("acme.my.dotted.name", SourceReference("acme", "my.dotted.name")),
    ],
)
def test_source_references_parse(text, expected):
    assert parse_source_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("", "reference"),
        ("shop", "organization"),
        ("ac me.shop", "organization"),
        (".shop", "organization"),
        ("acme.", "name"),
        ("acme.:xje9", "name"),
        ("acme.shop::v2", "suffix 1"),
        ("acme.shop:xj-9", "suffix 1"),
        ("acme.shop:v0", "version"),
        ("acme.shop:xje9:v2:v3", "version"),
        ("acme.shop:current:v3", "version"),
        ("acme.shop:v2:sample", "sample"),
        ("acme.shop:sample:xje9", "reference id"),
        ("acme.shop:sample:sample", "sample"),
    ],
)
def test_malformed_source_references_name_the_wrong_part(text, part):
    with pytest.raises(InvalidReference) as info:
        parse_source_reference(text)
    assert info.value.part == part
    assert part in str(info.value)


def test_workflow_references_take_no_version_or_sample():
    assert parse_workflow_reference("acme.flow:ab12") == SourceReference("acme", "flow", "ab12")
    for text, part in (("acme.flow:v2", "version"), ("acme.flow:sample", "sample")):
        with pytest.raises(InvalidReference) as info:
            parse_workflow_reference(text)
        assert info.value.part == part


def test_table_references():
    assert parse_table_reference("old_table:xje9") == TableReference("old_table", "xje9")
    assert parse_table_reference("Old Table") == TableReference("Old Table")
    assert parse_table_reference("public.items:AB12") == TableReference("public.items", "ab12")
    for text, part in ((":xje9", "name"), ("a:b:c", "reference id"), ("t:x-y", "reference id"), ("", "reference")):
        with pytest.raises(InvalidReference) as info:
            parse_table_reference(text)
        assert info.value.part == part


def test_rendered_references_parse_back():
    text = render_source("acme", "Shop DB", "xje9", sample=True, version=4)
    assert text == "acme.shop_db:xje9:sample:v4"
    assert parse_source_reference(text) == SourceReference("acme", "shop_db", "xje9", True, 4)
    assert render_source("acme", "Shop", "xje9") == "acme.shop:xje9:current"
    assert render_workflow("acme", "My Flow", "ab12") == "acme.my_flow:ab12"
    assert parse_table_reference(render_table("New Table", "a842")) == TableReference("new_table", "a842")

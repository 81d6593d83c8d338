"""core.numbers: the one parser of integers written as text, ASCII digits only."""

from __future__ import annotations

import pytest

from core.numbers import MAX_LENGTH, is_ascii_digits, parse_ascii_int


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("1", 1), ("5432", 5432), ("007", 7), ("9" * 19, 10**19 - 1), ("1" + "0" * (MAX_LENGTH - 1), 10**99),
])
def test_ascii_digits_are_integers(text, value):
    assert is_ascii_digits(text)
    assert parse_ascii_int(text) == value


@pytest.mark.parametrize("text", [
    "", "²", "1²", "٣", "١٢", "५", "１", "+1", "-1", " 1", "1 ", "1\n", "\t1", "1_000", "1.0", "1e3", "0x10",
    "½", "Ⅻ", "one", "1\x00", "9" * (MAX_LENGTH + 1), "9" * 5000, "0" * 100_000,
    None, 1, 1.0, b"1", ["1"],
])
def test_everything_else_is_not(text):
    assert not is_ascii_digits(text)
    assert parse_ascii_int(text) is None
    assert parse_ascii_int(text, minimum=0, maximum=10) is None


def test_the_unicode_digits_str_isdigit_accepts_are_refused():
    for text in ("²", "٣", "𝟙", "⑴"):
        assert text.isdigit()  # what the old parsers trusted
        assert parse_ascii_int(text) is None


def test_bounds_are_inclusive():
    assert parse_ascii_int("1", minimum=1) == 1
    assert parse_ascii_int("0", minimum=1) is None
    assert parse_ascii_int("200", minimum=1, maximum=200) == 200
    assert parse_ascii_int("201", minimum=1, maximum=200) is None
    assert parse_ascii_int("00200", maximum=200) == 200

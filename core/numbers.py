"""The one parser of integers written as text (query parameters, path segments, connection-string
parts): ASCII digits only.

``str.isdigit()`` is true for '²' and '٣' (which ``int()`` refuses or reads as 3), and ``int()``
itself takes '+1', ' 1', '1_000' and the digits of every script. Here an integer is one or more
of the ASCII characters 0-9 and nothing else: no sign, no spaces, no underscores. Leading zeros are
allowed ('007' is 7). Strings longer than ``MAX_LENGTH`` are refused before any conversion, so the
work is bounded and ``int()``'s own limit on long strings (4300 digits) is never reached.
"""

from __future__ import annotations

import re
from typing import TypeGuard

#: The longest string read as an integer: far more than any value this application accepts
#: (a bigint has 19 digits), with room for leading zeros.
MAX_LENGTH = 100

_ASCII_DIGITS = re.compile(r"[0-9]+")


def is_ascii_digits(text: object) -> TypeGuard[str]:
    """True when ``text`` is a string of 1 to ``MAX_LENGTH`` ASCII digits (0-9) and nothing else."""
    return isinstance(text, str) and len(text) <= MAX_LENGTH and _ASCII_DIGITS.fullmatch(text) is not None


def parse_ascii_int(text: object, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """The integer ``text`` spells in ASCII digits, or None when it is not one or is out of range.

    ``minimum`` and ``maximum`` are inclusive. Never raises: anything that is not a string of
    ASCII digits (None, '', '²', '٣', '+1', ' 1', '1_000', '-1', '1.0', overlong strings) is None.
    """
    if not is_ascii_digits(text):
        return None
    value = int(text)
    if minimum is not None and value < minimum:
        return None
    if maximum is not None and value > maximum:
        return None
    return value


def path_id(value: object) -> int | None:
    """An id given in a URL path (ASCII digits, as ``parse_ascii_int``) or already as an int; None
    when it names nothing (' 1', '+1', '١', '1_0', a bool)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return parse_ascii_int(value)

"""Tests that count connection tests against the per-minute rate (fixed one-minute windows) start
with enough of the window left, so that the counts do not reset halfway and flip a 429 to a 200."""

from __future__ import annotations

import time

from datasources.services.ratelimit import WINDOW


def within_one_rate_window(seconds: float) -> None:
    """Wait, if need be, until the current window has ``seconds`` left."""
    left = WINDOW - time.time() % WINDOW
    if left < seconds:
        time.sleep(left + 0.05)

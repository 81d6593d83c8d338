"""Debian's chromium for the browser tests (Playwright drives it; no browser download)."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture
def chromium_path() -> str:
    """The browser's path; in CI a missing chromium fails, locally it skips saying what to install."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
        pytest.skip("apt-get install chromium")
    return CHROMIUM

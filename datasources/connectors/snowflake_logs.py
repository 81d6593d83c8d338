"""The Snowflake driver's logs: kept to warnings (its DEBUG and INFO records carry requests), and every record
of a driver logger scrubbed: the secrets of the calls running at the time masked, tracebacks dropped.
"""

from __future__ import annotations

import logging
import threading

from .base import mask


class Scrub(logging.Filter):
    """Masks the secrets of running calls in the driver's log records and drops their tracebacks."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._active: dict[int, list[str]] = {}

    def add(self, secrets: dict[str, str]) -> int:
        with self._lock:
            token = max(self._active, default=0) + 1
            self._active[token] = [v for v in secrets.values() if isinstance(v, str) and v]
            return token

    def remove(self, token: int) -> None:
        with self._lock:
            self._active.pop(token, None)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            values = [v for vs in self._active.values() for v in vs]
        if any(len(v) < 4 for v in values):
            return False  # too short to mask reliably: drop the record
        try:
            text = record.getMessage()
        except Exception:  # a driver format error must not break logging
            text = str(record.msg)
        record.msg, record.args = mask(text, values), None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


SCRUB = Scrub()
logging.getLogger("snowflake").setLevel(logging.WARNING)  # its DEBUG/INFO records carry requests


def guard_driver_logs() -> None:
    """Attach the scrubbing filter to every driver logger (children do not inherit filters)."""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (name == "snowflake" or name.startswith("snowflake.")) and isinstance(logger, logging.Logger):
            if SCRUB not in logger.filters:
                logger.addFilter(SCRUB)

"""Request times inside the gunicorn workers, matched to the wrk slices that sent them.

``RequestCountMiddleware`` (bench/floor.py, outermost in ``bench.settings``) appends each request's
start (wall clock) and its time inside Django, in microseconds, to ``times-<pid>.txt`` in the stats
folder. ``tails()`` gives each endpoint and side the percentiles of the requests that started during
its slices: the tail the service itself adds, without what wrk also sees (accept, the HTTP parsing
and writing, the other processes on the cores, wrk's own wakeups).
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

#: (phase, endpoint key, side label, start, end): one wrk slice, timed by the harness (time.time())
Window = tuple[str, str, str, float, float]


def read(folder: Path) -> tuple[list[float], list[float]]:
    """Every recorded request of every worker: starts (sorted) and durations (us), in step."""
    records = []
    for path in folder.glob("times-*.txt"):
        for line in path.read_text().splitlines():
            start, duration = line.split()
            records.append((float(start), float(duration)))
    records.sort()
    return [r[0] for r in records], [r[1] for r in records]


def percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0


def tails(folder: Path, windows: list[Window], phase: str) -> dict[str, dict[str, dict[str, Any]]]:
    """{endpoint key: {side label: {"requests", "p50", "p99"}}} (us) for the windows of ``phase``."""
    starts, durations = read(folder)
    grouped: dict[str, dict[str, list[float]]] = {}
    for window_phase, key, label, begin, end in windows:
        if window_phase != phase:
            continue
        first, last = bisect.bisect_left(starts, begin), bisect.bisect_right(starts, end)
        grouped.setdefault(key, {}).setdefault(label, []).extend(durations[first:last])
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key, sides in grouped.items():
        for label, values in sides.items():
            values.sort()
            out.setdefault(key, {})[label] = {"requests": len(values), "p50": percentile(values, 0.50),
                                              "p99": percentile(values, 0.99)}
    return out

"""The change sets' bounded pool: every input once, results in order, never more than ``workers``
at a time (and actually that many on PostgreSQL, where items are tested concurrently)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from changes.services.change_sets import run_bounded


@pytest.mark.django_db(transaction=True)
def test_at_most_workers_at_a_time_every_input_once_in_order():
    lock = threading.Lock()
    running, peak, seen = 0, 0, []

    def work(value: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            seen.append(value)
        time.sleep(0.02)
        with lock:
            running -= 1
        return value * 10

    inputs = list(range(40))
    assert run_bounded(work, inputs, 4) == [v * 10 for v in inputs]
    assert sorted(seen) == inputs
    assert peak == (1 if connection.vendor == "sqlite" else 4)  # SQLite: one writer, in the calling thread

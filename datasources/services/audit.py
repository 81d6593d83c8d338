"""Audit records for data-source changes: the writer is ``organizations.audit.record``, re-exported.

``from datasources.services import audit; audit.record(...)`` keeps working unchanged.
"""

from __future__ import annotations

from organizations.audit import record

__all__ = ["record"]

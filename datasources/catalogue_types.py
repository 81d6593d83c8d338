"""The source types, in the order clients see them (data in ``catalogue_types_*.py``)."""

from __future__ import annotations

from datasources.catalogue import SourceType
from datasources.catalogue_types_cloud import CLOUD_TYPES, STORAGE_AND_SAAS_TYPES
from datasources.catalogue_types_sql import FILE_TYPES, SQL_TYPES

TYPES: tuple[SourceType, ...] = (*SQL_TYPES, *CLOUD_TYPES, *FILE_TYPES, *STORAGE_AND_SAAS_TYPES)

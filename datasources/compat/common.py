"""What the data-source adapters share on top of the engine (``core.compat``): the service calls,
the native representation a table reads back, and the codecs more than one seed uses.

An adapter only translates: its body into the native request (then validated by the services, so
every rule lives once), and the native result or error back into the seed's vocabulary.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from core.compat import Codec, CompatView
from datasources import catalogue, selectors
from datasources.models import DataSource
from datasources.services import datasources as service
from organizations.authentication import require_actor

#: the SSL modes a seed's "SSL on" flag reads back as true
SSL_ON = ("require", "verify-ca", "verify-full")


def _ssl_mode(value: Any) -> str:
    if not isinstance(value, bool):
        raise ValueError("Must be a boolean.")
    return "require" if value else "disable"


#: a seed's SSL flag, whether SSL is required: true = require, false = disable (omitted = the native
#: default, prefer); ``keep_ssl_mode`` keeps a stored mode the flag agrees with
SSL_FLAG = Codec(_ssl_mode, lambda mode: mode in SSL_ON)
SSL_FLAG_HELP = ("true: SSL required (a stored verify-ca or verify-full is kept); false: not required (a stored "
                 "allow or prefer is kept, else disabled); omitted: preferred.")


def keep_ssl_mode(ds: DataSource, native: dict[str, Any]) -> dict[str, Any]:
    """A seed's SSL flag says only whether SSL is required, and reads back that way: ``false`` for
    ``prefer``, ``true`` for ``verify-full``. Sending the flag back as it was read must not change the
    mode, least of all weaken it (from verify-full to require, or from prefer to never encrypting):
    a flag that agrees with the stored mode keeps it; one that does not sets require or disable."""
    ssl = (native.get("connection") or {}).get("ssl")
    if not isinstance(ssl, dict) or ssl.get("mode") not in ("require", "disable"):
        return native
    stored = ((ds.connection or {}).get("ssl") or {}).get("mode")
    if stored is None:
        field = catalogue.get_type(ds.type).field("ssl.mode")
        stored = field.default if field is not None else None
    if isinstance(stored, str) and (stored in SSL_ON) == (ssl["mode"] in SSL_ON):
        ssl["mode"] = stored
    return native


class View(CompatView):
    scope_resource = "datasource"


def native(ds: DataSource) -> dict[str, Any]:
    """A data source as a native body: what a table reads its seed fields from."""
    return {
        "name": ds.name, "type": ds.type, "description": ds.description, "connection": ds.connection or {},
        "connection_pool_size": ds.connection_pool_size, "connection_timeout": ds.connection_timeout,
        "query_timeout": ds.query_timeout, "max_retries": ds.max_retries,
        "schema_auto_refresh": ds.schema_auto_refresh, "schema_refresh_interval": ds.schema_refresh_interval,
        "metadata": ds.metadata, "tags": ds.tags,
    }


# --- writes through the services ------------------------------------------------------------------


def update(request: Request, data_source_id: Any, data: dict[str, Any], *,
           tenancy_replace: bool = False, inline_refresh: bool = False) -> service.WriteResult:
    """Merge a native body through the update service (the audit records the request's method): the
    service validates it (the API's rules and messages), tests a connection change, applies it and
    re-caches (``inline_refresh``: before answering, even where refreshes go to a worker)."""
    return service.update_data_source(
        actor=require_actor(request),
        data_source_id=data_source_id,
        data=data,
        mode="patch",
        options=service.WriteOptions(if_match=request.headers.get("If-Match"), tenancy_replace=tenancy_replace,
                                     inline_refresh=inline_refresh, method=request.method),
    )


def fetch(request: Request, data_source_id: Any) -> DataSource:
    """The caller's data source with what representations read (404 for ids not in the organization)."""
    return selectors.data_source_with_people_for_actor(require_actor(request), data_source_id)


def with_etag(response: Response, ds: DataSource) -> Response:
    response["ETag"] = ds.etag
    return response

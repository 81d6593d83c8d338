"""Where an Elasticsearch or OpenSearch cluster is, by ``server_type``; every error is a ``ConnectorError`` at
stage resolve.

``self-managed``: ``server_url``. ``elastic-cloud``: the Cloud ID (``<name>:<base64 of
host[:port]$es-uuid$kibana-uuid>``) decoded as the Elastic clients do, every part checked, to
``https://<es-uuid>.<host>:<port or 443>``. ``open-cloud``: a hosted cluster's https endpoint given as
``cloud_id`` (host name or URL, no path), e.g. an Amazon OpenSearch Service domain endpoint, Aiven, Bonsai.
"""

from __future__ import annotations

import base64
import binascii
import re

from .base import ConnectionConfig, ConnectorError
from .egress import check_host_syntax
from .http_stages import Endpoint, parse_endpoint

LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
CLOUD_ID_INVALID = ("The Cloud ID is not valid: copy it from the Elastic Cloud console "
                    "('<deployment name>:<base64 text>').")


def _invalid(message: str) -> ConnectorError:
    return ConnectorError("resolve", message)


def _domain(host: str) -> bool:
    labels = host.split(".")
    return len(labels) >= 2 and all(LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def cloud_endpoint(cloud_id: str) -> Endpoint:
    """The Elasticsearch endpoint an Elastic Cloud ID names; ``ConnectorError`` (resolve) when malformed."""
    _, sep, encoded = (cloud_id or "").strip().rpartition(":")  # base64 has no colon: the name may
    if not sep or not encoded:
        raise _invalid(CLOUD_ID_INVALID)
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise _invalid(CLOUD_ID_INVALID) from None
    parts = decoded.split("$")
    if len(parts) < 2:
        raise _invalid(CLOUD_ID_INVALID)
    host, es_uuid, port = parts[0].strip().rstrip(".").lower(), parts[1].strip().lower(), 443
    if ":" in host:
        host, _, port_text = host.rpartition(":")
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise _invalid(CLOUD_ID_INVALID)
        port = int(port_text)
    if not _domain(host) or not LABEL.match(es_uuid):
        raise _invalid(CLOUD_ID_INVALID)
    return Endpoint("https", check_host_syntax(f"{es_uuid}.{host}", port), port)


def hosted_endpoint(value: str) -> Endpoint:
    """``open-cloud``: the hosted cluster's https endpoint (URL or host name, no path)."""
    text = (value or "").strip()
    if not text:
        raise _invalid("The cloud endpoint is required, e.g. https://search-mydomain-abc123.eu-west-1.es.amazonaws.com.")
    if "://" not in text and re.fullmatch(r"[^:/]+:[A-Za-z0-9+/=]{16,}", text):
        raise _invalid("This looks like an Elastic Cloud ID: choose the server type elastic-cloud for it.")
    if "://" in text and not text.lower().startswith("https://"):
        raise _invalid("A hosted cluster's endpoint must use https://.")
    endpoint = parse_endpoint(text)
    if endpoint.path or not _domain(endpoint.host):
        raise _invalid("The cloud endpoint must be the cluster's host name or https:// URL, without a path.")
    return endpoint


def endpoint_of(config: ConnectionConfig) -> Endpoint:
    """The one endpoint of the cluster, by server type; ``ConnectorError`` at stage resolve."""
    c = config.connection
    server_type = str(c.get("server_type") or "self-managed")
    if server_type == "elastic-cloud":
        return cloud_endpoint(str(c.get("cloud_id") or ""))
    if server_type == "open-cloud":
        return hosted_endpoint(str(c.get("cloud_id") or ""))
    if server_type != "self-managed":
        raise _invalid("The server type must be elastic-cloud, open-cloud or self-managed.")
    url = str(c.get("server_url") or "").strip()
    if not url:
        raise _invalid("The server URL is required, e.g. https://search.internal:9200.")
    return parse_endpoint(url)

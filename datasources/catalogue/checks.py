"""Named value checks a catalogue field may declare (``Field.checks``), for the forms a pattern cannot say.

A check is a pure function of one (already well-typed) value: it answers the message to show, or
``None``. A field names its checks with ``Check(name, when=...)``, so the declaration stays data and
the catalogue endpoint can describe it (``CHECKS[name].describes``). Pure Python, no Django imports,
and no network: a check looks at the text only.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

#: One DNS label (letters, digits, '-'; not starting or ending with '-').
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")

CLOUD_ID_MESSAGE = ("Must be an Elastic Cloud ID as the Elastic Cloud console shows it: "
                    "'<deployment name>:<base64 of host$es-uuid[$kibana-uuid]>'.")


def _domain(host: str) -> bool:
    labels = host.split(".")
    return len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def elastic_cloud_id(value: str) -> str | None:
    """``<name>:<base64>`` whose text is ``host[:port]$es-uuid[$kibana-uuid]``, as the Elastic clients
    decode it: a domain name, an optional port 1-65535 and an Elasticsearch id that is one DNS label."""
    _, sep, encoded = value.strip().rpartition(":")  # base64 has no ':', the deployment name may
    if not sep or not encoded:
        return CLOUD_ID_MESSAGE
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return CLOUD_ID_MESSAGE
    parts = decoded.split("$")
    if len(parts) < 2:
        return CLOUD_ID_MESSAGE
    host, es_uuid = parts[0].strip().rstrip("."), parts[1].strip()
    if ":" in host:
        host, _, port = host.rpartition(":")
        if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            return CLOUD_ID_MESSAGE
    if not _domain(host) or not _LABEL.fullmatch(es_uuid):
        return CLOUD_ID_MESSAGE
    return None


@dataclass(frozen=True)
class NamedCheck:
    function: Callable[[str], str | None]
    describes: str  # what a valid value is, for the catalogue's help and the OpenAPI description


CHECKS: dict[str, NamedCheck] = {
    "elastic_cloud_id": NamedCheck(
        elastic_cloud_id, "an Elastic Cloud ID, '<deployment name>:<base64 of host$es-uuid[$kibana-uuid]>'"),
}

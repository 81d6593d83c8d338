"""A CA certificate that is not ASCII PEM fails like any unreadable one (it was a TypeError, a 500)."""

from __future__ import annotations

import pytest

from datasources.connectors.base import ConnectorError
from datasources.connectors.http_stages import tls_context
from datasources.connectors.search import _check_ca


@pytest.mark.parametrize("pem", ["é", "-----BEGIN CERTIFICATE-----\n¶\n-----END CERTIFICATE-----"])
def test_a_non_ascii_ca_is_unreadable_not_a_crash(pem):
    with pytest.raises(ValueError):
        tls_context(pem)
    with pytest.raises(ConnectorError) as caught:
        _check_ca(pem)
    assert caught.value.stage == "tls"

"""How the Snowflake connector logs in: a password, or key-pair authentication (a JWT the driver signs with
the user's private key, given as PEM and decrypted here with its optional passphrase). No message carries
key material.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .base import ConnectionConfig, ConnectorError


def credentials(config: ConnectionConfig) -> dict[str, Any]:
    """The driver's login arguments for the configured ``auth_method``: ``key_pair`` or ``password``."""
    if (config.connection.get("auth_method") or "password") == "key_pair":
        return {"authenticator": "SNOWFLAKE_JWT", "private_key": private_key(config)}
    return {"password": config.secrets.get("password") or ""}


def private_key(config: ConnectionConfig) -> Any:
    """The PEM private key of key-pair auth, decrypted; messages never carry key material."""
    pem = (config.secrets.get("private_key") or "").strip()
    if not pem:
        raise ConnectorError("auth", "Key-pair authentication needs the private key (PEM).")
    if "\\n" in pem and "\n" not in pem:  # pasted as one line with escaped newlines
        pem = pem.replace("\\n", "\n")
    passphrase = config.secrets.get("private_key_passphrase") or ""
    try:
        key = load_pem_private_key(pem.encode(), password=passphrase.encode() or None)
    except TypeError:
        hint = ("it is not encrypted: leave the passphrase empty" if passphrase
                else "it is encrypted: give its passphrase")
        raise ConnectorError("auth", f"The private key could not be read: {hint}.") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConnectorError("auth", "The private key could not be read: it is not a PEM private key, or the "
                                     "passphrase is wrong.") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ConnectorError("auth", "The private key must be an RSA (or P-256/384/521 EC) key.")
    return key

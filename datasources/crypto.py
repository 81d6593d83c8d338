"""Authenticated encryption of secrets at rest (AES-256-GCM) with a key id per value.

Keys come from ``settings.ENCRYPTION_KEYS`` ("key_id:base64url-32-bytes", first one encrypts,
all decrypt). Each ciphertext is bound to its row and field through the associated data, so a
ciphertext copied to another row or field does not decrypt.

A key derived from ``SECRET_KEY`` (key id ``derived``) encrypts only on local runs (DEBUG on, no
ENCRYPTION_KEYS); with DEBUG off, ENCRYPTION_KEYS is required (config/settings.py refuses to start
without it, and so does this module). The derived key always decrypts while SECRET_KEY is
unchanged, so values written on a local run stay readable after ENCRYPTION_KEYS is configured,
until ``manage.py rotate_encryption_key`` re-encrypts them with the first configured key.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DERIVED_KEY_ID = "derived"
T = TypeVar("T")


class DecryptionError(Exception):
    """The value cannot be decrypted here (unknown key, tampered or moved ciphertext)."""


@dataclass(frozen=True)
class Keyring:
    primary_id: str
    keys: dict[str, bytes]


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def load_keyring() -> Keyring:
    entries = [e.strip() for e in settings.ENCRYPTION_KEYS if e.strip()]
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for entry in entries:
        kid, sep, material = entry.partition(":")
        if not sep or not kid:
            raise ImproperlyConfigured("ENCRYPTION_KEYS entries must look like 'key_id:base64key'.")
        key = _b64decode(material)
        if len(key) != 32:
            raise ImproperlyConfigured(f"Encryption key '{kid}' must be 32 bytes (base64url).")
        keys[kid] = key
        order.append(kid)
    if not order and not settings.DEBUG:
        raise ImproperlyConfigured(
            "ENCRYPTION_KEYS is not set: the key derived from SECRET_KEY encrypts on DEBUG=true local runs only."
        )
    # The key derived from SECRET_KEY always decrypts, so values written before keys were
    # configured stay readable (while SECRET_KEY is unchanged); it encrypts only on local runs.
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"datasource-secrets").derive(
        settings.SECRET_KEY.encode()
    )
    keys.setdefault(DERIVED_KEY_ID, derived)
    return Keyring(primary_id=order[0] if order else DERIVED_KEY_ID, keys=keys)


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def _aad(row_id: int, field: str) -> bytes:
    return f"datasource:{row_id}:secret:{field}".encode()


def encrypt(plaintext: str, *, row_id: int, field: str, keyring: Keyring | None = None) -> tuple[str, str]:
    """Return (key_id, ciphertext) for a secret of data source ``row_id``."""
    ring = keyring or load_keyring()
    nonce = os.urandom(12)
    ct = AESGCM(ring.keys[ring.primary_id]).encrypt(nonce, plaintext.encode(), _aad(row_id, field))
    return ring.primary_id, base64.b64encode(nonce + ct).decode()


def decrypt(key_id: str, ciphertext: str, *, row_id: int, field: str, keyring: Keyring | None = None) -> str:
    ring = keyring or load_keyring()
    key = ring.keys.get(key_id)
    if key is None:
        raise DecryptionError(f"Unknown encryption key id '{key_id}'.")
    try:
        raw = base64.b64decode(ciphertext)
        return AESGCM(key).decrypt(raw[:12], raw[12:], _aad(row_id, field)).decode()
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError("Ciphertext does not decrypt for this row and field.") from exc


def rotate(rows: Iterable[T], locate: Callable[[T], tuple[str, str, int, str]],
           store: Callable[[T, str, str], object], keyring: Keyring | None = None) -> dict[str, int]:
    """Re-encrypt with the primary key every row not under it (``rotate_encryption_key``).

    ``locate(row)`` gives its (key_id, ciphertext, row_id, field); ``store(row, key_id, ciphertext)``
    saves the new value. Returns the counts ``re_encrypted``, ``already_current`` and ``failed`` (no
    configured key decrypts it: left as it is)."""
    ring = keyring or load_keyring()
    counts = {"re_encrypted": 0, "already_current": 0, "failed": 0}
    for row in rows:
        key_id, ciphertext, row_id, field = locate(row)
        if key_id == ring.primary_id:
            counts["already_current"] += 1
            continue
        try:
            plain = decrypt(key_id, ciphertext, row_id=row_id, field=field, keyring=ring)
        except DecryptionError:
            counts["failed"] += 1
            continue
        store(row, *encrypt(plain, row_id=row_id, field=field, keyring=ring))
        counts["re_encrypted"] += 1
    return counts

"""Signing secrets (Standard Webhooks ``whsec_`` + base64) and signatures; secrets at rest encrypted
with the project's keys (datasources.crypto), each bound to its webhook row."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from datasources import crypto
from webhooks.models import Webhook

PREFIX = "whsec_"
SECRET_BYTES = 24
MIN_BYTES, MAX_BYTES = 24, 64
FIELD = "webhook.signing_secret"  # the associated data's field: no data-source secret has this name


class SecretFormatError(ValueError):
    """A given secret that is not ``whsec_`` + base64 of 24 to 64 bytes."""


def generate_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64-decoded part after ``whsec_``; ``SecretFormatError`` otherwise."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise SecretFormatError(f"The secret must start with '{PREFIX}'.")
    body = secret[len(PREFIX):]
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise SecretFormatError(f"The secret must be '{PREFIX}' followed by standard base64.") from None
    if not MIN_BYTES <= len(key) <= MAX_BYTES:
        raise SecretFormatError(f"The secret must encode {MIN_BYTES} to {MAX_BYTES} random bytes.")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,`` + base64(HMAC-SHA256(id.timestamp.body))."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def store_secret(webhook: Webhook, secret: str) -> None:
    """Encrypt ``secret`` onto the (saved) row's fields; the caller saves them."""
    webhook.secret_key_id, webhook.secret_ciphertext = crypto.encrypt(secret, row_id=webhook.pk, field=FIELD)


def load_secret(webhook: Webhook) -> str:
    """The plaintext secret; ``crypto.DecryptionError`` when no configured key decrypts it."""
    return crypto.decrypt(webhook.secret_key_id, webhook.secret_ciphertext, row_id=webhook.pk, field=FIELD)


def rotate_all() -> dict[str, int]:
    """Re-encrypt every webhook secret with the newest key (registered with ``rotate_encryption_key``);
    call inside a transaction."""
    rows = Webhook.objects.select_for_update().only("pk", "secret_key_id", "secret_ciphertext").iterator()
    return crypto.rotate(
        rows, lambda w: (w.secret_key_id, w.secret_ciphertext, w.pk, FIELD),
        lambda w, key_id, ct: Webhook.objects.filter(pk=w.pk).update(secret_key_id=key_id, secret_ciphertext=ct))

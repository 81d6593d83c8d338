"""Reading and writing a data source's encrypted secrets."""

from __future__ import annotations

from collections.abc import Callable

from datasources import crypto
from datasources.models import Credential, DataSource

#: Re-encryptors of secrets kept outside ``datasources`` (webhook signing secrets): apps built on data
#: sources register theirs at startup, and ``rotate_encryption_key`` runs them all.
Rotator = Callable[[], dict[str, int]]
_rotators: list[Rotator] = []


def register_rotator(rotator: Rotator) -> None:
    if rotator not in _rotators:
        _rotators.append(rotator)


def registered_rotators() -> list[Rotator]:
    return list(_rotators)


def secret_names(data_source: DataSource) -> set[str]:
    """Names of the secrets that are set (uses a prefetch when there is one)."""
    return {c.field for c in data_source.credentials.all()}


def load_secrets(data_source: DataSource) -> dict[str, str]:
    """Decrypt every secret of the data source. Values that no longer decrypt are left out."""
    ring = crypto.load_keyring()
    out: dict[str, str] = {}
    for cred in Credential.objects.filter(data_source=data_source):
        try:
            out[cred.field] = crypto.decrypt(
                cred.key_id, cred.ciphertext, row_id=data_source.pk, field=cred.field, keyring=ring
            )
        except crypto.DecryptionError:
            continue
    return out


def write_secrets(data_source: DataSource, changes: dict[str, str | None]) -> None:
    """Set (str) or clear (None) secrets. Call inside the update transaction."""
    ring = crypto.load_keyring()
    for field, value in changes.items():
        if value is None:
            Credential.objects.filter(data_source=data_source, field=field).delete()
            continue
        key_id, ciphertext = crypto.encrypt(value, row_id=data_source.pk, field=field, keyring=ring)
        Credential.objects.update_or_create(
            data_source=data_source, field=field, defaults={"key_id": key_id, "ciphertext": ciphertext}
        )


def rotate_all() -> dict[str, int]:
    """Re-encrypt every secret with the newest key; returns counts."""

    def store(cred: Credential, key_id: str, ciphertext: str) -> None:
        cred.key_id, cred.ciphertext = key_id, ciphertext
        cred.save(update_fields=["key_id", "ciphertext", "updated_at"])

    return crypto.rotate(Credential.objects.select_for_update().iterator(),
                         lambda c: (c.key_id, c.ciphertext, c.data_source_id, c.field), store)

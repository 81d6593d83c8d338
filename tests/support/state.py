"""Helpers to compare the stored state of a data source before and after a request."""

from __future__ import annotations

from django.forms.models import model_to_dict

from datasources.models import Credential, DataSource, SchemaSnapshot


def stored_state(pk: int) -> dict:
    ds = DataSource.objects.get(pk=pk)
    row = model_to_dict(ds)
    row["updated_at"] = ds.updated_at
    creds = sorted(Credential.objects.filter(data_source_id=pk).values_list("field", "key_id", "ciphertext"))
    snaps = list(SchemaSnapshot.objects.filter(data_source_id=pk).values_list("version", flat=True))
    return {"row": row, "credentials": creds, "snapshots": snaps}

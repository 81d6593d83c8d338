"""A deleted data source takes the sealed bodies of its change-set items with it.

Items keep their row (``data_source`` becomes null, so the set's review still lists them and its
apply refuses them as stale) but not the PATCH body that may carry the source's secrets: a purge
leaves nothing of the source decryptable. Plans cascade with their source.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from changes.models import ChangeSetItem
from changes.services.common import FORGOTTEN
from datasources.models import DataSource


@receiver(pre_delete, sender=DataSource, dispatch_uid="changes.forget_items_of_deleted_source")
def forget_items_of_deleted_source(sender: Any, instance: DataSource, **kwargs: Any) -> None:
    ChangeSetItem.objects.filter(source_pk=instance.pk).exclude(**FORGOTTEN).update(**FORGOTTEN)

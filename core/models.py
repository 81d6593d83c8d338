"""Abstract model bases shared by the domain apps."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Tracked(models.Model):
    """Timestamps, who created/updated (user and/or token) and an integer version for ETags."""

    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_token = models.ForeignKey(
        "organizations.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by_token = models.ForeignKey(
        "organizations.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        abstract = True

    @property
    def etag(self) -> str:
        """The entity tag: primary key and version."""
        return f'"{self.pk}-{self.version}"'

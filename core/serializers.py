"""Strict DRF building blocks: no type coercion, unknown and read-only keys rejected by name."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class JSONObjectField(serializers.JSONField):
    """A JSON object (not an array or scalar), bounded in encoded size."""

    default_error_messages = {
        "not_object": "Expected a JSON object.",
        "too_large": "Too large: at most {max_bytes} bytes of JSON.",
    }

    def __init__(self, *args: Any, max_bytes: int = 16384, **kwargs: Any) -> None:
        self.max_bytes = max_bytes
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data: Any) -> dict:
        if not isinstance(data, dict):
            self.fail("not_object")
        if len(json.dumps(data)) > self.max_bytes:
            self.fail("too_large", max_bytes=self.max_bytes)
        return data


class StrictSerializer(serializers.Serializer):
    """Rejects keys that are not writable fields: read-only ones and unknown ones, each by name."""

    read_only_names: frozenset[str] = frozenset()

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        writable = {name for name, f in self.fields.items() if not f.read_only}
        errors: dict[str, Any] = {}
        for key in data:
            if key in writable:
                continue
            if key in self.read_only_names:
                errors[key] = ["This field is read-only."]
            else:
                errors[key] = ["Unknown field."]
        try:
            value = super().to_internal_value({k: v for k, v in data.items() if k in writable})
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            errors = {**exc.detail, **errors}
        if errors:
            raise serializers.ValidationError(errors)
        return value


class ActorSerializer(serializers.Serializer):
    """Who created or changed an object (``organizations.tracking.actor_of``): one `Actor` component for every app."""

    kind = serializers.ChoiceField(choices=["user", "token"])
    id = serializers.IntegerField()
    name = serializers.CharField()

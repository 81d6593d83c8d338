"""Form fields (and messages) the admin shares with the API's rules.

:class:`StrictJSONField` parses a JSON input with the API's own parser (``core.parsers.loads``):
NUL characters, lone surrogates, non-finite numbers, integers beyond 64 bits and nesting deeper
than ``REQUEST_JSON_MAX_DEPTH`` are refused with the API's messages, naming the path, instead of
being stored (and then breaking pages, the API's representation, or the database write).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput, JSONString
from rest_framework.exceptions import ParseError

from core.errors import ApiError, ErrorCode
from core.parsers import bad_text, clean_parsed, loads

#: A stale admin form (its ``version_seen`` is not the row's version any more): refused, nothing saved.
STALE_MESSAGE = ("This {what} was changed by someone else since you opened it. Reload the page and apply your "
                 "change again.")


def _messages(exc: ApiError) -> list[str]:
    """``path: message`` for each refused key or value (the value itself is never echoed)."""
    if not exc.errors:
        return [exc.message]
    return [message if path == "non_field_errors" else f"{path}: {message}"
            for path, messages in exc.errors.items() for message in messages]


def parse_strict(value: Any) -> Any:
    """``value`` (JSON text, or already-parsed data) as Python, by the API's rules; else a
    ``ValidationError`` naming each refused path."""
    try:
        if isinstance(value, str):
            # surrogatepass: a raw lone surrogate becomes bytes that ``loads`` names as invalid text
            return loads(value.encode("utf-8", "surrogatepass"))
        return clean_parsed(value)
    except ApiError as exc:
        raise ValidationError(_messages(exc), code="invalid") from None
    except ParseError as exc:
        raise ValidationError(str(exc.detail), code="invalid") from None


class StrictJSONField(forms.JSONField):
    """A ``forms.JSONField`` that accepts exactly what the API's JSON parser accepts."""

    def to_python(self, value: Any) -> Any:
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        converted = parse_strict(value)
        return JSONString(converted) if isinstance(converted, str) and isinstance(value, str) else converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        """A refused input is shown again as typed (never re-encoded with a lone surrogate in it)."""
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return parse_strict(data)
        except ValidationError:
            return InvalidJSONInput(data)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        if value is None:  # an empty input (not the text "null")
            return ""
        text = json.dumps(value, ensure_ascii=False, cls=self.encoder)
        # a value stored before these rules may hold a lone surrogate: escape it rather than fail the page
        return json.dumps(value, cls=self.encoder) if bad_text(text) else text

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return super().has_changed(initial, data)
        except ValidationError:
            return True


def state_hash(instance: Any, names: Any) -> str:
    """A short digest of ``instance``'s values of the fields ``names`` (what a change form shows)."""
    import hashlib

    values = {name: getattr(instance, name, None) for name in names}
    text = json.dumps(values, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class SeenStateForm(forms.ModelForm):
    """A change form for a model without a version: the editable fields' values when the page was
    opened travel in a hidden digest, and a save whose row holds other values now (another tab, a
    management command) is refused with :data:`STALE_MESSAGE`, instead of putting back what was shown."""

    seen_state = forms.CharField(required=False, widget=forms.HiddenInput)
    stale_what = "object"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["seen_state"] = state_hash(self.instance, self._guarded())

    def _guarded(self) -> list[str]:
        return [name for name in self.base_fields if name != "seen_state" and hasattr(self.instance, name)]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data  # the row is read when the POST arrives
        seen = data.get("seen_state")
        if self.instance.pk is not None and seen and seen != state_hash(self.instance, self._guarded()):
            raise ValidationError(STALE_MESSAGE.format(what=self.stale_what), code="stale")
        return data


class ServiceForm(forms.ModelForm):
    """A change form that saves through its model's services from ``clean()`` (as the data-source form
    does): what the service refuses lands on the form, and nothing is reported as saved. A change
    sends only the fields that changed, with the version the page was opened at (the API's If-Match),
    so a stale page is refused. Subclasses name ``service_fields`` and ``stale_what`` and implement
    ``actor``, ``create`` and ``update``; the admin sets ``request``."""

    request: Any = None
    version_seen = forms.IntegerField(required=False, widget=forms.HiddenInput)
    service_fields: tuple[str, ...] = ()
    stale_what = "object"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["version_seen"] = self.instance.version

    def _post_clean(self) -> None:
        """No model validation and no ``construct_instance``: the service validates and saves."""

    def actor(self, organization: Any) -> Any:
        raise NotImplementedError

    def create(self, actor: Any, body: dict[str, Any]) -> Any:
        raise NotImplementedError

    def update(self, actor: Any, body: dict[str, Any], if_match: str | None) -> Any:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        super().clean()  # ModelForm's: returns cleaned_data (the stub says it may be None)
        data = self.cleaned_data
        adding = self.instance.pk is None
        organization = data.get("organization") if adding else self.instance.organization
        if self.errors or organization is None:
            return data
        body = {key: data[key] for key in self.service_fields if adding or key in self.changed_data}
        if not body:
            return data
        actor = self.actor(organization)
        seen = data.get("version_seen")
        try:
            saved = (self.create(actor, body) if adding else
                     self.update(actor, body, f'"{self.instance.pk}-{seen}"' if seen else None))
        except ApiError as exc:
            self._service_error(exc)
            return data
        for field in type(self.instance)._meta.concrete_fields:  # the same object: inline formsets hold it
            setattr(self.instance, field.attname, getattr(saved, field.attname))
        self.instance._state.adding = False
        return data

    def _service_error(self, exc: ApiError) -> None:
        if exc.code == ErrorCode.PRECONDITION_FAILED:
            self.add_error(None, STALE_MESSAGE.format(what=self.stale_what))
            return
        if not exc.errors:
            self.add_error(None, exc.message)
        for key, messages in exc.errors.items():
            for message in messages:
                if key in self.fields:
                    self.add_error(key, message)
                else:
                    self.add_error(None, f"{key}: {message}")

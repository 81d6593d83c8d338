"""Helpers (not tests) for driving the admin's HTML forms as a browser would."""

from __future__ import annotations


def form_data(response) -> dict:
    """What a browser posts back from a rendered admin add or change form, unchanged (disabled
    fields are not posted; a checked box is "on", an unchecked one absent)."""
    form = response.context["adminform"].form
    data: dict = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        if field.__class__.__name__ == "BooleanField":
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    return data

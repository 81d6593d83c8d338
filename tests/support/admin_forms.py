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


def organization_page_data(page, rows: dict | None = None) -> dict:
    """What a browser posts back from an organization's change page, its settings and inline rows as
    shown, with ``rows`` applied: ``{membership or workspace pk: {field: value}}`` (``"DELETE": "on"``
    removes a row)."""
    rows = rows or {}
    data = {"slug": page.context["original"].slug, "name": page.context["original"].name}
    for name, value in page.context["adminform"].form.initial.items():  # the other settings, as shown
        if name not in data and value is not None and value is not False:
            data[name] = "on" if value is True else value
    for inline in page.context["inline_admin_formsets"]:
        fs = inline.formset
        data.update({f"{fs.prefix}-TOTAL_FORMS": fs.total_form_count(), f"{fs.prefix}-INITIAL_FORMS":
                     fs.initial_form_count(), f"{fs.prefix}-MIN_NUM_FORMS": 0, f"{fs.prefix}-MAX_NUM_FORMS": 1000})
        for i, form in enumerate(fs.forms):
            data[f"{fs.prefix}-{i}-id"] = form.instance.pk
            for name in ("user", "role", "name"):
                if name in form.fields:
                    value = form.instance.user_id if name == "user" else getattr(form.instance, name)
                    data[f"{fs.prefix}-{i}-{name}"] = value
            if fs.model.__name__ == "Membership":
                for name, value in rows.get(form.instance.pk, {}).items():
                    data[f"{fs.prefix}-{i}-{name}"] = value
    return data

"""The data-source admin form: catalogue-driven connection inputs, write-only secret inputs.

The form saves through the same services as the API (``create_data_source`` /
``update_data_source`` in PATCH mode, sending only what changed), from ``clean()``, so that
every validation error, failed connection test or conflict lands on the page as a form error
and nothing is saved. Plain fields are checked first by the services' field rules
(``datasources.fields``, the ones the API's serializer is built from), so the admin and the API accept
exactly the same values with the same messages.
"""

from __future__ import annotations

import copy
from typing import Any

from django import forms

from core.admin_forms import STALE_MESSAGE, StrictJSONField
from core.errors import ApiError, ErrorCode
from datasources import catalogue
from datasources import fields as rules
from datasources.models import DataSource
from datasources.services import tenancy
from datasources.services.credentials import secret_names
from datasources.services.datasources import (
    OPERATIONAL_DEFAULTS,
    WriteOptions,
    WriteResult,
    create_data_source,
    update_data_source,
)
from datasources.services.plan import validate_body
from organizations.actors import Actor, admin_actor
from organizations.models import Role, Workspace

CONNECTION = "connection"
CREDENTIALS = "credentials"
SEP = "__"
CLEAR_SUFFIX = "__clear"
EMPTY_SUFFIX = "__empty"  # "set an empty password" (a secret with ``allow_empty``)
OPS_FIELDS = list(OPERATIONAL_DEFAULTS)
PLAIN_FIELDS = ["name", "description", "workspace", *OPS_FIELDS]
TENANCY = "tenancy_settings"
TENANCY_FIELDS = [SEP.join((TENANCY, name)) for name in tenancy.FIELDS]


def merge_diff(old: Any, new: Any) -> dict:
    """The RFC 7396 merge patch that turns ``old`` into ``new`` (both dicts)."""
    old = old if isinstance(old, dict) else {}
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(old.get(key), dict):
            sub = merge_diff(old[key], value)
            if sub:
                patch[key] = sub
        elif key not in old or old[key] != value:
            patch[key] = copy.deepcopy(value)
    return patch


class SecretTextarea(forms.Textarea):
    """A textarea that never renders a value (not even the one just posted)."""

    def format_value(self, value: Any) -> None:
        return None


# --- catalogue -> form fields ---------------------------------------------------------------------


def connection_fields(fields: tuple[catalogue.Field, ...], prefix: tuple[str, ...] = ()):
    """Yield (form field name, path tuple, catalogue Field) for every leaf, objects flattened."""
    for f in fields:
        path = (*prefix, f.name)
        if f.kind == "object":
            yield from connection_fields(f.fields, path)
        else:
            yield SEP.join((CONNECTION, *path)), path, f


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _help(f: catalogue.Field | catalogue.SecretField) -> str:
    parts = [f.help] if f.help else []
    if f.required_when is not None:
        parts.append(f"Required when {f.required_when.describe()}.")
    return " ".join(parts)


def build_connection_field(f: catalogue.Field) -> forms.Field:
    common: dict[str, Any] = {"label": f.label, "help_text": _help(f),
                              "required": f.required and f.kind != "boolean"}
    if f.kind == "integer":
        return forms.IntegerField(min_value=f.min_value, max_value=f.max_value, **common)
    if f.kind == "boolean":
        return forms.BooleanField(**common)
    if f.kind == "enum":
        blank = [] if (f.required or f.has_default) else [("", "---------")]
        return forms.ChoiceField(choices=blank + [(c, c) for c in f.choices], **common)
    if f.kind == "string_list":
        common["help_text"] = " ".join(filter(None, [common["help_text"], "Comma-separated."]))
        return forms.CharField(**common)
    if f.kind in ("text", "pem"):
        return forms.CharField(max_length=f.max_length, widget=forms.Textarea(attrs={"rows": 4}), **common)
    return forms.CharField(max_length=f.max_length, **common)


def field_initial(f: catalogue.Field, value: Any) -> Any:
    if f.kind == "string_list" and isinstance(value, list):
        return ", ".join(value)
    return value


def field_value(f: catalogue.Field, value: Any) -> Any:
    """A cleaned form value as the JSON the catalogue expects (blank = absent)."""
    if f.kind == "string_list":
        items = [item.strip() for item in (value or "").replace("\n", ",").split(",")]
        return [item for item in items if item] or None
    if f.kind in ("string", "text", "pem", "enum"):
        return value or None
    return value


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _set(data: dict, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    if value is None:
        data.pop(path[-1], None)
    else:
        data[path[-1]] = value


def connection_fieldsets(source_type: catalogue.SourceType) -> list[tuple[str, dict]]:
    """Fieldsets for the type: top-level connection fields, then one per nested object."""
    top = [SEP.join((CONNECTION, f.name)) for f in source_type.fields if f.kind != "object"]
    sets: list[tuple[str, dict[str, Any]]] = [(f"Connection ({source_type.label})", {"fields": top})]
    for f in source_type.fields:
        if f.kind == "object":
            names = [name for name, _path, _f in connection_fields(f.fields, (f.name,))]
            sets.append((f"Connection: {f.label}", {"fields": names, "description": f.help}))
    if source_type.secrets:
        rows = [tuple(secret_field_name(s.name) + suffix
                      for suffix in ("", *((EMPTY_SUFFIX,) if s.allow_empty else ()), CLEAR_SUFFIX))
                for s in source_type.secrets]
        empty = (" Tick \"Set an empty password\" for a server user without password (an empty password is "
                 "stored as one; a blank input is not)." if any(s.allow_empty for s in source_type.secrets) else "")
        sets.append(("Credentials", {"fields": rows, "description": (
            "Write-only: values are never shown. Leave an input blank to keep the current value; "
            "tick Clear to remove it." + empty)}))
    return sets


def tenancy_form_fields() -> dict[str, forms.Field]:
    def choice(values: tuple[str, ...], blank: str, help_text: str = "") -> forms.ChoiceField:
        return forms.ChoiceField(required=False, choices=[("", blank)] + [(v, v) for v in values],
                                 help_text=help_text)

    fields: dict[str, forms.Field] = {
        "level": choice(tenancy.LEVELS, "No tenancy settings",
                        "TABLE: one table holds every client, told apart by a column; DATABASE: one per client."),
        "client_column_type": choice(tenancy.CLIENT_TYPES, "---------", "Required when level is TABLE."),
    }
    for name in tenancy.FIELDS[2:]:
        fields[name] = forms.CharField(required=False, max_length=255, help_text="Required when level is TABLE.")
    for name, field in fields.items():
        field.label = _label(name)
    return {SEP.join((TENANCY, name)): field for name, field in fields.items()}


def secret_field_name(name: str) -> str:
    return SEP.join((CREDENTIALS, name))


# --- the form -------------------------------------------------------------------------------------


class DataSourceForm(forms.ModelForm):
    """Built per request by the ModelAdmin, which sets ``source_type`` and ``request``."""

    source_type: catalogue.SourceType
    request: Any = None

    tags = forms.CharField(required=False, help_text="Comma-separated.")
    metadata = StrictJSONField(required=False, help_text="A JSON object.", initial=dict)
    skip_test = forms.BooleanField(
        required=False, label="Skip connection test",
        help_text="Save connection changes without testing them first (the status becomes 'Not tested yet').",
    )
    version_seen = forms.IntegerField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = DataSource
        fields = ["name", "organization", "workspace", "description", *OPS_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_result: WriteResult | None = None
        ds = self.instance
        adding = ds.pk is None
        stored = ds.connection if not adding else catalogue.connection_defaults(self.source_type)
        for name, path, f in connection_fields(self.source_type.fields):
            self.fields[name] = build_connection_field(f)
            self.initial.setdefault(name, field_initial(f, _get(stored, path)))
        present = set() if adding else secret_names(ds)
        for s in self.source_type.secrets:
            self._add_secret_fields(s, s.name in present)
        self.fields.update(tenancy_form_fields())
        for name, value in ((None if adding else tenancy.current(ds)) or {}).items():
            self.initial[SEP.join((TENANCY, name))] = value
        if not adding:
            self.initial["tags"] = ", ".join(ds.tags or [])
            self.initial["metadata"] = ds.metadata or {}
            self.initial["version_seen"] = ds.version
            workspace = self.fields.get("workspace")
            if isinstance(workspace, forms.ModelChoiceField):  # the foreign key's field, when the admin shows it
                workspace.queryset = Workspace.objects.filter(organization=ds.organization_id)
        self._align_plain_fields()

    def _align_plain_fields(self) -> None:
        """Plain inputs take their bounds from the field rules and leave the checking to them: a
        refused value reads as the API words it (not as Django's form field would)."""
        for name in PLAIN_FIELDS:
            spec, field = rules.BY_NAME[name], self.fields.get(name)
            if not isinstance(field, (forms.CharField, forms.IntegerField)):
                continue
            field.validators = []
            attrs = field.widget.attrs
            if spec.kind == "integer":
                for attr, bound in (("min", spec.min_value), ("max", spec.max_value)):
                    if bound is not None:
                        attrs[attr] = bound
            elif spec.max_length is not None:
                attrs["maxlength"] = str(spec.max_length)

    def _add_secret_fields(self, s: catalogue.SecretField, is_set: bool) -> None:
        attrs = {"autocomplete": "new-password"}
        if s.kind in ("pem", "json"):
            widget: forms.Widget = SecretTextarea(attrs={**attrs, "rows": 3})
        else:
            widget = forms.PasswordInput(render_value=False, attrs=attrs)
        state = "set" if is_set else "not set"
        required = "Required. " if s.required else ""
        keep = "Currently set: leave blank to keep it." if is_set else "Not set."
        self.fields[secret_field_name(s.name)] = forms.CharField(
            required=False, strip=False, widget=widget, label=f"{s.label} ({state})",
            help_text=" ".join(filter(None, [keep, required + _help(s)])),
        )
        if s.allow_empty:
            self.fields[secret_field_name(s.name) + EMPTY_SUFFIX] = forms.BooleanField(
                required=False, label=f"Set an empty {s.label.lower()}",
                help_text="The server accepts this user without a password: store the empty password "
                          "(leaving the input blank keeps the current value instead).",
            )
        self.fields[secret_field_name(s.name) + CLEAR_SUFFIX] = forms.BooleanField(
            required=False, label=f"Clear {s.label.lower()}", disabled=not is_set,
        )

    def clean_tags(self) -> list[str]:
        """Blank items dropped; repeats kept, for the field rules to refuse as the API does."""
        items = [t.strip() for t in (self.cleaned_data.get("tags") or "").split(",")]
        return [t for t in items if t]

    def clean_metadata(self) -> dict:
        value = self.cleaned_data.get("metadata")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object.")
        return value

    def _post_clean(self) -> None:
        """No model validation and no ``construct_instance``: the service validates and saves."""

    # --- building the request -------------------------------------------------------------------

    def _connection(self, adding: bool) -> dict:
        new = {} if adding else copy.deepcopy(self.instance.connection)
        for name, path, f in connection_fields(self.source_type.fields):
            if adding or name in self.changed_data:
                _set(new, path, field_value(f, self.cleaned_data.get(name)))
        return new

    def _credentials(self, present: set[str]) -> dict[str, str | None]:
        """A typed value replaces; "Set an empty ..." writes ``""``; Clear removes; else kept."""
        out: dict[str, str | None] = {}
        for s in self.source_type.secrets:
            name = secret_field_name(s.name)
            value, clear = self.cleaned_data.get(name) or "", self.cleaned_data.get(name + CLEAR_SUFFIX)
            empty = s.allow_empty and self.cleaned_data.get(name + EMPTY_SUFFIX)
            if sum(map(bool, (value, clear, empty))) > 1:
                self.add_error(name, "Enter a new value, set it empty or clear it: only one." if s.allow_empty
                               else "Enter a new value or clear it, not both.")
            elif clear and s.name in present:
                out[s.name] = None
            elif empty:
                out[s.name] = ""
            elif value:
                out[s.name] = value
        return out

    def _tenancy(self, adding: bool) -> dict[str, Any]:
        """``{"tenancy_settings": {...} | None}`` when they changed (blank level = remove them)."""
        if not adding and not set(TENANCY_FIELDS) & set(self.changed_data):
            return {}
        values: dict[str, Any] = {
            name.removeprefix(TENANCY + SEP): self.cleaned_data.get(name) or "" for name in TENANCY_FIELDS
        }
        values["client_column_type"] = values["client_column_type"] or None  # a choice: blank is "none"
        if values["level"]:
            return {TENANCY: values}
        return {} if adding or tenancy.current(self.instance) is None else {TENANCY: None}

    def _plain(self, adding: bool) -> dict[str, Any]:
        ds, cd = self.instance, self.cleaned_data
        plain: dict[str, Any] = {}
        for key in PLAIN_FIELDS:
            if key in self.fields and (adding or key in self.changed_data):
                value = cd.get(key)
                plain[key] = value.pk if isinstance(value, Workspace) else value
        if adding or cd["tags"] != (ds.tags or []):
            plain["tags"] = cd["tags"]
        if adding:
            plain["metadata"] = cd["metadata"]
        elif cd["metadata"] != (ds.metadata or {}):
            plain["metadata"] = merge_diff(ds.metadata, cd["metadata"])
        try:
            validated = validate_body(plain, "create" if adding else "patch")
        except ApiError as exc:
            for path, messages in exc.errors.items():
                key = path.split(".")[0]
                for message in messages:
                    self.add_error(key if key in self.fields else None, message)
            return {}
        if "metadata" in plain:
            validated["metadata"] = plain["metadata"]  # keep the merge patch's nulls
        return validated

    def clean(self) -> dict[str, Any]:
        super().clean()  # ModelForm's: returns cleaned_data (the stub says it may be None)
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        adding = self.instance.pk is None
        organization = cleaned.get("organization") if adding else self.instance.organization
        if organization is None:
            return cleaned
        actor = admin_actor(self.request, organization)
        if actor.role == Role.VIEWER and not self.request.user.is_superuser:
            raise forms.ValidationError("Your role in this organization (viewer) does not allow changes.")
        data = self._plain(adding)
        present = set() if adding else secret_names(self.instance)
        credentials = self._credentials(present)
        connection = self._connection(adding)
        data.update(self._tenancy(adding))
        if self.errors:
            return cleaned
        if adding:
            data.update(type=self.source_type.key, connection=connection, credentials=credentials)
        else:
            patch = merge_diff(self.instance.connection, connection)
            if patch:
                data["connection"] = patch
            if credentials:
                data["credentials"] = credentials
            if not data:
                return cleaned  # nothing changed
        self._save(actor, data, adding)
        return cleaned

    def _save(self, actor: Actor, data: dict[str, Any], adding: bool) -> None:
        options = WriteOptions(test_connection=not self.cleaned_data.get("skip_test"))
        try:
            if adding:
                result = create_data_source(actor=actor, data=data, options=options)
            else:
                seen = self.cleaned_data.get("version_seen")
                if seen:
                    options.if_match = f'"{self.instance.pk}-{seen}"'
                result = update_data_source(actor=actor, data_source_id=self.instance.pk, data=data,
                                            mode="patch", options=options)
        except ApiError as exc:
            self._service_error(exc)
            return
        self.write_result = result
        self.instance = result.data_source

    def _service_error(self, exc: ApiError) -> None:
        if exc.code == ErrorCode.PRECONDITION_FAILED:
            self.add_error(None, STALE_MESSAGE.format(what="data source"))
            return
        if exc.code in (ErrorCode.CREDENTIAL_TEST_FAILED, ErrorCode.CONNECTOR_UNAVAILABLE) or not exc.errors:
            stage = exc.extra.get("stage")
            suffix = f" (stage: {stage})" if stage and f"'{stage}'" not in exc.message else ""
            self.add_error(None, f"{exc.message}{suffix}")
        for path, messages in exc.errors.items():
            name = path.replace(".", SEP)
            for message in messages:
                if name in self.fields:
                    self.add_error(name, message)
                else:
                    self.add_error(None, f"{path}: {message}")

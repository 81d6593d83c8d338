"""The catalogue engine's vocabulary: field, secret and source-type declarations.

The per-type declarations (``types_*.py``) are written with these classes; ``validation`` and
``openapi`` read them. Pure Python (no Django imports) so it can be used from serializers, the
admin and tests alike.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from datasources.catalogue.checks import CHECKS

FIELD_KINDS = frozenset({"string", "text", "integer", "boolean", "enum", "object", "pem", "string_list"})
SECRET_KINDS = frozenset({"password", "pem", "json", "token"})
DEFAULT_MAX_LENGTH = {"string": 1000, "text": 100_000, "pem": 100_000, "string_list": 1000}
SECRET_MAX_LENGTH = 100_000
PEM_MARKER = "-----BEGIN"

REQUIRED = "This field is required."
BLANK = "This field may not be blank."
#: A secret that may be the empty string (``SecretField.allow_empty``) is still never only whitespace.
WHITESPACE_ONLY = "May be empty (\"\"), but not only whitespace."
UNKNOWN = "Unknown field."

#: How a connection field bears on where or how the stored secrets travel (``Field.transit``).
#: The update service refuses a change of such a field, for non-admins, unless the secrets that
#: would travel the changed hop are resent in the same request.
ENDPOINT = "endpoint"  # any change sends the secrets elsewhere: host, port, URL, account, region, CA pin
PROTECTION = "protection"  # a change to a weaker value (``Field.strength``, weakest first) lowers TLS
TRANSITS = frozenset({"", ENDPOINT, PROTECTION})
#: Hops a secret travels: the database's own, or the SSH bastion's (``SecretField.hop``). The
#: connection object named ``TUNNEL_FIELD`` describes the SSH hop.
DATABASE_HOP, SSH_HOP = "database", "ssh"
TUNNEL_FIELD = "ssh_tunnel"


def _fmt(value: Any) -> str:
    return json.dumps(value) if value is None or isinstance(value, bool) else str(value)


def _same(a: Any, b: Any) -> bool:
    """Equality that does not confuse True with 1 or False with 0."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Condition:
    """A test on the value at a dotted ``path`` of the (normalized) connection dict."""

    path: str
    in_: tuple[Any, ...] = ()
    not_in: tuple[Any, ...] = ()

    def holds(self, connection: dict) -> bool:
        value = _lookup(connection, self.path)
        if self.in_ and not any(_same(value, v) for v in self.in_):
            return False
        return not any(_same(value, v) for v in self.not_in)

    def describe(self) -> str:
        parts = []
        for values, verb in ((self.in_, "is"), (self.not_in, "is not")):
            if tuple(values) == (None,) and verb == "is not":
                parts.append(f"{self.path} is set")
            elif len(values) == 1:
                parts.append(f"{self.path} {verb} {_fmt(values[0])}")
            elif values:
                parts.append(f"{self.path} {verb} one of {', '.join(_fmt(v) for v in values)}")
        return " and ".join(parts) or "always"

    def as_dict(self) -> dict:
        return {"path": self.path, "in": list(self.in_), "not_in": list(self.not_in),
                "description": self.describe()}


def _cond(condition: Condition | None) -> dict | None:
    return condition.as_dict() if condition else None


@dataclass(frozen=True)
class Check:
    """A named value check (``checks.CHECKS``: a form a pattern cannot say, such as a decoded Elastic
    Cloud ID) on a field's value, applied when ``when`` holds on the normalized connection (or always)."""

    name: str
    when: Condition | None = None

    def __post_init__(self) -> None:
        if self.name not in CHECKS:
            raise ValueError(f"unknown check {self.name!r}")

    def describe(self) -> str:
        rule = f"must be {CHECKS[self.name].describes}."
        return f"When {self.when.describe()}: {rule}" if self.when else rule[0].upper() + rule[1:]


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    label: str = ""
    required: bool = False
    required_when: Condition | None = None
    default: Any = None
    choices: tuple[str, ...] = ()
    min_value: int | None = None
    max_value: int | None = None
    max_length: int | None = None
    fields: tuple[Field, ...] = ()
    help: str = ""
    affects_connection: bool = True
    pattern: str = ""  # regex searched in string values (JSON Schema ``pattern`` semantics)
    pattern_message: str = ""  # what to say when the pattern does not match
    transit: str = ""  # ENDPOINT or PROTECTION: the field steers where or how secrets travel
    strength: tuple[Any, ...] = ()  # with PROTECTION: the values from weakest to strongest
    checks: tuple[Check, ...] = ()  # named value checks beyond ``pattern`` (``checks.CHECKS``)
    # The default follows other fields: the first (condition, value) whose condition holds on the
    # normalized connection gives the default of an absent value, else ``default``.
    defaults_when: tuple[tuple[Condition, Any], ...] = ()
    # When this holds the field is not used: a value other than its default is refused (a default
    # filled in earlier, or sent again, is accepted and ignored).
    only_default_when: Condition | None = None

    def __post_init__(self) -> None:
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"{self.name}: unknown field kind {self.kind!r}")
        if self.transit not in TRANSITS or (self.transit == PROTECTION) != bool(self.strength):
            raise ValueError(f"{self.name}: transit {self.transit!r} with strength {self.strength!r}")
        if self.kind == "enum" and not self.choices:
            raise ValueError(f"{self.name}: enum field without choices")
        if self.kind == "enum" and self.default is not None and self.default not in self.choices:
            raise ValueError(f"{self.name}: default not among choices")
        if self.kind == "object" and not self.fields:
            raise ValueError(f"{self.name}: object field without fields")
        if (self.defaults_when or self.only_default_when) and (self.kind == "object" or not self.has_default):
            raise ValueError(f"{self.name}: defaults_when and only_default_when need a plain field with a default")
        if not self.label:
            object.__setattr__(self, "label", _label(self.name))
        if self.max_length is None and self.kind in DEFAULT_MAX_LENGTH:
            object.__setattr__(self, "max_length", DEFAULT_MAX_LENGTH[self.kind])

    @property
    def has_default(self) -> bool:
        return self.default is not None

    def default_for(self, connection: dict) -> Any:
        """The default of an absent value, given the (normalized) connection."""
        value = next((v for condition, v in self.defaults_when if condition.holds(connection)), self.default)
        return copy.deepcopy(value)

    def rules_text(self) -> list[str]:
        """The declared rules a pattern or a default does not show, in words (help and OpenAPI text)."""
        out = []
        if self.defaults_when:
            cases = ", ".join(f"{_fmt(v)} when {c.describe()}" for c, v in self.defaults_when)
            out.append(f"Default: {cases}, else {_fmt(self.default)}.")
        if self.only_default_when is not None:
            out.append(f"Not used when {self.only_default_when.describe()}: "
                       f"only its default ({_fmt(self.default)}) is accepted then.")
        out.extend(check.describe() for check in self.checks)
        return out

    def full_help(self) -> str:
        return " ".join(filter(None, [self.help, *self.rules_text()]))

    def as_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "label": self.label, "required": self.required,
            "required_when": _cond(self.required_when), "default": copy.deepcopy(self.default),
            "choices": list(self.choices), "min_value": self.min_value, "max_value": self.max_value,
            "max_length": self.max_length, "pattern": self.pattern or None, "help": self.full_help(),
            "affects_connection": self.affects_connection, "transit": self.transit or None,
            "fields": [f.as_dict() for f in self.fields],
        }


@dataclass(frozen=True)
class SecretField:
    """A write-only secret. Written as a string (a new value), ``null`` (cleared) or not at all (kept).

    ``allow_empty``: the exact empty string ``""`` is a value of its own, "the secret is the empty
    string" (stored, encrypted and listed in ``credentials_set`` like any other), for a password the
    server may accept empty (a MySQL user without password, PostgreSQL ``trust``). Only for an
    optional password: a required secret is never satisfied by nothing. Whitespace-only values
    stay refused; every other secret refuses blank values.
    """

    name: str
    label: str = ""
    kind: str = "password"
    required: bool = False
    required_when: Condition | None = None
    help: str = ""
    hop: str = DATABASE_HOP  # the hop this secret travels: the database's, or the SSH bastion's
    allow_empty: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SECRET_KINDS:
            raise ValueError(f"{self.name}: unknown secret kind {self.kind!r}")
        if self.hop not in (DATABASE_HOP, SSH_HOP):
            raise ValueError(f"{self.name}: unknown hop {self.hop!r}")
        if self.allow_empty and (self.kind != "password" or self.required or self.required_when is not None):
            raise ValueError(f"{self.name}: allow_empty is for an optional password only")
        if not self.label:
            object.__setattr__(self, "label", _label(self.name))

    def as_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "kind": self.kind, "required": self.required,
                "required_when": _cond(self.required_when), "help": self.help, "hop": self.hop,
                "allow_empty": self.allow_empty}


@dataclass(frozen=True)
class OneOfSecrets:
    """At least one of ``names`` must be set (when ``when`` holds, or always)."""

    names: tuple[str, ...]
    when: Condition | None = None

    def message(self) -> str:
        msg = f"One of {', '.join(self.names)} is required"
        return f"{msg} when {self.when.describe()}." if self.when else f"{msg}."

    def as_dict(self) -> dict:
        return {"names": list(self.names), "when": _cond(self.when), "description": self.message()}


ExtraCheck = Callable[[dict], dict[str, list[str]]]


@dataclass(frozen=True)
class SourceType:
    key: str
    label: str
    family: str
    connector: str
    driver_extra: str
    fields: tuple[Field, ...]
    secrets: tuple[SecretField, ...]
    secret_rules: tuple[OneOfSecrets, ...] = ()
    file_based: bool = False
    # Cross-field rules run on the normalized connection; they return errors keyed by paths
    # relative to the connection (e.g. ``{"disable_auth": ["..."]}``).
    extra_checks: tuple[ExtraCheck, ...] = dc_field(default=(), compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        secrets = [s.name for s in self.secrets]
        if len(set(names)) != len(names) or len(set(secrets)) != len(secrets):
            raise ValueError(f"{self.key}: duplicate field or secret name")
        for rule in self.secret_rules:
            if not set(rule.names) <= set(secrets):
                raise ValueError(f"{self.key}: secret rule names an undeclared secret")

    def field(self, name: str) -> Field | None:
        """The connection field called ``name``; a dotted name reaches into objects (``ssl.mode``)."""
        found: Field | None = None
        fields = self.fields
        for part in name.split("."):
            found = next((f for f in fields if f.name == part), None)
            if found is None:
                return None
            fields = found.fields
        return found

    def secret(self, name: str) -> SecretField | None:
        return next((s for s in self.secrets if s.name == name), None)

    def secret_names(self) -> set[str]:
        return {s.name for s in self.secrets}

    def transit_fields(self) -> dict[str, Field]:
        """Dotted path -> field, for every field that steers where or how secrets travel."""
        found: dict[str, Field] = {}
        stack = [("", f) for f in self.fields]
        while stack:
            prefix, f = stack.pop()
            path = prefix + f.name
            if f.transit:
                found[path] = f
            stack.extend((path + ".", child) for child in f.fields)
        return found

    def as_dict(self) -> dict:
        """The JSON-able description served by the type-catalogue endpoint."""
        return {
            "key": self.key, "label": self.label, "family": self.family, "connector": self.connector,
            "driver_extra": self.driver_extra, "file_based": self.file_based,
            "connection_fields": [f.as_dict() for f in self.fields],
            "secret_fields": [s.as_dict() for s in self.secrets],
            "secret_rules": [r.as_dict() for r in self.secret_rules],
        }


class ConfigInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("Invalid configuration: " + ", ".join(sorted(errors)))

"""The catalogue's cross-field rules as OpenAPI 3.0 schema (no ``if``/``then`` there: ``not`` + ``anyOf``).

What the server refuses, the request schemas refuse too, so that a client (or a fuzzer) can tell a
valid body from the contract alone:

- required strings are not blank (``pattern: NOT_BLANK``), required lists not empty;
- "required when" connection fields (SSH host when the tunnel is on, Elasticsearch's cloud id vs
  server URL...) and the type's own cross-field checks;
- secrets: required ones, "required when" ones and "one of" rules. On create they must be in the
  body; on PUT omitted secrets are kept, so only the stored state can tell, and the schema says so
  in words (``replace``).

Every rule is one member of the ``anyOf`` inside a single ``not``: "no rule is violated". A ``not``
(rather than a top-level ``oneOf``/``anyOf``) keeps code generators emitting one model per type.
Conditions hold on the *normalized* connection, so an absent or ``null`` field counts as its default.
"""

from __future__ import annotations

from typing import Any

from core.openapi import JSON_OBJECT, NOT_BLANK
from datasources import catalogue
from datasources.catalogue import Condition, Field, SourceType

JSON_TYPES = {"string": "string", "text": "string", "pem": "string", "enum": "string", "integer": "integer",
              "boolean": "boolean", "string_list": "array", "object": "object"}


def _at(path: str, leaf: dict[str, Any]) -> dict[str, Any]:
    """``leaf`` holds for the value at the dotted ``path``, which is present."""
    schema = leaf
    for part in reversed(path.split(".")):
        schema = {"required": [part], "properties": {part: schema}}
    return schema


def _set(source_type: SourceType, path: str) -> dict[str, Any]:
    """The field at ``path`` is present and not null."""
    field = source_type.field(path)
    assert field is not None, f"{source_type.key}: no field {path}"
    return _at(path, {"type": JSON_TYPES[field.kind]})


def _normalized_in(source_type: SourceType, path: str, values: tuple[Any, ...]) -> dict[str, Any]:
    """The normalized value at ``path`` (an absent or null value is the default) is one of ``values``."""
    field = source_type.field(path)
    assert field is not None, f"{source_type.key}: no field {path}"
    present = [v for v in values if v is not None]
    options = [_at(path, {"enum": present})] if present else []
    default = field.default
    if any(catalogue._same(default, v) for v in values):
        options.append({"not": _set(source_type, path)})
    if not options:
        return {"not": {}}  # never
    return options[0] if len(options) == 1 else {"anyOf": options}


def _negate(schema: dict[str, Any]) -> dict[str, Any]:
    return schema["not"] if schema.keys() == {"not"} else {"not": schema}


def condition_schema(source_type: SourceType, condition: Condition) -> dict[str, Any]:
    """The connection object satisfies ``condition``."""
    parts = []
    if condition.in_:
        parts.append(_normalized_in(source_type, condition.path, condition.in_))
    if condition.not_in:
        parts.append(_negate(_normalized_in(source_type, condition.path, condition.not_in)))
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"allOf": parts}


def holds_on_defaults(condition: Condition | None, source_type: SourceType) -> bool:
    return condition is None or condition.holds(catalogue.connection_defaults(source_type))


def _filled(field: Field) -> dict[str, Any]:
    if field.kind in ("string", "text"):
        return {"type": "string", "pattern": NOT_BLANK}
    if field.kind == "string_list":
        return {"type": "array", "minItems": 1}
    return {"type": JSON_TYPES[field.kind]}


def _walk(fields: tuple[Field, ...], prefix: str = ""):
    for f in fields:
        yield prefix + f.name, f
        if f.kind == "object":
            yield from _walk(f.fields, f"{prefix}{f.name}.")


def untitled(schema: Any) -> Any:
    """A copy without ``title`` on object schemas: code generators name a model after its title, so
    ``PostgresqlConnection`` titled "PostgreSQL connection" became a class no ``$ref`` could find.
    The label moves to the description when there is none; nested objects are then named after
    their parent and property (``PostgresqlConnectionSsl``)."""
    if isinstance(schema, list):
        return [untitled(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: untitled(value) for key, value in schema.items()}
    if out.get("type") == "object" and "title" in out:
        title = out.pop("title")
        out.setdefault("description", title)
    return out


def pem_patterns(credentials: dict[str, Any]) -> dict[str, Any]:
    """PEM secrets (keys) must hold a ``-----BEGIN`` block, as the PEM connection fields already say."""
    for field in credentials.get("properties", {}).values():
        if field.get("format") == "pem":
            field.setdefault("pattern", "-----BEGIN")
    return credentials


# --- connection ------------------------------------------------------------------------------------

# The types' ``extra_checks`` are code: their schema counterparts are written here, one per check.
def _disable_auth_only_self_managed(source_type: SourceType) -> dict[str, Any]:
    return {"allOf": [_normalized_in(source_type, "disable_auth", (True,)),
                      {"not": _normalized_in(source_type, "server_type", ("self-managed",))}]}


EXTRA_CHECK_RULES = {"_disable_auth_only_self_managed": _disable_auth_only_self_managed}


def connection_violations(source_type: SourceType) -> list[dict[str, Any]]:
    """One schema per way a connection object breaks a "required when" rule or an extra check."""
    out = []
    for path, field in _walk(source_type.fields):
        condition = field.required_when
        if condition is None or field.required or (field.has_default and not catalogue._is_blank(field.default)):
            continue
        out.append({"allOf": [condition_schema(source_type, condition), {"not": _at(path, _filled(field))}]})
    for check in source_type.extra_checks:
        out.append(EXTRA_CHECK_RULES[check.__name__](source_type))
    return out


def _not_blank_properties(schema: dict[str, Any], fields: tuple[Field, ...]) -> None:
    """Required string fields refuse blank values, required lists empty ones."""
    for field in fields:
        prop = schema.get("properties", {}).get(field.name)
        if prop is None:
            continue
        if field.kind == "object":
            _not_blank_properties(prop, field.fields)
        elif field.required and field.kind in ("string", "text") and "pattern" not in prop:
            prop["pattern"] = NOT_BLANK
        elif field.required and field.kind == "string_list":
            prop["minItems"] = 1


def explicit_violations(source_type: SourceType) -> list[dict[str, Any]]:
    """A merge patch that itself sets a condition *and* blanks (or nulls) the field it requires."""
    out = []
    for path, field in _walk(source_type.fields):
        condition = field.required_when
        if condition is None or field.required or field.kind == "object":
            continue
        parts = []
        present_in = [v for v in condition.in_ if v is not None]
        if condition.in_ and not present_in:
            continue  # holds only when the value is absent: that is up to the stored connection
        if present_in:
            parts.append(_at(condition.path, {"enum": present_in}))
        if condition.not_in:
            parts.append(_at(condition.path, {"not": {"enum": [v for v in condition.not_in if v is not None]
                                                      or [None]}}))
            parts.append(_set(source_type, condition.path))
        out.append({"allOf": [*parts, _at(path, {"not": _filled(field)})]})
    return out


def refine_connection(schema: dict[str, Any], source_type: SourceType, *, partial: bool) -> dict[str, Any]:
    """``<T>Connection`` (``partial``: ``Patched<T>Connection``, merged into the stored one first, so
    only what the patch says itself can be checked: a condition it sets with a field it blanks)."""
    _not_blank_properties(schema, source_type.fields)
    violations = explicit_violations(source_type) if partial else connection_violations(source_type)
    if violations:
        schema["not"] = {"anyOf": violations,
                         "description": "A field required by another field's value is missing or blank."}
    return schema


#: A JSON secret holds a JSON object: the pattern says as much as a pattern can (``format: json`` says
#: the rest), so that no generator nor client takes ``"0"`` for one.


def refine_credentials(schema: dict[str, Any]) -> dict[str, Any]:
    """A secret is never blank (``null`` clears it), except that one with ``minLength: 0`` (the
    catalogue's ``allow_empty`` password) may be exactly ``""``; a JSON one is an object."""
    for prop in schema.get("properties", {}).values():
        if prop.get("format") == "json":
            prop["pattern"] = JSON_OBJECT
        elif "pattern" not in prop:
            prop["pattern"] = catalogue.empty_or(NOT_BLANK) if prop.get("minLength") == 0 else NOT_BLANK
    return schema


# --- secrets on create -------------------------------------------------------------------------------


def _has_secret(name: str) -> dict[str, Any]:
    return {"required": ["credentials"],
            "properties": {"credentials": {"required": [name], "properties": {name: {"type": "string"}}}}}


def _connection_holds(source_type: SourceType, condition: Condition | None) -> dict[str, Any]:
    """The body's connection (absent: all defaults) satisfies ``condition``."""
    if condition is None:
        return {}
    inner = {"properties": {"connection": condition_schema(source_type, condition)}}
    if holds_on_defaults(condition, source_type):
        return inner
    return {"required": ["connection"], **inner}


def _cleared(name: str) -> dict[str, Any]:
    """The body clears the secret: an explicit null, whatever else it says."""
    return {"required": ["credentials"], "properties": {"credentials": {
        "required": [name], "properties": {name: {"not": {"type": "string"}}}}}}


def cleared_violations(source_type: SourceType) -> list[dict[str, Any]]:
    """PUT keeps the secrets it omits, but a ``null`` clears one: never one the type needs."""
    out = []
    for secret in source_type.secrets:
        if secret.required:
            out.append(_cleared(secret.name))
        elif secret.required_when is not None:
            out.append({"allOf": [_connection_holds(source_type, secret.required_when), _cleared(secret.name)]})
    for rule in source_type.secret_rules:
        out.append({"allOf": [_connection_holds(source_type, rule.when), *(_cleared(n) for n in rule.names)]})
    return [{"allOf": [part for part in v["allOf"] if part]} if "allOf" in v else v for v in out]


def secret_violations(source_type: SourceType, *, connection_string: bool) -> list[dict[str, Any]]:
    """One schema per way a *create* body misses a secret the type requires.

    A connection string may carry the password, so with one the schema does not insist on that one.
    """

    def unless(names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"not": {"required": ["connection_string"]}}] if connection_string and "password" in names else []

    out = []
    for secret in source_type.secrets:
        if secret.required:
            out.append({"allOf": [*unless((secret.name,)), {"not": _has_secret(secret.name)}]})
            if unless((secret.name,)):
                out.append({"allOf": [_cleared(secret.name)]})
        elif secret.required_when is not None:
            out.append({"allOf": [*unless((secret.name,)), _connection_holds(source_type, secret.required_when),
                                  {"not": _has_secret(secret.name)}]})
    for rule in source_type.secret_rules:
        out.append({"allOf": [*unless(rule.names), _connection_holds(source_type, rule.when),
                              *({"not": _has_secret(name)} for name in rule.names)]})
    return [{"allOf": [part for part in v["allOf"] if part]} for v in out]


def secrets_description(source_type: SourceType) -> str:
    parts = [f"`{s.name}`" for s in source_type.secrets if s.required]
    parts += [f"`{s.name}` when {s.required_when.describe()}" for s in source_type.secrets
              if not s.required and s.required_when is not None]
    parts += [rule.message().rstrip(".").replace("One of ", "one of ") for rule in source_type.secret_rules]
    return "; ".join(parts)

"""maiascore (seed 004): ``PUT /datasources/{id}`` "update and test a new connection".

Bodies in JSON, XML or form encoding (or JSON sent as form, like the seed's snippets). JSON values are
typed as natively (strings, booleans or null; a port a string or an integer); form pairs and XML
elements are text (``parsers.TextFields``) and read as text. The seed's fields replace the
connection's as a whole (omitted ones return to their defaults); omitted secrets are kept, ``null``
clears one (JSON only: form and XML values are text); secrets are never echoed. An empty password is
a value of its own where the server may accept one (mysql, mariadb, singlestore, postgres):
``"password": ""``, form ``password=``, XML ``<password/>`` or ``<password></password>``. Errors are
``{code, message}`` with ``code`` the HTTP status. A pinned SSH host key (no maiascore field) is kept
while the SSH host and port stay, and re-pinned when they change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.compat import Codec, ErrorShape, Field, IfAny, JSONParser, SeedInvalidRequest, SeedRequest, Slot, Table, parse
from core.errors import ApiError
from core.openapi import NOT_BLANK
from core.serializers import StrictBooleanField, StrictCharField
from datasources import catalogue
from datasources.catalogue import PEM_MARKER
from datasources.compat import common
from datasources.compat.parsers import FormOrJSONParser, TextFields, TextXMLParser, XMLParser
from datasources.models import DataSource

TAG = "compat: maiascore"

#: maiascore ``driver`` -> catalogue type key (``postgresql`` is accepted as an alias of ``postgres``)
DRIVERS: dict[str, str] = {
    "mysql": "mysql", "mariadb": "mariadb", "singlestore": "singlestore", "postgres": "postgresql",
    "redshift": "redshift", "cockroachdb": "cockroachdb", "supabase": "supabase",
}
ALIASES = {"postgresql": "postgres"}
MYSQL_DRIVERS = ("mysql", "mariadb", "singlestore")
#: A TCP port as the seed sends it: a decimal string from 1 to 65535 (leading zeros allowed).
PORT_PATTERN = r"^0*(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})$"


def driver_for(type_key: str) -> str:
    """The maiascore driver of a catalogue type; 400 when maiascore has none."""
    driver = next((name for name, key in DRIVERS.items() if key == type_key), None)
    if driver is None:
        raise SeedInvalidRequest(f"This data source's type '{type_key}' has no maiascore driver "
                                 f"(drivers: {', '.join(DRIVERS)}).", errors={"driver": ["No maiascore driver."]})
    return driver


def driver_type(driver: str) -> str:
    return DRIVERS[ALIASES.get(driver, driver)]


def _empty_password_allowed(driver: str) -> bool:
    secret = catalogue.get_type(driver_type(driver)).secret("password")
    return secret is not None and secret.allow_empty


#: drivers whose password may be the empty string (the catalogue's ``allow_empty``: a server user
#: without password); the others (redshift, cockroachdb, supabase) require a password, never ""
EMPTY_PASSWORD_DRIVERS = tuple(name for name in DRIVERS if _empty_password_allowed(name))
NO_EMPTY_PASSWORD_DRIVERS = tuple(name for name in (*DRIVERS, *ALIASES) if not _empty_password_allowed(name))
EMPTY_HELP = ('`""` is an empty password (a server user without password; drivers '
              f'{", ".join(EMPTY_PASSWORD_DRIVERS)}), distinct from omitting it (kept); form: `password=`, '
              "XML: `<password/>` or `<password></password>`.")


def _port(value: Any) -> Any:
    """"5432" -> 5432; anything else is left for the catalogue to refuse by name."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,10}", value):  # ASCII digits: int() refuses '²'
        return int(value)
    return value


#: a port as the seed's text
PORT = Codec(_port, lambda port: None if port is None else str(port))
#: a port that is no integer, in the seed's terms (the seed's port is a string): the catalogue's
#: "Must be an integer." would name the native type
PORT_MESSAGE = 'Must be a port: a string of digits from "1" to "65535" (or an integer).'
NATIVE_PORTS = ("connection.port", "connection.ssh_tunnel.port")

#: In a form or XML body (text: no null there) a blank value is no value, as null is in JSON: a
#: connection field returns to its default (PUT replaces the connection), e.g. ``sshPort=`` is 22 and
#: ``certificate=`` none. These keys are left out instead: ``driver`` (the source's type) and the
#: secrets other than the password (a blank one is kept, as an omitted one is: text cannot clear a
#: secret, JSON null does)
BLANK_IS_OMITTED = frozenset({"driver", "keyfile", "sshPassword", "sshIdentity"})
#: ... and these keep their blank value: ``password=`` is the empty password (README), and ``host``
#: and ``username``, required by every driver, are refused as blank ("This field may not be blank.")
BLANK_IS_KEPT = frozenset({"password", "host", "username"})


def blank_is_no_value(body: Mapping[str, Any]) -> dict[str, Any]:
    """A form or XML body with its blank values read as no value (``BLANK_IS_OMITTED``, ``BLANK_IS_KEPT``).
    Blank is empty or whitespace only, except for the passwords, whose whitespace is a value (refused)."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        blank = isinstance(value, str) and (value == "" if key in XMLParser.verbatim else not value.strip())
        if not blank or key in BLANK_IS_KEPT:
            out[key] = value
        elif key not in BLANK_IS_OMITTED:
            out[key] = None
    return out


def one_tunnel_flag(body: dict[str, Any]) -> dict[str, Any]:
    """``ssh`` is an alias of ``sshTunneling``: when both are sent they must agree."""
    ssh, tunneling = body.pop("ssh", None), body.pop("sshTunneling", None)
    if ssh is not None and tunneling is not None and ssh != tunneling:
        raise SeedInvalidRequest("ssh and sshTunneling must agree.", errors={"sshTunneling": ["Must equal ssh."]})
    if ssh is not None or tunneling is not None:
        body["sshTunneling"] = tunneling if tunneling is not None else ssh
    return body


def _ssh_port_default(type_key: str) -> Any:
    tunnel = next((f for f in catalogue.get_type(type_key).fields if f.name == "ssh_tunnel"), None)
    return next((f.default for f in tunnel.fields if f.name == "port"), None) if tunnel else None


def unpin_another_bastion(ds: DataSource, native: dict[str, Any]) -> dict[str, Any]:
    """A pinned SSH host key (``ssh_tunnel.host_key_fingerprint``, recorded by the first passing test)
    belongs to the bastion it was seen on, and maiascore has no field for it. When the body names
    another SSH host or port, the stored pin is dropped, so that the test pins the new bastion's key
    (trust on first use, as for a new source) instead of refusing it for not being the old one's. The
    same bastion keeps its pin, and the test enforces it (a changed key is refused)."""
    stored = (ds.connection or {}).get("ssh_tunnel") or {}
    sent = (native.get("connection") or {}).get("ssh_tunnel")
    if not stored.get("host_key_fingerprint") or not isinstance(sent, dict) or not sent.get("enabled"):
        return native
    default = _ssh_port_default(ds.type)

    def bastion(tunnel: dict[str, Any]) -> tuple[str, Any]:
        return str(tunnel.get("host") or "").lower(), tunnel.get("port") or default

    if bastion(sent) != bastion(stored):
        sent["host_key_fingerprint"] = None
    return native


TUNNEL = Codec(to_seed=bool)
#: maiascore's datasource over the native one: PUT replaces the connection (omitted fields return to
#: their defaults); secrets are write-only (omitted = kept, null = cleared)
TABLE = Table(
    (
        Field("driver", "type", via=Codec(driver_type, driver_for)),
        Field("host", "connection.host"),
        Field("port", "connection.port", via=PORT),
        Field("database", "connection.database"),
        Field("username", "connection.username"),
        Field("ssl", "connection.ssl.mode", via=common.SSL_FLAG),
        Field("certificate", "connection.ssl.client_certificate"),
        Field("sslCA", "connection.ssl.ca_certificate"),
        Field("ssh", "connection.ssh_tunnel.enabled", via=TUNNEL),
        Field("sshTunneling", "connection.ssh_tunnel.enabled", via=TUNNEL),
        Field("sshHost", "connection.ssh_tunnel.host"),
        Field("sshPort", "connection.ssh_tunnel.port", via=PORT),
        Field("sshUsername", "connection.ssh_tunnel.username"),
        Field("password", "credentials.password"),
        Field("keyfile", "credentials.ssl_client_key"),
        Field("sshPassword", "credentials.ssh_password"),
        Field("sshIdentity", "credentials.ssh_private_key"),
    ),
    replace=("connection",),
    write_only=("credentials",),
    before=one_tunnel_flag,
)
#: ``{code, message}`` with ``code`` the HTTP status; missing authentication is 403, as the seed documents
ERRORS = ErrorShape({"code": Slot.STATUS, "message": Slot.DETAILS, "errors": IfAny(Slot.ERRORS)},
                    statuses={401: 403})


def _text(*, json: bool = True, **kwargs: Any) -> serializers.CharField:
    """A string field. In JSON a string or null, as the native API and the Rivergen adapter take it
    (``"host": 123`` is refused, not turned into ``"123"``); in a form or XML body every value is text."""
    field = StrictCharField if json else serializers.CharField
    return field(required=False, allow_null=True, allow_blank=True, trim_whitespace=False, **kwargs)


class PortField(serializers.CharField):
    """A port as the seed sends it, a string (``"5432"``), or a JSON integer (``5432``); a JSON boolean,
    float, list or object is refused. The digits and the range are the catalogue's to judge."""

    default_error_messages = {"invalid": 'Must be a port: a string of digits from "1" to "65535" (or an integer).'}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("invalid")
        return data if isinstance(data, int) else super().to_internal_value(data)


def _port_field(help_text: str, *, json: bool = True) -> serializers.CharField:
    field = PortField if json else serializers.CharField
    return field(required=False, allow_null=True, allow_blank=True, trim_whitespace=False, help_text=help_text)


def _secret(help_text: str) -> serializers.CharField:
    """A secret is text as sent: a JSON number is refused (as the native API does), not turned into one."""
    return StrictCharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False, write_only=True,
                           help_text=f"{help_text} Write-only: omitted keeps it, null clears it.")


def _flag(help_text: str = "", *, json: bool = True) -> serializers.BooleanField:
    """A boolean. In JSON ``true``, ``false`` or null only (``"yes"`` is "Must be a valid boolean.", as
    natively); in a form or XML body the text ``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``)."""
    field = StrictBooleanField if json else serializers.BooleanField
    return field(required=False, allow_null=True, help_text=help_text)


PORT_HELP = 'TCP port, as a string from "1" to "65535" (e.g. "5432").'
SSH_PORT_HELP = 'SSH port, as a string from "1" to "65535" (default "22").'
SSH_HELP = "Use an SSH tunnel (same as sshTunneling; when both are sent they must agree)."


class MaiascoreDatasourceUpdateSerializer(SeedRequest):
    """Fields to update a data source, in JSON: typed as the seed's example types them (strings, booleans;
    a port may also be an integer). Form and XML bodies carry the same fields as text (the form serializer)."""

    driver = serializers.ChoiceField(
        choices=[(name, name) for name in (*DRIVERS, *ALIASES)], required=False,
        error_messages={"invalid_choice": f'Unknown driver "{{input}}": use one of {", ".join(DRIVERS)}.'},
        help_text="Must match the data source's type.",
    )
    host = _text()
    username = _text()
    password = _secret(f"Database password. {EMPTY_HELP}")
    database = _text()
    port = _port_field(PORT_HELP)
    ssl = _flag(common.SSL_FLAG_HELP)
    keyfile = _secret("PEM private key of the client certificate.")
    certificate = _text(help_text="PEM client certificate.")
    sslCA = _text(help_text="PEM CA certificate that verifies the server.")
    ssh = _flag(SSH_HELP)
    sshHost = _text()
    sshUsername = _text()
    sshPassword = _secret("SSH password.")
    sshPort = _port_field(SSH_PORT_HELP)
    sshIdentity = _secret("PEM/OpenSSH private key of the SSH user.")
    sshTunneling = _flag("Use an SSH tunnel.")


class MaiascoreUpdateExtension(OpenApiSerializerExtension):
    """What the catalogue requires of the replaced connection, said in the request schema.

    ``host`` and ``username`` are required by every maiascore driver, ``database`` by all but the
    MySQL family (so it is required unless ``driver`` names one); with a tunnel, ``sshHost`` and
    ``sshUsername`` too. Secrets may be omitted (kept), so the schema does not require them.
    """

    target_class = "datasources.compat.maiascore.MaiascoreDatasourceUpdateSerializer"
    priority = 1  # over the SeedRequest extension (unknown keys refused: said here too)

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        if direction != "request":
            return schema
        props = schema["properties"]
        for name in ("host", "username"):
            props[name]["pattern"] = NOT_BLANK
        for name in ("port", "sshPort"):
            props[name]["pattern"] = PORT_PATTERN
        for name, pattern in (("password", catalogue.empty_or(NOT_BLANK)), ("sshPassword", NOT_BLANK),
                              ("keyfile", PEM_MARKER), ("sshIdentity", PEM_MARKER)):
            props[name]["pattern"] = pattern  # secrets: never blank (a password may be ""); keys are PEM
        schema["required"] = ["host", "username"]

        def filled(name: str) -> dict[str, Any]:
            return {"required": [name], "properties": {name: {"type": "string", "pattern": NOT_BLANK}}}

        tunnel = {"anyOf": [{"required": [flag], "properties": {flag: {"enum": [True]}}}
                            for flag in ("ssh", "sshTunneling")]}
        schema["not"] = {"anyOf": [
            {"allOf": [{"not": {"required": ["driver"], "properties": {"driver": {"enum": list(MYSQL_DRIVERS)}}}},
                       {"not": filled("database")}]},
            {"required": ["driver", "password"], "properties": {"driver": {"enum": list(NO_EMPTY_PASSWORD_DRIVERS)},
                                                                "password": {"enum": [""]}}},
            *({"allOf": [tunnel, {"not": filled(name)}]} for name in ("sshHost", "sshUsername")),
            *({"required": ["ssh", "sshTunneling"], "properties": {"ssh": {"enum": [value]},
                                                                  "sshTunneling": {"enum": [not value]}}}
              for value in (True, False)),
        ], "description": "`database` is required unless `driver` is mysql, mariadb or singlestore (a MySQL-family "
                          "source may omit it; leave `driver` out and it is required); with a tunnel, `sshHost` "
                          "and `sshUsername` are required; `ssh` and `sshTunneling` agree when both are sent; an empty "
                          f"`password` only with the drivers {', '.join(EMPTY_PASSWORD_DRIVERS)} (or the source's "
                          "type, when `driver` is left out)."}
        return schema


class MaiascoreDatasourceUpdateFormSerializer(MaiascoreDatasourceUpdateSerializer):
    """The same fields form-encoded (or as XML elements): every value is text, so none can be ``null``
    there, and flags are the text ``true`` or ``false``."""

    host = _text(json=False)
    username = _text(json=False)
    database = _text(json=False)
    port = _port_field(PORT_HELP, json=False)
    ssl = _flag(common.SSL_FLAG_HELP, json=False)
    certificate = _text(json=False, help_text="PEM client certificate.")
    sslCA = _text(json=False, help_text="PEM CA certificate that verifies the server.")
    ssh = _flag(SSH_HELP, json=False)
    sshHost = _text(json=False)
    sshUsername = _text(json=False)
    sshPort = _port_field(SSH_PORT_HELP, json=False)
    sshTunneling = _flag("Use an SSH tunnel.", json=False)


#: a value ``blank_is_no_value`` reads as blank (``str.strip`` leaves nothing: NOT_BLANK's complement)
BLANK_PATTERN = r"^[\s\x1c-\x1f\x85]*$"
BLANK_HELP = "Blank: no value (the default; an omitted secret is kept)."


class MaiascoreUpdateFormExtension(MaiascoreUpdateExtension):
    """The form body: text, never null; a blank value is no value (``blank_is_no_value``)."""

    target_class = "datasources.compat.maiascore.MaiascoreDatasourceUpdateFormSerializer"

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = super().map_serializer(auto_schema, direction)
        props = schema.get("properties", {})
        for prop in props.values():
            prop.pop("nullable", None)
        if direction == "request":
            for name in ("port", "sshPort", "keyfile", "sshIdentity"):
                props[name]["pattern"] = f"{BLANK_PATTERN}|{props[name]['pattern']}"
            props["sshPassword"]["pattern"] = catalogue.empty_or(props["sshPassword"]["pattern"])
            props["driver"] = {"type": "string", "enum": [*DRIVERS, *ALIASES, ""],
                               "description": "Must match the data source's type; blank: the source's type."}
            for name, prop in props.items():
                if name not in BLANK_IS_KEPT and prop.get("type") == "string" and name != "driver":
                    prop["description"] = f"{prop.get('description', '')} {BLANK_HELP}".strip()
        return schema


class MaiascoreDatasourceSerializer(serializers.Serializer):
    """The data source; secrets (password, keyfile, sshPassword, sshIdentity) are never returned."""

    id = serializers.CharField()
    driver = serializers.CharField()
    host = serializers.CharField(allow_null=True)
    username = serializers.CharField(allow_null=True)
    database = serializers.CharField(allow_null=True)
    port = serializers.CharField(allow_null=True)
    ssl = serializers.BooleanField()
    certificate = serializers.CharField(allow_null=True)
    sslCA = serializers.CharField(allow_null=True)
    ssh = serializers.BooleanField()
    sshHost = serializers.CharField(allow_null=True)
    sshUsername = serializers.CharField(allow_null=True)
    sshPort = serializers.CharField(allow_null=True)
    sshTunneling = serializers.BooleanField()
    published_at = serializers.DateTimeField(help_text="When the data source was created (published).")
    created_by = serializers.CharField(allow_null=True)
    updated_by = serializers.CharField(allow_null=True)


class MaiascoreErrorSerializer(serializers.Serializer):
    """Every maiascore error: ``{code, message}``, ``code`` being the HTTP status."""

    code = serializers.IntegerField(help_text="The HTTP status.")
    message = serializers.CharField()
    # A declared field, not Serializer.errors (DRF's metaclass takes fields out of the class body; the stub can't tell).
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="Messages per field, when there are any.",
    )


def represent(ds: DataSource) -> dict[str, Any]:
    return MaiascoreDatasourceSerializer({
        "id": str(ds.pk), **TABLE.to_seed(common.native(ds)), "published_at": ds.created_at,
        "created_by": actor_name(ds.created_by, ds.created_by_token),
        "updated_by": actor_name(ds.updated_by, ds.updated_by_token),
    }).data


def actor_name(user: Any, token: Any) -> str | None:
    """Who made a change, as one string: the user name, else ``token:<name>``."""
    if user is not None:
        return user.get_username()
    if token is not None:
        return f"token:{token.name}"
    return None


def _error(text: str) -> OpenApiResponse:
    return OpenApiResponse(MaiascoreErrorSerializer, description=text)


class MaiascoreDatasourceView(common.View):
    parser_classes = [JSONParser, XMLParser, TextXMLParser, FormOrJSONParser]
    tables = (TABLE,)
    errors = ERRORS

    def handle_error(self, exc: Exception, context: dict) -> Response | None:
        """A port the catalogue refuses as "Must be an integer." is named in the seed's terms."""
        if isinstance(exc, ApiError):
            for path in NATIVE_PORTS:
                if path in exc.errors:
                    exc.errors[path] = [PORT_MESSAGE if m == "Must be an integer." else m for m in exc.errors[path]]
        return super().handle_error(exc, context)

    @extend_schema(
        operation_id="compat_maiascore_update_datasource",
        summary="Update and test a new connection to a data source (maiascore)",
        description="maiascore-compatible update. The connection is replaced by the fields sent (omitted ones "
                    "return to their defaults; omitted secrets are kept), tested against the database, then "
                    "applied and the schema re-cached. A pinned SSH host key is kept for the same SSH host and "
                    "port, and re-pinned by the test when they change. Bodies: JSON, XML (`<item>`), form "
                    "encoding, or JSON sent with the form content type. XML bodies (`application/xml`, `text/xml`) "
                    "are accepted with the same fields but are left out of this schema: OpenAPI code generators "
                    "cannot model them.",
        tags=[TAG],
        parameters=[OpenApiParameter("id", str, OpenApiParameter.PATH, description="Datasource Id")],
        request={
            "application/json": MaiascoreDatasourceUpdateSerializer,
            "application/x-www-form-urlencoded": MaiascoreDatasourceUpdateFormSerializer,
        },
        responses={
            200: MaiascoreDatasourceSerializer,
            400: _error("Invalid fields (each named), or the connection test failed and nothing was changed."),
            401: _error("Not used: missing or invalid authentication answers 403, as the seed documents."),
            403: _error("Forbidden: this operation requires authentication (or the token lacks write access)."),
            404: _error("Not found: the resource was not found."),
            409: _error("Conflict: the data source kept changing."),
            412: _error("If-Match does not match the current ETag."),
            415: _error("Unsupported Content-Type."),
            429: _error("Too many connection tests."),
            500: _error("Unexpected error."),
        },
    )
    def put(self, request: Request, id: str) -> Response:
        ds = common.fetch(request, id)
        driver_for(ds.type)  # a type maiascore cannot name is refused before anything changes
        # JSON has types (and null); form pairs and XML elements are text (``TextFields``)
        if isinstance(request.data, TextFields):  # a blank value is no value there
            values = parse(MaiascoreDatasourceUpdateFormSerializer, blank_is_no_value(request.data))
        else:
            values = parse(MaiascoreDatasourceUpdateSerializer, request.data)
        # a driver sent becomes ``type``: the core refuses a type change, reported on ``driver``
        native = common.keep_ssl_mode(ds, unpin_another_bastion(ds, TABLE.to_native(values)))
        result = common.update(request, ds.pk, native)
        ds = common.fetch(request, result.data_source.pk)
        return common.with_etag(Response(represent(ds)), ds)

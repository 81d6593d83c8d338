"""maiascore (seed 004): ``PUT /datasources/{id}`` "update and test a new connection".

Bodies in JSON, XML or form encoding (or JSON sent as form, like the seed's snippets). The seed's
fields replace the connection's as a whole (omitted ones return to their defaults); omitted secrets
are kept; secrets are never echoed. Errors are ``{code, message}`` with ``code`` the HTTP status.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.openapi import NOT_BLANK
from datasources.catalogue import PEM_MARKER
from datasources.compat import common
from datasources.compat.parsers import FormOrJSONParser, JSONParser, TextXMLParser, XMLParser
from datasources.models import DataSource

TAG = "compat: maiascore"

#: maiascore ``driver`` -> catalogue type key (``postgresql`` is accepted as an alias of ``postgres``)
DRIVERS: dict[str, str] = {
    "mysql": "mysql", "mariadb": "mariadb", "singlestore": "singlestore", "postgres": "postgresql",
    "redshift": "redshift", "cockroachdb": "cockroachdb", "supabase": "supabase",
}
ALIASES = {"postgresql": "postgres"}
#: maiascore field -> core path
FIELDS: dict[str, str] = {
    "host": "connection.host",
    "port": "connection.port",
    "database": "connection.database",
    "username": "connection.username",
    "ssl": "connection.ssl.mode",
    "certificate": "connection.ssl.client_certificate",
    "sslCA": "connection.ssl.ca_certificate",
    "sshTunneling": "connection.ssh_tunnel.enabled",
    "sshHost": "connection.ssh_tunnel.host",
    "sshPort": "connection.ssh_tunnel.port",
    "sshUsername": "connection.ssh_tunnel.username",
    "password": "credentials.password",
    "keyfile": "credentials.ssl_client_key",
    "sshPassword": "credentials.ssh_password",
    "sshIdentity": "credentials.ssh_private_key",
}
COVERED = [path for path in FIELDS.values() if path.startswith("connection.")]
SSL_ON = ("require", "verify-ca", "verify-full")


def driver_for(type_key: str) -> str:
    """The maiascore driver of a catalogue type; 400 when maiascore has none."""
    driver = next((name for name, key in DRIVERS.items() if key == type_key), None)
    if driver is None:
        raise common.SeedInvalidRequest(f"This data source's type '{type_key}' has no maiascore driver "
                             f"(drivers: {', '.join(DRIVERS)}).", errors={"driver": ["No maiascore driver."]})
    return driver


def _text(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False, **kwargs)


def _secret(help_text: str) -> serializers.CharField:
    return _text(write_only=True, help_text=f"{help_text} Write-only: omitted keeps it, null clears it.")


def _flag(help_text: str = "") -> serializers.BooleanField:
    return serializers.BooleanField(required=False, allow_null=True, help_text=help_text)


class MaiascoreDatasourceUpdateSerializer(common.SeedRequest):
    """Fields to update a data source. XML and form bodies carry the same fields as text."""

    driver = serializers.ChoiceField(
        choices=[(name, name) for name in (*DRIVERS, *ALIASES)], required=False,
        error_messages={"invalid_choice": f'Unknown driver "{{input}}": use one of {", ".join(DRIVERS)}.'},
        help_text="Must match the data source's type.",
    )
    host = _text()
    username = _text()
    password = _secret("Database password.")
    database = _text()
    port = _text(help_text="TCP port, as a string from \"1\" to \"65535\" (e.g. \"5432\").")
    ssl = _flag("true: SSL required; false: disabled; omitted: preferred.")
    keyfile = _secret("PEM private key of the client certificate.")
    certificate = _text(help_text="PEM client certificate.")
    sslCA = _text(help_text="PEM CA certificate that verifies the server.")
    ssh = _flag("Use an SSH tunnel (same as sshTunneling; when both are sent they must agree).")
    sshHost = _text()
    sshUsername = _text()
    sshPassword = _secret("SSH password.")
    sshPort = _text(help_text="SSH port, as a string from \"1\" to \"65535\" (default \"22\").")
    sshIdentity = _secret("PEM/OpenSSH private key of the SSH user.")
    sshTunneling = _flag("Use an SSH tunnel.")


MYSQL_DRIVERS = ("mysql", "mariadb", "singlestore")


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
        for name, pattern in (("password", NOT_BLANK), ("sshPassword", NOT_BLANK), ("keyfile", PEM_MARKER),
                              ("sshIdentity", PEM_MARKER)):
            props[name]["pattern"] = pattern  # secrets: never blank; keys are PEM
        schema["required"] = ["host", "username"]

        def filled(name: str) -> dict[str, Any]:
            return {"required": [name], "properties": {name: {"type": "string", "pattern": NOT_BLANK}}}

        tunnel = {"anyOf": [{"required": [flag], "properties": {flag: {"enum": [True]}}}
                            for flag in ("ssh", "sshTunneling")]}
        schema["not"] = {"anyOf": [
            {"allOf": [{"not": {"required": ["driver"], "properties": {"driver": {"enum": list(MYSQL_DRIVERS)}}}},
                       {"not": filled("database")}]},
            *({"allOf": [tunnel, {"not": filled(name)}]} for name in ("sshHost", "sshUsername")),
            *({"required": ["ssh", "sshTunneling"], "properties": {"ssh": {"enum": [value]},
                                                                  "sshTunneling": {"enum": [not value]}}}
              for value in (True, False)),
        ], "description": "`database` is required unless `driver` is mysql, mariadb or singlestore (a MySQL-family "
                          "source may omit it; leave `driver` out and it is required); with a tunnel, `sshHost` "
                          "and `sshUsername` are required; `ssh` and `sshTunneling` agree when both are sent."}
        return schema


class MaiascoreDatasourceUpdateFormSerializer(MaiascoreDatasourceUpdateSerializer):
    """The same fields form-encoded: every value is text, so none can be ``null`` there."""


class MaiascoreUpdateFormExtension(MaiascoreUpdateExtension):
    target_class = "datasources.compat.maiascore.MaiascoreDatasourceUpdateFormSerializer"

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = super().map_serializer(auto_schema, direction)
        for prop in schema.get("properties", {}).values():
            prop.pop("nullable", None)
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
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                   help_text="Messages per field, when there are any.")


#: A TCP port as the seed sends it: a decimal string from 1 to 65535 (leading zeros allowed).
PORT_PATTERN = r"^0*(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})$"


def _port(value: Any) -> Any:
    """"5432" -> 5432; anything else is left for the catalogue to refuse by name."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,10}", value):  # ASCII digits: int() refuses '²'
        return int(value)
    return value


def to_core(body: dict[str, Any]) -> dict[str, Any]:
    values = dict(body)
    ssh, tunneling = values.pop("ssh", None), values.pop("sshTunneling", None)
    if ssh is not None and tunneling is not None and ssh != tunneling:
        raise common.SeedInvalidRequest("ssh and sshTunneling must agree.",
                                        errors={"sshTunneling": ["Must equal ssh."]})
    if ssh is not None or tunneling is not None:
        values["sshTunneling"] = tunneling if tunneling is not None else ssh
    if values.get("ssl") is not None:
        values["ssl"] = "require" if values["ssl"] else "disable"
    for key in ("port", "sshPort"):
        values[key] = _port(values.get(key))
    return common.core_data({FIELDS[k]: v for k, v in values.items() if k in FIELDS}, COVERED)


def represent(ds: DataSource) -> dict[str, Any]:
    conn = ds.connection or {}
    ssl, tunnel = conn.get("ssl") or {}, conn.get("ssh_tunnel") or {}

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return MaiascoreDatasourceSerializer({
        "id": str(ds.pk), "driver": driver_for(ds.type), "host": conn.get("host"),
        "username": conn.get("username"), "database": conn.get("database"), "port": text(conn.get("port")),
        "ssl": ssl.get("mode") in SSL_ON, "certificate": ssl.get("client_certificate"),
        "sslCA": ssl.get("ca_certificate"), "ssh": bool(tunnel.get("enabled")), "sshHost": tunnel.get("host"),
        "sshUsername": tunnel.get("username"), "sshPort": text(tunnel.get("port")),
        "sshTunneling": bool(tunnel.get("enabled")), "published_at": ds.created_at,
        "created_by": common.actor_name(ds.created_by, ds.created_by_token),
        "updated_by": common.actor_name(ds.updated_by, ds.updated_by_token),
    }).data


def _error(text: str) -> OpenApiResponse:
    return OpenApiResponse(MaiascoreErrorSerializer, description=text)


class MaiascoreDatasourceView(common.CompatView):
    parser_classes = [JSONParser, XMLParser, TextXMLParser, FormOrJSONParser]
    field_names = {**{path: name for name, path in FIELDS.items()}, "type": "driver"}

    def render_failure(self, failure: common.Failure) -> tuple[int, Any]:
        status = 403 if failure.status == 401 else failure.status  # the seed answers 403 without authentication
        body: dict[str, Any] = {"code": status, "message": failure.details()}
        if failure.errors:
            body["errors"] = failure.errors
        return status, body

    def handle_error(self, exc: Exception, context: dict) -> Response | None:
        response = super().handle_error(exc, context)
        if response is not None and response.status_code == 403 and "WWW-Authenticate" in response:
            del response["WWW-Authenticate"]
        return response

    @extend_schema(
        operation_id="compat_maiascore_update_datasource",
        summary="Update and test a new connection to a data source (maiascore)",
        description="maiascore-compatible update. The connection is replaced by the fields sent (omitted ones "
                    "return to their defaults; omitted secrets are kept), tested against the database, then "
                    "applied and the schema re-cached. Bodies: JSON, XML (`<item>`), form encoding, or JSON "
                    "sent with the form content type. XML bodies (`application/xml`, `text/xml`) are accepted with "
                    "the same fields but are left out of this schema: OpenAPI code generators cannot model them.",
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
    def put(self, request: Request, id: str) -> Response:  # noqa: A002 - the seed's parameter name
        ds = common.fetch(request, id)
        driver_for(ds.type)  # a type maiascore cannot name is refused before anything changes
        values = common.parse(MaiascoreDatasourceUpdateSerializer, request.data)
        driver = values.pop("driver", None)
        data = to_core(values)
        if driver is not None:  # the core refuses a type change; its error is reported on ``driver``
            data["type"] = DRIVERS[ALIASES.get(driver, driver)]
        result = common.update(request, ds.pk, data)
        ds = common.fetch(request, result.data_source.pk)
        return common.with_etag(Response(represent(ds)), ds)

"""Parse a connection string into connection settings and secrets, refusing anything that
names a file, a socket, a service or a second host, whatever its spelling.

The string itself is never stored or echoed: only its parts, validated like any other input.
"""

from __future__ import annotations

import re
import shlex
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from core.numbers import parse_ascii_int
from datasources.catalogue import ConfigInvalid

PG_TYPES = {"postgresql", "redshift", "cockroachdb", "supabase"}
MYSQL_TYPES = {"mysql", "mariadb", "singlestore"}
SUPPORTED = PG_TYPES | MYSQL_TYPES

# Parameters that make a driver read a file, open a socket or consult a service definition.
_PG_FORBIDDEN = {
    "sslkey",
    "sslcert",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslpassword",
    "passfile",
    "service",
    "servicefile",
    "hostaddr",
    "host",
    "options",
    "krbsrvname",
    "gsslib",
    "requirepeer",
    "gssdelegation",
    "sslcertmode",
}
_MYSQL_FORBIDDEN = {
    "local_infile",
    "localinfile",
    "allowloadlocalinfile",
    "allowlocalinfile",
    "ssl_ca",
    "sslca",
    "ssl_cert",
    "sslcert",
    "ssl_key",
    "sslkey",
    "ssl_capath",
    "ssl_crl",
    "ssl_crlpath",
    "read_default_file",
    "read_default_group",
    "init_command",
    "unix_socket",
    "socket",
    "plugin_dir",
    "default_auth",
    "defaults_file",
    "server_public_key_path",
    "named_pipe",
    "host",
}
_PG_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
_MYSQL_SSLMODES = {
    "disabled": "disable",
    "preferred": "prefer",
    "required": "require",
    "verify_ca": "verify-ca",
    "verify_identity": "verify-full",
}
_FIELD = "connection_string"


def _norm(key: str) -> str:
    return re.sub(r"[-_\s]+", "_", key.strip().lower())


def _fail(message: str) -> ConfigInvalid:
    return ConfigInvalid({_FIELD: [message]})


def parse(type_key: str, value: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Return (connection patch, secrets). Raises ConfigInvalid naming the problem, never the value."""
    if type_key not in SUPPORTED:
        raise _fail(f"Connection strings are not supported for type '{type_key}'; use the connection fields.")
    if not isinstance(value, str) or not value.strip() or len(value) > 4096 or "\x00" in value:
        raise _fail("Must be a non-empty string of at most 4096 characters.")
    value = value.strip()
    if "://" in value:
        return _parse_uri(type_key, value)
    if type_key in PG_TYPES and "=" in value:
        return _parse_pg_keywords(value)
    raise _fail("Not a recognised connection string (expected scheme://user:password@host:port/database).")


def _parse_uri(type_key: str, value: str) -> tuple[dict[str, Any], dict[str, str]]:
    schemes = {"postgres", "postgresql"} if type_key in PG_TYPES else {"mysql", "mariadb", "singlestore"}
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise _fail("The host or port part is malformed.") from exc
    if parts.scheme.lower() not in schemes:
        raise _fail(f"The scheme must be one of: {', '.join(sorted(schemes))}.")
    host = unquote(parts.hostname or "")
    netloc_host = parts.netloc.rsplit("@", 1)[-1]
    if "," in netloc_host:
        raise _fail("Host lists are not allowed: give exactly one host.")
    if not host:
        raise _fail("A host is required.")
    if host.startswith(("/", "@")) or "%2f" in netloc_host.lower():
        raise _fail("Unix-socket hosts are not allowed.")
    connection: dict[str, Any] = {"host": host}
    if port is not None:
        connection["port"] = port
    database = unquote(parts.path.lstrip("/"))
    if database:
        if "/" in database:
            raise _fail("The database part must be a single name.")
        connection["database"] = database
    if parts.username:
        connection["username"] = unquote(parts.username)
    # "user:@host" says an empty password ("" where the type allows it); "user@host" says none (kept)
    secrets = {"password": unquote(parts.password)} if parts.password is not None else {}
    params = parse_qsl(parts.query, keep_blank_values=True)
    _apply_params(type_key, params, connection)
    return connection, secrets


#: the keyword form's parameters this parser knows (besides ``_PG_FORBIDDEN``, refused by name)
_PG_KEYWORDS = frozenset({"host", "port", "dbname", "database", "user", "password", "sslmode", "ssl_mode", "schema",
                          "currentschema", "search_path"})


def _parse_pg_keywords(value: str) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        tokens = shlex.split(value, posix=True)
    except ValueError as exc:
        raise _fail("Unbalanced quotes in the keyword/value string.") from exc
    connection: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    params: list[tuple[str, str]] = []
    after_password = False
    for token in tokens:
        key, sep, val = token.partition("=")
        if not sep:
            raise _fail("Each part must look like key=value.")
        k = _norm(key)
        if after_password and k not in _PG_KEYWORDS and k not in _PG_FORBIDDEN:
            # likely the rest of an unquoted password that holds a space: never named in the message
            raise _fail("The part after password= is not a known parameter: quote a password that holds spaces "
                        "(password='...').")
        after_password = k == "password"
        if k == "host":
            if "," in val:
                raise _fail("Host lists are not allowed: give exactly one host.")
            if val.startswith(("/", "@")):
                raise _fail("Unix-socket hosts are not allowed.")
            connection["host"] = val
        elif k == "port":
            port = parse_ascii_int(val)
            if port is None:
                raise _fail("The port must be a number.")
            connection["port"] = port
        elif k in ("dbname", "database"):
            connection["database"] = val
        elif k == "user":
            connection["username"] = val
        elif k == "password":
            secrets["password"] = val
        else:
            params.append((key, val))
    _apply_params("postgresql", params, connection)
    return connection, secrets


def _apply_params(type_key: str, params: list[tuple[str, str]], connection: dict[str, Any]) -> None:
    pg = type_key in PG_TYPES
    forbidden = _PG_FORBIDDEN if pg else _MYSQL_FORBIDDEN
    for raw_key, raw_val in params:
        key = _norm(raw_key)
        if key in forbidden or key.replace("_", "") in {f.replace("_", "") for f in forbidden}:
            raise _fail(f"Parameter '{raw_key[:40]}' is not allowed: it names a file, socket, service or host.")
        if key in ("sslmode", "ssl_mode"):
            mode = raw_val.strip().lower() if pg else _MYSQL_SSLMODES.get(raw_val.strip().lower())
            if mode not in _PG_SSLMODES:
                raise _fail(f"Unsupported SSL mode for parameter '{raw_key[:40]}'.")
            connection["ssl"] = {"mode": mode}
        elif key in ("schema", "currentschema", "search_path") and pg:
            connection["schema"] = raw_val
        else:
            raise _fail(f"Unsupported parameter '{raw_key[:40]}'; set it through the connection fields.")

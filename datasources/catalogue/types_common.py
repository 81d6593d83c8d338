"""Building blocks shared by several catalogue entries (SSL, SSH tunnel, host/port...)."""

from __future__ import annotations

from typing import Any

from datasources.catalogue.fields import (
    ENDPOINT,
    PROTECTION,
    SSH_HOP,
    Condition,
    Field,
    OneOfSecrets,
    SecretField,
)

NAME_MAX = 255
PATH_MAX = 1000

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
SSH_ENABLED = Condition("ssh_tunnel.enabled", in_=(True,))
#: The end of the text, the same in ECMA-262 and Python (Python's ``$`` also matches before a final "\n").
END = r"(?![\s\S])"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
#: An http(s) URL with a host (a name or an IPv4 address, or an IPv6 one in brackets), an optional port
#: 1-65535 and an optional path, query or fragment: no user name or password, no space or control character.
_H = r"[0-9A-Fa-f]{1,4}"
#: An IPv6 address in its usual forms (full or with one "::"; no embedded IPv4, no zone): a bracketed host
#: that is not one is refused here, since clients (and Python's urlsplit) refuse to parse such a URL.
_IPV6 = (rf"(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,7}}:|(?:{_H}:){{1,6}}:{_H}|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}"
         rf"|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}"
         rf"|{_H}:(?::{_H}){{1,6}}|:(?:(?::{_H}){{1,7}}|:))")
URL_PATTERN = (rf"^https?://(?:\[{_IPV6}\]|[^\s\x00-\x1f\x7f/?#@:\[\],\\]+)"
               rf"(?::{_PORT})?(?:[/?#]\S*)?{END}")
#: The same without a path, query or fragment (a trailing "/" aside): where the client builds the paths.
ORIGIN_URL_PATTERN = (rf"^https?://(?:\[{_IPV6}\]|[^\s\x00-\x1f\x7f/?#@:\[\],\\]+)"
                      rf"(?::{_PORT})?/?{END}")
ORIGIN_URL_MESSAGE = ("Must be an http:// or https:// URL of a host name or IP address with an optional port "
                      "1-65535, without a path, a user name or password: e.g. https://host[:port].")
URL_MESSAGE = ("Must be an http:// or https:// URL with a host name or IP address (an optional port 1-65535 and "
               "path), without a user name or password.")
#: An AWS region name (us-east-1, eu-central-2, us-gov-west-1, cn-north-1, eusc-de-east-1...).
AWS_REGION_PATTERN = rf"^[a-z]{{2,}}(?:-[a-z]+)+-[0-9]+{END}"
_BUCKET_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
#: S3's naming rules for general purpose buckets (the length, 3-63, is ``max_length`` and the first
#: lookahead): labels of lower-case letters, digits and '-' between single dots, not an IPv4 address,
#: none of S3's reserved prefixes and suffixes. Only negative lookaheads, for ECMA-262 and generators alike.
S3_BUCKET_PATTERN = (rf"^(?![\s\S]{{0,2}}{END})(?!xn--|sthree-|amzn-s3-demo-)"
                     rf"(?![\s\S]*(?:-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3){END})"
                     rf"(?![0-9]+\.[0-9]+\.[0-9]+\.[0-9]+{END})"
                     rf"{_BUCKET_LABEL}(?:\.{_BUCKET_LABEL})*{END}")


#: A host holds no user name or password (``user:password@host``): they have fields of their own, and a
#: password typed there would be stored, audited and echoed as a plain value.
HOST_PATTERN = rf"^[^@]*{END}"
#: ... and, where a host is required, not blank (the pattern the OpenAPI rules give a required string)
REQUIRED_HOST_PATTERN = rf"^[^@\x00]*(?:[^\s\x1c-\x1f\x85\x00@]|\ufeff)[^@\x00]*{END}"
HOST_MESSAGE = "Must be a host name or IP address, without a user name or password ('@'): use username and credentials."


def host(label: str = "Host", help: str = "Hostname or IP address of the server.") -> Field:
    return Field("host", "string", label=label, required=True, max_length=NAME_MAX, help=help, transit=ENDPOINT,
                 pattern=REQUIRED_HOST_PATTERN, pattern_message=HOST_MESSAGE)


def port(default: int, help: str = "", *, defaults_when: tuple[tuple[Condition, Any], ...] = (),
         only_default_when: Condition | None = None) -> Field:
    return Field("port", "integer", label="Port", default=default, min_value=1, max_value=65535,
                 help=help or f"TCP port (1-65535, default {default}).", transit=ENDPOINT,
                 defaults_when=defaults_when, only_default_when=only_default_when)


def name(field_name: str, label: str = "", *, required: bool = False, default: str | None = None,
         help: str = "", required_when: Condition | None = None, transit: str = "") -> Field:
    """A short identifier-like string (database, schema, user, region...)."""
    return Field(field_name, "string", label=label, required=required, default=default,
                 max_length=NAME_MAX, help=help, required_when=required_when, transit=transit)


def flag(field_name: str, label: str = "", *, default: bool = False, help: str = "",
         secure_when: bool | None = None) -> Field:
    """A boolean; ``secure_when`` marks a TLS switch (the value that protects the secrets in transit)."""
    if secure_when is None:
        return Field(field_name, "boolean", label=label, default=default, help=help)
    return Field(field_name, "boolean", label=label, default=default, help=help, transit=PROTECTION,
                 strength=(not secure_when, secure_when))


def url(field_name: str, label: str, *, required: bool = False, help: str = "",
        required_when: Condition | None = None, origin_only: bool = False) -> Field:
    """An endpoint URL: the secrets are sent there. ``origin_only``: the client adds every path itself,
    so a path is refused when written rather than at the connection test."""
    pattern, message = (ORIGIN_URL_PATTERN, ORIGIN_URL_MESSAGE) if origin_only else (URL_PATTERN, URL_MESSAGE)
    return Field(field_name, "string", label=label, required=required, required_when=required_when,
                 max_length=PATH_MAX, pattern=pattern, pattern_message=message, help=help, transit=ENDPOINT)


def ca_certificate() -> Field:
    """The CA that signs the server's certificate when it is not one the system trusts."""
    return Field("ca_certificate", "pem", label="CA certificate", transit=ENDPOINT,
                 help="PEM-encoded CA certificate that verifies the server (default: the system's CAs).")


def ssl_block(default_mode: str = "prefer") -> Field:
    return Field(
        "ssl", "object", label="SSL / TLS",
        help="Transport encryption settings. The client key is a secret (credentials.ssl_client_key).",
        fields=(
            Field("mode", "enum", label="SSL mode", choices=SSL_MODES, default=default_mode,
                  transit=PROTECTION, strength=SSL_MODES,
                  help="disable/allow/prefer/require encrypt opportunistically or always; "
                       "verify-ca also checks the CA, verify-full also the host name."),
            Field("ca_certificate", "pem", label="CA certificate", transit=ENDPOINT,
                  help="PEM-encoded CA certificate used to verify the server (verify-ca, verify-full)."),
            Field("client_certificate", "pem", label="Client certificate",
                  help="PEM-encoded client certificate for certificate authentication."),
        ),
    )


SSL = ssl_block()
SSL_SECRETS = (
    SecretField("ssl_client_key", "SSL client key", kind="pem",
                required_when=Condition("ssl.client_certificate", not_in=(None,)),
                help="PEM-encoded private key of the client certificate."),
)

SSH_TUNNEL = Field(
    "ssh_tunnel", "object", label="SSH tunnel",
    help="Reach the database through an SSH bastion. Authenticate with credentials.ssh_password "
         "or credentials.ssh_private_key.",
    fields=(
        Field("enabled", "boolean", label="Use SSH tunnel", default=False, transit=ENDPOINT),
        Field("host", "string", label="SSH host", required_when=SSH_ENABLED, max_length=NAME_MAX,
              help="Hostname or IP address of the SSH server.", transit=ENDPOINT, pattern=HOST_PATTERN,
              pattern_message=HOST_MESSAGE),
        port(22, help="SSH server port (1-65535, default 22)."),
        Field("username", "string", label="SSH username", required_when=SSH_ENABLED, max_length=NAME_MAX,
              transit=ENDPOINT),
        Field("host_key_fingerprint", "string", label="SSH host key fingerprint", max_length=NAME_MAX,
              pattern=r"^(SHA256|MD5):", transit=ENDPOINT, help="Expected server key fingerprint, e.g. 'SHA256:...'. "
                                              "When set, a server presenting another key is refused."),
        Field("local_port", "integer", label="SSH local port", min_value=1024, max_value=65535,
              help="Advisory, kept for clients that set one (1024-65535): each tunnel listens on a fresh "
                   "ephemeral port of 127.0.0.1 chosen when it opens, never a fixed one, so concurrent "
                   "tests and refreshes cannot collide. Not a destination: changing it needs no secret."),
    ),
)
SSH_SECRETS = (
    SecretField("ssh_password", "SSH password", hop=SSH_HOP),
    SecretField("ssh_private_key", "SSH private key", kind="pem", hop=SSH_HOP,
                help="PEM/OpenSSH private key for the SSH user."),
    SecretField("ssh_private_key_passphrase", "SSH private key passphrase", hop=SSH_HOP,
                help="Only needed when the SSH private key is encrypted."),
)
SSH_RULES = (OneOfSecrets(("ssh_password", "ssh_private_key"), when=SSH_ENABLED),)


ALLOW_EMPTY_HELP = ('An empty password is a value: send "" for a server that accepts it (a user without '
                    'password); omit the key to keep the stored one, null to clear it.')


def password(required: bool = False, help: str = "", required_when: Condition | None = None, *,
             allow_empty: bool = False) -> SecretField:
    """The database password. ``allow_empty``: ``""`` is a password of its own (see ``SecretField``)."""
    if allow_empty:
        help = " ".join(filter(None, [help, ALLOW_EMPTY_HELP]))
    return SecretField("password", "Password", required=required, required_when=required_when, help=help,
                       allow_empty=allow_empty)


RELATIVE_PATH_PATTERN = r"^(?![/\\])(?!.*(^|[/\\])\.\.([/\\]|$))[^\x00]+$"


def file_path(help: str) -> Field:
    # Relative, no '..' segment: checked here so that a path saved untested is already confined.
    return Field(
        "path", "string", label="File path", required=True, max_length=PATH_MAX, help=help,
        pattern=RELATIVE_PATH_PATTERN,
        pattern_message="Must be a path relative to the file root, without '..' segments.",
    )


def aws_region(required: bool = True, *, pattern: bool = True) -> Field:
    """``pattern=False``: a store that may be S3-compatible (MinIO, R2's ``auto``) names its own regions."""
    if not pattern:
        return Field("region", "string", label="Region", required=required, max_length=63, transit=ENDPOINT,
                     help="AWS region, e.g. 'us-east-1'; with an endpoint URL, the store's own region name.")
    return Field("region", "string", label="AWS region", required=required, max_length=32,
                 pattern=AWS_REGION_PATTERN, transit=ENDPOINT, help="AWS region, e.g. 'us-east-1'.",
                 pattern_message="Must be an AWS region name such as us-east-1, eu-central-2 or us-gov-west-1.")


def s3_bucket(field_name: str = "bucket", label: str = "Bucket") -> Field:
    return Field(field_name, "string", label=label, required=True, max_length=63, pattern=S3_BUCKET_PATTERN,
                 pattern_message="Must follow S3's bucket naming rules: 3-63 lower-case letters, digits, '-' "
                                 "and single '.', starting and ending with a letter or digit, not an IP address.")


AWS_ACCESS_KEY_ID = name("access_key_id", "AWS access key ID", required=True)
AWS_SECRET = SecretField("secret_access_key", "AWS secret access key", required=True)
SERVICE_ACCOUNT_JSON = SecretField(
    "service_account_json", "Service account JSON", kind="json", required=True,
    help="The Google Cloud service-account key file (a JSON object).",
)

"""Building blocks shared by several catalogue entries (SSL, SSH tunnel, host/port...)."""

from __future__ import annotations

from datasources.catalogue.fields import ENDPOINT, PROTECTION, SSH_HOP, Condition, Field, OneOfSecrets, SecretField

NAME_MAX = 255
PATH_MAX = 1000

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
SSH_ENABLED = Condition("ssh_tunnel.enabled", in_=(True,))
URL_PATTERN = r"^https?://"


def host(label: str = "Host", help: str = "Hostname or IP address of the server.") -> Field:
    return Field("host", "string", label=label, required=True, max_length=NAME_MAX, help=help, transit=ENDPOINT)


def port(default: int, help: str = "") -> Field:
    return Field("port", "integer", label="Port", default=default, min_value=1, max_value=65535,
                 help=help or f"TCP port (1-65535, default {default}).", transit=ENDPOINT)


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
        required_when: Condition | None = None) -> Field:
    """An endpoint URL: the secrets are sent there."""
    return Field(field_name, "string", label=label, required=required, required_when=required_when,
                 max_length=PATH_MAX, pattern=URL_PATTERN, help=help, transit=ENDPOINT)


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
              help="Hostname or IP address of the SSH server.", transit=ENDPOINT),
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


def aws_region(required: bool = True) -> Field:
    return name("region", "AWS region", required=required, help="AWS region, e.g. 'us-east-1'.", transit=ENDPOINT)


AWS_ACCESS_KEY_ID = name("access_key_id", "AWS access key ID", required=True)
AWS_SECRET = SecretField("secret_access_key", "AWS secret access key", required=True)
SERVICE_ACCOUNT_JSON = SecretField(
    "service_account_json", "Service account JSON", kind="json", required=True,
    help="The Google Cloud service-account key file (a JSON object).",
)

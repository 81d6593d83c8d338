"""Settings, read from the environment (django-environ). See README "Configuration"."""

import base64
import binascii
import sys
from pathlib import Path

import environ

from config import envvars as env

BASE_DIR = Path(__file__).resolve().parent.parent

# Every variable is read through config/envvars.py: a value it cannot use stops the start with one line
# naming the variable (never a secret's value), each numeric one with its minimum.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.boolean("DEBUG", False)
# With DEBUG on (`make run`) and no SECRET_KEY, a fixed development key is used (the demo token,
# derived from it, stays the same across runs). With DEBUG off the service refuses to start
# without a strong SECRET_KEY: see the end of "Secrets at rest" below.
SECRET_KEY = env.text("SECRET_KEY") or (
    "django-insecure-local-development-key-do-not-deploy-0123456789" if DEBUG else ""
)
ALLOWED_HOSTS = env.listing("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.listing("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "organizations",
    "eventlog",
    "datasources",
    "workflows",
    "webhooks",
    "changes",
]

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "core.api_paths.OptionalTrailingSlashMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.ApiErrorPageMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": env.database_url("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.integer("CONN_MAX_AGE", 60, minimum=0)  # 0: one per request
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The hot statements are prepared once per connection on PostgreSQL (core/prepared.py). Turn off behind
# a transaction-mode pooler that does not carry prepared statements (PgBouncer < 1.21).
DATABASE_PREPARED_STATEMENTS = env.boolean("DATABASE_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.text("STATIC_ROOT") or str(BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Secrets at rest -------------------------------------------------------
# Comma-separated "key_id:base64url-32-bytes" entries; the first encrypts, all decrypt. Without
# any (DEBUG on only), a key derived from SECRET_KEY encrypts (datasources/crypto.py).
ENCRYPTION_KEYS = env.listing("ENCRYPTION_KEYS")


def production_secrets_problem(debug: bool, secret_key: str, encryption_keys: list[str]) -> str | None:
    """What is missing or unsafe for a run with DEBUG off, as one line; None when nothing is.

    SECRET_KEY signs sessions and the demo token; it must not also be what stored secrets hang on
    (rotating it would make them unreadable), hence ENCRYPTION_KEYS. The strength rule is Django's
    own (security.W009): at least 50 characters, at least 5 different ones, no "django-insecure-".
    """
    if debug:
        return None
    make_key = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    if not secret_key:
        return f"SECRET_KEY is not set: set it to a long random value ({make_key}) or DEBUG=true for a local run."
    if secret_key.startswith("django-insecure-"):
        return f"SECRET_KEY is a development key (django-insecure-...): set a long random value ({make_key})."
    if len(secret_key) < 50 or len(set(secret_key)) < 5:
        return (f"SECRET_KEY is too weak (needs 50+ characters, 5+ different ones): set a long random value "
                f"({make_key}).")
    if not [entry for entry in encryption_keys if entry.strip()]:
        return ("ENCRYPTION_KEYS is not set: set it to key_id:base64url-32-bytes (python -c \"import base64,os;"
                "print('k1:'+base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('='))\"); the key derived "
                "from SECRET_KEY is for DEBUG=true local runs only.")
    return None


def encryption_keys_problem(encryption_keys: list[str]) -> str | None:
    """What is wrong with the ENCRYPTION_KEYS entries, as one line naming the entry by its id (never
    its key material); None when each is ``key_id:base64url`` of 32 bytes with ids unique. Checked
    with DEBUG on too: a malformed key would otherwise surface only when a secret is first written."""
    seen: set[str] = set()
    for position, entry in enumerate((e.strip() for e in encryption_keys if e.strip()), start=1):
        kid, sep, material = entry.partition(":")
        kid, material = kid.strip(), material.strip()
        if not sep or not kid or not material:
            return f"ENCRYPTION_KEYS is malformed: entry {position} is not key_id:base64url-32-bytes."
        if kid in seen:
            return f"ENCRYPTION_KEYS is malformed: the key id '{kid}' is used twice."
        seen.add(kid)
        try:
            key = base64.b64decode(material + "=" * (-len(material) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            return f"ENCRYPTION_KEYS is malformed: the key '{kid}' is not 32 bytes of base64url."
    return None


# Refuse to start (one line on stderr, exit status 1, no traceback): manage.py, gunicorn
# (config/wsgi.py) and celery (config/celery.py) all load these settings first.
if _problem := production_secrets_problem(DEBUG, SECRET_KEY, ENCRYPTION_KEYS) or encryption_keys_problem(
        ENCRYPTION_KEYS):
    sys.exit(_problem)

# --- Data sources ----------------------------------------------------------
# Root under which file-based sources (sqlite, csv, ...) must live.
DATASOURCE_FILE_ROOT = env.text("DATASOURCE_FILE_ROOT") or str(BASE_DIR / "var" / "files")
# Each organization's file-based sources confined to the root's folder named after its slug
# (paths keep their form: "demo/sample.db"); off, every organization reads the whole root.
DATASOURCE_FILE_ROOT_PER_ORGANIZATION = env.boolean("DATASOURCE_FILE_ROOT_PER_ORGANIZATION", False)
# CIDRs opened to connection tests, beyond the public internet (a malformed one stops the start).
DATASOURCE_ALLOWED_NETWORKS = env.networks("DATASOURCE_ALLOWED_NETWORKS")

# Connection tests allowed per minute, per token (or user) and per organization.
DATASOURCE_TEST_RATE_PER_TOKEN = env.integer("DATASOURCE_TEST_RATE_PER_TOKEN", 30, minimum=1)
DATASOURCE_TEST_RATE_PER_ORG = env.integer("DATASOURCE_TEST_RATE_PER_ORG", 120, minimum=1)

# Shared cache (rate-limit counters, the token cache's generation, test slots): Redis when several web
# processes run. Without CACHE_URL: a file cache under ./var/cache with DEBUG on (`make run`: the server,
# its Celery worker and beat, and a local `manage.py shell` are separate processes that must see each
# other's changes, such as a token revoked from the shell), process memory with DEBUG off.
_LOCAL_CACHE = f"filecache://{BASE_DIR / 'var' / 'cache'}" if DEBUG else "locmemcache://"
CACHES = {"default": env.cache_url("CACHE_URL", _LOCAL_CACHE)}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "core.cache.RedisCache"  # one Redis client per pool, not per call
    # A Redis that never answers fails a cache call after 2 s (redis-py waits forever by default): the
    # request answers (503 for a connection test, core/health.py's "cache unreachable") instead of hanging.
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("socket_connect_timeout", 2)
    CACHES["default"]["OPTIONS"].setdefault("socket_timeout", 2)

# --- Background work (Celery) ---------------------------------------------
# Redis in production and CI (redis://127.0.0.1:6379/0); the default needs no server: kombu's
# SQLAlchemy transport on a SQLite file shared by the web process, the worker and beat
# (transactional, unlike the folder-based filesystem transport, whose readers can see half-written
# messages).
(BASE_DIR / "var").mkdir(exist_ok=True)
CELERY_BROKER_URL = env.text("CELERY_BROKER_URL") or f"sqla+sqlite:///{BASE_DIR / 'var' / 'celery-broker.sqlite3'}"
CELERY_TASK_DEFAULT_QUEUE = env.text("CELERY_TASK_DEFAULT_QUEUE") or "celery"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "schema-refresh-tick": {
        "task": "datasources.schema_refresh_tick",
        "schedule": env.number("SCHEMA_REFRESH_TICK_SECONDS", 60.0, minimum=0.1),
    },
    "health-check-tick": {
        "task": "datasources.health_check_tick",
        "schedule": env.number("HEALTH_CHECK_TICK_SECONDS", 30.0, minimum=0.1),
    },
    "webhooks-sweep": {
        "task": "webhooks.sweep",
        "schedule": env.number("WEBHOOK_SWEEP_SECONDS", 15.0, minimum=0.1),
    },
    "events-purge": {"task": "eventlog.purge", "schedule": 86400.0},
    "revisions-and-trash-purge": {"task": "datasources.purge_revisions_and_trash", "schedule": 86400.0},
    "changes-purge": {"task": "changes.purge", "schedule": 86400.0},
}
# Days an event stays in the outbox and the event log (GET /api/v1/events/), with its deliveries.
EVENTS_RETENTION_DAYS = env.integer("EVENTS_RETENTION_DAYS", 30, minimum=1)
# Days a deleted data source stays restorable in the trash (then it and its revisions are purged).
DATASOURCE_TRASH_DAYS = env.integer("DATASOURCE_TRASH_DAYS", 30, minimum=1)
# True when a worker runs: schema refreshes after connection changes are queued (status
# `pending`) instead of run inside the request.
SCHEMA_REFRESH_ASYNC = env.boolean("SCHEMA_REFRESH_ASYNC", False)
# First retry delay of a failed scheduled refresh; doubles on each retry, up to max_retries.
SCHEMA_REFRESH_RETRY_BASE_SECONDS = env.number("SCHEMA_REFRESH_RETRY_BASE_SECONDS", 30.0, minimum=0)

# --- Health checks (datasources.services.health) ------------------------------
# The shortest interval a data source or an organization may set (0 = off is always allowed).
HEALTH_CHECK_MIN_INTERVAL = env.integer("HEALTH_CHECK_MIN_INTERVAL", 60, minimum=1)
# Checks kept per data source (older ones are deleted as new ones are recorded).
HEALTH_HISTORY_SIZE = env.integer("HEALTH_HISTORY_SIZE", 50, minimum=1)
# A check's claim older than this is abandoned (its worker died): the source may be checked again.
HEALTH_CHECK_STALE_CLAIM_SECONDS = env.integer("HEALTH_CHECK_STALE_CLAIM_SECONDS", 900, minimum=1)

# --- Webhooks (webhooks app) -------------------------------------------------
# Signed deliveries of events (Standard Webhooks). A webhook URL is a destination under the same egress
# policy as data sources (DATASOURCE_ALLOWED_NETWORKS; link-local and metadata addresses never).
# WEBHOOK_TIMEOUT_SECONDS: one delivery attempt (connect, send, status line), default 10.
# A failed attempt is retried after a random delay in [0, min(MAX, BASE * 2**(attempt-1))] (exponential
# backoff with full jitter), up to WEBHOOK_MAX_ATTEMPTS attempts in all (then the delivery is `failed`).
# WEBHOOK_DISABLE_AFTER_FAILURES consecutive failed attempts (any delivery) disable the webhook (audited).
WEBHOOK_TIMEOUT_SECONDS = env.number("WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1)
WEBHOOK_RETRY_BASE_SECONDS = env.number("WEBHOOK_RETRY_BASE_SECONDS", 5.0, minimum=0)
WEBHOOK_RETRY_MAX_SECONDS = env.number("WEBHOOK_RETRY_MAX_SECONDS", 3600.0, minimum=0)
WEBHOOK_MAX_ATTEMPTS = env.integer("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
WEBHOOK_DISABLE_AFTER_FAILURES = env.integer("WEBHOOK_DISABLE_AFTER_FAILURES", 15, minimum=1)

# --- Change plans and change sets (changes app) -----------------------------
# A saved plan can be applied this long.
CHANGE_PLAN_TTL_SECONDS = env.integer("CHANGE_PLAN_TTL_SECONDS", 3600, minimum=1)
CHANGE_SET_TTL_SECONDS = env.integer("CHANGE_SET_TTL_SECONDS", 3600, minimum=1)
# Days a closed (applied, cancelled, expired, failed) plan or change set is kept, then deleted.
CHANGES_RETENTION_DAYS = env.integer("CHANGES_RETENTION_DAYS", 30, minimum=1)
# The admin's messages live in the server-side session, not a signed cookie: a webhook's new signing
# secret is shown once through one and must not travel back and forth in the browser's cookies.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
CHANGE_SET_MAX_ITEMS = env.integer("CHANGE_SET_MAX_ITEMS", 200, minimum=1)
CHANGE_SET_CONCURRENCY = env.integer("CHANGE_SET_CONCURRENCY", 8, minimum=1)  # threads testing one set's items
# Every N items of a change set count as one connection test against the per-minute rates.
CHANGE_SET_ITEMS_PER_TEST_COUNT = env.integer("CHANGE_SET_ITEMS_PER_TEST_COUNT", 25, minimum=1)

# --- Security (production) -------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.boolean("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env.boolean("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env.boolean("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env.integer("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)  # 0: no HSTS
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "organizations.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["organizations.permissions.ScopePermission"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "core.parsers.MergePatchJSONParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "core.filters.FilterSetBackend",
        "rest_framework.filters.SearchFilter",
        "core.filters.StrictOrderingFilter",
    ],
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Data-source control plane API",
    "DESCRIPTION": "Data sources, credentials, schema cache and workflows, updated safely.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "DataSourceStatusEnum": "datasources.models.DataSourceStatus",
        "HealthStateEnum": "datasources.models.HealthState",
        "NodeKindEnum": "workflows.models.NodeKind",
        "RedivisSourceKindEnum": ["dataset", "workflow"],
        "WorkflowKindEnum": ["workflow"],
        "WorkflowDataSourceKindEnum": ["dataSource"],
        "ChangePlanStatusEnum": "changes.models.PlanStatus",
        "ChangeSetStatusEnum": "changes.models.ChangeSetStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "datasources.api.openapi_docs.postprocess_datasource_schema",
        "core.openapi.postprocess_errors",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.log_level("LOG_LEVEL", "INFO")},
}

# --- Request bodies: size and depth limits (issue 12, part 3) -----------------------------------------
# A body longer than REQUEST_BODY_MAX_BYTES (default 2 MiB) is answered 413 PAYLOAD_TOO_LARGE from its
# Content-Length, before anything reads it (core.middleware.BodyLimitMiddleware); a chunked body is
# read here up to the limit. Django's own limit on request.body and forms follows the same number.
# JSON bodies (and JSON sent as a form) nest at most REQUEST_JSON_MAX_DEPTH (default 64) levels; NUL,
# lone surrogates, invalid UTF-8, non-finite numbers and integers beyond 64 bits are refused in every
# key and value of every JSON, merge-patch, form and XML body (400 naming the field: core/parsers.py).
REQUEST_BODY_MAX_BYTES = env.integer("REQUEST_BODY_MAX_BYTES", 2 * 1024 * 1024, minimum=1)
REQUEST_JSON_MAX_DEPTH = env.integer("REQUEST_JSON_MAX_DEPTH", 64, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = ["core.parsers.JSONParser", "core.parsers.MergePatchJSONParser"]
MIDDLEWARE.insert(MIDDLEWARE.index("core.middleware.RequestIdMiddleware") + 1,
                  "core.middleware.BodyLimitMiddleware")

# --- Health probes: /healthz and /readyz (issue 17; core/health.py) ----------------------------------
# A kubelet or load balancer probes over plain HTTP with the container's own address as Host (pod or
# target IP, not in ALLOWED_HOSTS): ProbeMiddleware answers GET/HEAD on the two probe paths before host
# validation and the HTTPS redirect (their answers depend on neither). The redirect exemption covers
# the routes themselves as well.
MIDDLEWARE.insert(MIDDLEWARE.index("core.middleware.RequestIdMiddleware") + 1, "core.health.ProbeMiddleware")
SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^readyz$"]

# --- Observability: structured logs, request ids, Prometheus metrics (issue 17) ------------------------
# LOG_FORMAT: "json" (default with DEBUG off: one JSON object per line, python-json-logger) or "text"
# (default with DEBUG on, `make run`). Every line carries the request id (core.logging.RequestIdFilter);
# URL passwords and secret-named values are masked in every line (core.logging.scrub). One access-log
# line per request (logger core.access: request_id, actor, route, method, path, status, duration_ms).
# Celery workers and beat log through the same LOGGING (config/celery.py), with the enqueuing
# request's id. The request id comes from a valid incoming X-Request-ID, else a new one (core/request_id.py).
from core.logging import logging_config  # noqa: E402

LOG_FORMAT = (env.text("LOG_FORMAT").strip() or ("text" if DEBUG else "json")).lower()
try:
    LOGGING = logging_config(LOG_FORMAT, env.log_level("LOG_LEVEL", "INFO"))
except ValueError as _exc:
    sys.exit(str(_exc))
# The access log and request metrics time everything inside the request id (refusals included);
# /metrics is answered right after them, before sessions, authentication and the HTTPS redirect.
MIDDLEWARE.insert(MIDDLEWARE.index("core.middleware.RequestIdMiddleware") + 1, "core.access_log.AccessLogMiddleware")
MIDDLEWARE.insert(MIDDLEWARE.index("core.access_log.AccessLogMiddleware") + 1, "core.metrics.MetricsEndpointMiddleware")
# GET /metrics (Prometheus text format). METRICS_TOKEN: the scraper sends "Authorization: Bearer <token>".
# METRICS_ALLOWED_NETWORKS: CIDRs the scraper's address (REMOTE_ADDR) must be in. Each one set must
# pass; with neither set, loopback only. Several processes: PROMETHEUS_MULTIPROC_DIR (see core/metrics.py).
METRICS_TOKEN = env.text("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env.networks("METRICS_ALLOWED_NETWORKS")

# --- Performance (issue 18) ---------------------------------------------------------------------------
# Authenticated-token cache (organizations/token_cache.py): a token resolved in the last
# TOKEN_CACHE_SECONDS (0: off) costs no SQL statement; each process keeps TOKEN_CACHE_SIZE of them.
# Any change to a token, membership, user or organization voids every process's entries at once
# through the cache above (CACHE_URL: Redis when several processes serve; gunicorn.conf.py turns the
# token cache off for several workers on the process-local default).
TOKEN_CACHE_SECONDS = env.integer("TOKEN_CACHE_SECONDS", 30, minimum=0)
TOKEN_CACHE_SIZE = env.integer("TOKEN_CACHE_SIZE", 1024, minimum=1)
# Serving (gunicorn.conf.py): each worker process runs GUNICORN_THREADS threads (gthread), so a slow
# connection test holds one thread, not a process. At most TEST_SLOTS_PER_PROCESS threads of a process
# run connection tests at once (default: all but two), the rest keep serving, and one organization
# holds at most all but one of a process's (another's test finds a slot); at most
# DATASOURCE_TEST_CONCURRENCY_PER_ORG tests of one organization run at once across all processes
# (counted in the cache above, each slot a lease of the test's connection_timeout plus
# DATASOURCE_TEST_LEASE_MARGIN_SECONDS, so a crashed worker cannot keep one). Past either bound:
# 429 RATE_LIMITED with Retry-After, nothing changed. Each thread has its own database connection
# (CONN_MAX_AGE applies per thread): PostgreSQL sees up to workers x GUNICORN_THREADS of them.
GUNICORN_THREADS = env.integer("GUNICORN_THREADS", 8, minimum=1)
TEST_SLOTS_PER_PROCESS = env.integer("TEST_SLOTS_PER_PROCESS", max(1, GUNICORN_THREADS - 2), minimum=1)
DATASOURCE_TEST_CONCURRENCY_PER_ORG = env.integer("DATASOURCE_TEST_CONCURRENCY_PER_ORG", 4, minimum=1)
DATASOURCE_TEST_LEASE_MARGIN_SECONDS = env.integer("DATASOURCE_TEST_LEASE_MARGIN_SECONDS", 15, minimum=0)

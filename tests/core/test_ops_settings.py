"""Environment variables: a value the settings cannot use stops the start with one line naming it.

Every variable config/settings.py and gunicorn.conf.py read goes through config/envvars.py: not a
number, below its minimum, an unknown log level, a URL with an unknown scheme or a bad port, a malformed
CIDR in DATASOURCE_ALLOWED_NETWORKS. Each refusal is one line on stderr (no traceback), exit status 1,
naming the variable and the bad value, and never a URL's password. They used to be tracebacks
(ValueError, KeyError: 'ENGINE', ImproperlyConfigured, "Unable to configure root logger"), or, for
negative numbers and malformed networks, accepted silently.
"""

from __future__ import annotations

import sys

import pytest

from tests.core.test_settings_security import BIN, MANAGE, clean_env, run

SECRET = "hunter2-" + "x" * 8

BAD_VALUES = [
    # Not a number, or not the kind of value the variable holds (defect 3 of the audit).
    ("CONN_MAX_AGE", "abc", "CONN_MAX_AGE must be a whole number, not 'abc'."),
    ("DATASOURCE_TEST_RATE_PER_TOKEN", "abc", "DATASOURCE_TEST_RATE_PER_TOKEN must be a whole number, not 'abc'."),
    ("SECURE_HSTS_SECONDS", "abc", "SECURE_HSTS_SECONDS must be a whole number, not 'abc'."),
    ("SCHEMA_REFRESH_TICK_SECONDS", "abc", "SCHEMA_REFRESH_TICK_SECONDS must be a number, not 'abc'."),
    ("SCHEMA_REFRESH_TICK_SECONDS", "nan", "SCHEMA_REFRESH_TICK_SECONDS must be a finite number, not 'nan'."),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG, not 'LOUD'."),
    ("DEBUG", "maybe", "DEBUG must be true or false, not 'maybe'."),
    ("DATABASE_URL", "notaurl", "DATABASE_URL is not a URL (scheme://...)"),
    ("DATABASE_URL", f"bogus://ops:{SECRET}@db/x", "DATABASE_URL has an unknown database scheme 'bogus'"),
    ("DATABASE_URL", f"postgres://ops:{SECRET}@db:port/x", "DATABASE_URL is not a valid URL: its port"),
    ("CACHE_URL", "bogus://x", "CACHE_URL has an unknown cache scheme 'bogus'"),
    ("CACHE_URL", f"redis://:{SECRET}@cache:port/1", "CACHE_URL is not a valid URL: its port"),
    # Below the minimum (defect 4).
    ("CONN_MAX_AGE", "-5", "CONN_MAX_AGE must be at least 0 (it is -5)."),
    ("DATASOURCE_TEST_RATE_PER_TOKEN", "-1", "DATASOURCE_TEST_RATE_PER_TOKEN must be at least 1 (it is -1)."),
    ("DATASOURCE_TEST_RATE_PER_ORG", "0", "DATASOURCE_TEST_RATE_PER_ORG must be at least 1 (it is 0)."),
    ("SCHEMA_REFRESH_TICK_SECONDS", "-1", "SCHEMA_REFRESH_TICK_SECONDS must be at least 0.1 (it is -1)."),
    ("WEBHOOK_MAX_ATTEMPTS", "0", "WEBHOOK_MAX_ATTEMPTS must be at least 1 (it is 0)."),
    ("EVENTS_RETENTION_DAYS", "-3", "EVENTS_RETENTION_DAYS must be at least 1 (it is -3)."),
    ("REQUEST_BODY_MAX_BYTES", "-1", "REQUEST_BODY_MAX_BYTES must be at least 1 (it is -1)."),
    ("SECURE_HSTS_SECONDS", "-1", "SECURE_HSTS_SECONDS must be at least 0 (it is -1)."),
    ("WEBHOOK_TIMEOUT_SECONDS", "0", "WEBHOOK_TIMEOUT_SECONDS must be at least 0.1 (it is 0)."),
    # Malformed networks (defect 5).
    ("DATASOURCE_ALLOWED_NETWORKS", "notacidr", "DATASOURCE_ALLOWED_NETWORKS: 'notacidr' is not a network (CIDR)"),
    ("DATASOURCE_ALLOWED_NETWORKS", "10.0.0.0/8,127.0.0.1/33",
     "DATASOURCE_ALLOWED_NETWORKS: '127.0.0.1/33' is not a network (CIDR)"),
]


def one_line_refusal(result, variable: str, expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    assert result.stderr.strip().startswith(variable), output
    assert len(result.stderr.strip().splitlines()) == 1, output
    assert expected in result.stderr, output
    assert SECRET not in output


@pytest.mark.parametrize(("variable", "value", "expected"), BAD_VALUES,
                         ids=[f"{name}={value}" for name, value, _ in BAD_VALUES])
def test_manage_py_refuses_a_bad_value_in_one_line(tmp_path, variable, value, expected):
    result = run([*MANAGE, "check"], clean_env(tmp_path, **{"DEBUG": "true", variable: value}))
    one_line_refusal(result, variable, expected)


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("CONN_MAX_AGE", "abc", "CONN_MAX_AGE must be a whole number, not 'abc'."),
    ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY must be at least 1 (it is 0)."),
    ("PORT", "http", "PORT must be a whole number, not 'http'."),
])
def test_gunicorn_refuses_a_bad_value_in_one_line(tmp_path, variable, value, expected):
    argv = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--check-config", "config.wsgi:application"]
    one_line_refusal(run(argv, clean_env(tmp_path, DEBUG="true", **{variable: value})), variable, expected)


def test_celery_beat_refuses_an_unknown_log_level_in_one_line(tmp_path):
    argv = [sys.executable, "-m", "celery", "-A", "config", "beat", "--schedule", str(tmp_path / "beat-schedule")]
    result = run(argv, clean_env(tmp_path, DEBUG="true", LOG_LEVEL="LOUD"))
    one_line_refusal(result, "LOG_LEVEL", "LOG_LEVEL must be one of")


def test_the_documented_zeros_and_defaults_start(tmp_path):
    result = run([*MANAGE, "check"], clean_env(tmp_path, DEBUG="true", CONN_MAX_AGE="0", SECURE_HSTS_SECONDS="0",
                                               TOKEN_CACHE_SECONDS="0", LOG_LEVEL="warning", CACHE_URL="",
                                               DATASOURCE_ALLOWED_NETWORKS="10.0.0.0/8, 192.168.1.7"))
    assert result.returncode == 0, result.stdout + result.stderr

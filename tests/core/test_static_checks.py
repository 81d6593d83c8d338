"""Static and deployment checks, run as the tools themselves would run in CI.

- ``manage.py check --deploy`` as the README documents it (``--fail-level WARNING``): with production
  settings from the environment (DEBUG off, a long random SECRET_KEY, ENCRYPTION_KEYS, real
  ALLOWED_HOSTS, the SECURE_* defaults) no warning at all; with any security setting turned off,
  a non-zero exit naming the warning.
- ``ruff`` and ``mypy`` (django and DRF stubs, ``mypy.ini``) clean on every production package;
  ``lint-imports`` keeps the layer contracts of ``.importlinter``.
- ``bandit`` (``.bandit``): no medium or high finding that is not justified inline (``# nosec``).

A missing tool fails in CI and skips locally, like a missing service.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IN_CI = os.environ.get("CI") == "true"
# Every production package is typed and lint-clean (mypy's own list is in mypy.ini).
TYPED = ["config", "core", "organizations", "eventlog", "datasources", "workflows", "webhooks", "changes"]


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        message = f"{name} is not installed in this environment (see requirements.txt)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return str(path)


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def production_env() -> dict[str, str]:
    """The environment of a production deployment (config/settings.py reads everything from it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_", "SESSION_", "CSRF_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="dsp.example.com",
        CSRF_TRUSTED_ORIGINS="https://dsp.example.com",
        ENCRYPTION_KEYS="k1:" + secrets.token_urlsafe(32),
    )
    return env


def documented_deploy_checks() -> list[list[str]]:
    """Every ``manage.py check --deploy`` command line of the README, as argv for this interpreter."""
    commands = []
    for line in (ROOT / "README.md").read_text().splitlines():
        if "manage.py check --deploy" in line:
            argv = shlex.split(line.strip().strip("`"))
            argv = [sys.executable, *argv[argv.index("manage.py"):]]
            if argv not in commands:
                commands.append(argv)
    assert commands, "README.md documents no `manage.py check --deploy`"
    return commands


def test_deploy_check_passes_with_production_settings():
    for command in [[sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                    *documented_deploy_checks()]:
        result = _run(command, env=production_env())
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command}: {output}"
        assert "System check identified no issues" in output, output


@pytest.mark.parametrize(("setting", "value", "warning"), [
    ("SESSION_COOKIE_SECURE", "false", "security.W012"),
    ("CSRF_COOKIE_SECURE", "false", "security.W016"),
    ("SECURE_SSL_REDIRECT", "false", "security.W008"),
    ("SECURE_HSTS_SECONDS", "0", "security.W004"),
])
def test_documented_deploy_check_fails_on_an_insecure_setting(setting, value, warning):
    """The deploy check the README documents exits non-zero on a security *warning* (Django's
    default fail level is ERROR, and every security check is a warning)."""
    env = {**production_env(), setting: value}
    for command in documented_deploy_checks():
        result = _run(command, env=env)
        output = result.stdout + result.stderr
        assert warning in output, output
        assert result.returncode != 0, f"{shlex.join(command[1:])} passes with {setting}={value}: {output}"


def test_deploy_check_catches_a_forgotten_secret_key():
    """The check above is not vacuous: without SECRET_KEY the settings refuse to load (one line
    naming it; tests/core/test_settings_security.py covers the other entry points)."""
    env = production_env()
    del env["SECRET_KEY"]
    result = _run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=env)
    assert result.returncode != 0, result.stdout + result.stderr
    assert result.stderr.startswith("SECRET_KEY is not set: "), result.stderr


def test_ruff_is_clean_on_the_typed_code():
    result = _run([_tool("ruff"), "check", "--no-cache", *TYPED])
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_with_the_django_and_drf_stubs():
    result = _run([_tool("mypy"), "--config-file", "mypy.ini", "--no-incremental"], timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.strip().startswith("Success"), output
    configured = (ROOT / "mypy.ini").read_text()
    listed = configured.split("files =", 1)[1].split("exclude", 1)[0].replace(",", " ").split()
    assert sorted(listed) == sorted(TYPED), f"mypy.ini's files must be every production package: {listed}"


def test_bandit_reports_no_medium_or_high_finding():
    result = _run([_tool("bandit"), "--ini", ".bandit", "-ll", "-q", "-f", "json"])
    try:
        report = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"bandit did not produce a report: {result.stdout[-2000:]} {result.stderr[-2000:]}")
    findings = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_severity']}: {r['issue_text']}"
                for r in report["results"]]
    assert not findings, "\n".join(findings)
    assert not report["errors"], report["errors"]
    assert report["metrics"]["_totals"]["loc"] > 1000  # it did scan the application


def test_import_contracts_hold():
    """The layers of README "Architecture" (.importlinter): no cycle, no upward import, no bench import."""
    result = _run([_tool("lint-imports"), "--no-cache"], timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "0 broken" in output, output

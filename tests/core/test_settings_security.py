"""Secrets in production settings (issue 12, part 4), through the entry points an operator runs.

With DEBUG off, ``manage.py``, gunicorn (``config.wsgi``) and ``celery -A config`` refuse to start
without a strong SECRET_KEY or without ENCRYPTION_KEYS: one line on stderr naming the variable, a
non-zero exit status, no traceback. With DEBUG on (``make run``) neither is needed. The key derived
from SECRET_KEY encrypts on local runs only, and what it encrypted stays readable once
ENCRYPTION_KEYS is configured, until ``rotate_encryption_key`` moves it to the configured key.

Each subprocess gets a clean environment (the suite's own SECRET_KEY and ENCRYPTION_KEYS, from
config/settings_test.py, are not inherited).
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from datasources import crypto
from datasources.models import Credential, DataSource
from datasources.services.credentials import load_secrets, write_secrets

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEV_KEY = "django-insecure-local-development-key-do-not-deploy-0123456789"  # the DEBUG-on key


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def strong_secret_key() -> str:
    return secrets.token_urlsafe(50)


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """Only what a bare shell has, a throwaway SQLite database, and ``values``."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "CELERY_BROKER_URL": "memory://",
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(values)
    return env


def run(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:  # it started and kept running: it did not refuse
        pytest.fail(f"{argv} did not refuse to start within {timeout} s; stderr: {exc.stderr!r}")


def refusal_lines(result: subprocess.CompletedProcess, variable: str) -> list[str]:
    """The lines of stderr naming ``variable``; asserts there is exactly one and no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{variable} is ")]
    assert len(lines) == 1, output
    return lines


MANAGE = [sys.executable, "manage.py"]


@pytest.mark.parametrize("command", [["check"], ["migrate", "--check"]])
def test_manage_py_refuses_to_start_without_secret_key(tmp_path, command):
    result = run([*MANAGE, *command], clean_env(tmp_path, ENCRYPTION_KEYS=f"k1:{_key()}"))
    [line] = refusal_lines(result, "SECRET_KEY")
    assert line.startswith("SECRET_KEY is not set: ")
    assert result.stderr.strip() == line  # the whole message is that one line


def test_manage_py_refuses_the_insecure_development_key(tmp_path):
    env = clean_env(tmp_path, SECRET_KEY=DEV_KEY, ENCRYPTION_KEYS=f"k1:{_key()}", DEBUG="false")
    [line] = refusal_lines(run([*MANAGE, "check"], env), "SECRET_KEY")
    assert "django-insecure-" in line


@pytest.mark.parametrize("weak", ["changeme", "a" * 64, "django-insecure-" + secrets.token_urlsafe(50)],
                         ids=["short", "one-character", "insecure-prefix"])
def test_manage_py_refuses_a_weak_secret_key(tmp_path, weak):
    env = clean_env(tmp_path, SECRET_KEY=weak, ENCRYPTION_KEYS=f"k1:{_key()}")
    refusal_lines(run([*MANAGE, "check"], env), "SECRET_KEY")


@pytest.mark.parametrize("keys", [None, "", " , "])
def test_manage_py_refuses_to_start_without_encryption_keys(tmp_path, keys):
    env = clean_env(tmp_path, SECRET_KEY=strong_secret_key())
    if keys is not None:
        env["ENCRYPTION_KEYS"] = keys
    result = run([*MANAGE, "migrate", "--check"], env)
    [line] = refusal_lines(result, "ENCRYPTION_KEYS")
    assert line.startswith("ENCRYPTION_KEYS is not set: ")
    assert result.stderr.strip() == line


@pytest.mark.parametrize("conf", ["gunicorn.conf.py", "empty.conf.py"])
def test_gunicorn_refuses_to_start_and_does_not_respawn_workers(tmp_path, conf):
    """With the repository's gunicorn.conf.py the master loads the settings and refuses before any
    worker forks (exit 1); without it a worker that cannot load them exits with gunicorn's "failed
    to boot" status (3), so the arbiter stops instead of starting new workers forever."""
    env = clean_env(tmp_path, SECRET_KEY=strong_secret_key())
    if conf == "empty.conf.py":
        (tmp_path / conf).write_text("")
        conf = str(tmp_path / conf)
    result = run([str(BIN / "gunicorn"), "--config", conf, "config.wsgi:application", "--bind", "127.0.0.1:0",
                  "--workers", "1", "--log-level", "warning", "--no-control-socket"],
                 env, timeout=60)
    refusal_lines(result, "ENCRYPTION_KEYS")
    assert result.returncode == (1 if conf == "gunicorn.conf.py" else 3), result.stderr


@pytest.mark.parametrize("service", [["worker", "--pool=solo"], ["beat", "--schedule", "{tmp}/beat-schedule"]])
def test_celery_refuses_to_start_without_secret_key(tmp_path, service):
    argv = [sys.executable, "-m", "celery", "-A", "config", *[a.format(tmp=tmp_path) for a in service]]
    result = run(argv, clean_env(tmp_path, ENCRYPTION_KEYS=f"k1:{_key()}"))
    refusal_lines(result, "SECRET_KEY")


def test_debug_on_starts_without_either_secret(tmp_path):
    """`make run` (DEBUG=true, nothing else set) keeps working, with the fixed development key:
    the demo token derived from it is the same on every run."""
    env = clean_env(tmp_path, DEBUG="true")
    result = run([*MANAGE, "check"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run([*MANAGE, "shell", "-c",
                  "from django.conf import settings; from datasources import crypto;"
                  "from datasources.management.commands.seed_demo import demo_token_value;"
                  "print(settings.SECRET_KEY, crypto.load_keyring().primary_id, demo_token_value())"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    secret_key, primary, token = result.stdout.splitlines()[-1].split()
    assert secret_key == DEV_KEY
    assert primary == crypto.DERIVED_KEY_ID
    assert token.startswith("dsp_demo_")


def test_production_settings_start(tmp_path):
    """The refusals above are not the only outcome: with both secrets set, DEBUG off starts."""
    env = clean_env(tmp_path, SECRET_KEY=strong_secret_key(), ENCRYPTION_KEYS=f"k1:{_key()}")
    result = run([*MANAGE, "check"], env)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the derived key, in process --------------------------------------------------------------


def test_the_derived_key_never_encrypts_with_debug_off(settings):
    settings.DEBUG = False
    settings.ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="ENCRYPTION_KEYS"):
        crypto.encrypt("secret", row_id=1, field="password")
    settings.ENCRYPTION_KEYS = [f"k1:{_key()}"]
    assert crypto.encrypt("secret", row_id=1, field="password")[0] == "k1"


def test_the_suite_itself_runs_with_debug_off_and_a_configured_key(settings):
    assert settings.DEBUG is False
    assert settings.ENCRYPTION_KEYS and crypto.load_keyring().primary_id != crypto.DERIVED_KEY_ID
    assert not settings.SECRET_KEY.startswith("django-insecure-")


def test_local_secrets_move_to_encryption_keys_and_survive_a_secret_key_rotation(settings, org, capsys):
    """From a local run (DEBUG on, derived key) to ENCRYPTION_KEYS: the derived key still reads
    what it wrote while SECRET_KEY is unchanged; rotate_encryption_key moves it to the configured
    key; after that, changing SECRET_KEY leaves every secret readable."""
    source = DataSource.objects.create(organization=org, reference_id="sLOCAL1", name="local", type="postgresql")
    settings.DEBUG, settings.ENCRYPTION_KEYS = True, []
    write_secrets(source, {"password": "local-secret"})
    assert Credential.objects.get(data_source=source).key_id == crypto.DERIVED_KEY_ID

    settings.DEBUG, settings.ENCRYPTION_KEYS = False, [f"k1:{_key()}"]
    assert load_secrets(source) == {"password": "local-secret"}  # read with the derived key
    capsys.readouterr()
    call_command("rotate_encryption_key")
    assert "re-encrypted=1 already_current=0 failed=0" in capsys.readouterr().out
    assert Credential.objects.get(data_source=source).key_id == "k1"

    settings.SECRET_KEY = strong_secret_key()  # SECRET_KEY rotated
    assert load_secrets(source) == {"password": "local-secret"}


def test_processes_the_suite_starts_share_its_keys(tmp_path):
    """config/settings_test.py puts the run's keys into the environment: a manage.py (or gunicorn,
    celery worker) started with this process's environment reads what this process encrypted."""
    key_id, ciphertext = crypto.encrypt("shared-secret", row_id=7, field="password")
    assert key_id != crypto.DERIVED_KEY_ID
    code = (f"from datasources import crypto; "
            f"print(crypto.decrypt({key_id!r}, {ciphertext!r}, row_id=7, field='password'))")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    result = run([*MANAGE, "shell", "-c", code], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "shared-secret"


@pytest.mark.parametrize(("keys", "named"), [
    ("garbage", "entry 1 is not"),
    ("k1:short", "'k1' is not 32 bytes"),
    (f"k1:{base64.urlsafe_b64encode(bytes(range(16))).decode()}", "'k1' is not 32 bytes"),  # fixed: xdist
    ("k1:" + "!" * 43, "'k1' is not 32 bytes"),
    ("__KEY__,k2:", "entry 2 is not"),
    ("__KEY__,__KEY__", "'k1' is used twice"),
])
@pytest.mark.parametrize("debug", ["false", "true"])
def test_manage_py_refuses_malformed_encryption_keys_with_one_line(tmp_path, keys, named, debug):
    """A malformed key stops every process at start (DEBUG on too), naming the entry by its id and
    never printing key material; before, it surfaced as a traceback when a secret was first used."""
    good = _key()
    value = keys.replace("__KEY__", f"k1:{good}")
    env = clean_env(tmp_path, SECRET_KEY=strong_secret_key(), ENCRYPTION_KEYS=value, DEBUG=debug)
    result = run([*MANAGE, "check"], env)
    [line] = refusal_lines(result, "ENCRYPTION_KEYS")
    assert line.startswith("ENCRYPTION_KEYS is malformed: ") and named in line, line
    assert result.stderr.strip() == line
    assert good not in line and "short" not in line


def test_well_formed_keys_start(tmp_path):
    padded = base64.urlsafe_b64encode(os.urandom(32)).decode()  # with its '=' padding
    env = clean_env(tmp_path, SECRET_KEY=strong_secret_key(), ENCRYPTION_KEYS=f"k2:{_key()}, k1:{padded}",
                    DEBUG="false")
    result = run([*MANAGE, "check"], env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_local_runs_share_one_cache_across_processes(tmp_path):
    """`make run` is several processes (the server, its Celery worker and beat) and a local shell is one
    more: with DEBUG on and no CACHE_URL they share a file cache under ./var/cache, so a token revoked
    from the shell voids the server's cached copy at once. With DEBUG off the default stays per process."""
    import uuid

    key = f"shared-{uuid.uuid4().hex}"
    write = f"from django.core.cache import cache; cache.set({key!r}, 'seen', 60)"
    read = f"from django.core.cache import cache; print(cache.get({key!r})); cache.delete({key!r})"
    local = clean_env(tmp_path, DEBUG="true")
    assert run([str(BIN / "python"), "manage.py", "shell", "-c", write], local).returncode == 0
    shared = run([str(BIN / "python"), "manage.py", "shell", "-c", read], local)
    assert shared.returncode == 0 and shared.stdout.split()[-1] == "seen", shared.stderr
    deployed = clean_env(tmp_path, SECRET_KEY=strong_secret_key(), ENCRYPTION_KEYS=f"k1:{_key()}", DEBUG="false")
    assert run([str(BIN / "python"), "manage.py", "shell", "-c", write], deployed).returncode == 0
    alone = run([str(BIN / "python"), "manage.py", "shell", "-c", read], deployed)
    assert alone.returncode == 0 and alone.stdout.split()[-1] == "None", alone.stderr

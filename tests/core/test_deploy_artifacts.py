"""The deploy artifacts (Dockerfile, .dockerignore, compose.yaml) and `make run PORT=...`, checked without
Docker (no daemon or registry here; the image is built only where `docker info` succeeds).

- compose.yaml: the production shape (web gunicorn, worker, exactly one beat, PostgreSQL, Redis, and
  migrate as a one-off step the others wait for); every Django process has the same environment and
  settings module (the image's); DEBUG off; the secrets are required by interpolation, never written.
- That environment, as compose would give it (the Dockerfile's ENV, then the service's environment,
  interpolated with placeholder secrets), with DATABASE_URL pointed at the local PostgreSQL test server
  and nothing else: the migrate service's own command migrates a fresh database, then every Django
  service passes `manage.py check --deploy --fail-level WARNING` and `manage.py migrate --check`.
- The image's command (gunicorn with gunicorn.conf.py) serves with that environment: its HEALTHCHECK
  command passes, /readyz answers 200 to a plain-HTTP probe, and the README's first steps (organization,
  admin user, token, a first data source through the API) work on it.
- The Dockerfile: slim Python 3.11, non-root, requirements installed, the collectstatic step (run here
  as written), a HEALTHCHECK on /healthz, a command naming modules that exist.
- The Makefile: `make run PORT=...`; a busy port stops `make run` with one line before anything starts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DJANGO_SERVICES = ("migrate", "web", "worker", "beat")
REQUIRED_SECRETS = ("SECRET_KEY", "ENCRYPTION_KEYS", "ALLOWED_HOSTS", "POSTGRES_PASSWORD")
PUBLIC_HOST = "dsp.example.com"


# --- compose.yaml, read and interpolated as `docker compose` does ------------------------------------


class MissingVariable(Exception):
    pass


_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
                       r"|(?P<bare>[A-Za-z_]\w*))")


def interpolate(node, variables: dict[str, str]):
    """Compose's interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?message}`` and ``${VAR?message}`` (the ``?`` forms fail when the variable is missing)."""
    if isinstance(node, dict):
        return {key: interpolate(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, variables) for value in node]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"] or match["bare"], match["op"], match["arg"]
        value = variables.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op in ("-", ":-"):
            return arg if missing else value
        if op in ("?", ":?"):
            if missing:
                raise MissingVariable(f"required variable {name} is missing a value: {arg}")
            return value
        return value or ""

    return _VARIABLE.sub(substitute, node)


def raw_compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def placeholder_variables(**extra: str) -> dict[str, str]:
    """What an operator puts in .env: made-up values of the right shape (none of them real)."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ENCRYPTION_KEYS": "k1:" + secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": PUBLIC_HOST,
        "POSTGRES_PASSWORD": "placeholder-" + secrets.token_hex(8),
        **extra,
    }


def compose(variables: dict[str, str]) -> dict:
    return interpolate(raw_compose(), variables)


def as_list(command) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def heartbeat_files(master: int) -> list[str]:
    """The folders of the (unlinked) heartbeat files gunicorn's workers hold open."""
    workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    folders = []
    for worker in workers:
        for fd in Path(f"/proc/{worker}/fd").iterdir():
            target = os.readlink(fd)
            if "gunicorn" in target.rsplit("/", 1)[-1]:
                folders.append(target.rsplit("/", 1)[0])
    return folders


# --- Dockerfile --------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    out = []
    for line in logical:
        instruction, _, arguments = line.strip().partition(" ")
        out.append((instruction.upper(), arguments.strip()))
    return out


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            for item in shlex.split(arguments):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def dockerfile_cmd() -> list[str]:
    (cmd,) = [json.loads(args) for instruction, args in dockerfile_instructions() if instruction == "CMD"]
    return cmd


CONTAINER_METRICS_DIR = "/app/var/metrics"
LOCAL_METRICS_DIR = ROOT / "var" / "deploy-test-metrics"  # the metrics volume, for processes run here


def service_env(services: dict, name: str, **overrides: str) -> dict[str, str]:
    """The process environment of a service's container: the image's ENV, then the service's."""
    environment = services[name].get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {**dockerfile_env(), **{k: "" if v is None else str(v) for k, v in environment.items()}, **overrides}


def local_env(services: dict, name: str, **overrides: str) -> dict[str, str]:
    """``service_env`` for a process run on this machine: the metrics volume is a local folder."""
    env = service_env(services, name, **overrides)
    if env.get("PROMETHEUS_MULTIPROC_DIR") == CONTAINER_METRICS_DIR:
        LOCAL_METRICS_DIR.mkdir(parents=True, exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(LOCAL_METRICS_DIR)
    return env


def on_local_database(services: dict, name: str, url: str) -> str:
    """The service's DATABASE_URL moved to the local test server (its query options, e.g. connect_timeout, kept)."""
    query = urllib.parse.urlsplit(service_env(services, name)["DATABASE_URL"]).query
    return f"{url}?{query}" if query else url


def run(argv: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def local_argv(argv: list[str]) -> list[str]:
    """A container's command with its `python` as this virtualenv's interpreter."""
    return [sys.executable, *argv[1:]] if argv[0] == "python" else argv


# --- compose: shape ----------------------------------------------------------------------------------


def test_compose_runs_the_production_shape():
    services = compose(placeholder_variables())["services"]
    assert set(services) == {"web", "worker", "beat", "migrate", "db", "redis"}

    assert as_list(services["web"]["command"]) == dockerfile_cmd()
    assert dockerfile_cmd()[0] == "gunicorn" and "config.wsgi:application" in dockerfile_cmd()
    assert as_list(services["worker"]["command"])[:4] == ["celery", "-A", "config", "worker"]
    assert as_list(services["beat"]["command"])[:4] == ["celery", "-A", "config", "beat"]
    assert as_list(services["migrate"]["command"]) == ["python", "manage.py", "migrate", "--noinput"]
    # Exactly one beat: one replica, and no worker runs an embedded beat (-B) besides it.
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1
    for name in ("web", "worker", "migrate"):
        command = as_list(services[name]["command"])
        assert "beat" not in command and "-B" not in command and "--beat" not in command, name

    assert services["db"]["image"].startswith("postgres")
    assert services["redis"]["image"].startswith("redis")
    env = service_env(services, "web")
    assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"]
    assert "connect_timeout=" in env["DATABASE_URL"]  # an unreachable database fails /readyz, not hangs it
    assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    assert env["CACHE_URL"].startswith("redis://redis:6379/")
    assert env["SCHEMA_REFRESH_ASYNC"] == "true"  # a worker runs: refreshes are queued


def test_migrations_are_a_one_off_step_the_processes_wait_for():
    services = compose(placeholder_variables())["services"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["db"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert services[name]["restart"] != "no", name
    for name in ("db", "redis"):
        assert services[name]["healthcheck"]["test"], name
    # The image's HEALTHCHECK probes HTTP: off where nothing serves it.
    for name in ("beat", "migrate"):
        assert services[name]["healthcheck"] == {"disable": True}, name
    assert "celery" in " ".join(as_list(services["worker"]["healthcheck"]["test"]))


def test_every_django_process_has_the_same_environment_and_settings_module():
    services = compose(placeholder_variables())["services"]
    envs = {name: service_env(services, name) for name in DJANGO_SERVICES}
    assert all(env == envs["web"] for env in envs.values()), "the Django services' environments differ"
    module = envs["web"]["DJANGO_SETTINGS_MODULE"]
    assert module == dockerfile_env()["DJANGO_SETTINGS_MODULE"] == "config.settings"
    assert importlib.util.find_spec(module) is not None
    # The entry points default to the same module (an explicit DJANGO_SETTINGS_MODULE wins everywhere).
    for path in ("manage.py", "gunicorn.conf.py", "config/boot.py", "config/celery.py"):
        pattern = rf"""setdefault\(["']DJANGO_SETTINGS_MODULE["'], ["']{re.escape(module)}["']\)"""
        assert re.search(pattern, (ROOT / path).read_text()), path
    assert envs["web"]["DEBUG"] == "false"


def test_secrets_are_required_by_interpolation_and_never_written():
    raw = raw_compose()
    environment = raw["x-django"]["environment"]
    for name in ("SECRET_KEY", "ENCRYPTION_KEYS", "ALLOWED_HOSTS"):
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", environment[name]), (name, environment[name])
    assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]
    assert raw["services"]["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    for name in REQUIRED_SECRETS:
        variables = placeholder_variables()
        del variables[name]
        with pytest.raises(MissingVariable, match=name):
            compose(variables)
        with pytest.raises(MissingVariable, match=name):
            compose({**variables, name: ""})
    # Neither the .env that holds them nor local state goes into the image or into git.
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".env", ".git", ".venv", "db.sqlite3", "var/"):
        assert entry in dockerignore, entry
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_metrics_can_be_configured_and_sum_every_process():
    """/metrics under compose: the scraper's token and networks reach the containers from .env or the shell
    (compose has no env_file), and every web and worker process writes to one shared, writable directory
    (without one, /metrics showed one random gunicorn worker and no Celery worker)."""
    variables = {**placeholder_variables(), "METRICS_TOKEN": "scrape-" + secrets.token_hex(8),
                 "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8"}
    services = compose(variables)["services"]
    for name in DJANGO_SERVICES:
        env = service_env(services, name)
        assert env["METRICS_TOKEN"] == variables["METRICS_TOKEN"], name
        assert env["METRICS_ALLOWED_NETWORKS"] == "10.0.0.0/8", name
        assert env["PROMETHEUS_MULTIPROC_DIR"] == CONTAINER_METRICS_DIR, name
        volumes = [str(volume).split(":") for volume in services[name].get("volumes", [])]
        assert [source for source, target, *_ in volumes if target == CONTAINER_METRICS_DIR] == ["metrics"], name
    assert "metrics" in raw_compose()["volumes"]
    # Unset, they stay empty (loopback only), never a value written in compose.yaml.
    defaults = service_env(compose(placeholder_variables())["services"], "web")
    assert defaults["METRICS_TOKEN"] == defaults["METRICS_ALLOWED_NETWORKS"] == ""
    # The image creates the directory owned by the app's user (a new named volume copies it, owner included).
    runs = [args for instruction, args in dockerfile_instructions() if instruction == "RUN"]
    assert any("var/metrics" in args and "chown -R app:app var" in args for args in runs), runs
    # Each gunicorn start removes what processes of its container that are gone left there.
    conf = (ROOT / "gunicorn.conf.py").read_text()
    assert "def on_starting(" in conf and "remove_dead_files(" in conf


# --- compose: the environment really deploys ---------------------------------------------------------


@pytest.fixture(scope="module")
def deploy_database():
    """A fresh PostgreSQL database on the local test server, dropped afterwards."""
    require_service("127.0.0.1", 5432, "PostgreSQL")
    import psycopg

    name = f"dsp_deploy_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield {"name": name, "url": f"postgres://postgres@127.0.0.1:5432/{name}"}
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def migrated(deploy_database):
    """The migrate service's own command, with its environment, on the fresh database."""
    variables = placeholder_variables()
    services = compose(variables)["services"]
    env = local_env(services, "migrate", DATABASE_URL=on_local_database(services, "migrate", deploy_database["url"]))
    result = run(local_argv(as_list(services["migrate"]["command"])), env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Applying" in result.stdout, result.stdout
    return {**deploy_database, "variables": variables}


@pytest.mark.parametrize("service", DJANGO_SERVICES)
def test_service_environment_passes_the_deploy_check_and_has_every_migration(migrated, service):
    services = compose(migrated["variables"])["services"]
    env = local_env(services, service, DATABASE_URL=on_local_database(services, service, migrated["url"]))
    check = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "System check identified no issues" in check.stdout, check.stdout + check.stderr
    unapplied = run([sys.executable, "manage.py", "migrate", "--check"], env)
    assert unapplied.returncode == 0, unapplied.stdout + unapplied.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, path: str, *, host: str, method: str = "GET", token: str | None = None,
         body: dict | None = None, https_proxy: bool = False) -> tuple[int, dict | str]:
    headers = {"Host": host}
    if https_proxy:
        headers["X-Forwarded-Proto"] = "https"  # what the TLS-terminating proxy in front of web sets
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=method)
    try:
        with NO_REDIRECTS.open(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        if 300 <= error.code < 400:
            return error.code, {"Location": error.headers["Location"]}
        text = error.read().decode()
        return error.code, json.loads(text) if error.headers.get_content_type() == "application/json" else text


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx is raised as an HTTPError, to look at


NO_REDIRECTS = urllib.request.build_opener(_NoRedirect)


def test_the_image_command_serves_the_compose_environment(migrated):
    """gunicorn as the image starts it, with web's environment (local PostgreSQL and Redis instead of
    the `db` and `redis` hosts): the HEALTHCHECK passes, a kubelet-style probe is ready, and the README's
    first steps work on these settings: organization, admin user, token, a first data source."""
    require_service("127.0.0.1", 6379, "Redis")
    import redis

    port, queue = free_port(), f"deploy-test-{secrets.token_hex(4)}"
    variables = {**migrated["variables"], "DATASOURCE_ALLOWED_NETWORKS": "127.0.0.0/8"}
    services = compose(variables)["services"]
    env = local_env(
        services, "web", DATABASE_URL=on_local_database(services, "web", migrated["url"]), CELERY_BROKER_URL="redis://127.0.0.1:6379/11",
        CACHE_URL="redis://127.0.0.1:6379/12", CELERY_TASK_DEFAULT_QUEUE=queue,
        PORT=str(port), WEB_CONCURRENCY="1", PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )

    # The README's first steps (docker compose exec web python manage.py ...).
    manage = [sys.executable, "manage.py"]
    assert run([*manage, "create_organization", "acme", "--name", "Acme"], env).returncode == 0
    admin = run([*manage, "createsuperuser", "--noinput", "--username", "admin", "--email", "ops@example.com"],
                {**env, "DJANGO_SUPERUSER_PASSWORD": secrets.token_urlsafe(16)})
    assert admin.returncode == 0, admin.stderr
    created = run([*manage, "create_token", "acme", "--scopes", "datasource.read,datasource.write",
                   "--name", "ops"], env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("dsp_"), created.stdout

    server = subprocess.Popen(dockerfile_cmd(), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not listen within 60 s"
                time.sleep(0.3)

        (healthcheck,) = [args for instruction, args in dockerfile_instructions() if instruction == "HEALTHCHECK"]
        probe = run(["/bin/sh", "-c", healthcheck.split(" CMD ", 1)[1]], env, timeout=30)
        assert probe.returncode == 0, probe.stdout + probe.stderr

        # A kubelet: plain HTTP, the pod's address as Host (not in ALLOWED_HOSTS).
        assert http(port, "/readyz", host=f"127.0.0.1:{port}") == (200, {
            "status": "ready", "checks": {"database": "ok", "migrations": "ok", "broker": "ok", "cache": "ok"}})
        # The worker's heartbeat file is on tmpfs (gunicorn.conf.py), not on a disk-backed /tmp.
        assert heartbeat_files(server.pid) == ["/dev/shm"]
        # Anything else over plain HTTP is sent to HTTPS; through the proxy, the API answers.
        assert http(port, "/api/v1/data-sources/", host=PUBLIC_HOST) == (
            301, {"Location": f"https://{PUBLIC_HOST}/api/v1/data-sources/"})
        assert http(port, "/api/v1/data-sources/", host=f"127.0.0.1:{port}", https_proxy=True)[0] == 400
        status, body = http(port, "/api/v1/data-sources/", host=PUBLIC_HOST, token=token, https_proxy=True,
                            method="POST", body={
                                "name": "Warehouse", "type": "postgresql",
                                "connection": {"host": "127.0.0.1", "port": 5432, "database": migrated["name"],
                                               "username": "postgres", "ssl": {"mode": "disable"}},
                                "credentials": {"password": "unused-with-trust-auth"}})
        assert status == 201, body
        assert body["last_test"]["ok"] is True, body  # tested against the real server before it was saved
        status, listing = http(port, "/api/v1/data-sources/", host=PUBLIC_HOST, token=token, https_proxy=True)
        assert status == 200 and [item["name"] for item in listing["results"]] == ["Warehouse"], listing
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        broker = redis.Redis.from_url("redis://127.0.0.1:6379/11")
        keys = [key for key in broker.scan_iter("*") if queue.encode() in key]
        if keys:
            broker.delete(*keys)


# --- Dockerfile ----------------------------------------------------------------------------------------


def test_dockerfile_is_slim_non_root_with_a_healthcheck_and_a_real_command():
    instructions = dockerfile_instructions()
    froms = [args for instruction, args in instructions if instruction == "FROM"]
    assert froms[-1].split()[0] in ("python:3.11-slim", "python:3.11-slim-bookworm"), froms
    last_from = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "FROM")
    users = [args for instruction, args in instructions[last_from:] if instruction == "USER"]
    assert users, "the image runs as root (no USER)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users
    runs = [args for instruction, args in instructions if instruction == "RUN"]
    assert any("pip install" in args and "-r requirements.txt" in args for args in runs), runs
    assert any("manage.py collectstatic --noinput" in args for args in runs), runs

    (healthcheck,) = [args for instruction, args in instructions if instruction == "HEALTHCHECK"]
    assert " CMD " in f" {healthcheck}" and "/healthz" in healthcheck, healthcheck

    cmd = dockerfile_cmd()
    assert cmd[0] == "gunicorn" and (VENV_BIN / "gunicorn").exists()
    config = cmd[cmd.index("--config") + 1]
    assert (ROOT / config).is_file(), config
    module, _, attribute = cmd[-1].partition(":")
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    assert re.search(rf"^{attribute} = ", Path(spec.origin).read_text(), re.M), (module, attribute)
    assert not [instruction for instruction, _ in instructions if instruction == "ENTRYPOINT"]


def test_the_collectstatic_step_of_the_dockerfile_runs_as_written(tmp_path):
    """The build's RUN line itself (throwaway secrets made inside it), with the image's ENV."""
    (step,) = [args for instruction, args in dockerfile_instructions()
               if instruction == "RUN" and "collectstatic" in args]
    env = {**dockerfile_env(), "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin:/bin", "STATIC_ROOT": str(tmp_path)}
    result = run(["/bin/sh", "-c", step], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "staticfiles.json").is_file()  # the manifest of the DEBUG-off storage
    assert (tmp_path / "admin").is_dir()


def test_image_builds_where_docker_is_available():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed here: the image is not built (the checks above stand in)")
    info = run([docker, "info"], dict(os.environ), timeout=30)
    if info.returncode != 0:
        pytest.skip("no Docker daemon here (`docker info` failed): the image is not built "
                    "(the checks above stand in)")
    build = run([docker, "build", "--tag", f"dsp-controlplane:test-{os.getpid()}", "."], dict(os.environ),
                timeout=1800)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]


# --- make run PORT=... -------------------------------------------------------------------------------


@pytest.fixture
def held_port():
    """A port something listens on, as a forgotten server would."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def make(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "PORT")}
    return run(["make", "--no-print-directory", *args], env, timeout=timeout)


def test_make_run_stops_on_a_busy_port_with_one_line_before_anything_starts(held_port):
    result = make("run", f"PORT={held_port}")
    assert result.returncode != 0
    assert result.stdout == "", result.stdout  # nothing installed, migrated or started
    first = result.stderr.splitlines()[0]
    assert first == (f"make run: port {held_port} on 127.0.0.1 is already in use: stop what listens there, "
                     f"or choose another port (make run PORT={held_port + 1})."), result.stderr
    assert "Traceback" not in result.stderr


def test_port_check_passes_on_a_free_port_and_refuses_a_non_port():
    free = make("-s", "check-port", f"PORT={free_port()}")
    assert (free.returncode, free.stdout, free.stderr) == (0, "", "")
    for bad in ("abc", "0", "70000", "８０"):
        result = make("-s", "check-port", f"PORT={bad}")
        assert result.returncode != 0
        assert result.stderr.splitlines()[0] == f"make run: PORT={bad} is not a port number (1-65535).", bad


def test_make_run_serves_on_the_port_variable():
    default = make("-n", "run")
    assert "runserver 127.0.0.1:8000" in default.stdout, default.stdout
    chosen = make("-n", "run", "PORT=8010")
    assert "runserver 127.0.0.1:8010" in chosen.stdout and ":8000" not in chosen.stdout, chosen.stdout
    lines = chosen.stdout.splitlines()
    check = next(i for i, line in enumerate(lines) if "CHECK_PORT_PY" in line and "8010" in line)
    migrate = next(i for i, line in enumerate(lines) if "manage.py migrate" in line)
    assert check < migrate

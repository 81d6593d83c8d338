"""Operations (issue 17): /metrics and its protection, the counters that move, the JSON access log,
X-Request-ID, Celery tasks carrying the enqueuing request's id, secrets kept out of the logs."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from config.celery import app as celery_app
from core import metrics
from core.logging import MASK as MASK_TEXT
from core.logging import JsonFormatter, scrub
from core.request_id import reset_request_id, set_request_id
from datasources.models import DataSource
from datasources.tasks import enqueue_refresh, refresh_schema_task
from tests.support.workers import forget_broker_connections, serve_worker_pool, wait_for

URL = "/api/v1/data-sources/"
REPO = Path(__file__).resolve().parents[2]
CANARY = "canary-Obs17-Qm4zT9-secret"
HEX_ID = r"[0-9a-f]{32}"


# --- helpers -----------------------------------------------------------------------------------------

@pytest.fixture
def metrics_open(db, settings):
    """The default protection (no token, no networks: loopback only); the test client is 127.0.0.1."""
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    return settings


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def log_output():
    """What the configured root handler (the JSON formatter of production) writes, as a buffer."""
    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and isinstance(h.formatter, JsonFormatter)]
    assert handlers, "LOG_FORMAT=json (the default with DEBUG off) installs a JSON stream handler"
    buffer = io.StringIO()
    old = [h.setStream(buffer) for h in handlers]
    yield buffer
    for handler, stream in zip(handlers, old, strict=True):
        handler.setStream(stream)


def json_lines(buffer: io.StringIO) -> list[dict]:
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is one JSON object


def access_lines(buffer: io.StringIO) -> list[dict]:
    return [line for line in json_lines(buffer) if line["logger"] == "core.access"]


def _sqlite(root: str, name: str, ddl: str = "CREATE TABLE t (id INTEGER);") -> str:
    with sqlite3.connect(os.path.join(root, name)) as db:
        db.executescript(ddl)
    return name


def _sqlite_source(api, root, name="S", file="s.db") -> dict:
    response = api.post(URL, {"name": name, "type": "sqlite", "connection": {"path": _sqlite(root, file)}},
                        format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- /metrics protection -----------------------------------------------------------------------------

def test_metrics_default_serves_loopback_only(client, metrics_open):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"controlplane_http_requests_total" in response.content or b"# HELP" in response.content
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    for address in ("10.1.2.3", "192.168.0.5", "203.0.113.9"):
        response = client.get("/metrics", REMOTE_ADDR=address)
        assert response.status_code == 403, address
        assert b"controlplane_" not in response.content


def test_metrics_token_required_when_set(db, client, settings):
    settings.METRICS_TOKEN = "scrape-" + "x" * 32
    settings.METRICS_ALLOWED_NETWORKS = []
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": settings.METRICS_TOKEN},
                    {"HTTP_AUTHORIZATION": "Basic " + settings.METRICS_TOKEN}):
        response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", **headers)
        assert response.status_code == 401, headers
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"controlplane_" not in response.content
    # With only a token set, any address that sends it is served.
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    assert response.status_code == 200
    assert b"controlplane_http_requests_total" in response.content


def test_metrics_network_allowlist(db, client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "2001:db8::/32"]
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::5").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.1.1.1").status_code == 200  # IPv4-mapped
    # An explicit list replaces the loopback default; forwarded headers are not trusted.
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 403


def test_metrics_token_and_network_both_required_when_both_set(db, client, settings):
    settings.METRICS_TOKEN = "tok-" + "y" * 32
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {settings.METRICS_TOKEN}"}
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.9", **auth).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.9").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1", **auth).status_code == 403


def test_metrics_is_read_only_and_needs_no_session_or_https(client, metrics_open, settings):
    settings.SECURE_SSL_REDIRECT = True  # production: a scraper speaks plain HTTP to the process
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    response = client.post("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 405
    assert "Set-Cookie" not in response


@pytest.mark.parametrize(("variable", "bad", "says"), [
    ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-network", "METRICS_ALLOWED_NETWORKS"),
    ("LOG_FORMAT", "xml", "LOG_FORMAT"),
])
def test_bad_observability_settings_refuse_to_start(variable, bad, says):
    env = {**os.environ, variable: bad, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run([sys.executable, "-c", "import config.settings"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert says in done.stderr and "Traceback" not in done.stderr


# --- counters ----------------------------------------------------------------------------------------

def test_request_counter_by_route_never_by_path(api, client, metrics_open, _file_root):
    source = _sqlite_source(api, _file_root)
    before = scrape(client)
    assert api.get(f"{URL}{source['id']}/").status_code == 200
    assert api.get("/api/v1/no-such-thing/12345/").status_code == 404
    after = scrape(client)
    labels = {"route": "data-source-detail", "method": "GET", "status": "200"}
    assert value(after, "controlplane_http_requests_total", **labels) == \
        value(before, "controlplane_http_requests_total", **labels) + 1
    assert value(after, "controlplane_http_request_duration_seconds_count", **labels) == \
        value(before, "controlplane_http_request_duration_seconds_count", **labels) + 1
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(after, "controlplane_http_requests_total", **unmatched) == \
        value(before, "controlplane_http_requests_total", **unmatched) + 1
    routes = {dict(labels).get("route") for (_, labels) in after}
    # Other tests of the same process leave their routes in the registry: no label may name this
    # request's path or its ids (route names such as "api-v1-..." may well contain digits).
    paths = {f"{URL}{source['id']}/", "/api/v1/no-such-thing/12345/", f"{source['id']}/", "12345"}
    assert not any(route in paths or (route or "").endswith(f"/{source['id']}/") for route in routes), routes
    assert not any((route or "").startswith("/") for route in routes), "a route is a name or pattern, not a path"


def test_connection_test_counter_by_type_stage_and_outcome(api, client, metrics_open, allow_loopback, _file_root):
    source = _sqlite_source(api, _file_root)
    before = scrape(client)
    assert api.post(f"{URL}{source['id']}/test/").json()["ok"] is True
    passed = {"type": "sqlite", "stage": "none", "outcome": "passed"}
    body = {"name": "PG", "type": "postgresql", "connection": {
        "host": "127.0.0.1", "port": _closed_port(), "database": "d", "username": "u", "ssl": {"mode": "disable"}},
        "credentials": {"password": "pw"}}
    failing = api.post(URL, body, format="json")
    assert failing.status_code == 400, failing.json()
    stage = failing.json()["stage"]
    failed = {"type": "postgresql", "stage": stage, "outcome": "failed"}
    after = scrape(client)
    assert value(after, "controlplane_connection_tests_total", **passed) == \
        value(before, "controlplane_connection_tests_total", **passed) + 1
    assert value(after, "controlplane_connection_tests_total", **failed) == \
        value(before, "controlplane_connection_tests_total", **failed) + 1
    assert value(after, "controlplane_connection_test_duration_seconds_count", type="postgresql", outcome="failed") \
        == value(before, "controlplane_connection_test_duration_seconds_count", type="postgresql", outcome="failed") + 1


def test_schema_refresh_duration_and_failures(api, client, metrics_open, _file_root):
    source = _sqlite_source(api, _file_root, file="r.db")
    before = scrape(client)
    assert api.post(f"{URL}{source['id']}/sync/").status_code == 200
    os.remove(os.path.join(_file_root, "r.db"))
    assert api.post(f"{URL}{source['id']}/sync/").status_code == 500  # SCHEMA_CACHE_FAILED
    after = scrape(client)
    for outcome in ("ok", "failed"):
        name = "controlplane_schema_refresh_duration_seconds_count"
        assert value(after, name, type="sqlite", outcome=outcome) == \
            value(before, name, type="sqlite", outcome=outcome) + 1, outcome
    assert value(after, "controlplane_schema_refresh_failures_total", type="sqlite") == \
        value(before, "controlplane_schema_refresh_failures_total", type="sqlite") + 1


def test_oldest_pending_refresh_is_the_queue_lag_seen_by_sources(api, client, metrics_open, _file_root):
    from datetime import timedelta

    from django.utils import timezone

    source = _sqlite_source(api, _file_root)
    assert value(scrape(client), "controlplane_schema_refresh_oldest_pending_seconds") == 0
    DataSource.objects.filter(pk=source["id"]).update(
        schema_status="pending", schema_status_at=timezone.now() - timedelta(seconds=90))
    assert 90 <= value(scrape(client), "controlplane_schema_refresh_oldest_pending_seconds") < 150


def test_multiprocess_mode_sums_every_process(client, metrics_open, tmp_path, monkeypatch):
    """gunicorn workers and Celery workers write to PROMETHEUS_MULTIPROC_DIR; /metrics sums them."""
    script = ("from core import metrics; metrics.observe_task_queue_lag('datasources.refresh_schema', 2.0); "
              "metrics.observe_request('data-source-list', 'GET', 200, 0.01)")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):  # two processes, as two workers
        subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, timeout=60)
    assert len(list(tmp_path.glob("*.db"))) >= 2
    monkeypatch.setattr(metrics, "MULTIPROC_DIR", str(tmp_path))
    samples = scrape(client)
    assert value(samples, "controlplane_task_queue_lag_seconds_count", task="datasources.refresh_schema") == 2
    assert value(samples, "controlplane_http_requests_total", route="data-source-list", method="GET",
                 status="200") == 2
    assert ("controlplane_schema_refresh_oldest_pending_seconds", frozenset()) in samples


# --- access log and X-Request-ID -----------------------------------------------------------------------

def test_access_log_line_is_json_with_the_request_fields(org, make_client, log_output, _file_root):
    api = make_client(org)
    source = _sqlite_source(api, _file_root)
    log_output.truncate(0)
    log_output.seek(0)
    response = api.get(f"{URL}{source['id']}/", HTTP_X_REQUEST_ID="req-17.a:b_c")
    assert response.status_code == 200
    (line,) = access_lines(log_output)
    assert line["request_id"] == "req-17.a:b_c" == response["X-Request-ID"]
    assert line["actor"] == "token:t"
    assert line["route"] == "data-source-detail"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
    assert line["level"] == "INFO" and line["timestamp"]
    assert api.raw_token not in log_output.getvalue()


def test_access_log_names_a_users_token_and_anonymous_callers(org, owner, client, make_client, log_output):
    api = make_client(org, username="owner")
    api.get(URL)
    client.get("/api/v1/data-sources/")  # no credentials: 401
    lines = access_lines(log_output)
    assert lines[0]["actor"] == "token:t (user:owner)"
    assert lines[1]["actor"] == "anonymous" and lines[1]["status"] == 401
    assert api.raw_token not in log_output.getvalue()


def test_error_body_header_and_log_share_the_request_id(api, log_output):
    response = api.get("/api/v1/nothing-here/", HTTP_X_REQUEST_ID="trace-42")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "trace-42" == response.json()["request_id"]
    assert access_lines(log_output)[-1]["request_id"] == "trace-42"


@pytest.mark.parametrize("bad", ["a" * 129, "has space", "semi;colon", "ünïcode", "new\nline", "<script>", ""])
def test_invalid_request_id_is_replaced(api, log_output, bad):
    response = api.get("/api/v1/nothing-here/", HTTP_X_REQUEST_ID=bad)
    rid = response["X-Request-ID"]
    assert rid != bad
    import re
    assert re.fullmatch(HEX_ID, rid)
    assert response.json()["request_id"] == rid
    assert access_lines(log_output)[-1]["request_id"] == rid


def test_request_without_id_gets_a_new_one_each_time(api):
    first, second = api.get(URL)["X-Request-ID"], api.get(URL)["X-Request-ID"]
    assert first != second
    assert api.get(URL, HTTP_X_REQUEST_ID="a" * 128)["X-Request-ID"] == "a" * 128


# --- Celery tasks carry the request id ---------------------------------------------------------------

@pytest.fixture
def memory_broker():
    """A real publish through kombu's in-memory transport: what the web process sends a worker."""
    queue = f"obs-{os.getpid()}-{time.monotonic_ns()}"
    keys = ("broker_url", "task_default_queue", "broker_transport_options", "task_always_eager")
    old = {k: celery_app.conf.get(k) for k in keys}
    celery_app.conf.update(broker_url="memory://", task_default_queue=queue, broker_transport_options={},
                           task_always_eager=False)
    forget_broker_connections()
    yield queue
    celery_app.conf.update(**old)
    forget_broker_connections()


def test_task_logs_the_enqueuing_requests_id(api, memory_broker, log_output, client, metrics_open, _file_root):
    source = _sqlite_source(api, _file_root)
    token = set_request_id("enqueue-rid-17")
    try:
        enqueue_refresh(source["id"])  # as a view does, inside its request
    finally:
        reset_request_id(token)
    with celery_app.connection_for_read() as conn:
        queue = conn.SimpleQueue(memory_broker)
        message = queue.get(timeout=5)
        headers, (args, kwargs, _embed) = dict(message.headers), message.decode()
        message.ack()
        queue.close()
    assert headers["request_id"] == "enqueue-rid-17"
    assert headers["enqueued_at"] <= time.time()
    before = scrape(client)
    log_output.truncate(0)
    log_output.seek(0)
    # Run it as a worker would, in a context without any request id of its own.
    result = refresh_schema_task.apply(args=args, kwargs=kwargs, task_id=headers["id"], headers=headers)
    assert result.get() == "ready"
    started = [line for line in json_lines(log_output) if line["message"].startswith("task datasources.refresh_schema")]
    assert started and all(line["request_id"] == "enqueue-rid-17" for line in started)
    assert started[0]["task_id"] == headers["id"]
    after = scrape(client)
    name = "controlplane_task_queue_lag_seconds_count"
    assert value(after, name, task="datasources.refresh_schema") == \
        value(before, name, task="datasources.refresh_schema") + 1


def test_a_task_enqueued_outside_a_request_gets_its_own_id(api, log_output, _file_root):
    source = _sqlite_source(api, _file_root)
    log_output.truncate(0)
    log_output.seek(0)
    refresh_schema_task.apply(args=[source["id"]])
    (line,) = [line for line in json_lines(log_output) if line["message"].startswith("task ")]
    import re
    assert re.fullmatch(HEX_ID, line["request_id"])


@pytest.fixture
def worker_pool(transactional_db, tmp_path):
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(prom_dir), "LOG_FORMAT": "json"}
    for pool in serve_worker_pool(tmp_path, extra_env=env):
        pool.prom_dir = prom_dir
        yield pool


def test_worker_logs_the_requests_id_in_json_and_its_metrics_reach_the_shared_dir(
        worker_pool, settings, make_client, org, _file_root):
    settings.SCHEMA_REFRESH_ASYNC = True
    worker_pool.start(1)
    api = make_client(org)
    source = _sqlite_source(api, _file_root, file="w1.db")
    _sqlite(_file_root, "w2.db", "CREATE TABLE b (id INTEGER);")
    response = api.patch(f"{URL}{source['id']}/", {"connection": {"path": "w2.db"}}, format="json",
                         HTTP_X_REQUEST_ID="worker-rid-17")
    assert response.status_code == 200, response.json()
    assert wait_for(lambda: DataSource.objects.get(pk=source["id"]).schema_status == "ready")

    def task_lines() -> list[dict]:
        lines = [json.loads(line) for line in worker_pool.output().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("request_id") == "worker-rid-17"]

    # Every line the task logs, from its start to Celery's own "succeeded", has the PATCH's id.
    assert wait_for(lambda: any("succeeded" in line["message"] for line in task_lines()))
    assert any(line["message"].startswith("task datasources.refresh_schema") for line in task_lines())
    # Both refreshes (after the create, after the PATCH) ran on the worker; what /metrics reads in
    # multiprocess mode (the shared directory) has their samples.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(worker_pool.prom_dir))
    assert registry.get_sample_value("controlplane_task_queue_lag_seconds_count",
                                     {"task": "datasources.refresh_schema"}) == 2
    assert registry.get_sample_value("controlplane_schema_refresh_duration_seconds_count",
                                     {"type": "sqlite", "outcome": "ok"}) == 2


# --- secrets stay out of the logs ------------------------------------------------------------------

def test_canary_secret_never_reaches_the_json_log(api, allow_loopback, log_output):
    """A password, a connection string carrying it, and a failing connection test: every line the
    production formatter writes (at DEBUG, the most there is) is JSON and holds no canary."""
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        port = _closed_port()
        with_password = {"name": "Canary", "type": "postgresql", "connection": {
            "host": "127.0.0.1", "port": port, "database": "d", "username": "canary", "ssl": {"mode": "disable"}},
            "credentials": {"password": CANARY}}
        response = api.post(URL, with_password, format="json")
        assert response.status_code == 400 and response.json()["code"] == "CREDENTIAL_TEST_FAILED"
        string = f"postgresql://canary:{CANARY}@127.0.0.1:{port}/d?sslmode=disable"
        response = api.post(URL, {"name": "CS", "type": "postgresql", "connection_string": string}, format="json")
        assert response.status_code == 400 and response.json()["code"] == "CREDENTIAL_TEST_FAILED"
        saved = api.post(f"{URL}?test_connection=false", with_password, format="json")
        assert saved.status_code == 201, saved.json()
        tested = api.post(f"{URL}{saved.json()['id']}/test/")
        assert tested.status_code == 400 and tested.json()["code"] == "CREDENTIAL_TEST_FAILED"
        api.patch(f"{URL}{saved.json()['id']}/?dry_run=true", {"connection_string": string}, format="json")
        # And a careless log line somewhere: the formatter masks it.
        logging.getLogger("tests.careless").error("connecting to %s with password=%s", string, CANARY)
        try:
            raise RuntimeError(f"driver said: {string}")
        except RuntimeError:
            logging.getLogger("tests.careless").exception("failed")
    finally:
        root.setLevel(old_level)
    lines = json_lines(log_output)
    assert len(access_lines(log_output)) >= 4
    assert CANARY not in log_output.getvalue()
    assert api.raw_token not in log_output.getvalue()
    careless = [line for line in lines if line["logger"] == "tests.careless"]
    assert "postgresql://canary:***@127.0.0.1" in careless[0]["message"]
    assert "exc_info" in careless[1] and "***" in careless[1]["exc_info"]


def test_scrub_masks_url_passwords_and_secret_named_values():
    assert scrub("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert scrub("mysql://root:p@ss@h/db") == "mysql://root:***@h/db"
    assert scrub("host=h password=s3cret port=5") == "host=h password=*** port=5"
    assert scrub('{"password": "s3\\"cret", "x": 1}') == '{"password": "***", "x": 1}'
    assert scrub("{'client_secret': 'abc'}") == "{'client_secret': '***'}"
    assert scrub("Authorization: Bearer abc.def") == "Authorization: ***"
    assert scrub("token:demo token (user:ann)") == "token:demo token (user:ann)", "an actor label is kept"
    assert scrub("GET data-source-detail 200 3.1ms") == "GET data-source-detail 200 3.1ms"


@pytest.mark.parametrize("line,secret", [
    ("GET /x/?sshIdentity=SEC1&a=1 HTTP/1.1", "SEC1"),
    ("GET /x/?keyfile=SEC2 HTTP/1.1", "SEC2"),
    ("GET /x/?service_account_json=SEC3 HTTP/1.1", "SEC3"),
    ("GET /x/?ssl_client_key=SEC4 HTTP/1.1", "SEC4"),
    ("GET /x/?credentials%5Bpassword%5D=SEC5 HTTP/1.1", "SEC5"),
    ("GET /x/?credentials[password]=SEC6 HTTP/1.1", "SEC6"),
    ("GET /x/?connection_string=postgresql%3A%2F%2Fu%3ASEC7%40h%2Fdb HTTP/1.1", "SEC7"),
    ("GET /x/?dsn=postgresql%3A%2F%2Fu%3ASEC8%40h%2Fdb HTTP/1.1", "SEC8"),
    ('{"sshIdentity": "SEC9", "host": "h"}', "SEC9"),
])
def test_scrub_masks_the_catalogues_and_seeds_secret_names_raw_bracketed_or_percent_encoded(line, secret):
    scrubbed = scrub(line)
    assert secret not in scrubbed and MASK_TEXT in scrubbed, scrubbed

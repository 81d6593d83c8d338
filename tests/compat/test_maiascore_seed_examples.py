"""Every request example of the maiascore seed (``shared/seeds/004_aa85a9b59a2b5f92.txt``), replayed over
HTTP against the running app, each as its own test, with the documented response shape asserted.

The seed documents one operation, ``PUT /datasources/{id}`` ("Update and test a new connection to a
data source"), and shows seven request examples:

- three request bodies, one per tab: ``application/json``, ``application/xml`` (``<item>``) and
  ``application/x-www-form-urlencoded``, whose tab holds the same JSON object (sent here as that JSON
  with the form content type, as the seed's own snippets send it);
- four code snippets: "Shell + Curl", "Node + Native", "Python + Python3" and "Php + Curl". The page
  prints each twice (in tabs, then with a title); the copies are identical, so each is replayed once
  (``test_the_replayed_text_is_the_seeds`` checks every copy against the text kept here). Each runs in
  its own runtime: ``bash`` with ``curl``, ``node``, ``python3`` and ``php`` with its curl extension.
  A snippet prints the response body and nothing else: the test parses what it prints, and takes the
  status (and the body the app received) from the server's side (``Recorder``).

What the tests change in an example: the server location (``https://maiascore.com`` becomes this app's
plain-HTTP loopback address with the ``/compat/maiascore`` prefix; hence node's ``require("https")``
becomes ``require("http")`` and Python's ``HTTPSConnection("maiascore.com")`` becomes
``HTTPConnection("127.0.0.1", <port>)``), and the placeholders, step by step:

1. all placeholders as written (``REPLACE_BEARER_TOKEN``, ``%7Bid%7D``, ``"string"``): 403 ``{code,
   message}``, the seed's "Forbidden: this operation requires authentication" (snippets: the bodies
   alone carry no header);
2. the token filled in, ``{id}`` not: 404 ``{code, message}``, the seed's "Not found";
3. token and id filled in, the body's ``"string"`` placeholders as written: 400 naming the fields that
   "string" cannot fill (``port`` and ``sshPort`` are not ports; ``keyfile``, ``certificate`` and
   ``sslCA`` are not PEM). The seed's PUT tests the new connection: a placeholder can be neither tested
   nor saved (the safety rule), so nothing changes;
4. every placeholder a real value: a MariaDB started for this module with TLS (a certificate from a
   test CA; a user with a password that must also present a client certificate, ``REQUIRE X509``; a
   database with a table; all removed afterwards), reached through a real ``sshd``
   (``tests/support/sshd.py``) with the SSH password and key: 200 with the documented datasource
   (secrets are never echoed, the one documented difference), the connection tested for real (the tls
   and ssh stages included), stored and its schema cached. The values are the seed's JSON and XML
   strings in each example's own syntax (escaped for a Python or PHP string literal, a JS object, XML
   text); the database password holds a quote and a backslash, so each escaping is exercised.

Node's ``http.request`` sends the body chunked (``Transfer-Encoding: chunked``, no Content-Length).
gunicorn, the server of the image, de-chunks it and the app reads it (``core.middleware``); Django's
development server (``tests.support.live``, ``make run``) cannot find the end of such a body, and the
app answers 411 ``LENGTH_REQUIRED`` (in maiascore's shape) rather than read it. So the Node snippet is
replayed against gunicorn's own request parser and sync worker, in this process on the same app
(``gunicorn_http_server``), and once against the development server for the 411. Every other example
goes to the live server of ``tests.support.live``.

Where a runtime is missing (``node``, ``php``; ``.ci/run`` installs them), its tests skip locally and
fail in CI, and the
``*_on_the_wire`` tests still send what that client sends: node's chunked request byte for byte, and
the PHP snippet's libcurl options through the ``curl`` tool (same library, option for option).

Beyond the examples: a control (the same body without the client certificate is refused by the server,
so the 200s above did present it), the form tab's fields as ``key=value`` pairs, and the SSH host key
that the first test pins (no maiascore field): kept for the same bastion and enforced, re-pinned when
``sshHost``/``sshPort`` move the tunnel.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import io
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode
from xml.sax.saxutils import escape

import pymysql
import pytest

from tests.support.certs import make_bundle
from tests.support.live import live_http_server, prepare_settings
from tests.support.sshd import keygen_fingerprint, serve_sshd
from tests.support.state import stored_state

SEED = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "004_aa85a9b59a2b5f92.txt"
PREFIX = "/compat/maiascore"
URL = "/api/v1/data-sources/"
FORM = "application/x-www-form-urlencoded"

# --- the seed's examples, verbatim -------------------------------------------------------------------

JSON_BODY = r'''{
  "driver": "mysql",
  "host": "string",
  "username": "string",
  "password": "string",
  "database": "string",
  "port": "string",
  "ssl": true,
  "keyfile": "string",
  "certificate": "string",
  "sslCA": "string",
  "ssh": true,
  "sshHost": "string",
  "sshUsername": "string",
  "sshPassword": "string",
  "sshPort": "string",
  "sshIdentity": "string",
  "sshTunneling": true
}'''
XML_BODY = r'''<?xml version="1.0" encoding="utf-8"?>
<item>
  <driver>mysql</driver>
  <host>string</host>
  <username>string</username>
  <password>string</password>
  <database>string</database>
  <port>string</port>
  <ssl>true</ssl>
  <keyfile>string</keyfile>
  <certificate>string</certificate>
  <sslCA>string</sslCA>
  <ssh>true</ssh>
  <sshHost>string</sshHost>
  <sshUsername>string</sshUsername>
  <sshPassword>string</sshPassword>
  <sshPort>string</sshPort>
  <sshIdentity>string</sshIdentity>
  <sshTunneling>true</sshTunneling>
</item>'''
FORM_BODY = r'''{
  "driver": "mysql",
  "host": "string",
  "username": "string",
  "password": "string",
  "database": "string",
  "port": "string",
  "ssl": true,
  "keyfile": "string",
  "certificate": "string",
  "sslCA": "string",
  "ssh": true,
  "sshHost": "string",
  "sshUsername": "string",
  "sshPassword": "string",
  "sshPort": "string",
  "sshIdentity": "string",
  "sshTunneling": true
}'''
CURL = r"""curl --request PUT \
  --url https://maiascore.com/datasources/%7Bid%7D \
  --header 'Authorization: Bearer REPLACE_BEARER_TOKEN' \
  --header 'content-type: application/x-www-form-urlencoded' \
  --data '{"driver":"mysql","host":"string","username":"string","password":"string","database":"string","port":"string","ssl":true,"keyfile":"string","certificate":"string","sslCA":"string","ssh":true,"sshHost":"string","sshUsername":"string","sshPassword":"string","sshPort":"string","sshIdentity":"string","sshTunneling":true}'"""  # noqa: E501
NODE = r'''const http = require("https");

const options = {
  method: "PUT",
  hostname: "maiascore.com",
  port: null,
  path: "/datasources/%7Bid%7D",
  headers: {
    "content-type": "application/x-www-form-urlencoded",
    Authorization: "Bearer REPLACE_BEARER_TOKEN",
  },
};

const req = http.request(options, function (res) {
  const chunks = [];

  res.on("data", function (chunk) {
    chunks.push(chunk);
  });

  res.on("end", function () {
    const body = Buffer.concat(chunks);
    console.log(body.toString());
  });
});

req.write(
  JSON.stringify({
    driver: "mysql",
    host: "string",
    username: "string",
    password: "string",
    database: "string",
    port: "string",
    ssl: true,
    keyfile: "string",
    certificate: "string",
    sslCA: "string",
    ssh: true,
    sshHost: "string",
    sshUsername: "string",
    sshPassword: "string",
    sshPort: "string",
    sshIdentity: "string",
    sshTunneling: true,
  })
);
req.end();'''
PYTHON = r'''import http.client

conn = http.client.HTTPSConnection("maiascore.com")

payload = "{\"driver\":\"mysql\",\"host\":\"string\",\"username\":\"string\",\"password\":\"string\",\"database\":\"string\",\"port\":\"string\",\"ssl\":true,\"keyfile\":\"string\",\"certificate\":\"string\",\"sslCA\":\"string\",\"ssh\":true,\"sshHost\":\"string\",\"sshUsername\":\"string\",\"sshPassword\":\"string\",\"sshPort\":\"string\",\"sshIdentity\":\"string\",\"sshTunneling\":true}"

headers = {
    'content-type': "application/x-www-form-urlencoded",
    'Authorization': "Bearer REPLACE_BEARER_TOKEN"
    }

conn.request("PUT", "/datasources/%7Bid%7D", payload, headers)

res = conn.getresponse()
data = res.read()

print(data.decode("utf-8"))'''  # noqa: E501
PHP = r'''<?php

$curl = curl_init();

curl_setopt_array($curl, [
  CURLOPT_URL => "https://maiascore.com/datasources/%7Bid%7D",
  CURLOPT_RETURNTRANSFER => true,
  CURLOPT_ENCODING => "",
  CURLOPT_MAXREDIRS => 10,
  CURLOPT_TIMEOUT => 30,
  CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1,
  CURLOPT_CUSTOMREQUEST => "PUT",
  CURLOPT_POSTFIELDS => "{\"driver\":\"mysql\",\"host\":\"string\",\"username\":\"string\",\"password\":\"string\",\"database\":\"string\",\"port\":\"string\",\"ssl\":true,\"keyfile\":\"string\",\"certificate\":\"string\",\"sslCA\":\"string\",\"ssh\":true,\"sshHost\":\"string\",\"sshUsername\":\"string\",\"sshPassword\":\"string\",\"sshPort\":\"string\",\"sshIdentity\":\"string\",\"sshTunneling\":true}",
  CURLOPT_HTTPHEADER => [
    "Authorization: Bearer REPLACE_BEARER_TOKEN",
    "content-type: application/x-www-form-urlencoded"
  ],
]);

$response = curl_exec($curl);
$err = curl_error($curl);

curl_close($curl);

if ($err) {
  echo "cURL Error #:" . $err;
} else {
  echo $response;
}'''  # noqa: E501

#: The object every example sends (the snippets send it as compact JSON text, as ``JSON.stringify`` writes it).
SEED_OBJECT: dict[str, Any] = json.loads(JSON_BODY)
#: The fields whose example value is the placeholder "string" (``driver``, ``ssl``, ``ssh`` and
#: ``sshTunneling`` hold real values already: "mysql" and true).
PLACEHOLDERS = tuple(key for key, value in SEED_OBJECT.items() if value == "string")
#: The seed's 200 example, key by key; the adapter answers all of them but the secrets.
DOCUMENTED_RESPONSE = ("id", "driver", "host", "username", "password", "database", "port", "ssl", "keyfile",
                       "certificate", "sslCA", "ssh", "sshHost", "sshUsername", "sshPassword", "sshPort",
                       "sshIdentity", "sshTunneling", "published_at", "created_by", "updated_by")
SECRETS = frozenset({"password", "keyfile", "sshPassword", "sshIdentity"})
BOOLEANS = frozenset({"ssl", "ssh", "sshTunneling"})
PEM_FIELDS = frozenset({"keyfile", "certificate", "sslCA", "sshIdentity"})
#: The seed's error example (403, 404 and default alike): ``{code, message}``.
ERROR_KEYS = {"code", "message"}

SNIPPETS = {"curl": CURL, "node": NODE, "python": PYTHON, "php": PHP}
BODIES = {"json": ("application/json", JSON_BODY), "xml": ("application/xml", XML_BODY), "form": (FORM, FORM_BODY)}
EXAMPLES = (*BODIES, *SNIPPETS)


# --- how each example writes a value ------------------------------------------------------------------


def _py_string(text: str) -> str:
    """``text`` inside a double-quoted Python (or PHP) string literal."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _php_string(text: str) -> str:
    return _py_string(text).replace("$", "\\$")  # "$x" would interpolate in PHP


def _json_member(key: str, value: str) -> str:
    return f'"{key}": {json.dumps(value)}'


#: example -> (how it writes a placeholder field, "{key}" standing for the field; how it writes a value)
SYNTAX: dict[str, tuple[str, Callable[[str, str], str]]] = {
    "json": ('"{key}": "string"', _json_member),
    "form": ('"{key}": "string"', _json_member),
    "xml": ("<{key}>string</{key}>", lambda key, value: f"<{key}>{escape(value)}</{key}>"),
    "curl": ('"{key}":"string"', lambda key, value: f'"{key}":{json.dumps(value)}'),
    "node": ('\n    {key}: "string",', lambda key, value: f"\n    {key}: {json.dumps(value)},"),
    "python": ('\\"{key}\\":\\"string\\"', lambda key, value: f'\\"{key}\\":{_py_string(json.dumps(value))}'),
    "php": ('\\"{key}\\":\\"string\\"', lambda key, value: f'\\"{key}\\":{_php_string(json.dumps(value))}'),
}


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not in the example exactly once"
    return text.replace(old, new)


def fill(name: str, text: str, values: dict[str, str]) -> str:
    """The example with each placeholder of ``values`` replaced by its real value, in the example's syntax."""
    placeholder, write = SYNTAX[name]
    for key, value in values.items():
        text = replace_once(text, placeholder.format(key=key), write(key, value))
    return text


def locate(name: str, text: str, url: str, ref: str, token: str | None) -> str:
    """A snippet pointed at this app (plain HTTP on loopback, the adapter's prefix); ``ref`` in place of
    ``{id}`` (``%7Bid%7D``: as written), ``token`` in place of REPLACE_BEARER_TOKEN (None: as written)."""
    port, path = url.rsplit(":", 1)[1], f"{PREFIX}/datasources/{ref}"
    swaps = {
        "curl": [("https://maiascore.com/datasources/%7Bid%7D", url + path)],
        "php": [("https://maiascore.com/datasources/%7Bid%7D", url + path)],
        "node": [('require("https")', 'require("http")'), ('hostname: "maiascore.com"', 'hostname: "127.0.0.1"'),
                 ("port: null", f"port: {port}"), ('path: "/datasources/%7Bid%7D"', f'path: "{path}"')],
        "python": [('http.client.HTTPSConnection("maiascore.com")', f'http.client.HTTPConnection("127.0.0.1", {port})'),
                   ('"/datasources/%7Bid%7D"', f'"{path}"')],
    }[name]
    for old, new in swaps:
        text = replace_once(text, old, new)
    return text if token is None else text.replace("REPLACE_BEARER_TOKEN", token)


def sent_body(name: str, values: dict[str, str]) -> bytes:
    """The bytes an example puts on the wire: a body tab as written; a snippet's compact JSON text."""
    if name in BODIES:
        return fill(name, BODIES[name][1], values).encode()
    return json.dumps({**SEED_OBJECT, **values}, separators=(",", ":")).encode()


# --- runtimes -----------------------------------------------------------------------------------------


def _runtime(name: str) -> list[str]:
    """The command that runs a snippet file, or a skip when this machine lacks the runtime."""
    if name == "curl":
        needed, command = "curl", ["bash"]
    elif name == "node":
        needed, command = "node", ["node"]
    elif name == "php":
        needed, command = "php", ["php"]
    else:
        return [sys.executable]
    if shutil.which(needed) is None:
        _unavailable(f"{needed} is not installed (.ci/run installs it; Debian: apt-get install nodejs php-cli "
                     "php-curl); the *_on_the_wire tests send what this snippet sends")
    if name == "php" and "curl" not in subprocess.run(["php", "-m"], capture_output=True, text=True).stdout:
        _unavailable("php has no curl extension (Debian: php-curl)")
    return command


def run_snippet(name: str, source: str, tmp_path: Path) -> Any:
    """Run a snippet in its own runtime; what it prints is the response body (JSON)."""
    command = _runtime(name)
    script = tmp_path / f"snippet.{ {'curl': 'sh', 'node': 'js', 'python': 'py', 'php': 'php'}[name] }"
    script.write_text(source)
    done = subprocess.run([*command, str(script)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and done.stdout.strip(), (done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout)


# --- servers: the app over real HTTP, and what reached it ---------------------------------------------


@dataclass
class Exchange:
    method: str
    path: str
    content_type: str
    chunked: bool
    body: bytes | None  # None: the server handed the app no readable body
    status: int = 0
    answer: bytes = b""  # the response body the app wrote


class Recorder:
    """WSGI middleware around the app: each request as the app received it, and the status it answered."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    def __call__(self, environ: dict, start_response: Any) -> Any:
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        body = None
        if length.isdigit():
            body = environ["wsgi.input"].read(int(length))
        elif chunked and environ.get("wsgi.input_terminated"):
            body = environ["wsgi.input"].read()
        if body is not None:
            environ["wsgi.input"] = io.BytesIO(body)
        exchange = Exchange(environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("CONTENT_TYPE", ""),
                            chunked, body)
        self.exchanges.append(exchange)

        def start(status: str, headers: list, exc_info: Any = None) -> Any:
            exchange.status = int(status.split()[0])
            return start_response(status, headers, exc_info)

        result = self.app(environ, start)
        try:
            exchange.answer = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return [exchange.answer]

    def last(self) -> Exchange:
        assert self.exchanges, "no request reached the app"
        return self.exchanges[-1]


@dataclass
class Served:
    url: str
    recorder: Recorder
    kind: str


@contextlib.contextmanager
def development_http_server(settings: Any) -> Iterator[Served]:
    """``tests.support.live``: Django's development server (as ``make run``), recorded."""
    with live_http_server(settings) as live:
        httpd = live.server.thread.httpd
        recorder = Recorder(httpd.get_app())
        httpd.set_app(recorder)
        yield Served(live.url, recorder, "django")


@contextlib.contextmanager
def gunicorn_http_server(settings: Any) -> Iterator[Served]:
    """The app behind gunicorn's own request parser and sync worker (the image's server and worker class),
    in a thread of this process so that it shares the test database; recorded."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connections
    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from gunicorn.workers.sync import SyncWorker

    prepare_settings(settings)
    shared = [conn for conn in connections.all() if conn.vendor == "sqlite" and conn.is_in_memory_db()]
    config = Config()
    worker = SyncWorker(0, os.getpid(), [], None, 30, config, Logger(config))
    worker.wsgi = recorder = Recorder(WSGIHandler())
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        for conn in shared:
            connections[conn.alias] = conn
        try:
            while not stop.is_set():
                if select.select([listener], [], [], 0.1)[0]:
                    client, address = listener.accept()
                    worker.handle(listener, client, address)
        finally:
            if not shared:
                connections.close_all()

    for conn in shared:
        conn.inc_thread_sharing()
    thread = threading.Thread(target=serve, name="gunicorn-sync-worker", daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{listener.getsockname()[1]}", recorder, "gunicorn")
    finally:
        stop.set()
        thread.join(30)
        listener.close()
        worker.tmp.close()
        for conn in shared:
            conn.dec_thread_sharing()


@pytest.fixture
def served(request, transactional_db, settings) -> Iterator[Served]:
    """The server an example is replayed against: gunicorn for node (its body is chunked), else the live server."""
    name = request.node.callspec.params.get("name")
    with (gunicorn_http_server if name == "node" else development_http_server)(settings) as server:
        yield server


# --- real servers: MariaDB with TLS, sshd -------------------------------------------------------------


@dataclass(frozen=True)
class TLSMariaDB:
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    ca: str
    certificate: str
    key: str = field(repr=False)


def _unavailable(message: str) -> None:
    (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _admin(port: int) -> pymysql.connections.Connection:
    deadline = time.monotonic() + 60
    while True:
        try:
            return pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True, connect_timeout=2)
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def tls_mariadb() -> Iterator[TLSMariaDB]:
    """A MariaDB of its own on a free loopback port with TLS on (server certificate from a test CA), a
    database with a table, and a user with a password that must present a client certificate of that CA
    (``REQUIRE X509``). The whole server (data directory included) is removed afterwards."""
    mariadbd, install = "/usr/sbin/mariadbd", shutil.which("mariadb-install-db")
    if not os.path.exists(mariadbd) or install is None or os.geteuid() != 0:
        _unavailable("a MariaDB with TLS cannot be started here (needs root, mariadbd and mariadb-install-db)")
    base = Path(tempfile.mkdtemp(prefix="maiascore-seed-"))
    certs = make_bundle("maiascore-seed")
    files = {"ca.pem": certs.ca.cert_pem, "server.pem": certs.server.cert_pem, "server.key": certs.server.key_pem}
    for name, text in files.items():
        (base / name).write_text(text)
        (base / name).chmod(0o600)
    process = None
    try:
        subprocess.run([str(install), "--no-defaults", f"--datadir={base / 'data'}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        port = _free_port()
        process = subprocess.Popen(
            [mariadbd, "--no-defaults", f"--datadir={base / 'data'}", "--user=root", f"--port={port}",
             "--bind-address=127.0.0.1", f"--socket={base / 'sock'}", f"--pid-file={base / 'pid'}",
             f"--ssl-ca={base / 'ca.pem'}", f"--ssl-cert={base / 'server.pem'}", f"--ssl-key={base / 'server.key'}",
             "--skip-log-bin", "--skip-name-resolve", f"--log-error={base / 'error.log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        name = f"seed_{uuid.uuid4().hex[:8]}"
        password = 'Seed"pw\\' + uuid.uuid4().hex[:8]  # a quote and a backslash: every example escapes them
        with _admin(port) as admin, admin.cursor() as cur:
            cur.execute("SELECT @@have_ssl")
            assert cur.fetchone()[0] == "YES"
            cur.execute(f"CREATE DATABASE `{name}`")
            cur.execute(f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY %s REQUIRE X509", (password,))
            cur.execute(f"GRANT ALL ON `{name}`.* TO '{name}'@'127.0.0.1'")
            cur.execute(f"CREATE TABLE `{name}`.orders (id INT PRIMARY KEY, amount DECIMAL(10, 2))")
        yield TLSMariaDB(port, name, password, name, certs.ca.cert_pem, certs.client.cert_pem, certs.client.key_pem)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def sshd():
    yield from serve_sshd()


@pytest.fixture
def real_values(tls_mariadb, sshd) -> dict[str, str]:
    """A real value for each placeholder: the database through the SSH server, over TLS with a client certificate."""
    db = tls_mariadb
    values = {"host": "127.0.0.1", "username": db.user, "password": db.password, "database": db.database,
              "port": str(db.port), "keyfile": db.key, "certificate": db.certificate, "sslCA": db.ca,
              "sshHost": sshd.host, "sshUsername": sshd.user, "sshPassword": sshd.password,
              "sshPort": str(sshd.port), "sshIdentity": sshd.keys["ed25519"]}
    assert set(values) == set(PLACEHOLDERS)
    return values


# --- the data source and the replay -------------------------------------------------------------------


@pytest.fixture
def source(api) -> int:
    """A MySQL source saved untested at another host: the seed's PUT moves it to the real database."""
    response = api.post(f"{URL}?test_connection=false", {
        "name": "Shop", "type": "mysql", "connection": {"host": "mysql.example.com", "username": "shop",
                                                        "database": "shop"},
        "credentials": {"password": "stored-pw"}}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def send(url: str, ref: str, token: str, content_type: str, body: bytes) -> tuple[int, Any]:
    """A body example as its tab gives it: PUT with the tab's content type and a bearer token."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=180)
    try:
        conn.request("PUT", f"{PREFIX}/datasources/{ref}", body,
                     {"Content-Type": content_type, "Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def replay(name: str, served: Served, tmp_path: Path, *, ref: str = "%7Bid%7D", token: str | None = None,
           values: dict[str, str] | None = None) -> tuple[Exchange, Any]:
    """One example, as written but for what is given; returns what the app received and answered, and
    the body the client got. Asserts the app received the body exactly as the example encodes it."""
    values = values or {}
    if name in BODIES:
        assert token is not None  # a body tab carries no header: it is sent with the token
        content_type = BODIES[name][0]
        status, answer = send(served.url, ref, token, content_type, sent_body(name, values))
        exchange = served.recorder.last()
        assert exchange.status == status
    else:
        answer = run_snippet(name, locate(name, fill(name, SNIPPETS[name], values), served.url, ref, token),
                             tmp_path)
        exchange, content_type = served.recorder.last(), FORM
    assert (exchange.method, exchange.path) == ("PUT", f"{PREFIX}/datasources/{unquote(ref)}")
    assert exchange.content_type == content_type
    assert exchange.chunked == (name == "node")  # node's http.request sends the body chunked
    assert exchange.body == sent_body(name, values)
    assert json.loads(exchange.answer) == answer  # the client got what the app answered
    return exchange, answer


def assert_error(exchange: Exchange, answer: Any, status: int) -> dict:
    """The seed's error: ``{code, message}`` (``code`` is the HTTP status here; ``errors`` names fields)."""
    assert exchange.status == status, answer
    assert ERROR_KEYS <= set(answer) <= ERROR_KEYS | {"errors"}, answer
    assert answer["code"] == status and isinstance(answer["message"], str) and answer["message"], answer
    return answer


def assert_datasource(answer: Any, pk: int, values: dict[str, str]) -> None:
    """The seed's 200 datasource: every documented key but the secrets, with its documented type."""
    assert set(answer) == set(DOCUMENTED_RESPONSE) - SECRETS, answer
    for key in set(answer) - BOOLEANS:
        assert isinstance(answer[key], str), (key, answer[key])
    for key in BOOLEANS:
        assert answer[key] is True, (key, answer[key])
    assert datetime.datetime.fromisoformat(answer["published_at"]).tzinfo is not None
    assert answer["id"] == str(pk) and answer["driver"] == "mysql"
    assert answer["created_by"] == answer["updated_by"] == "token:t"
    for key, value in values.items():
        if key in SECRETS:
            assert value not in json.dumps(answer) and json.dumps(value)[1:-1] not in json.dumps(answer)
        else:
            assert answer[key] == value or (key in PEM_FIELDS and answer[key] == value.strip()), key  # XML trims


# --- the text replayed is the seed's -------------------------------------------------------------------


def _seed_blocks() -> list[tuple[str, str | None, str]]:
    if not SEED.is_file():
        pytest.skip(f"the seed document is not at {SEED}")
    return [(m[1], m[2], m[3]) for m in re.finditer(r'```(\w+)(?: title="([^"]+)")?\n(.*?)\n```', SEED.read_text(),
                                                     re.S)]


def test_the_replayed_text_is_the_seeds():
    blocks = _seed_blocks()
    requests = [(lang, text) for lang, title, text in blocks if title != "Example response"]
    assert requests == [("json", JSON_BODY), ("xml", XML_BODY), ("json", FORM_BODY), ("shell", CURL),
                        ("javascript", NODE), ("python", PYTHON), ("php", PHP),  # the tabs
                        ("shell", CURL), ("javascript", NODE), ("python", PYTHON), ("php", PHP)]  # with titles
    responses = [json.loads(text) for _, title, text in blocks if title == "Example response"]
    assert tuple(responses[0]) == DOCUMENTED_RESPONSE
    assert responses[1:] == [{"code": 500, "message": "Error - Server Error"}] * 3  # 403, 404, default
    text = SEED.read_text()
    assert "PUT</Method><Path>{unescape(escape('/datasources/{id}'))}" in text


# --- 1. as written: no credentials -> 403 --------------------------------------------------------------


@pytest.mark.parametrize("name", SNIPPETS)
def test_snippet_as_written_is_forbidden(name, served, tmp_path, source):
    """REPLACE_BEARER_TOKEN is no valid token: the seed's 403 "Forbidden: this operation requires authentication"."""
    before = stored_state(source)
    exchange, answer = replay(name, served, tmp_path)
    assert "token" in assert_error(exchange, answer, 403)["message"]
    assert stored_state(source) == before


# --- 2. the token, but {id} as written -> 404 ----------------------------------------------------------


@pytest.mark.parametrize("name", SNIPPETS)
def test_snippet_with_the_token_and_the_id_placeholder_is_not_found(name, served, tmp_path, api, source):
    """``%7Bid%7D`` ("{id}") names no data source: the seed's 404 "Not found"."""
    exchange, answer = replay(name, served, tmp_path, token=api.raw_token)
    assert_error(exchange, answer, 404)


# --- 3. token and id, the body's placeholders as written -> 400 naming them ------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
def test_body_placeholders_as_written_are_refused_by_name(name, served, tmp_path, api, source):
    """"string" is no port and no PEM text: the connection cannot be tested nor saved (nothing changes)."""
    before = stored_state(source)
    exchange, answer = replay(name, served, tmp_path, ref=str(source), token=api.raw_token)
    error = assert_error(exchange, answer, 400)
    assert {"port", "sshPort", "keyfile", "certificate", "sslCA"} <= set(error["errors"]), error
    assert set(error["errors"]) <= set(SEED_OBJECT), error  # named as the seed names them
    assert stored_state(source) == before


# --- 4. every placeholder a real value -> 200, tested over SSH and TLS ------------------------------------


def assert_moved(api, pk: int, values: dict[str, str]) -> None:
    """The native view of the source: tested for real (ssh and tls stages), stored, schema cached."""
    core = api.get(f"{URL}{pk}/").json()
    assert core["last_test"]["ok"] and core["status"] == "active", core["last_test"]
    stages = [stage["name"] for stage in core["last_test"]["stages"]]
    assert {"ssh", "tls", "auth", "database"} <= set(stages), stages
    connection = core["connection"]
    assert connection["host"] == "127.0.0.1" and connection["port"] == int(values["port"])
    assert connection["ssl"]["mode"] == "require" and connection["ssh_tunnel"]["enabled"] is True
    assert {"password", "ssl_client_key", "ssh_password", "ssh_private_key"} <= set(core["credentials_set"])
    assert core["schema"]["status"] == "ready" and core["schema"]["table_count"] == 1, core["schema"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_real_values_update_and_test_the_connection(name, served, tmp_path, api, source, real_values):
    exchange, answer = replay(name, served, tmp_path, ref=str(source), token=api.raw_token, values=real_values)
    assert exchange.status == 200, answer
    assert_datasource(answer, source, real_values)
    assert_moved(api, source, real_values)


# --- node on the development server; node and PHP on the wire without their runtime ----------------------


def test_node_snippet_on_the_development_server_is_length_required(transactional_db, settings, tmp_path, api,
                                                                   source):
    """Django's development server (``make run``) hands the app no end for a chunked body, so the app
    answers 411 LENGTH_REQUIRED in maiascore's shape instead of reading it; the server then reads the
    unread chunks as a next request and answers that HTTP/0.9-style, which node cannot parse: depending on
    which arrives first, the snippet prints the 411 or fails with a parse error. gunicorn, the image's
    server, reads the body (the tests above)."""
    before = stored_state(source)
    with development_http_server(settings) as server:
        script = tmp_path / "snippet.js"
        script.write_text(locate("node", NODE, server.url, str(source), api.raw_token))
        if shutil.which("node") is None:
            _unavailable("node is not installed (Debian: apt-get install nodejs)")
        done = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=180)
        exchange = server.recorder.last()
    assert exchange.chunked and exchange.body is None
    assert "Content-Length" in assert_error(exchange, json.loads(exchange.answer), 411)["message"]
    if done.returncode == 0:  # node read the 411 before the server's HTTP/0.9 answer arrived
        assert json.loads(done.stdout) == json.loads(exchange.answer)
    else:
        assert "Parse Error" in done.stderr, done.stderr
    assert stored_state(source) == before


def test_node_snippet_on_the_wire(transactional_db, settings, api, source, real_values):
    """What node's ``http.request`` writes for the snippet (headers in its order, the body chunked),
    byte for byte, to gunicorn: the datasource, as from node itself."""
    body = sent_body("node", real_values)
    with gunicorn_http_server(settings) as server:
        port = int(server.url.rsplit(":", 1)[1])
        head = (f"PUT {PREFIX}/datasources/{source} HTTP/1.1\r\ncontent-type: {FORM}\r\n"
                f"Authorization: Bearer {api.raw_token}\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n"
                "Transfer-Encoding: chunked\r\n\r\n")
        raw = head.encode() + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=180) as conn:
            conn.sendall(raw)
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        exchange = server.recorder.last()
    assert reply.startswith(b"HTTP/1.1 200 ") and exchange.chunked and exchange.body == body
    assert_datasource(json.loads(reply.split(b"\r\n\r\n", 1)[1]), source, real_values)
    assert_moved(api, source, real_values)


def test_php_snippet_on_the_wire(transactional_db, settings, tmp_path, api, source, real_values):
    """The PHP snippet's libcurl options through the curl tool (PHP's curl extension is libcurl):
    CUSTOMREQUEST PUT, POSTFIELDS as the body, HTTPHEADER, ENCODING "" (every encoding curl has),
    MAXREDIRS 10 (redirects are not followed: no FOLLOWLOCATION), TIMEOUT 30, HTTP 1.1."""
    if shutil.which("curl") is None:
        _unavailable("curl is not installed")
    body = sent_body("php", real_values)
    with development_http_server(settings) as server:
        done = subprocess.run(
            ["curl", "--silent", "--show-error", "--request", "PUT", "--data-raw", body.decode(), "--compressed",
             "--max-redirs", "10", "--max-time", "30", "--http1.1",
             "--header", f"Authorization: Bearer {api.raw_token}", "--header", f"content-type: {FORM}",
             f"{server.url}{PREFIX}/datasources/{source}"],
            capture_output=True, text=True, timeout=180)
        exchange = server.recorder.last()
    assert done.returncode == 0, done.stderr
    assert exchange.status == 200 and exchange.body == body and exchange.content_type == FORM
    assert_datasource(json.loads(done.stdout), source, real_values)
    assert_moved(api, source, real_values)


def test_the_form_tabs_fields_as_form_pairs(transactional_db, settings, api, source, real_values):
    """Not an example of the seed (its form tab shows JSON): the same fields as ``key=value`` pairs, as a
    form encoder sends them under that tab's content type. Booleans are the text "true"."""
    pairs = {key: ("true" if value is True else value) for key, value in {**SEED_OBJECT, **real_values}.items()}
    with development_http_server(settings) as server:
        status, answer = send(server.url, str(source), api.raw_token, FORM, urlencode(pairs).encode())
    assert status == 200, answer
    assert_datasource(answer, source, real_values)
    assert_moved(api, source, real_values)


def test_the_database_user_needs_the_client_certificate(transactional_db, settings, api, source, real_values):
    """Control for the tests above: the same body without ``certificate`` and ``keyfile`` is refused by the
    server (the user is ``REQUIRE X509``), so their 200s prove the client certificate was presented."""
    before = stored_state(source)
    body = {k: v for k, v in {**SEED_OBJECT, **real_values}.items() if k not in ("certificate", "keyfile")}
    with development_http_server(settings) as server:
        status, answer = send(server.url, str(source), api.raw_token, "application/json", json.dumps(body).encode())
    assert status == 400 and answer["code"] == 400 and "stage 'auth'" in answer["message"], answer
    assert stored_state(source) == before


# --- the SSH host key pinned by the first test (maiascore has no field for it) ----------------------------

WRONG_PIN = "SHA256:" + "A" * 43


def _pin(api, pk: int, **tunnel: Any) -> None:
    """Set the source's tunnel natively, saved untested (as an earlier bastion would have left it)."""
    body = {"connection": {"ssh_tunnel": tunnel}, "credentials": {"ssh_password": "old-ssh-pw"}}
    response = api.patch(f"{URL}{pk}/?test_connection=false", body, format="json")
    assert response.status_code == 200, response.json()


def test_a_tunnel_moved_to_another_bastion_pins_the_new_key(transactional_db, settings, api, source, real_values,
                                                            sshd):
    """The seed's ``sshHost``/``sshPort`` move the tunnel: the key pinned for the old bastion is dropped and
    the test pins the new one's (trust on first use), instead of refusing the new bastion for not being
    the old one."""
    _pin(api, source, enabled=True, host="old-bastion.example.com", port=22, username="old",
         host_key_fingerprint=WRONG_PIN)
    with development_http_server(settings) as server:
        status, answer = send(server.url, str(source), api.raw_token, "application/json",
                              json.dumps({**SEED_OBJECT, **real_values}).encode())
    assert status == 200, answer
    tunnel = api.get(f"{URL}{source}/").json()["connection"]["ssh_tunnel"]
    assert tunnel["host_key_fingerprint"] == keygen_fingerprint(sshd.host_key_pub)


def test_the_same_bastion_keeps_its_pin_and_the_test_enforces_it(transactional_db, settings, api, source,
                                                                real_values, sshd):
    """Same SSH host and port: the pin stays, so a bastion presenting another key is refused (stage ssh)."""
    _pin(api, source, enabled=True, host=sshd.host, port=sshd.port, username=sshd.user,
         host_key_fingerprint=WRONG_PIN)
    before = stored_state(source)
    with development_http_server(settings) as server:
        status, answer = send(server.url, str(source), api.raw_token, "application/json",
                              json.dumps({**SEED_OBJECT, **real_values}).encode())
    assert status == 400 and "stage 'ssh'" in answer["message"] and "pinned fingerprint" in answer["message"], answer
    assert stored_state(source) == before

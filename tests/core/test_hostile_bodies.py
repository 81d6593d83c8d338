"""Hostile request bodies (issue 12, part 3): a clear 4xx in the entry point's error shape, never a
500, and nothing changed, on every JSON, merge-patch, form and XML entry point.

The rules live in core/parsers.py (one walker for every parser) and core/middleware.py
(``BodyLimitMiddleware``: size from Content-Length before the body is read; NUL in paths and query
parameters). Explicit cases first, then a property-based run over the write endpoints (40 examples
each, derandomized; HOSTILE_EXAMPLES=400 explores more).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasources.models import Credential, DataSource, SchemaSnapshot
from organizations.models import AuditEvent
from tests.support.workflows import add_source, create_source, create_workflow
from workflows.models import Node, Workflow, WorkflowDataSource

DS = "/api/v1/data-sources/"
WF = "/api/v1/workflows/"
MAIA = "/compat/maiascore/datasources/"
RIVERGEN = "/compat/rivergen/api/v1/data-sources/"
CAMEL = "/compat/camelai/api/v1/sources/"
DATABRAIN = "/compat/databrain/api/v2/datasource"
REDIVIS = "/compat/redivis/api/v1/workflows/"
JSON_TYPE, MERGE, FORM, XML = ("application/json", "application/merge-patch+json",
                               "application/x-www-form-urlencoded", "application/xml")
MIB = 1024 * 1024
SHOP = "CREATE TABLE items (id INTEGER, name TEXT);"
# The documented messages (core/parsers.py), one per rule, the same on every entry point.
NUL_MESSAGE = "Must not contain NUL characters (U+0000)."
TEXT_MESSAGE = "Must be valid UTF-8 text: no lone surrogates (U+D800 to U+DFFF), no invalid bytes."
FINITE_MESSAGE = "Must be a finite number: NaN, Infinity and values beyond the float range are refused."
INT_MESSAGE = "Integers must fit in 64 bits (-9223372036854775808 to 9223372036854775807)."


# --- the world the requests try to change ---------------------------------------------------------


@pytest.fixture
def world(api, _file_root) -> dict[str, Any]:
    """A MySQL source (never tested: hostile bodies must be refused before any test), a SQLite source in
    a workflow (for the workflow and redivis writes)."""
    mysql = api.post(f"{DS}?test_connection=false", {
        "name": "Shop MySQL", "type": "mysql", "description": "orig", "tags": ["a"], "metadata": {"team": "data"},
        "connection": {"host": "mysql.example.com", "username": "shop", "database": "shop"},
        "credentials": {"password": "stored-pw"}}, format="json")
    assert mysql.status_code == 201, mysql.content
    shop = create_source(api, "Shop", "shop.db", SHOP)
    flow = create_workflow(api, "Flow")
    wds = add_source(api, flow, source_data_source="acme.shop")
    return {"ds": mysql.json()["id"], "wf": flow["id"], "wds": wds["id"], "shop": shop["id"]}


def snapshot() -> dict[str, list[dict]]:
    """Every row a write could touch (audit events included: a refused request records nothing)."""
    models = (DataSource, Credential, SchemaSnapshot, Workflow, WorkflowDataSource, Node, AuditEvent)
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in models}


def send(client, method: str, url: str, body: bytes | str, content_type: str = JSON_TYPE, **extra):
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    return client.generic(method, url, body, content_type=content_type, **extra)


# Every write entry point: (method, url template, content type). {ds}, {wf}, {wds} come from `world`.
JSON_WRITES = [
    ("POST", DS, JSON_TYPE),
    ("PATCH", DS + "{ds}/", JSON_TYPE),
    ("PATCH", DS + "{ds}/", MERGE),
    ("PUT", DS + "{ds}/", JSON_TYPE),
    ("POST", DS + "?dry_run=true", JSON_TYPE),
    ("PUT", MAIA + "{ds}", JSON_TYPE),
    ("PUT", MAIA + "{ds}", FORM),  # maiascore takes a JSON object sent with the form type
    ("PATCH", RIVERGEN + "{ds}", JSON_TYPE),
    ("PATCH", RIVERGEN + "{ds}/credentials", JSON_TYPE),
    ("PATCH", CAMEL + "{ds}/", JSON_TYPE),
    ("PUT", DATABRAIN, JSON_TYPE),
    ("POST", WF, JSON_TYPE),
    ("PATCH", WF + "{wf}/", JSON_TYPE),
    ("PUT", WF + "{wf}/", JSON_TYPE),
    ("POST", WF + "{wf}/data-sources/", JSON_TYPE),
    ("POST", WF + "{wf}/nodes/", JSON_TYPE),
    ("PATCH", REDIVIS + "acme.flow/dataSources/{wds}", JSON_TYPE),
]
WRITE_IDS = [f"{m} {u}{' ' + c.split('/')[1] if c != JSON_TYPE else ''}" for m, u, c in JSON_WRITES]


def error_of(response) -> tuple[Any, dict[str, list[str]]]:
    """(code, errors) of an error response in any of the shapes: core, maiascore, rivergen, databrain,
    camelAI, redivis."""
    body = response.json()
    if "request_id" in body:  # core
        return body["code"], body.get("errors") or {}
    if body.get("success") is False:  # rivergen
        return body["error"]["reason"], body["error"].get("details") or {}
    if "error" in body:  # databrain {"error": {code, message, errors}}, redivis {"error": {code, status, ...}}
        error = body["error"]
        return error.get("status", error.get("code")), error.get("errors") or {}
    if "detail" in body:  # camelAI: {"detail": message, field: [messages]}
        return None, {k: v for k, v in body.items() if k != "detail"}
    return body["code"], body.get("errors") or {}  # maiascore: {"code": status, "message", "errors"}


def url_for(template: str, world: dict) -> str:
    return template.format(**world)


# --- 1. size: 413 decided from Content-Length, the body never read --------------------------------


class Exploding(io.RawIOBase):
    """A request body that must not be read."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


@pytest.mark.parametrize("method,template,content_type", JSON_WRITES + [("PUT", MAIA + "{ds}", XML)],
                         ids=WRITE_IDS + ["PUT maiascore xml"])
def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(api, world, method, template,
                                                                        content_type):
    before = snapshot()
    response = api.generic(method, url_for(template, world), b"", content_type=content_type,
                           CONTENT_LENGTH=str(2 * MIB + 1), **{"wsgi.input": Exploding()})
    assert response.status_code == 413, response.content
    code, _ = error_of(response)
    assert code in ("PAYLOAD_TOO_LARGE", 413) or "larger than" in response.json()["detail"], response.json()
    assert snapshot() == before


def test_a_real_body_over_the_default_limit_is_413_and_the_limit_is_a_setting(api, world, settings):
    url = f"{DS}{world['ds']}/"
    before = snapshot()
    big = json.dumps({"metadata": {"blob": "x" * (2 * MIB)}})
    response = send(api, "PATCH", url, big)
    assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE", response.content
    assert response.json()["max_bytes"] == 2 * MIB and response.json()["request_id"]
    settings.REQUEST_BODY_MAX_BYTES = 1000
    exact = json.dumps({"description": "y" * (1000 - len(json.dumps({"description": ""})))})
    assert len(exact) == 1000
    assert send(api, "PATCH", url, exact + " ").status_code == 413
    assert snapshot() == before
    accepted = send(api, "PATCH", url, exact)
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["description"] == "y" * (1000 - 19)


def test_a_content_length_that_is_not_a_number_is_400(api, world):
    before = snapshot()
    for declared in ("abc", "-1", "1e3"):
        response = api.generic("PATCH", f"{DS}{world['ds']}/", b'{"description": "new"}',
                               content_type=JSON_TYPE, CONTENT_LENGTH=declared)
        assert response.status_code == 400, (declared, response.content)
        assert response.json()["errors"] == {"Content-Length": ["Must be a non-negative integer."]}
    assert snapshot() == before


class Counting(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.consumed = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


def chunked(api, url: str, body: bytes, *, terminated: bool = True):
    """A body sent without Content-Length (Transfer-Encoding: chunked), as gunicorn hands it over."""
    stream = Counting(body)
    extra = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": stream}
    if terminated:
        extra["wsgi.input_terminated"] = True
    return api.generic("PATCH", url, b"", content_type=JSON_TYPE, **extra), stream


def test_a_body_without_content_length_is_read_bounded(api, world, settings):
    url = f"{DS}{world['ds']}/"
    settings.REQUEST_BODY_MAX_BYTES = 4096
    response, _ = chunked(api, url, b'{"description": "chunked"}')
    assert response.status_code == 200 and response.json()["description"] == "chunked", response.content
    before = snapshot()
    response, stream = chunked(api, url, b'{"description": "' + b"z" * 100_000 + b'"}')
    assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert stream.consumed <= 4097  # never more than the limit + 1 byte
    response, stream = chunked(api, url, b'{"description": "unterminated"}', terminated=False)
    assert response.status_code == 411 and response.json()["code"] == "LENGTH_REQUIRED"
    assert stream.consumed == 0
    assert snapshot() == before


# --- 2. depth --------------------------------------------------------------------------------------


def nested(levels: int) -> Any:
    """An object ``levels`` deep: {"a": {"a": ... {}}} (the outer object counts as one level)."""
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("method,template,content_type", JSON_WRITES, ids=WRITE_IDS)
def test_a_10000_level_body_is_400(api, world, method, template, content_type):
    before = snapshot()
    deep = "[" * 10_000 + "]" * 10_000
    bodies = ['{"a": ' + deep + "}", '{"metadata": {"a": ' + deep + "}}"] + ([deep] if content_type != FORM else [])
    for body in bodies:
        response = send(api, method, url_for(template, world), body, content_type)
        assert response.status_code == 400, response.content
        assert "nested deeper than 64 levels" in json.dumps(response.json())
    assert snapshot() == before


def test_64_levels_are_accepted_65_are_refused_with_the_path(api, world):
    url = f"{DS}{world['ds']}/"
    before = snapshot()
    response = api.patch(url, {"metadata": nested(64)}, format="json")  # 65 with the body's own object
    assert response.status_code == 400, response.content
    path = "metadata" + ".a" * 63
    assert response.json()["errors"] == {path: ["Nested deeper than 64 levels."]}
    assert snapshot() == before
    assert api.patch(url, {"metadata": nested(63)}, format="json").status_code == 200


# --- 3. strings: NUL, lone surrogates, invalid UTF-8, keys included ---------------------------------

BAD_STRINGS = [  # (JSON text of the bad string, message)
    (r'"a\u0000b"', NUL_MESSAGE),
    (r'"a\ud800b"', TEXT_MESSAGE),
    (r'"\udfff"', TEXT_MESSAGE),
    ('"a\udc80b"', TEXT_MESSAGE),  # stands for the invalid UTF-8 byte 0x80 (sent as that byte, see `raw`)
]


def raw(text: str) -> bytes:
    """JSON text -> body bytes; a U+DC80..U+DCFF character becomes the invalid byte it stands for."""
    return text.encode("utf-8", "surrogateescape")


# (JSON template with {bad}, the dotted path named)
DS_FIELDS = [
    ('{{"name": {bad}}}', "name"),
    ('{{"description": {bad}}}', "description"),
    ('{{"tags": ["ok", {bad}]}}', "tags.1"),
    ('{{"metadata": {{"a": {{"b": {bad}}}}}}}', "metadata.a.b"),
    ('{{"metadata": {{"a": [1, {{"b": {bad}}}]}}}}', "metadata.a.1.b"),
    ('{{"connection": {{"host": {bad}}}}}', "connection.host"),
    ('{{"credentials": {{"password": {bad}}}}}', "credentials.password"),
]


@pytest.mark.parametrize("bad,message", BAD_STRINGS, ids=["nul", "surrogate", "low-surrogate", "invalid-utf8"])
@pytest.mark.parametrize("template,path", DS_FIELDS, ids=[p for _, p in DS_FIELDS])
@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT"])
def test_bad_strings_in_data_source_bodies_are_400_naming_the_field(api, world, method, template, path, bad,
                                                                     message):
    url = DS if method == "POST" else f"{DS}{world['ds']}/"
    before, shown = snapshot(), api.get(f"{DS}{world['ds']}/").json()
    response = send(api, method, url, raw(template.format(bad=bad)))
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "INVALID_REQUEST_BODY"
    assert response.json()["errors"] == {path: [message]}
    assert snapshot() == before
    assert api.get(f"{DS}{world['ds']}/").json() == shown  # version and every field unchanged


@pytest.mark.parametrize("bad,message", BAD_STRINGS[:2], ids=["nul", "surrogate"])
def test_bad_keys_are_400_naming_the_key(api, world, bad, message):
    before = snapshot()
    body = '{"metadata": {"team": {' + bad + ': 1}}}'
    response = send(api, "PATCH", f"{DS}{world['ds']}/", raw(body))
    assert response.status_code == 400, response.content
    shown = bad.strip('"')  # the key's bad character is escaped in the path (\\u0000), never echoed raw
    assert response.json()["errors"] == {f"metadata.team.{shown}": [f"Key: {message}"]}
    assert snapshot() == before


# the same rule on every other entry point: (method, url template, body, dotted path as the body names it)
OTHER_FIELDS = [
    ("PUT", MAIA + "{ds}", '{{"driver": "mysql", "host": {bad}}}', "host"),
    ("PATCH", RIVERGEN + "{ds}", '{{"host": {bad}}}', "host"),
    ("PATCH", RIVERGEN + "{ds}/credentials", '{{"password": {bad}}}', "password"),
    ("PATCH", CAMEL + "{ds}/", '{{"name": {bad}}}', "name"),  # the body's name, not mapped to account_name
    ("PUT", DATABRAIN, '{{"credentials": {{"name": "Shop MySQL", "host": {bad}}}}}', "credentials.host"),
    ("POST", WF, '{{"name": {bad}}}', "name"),
    ("PATCH", WF + "{wf}/", '{{"metadata": {{"x": {bad}}}}}', "metadata.x"),
    ("POST", WF + "{wf}/nodes/", '{{"name": "n", "inputs": [{{"data_source": {wds}, "table": {bad}}}]}}',
     "inputs.0.table"),
    ("PATCH", REDIVIS + "acme.flow/dataSources/{wds}", '{{"mappedTables": {{"items": {bad}}}}}',
     "mappedTables.items"),
]


@pytest.mark.parametrize("bad,message", BAD_STRINGS, ids=["nul", "surrogate", "low-surrogate", "invalid-utf8"])
@pytest.mark.parametrize("method,template,body,path", OTHER_FIELDS, ids=[f"{m} {u}" for m, u, _, _ in OTHER_FIELDS])
def test_bad_strings_on_every_other_entry_point_are_400_in_its_shape(api, world, method, template, body, path,
                                                                    bad, message):
    before = snapshot()
    response = send(api, method, url_for(template, world), raw(body.format(bad=bad, **world)))
    assert response.status_code == 400, response.content
    code, errors = error_of(response)
    assert code in ("INVALID_REQUEST_BODY", 400, "VALIDATION_ERROR", None), response.json()
    assert errors == {path: [message]}, response.json()
    assert snapshot() == before


# --- 4. numbers -------------------------------------------------------------------------------------

BAD_NUMBERS = [("1e309", FINITE_MESSAGE), ("-1e309", FINITE_MESSAGE), ("NaN", FINITE_MESSAGE),
               ("Infinity", FINITE_MESSAGE), ("-Infinity", FINITE_MESSAGE), (str(2**63), INT_MESSAGE),
               (str(-(2**63) - 1), INT_MESSAGE), ("9" * 5000, INT_MESSAGE)]
NUMBER_FIELDS = [
    (DS + "{ds}/", '{{"metadata": {{"a": [{bad}]}}}}', "metadata.a.0"),
    (DS + "{ds}/", '{{"connection_timeout": {bad}}}', "connection_timeout"),
    (DS + "{ds}/", '{{"connection": {{"port": {bad}}}}}', "connection.port"),
    (RIVERGEN + "{ds}", '{{"port": {bad}}}', "port"),
    (WF + "{wf}/", '{{"metadata": {{"n": {bad}}}}}', "metadata.n"),
]


@pytest.mark.parametrize("bad,message", BAD_NUMBERS, ids=[b[:12] for b, _ in BAD_NUMBERS])
@pytest.mark.parametrize("template,body,path", NUMBER_FIELDS, ids=[p for _, _, p in NUMBER_FIELDS])
def test_non_finite_and_overflowing_numbers_are_400_naming_the_field(api, world, template, body, path, bad,
                                                                     message):
    before = snapshot()
    response = send(api, "PATCH", url_for(template, world), body.format(bad=bad))
    assert response.status_code == 400, response.content
    assert error_of(response)[1] == {path: [message]}, response.json()
    assert snapshot() == before


def test_the_64_bit_bounds_themselves_are_accepted(api, world):
    response = api.patch(f"{DS}{world['ds']}/", {"metadata": {"max": 2**63 - 1, "min": -(2**63), "f": 1e308}},
                         format="json")
    assert response.status_code == 200, response.content
    metadata = response.json()["metadata"]
    assert (metadata["max"], metadata["min"]) == (2**63 - 1, -(2**63))
    assert float(metadata["f"]) == 1e308  # PostgreSQL's jsonb gives it back as the integer 10**308
    before = snapshot()
    assert api.patch(f"{DS}{world['ds']}/", {"metadata": {"max": 2**63}}, format="json").status_code == 400
    assert snapshot() == before


# --- 5. XML: DOCTYPE, DTDs and entities refused ------------------------------------------------------

ITEM = "<item><driver>mysql</driver><host>db.example.com</host><username>shop</username></item>"
HOSTILE_XML = [
    f"<!DOCTYPE item>{ITEM}",
    f'<?xml version="1.0"?><!DOCTYPE item SYSTEM "file:///etc/passwd">{ITEM}',
    f'<!DOCTYPE item [<!ELEMENT item ANY>]>{ITEM}',
    '<!DOCTYPE item [<!ENTITY x "boom">]><item><host>&x;</host></item>',
    '<!DOCTYPE item [<!ENTITY x SYSTEM "file:///etc/passwd">]><item><host>&x;</host></item>',
    '<!DOCTYPE item [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><item><host>&b;</host>'
    "</item>",
]


@pytest.mark.parametrize("content_type", [XML, "text/xml"])
@pytest.mark.parametrize("body", HOSTILE_XML, ids=["doctype", "system-dtd", "internal-dtd", "entity",
                                                    "external-entity", "laughs"])
def test_xml_with_a_doctype_or_entities_is_400(api, world, body, content_type):
    before = snapshot()
    response = send(api, "PUT", f"{MAIA}{world['ds']}", body, content_type)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == 400 and "DOCTYPE, DTD or entity declarations" in response.json()["message"]
    assert snapshot() == before


# --- 6. form bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body,path,message", [
    ("driver=mysql&host=a%00b", "host", NUL_MESSAGE),
    ("driver=mysql&host=a%FFb", "host", TEXT_MESSAGE),
    ("driver=mysql&host=%ED%A0%80", "host", TEXT_MESSAGE),  # a surrogate encoded as UTF-8: not valid UTF-8
    ("driver=mysql&ho%00st=a", "ho\\u0000st", f"Key: {NUL_MESSAGE}"),
    ('{"driver": "mysql", "host": "a\\u0000"}', "host", NUL_MESSAGE),
    ('{"driver": "mysql", "port": 1e309}', "port", FINITE_MESSAGE),
], ids=["nul", "invalid-utf8", "utf8-surrogate", "nul-key", "json-nul", "json-inf"])
def test_form_bodies_follow_the_same_rules(api, world, body, path, message):
    before = snapshot()
    response = send(api, "PUT", f"{MAIA}{world['ds']}", body, FORM)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == 400 and response.json()["errors"] == {path: [message]}
    assert snapshot() == before


# --- 7. paths and query parameters ---------------------------------------------------------------------


@pytest.mark.parametrize("url,param", [
    (DS + "?search=%00", "search"), (DS + "?tag=a%00", "tag"), (DS + "?type=mysql&na%00me=x", "na\\u0000me"),
    (WF + "?search=%00", "search"), (WF + "{wf}/nodes/?ordering=%00", "ordering"),
    (DS + "{ds}/history/?page=%00", "page"),
])
def test_nul_in_a_query_parameter_is_400_naming_it(api, world, url, param):
    response = api.get(url_for(url, world))
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "INVALID_REQUEST_BODY"
    assert response.json()["errors"] == {param: [NUL_MESSAGE]}


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("url,param", [(WF + "acme.fl%00ow/", "workflow"), (WF + "{wf}/nodes/n%00/", "node"),
                                       (WF + "{wf}/data-sources/acme.sh%00op/", "data_source")])
def test_nul_in_a_path_segment_is_404_naming_it(api, world, method, url, param):
    before = snapshot()
    response = send(api, method, url_for(url, world), b'{"description": "x"}')
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "NOT_FOUND" and response.json()["errors"] == {param: [NUL_MESSAGE]}
    assert snapshot() == before


def test_nul_in_a_compat_path_is_404_in_the_seeds_shape(api, world):
    before = snapshot()
    response = api.patch(f"{REDIVIS}acme.fl%00ow/dataSources/{world['wds']}", {"sourceDataset": "acme.shop"},
                         format="json")
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == 404
    assert response.json()["error"]["errors"] == {"workflowReference": [NUL_MESSAGE]}
    assert snapshot() == before


# --- 8. property: generated hostile bodies on every write endpoint ---------------------------------------


class Raw:
    """JSON text inserted as is (numbers JSON cannot carry as Python floats, invalid bytes, deep nests)."""

    def __init__(self, data: bytes):
        self.data = data

    def __repr__(self) -> str:
        return f"Raw({self.data[:40]!r}{'...' if len(self.data) > 40 else ''})"


def encode(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, dict):
        return b"{" + b",".join(encode(k) + b":" + encode(v) for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(encode(v) for v in value) + b"]"
    return json.dumps(value).encode()  # ensure_ascii: a lone surrogate is sent as its \\uXXXX escape


bad_char = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
bad_text = st.builds(lambda a, c, b: a + c + b, st.text(max_size=4), bad_char, st.text(max_size=4))
invalid_utf8 = st.builds(lambda a, c: Raw(b'"' + a.encode() + c + b'"'), st.text(alphabet="abc", max_size=3),
                         st.sampled_from([b"\xff", b"\x80", b"\xc3", b"\xed\xa0\x80"]))
bad_number = st.one_of(
    st.sampled_from([Raw(b"1e309"), Raw(b"-1e400"), Raw(b"NaN"), Raw(b"Infinity"), Raw(b"-Infinity")]),
    st.integers(min_value=2**63, max_value=2**200), st.integers(min_value=-(2**200), max_value=-(2**63) - 1),
    st.integers(min_value=20, max_value=6000).map(lambda n: Raw(b"9" * n)),
)
too_deep = st.integers(min_value=65, max_value=12_000).map(lambda n: Raw(b"[" * n + b"]" * n))
hostile_leaf = st.one_of(bad_text, invalid_utf8, bad_number, too_deep)
benign = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5),
                   st.lists(st.integers(-5, 5), max_size=2))  # wrong types for most fields
FIELD_NAMES = ["name", "description", "metadata", "tags", "connection", "credentials", "host", "port", "driver",
               "password", "account_name", "sourceDataset", "mappedTables", "inputs", "connection_timeout", "x"]
key = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=4))


@st.composite
def hostile_json(draw) -> bytes:
    """A body with at least one hostile key or value somewhere among field names and wrong types."""
    leaf = draw(hostile_leaf)
    for _ in range(draw(st.integers(0, 3))):  # bury it in objects and arrays
        leaf = {draw(key): leaf} if draw(st.booleans()) else [draw(benign), leaf]
    body = draw(st.dictionaries(key, benign, max_size=3))
    if draw(st.integers(0, 4)) == 0:
        body[draw(bad_text)] = draw(benign)  # hostile key
    else:
        body[draw(key)] = leaf
    return encode(body)


def is_json_container(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), (dict, list))
    except ValueError:
        return False


random_bytes = st.binary(min_size=1, max_size=64).filter(lambda data: data.strip() and not is_json_container(data))
hostile_form = st.one_of(
    st.builds(lambda k, v: f"{k}={v}".encode(), st.sampled_from(["host", "driver", "port", "x"]),
              st.sampled_from(["%00", "a%00", "%FF", "%ED%A0%80", "%C3"])),
    hostile_json(),
)
hostile_xml = st.one_of(
    st.sampled_from([x.encode() for x in HOSTILE_XML]),
    st.integers(10, 3000).map(lambda n: b"<item>" + b"<a>" * n + b"</a>" * n + b"</item>"),
    st.sampled_from([b"<item><host>&#0;</host></item>", b"<item><host>\xff</host></item>"]),
)
PROPERTY_CASES = [(m, u, c, hostile_json()) for m, u, c in JSON_WRITES if c != FORM] + [
    ("PUT", MAIA + "{ds}", FORM, hostile_form),
    ("PUT", MAIA + "{ds}", XML, hostile_xml),
]


@pytest.mark.parametrize("method,template,content_type,strategy", PROPERTY_CASES,
                         ids=[f"{m} {u} {c.split('/')[1]}" for m, u, c, _ in PROPERTY_CASES])
def test_generated_hostile_bodies_are_refused_and_change_nothing(api, world, method, template, content_type,
                                                                 strategy):
    url = url_for(template, world)
    before = snapshot()

    @settings(max_examples=int(os.environ.get('HOSTILE_EXAMPLES', 40)), deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(body=st.one_of(strategy, random_bytes))
    def run(body: bytes) -> None:
        response = send(api, method, url, body, content_type)
        assert response.status_code < 500, (body[:200], response.content[:300])
        assert 400 <= response.status_code, (body[:200], response.content[:300])
        assert response["Content-Type"].startswith("application/json")
        assert snapshot() == before, body[:200]

    run()


def test_every_operation_with_a_body_documents_the_body_limit(api):
    doc = api.get("/api/schema/?format=json").json()
    operations = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()
                  if isinstance(op, dict) and "requestBody" in op]
    assert operations
    for path, method, op in operations:
        for status, code in (("413", "PAYLOAD_TOO_LARGE"), ("411", "LENGTH_REQUIRED")):
            assert code in op["responses"].get(status, {}).get("description", ""), (path, method, status)
            if "400" in op["responses"]:  # the seed adapters answer in their own shape
                assert op["responses"][status]["content"] == op["responses"]["400"]["content"], (path, method)


@pytest.mark.parametrize(("declared", "status"), [("²", 400), ("1e3", 400), ("+5", 400), ("9" * 200, 413)])
def test_content_length_is_read_as_ascii_digits_only(api, world, declared, status):
    before = snapshot()
    response = api.generic("PATCH", f"{DS}{world['ds']}/", b"", content_type="application/json",
                           CONTENT_LENGTH=declared, **{"wsgi.input": Exploding()})
    assert response.status_code == status, response.content
    assert snapshot() == before

"""Fuzz every operation of the OpenAPI contract against the live server (schemathesis).

The real app runs on a loopback port (``tests/support/live.py``) on the test database, with a real
all-scopes token. The data it works on is real too: PostgreSQL data sources point at the scram
password cluster (``pg_password_server``) through a role whose password is a *planted canary*, so
every connection test and schema refresh the fuzzer triggers is a real one; other sources carry
canary secrets of their own. Schemathesis runs its default phases (examples, coverage, fuzzing,
stateful) and default checks (no server errors; status codes, content types, headers and bodies
conform to the schema; negative data rejected; positive data accepted; ...), plus one check of
ours: no response, body or header, ever contains a planted secret.

Positive cases act on real objects (their ids, mostly, mixed with generated values), so the
fuzzer reaches the handlers instead of answering 404 all day; destructive operations get
throwaway objects of their own. See ``tests/support/fuzz_repairs.py`` for every such repair, positive
cases only.

Bounded: ``FUZZ_MAX_EXAMPLES`` examples per operation (default 10) and a fixed seed
(``FUZZ_SEED``, default 20251) so CI is repeatable; set ``FUZZ_SEED=random`` to explore, and
``FUZZ_FULL_COVERAGE=1`` for the coverage phase of the PUT and PATCH unions too (see ``_config``).
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from hypothesis import strategies as st

schemathesis = pytest.importorskip("schemathesis")

from tests.support.fuzz_repairs import STATE, is_positive, repair_positive  # noqa: E402
from tests.support.fuzz_world import (  # noqa: E402
    CANARIES,
    CANARY_DB,
    CANARY_PG_PASSWORD,
    CANARY_ROLE,
    World,
    _canary_role,
    _pg_body,
)
from tests.support.live import live_http_server  # noqa: E402

# In the default run (`make test`, CI); `make fuzz` runs it alone.
pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
SEED = os.environ.get("FUZZ_SEED", "20251")
FULL_COVERAGE = os.environ.get("FUZZ_FULL_COVERAGE") == "1"


# --- the planted-secret check -------------------------------------------------------------------


@schemathesis.check
def no_planted_secret(ctx, response, case):
    """No response, body or header, contains a planted secret (or a piece of one)."""
    text = response.content.decode("utf-8", "replace") if response.content else ""
    headers = "\n".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in response.headers.items())
    for canary in CANARIES:
        for haystack, where in ((text, "body"), (headers, "headers")):
            if canary in haystack or canary[:24] in haystack:
                raise AssertionError(f"A planted secret appears in the response {where}: {canary[:12]}...")
    return None


# A JSON secret (service-account JSON) is a string holding a JSON object: `format: json` says so, and
# this is how such strings are generated (a pattern cannot say "valid JSON").
schemathesis.openapi.format("json", st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
                            .map(json.dumps))


@schemathesis.hook
def before_call(context, case, kwargs):
    """Positive cases get real state where acceptance depends on it (``tests/support/fuzz_repairs.py``)."""
    if STATE and is_positive(case):
        repair_positive(case)


# --- the run --------------------------------------------------------------------------------------


@pytest.fixture
def world(transactional_db, settings, org, api, pg_password_server, _file_root):
    from tests.support.live import prepare_settings

    prepare_settings(settings)
    _canary_role(pg_password_server)
    return World(api, pg_password_server, _file_root)


def _ids(op: str, dictionary: str, probability: float = 1.0) -> dict:
    name = re.findall(r"\{(\w+)\}", op)[-1]  # the last path parameter
    return {"include-name": op,  # one filter: separate method and path filters would be OR-ed
            "parameters": {f"path.{name}": {"dictionary": dictionary, "probability": probability}}}


# Operation -> the objects its positive cases act on (applied by `before_call`, not as schemathesis
# parameter bindings: a binding also overwrites the ids of *negative* cases, which then pass as valid).
_OPERATION_IDS = [
    # Writes go to a scratch source, never to the ones the reads and refreshes rely on.
    _ids("PUT /api/v1/data-sources/{id}/", "scratch_sources"),
    _ids("PATCH /api/v1/data-sources/{id}/", "scratch_sources"),
    _ids("PATCH /compat/camelai/api/v1/sources/{id}/", "compat_source_names"),
    _ids("PUT /compat/maiascore/datasources/{id}", "compat_source_names"),
    _ids("DELETE /api/v1/data-sources/{id}/", "victim_sources"),
    _ids("PATCH /compat/rivergen/api/v1/data-sources/{data_source_id}", "compat_sources"),
    _ids("PATCH /compat/rivergen/api/v1/data-sources/{data_source_id}/credentials", "compat_sources"),
    # Refreshes and tests: sources whose database is really here. Elsewhere they answer, by design,
    # SCHEMA_CACHE_FAILED (500, the seed's code) or CONNECTOR_UNAVAILABLE (400).
    _ids("POST /api/v1/data-sources/{id}/sync/", "cacheable_sources"),
    _ids("POST /api/v1/data-sources/{id}/test/", "cacheable_sources"),
    _ids("GET /api/v1/data-sources/{id}/schema/diff/", "tenancy_sources"),  # the one with two versions
    _ids("PUT /api/v1/data-sources/{id}/tenancy/", "tenancy_sources"),
    _ids("PATCH /api/v1/data-sources/{id}/tenancy/", "tenancy_sources"),
    _ids("DELETE /api/v1/data-sources/{id}/tenancy/", "tenancy_sources"),
    _ids("DELETE /api/v1/workflows/{workflow}/", "victim_workflows"),
    _ids("DELETE /api/v1/workflows/{workflow}/data-sources/{data_source}/", "victim_wds"),
    _ids("DELETE /api/v1/workflows/{workflow}/nodes/{node}/", "victim_nodes"),
]


def _config(token: str, world: World):
    ds_ids = [world.warehouse["id"], world.shop["id"], *(o["id"] for o in world.others)]
    data = {
        "seed": None if SEED == "random" else int(SEED),
        # One request per connection: Django's threaded dev server shares the in-memory SQLite
        # connection across its request threads, and idle keep-alive threads trip over it.
        "headers": {"Connection": "close"},
        # The token through the schema's own security scheme: schemathesis then knows which header
        # carries it (a plain header would overwrite the ones it negates to test authentication).
        "auth": {"openapi": {"BearerAuth": {"bearer": token}}},
        "workers": 1,
        # A write with a stale If-Match is refused with 412 before its body is read (RFC 9110 13.2.1:
        # preconditions come before the content), so 412 is one more way of rejecting negative data; and a
        # generated body past REQUEST_BODY_MAX_BYTES (2 MiB: a change set of long strings) is refused with 413.
        "checks": {"negative_data_rejection": {"expected-statuses": [
            "400", "401", "403", "404", "405", "406", "409", "412", "413", "415", "422", "428", "429", "5xx"]}},
        "request-timeout": 60,
        # DRF refuses NUL in every string field (PostgreSQL text cannot hold it), a rule the schema
        # does not repeat on each property: positive strings carry none.
        # The bearer token is not generated data: authentication is tested by `ignored_auth` (requests
        # without it), not by negating a header the auth provider then overwrites with the real token.
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "allow-x00": False,
                       "with-security-parameters": False},
        # Path values come from the dictionaries below, not from ids seen in responses: a refresh or a
        # test of a source whose database is not here says so by design (SCHEMA_CACHE_FAILED, 500;
        # CONNECTOR_UNAVAILABLE, 400), and would drown every other finding.
        "phases": {"fuzzing": {"extra-data-sources": {"responses": False}},
                   "coverage": {"extra-data-sources": {"responses": False}}},
        # Path values mostly from these (then `before_call` pins positive cases of some operations).
        "parameters": {f"path.{param}": {"dictionary": name, "probability": 0.9}
                       for param, name in PATH_DICTIONARIES.items()},
        "dictionaries": {
            "readable_sources": {"values": ds_ids},
            "cacheable_sources": {"values": [world.warehouse["id"], world.shop["id"]]},
            "tenancy_sources": {"values": [world.warehouse["id"]]},
            "scratch_sources": {"values": [world.scratch["id"]]},
            "victim_sources": {"values": [world.victim["id"], world.scratch["id"]]},
            # String path parameters get strings: an integer does not match `type: string`, so
            # schemathesis would draw it as a *negative* value, sent as the valid "1".
            "compat_sources": {"values": [world.compat["id"]]},
            "compat_source_names": {"values": [str(world.compat["id"])]},
            "workflows": {"values": [str(world.workflow["id"]), world.workflow["reference"]]},
            "victim_workflows": {"values": [str(world.victim_workflow["id"])]},
            "wds": {"values": [str(world.wds["id"]), str(world.wds_shop["id"]), world.wds["reference"]]},
            "victim_wds": {"values": [str(world.wds_spare["id"])]},
            "nodes": {"values": [str(world.node["id"]), str(world.node2["id"]), "Clean"]},
            "victim_nodes": {"values": [str(world.node2["id"])]},
            "tables": {"values": ["clean_customers"]},
        },
        "operations": [
            *({"include-name": name, "parameters": {"path.id": {"dictionary": "compat_source_names",
                                                                "probability": 0.9}}}
              for name in ("PATCH /compat/camelai/api/v1/sources/{id}/", "PUT /compat/maiascore/datasources/{id}")),
            # The coverage phase walks the per-type unions exhaustively (~10k cases, 2-4 minutes each): the
            # PUT body has the shapes of the create body, whose coverage runs, and the PATCH body is the same
            # union made partial, so in the default run (CI) both get the bounded examples, fuzzing and
            # stateful phases only, keeping `.ci/run` far from its time limit. FUZZ_FULL_COVERAGE=1 adds
            # their coverage phase (about 8 minutes in all on SQLite, passing).
            *({"include-name": name, "phases": {"coverage": {"enabled": False}}}
              for name in (() if FULL_COVERAGE else ("PUT /api/v1/data-sources/{id}/",
                                                     "PATCH /api/v1/data-sources/{id}/",
                                                     # a plan's body and a change set's items are
                                                     # the PATCH union too
                                                     "POST /api/v1/data-sources/{id}/plans/",
                                                     "POST /api/v1/change-sets/"))),
        ],
    }
    return schemathesis.Config.from_dict(data)


PATH_DICTIONARIES = {"id": "readable_sources", "data_source_id": "compat_sources", "workflow": "workflows",
                     "data_source": "wds", "node": "nodes", "table": "tables"}


def _path_values(dictionaries: dict) -> dict:
    return {param: [e.value for e in dictionaries[name].entries] for param, name in PATH_DICTIONARIES.items()}


def _pins(dictionaries: dict) -> dict:
    """Operation label -> (path parameter, allowed values), from the operation-level bindings above."""
    pins = {}
    for entry in _OPERATION_IDS:
        name, (param, dictionary) = entry["include-name"], next(iter(entry["parameters"].items()))
        pins[name] = (param.removeprefix("path."),
                      [e.value for e in dictionaries[dictionary["dictionary"]].entries])
    return pins


def _patch_validators(doc: dict):
    """type -> the validators of a PATCH's connection and credentials for a data source of that type."""
    import jsonschema

    from datasources.api.openapi_docs import component_prefix
    from tests.core.test_openapi import to_json_schema

    root = {"components": {"schemas": to_json_schema(doc["components"]["schemas"])}}
    cache: dict[str, dict] = {}

    def validator(name: str):
        return jsonschema.Draft202012Validator({**root, "$ref": f"#/components/schemas/{name}"})

    def for_type(kind: str) -> dict:
        if kind not in cache:
            prefix = component_prefix(kind)
            cache[kind] = {"connection": validator(f"Patched{prefix}Connection"),
                           "credentials": validator(f"{prefix}Credentials")}
        return cache[kind]

    return for_type


def _sent_valid_data(check: str, message: str) -> bool:
    """A `negative_data_rejection` failure whose request schemathesis itself re-validated as valid.

    Happens when a path value drawn from the dictionaries replaces the negated one, or when a
    negated path string serializes to a valid one: the API accepted valid data, which is right.
    """
    return check == "negative_data_rejection" and (
        "Invalid component: positive test case" in message or "Invalid component: default positive test case" in message
    )


def _answer(recorder, case_id) -> str:
    response = recorder.find_response(case_id=case_id) if case_id else None
    if response is None:
        return ""
    return f"\n-> {response.status_code} {response.content[:600].decode('utf-8', 'replace')}"


def test_every_operation_conforms_to_the_contract(world, settings, api, monkeypatch, pg_password_server):
    from schemathesis.engine import events, from_schema

    from datasources.catalogue import CATALOGUE
    from datasources.connectors import egress

    # No internet here (and a catch-all TCP proxy in some sandboxes): only the loopback networks
    # allowed by the settings are reachable, so generated public hosts fail fast at `tcp`.
    monkeypatch.setattr(egress, "_default_blocked", lambda ip: True)
    report: list[str] = []
    with live_http_server(settings) as live:
        started = time.monotonic()
        schema = schemathesis.openapi.from_url(f"{live.url}/api/schema/?format=json",
                                               config=_config(api.raw_token, world))
        pins = _pins(schema.config.dictionaries)
        STATE.update(live=live, token=api.raw_token, scratch={"postgresql": world.scratch["id"]}, counter=0,
                      wds=world.wds["id"], flow={str(world.workflow["id"]), world.workflow["reference"]},
                      pg_connection=_pg_body(pg_password_server, "x")["connection"],
                      workspace=world.workspace_id, pins=pins,
                      paths=_path_values(schema.config.dictionaries),
                      pins_kept_in_chains={name: values for name, (_, values) in pins.items()
                                           if name.endswith(("/sync/", "/test/", "/tenancy/", "/schema/diff/"))
                                           or "/compat/" in name},
                      pg_dsn=f"postgresql://{CANARY_ROLE}:{CANARY_PG_PASSWORD}@{pg_password_server.host}:"
                             f"{pg_password_server.port}/{CANARY_DB}?sslmode=disable",
                      patch_validators=_patch_validators(schema.raw_schema),
                      pg_secrets={sec.name for sec in CATALOGUE["postgresql"].secrets},
                      compat=world.compat["id"],
                      # the fixtures reads, refreshes and tenancy rely on: a chain never deletes them
                      protected={str(pk) for pk in (world.warehouse["id"], world.shop["id"], world.compat["id"],
                                                    *(o["id"] for o in world.others))})
        failures: list[str] = []
        inconclusive: list[str] = []
        errors: list[str] = []
        tested: set[str] = set()
        try:
            for event in from_schema(schema).execute():
                if isinstance(event, events.ScenarioFinished):
                    tested.add(event.recorder.label)
                    report.append(f"{event.elapsed_time:7.2f}s {event.phase} {event.recorder.label} {event.status}"
                                  f" cases={len(event.recorder.cases)}")
                    for case_id, checks in event.recorder.checks.items():
                        for check in checks:
                            if check.failure_info is not None:
                                f = check.failure_info
                                if _sent_valid_data(check.name, f.failure.message):
                                    inconclusive.append(f"{event.recorder.label}: {f.code_sample}")
                                    continue
                                failures.append(f"[{event.phase}] {event.recorder.label} {check.name}: "
                                                f"{f.failure.title}\n{f.failure.message}\n{f.code_sample}"
                                                f"{_answer(event.recorder, case_id)}")
                elif isinstance(event, events.NonFatalError):
                    errors.append(f"{event.label}: {event.value!r}")
                elif isinstance(event, events.FatalError):
                    raise event.exception
        finally:
            STATE.clear()
        elapsed = time.monotonic() - started
    report.append(f"fuzzed {len(tested)} operations in {elapsed:.1f}s; {len(failures)} failures; "
                  f"{len(inconclusive)} negative cases that were valid once sent (not failures):")
    report.extend(inconclusive)
    if os.environ.get("FUZZ_REPORT"):
        with open(os.environ["FUZZ_REPORT"], "w") as fh:
            fh.write("\n".join(report) + "\n\n" + "\n\n".join(errors) + "\n\n" + "\n\n".join(failures))
    assert not errors, "\n\n".join(errors)
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures[:60])

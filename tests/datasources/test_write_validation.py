"""The write view checks a body with the field specs (``datasources.fields.validate``) and runs the
DRF write serializer only to word a refusal (``DataSourceViewSet._validated``). That is the same
answer as before only if every body the specs pass, the serializer passes too, with the same values:
held here for generated bodies of every field, valid and not, partial (PATCH) and whole (create, PUT).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidRequest
from datasources import fields
from datasources.shapes import DataSourceWriteSerializer

URL = "/api/v1/data-sources/"

_junk = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**6), max_value=10**6), st.floats(allow_nan=False),
    st.text(max_size=8), st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_text = st.one_of(
    st.text(max_size=20), st.sampled_from(["", "  ", " padded ", "a\x00b", "\ud800", "x" * 65, "n" * 256]),
)
_ints = st.one_of(st.integers(min_value=-5, max_value=200), st.sampled_from([0, 1, 59, 60, 300, 301, 86_401, 10**40]))
_tenancy = st.one_of(
    st.none(), _junk,
    st.fixed_dictionaries({}, optional={
        "level": st.sampled_from(["TABLE", "DATABASE", "ROW", "", 1]),
        "client_column_type": st.sampled_from(["NUMBER", "STRING", None, "x"]),
        "schema": st.one_of(st.none(), _text), "table": st.one_of(st.none(), _text),
        "client_column": _text, "primary_key_column": _text, "extra": _junk,
    }),
)
def _mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any] = _junk) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, valid, invalid)


_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": _mostly(_text),
    "type": _mostly(st.sampled_from(["postgresql", "sqlite", "oracle9", "", 7])),
    "description": _mostly(st.one_of(st.none(), _text)),
    "workspace": _mostly(st.one_of(st.none(), _ints)),
    "connection": _mostly(st.dictionaries(st.text(max_size=5), _junk, max_size=3)),
    "credentials": _mostly(st.dictionaries(st.text(max_size=5), st.one_of(st.none(), _text), max_size=3)),
    "connection_pool_size": _mostly(st.one_of(st.none(), _ints)),
    "connection_timeout": _mostly(st.one_of(st.none(), _ints)),
    "query_timeout": _mostly(st.one_of(st.none(), _ints)),
    "max_retries": _mostly(st.one_of(st.none(), _ints)),
    "schema_auto_refresh": _mostly(st.one_of(st.none(), st.booleans())),
    "schema_refresh_interval": _mostly(st.one_of(st.none(), _ints, st.integers(60, 2_592_001))),
    "health_check_interval": _mostly(st.one_of(st.none(), _ints)),
    "tags": _mostly(st.one_of(st.none(), st.lists(_text, max_size=4),
                              st.lists(st.just("t"), min_size=51, max_size=51))),
    "metadata": _mostly(st.one_of(st.none(), st.dictionaries(st.text(max_size=5), _junk, max_size=3),
                                  st.just({"blob": "m" * 16_400}))),
    "connection_string": _mostly(_text),
    "tenancy_settings": _tenancy,
    "status": _junk,  # read-only
    "colour": _junk,  # unknown
}

_BASE = {"name": "Shop", "type": "sqlite", "connection": {"path": "x"}}


@st.composite
def _bodies(draw: st.DrawFn) -> Any:
    """A few fields (most often valid values), on a blank body or on one that creates; or junk."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_junk)
    body = dict(_BASE) if draw(st.booleans()) else {}
    for name in draw(st.lists(st.sampled_from(sorted(_FIELDS)), max_size=3, unique=True)):
        body[name] = draw(_FIELDS[name])
    return body


def _both(body: Any, partial: bool) -> None:
    try:
        specs = fields.validate(body, partial=partial)
    except InvalidRequest:
        return  # the view then answers with the serializer's own refusal, as it always has
    serializer = DataSourceWriteSerializer(data=body, partial=partial)
    assert serializer.is_valid(), (body, serializer.errors)
    # The same values (a nested OrderedDict equals its dict), key for key and in the same order.
    assert json.dumps(serializer.validated_data) == json.dumps(specs)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies(), partial=st.booleans())
def test_a_body_the_specs_pass_the_serializer_passes_with_the_same_values(body, partial):
    _both(body, partial)


def test_known_edges():
    for body in (
        {}, {"description": None}, {"description": "   "}, {"tags": None}, {"tags": [" a ", "b"]},
        {"health_check_interval": 0}, {"health_check_interval": 30}, {"credentials": {"password": ""}},
        {"credentials": {"password": None, "x": " keep "}}, {"tenancy_settings": None},
        {"tenancy_settings": {"level": "TABLE", "table": " t "}}, {"connection_string": "   "},
        {"workspace": None}, {"metadata": None}, {"name": " n "},
    ):
        for partial in (True, False):
            _both(body, partial)


def test_a_refused_patch_reads_as_the_serializer_words_it(api, sqlite_file):
    created = api.post(URL, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    pk = created.json()["id"]
    for body in ({"tags": "a,b"}, {"health_check_interval": 30}, {"status": "active", "name": ""}, ["a"]):
        response = api.patch(f"{URL}{pk}/", body, format="json")
        serializer = DataSourceWriteSerializer(data=body, partial=True)
        if serializer.is_valid():  # the serializer passes it: the services refuse it (the specs' floor)
            assert response.json()["errors"] == {"health_check_interval": [
                "Ensure this value is 0 (off) or greater than or equal to 60."]}
        else:
            assert response.status_code == 400
            assert response.json()["errors"] == json.loads(json.dumps(serializer.errors))

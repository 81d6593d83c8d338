"""Operation names in the OpenAPI document: what a generated SDK and the docs UIs group and call things by.

drf-spectacular tags an operation it is told nothing about with its path's first segment, ``api``: the
workflow, node, table and event operations were one "api" group in Swagger UI and the module ``api.api`` of an
openapi-python-client SDK. Five operationIds set by hand had lost the ``api_`` prefix every other one has.
"""

from __future__ import annotations

from collections import Counter

import pytest

METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture
def doc(client, db) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def all_operations(doc):
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


@pytest.mark.django_db
def test_every_operation_has_a_proper_tag(doc):
    untagged = [(m.upper(), p, op.get("tags")) for p, m, op in all_operations(doc) if op.get("tags") in (None, [])]
    generic = [(m.upper(), p) for p, m, op in all_operations(doc) if "api" in op.get("tags", [])]
    assert not untagged and not generic, (untagged, generic)
    tags = {(p, m): op["tags"] for p, m, op in all_operations(doc)}
    assert tags[("/api/v1/workflows/", "post")] == ["workflows"]
    assert tags[("/api/v1/workflows/{workflow}/data-sources/{data_source}/", "patch")] == ["workflow-data-sources"]
    assert tags[("/api/v1/workflows/{workflow}/nodes/", "get")] == ["workflow-nodes"]
    assert tags[("/api/v1/workflows/{workflow}/tables/{table}/", "get")] == ["workflow-tables"]
    assert tags[("/api/v1/events/", "get")] == tags[("/api/v1/events/{id}/", "get")] == ["events"]


@pytest.mark.django_db
def test_operation_ids_are_unique_and_consistent(doc):
    ids = [op["operationId"] for _, _, op in all_operations(doc)]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    for path, method, op in all_operations(doc):
        prefix = "api_v1_" if path.startswith("/api/v1/") else "compat_"
        assert op["operationId"].startswith(prefix), (method, path, op["operationId"])
    assert {"api_v1_data_sources_history_list", "api_v1_data_sources_schema_versions_list",
            "api_v1_data_source_types_list", "api_v1_health_settings_retrieve",
            "api_v1_health_settings_partial_update"} <= set(ids)

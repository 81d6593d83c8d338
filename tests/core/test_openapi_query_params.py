"""Every query parameter the document lists on a GET is read by the server: a value outside its enum
is a 400 naming it, never ignored. (The revisions list listed the data-source list's filters, which
it ignored: `?type=bogus` answered the whole list.)"""

from __future__ import annotations

import re

import pytest

from tests.support.openapi_doc import operations, served_doc
from tests.support.workflows import create_source


@pytest.mark.django_db
def test_every_enum_query_parameter_of_a_get_is_applied(api):
    source = create_source(api, "Shop", "shop.db", "CREATE TABLE items (id INTEGER);")
    checked = []
    for path, method, operation in operations(served_doc(api), "/api/v1/"):
        if method != "get" or set(re.findall(r"{(\w+)}", path)) - {"id"}:
            continue
        url = path.replace("{id}", str(source["id"]))
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            enum = schema.get("enum") or schema.get("items", {}).get("enum")
            if parameter["in"] != "query" or not enum:
                continue
            response = api.get(f"{url}?{parameter['name']}=not-a-value-of-it")
            assert response.status_code == 400, (path, parameter["name"], response.status_code)
            assert parameter["name"] in response.json()["errors"], (path, response.json())
            checked.append(f"{path}?{parameter['name']}")
    assert {"/api/v1/data-sources/?type", "/api/v1/data-sources/?ordering", "/api/v1/events/?type"} <= set(checked)

"""Helpers (not tests) shared by the workflow and remap tests: SQLite sources, workflows, nodes."""

from __future__ import annotations

import os
import sqlite3

from django.conf import settings

WF = "/api/v1/workflows/"


def sqlite_db(filename: str, script: str) -> str:
    """Run ``script`` on a SQLite file under the file root; returns its relative path."""
    with sqlite3.connect(os.path.join(settings.DATASOURCE_FILE_ROOT, filename)) as db:
        db.executescript(script)
    return filename


def create_source(api, name: str, filename: str, script: str = "") -> dict:
    """A SQLite data source (schema version 1 cached)."""
    path = sqlite_db(filename, script)
    response = api.post("/api/v1/data-sources/", {"name": name, "type": "sqlite", "connection": {"path": path}},
                        format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["schema"]["version"] == 1
    return response.json()


def change_schema(api, source: dict, filename: str, script: str) -> int:
    """Alter the SQLite file and re-sync; returns the new schema version."""
    sqlite_db(filename, script)
    response = api.post(f"/api/v1/data-sources/{source['id']}/sync/")
    assert response.status_code == 200, response.json()
    return response.json()["schema"]["version"]


def tables(api, source: dict, version: int | None = None) -> dict[str, str]:
    """Table name -> reference id in a schema version."""
    query = f"?version={version}" if version else ""
    data = api.get(f"/api/v1/data-sources/{source['id']}/schema/{query}").json()
    return {t["name"]: t["reference_id"] for t in data["tables"]}


def create_workflow(api, name: str) -> dict:
    response = api.post(WF, {"name": name}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def add_source(api, workflow: dict, **body: str) -> dict:
    response = api.post(f"{WF}{workflow['id']}/data-sources/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def add_node(api, workflow: dict, name: str, inputs: list[tuple[dict, str]], output: dict | None = None) -> dict:
    body: dict = {"name": name, "inputs": [{"data_source": wds["id"], "table": table} for wds, table in inputs]}
    if output is not None:
        body["output_table"] = output
    response = api.post(f"{WF}{workflow['id']}/nodes/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def node_tables(api, workflow: dict) -> dict[str, list[str]]:
    """Node name -> the table references it reads."""
    nodes = api.get(f"{WF}{workflow['id']}/nodes/").json()["results"]
    return {n["name"]: [i["table"]["reference"] for i in n["inputs"]] for n in nodes}


def wds_url(workflow: dict, wds: dict) -> str:
    return f"{WF}{workflow['id']}/data-sources/{wds['id']}/"


def shop_flow(api) -> dict:
    """Data source "Shop" (old_table, keep) at v1, workflow "Flow" reading it, node n1 reading both."""
    source = create_source(api, "Shop", "shop.db", "CREATE TABLE old_table (id INT); CREATE TABLE keep (id INT);")
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop:v1")
    add_node(api, workflow, "n1", [(wds, "old_table"), (wds, "keep")])
    return {"source": source, "workflow": workflow, "wds": wds}

"""DATASOURCE_FILE_ROOT_PER_ORGANIZATION: each organization's file-based sources stay in the root's
folder named after its slug; another organization's file is "not found", like a missing one."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from datasources.models import DataSource

URL = "/api/v1/data-sources/"
MINE = "File not found in your organization's folder 'acme/' of the file root."


def make_db(root: str, relative: str, table: str) -> str:
    path = Path(root) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER)")
    return relative


@pytest.fixture
def files(_file_root):
    return {"mine": make_db(_file_root, "acme/shop.db", "items"),
            "theirs": make_db(_file_root, "globex/secret.db", "payroll"),
            "shared": make_db(_file_root, "shared.db", "common")}


@pytest.fixture
def per_org(settings):
    settings.DATASOURCE_FILE_ROOT_PER_ORGANIZATION = True


def create(api, path: str, type_: str = "sqlite"):
    return api.post(URL, {"name": f"S {path}", "type": type_, "connection": {"path": path}}, format="json")


def tables(api, source: dict) -> list[str]:
    return [t["name"] for t in api.get(f"{URL}{source['id']}/schema/").json()["tables"]]


def refused_as_missing(response) -> None:
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "CREDENTIAL_TEST_FAILED" and body["stage"] == "database", body
    assert MINE in body["message"], body
    assert "payroll" not in str(body)


def test_an_organization_reads_its_own_folder_only(api, files, per_org):
    created = create(api, files["mine"])
    assert created.status_code == 201, created.json()
    assert tables(api, created.json()) == ["items"]
    refused_as_missing(create(api, files["theirs"]))
    refused_as_missing(create(api, files["shared"]))  # the root itself is no organization's
    missing = create(api, "acme/nothing.db")
    refused_as_missing(missing)
    assert missing.json()["message"] == create(api, files["theirs"]).json()["message"]  # nothing to probe
    assert DataSource.objects.count() == 1


def test_a_repoint_to_another_organizations_file_changes_nothing(api, files, per_org):
    source = create(api, files["mine"]).json()
    for query in ("", "?dry_run=true"):
        refused_as_missing(api.patch(f"{URL}{source['id']}/{query}", {"connection": {"path": files["theirs"]}},
                                     format="json"))
    assert DataSource.objects.get(pk=source["id"]).connection["path"] == files["mine"]


def test_a_symlink_out_of_the_organizations_folder_is_not_followed(api, files, per_org, _file_root):
    os.symlink(Path(_file_root) / files["theirs"], Path(_file_root) / "acme" / "link.db")
    refused_as_missing(create(api, "acme/link.db"))


def test_folders_of_files_are_confined_too(api, _file_root, per_org):
    for folder in ("acme/csv", "globex/csv"):
        (Path(_file_root) / folder).mkdir(parents=True)
        (Path(_file_root) / folder / "people.csv").write_text("id,name\n1,a\n")
    os.symlink(Path(_file_root) / "globex/csv/people.csv", Path(_file_root) / "acme/csv/theirs.csv")
    mine = create(api, "acme/csv", "csv")
    assert mine.status_code == 201, mine.json()
    assert tables(api, mine.json()) == ["people"]  # the symlink out is skipped
    refused_as_missing(create(api, "globex/csv", "csv"))
    refused_as_missing(create(api, "globex/csv/people.csv", "csv"))


def test_each_organization_has_its_own_folder(other_api, files, per_org):
    assert create(other_api, files["theirs"]).status_code == 201
    response = create(other_api, files["mine"])
    assert response.status_code == 400
    assert "folder 'globex/'" in response.json()["message"]


def test_off_every_organization_reads_the_whole_root(api, files):
    """The default (documented): one root shared by every organization."""
    assert create(api, files["theirs"]).status_code == 201
    assert create(api, files["shared"]).status_code == 201

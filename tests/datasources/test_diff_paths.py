"""Audit and revision diffs name each changed leaf by a path that reads one way: an object key with a
'.', '[', ']' or '"' (or an empty one) is written ``["key"]``, so a metadata key ``"x.y"`` is not the
nested ``x`` -> ``y`` (both were ``metadata.x.y``: the history said it was removed while it was still 2)."""

from __future__ import annotations

import pytest

from datasources.services.merge import diff_paths, member_path
from tests.support.workflows import create_source

DS = "/api/v1/data-sources/"


@pytest.mark.parametrize(("key", "path"), [
    ("plain", "m.plain"), ("with space", "m.with space"), ("été", "m.été"), ("x.y", 'm["x.y"]'),
    ("a[0]", 'm["a[0]"]'), ('say "hi"', 'm["say \\"hi\\""]'), ("", 'm[""]'), ("-", "m.-")])
def test_member_paths(key, path):
    assert member_path("m", key) == path


def test_a_dotted_key_and_a_nested_key_are_two_paths():
    old = {"x.y": 1, "x": {"y": 2}}
    assert diff_paths(old, {"x": {"y": 2}}, "metadata") == {'metadata["x.y"]': {"old": 1, "new": None}}
    assert diff_paths(old, {"x.y": 1, "x": {"y": 3}}, "metadata") == {"metadata.x.y": {"old": 2, "new": 3}}


@pytest.mark.django_db
def test_the_history_names_the_key_that_changed(api):
    ds = create_source(api, "Shop", "shop.db", "CREATE TABLE items (id INTEGER);")
    url = f"{DS}{ds['id']}/"
    assert api.patch(url, {"metadata": {"x.y": 1, "x": {"y": 2}}}, format="json").status_code == 200
    dry = api.patch(f"{url}?dry_run=true", {"metadata": {"x.y": None}}, format="json").json()
    assert dry["changed_fields"] == ['metadata["x.y"]'], dry["changed_fields"]
    assert api.patch(url, {"metadata": {"x.y": None}}, format="json").json()["metadata"] == {"x": {"y": 2}}
    history = api.get(f"{url}history/").json()["results"]
    newest = max(history, key=lambda event: event["id"])
    assert newest["changes"] == {'metadata["x.y"]': {"old": 1, "new": None}}, newest
    diff = api.get(f"{url}revisions/1/").json()["diff"]
    metadata = {path: change for path, change in diff.items() if path.startswith("metadata")}
    assert metadata == {"metadata.x": {"old": {"y": 2}, "new": None}}, diff  # revision 1 had no metadata

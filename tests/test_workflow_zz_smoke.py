import os, sqlite3, json
from django.conf import settings

def test_smoke(api, org):
    root = settings.DATASOURCE_FILE_ROOT
    with sqlite3.connect(os.path.join(root, "a.db")) as db:
        db.executescript("CREATE TABLE old_table (id INTEGER, v TEXT); CREATE TABLE keep (id INTEGER);")
    ds = api.post("/api/v1/data-sources/", {"name": "Shop", "type": "sqlite", "connection": {"path": "a.db"}}, format="json").json()
    print(ds["schema"], ds["reference_id"])
    wf = api.post("/api/v1/workflows/", {"name": "Flow 1"}, format="json")
    print(wf.status_code, wf.json())
    wf = wf.json()
    r = api.post(f"/api/v1/workflows/{wf['id']}/data-sources/", {"source_data_source": f"acme.shop:v1"}, format="json")
    print(r.status_code, json.dumps(r.json(), indent=1))
    wds = r.json()
    r = api.post(f"/api/v1/workflows/{wf['reference']}/nodes/", {"name": "n1", "inputs": [{"data_source": wds["id"], "table": "old_table"}, {"data_source": wds["reference"], "table": "keep"}], "output_table": {"name": "out", "columns": [{"name": "id", "type": "integer"}]}}, format="json")
    print(r.status_code, json.dumps(r.json(), indent=1))
    with sqlite3.connect(os.path.join(root, "a.db")) as db:
        db.executescript("ALTER TABLE old_table RENAME TO new_table; ALTER TABLE new_table ADD COLUMN w REAL;")
    s = api.post(f"/api/v1/data-sources/{ds['id']}/sync/")
    print(s.status_code, s.json()["schema"])
    r = api.patch(f"/api/v1/workflows/{wf['id']}/data-sources/{wds['id']}/?dry_run=true", {"source_data_source": "acme.shop:v2"}, format="json")
    print(r.status_code, json.dumps(r.json(), indent=1))
    r = api.patch(f"/api/v1/workflows/{wf['id']}/data-sources/acme.shop:v1/?dry_run=true", {"source_data_source": "acme.shop:v2", "mapped_tables": {"old_table": "new_table"}}, format="json")
    print(r.status_code, json.dumps(r.json(), indent=1))
    r = api.patch(f"/api/v1/workflows/{wf['id']}/data-sources/acme.shop:v1/", {"source_data_source": "acme.shop:v2", "mapped_tables": {"old_table": "new_table"}}, format="json")
    print(r.status_code, r["ETag"], json.dumps(r.json(), indent=1))
    print(json.dumps(api.get(f"/api/v1/workflows/{wf['id']}/nodes/").json(), indent=1))
    print(json.dumps(api.get(f"/api/v1/workflows/{wf['id']}/tables/").json(), indent=1))

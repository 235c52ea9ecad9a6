"""The job verbs' input checks over HTTP (the verbs themselves: test_retry.py, test_commit_api.py)."""

from __future__ import annotations

import uuid

from lib.local.stack import LOCAL_ORG
from tests.helpers import Api


def test_retry_options_must_be_booleans(stack, conn) -> None:
    api = Api(stack)
    status, created = api.call("POST", "/api/jobs", {"file_name": "leads.csv"})
    assert status == 201
    job_id = created["job"]["id"]
    for options in ({"force": "false"}, {"restart": 1}, {"force": None}):
        status, reply = api.call("POST", f"/api/jobs/{job_id}/retry", options)
        assert status == 400, reply
        assert "true or false" in reply["message"]
    job = conn.execute("select status, run from import_jobs where id = %s", (job_id,)).fetchone()
    assert (job["status"], job["run"]) == ("pending", 0)


def test_create_refuses_empty_long_and_control_character_names(stack, conn) -> None:
    for name in ("", "   ", "x" * 256, "a\x00b.csv", "a\nb.csv", "\x1b[31m.csv"):
        status, reply = Api(stack).call("POST", "/api/jobs", {"file_name": name})
        assert status == 400, (name, reply)
        assert "file_name" in reply["message"]
    assert conn.execute("select count(*) as n from import_jobs").fetchone()["n"] == 0


def test_a_path_in_the_file_name_is_kept_for_display_not_used_as_a_key(stack, conn) -> None:
    """Browsers send C:\\fakepath\\leads.csv; the name is shown as sent, the key is ids only."""
    for name in ("../etc/passwd", "a/b.csv", "C:\\fakepath\\leads.csv", "..", ".", " x" * 127):
        status, reply = Api(stack).call("POST", "/api/jobs", {"file_name": name})
        assert status == 201, (name, reply)
        assert reply["job"]["file_name"] == name.strip()
        key = conn.execute("select storage_path from import_jobs where id = %s", (reply["job"]["id"],)).fetchone()
        org, folder, leaf = key["storage_path"].split("/")
        assert (org, leaf) == (str(LOCAL_ORG), "upload.csv" if name.endswith(".csv") else "upload"), key
        assert uuid.UUID(folder)

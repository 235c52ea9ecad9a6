"""The job verbs' input checks over HTTP (the verbs themselves: test_retry.py, test_commit_api.py)."""

from __future__ import annotations

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


def test_create_refuses_a_path_as_file_name(stack) -> None:
    for name in ("", "../etc/passwd", "a/b.csv", "x" * 300):
        status, reply = Api(stack).call("POST", "/api/jobs", {"file_name": name})
        assert status == 400, (name, reply)

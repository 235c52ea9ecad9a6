"""The job verbs' input checks over HTTP (the verbs themselves: test_retry.py, test_commit_api.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from lib.auth import mint_token
from lib.local.stack import LOCAL_MEMBERS


def _call(stack, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    user_id, email, _ = LOCAL_MEMBERS[0]
    token = mint_token(stack.env["SUPABASE_JWT_SECRET"], str(user_id), email)
    req = urllib.request.Request(
        stack.settings.endpoint_url(path),
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_retry_options_must_be_booleans(stack, conn) -> None:
    status, created = _call(stack, "POST", "api/jobs", {"file_name": "leads.csv"})
    assert status == 201
    job_id = created["job"]["id"]
    for options in ({"force": "false"}, {"restart": 1}, {"force": None}):
        status, reply = _call(stack, "POST", f"api/jobs/{job_id}/retry", options)
        assert status == 400, reply
        assert "true or false" in reply["message"]
    job = conn.execute("select status, run from import_jobs where id = %s", (job_id,)).fetchone()
    assert (job["status"], job["run"]) == ("pending", 0)


def test_create_refuses_a_path_as_file_name(stack) -> None:
    for name in ("", "../etc/passwd", "a/b.csv", "x" * 300):
        status, reply = _call(stack, "POST", "api/jobs", {"file_name": name})
        assert status == 400, (name, reply)

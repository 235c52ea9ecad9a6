"""Who may do what: QStash signatures on the commit, revert and failure-callback endpoints
(tests/test_signatures.py covers /parse), the cron secret, user tokens, and organizations.
Everything refused is refused with a status a frontend can act on, and changes nothing.

Each refusal test ends with the accepted request, which does change the state: the
refusals could have let something through.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

import jwt
import psycopg
import pytest

from lib.auth import mint_token
from lib.local.qstash_server import sign
from lib.local.stack import LOCAL_MEMBERS, LocalStack
from tests.helpers import (
    ROUND_ROBIN,
    Api,
    age_heartbeat,
    finished,
    job,
    make_stack,
    other_state,
    post_raw,
    slice_message,
    sweep,
)

FILE = "E-mail;Téléphone;Nom\r\n".encode() + b"".join(
    f"s{i}@exemple.fr;06 12 34 00 {i:02d};Martin\r\n".encode() for i in range(1, 9)
)
WRONG_KEY = "not-the-key-but-just-as-long-as-one-0123"


def everything(conn: psycopg.Connection) -> dict[str, Any]:
    return {**other_state(conn), "staged": conn.execute("select * from staged_rows order by job_id, row_no").fetchall()}


def qstash_token(key: str | None, url: str, body: bytes, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "Upstash", "sub": url, "exp": now + 300, "nbf": now, "iat": now, "jti": str(uuid.uuid4()),
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode(), **claims,
    }  # fmt: skip
    return jwt.encode(payload, key, algorithm="HS256") if key else jwt.encode(payload, None, algorithm="none")


def bad_signatures(stack: LocalStack, path: str, body: bytes) -> dict[str, dict[str, str]]:
    """Headers of requests QStash did not sign for this body and this URL."""
    s = stack.settings
    url, key, now = s.endpoint_url(path), s.current_signing_key, int(time.time())
    other = s.endpoint_url("/api/import/parse" if path != "/api/import/parse" else "/api/import/commit")
    swapped = body + b" "  # a signature for another body than the one sent
    tokens = {
        "forged_alg_none": qstash_token(None, url, body),
        "wrong_key": qstash_token(WRONG_KEY, url, body),
        "expired": qstash_token(key, url, body, exp=now - 60, iat=now - 400, nbf=now - 400),
        "wrong_url": qstash_token(key, "https://attacker.example" + path, body),
        "other_endpoint": sign(key, other, body),
        "body_swapped": sign(key, url, swapped),
        "garbage": "e30.e30.e30",
    }
    return {"unsigned": {}, **{case: {"Upstash-Signature": t} for case, t in tokens.items()}}


def refused_then_accepted(stack: LocalStack, conn: psycopg.Connection, path: str, body: bytes) -> Any:
    before = everything(conn)
    for case, headers in bad_signatures(stack, path, body).items():
        resp = post_raw(stack, path, body, headers)
        assert resp.status_code == 401, (case, resp.text)
        assert resp.json()["error"] == "Unauthorized", case
        assert everything(conn) == before, case
    s = stack.settings
    resp = post_raw(stack, path, body, {"Upstash-Signature": sign(s.current_signing_key, s.endpoint_url(path), body)})
    assert resp.status_code == 200, resp.text
    return resp


@pytest.fixture
def ready_job(stack: LocalStack, conn: psycopg.Connection) -> str:
    return str(Api(stack).parse(conn, FILE)["id"])


def hold(conn: psycopg.Connection, job_id: str, status: str, phase: str) -> dict[str, Any]:
    """Put the job in a phase without publishing its message: only the test's messages arrive."""
    return conn.execute(
        "update import_jobs set status = %s, phase = %s, run = run + 1, slice_no = 0, heartbeat_at = now()"
        " where id = %s returning *",
        (status, phase, job_id),
    ).fetchone()


def test_commit_endpoint_refuses_unsigned_and_misdirected_messages(stack, conn, ready_job) -> None:
    held = hold(conn, ready_job, "committing", "commit")
    body = slice_message(ready_job, "commit", held["run"], 0)
    resp = refused_then_accepted(stack, conn, "/api/import/commit", body)
    assert resp.json()["outcome"] == "done"
    assert finished(conn, ready_job, "completed")["inserted_rows"] == 8


def test_revert_endpoint_refuses_unsigned_and_misdirected_messages(stack, conn, ready_job) -> None:
    Api(stack).commit(conn, ready_job)
    stack.wait_idle()
    held = hold(conn, ready_job, "reverting", "revert")
    body = slice_message(ready_job, "revert", held["run"], 0)
    refused_then_accepted(stack, conn, "/api/import/revert", body)
    assert finished(conn, ready_job, "reverted")["reverted_rows"] == 8
    assert conn.execute("select count(*) from leads").fetchone()["count"] == 0


def test_failure_callback_refuses_unsigned_and_misdirected_callbacks(stack, conn, ready_job) -> None:
    held = hold(conn, ready_job, "committing", "commit")
    source = slice_message(ready_job, "commit", held["run"], 0)
    body = json.dumps(
        {"status": 500, "body": base64.b64encode(b"boom").decode(), "retried": 5,
         "sourceBody": base64.b64encode(source).decode()}
    ).encode()  # fmt: skip
    resp = refused_then_accepted(stack, conn, "/api/import/failed", body)
    assert resp.json()["outcome"] == "failed"
    assert "HTTP 500: boom" in job(conn, ready_job)["error_message"]


# -- the cron secret -----------------------------------------------------------------------------


def test_sweep_needs_the_cron_secret_or_a_qstash_signature(stack, conn, ready_job) -> None:
    held = hold(conn, ready_job, "committing", "commit")
    age_heartbeat(conn, ready_job)
    before = everything(conn)
    secret = stack.env["CRON_SECRET"]
    path = "/api/cron/sweep"
    for case, headers in {
        "none": {},
        "wrong_secret": {"Authorization": "Bearer not-the-secret"},
        "secret_without_bearer": {"Authorization": secret},
        "empty_bearer": {"Authorization": "Bearer"},
        "secret_with_suffix": {"Authorization": f"Bearer {secret}x"},
        **{f"qstash_{k}": v for k, v in bad_signatures(stack, path, b"").items() if k != "unsigned"},
    }.items():
        for method in ("GET", "POST"):
            resp = Api(stack).call(method, path, headers=headers, token=None)
            assert resp[0] == 401, (case, method, resp)
    assert everything(conn) == before
    # Accepted: a QStash schedule's signature, and the cron secret.
    token = sign(stack.settings.current_signing_key, stack.settings.endpoint_url(path), b"")
    status, reply = Api(stack).call("POST", path, headers={"Upstash-Signature": token}, token=None)
    assert status == 200 and reply["resumed"] == [ready_job]
    assert job(conn, ready_job)["run"] == held["run"] + 1
    finished(conn, ready_job, "completed")
    stack.wait_idle()
    held = hold(conn, ready_job, "committing", "commit")
    age_heartbeat(conn, ready_job)
    assert sweep(stack).json()["resumed"] == [ready_job]
    assert job(conn, ready_job)["run"] == held["run"] + 1
    finished(conn, ready_job, "completed")


def test_an_unset_cron_secret_refuses_every_sweep(database_url, tmp_path, conn) -> None:
    with make_stack(database_url, tmp_path, CRON_SECRET="") as stack:
        for auth in ("", "Bearer", "Bearer None", "Bearer null"):
            status, _ = Api(stack).call("GET", "/api/cron/sweep", headers={"Authorization": auth}, token=None)
            assert status == 401, auth


# -- user tokens ------------------------------------------------------------------------------------


def user_requests(job_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", "/api/jobs", None),
        ("POST", "/api/jobs", {"file_name": "x.csv"}),
        ("GET", f"/api/jobs/{job_id}", None),
        ("POST", f"/api/jobs/{job_id}/start", None),
        ("POST", f"/api/jobs/{job_id}/retry", {"force": True}),
        ("POST", f"/api/jobs/{job_id}/cancel", None),
        ("POST", f"/api/jobs/{job_id}/commit", {}),
        ("POST", f"/api/jobs/{job_id}/revert", None),
        ("GET", f"/api/jobs/{job_id}/errors", None),
        ("GET", f"/api/jobs/{job_id}/invalid-rows", None),
        ("GET", f"/api/jobs/{job_id}/error-report.csv", None),
        ("PUT", f"/api/jobs/{job_id}/mapping", {"mapping": ["email", "phone", None]}),
    ]


def test_user_requests_without_a_valid_token_get_401_and_change_nothing(stack, conn, ready_job) -> None:
    secret, (user_id, email, _) = stack.env["SUPABASE_JWT_SECRET"], LOCAL_MEMBERS[0]
    now = int(time.time())
    tokens = {
        "missing": (None, "TokenMissing"),
        "expired": (mint_token(secret, str(user_id), email, expires_in=-120), "TokenExpired"),
        "wrongly_signed": (mint_token(WRONG_KEY, str(user_id), email), "TokenInvalid"),
        "wrong_audience": (mint_token(secret, str(user_id), email, audience="anon"), "TokenInvalid"),
        "alg_none": (
            jwt.encode({"sub": str(user_id), "aud": "authenticated", "exp": now + 60}, None, algorithm="none"),
            "TokenInvalid",
        ),
        "qstash_signature": (sign(stack.settings.current_signing_key, stack.settings.app_url, b""), "TokenInvalid"),
        "garbage": ("not-a-token", "TokenInvalid"),
    }
    api = Api(stack)
    before = everything(conn)
    for case, (token, code) in tokens.items():
        for method, path, body in user_requests(ready_job):
            status, reply = api.call(method, path, body, token=token)
            assert (status, reply["error"]) == (401, code), (case, method, path, reply)
    assert everything(conn) == before
    assert api.retry(ready_job)[0] == 409  # the member's own token is accepted (and the job is ready)


# -- organizations -----------------------------------------------------------------------------------


OTHER_ORG, OTHER_USER = (
    uuid.UUID("00000000-0000-4000-8000-0000000000b0"),
    uuid.UUID("00000000-0000-4000-8000-0000000000b1"),
)


def test_a_member_of_another_organization_gets_404_and_changes_nothing(stack, conn) -> None:
    conn.execute("insert into organizations (id, name) values (%s, 'Autre')", (OTHER_ORG,))
    conn.execute(
        "insert into organization_members (organization_id, user_id, email, role) values (%s, %s, %s, 'owner')",
        (OTHER_ORG, OTHER_USER, "intrus@autre.test"),
    )
    owner = Api(stack)
    intruder = Api(stack, (OTHER_USER, "intrus@autre.test", "owner"))
    completed = str(owner.import_file(conn, FILE, "done.csv", **ROUND_ROBIN)["id"])
    ready = str(owner.parse(conn, FILE.replace(b"@exemple", b"@ready"), "ready.csv")["id"])
    pending = owner.create(conn, FILE, "pending.csv")
    stack.wait_idle()
    before = everything(conn)
    for job_id in (completed, ready, pending, str(uuid.uuid4()), "not-a-uuid"):
        for method, path, body in user_requests(job_id)[2:]:
            status, reply = intruder.call(method, path, body)
            assert status == 404, (job_id, method, path, reply)
            assert reply["error"] == "JobNotFound"
    status, reply = intruder.call("GET", f"/api/jobs?organization_id={stack_org(conn, completed)}")
    assert status == 403, reply
    status, reply = intruder.call(
        "POST", "/api/jobs", {"file_name": "x.csv", "organization_id": stack_org(conn, ready)}
    )
    assert status == 403, reply
    status, reply = intruder.call("GET", "/api/jobs")
    assert status == 200 and reply["jobs"] == []
    assert everything(conn) == before
    # The organization's own member reads and acts on the same jobs.
    assert owner.call("GET", f"/api/jobs/{completed}")[0] == 200
    assert owner.cancel(ready)[0] == 200


def stack_org(conn: psycopg.Connection, job_id: str) -> str:
    return str(job(conn, job_id)["organization_id"])

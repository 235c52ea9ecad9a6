"""QStash signatures on the slice endpoints: the real SDK through the local server is
accepted; anything forged, stale or replayed elsewhere is a 401 that changes nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import jwt
import pytest

from lib import manager
from lib.local.qstash_server import sign
from lib.local.stack import LOCAL_MEMBERS, LOCAL_ORG
from lib.queue import Publisher
from tests.helpers import post_raw, wait_for_status

PARSE = "/api/import/parse"


def _post(stack: Any, body: bytes, headers: dict[str, str]) -> int:
    """POST to the parse endpoint with these headers: the status."""
    return post_raw(stack, PARSE, body, headers).status_code


def _token(key: str, url: str, body: bytes, *, alg: str = "HS256", **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "Upstash", "sub": url, "exp": now + 300, "nbf": now, "iat": now, "jti": "j",
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode(), **claims,
    }  # fmt: skip
    if alg == "none":
        return jwt.encode(payload, None, algorithm="none")
    return jwt.encode(payload, key, algorithm=alg)


@pytest.fixture
def pending_job(stack, conn) -> dict[str, Any]:
    """A job whose first message has not been sent: any accepted message would move it."""
    stack.settings  # noqa: B018
    return manager.create_job(
        conn, org=str(LOCAL_ORG), user=str(LOCAL_MEMBERS[0][0]), file_name="f.csv",
        storage_path="nowhere/f.csv", settings={}, lease_seconds=90,
    )  # fmt: skip


def _snapshot(conn, job_id) -> dict[str, Any]:
    return conn.execute("select * from import_jobs where id = %s", (job_id,)).fetchone()


def test_sdk_publish_arrives_signed_and_accepted(stack, conn, pending_job) -> None:
    job_id = str(pending_job["id"])
    manager.start_job(conn, job_id, Publisher(stack.settings).publish)
    # The object is missing, so an accepted message fails the job with a clear message.
    job = wait_for_status(conn, job_id, {"failed"})
    assert "no longer in storage" in job["error_message"]
    assert stack.wait_idle(30)  # the job fails before QStash has read the endpoint's answer
    assert stack.qstash.stats.delivered >= 1


def test_next_key_is_accepted(stack, conn, pending_job) -> None:
    job_id = str(pending_job["id"])
    with conn.transaction():
        conn.execute("update import_jobs set status = 'validating', run = 1 where id = %s", (job_id,))
    url = stack.settings.endpoint_url("api/import/parse")
    body = json.dumps({"job": job_id, "phase": "parse", "run": 1, "slice": 0}).encode()
    status = _post(stack, body, {"Upstash-Signature": sign(stack.settings.next_signing_key, url, body)})
    assert status == 200
    assert _snapshot(conn, job_id)["status"] == "failed"  # it ran (and found no file)


@pytest.mark.parametrize(
    "case",
    [
        "unsigned",
        "wrong_key",
        "expired",
        "not_yet_valid",
        "other_body",
        "other_url",
        "alg_none",
        "no_body_claim",
        "garbage",
    ],
)
def test_bad_signatures_get_401_and_change_nothing(stack, conn, pending_job, case: str) -> None:
    job_id = str(pending_job["id"])
    with conn.transaction():
        conn.execute("update import_jobs set status = 'validating', run = 1 where id = %s", (job_id,))
    before = _snapshot(conn, job_id)
    s = stack.settings
    url = s.endpoint_url("api/import/parse")
    body = json.dumps({"job": job_id, "phase": "parse", "run": 1, "slice": 0}).encode()
    key = s.current_signing_key
    now = int(time.time())
    tokens = {
        "unsigned": None,
        "wrong_key": _token("not-the-key-but-just-as-long-as-one-0123", url, body),
        "expired": _token(key, url, body, exp=now - 60, nbf=now - 400),
        "not_yet_valid": _token(key, url, body, nbf=now + 120),
        "other_body": _token(key, url, b'{"job": "someone else"}'),
        "other_url": _token(key, "https://evil.example/api/import/parse", body),
        "alg_none": _token(key, url, body, alg="none"),
        "no_body_claim": jwt.encode(
            {"iss": "Upstash", "sub": url, "exp": now + 60, "nbf": now}, key, algorithm="HS256"
        ),
        "garbage": "not.a.jwt",
    }
    token = tokens[case]
    headers = {"Upstash-Signature": token} if token else {}
    assert _post(stack, body, headers) == 401
    after = _snapshot(conn, job_id)
    assert after == before
    assert conn.execute("select count(*) from staged_rows").fetchone()["count"] == 0


def test_signature_for_the_commit_endpoint_is_refused_on_parse(stack, conn, pending_job) -> None:
    """`sub` binds a signature to one endpoint: a commit message cannot be replayed to parse."""
    job_id = str(pending_job["id"])
    s = stack.settings
    body = json.dumps({"job": job_id, "phase": "parse", "run": 0, "slice": 0}).encode()
    token = sign(s.current_signing_key, s.endpoint_url("api/import/commit"), body)
    assert _post(stack, body, {"Upstash-Signature": token}) == 401


def test_signed_but_malformed_message_stops_qstash_retrying(stack, conn, pending_job) -> None:
    """A message no retry can fix gets 489 with Upstash-NonRetryable-Error, and changes nothing."""
    job_id = str(pending_job["id"])
    before = _snapshot(conn, job_id)
    s = stack.settings
    url = s.endpoint_url("api/import/parse")
    for body in (b'{"job": "x"}', json.dumps({"job": job_id, "phase": "commit", "run": 0, "slice": 0}).encode()):
        reply = post_raw(stack, PARSE, body, {"Upstash-Signature": sign(s.current_signing_key, url, body)})
        assert reply.status_code == 489
        assert reply.headers["Upstash-NonRetryable-Error"] == "true"
    assert _snapshot(conn, job_id) == before

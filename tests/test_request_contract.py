"""One request contract (docs/ARCHITECTURE.md "One request contract"): one test per thing a
new user saw go wrong. Every refusal is a JSON 4xx that changes nothing; the last test holds
the routes added beside the contract (rows, members, config, mappings, sheet) to it too.

1. an unreadable commit body silently became the default settings;
2. 500 HTML pages (a NUL in file_name, organization_id as a list or an object, deeply nested JSON);
3. a refused create left a job behind, and `.`/`..` reached the storage key;
4. double clicks (start, commit) answered 409; `limit=abc` was ignored on the history;
5. smaller messages: start before the upload, a new key id while the JWKS is down, a 30 MB cell;
6. a cell of spaces or NBSP then `=` escaped the error report's formula neutralization.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from lib.app import create_app
from lib.auth import TokenVerifier
from lib.local.stack import LOCAL_MEMBERS, LOCAL_ORG, LocalStack
from lib.parse.errors import FileRejected
from lib.parse.reader import iter_records
from lib.review import neutralize, report_chunks
from tests.helpers import LEAD_HEADER, Api, finished, job, lead_rows, make_stack, write_csv

DEAD_URL = "http://127.0.0.1:9"  # nothing listens: QStash's deliveries of a frozen stack go nowhere


def jobs_and_files(conn: Any, stack: LocalStack) -> tuple[list[Any], list[str]]:
    """Every job row, and every file in the stack's storage."""
    root = stack.settings.local_data_dir / "storage"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
    return conn.execute("select * from import_jobs order by id").fetchall(), files


@pytest.fixture
def api(stack: LocalStack) -> Api:
    return Api(stack)


@pytest.fixture
def ready_job(api: Api, conn: Any, tmp_path: Path) -> str:
    return str(api.parse(conn, write_csv(tmp_path / "leads.csv", LEAD_HEADER, lead_rows(range(1, 30))))["id"])


@pytest.fixture
def frozen(stack: LocalStack, database_url: str, tmp_path: Path) -> Iterator[Api]:
    """A second stack on the same database whose QStash delivers to a dead URL: a job it
    starts stays in the status its start gave it, long enough to be asked again. Its data
    folder is its own: the local QStash's queue is durable and lives there, and `stack`'s
    QStash, sharing it, would deliver the frozen stack's messages to the live app."""
    with make_stack(database_url, tmp_path / "frozen", APP_URL=DEAD_URL, LOCAL_QSTASH_RETRIES="0") as s:
        yield Api(s)


def raw(api: Api, method: str, path: str, content: bytes, content_type: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api.token}"}
    if content_type:
        headers["Content-Type"] = content_type
    return httpx.request(method, api.base + path, content=content, headers=headers, timeout=30)


# -- 1. an unreadable body is refused, never read as {} --------------------------------------------


SETTINGS = {"duplicates": "update", "assignment": "user", "owner": "lucas@local.test"}


def test_1_commit_body_that_is_not_json_is_refused_and_changes_nothing(api: Api, conn: Any, ready_job: str) -> None:
    before = job(conn, ready_job)
    text = json.dumps(SETTINGS).encode()
    for content, content_type, status in (
        (text, "text/plain", 415),
        (text, None, 415),
        (text, "application/x-www-form-urlencoded", 415),
        (text[:-1], "application/json", 400),  # malformed
        (b"\xff\xfe{}", "application/json", 400),  # not UTF-8
    ):
        r = raw(api, "POST", f"/api/jobs/{ready_job}/commit", content, content_type)
        assert r.status_code == status, (content_type, r.text)
        assert r.headers["content-type"] == "application/json"
        assert set(r.json()) == {"error", "message"}
        assert job(conn, ready_job) == before
    # The same bodies to POST /api/jobs say what is wrong, not "file_name is required".
    r = raw(api, "POST", "/api/jobs", json.dumps({"file_name": "a.csv"}).encode(), "text/plain")
    assert r.status_code == 415 and "application/json" in r.json()["message"], r.text
    r = raw(api, "POST", "/api/jobs", b'{"file_name": "a.csv"', "application/json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"], r.text
    # And sent properly, the settings are the ones stored.
    committed = api.commit(conn, ready_job, **SETTINGS)
    assert committed["settings"]["commit"]["duplicates"] == "update"
    assert committed["settings"]["commit"]["owners"] == [str(LOCAL_MEMBERS[1][0])]


# -- 2. no input reaches a 500 or an HTML page -------------------------------------------------------


def test_2_inputs_that_gave_500_html_are_json_400s_naming_the_field(api: Api, conn: Any, stack: LocalStack) -> None:
    before = jobs_and_files(conn, stack)
    cases = [
        ({"file_name": "le\x00ads.csv"}, "file_name"),
        ({"file_name": "leads.csv", "organization_id": [str(LOCAL_ORG)]}, "organization_id"),
        ({"file_name": "leads.csv", "organization_id": {"id": str(LOCAL_ORG)}}, "organization_id"),
        ({"file_name": "leads.csv", "region": ["FR"]}, "region"),
        ({"file_name": "\ud800.csv"}, "file_name"),  # a lone surrogate: no database stores it
    ]
    for body, field in cases:
        status, reply = api.call("POST", "/api/jobs", body)
        assert status == 400, (body, reply)
        assert field in reply["message"], reply
    nested = b"[" * 100_000 + b"]" * 100_000
    for path in ("/api/jobs", f"/api/jobs/{LOCAL_ORG}/commit"):
        r = raw(api, "POST", path, nested, "application/json")
        assert r.status_code == 400 and "nested too deeply" in r.json()["message"], r.text
    assert jobs_and_files(conn, stack) == before


def test_2_unknown_routes_wrong_methods_and_big_bodies_answer_json(api: Api) -> None:
    for method, path, status in (
        ("GET", "/api/nothing-here", 404),
        ("DELETE", "/api/jobs", 405),
        ("GET", "/api/jobs/x/commit", 405),
    ):
        r = raw(api, method, path, b"", None)
        assert r.status_code == status and r.headers["content-type"] == "application/json", r.text
        assert set(r.json()) == {"error", "message"}
    r = raw(api, "POST", "/api/jobs", b'{"file_name": "' + b"x" * (2 << 20) + b'"}', "application/json")
    assert r.status_code == 413 and r.json()["error"] == "RequestEntityTooLarge"


def test_2_anything_unexpected_is_a_json_500_logged_with_the_request_id(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug, standing in for any that fuzzing has not found: the app's own handler answers."""
    app = create_app(stack.settings)

    def broken() -> Any:
        return {}["missing"]

    app.add_url_rule("/api/broken", "broken", broken)
    with caplog.at_level(logging.ERROR, logger="lib.app"):
        r = app.test_client().get("/api/broken", headers={"X-Request-Id": "req-42"})
    assert r.status_code == 500 and r.content_type == "application/json"
    assert r.json == {"error": "internal_error", "message": r.json["message"], "request_id": "req-42"}
    assert "req-42" in r.json["message"] and r.headers["X-Request-Id"] == "req-42"
    crash = [rec for rec in caplog.records if rec.getMessage().startswith("request.crashed request=req-42")]
    assert crash and crash[0].exc_info is not None  # with its traceback


# -- 3. a refused request creates nothing; names are for display only ----------------------------------


def test_3_refused_create_leaves_nothing_and_names_never_reach_the_key(api: Api, conn: Any, stack: LocalStack) -> None:
    before = jobs_and_files(conn, stack)
    for body in (
        {"file_name": "x" * 256},
        {"file_name": "a\nb.csv"},
        {"file_name": "leads.csv", "region": "Narnia"},
        {"file_name": "leads.csv", "organization_id": "00000000-0000-4000-8000-0000000000ff"},  # not a member
        {"file_name": "leads.csv", "extra": 1},
    ):
        status, reply = api.call("POST", "/api/jobs", body)
        assert status in (400, 403), (body, reply)
        assert "/" not in reply["message"].replace("application/json", ""), reply  # no storage key shown
    assert jobs_and_files(conn, stack) == before
    for name in ("..", ".", "  ../../x.csv  "):
        status, reply = api.call("POST", "/api/jobs", {"file_name": name})
        assert status == 201, (name, reply)
        assert reply["job"]["file_name"] == name.strip()
        key = job(conn, reply["job"]["id"])["storage_path"]
        assert key.split("/")[2] in ("upload", "upload.csv") and ".." not in key.split("/"), key


# -- 4. repeats are harmless -------------------------------------------------------------------------------


def twice(call: Any) -> list[Any]:
    """The same request twice at once, as a double click sends it."""
    results: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_4_double_clicked_start_and_commit_return_the_job(api: Api, conn: Any, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "leads.csv", LEAD_HEADER, lead_rows(range(1, 40))).read_bytes()
    job_id = api.create(conn, data, "leads.csv")
    replies = twice(lambda: api.call("POST", f"/api/jobs/{job_id}/start"))
    assert [s for s, _ in replies] == [202, 202], replies
    ready = finished(conn, job_id, "ready")
    assert ready["run"] == 1  # one run
    status, reply = api.call("POST", f"/api/jobs/{job_id}/start")  # later, once ready: the job as it is
    assert (status, reply["job"]["status"]) == (202, "ready")

    replies = twice(lambda: api.call("POST", f"/api/jobs/{job_id}/commit", SETTINGS))
    assert [s for s, _ in replies] == [202, 202], replies
    done = finished(conn, job_id, "completed")
    assert done["run"] == 2 and done["inserted_rows"] == done["valid_rows"]
    status, reply = api.call("POST", f"/api/jobs/{job_id}/commit", SETTINGS)  # again, completed
    assert (status, reply["job"]["status"], reply["job"]["run"]) == (202, "completed", 2)


def test_4_other_settings_while_a_commit_runs_is_a_409_saying_what_runs(conn: Any, ready_job: str, frozen: Api) -> None:
    status, reply = frozen.call("POST", f"/api/jobs/{ready_job}/commit", SETTINGS)
    assert (status, reply["job"]["status"]) == (202, "committing")
    before = job(conn, ready_job)
    status, reply = frozen.call("POST", f"/api/jobs/{ready_job}/commit", SETTINGS)
    assert (status, reply["job"]["status"]) == (202, "committing")
    status, reply = frozen.call("POST", f"/api/jobs/{ready_job}/commit", {"duplicates": "skip"})
    assert status == 409 and reply["error"] == "commit_in_progress", reply
    assert "is running" in reply["message"] and "duplicates=update" in reply["message"], reply
    assert "owners=lucas@local.test" in reply["message"], reply
    assert job(conn, ready_job) == before


def test_4_history_limit_that_is_not_a_count_is_a_400(api: Api) -> None:
    for params in ("limit=abc", "limit=0", "limit=201", "limit=1e3", "limit=%D9%A1", "limit=" + "9" * 5000, "x=1"):
        status, reply = api.call("GET", "/api/jobs?" + params)
        assert status == 400, (params, reply)
        assert params.split("=")[0] in reply["message"]


# -- 5. smaller messages -----------------------------------------------------------------------------------


def test_5_start_before_the_upload_says_to_upload_first(api: Api, conn: Any) -> None:
    status, reply = api.call("POST", "/api/jobs", {"file_name": "Prospects.csv"})
    job_id = reply["job"]["id"]
    before = job(conn, job_id)
    status, reply = api.call("POST", f"/api/jobs/{job_id}/start")
    assert status == 409 and reply["error"] == "file_not_uploaded", reply
    assert "'Prospects.csv' has not been uploaded yet: upload it" in reply["message"]
    assert "storage" not in reply["message"]
    assert job(conn, job_id) == before


class Jwks:
    """A JWKS endpoint over real HTTP that can go down."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        body = json.dumps({"keys": keys}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/auth/v1/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_5_a_new_key_id_while_the_jwks_is_down_is_a_503() -> None:
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(old.public_key(), as_dict=True)
    server = Jwks([{**jwk, "kid": "old", "alg": "ES256", "use": "sig"}])
    verifier = TokenVerifier(None, server.url)
    claims = {"sub": str(LOCAL_MEMBERS[0][0]), "aud": "authenticated", "exp": 4102444800}
    assert verifier.verify(jwt.encode(claims, old, algorithm="ES256", headers={"kid": "old"})).id == claims["sub"]
    server.stop()
    rotated = jwt.encode(claims, new, algorithm="ES256", headers={"kid": "new"})
    for _ in range(2):  # the second within the refetch interval: still undecidable, not invalid
        with pytest.raises(Exception) as refused:
            verifier.verify(rotated)
        assert getattr(refused.value, "status", None) == 503, refused.value
        assert "retry" in str(refused.value)
    # A key the reachable endpoint does not list stays a 401.
    forged = jwt.encode(claims, new, algorithm="ES256", headers={"kid": "forged"})
    up = Jwks([{**jwk, "kid": "old", "alg": "ES256", "use": "sig"}])
    try:
        with pytest.raises(Exception) as refused:
            TokenVerifier(None, up.url).verify(forged)
        assert getattr(refused.value, "status", None) == 401
    finally:
        up.stop()


def test_5_a_closed_30_mb_cell_is_over_the_cell_limit_not_an_unclosed_quote() -> None:
    header = b"E-mail;Notes\r\na@exemple.fr;court\r\n"
    closed = header + b'b@exemple.fr;"' + b"x" * (30 << 20) + b'"\r\nc@exemple.fr;fin\r\n'
    with pytest.raises(FileRejected) as big:
        list(iter_records(io.BytesIO(closed), delimiter=";"))
    assert "over the 8 MB limit" in big.value.message and "never closed" not in big.value.message
    unclosed = header + b'b@exemple.fr;"' + b"x\r\n" * (3 << 20) + b"c@exemple.fr;fin\r\n"
    with pytest.raises(FileRejected) as quote:
        list(iter_records(io.BytesIO(unclosed), delimiter=";"))
    assert "never closed" in quote.value.message


def test_5_a_closed_30_mb_cell_fails_the_job_with_the_cell_limit(api: Api, conn: Any) -> None:
    data = b'E-mail;Notes\r\na@exemple.fr;court\r\nb@exemple.fr;"' + b"x" * (30 << 20) + b'"\r\n'
    job_id = api.create(conn, data, "big.csv")
    api.start(job_id)
    failed = finished(conn, job_id, "failed")
    assert "over the 8 MB limit" in failed["error_message"], failed["error_message"]


# -- 6. formulas behind blanks ------------------------------------------------------------------------------

# What a spreadsheet evaluates in a CSV cell: after the blanks it skips, a formula sign
# (LibreOffice and Excel also read the full-width signs), or a cell a tab or CR opens.
SKIPPED = " \t\r\n\xa0\u2000\u2001\u2002\u2003\u2007\u2009\u200a\u200b\u202f\u205f\u3000\ufeff"
SIGNS = "=+-@\uff1d\uff0b\uff0d\uff20"


def evaluated(cell: str) -> bool:
    return cell.lstrip(SKIPPED)[:1] in tuple(SIGNS) or cell[:1] in ("\t", "\r", "\n")


def test_6_blanks_then_a_formula_are_neutralized(stack: LocalStack) -> None:
    cells = [" =1+1", "\xa0=1+1", "  +SUM(A1)", "\u3000@cmd", "\ufeff-1+1", "\u200b=HYPERLINK(1)", "\uff1d1+1", "=1"]
    for cell in cells:
        assert evaluated(cell), cell
        assert neutralize(cell) == "'" + cell
    for cell in ("Dupont", "  Dupont", "06 12 34 56 78", "a=b", ""):
        assert neutralize(cell) == cell  # text stays as it was
    # The report itself: what a spreadsheet reads back is never evaluated.
    pages = [[{"row_no": i + 1, "raw": ["", cell], "errors": ["no_contact"]} for i, cell in enumerate(cells)]]
    body = b"".join(report_chunks(["E-mail", "Nom"], ["email", "last_name"], pages, extra_column=False))
    table = list(csv.reader(io.StringIO(body[3:].decode(), newline=""), delimiter=";"))
    read_back = [cell for line in table for cell in line]
    assert [line[2] for line in table[1:]] == ["'" + c for c in cells]
    assert not any(evaluated(cell) for cell in read_back)


# -- the routes added beside this contract (rows, members, config, mappings, sheet) keep it too -------


def test_the_later_routes_refuse_what_the_contract_refuses_and_change_nothing(
    api: Api, conn: Any, stack: LocalStack, ready_job: str, tmp_path: Path
) -> None:
    completed = api.import_file(conn, write_csv(tmp_path / "done.csv", LEAD_HEADER, lead_rows(range(50, 60))))
    saved = "select id from remembered_mappings where job_id = %s"
    mapping = str(conn.execute(saved, (completed["id"],)).fetchone()["id"])  # the commit remembered its mapping
    fixes = "select * from staged_row_fixes order by job_id, row_no"
    mappings = "select * from remembered_mappings order by id"

    def world() -> Any:
        return jobs_and_files(conn, stack), conn.execute(fixes).fetchall(), conn.execute(mappings).fetchall()

    before = world()
    row = f"/api/jobs/{ready_job}/rows/1"
    email = LEAD_HEADER[0]
    # Bodies: what no database stores is a 400 naming the field (these were 500s), never read as {}.
    for body, field in (
        ({"cells": {email: "a\ud800@b.fr"}}, "cells['E-mail']"),
        ({"extra_cells": ["ok", "\udfff"]}, "extra_cells[1]"),
        ({"cells": {email: "x" * 40_000}}, "cells['E-mail']"),
        ({"cells": {email: 3}}, "cells['E-mail']"),
        ({"excluded": "true"}, "excluded"),
        ({"cells": {}, "note": "x"}, "'note'"),
    ):
        status, reply = api.call("PATCH", row, body)
        assert status == 400 and field in reply["message"], (body, reply)
    for path, method in ((row, "PATCH"), (f"/api/jobs/{ready_job}/mapping/automatic", "POST"),
                         (f"/api/mappings/{mapping}", "DELETE"), (f"/api/jobs/{ready_job}/sheet", "PUT")):  # fmt: skip
        r = raw(api, method, path, b'{"excluded": true}', "text/plain")
        assert r.status_code == 415 and r.headers["content-type"] == "application/json", (path, r.text)
    # DELETE and automatic take no body: a body is refused, and the mapping is not forgotten.
    status, reply = api.call("DELETE", f"/api/mappings/{mapping}", {"force": True})
    assert status == 400 and "'force'" in reply["message"], reply
    status, reply = api.call("PUT", f"/api/jobs/{ready_job}/sheet", {"sheet": "Leads\x00"})
    assert status == 400 and "sheet" in reply["message"], reply
    # Query parameters nobody takes are refused, as on every other route (these were ignored).
    for path in (f"{row}?x=1", f"/api/organizations/{LOCAL_ORG}/members?_=1", "/api/config?debug=1",
                 "/api/mappings?limit=0", "/api/mappings?limit=5&limit=6"):  # fmt: skip
        r = raw(api, "GET", path, b"", None)
        assert r.status_code == 400 and r.headers["content-type"] == "application/json", (path, r.text)
    assert world() == before
    # The organization's id in another case is the same organization.
    status, reply = api.call("GET", f"/api/organizations/{str(LOCAL_ORG).upper()}/members")
    assert status == 200 and reply["members"], reply
    # And good requests still work.
    status, reply = api.call("PATCH", row, {"cells": {email: " corrige@exemple.fr\n"}})
    assert status == 200 and reply["job"]["fixed_rows"] == 1, reply
    status, reply = api.call("DELETE", f"/api/mappings/{mapping}")
    assert (status, reply) == (200, {"deleted": mapping})

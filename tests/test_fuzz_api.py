"""Property-based fuzzing of every frontend route against its OpenAPI document
(lib/routes/openapi.py), and of the QStash and cron routes against their own contract.

The world: one organization's jobs in each status (pending, ready, committing, completed,
failed, cancelled) made by real imports on the local stack, then frozen: the app under test
publishes to a local QStash whose deliveries go to a dead URL, so no slice moves a job while
it is being fuzzed. Hypothesis draws requests from the document (parameters and bodies from
its schemas, plus bodies that are any JSON, any bytes, any content type; real job ids and
made-up ones; a member's token mostly, sometimes none, a forged, an expired or a stranger's)
and sends them through Flask's test client. For each answer:

- never a 5xx, and its status is one the document lists for the operation;
- every error is the JSON error shape; every success matches the documented schema;
- a refused request (4xx) changed nothing: the jobs, their staged rows and outcomes, the
  leads and the stored files are as before.

An accepted request may change a job (a start, a commit, a new mapping); the world is put
back as it was before the next example, so every status stays reachable.

QStash and cron routes: any body, unsigned or mis-signed (wrong key, wrong URL, another
body, alg none, garbage), or a wrong cron secret: a JSON 401 that changes nothing.

FUZZ_EXAMPLES (default 200) sets the examples per route; each test checks that at least
that many requests were sent, and prints how many and how long (`pytest -s`).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import jwt
import psycopg
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator
from werkzeug.test import Client

from lib import db
from lib.app import create_app
from lib.auth import mint_token
from lib.local.qstash_server import sign
from lib.local.site import Site
from lib.local.stack import LOCAL_MEMBERS, LOCAL_ORG, LocalStack
from lib.routes.openapi import DOCUMENT
from lib.storage import UPLOAD_PATH, FolderStorage, storage_from_env
from tests.helpers import (
    LEAD_HEADER,
    Api,
    finished,
    fresh_database,
    lead_rows,
    make_stack,
    slice_message,
    wait_for_status,
    write_csv,
)
from tests.workbooks import write_xlsx

# About 3 minutes at 200 examples (29 tests): marked slow, so CI runs it once (on the
# embedded Postgres), not again in its `-m 'not slow'` run against the server.
pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
DEAD_URL = "http://127.0.0.1:9"
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree; failures print their example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCHEMAS = DOCUMENT["components"]["schemas"]
OPERATIONS = sorted(
    (path, method) for path, item in DOCUMENT["paths"].items() for method in item if method != "parameters"
)
SIGNED = ("/api/import/parse", "/api/import/commit", "/api/import/revert", "/api/import/failed", "/api/cron/sweep")


def inline(schema: Any) -> Any:
    """The schema with its $refs to components replaced by what they name."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return inline(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
        return {k: inline(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [inline(v) for v in schema]
    return schema


# -- the world -----------------------------------------------------------------------------------

SNAPSHOT = (
    "drop table if exists fuzz_jobs, fuzz_staged, fuzz_outcomes, fuzz_fixes, fuzz_mappings;"
    "create table fuzz_jobs as select * from import_jobs;"
    "create table fuzz_staged as select * from staged_rows;"
    "create table fuzz_outcomes as select * from staged_outcomes;"
    "create table fuzz_fixes as select * from staged_row_fixes;"
    "create table fuzz_mappings as select * from remembered_mappings;"
)
RESTORE = (
    "delete from import_jobs;"  # its trigger deletes the staged rows, outcomes and row fixes
    "delete from remembered_mappings;"
    "insert into remembered_mappings select * from fuzz_mappings;"
    "insert into import_jobs select * from fuzz_jobs;"
    "insert into staged_rows select * from fuzz_staged;"
    "insert into staged_outcomes select * from fuzz_outcomes;"
    "insert into staged_row_fixes select * from fuzz_fixes;"
)


class World:
    def __init__(self, url: str, stack: LocalStack, jobs: dict[str, str], header: list[str]) -> None:
        self.url = url
        self.stack = stack
        self.jobs = jobs  # status -> job id ("workbook": a ready workbook of two sheets)
        self.header = header
        self.rows = [r["row_no"] for r in stack_rows(url, jobs["ready"])]
        self.conn = db.connect(url)
        self.app = create_app(stack.settings)
        self.client: FlaskClient = self.app.test_client()
        secret = stack.env["SUPABASE_JWT_SECRET"]
        member = LOCAL_MEMBERS[1]
        self.token = mint_token(secret, str(member[0]), member[1])
        self.tokens = {
            "member": self.token,
            "stranger": mint_token(secret, str(uuid.uuid4()), "nobody@else.test"),
            "expired": mint_token(secret, str(member[0]), member[1], expires_in=-3600),
            "forged": mint_token("another-secret-of-the-same-length-000000", str(member[0]), member[1]),
            "garbage": "not.a.token",
        }
        self.dirty = False
        with self.conn.transaction():
            for statement in SNAPSHOT.split(";")[:-1]:
                self.conn.execute(statement)
        self.mappings = [str(r["id"]) for r in self.conn.execute("select id from remembered_mappings").fetchall()]
        assert self.mappings, "the world's commits remembered their mapping"
        self.before = self.state()

    def state(self) -> dict[str, Any]:
        c = self.conn
        root = self.stack.settings.local_data_dir / "storage"
        return {
            "jobs": c.execute("select * from import_jobs order by id").fetchall(),
            "staged": c.execute(
                "select job_id, count(*), sum(hashtext(raw::text)) from staged_rows group by 1 order by 1"
            ).fetchall(),
            "outcomes": c.execute("select job_id, count(*) from staged_outcomes group by 1 order by 1").fetchall(),
            "fixes": c.execute("select * from staged_row_fixes order by job_id, row_no").fetchall(),
            "mappings": c.execute("select * from remembered_mappings order by id").fetchall(),
            "leads": c.execute("select count(*), max(updated_at) from leads").fetchall(),
            "files": sorted(str(p) for p in root.rglob("*")) if root.exists() else [],
        }

    def restore(self) -> None:
        if self.dirty:
            with self.conn.transaction():
                for statement in RESTORE.split(";")[:-1]:
                    self.conn.execute(statement)
            self.dirty = False


def build_world(url: str, tmp: Path) -> tuple[dict[str, str], list[str]]:
    """Jobs in each status, made by real imports on a live stack."""
    with make_stack(url, tmp / "live") as live, db.connect(url) as conn:
        api = Api(live, LOCAL_MEMBERS[1])
        rows = lead_rows(range(1, 40))
        data = write_csv(tmp / "leads.csv", LEAD_HEADER, rows).read_bytes()
        jobs = {"pending": api.create(conn, data, "pending.csv")}
        jobs["ready"] = str(api.parse(conn, data, "ready.csv")["id"])
        status, reply = api.call(
            "PATCH", f"/api/jobs/{jobs['ready']}/rows/2", {"cells": {LEAD_HEADER[0]: "fixed@x.fr"}}
        )
        assert status == 200, reply  # a row with a fix, for GET …/rows/2
        book = write_xlsx(tmp / "book.xlsx", {"Leads": [LEAD_HEADER, *rows[:10]], "Autre": [LEAD_HEADER, *rows[10:15]]})
        jobs["workbook"] = str(api.parse(conn, book)["id"])
        jobs["to_commit"] = str(api.parse(conn, data, "committing.csv")["id"])
        completed = write_csv(tmp / "done.csv", LEAD_HEADER, lead_rows(range(100, 130))).read_bytes()
        jobs["completed"] = str(api.import_file(conn, completed, "done.csv")["id"])
        failed = api.create(conn, b"Nom;Ville\r\nDupont;Paris\r\n", "no-contact.csv")
        api.start(failed)
        jobs["failed"] = str(finished(conn, failed, "failed")["id"])
        jobs["cancelled"] = api.create(conn, data, "cancelled.csv")
        assert api.cancel(jobs["cancelled"])[0] == 200
        live.wait_idle()
    return jobs, LEAD_HEADER


def stack_rows(url: str, job_id: str) -> list[Any]:
    with db.connect(url) as conn:
        return conn.execute("select row_no from staged_rows where job_id = %s order by row_no", (job_id,)).fetchall()


@pytest.fixture(scope="module")
def world(server_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with fresh_database(server_url) as url:
        jobs, header = build_world(url, tmp)
        with make_stack(url, tmp / "live", APP_URL=DEAD_URL, LOCAL_QSTASH_RETRIES="0") as frozen:
            status, reply = Api(frozen, LOCAL_MEMBERS[1]).call("POST", f"/api/jobs/{jobs['to_commit']}/commit", {})
            assert status == 202, reply
            jobs["committing"] = jobs.pop("to_commit")
            with db.connect(url) as conn:
                wait_for_status(conn, jobs["committing"], {"committing"})
            w = World(url, frozen, jobs, header)
            yield w
            w.conn.close()


# -- requests ------------------------------------------------------------------------------------------

# Strings that broke or could break something: NUL (Postgres refuses it), a lone surrogate
# (no encoding holds it), control characters, paths, huge and formula-like values.
NASTY = st.sampled_from(
    ["\x00", "a\x00b.csv", "\ud800", "x\udfff.csv", "..", ".", "../../etc/passwd", "a/b", "C:\\x\\y.csv", " ",
     "\u202e", "\n", "\x1b[31m", "x" * 300, "é" * 256, "=1+1", "%00", "' or 1=1 --", "null", "1e999", "-0"]
) | st.text(max_size=30) | st.tuples(  # what no database stores (NUL, a lone surrogate), anywhere in a string
    st.text(max_size=4), st.sampled_from(["\x00", "\ud800", "\udfff", "\udc80"]), st.text(max_size=4)
).map("".join)  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | NASTY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NASTY, inner, max_size=4),
    max_leaves=12,
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "application/merge-patch+json", "text/plain",
     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", None]
)  # fmt: skip


def good_bodies(path: str, world_header: list[str]) -> list[Any]:
    """Bodies a real frontend sends, so that accepted requests are fuzzed as often as refused ones."""
    members = [m[1] for m in LOCAL_MEMBERS]
    return {
        "/api/jobs": [{"file_name": "leads.csv"}, {"file_name": " Été ; 2026.xlsx ", "region": "be"},
                      {"file_name": "x.csv", "organization_id": str(LOCAL_ORG)},
                      {"file_name": "book.xlsx", "sheet": "Leads", "file_size": 12_345}],
        "/api/jobs/{job_id}/sheet": [{"sheet": "Autre"}, {"sheet": " Leads "}],
        "/api/jobs/{job_id}/rows/{row_no}": [{"cells": {world_header[0]: "corrige@exemple.fr"}},
                                             {"cells": {world_header[1]: None, world_header[2]: " x\n y "}},
                                             {"excluded": True}, {"excluded": False}, {"extra_cells": None},
                                             {"extra_cells": ["en trop"], "excluded": False},
                                             {"extra_cells": ["a", "b"], "cells": {world_header[3]: "Lyon"}}],
        "/api/jobs/{job_id}/retry": [{}, {"force": True}, {"restart": True}, {"force": True, "restart": True}],
        "/api/jobs/{job_id}/commit": [{}, {"duplicates": "update", "match": "email"},
                                      {"assignment": "user", "owner": members[1]},
                                      {"assignment": "round_robin", "owners": members},
                                      {"assignment": "column", "owner_column": world_header[0]},
                                      {"assign": "round-robin:" + ",".join(members)}],
        "/api/jobs/{job_id}/mapping": [{"mapping": ["email", "phone", "company", "city"]},
                                       {"mapping": {world_header[0]: "email", world_header[1]: None}},
                                       {"mapping": ["email", "email", None, None]}],
    }.get(path, [{}])  # fmt: skip


@st.composite
def body(draw: Any, path: str, operation: dict[str, Any], header: list[str]) -> tuple[bytes, str | None]:
    if "requestBody" not in operation:
        return draw(st.sampled_from([b"", b"{}", b"garbage"])), draw(CONTENT_TYPES)
    schema = inline(operation["requestBody"]["content"]["application/json"]["schema"])
    # Half the bodies are a good one with one field attacked: a wrong value stays in front
    # of the code that handles it, rather than behind another field's refusal.
    kind = draw(st.sampled_from(["mutated"] * 4 + ["inner"] * 3 + ["none", "good", "schema", "typed", "json", "bytes"]))
    if kind == "none":
        return b"", draw(st.sampled_from(["application/json", None]))
    if kind == "bytes":
        return draw(st.binary(min_size=1, max_size=200)), draw(CONTENT_TYPES)
    if kind == "good":
        value = draw(st.sampled_from(good_bodies(path, header)))
    elif kind == "mutated":  # a good body with one field's value (or one more field) drawn from anything
        value = dict(draw(st.sampled_from(good_bodies(path, header))))
        field = draw(st.sampled_from([*schema.get("properties", {}), *value, "unknown"]) | NASTY)
        value[field] = draw(st.one_of(NASTY, NASTY, JSON))
    elif kind == "inner":  # a good body with one value inside one of its objects or arrays attacked
        value = json.loads(json.dumps(draw(st.sampled_from(good_bodies(path, header)))))
        inside = [v for v in value.values() if isinstance(v, dict | list) and v]
        if inside:
            target = draw(st.sampled_from(inside))
            attack = draw(st.one_of(NASTY, NASTY, NASTY, JSON))
            if isinstance(target, dict):
                target[draw(st.sampled_from(sorted(target)) | NASTY)] = attack
            else:
                target[draw(st.integers(0, len(target) - 1))] = attack
    elif kind == "schema":
        value = draw(from_schema(schema))
    elif kind == "typed":  # the documented keys with values of any type
        value = draw(st.fixed_dictionaries({}, optional=dict.fromkeys(schema.get("properties", {}), JSON)))
    else:
        value = draw(JSON)
    content_type = "application/json" if draw(st.integers(0, 9)) else draw(CONTENT_TYPES)
    return json.dumps(value).encode(), content_type


@st.composite
def query(draw: Any, operation: dict[str, Any]) -> dict[str, str]:
    params = {}
    for p in operation.get("parameters", []):
        choice = draw(st.integers(0, 3))
        if choice == 1:
            params[p["name"]] = str(draw(from_schema(p["schema"])))
        elif choice == 2:
            params[p["name"]] = draw(st.sampled_from(["", "abc", "-1", "0", "1e3", "1.5", "9" * 30, "٣"]))
        elif choice == 3:
            params[p["name"]] = draw(NASTY)
    if not draw(st.integers(0, 9)):
        params[draw(st.text(min_size=1, max_size=8))] = draw(st.text(max_size=8))
    return params


def check_answer(world: World, path: str, method: str, operation: dict[str, Any], response: Any) -> None:
    status = response.status_code
    assert status < 500, (status, response.get_data(as_text=True)[:500])
    assert str(status) in operation["responses"], (status, response.get_data(as_text=True)[:300])
    documented = operation["responses"][str(status)]["content"]
    if "application/json" in documented:
        assert response.mimetype == "application/json", response.get_data(as_text=True)[:300]
        errors = list(Draft202012Validator(inline(documented["application/json"]["schema"])).iter_errors(response.json))
        assert not errors, (status, errors[0].message)
    else:
        assert response.mimetype in documented


def fuzz_operation(world: World, path: str, method: str, data: Any, counts: dict[str, int]) -> None:
    operation = DOCUMENT["paths"][path][method]
    world.restore()
    made_up = st.sampled_from([str(uuid.uuid4()), "x", "..", " "]) | st.text(max_size=40)

    def mostly(real: list[str], wrong: Any) -> Any:  # a real value 3 times in 4
        return st.integers(0, 3).flatmap(lambda n: st.sampled_from(real) if n else wrong)

    # The jobs a route acts on are drawn as often as all the others together.
    preferred = [world.jobs[s] for s in PREFERRED.get(path, ())] or sorted(world.jobs.values())
    values = {
        "job_id": mostly(preferred, st.sampled_from(sorted(world.jobs.values())) | made_up),
        "row_no": mostly(
            [str(n) for n in world.rows],
            st.sampled_from(["0", "-1", "1.0", "٣", "9" * 30, str(2**31), "+1", " 1"]) | made_up,
        ),
        "mapping_id": mostly(world.mappings, made_up),
        "org_id": mostly([str(LOCAL_ORG)], st.sampled_from([str(LOCAL_ORG).upper(), str(OTHER_ORG)]) | made_up),
    }
    target = path
    for name, strategy in values.items():
        if "{" + name + "}" in target:
            # Percent-encoded as a client sends them: a lone surrogate becomes bytes that are not UTF-8.
            target = target.replace("{" + name + "}", quote(data.draw(strategy), safe="", errors="surrogatepass"))
    params = data.draw(query(operation))
    content, content_type = data.draw(body(path, operation, world.header))
    who = data.draw(st.sampled_from(["member"] * 20 + ["stranger", "expired", "forged", "garbage", None]))
    headers = {"Authorization": f"Bearer {world.tokens[who]}"} if who else {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    before = world.state()
    query_string = urlencode(params, errors="surrogatepass")
    response = world.client.open(
        target, method=method.upper(), query_string=query_string, data=content, headers=headers
    )
    counts[f"{method.upper()} {path}"] = counts.get(f"{method.upper()} {path}", 0) + 1
    answers = STATUSES.setdefault(f"{method.upper()} {path}", {})
    answers[response.status_code] = answers.get(response.status_code, 0) + 1
    check_answer(world, path, method, operation, response)
    if response.status_code >= 400:
        assert world.state() == before, (response.status_code, response.json)
    elif method != "get":
        world.dirty = True


COUNTS: dict[str, int] = {}
STATUSES: dict[str, dict[int, int]] = {}  # per operation: how many answers of each status
OTHER_ORG = uuid.UUID("00000000-0000-4000-8000-00000000beef")  # in no one's memberships
# The statuses a route acts on: their jobs are drawn as often as all the others.
PREFERRED = {
    "/api/jobs/{job_id}/rows/{row_no}": ("ready", "workbook"),
    "/api/jobs/{job_id}/sheet": ("workbook",),
    "/api/jobs/{job_id}/mapping/automatic": ("ready", "workbook"),
    "/api/jobs/{job_id}/mapping": ("ready",),
    "/api/jobs/{job_id}/commit": ("ready", "committing", "completed"),
}


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_fuzz_frontend_route(world: World, path: str, method: str) -> None:
    started = time.monotonic()

    @FUZZ
    @given(data=st.data())
    def run(data: Any) -> None:
        fuzz_operation(world, path, method, data, COUNTS)

    run()
    key = f"{method.upper()} {path}"
    answers = ", ".join(f"{s}×{n}" for s, n in sorted(STATUSES.get(key, {}).items()))
    print(f"fuzz {key}: {COUNTS.get(key, 0)} requests in {time.monotonic() - started:.1f} s ({answers})")
    assert COUNTS.get(key, 0) >= EXAMPLES


# -- QStash and cron ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SIGNED)
def test_fuzz_signed_routes_refuse_what_qstash_did_not_sign(world: World, path: str) -> None:
    s = world.stack.settings
    key, url = s.current_signing_key, s.endpoint_url(path)
    real = [
        slice_message(j, phase, run, n)
        for j in world.jobs.values()
        for phase in ("parse", "commit")
        for run in (0, 1, 2)
        for n in (0, 1)
    ]
    sent = 0
    started = time.monotonic()

    @FUZZ
    @given(
        content=st.sampled_from(real) | st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()),
        forgery=st.sampled_from(["none", "garbage", "wrong_key", "wrong_url", "other_body", "alg_none", "expired"]),
        cron=st.sampled_from([None, "Bearer wrong", "Bearer ", "Basic x", "bearer " + s.cron_secret[:-1]]),
        method=st.sampled_from(["POST", "GET"] if path.endswith("sweep") else ["POST"]),
    )
    def run(content: bytes, forgery: str, cron: str | None, method: str) -> None:
        nonlocal sent
        world.restore()
        headers = {"Content-Type": "application/json"}
        if forgery == "garbage":
            headers["Upstash-Signature"] = "x.y.z"
        elif forgery == "wrong_key":
            headers["Upstash-Signature"] = sign("another-key-as-long-as-a-real-one-000000", url, content)
        elif forgery == "wrong_url":
            headers["Upstash-Signature"] = sign(key, url.replace("/api/", "/api/x/"), content)
        elif forgery == "other_body":
            headers["Upstash-Signature"] = sign(key, url, content + b" ")
        elif forgery == "alg_none":
            headers["Upstash-Signature"] = jwt.encode({"iss": "Upstash", "sub": url}, None, algorithm="none")
        elif forgery == "expired":
            now = int(time.time())
            claims = {"iss": "Upstash", "sub": url, "exp": now - 600, "nbf": now - 900, "iat": now - 900, "body": ""}
            headers["Upstash-Signature"] = jwt.encode(claims, key, algorithm="HS256")
        if cron is not None:
            headers["Authorization"] = cron
        before = world.state()
        response = world.client.open(path, method=method, data=content, headers=headers)
        sent += 1
        assert response.status_code == 401, (forgery, response.status_code, response.get_data(as_text=True)[:300])
        assert response.mimetype == "application/json" and set(response.json) >= {"error", "message"}
        assert world.state() == before

    run()
    print(f"fuzz {path}: {sent} requests in {time.monotonic() - started:.1f} s")
    assert sent >= EXAMPLES


# -- the local stack's signed upload URLs (lib/local/site.py) ------------------------------------------


def test_fuzz_signed_upload_urls_refuse_what_they_do_not_sign(world: World) -> None:
    """The folder storage's PUT URLs (the local stand-in for Supabase Storage's presigned
    ones): unsigned, tampered, expired, for another key, or over their bound, each is a JSON
    4xx and not a byte is stored."""
    env, root = world.stack.env, world.stack.settings.local_data_dir
    storage = storage_from_env(env, root)
    assert isinstance(storage, FolderStorage) and storage.signing_key
    small = FolderStorage(storage.root, signing_key=storage.signing_key, base_url=storage.base_url, max_bytes=10)
    client = Client(Site(world.app, storage))
    pending = world.conn.execute("select storage_path from import_jobs where id = %s", (world.jobs["pending"],))
    keys = [pending.fetchone()["storage_path"], f"{LOCAL_ORG}/{uuid.uuid4()}/upload.csv"]
    sent = 0
    started = time.monotonic()

    def signed(url: str | None) -> tuple[str, dict[str, str]]:
        assert url is not None
        parts = urlsplit(url)
        return unquote(parts.path[len(UPLOAD_PATH) :]), dict(parse_qsl(parts.query))

    @FUZZ
    @given(
        key=st.sampled_from(keys) | st.sampled_from(["../x", "a/../../b", "", "/abs", "x\x00y"]) | NASTY,
        forgery=st.sampled_from(
            ["unsigned", "garbage", "other_key", "expired", "raised_bound", "over_bound", "missing", "not_numbers"]
        ),
        content=st.binary(min_size=0, max_size=64),
        method=st.sampled_from(["PUT"] * 6 + ["POST", "GET", "DELETE"]),
        extra=st.dictionaries(st.sampled_from(["expires", "max_bytes", "signature", "x"]), NASTY, max_size=2),
    )
    def run(key: str, forgery: str, content: bytes, method: str, extra: dict[str, str]) -> None:
        nonlocal sent
        real = key if key in keys else keys[1]
        _, query = signed(storage.upload_url(real))
        if forgery == "unsigned":
            query = {}
        elif forgery == "garbage":
            query["signature"] = "0" * 64
        elif forgery == "other_key":  # a URL signed for another key, sent to this one
            _, query = signed(storage.upload_url(f"{LOCAL_ORG}/{uuid.uuid4()}/upload.csv"))
        elif forgery == "expired":
            _, query = signed(storage.upload_url(real, expires=-60))
        elif forgery == "raised_bound":
            query["max_bytes"] = str(int(query["max_bytes"]) * 2)
        elif forgery == "over_bound":  # a real signature whose bound the body exceeds
            _, query = signed(small.upload_url(real))
            content = content.ljust(11, b"x")
        elif forgery == "missing":
            query.pop(sorted(query)[len(content) % 3])
        else:
            query["expires"] = "soon"
        if forgery != "over_bound" and key == real:  # the only change that could still be a valid URL
            query = {**query, **{k: v for k, v in extra.items() if k == "x"}}
        before = world.state()
        path = UPLOAD_PATH + quote(key, safe="/", errors="surrogatepass")
        response = client.open(path, method=method, query_string=urlencode(query, errors="surrogatepass"), data=content)
        sent += 1
        assert 400 <= response.status_code < 500, (forgery, key, response.status_code, response.get_data()[:300])
        assert response.mimetype == "application/json", response.get_data()[:300]
        assert set(json.loads(response.get_data())) >= {"error", "message"}
        assert world.state() == before

    run()
    print(f"fuzz PUT {UPLOAD_PATH}<key>: {sent} requests in {time.monotonic() - started:.1f} s")
    assert sent >= EXAMPLES


def test_the_world_holds_a_job_in_each_status(world: World) -> None:
    statuses = {r["status"]: str(r["id"]) for r in world.conn.execute("select id, status from import_jobs").fetchall()}
    assert {"pending", "ready", "committing", "completed", "failed", "cancelled"} <= set(statuses)
    book = world.conn.execute("select status, workbook from import_jobs where id = %s", (world.jobs["workbook"],))
    assert book.fetchone()["status"] == "ready"
    assert world.conn.execute("select count(*) from staged_row_fixes").fetchone()["count"] == 1
    assert world.mappings
    assert isinstance(world.conn, psycopg.Connection)

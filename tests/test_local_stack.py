"""The local stack as a newcomer runs it: `python -m lib serve` and the CLI in processes of their
own, over real HTTP, killed and started again the way a laptop does it.

- a crash: `serve` killed with SIGKILL mid-commit (and mid-parse), started again on another
  port, and the job goes on from the local QStash's stored queue with no command from anyone,
  ending exactly like an undisturbed run;
- several commands started at once on a fresh database and data folder: all succeed, and
  there is one organization;
- the browser's way in: the sign-in links `serve` prints, `python -m lib token`, and the
  signed upload URL of folder storage (an expired, tampered or too large upload is refused);
- Vercel's cron, locally: a job whose messages were lost is swept back to life by the cron
  `serve` runs, with no command from anyone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from lib.local.crons import Cron
from lib.local.stack import LOCAL_MEMBERS, embedded_running, local_secrets
from lib.parse.sample import SampleStats
from tests.helpers import (
    FINISHED,
    ROUND_ROBIN,
    SMALL_SLICES,
    Api,
    finished,
    free_port,
    job,
    lose_queued_messages,
    make_stack,
    outcome,
    same_as_baseline,
    sample,
    undisturbed,
    wait_for_status,
    wait_stale,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
# Small slices, and each delivery a little late: a phase lasts long enough to be killed in.
SLOW = {**SMALL_SLICES, "LOCAL_QSTASH_FAULTS": "delay_ms=30-50"}


@pytest.fixture(scope="module")
def file(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, SampleStats]:
    return sample(tmp_path_factory.mktemp("sample") / "leads.csv", rows=2000)


@pytest.fixture(scope="module")
def baseline(server_url: str, template_url: str, file, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return undisturbed(server_url, tmp_path_factory.mktemp("baseline"), file[0])


def base_env(database_url: str | None, data_dir: Path, **env: str) -> dict[str, str]:
    out = {"PATH": os.environ["PATH"], "LOCAL_DATA_DIR": str(data_dir), **env}
    if database_url:
        out["DATABASE_URL"] = database_url
    return out


class Serve:
    """`python -m lib serve` in a process of its own; what it printed is in `out`."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lib", "serve", "--port", str(self.port)],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(lambda: "Ctrl-C to stop." in self.out or self.proc.poll() is not None, 60, "serve to start")
        assert self.proc.poll() is None, self.out

    @property
    def out(self) -> str:
        return self.log.read_text()

    def token(self, email: str = LOCAL_MEMBERS[0][1]) -> str:
        """The access token of the sign-in link `serve` printed for this member."""
        link = re.search(rf"^\s+{re.escape(email)}\s+(\S+)$", self.out, re.M)
        assert link, self.out
        url = urllib.parse.urlsplit(link.group(1))
        assert f"{url.scheme}://{url.netloc}{url.path}" == self.url + "/"
        fragment = dict(urllib.parse.parse_qsl(url.fragment))
        assert fragment.keys() == {"access_token", "expires_in", "token_type"}
        assert fragment["token_type"] == "bearer" and int(fragment["expires_in"]) > 0
        return fragment["access_token"]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token()}"}
        resp = httpx.request(method, self.url + path, json=body, headers=headers, timeout=60)
        return resp.status_code, resp.json()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[Serve]:
    s = Serve(env, log)
    try:
        yield s
    finally:
        s.stop()


def create_and_upload(s: Serve, data: bytes) -> str:
    """A job created over HTTP, its file PUT to the signed upload URL: the job's id."""
    status, reply = s.call("POST", "/api/jobs", {"file_name": "leads.csv"})
    assert status == 201, reply
    assert reply["upload_url"], reply
    put = httpx.put(reply["upload_url"], content=data, timeout=60)
    assert put.status_code == 200, put.text
    return str(reply["job"]["id"])


# -- a crash ------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["parse", "commit"])
def test_serve_killed_mid_phase_resumes_after_restart_with_no_command(
    phase: str, database_url: str, tmp_path: Path, conn: psycopg.Connection, file, baseline
) -> None:
    data, _ = file
    env = base_env(database_url, tmp_path / "local", **SLOW)
    first = Serve(env, tmp_path / "serve1.log")
    try:
        job_id = create_and_upload(first, data)
        assert first.call("POST", f"/api/jobs/{job_id}/start")[0] == 202
        if phase == "commit":
            finished(conn, job_id, "ready")
            assert first.call("POST", f"/api/jobs/{job_id}/commit", ROUND_ROBIN)[0] == 202
            wait_until(lambda: job(conn, job_id)["commit_cursor"] > 0, 60, "the commit to be under way")
        else:
            wait_until(lambda: job(conn, job_id)["total_rows"] > 0, 60, "the parse to be under way")
        first.kill()
    finally:
        first.stop()
    killed = job(conn, job_id)
    if phase == "commit":
        assert killed["status"] == "committing"
        assert 0 < killed["commit_cursor"] < killed["total_rows"]
    else:
        assert killed["status"] == "parsing"
        assert 0 < killed["parse_cursor"] < killed["file_size"]
    pending = _stored_messages(tmp_path / "local")
    assert pending > 0  # what the killed QStash had accepted is on disk

    # Started again (on another port): nobody says anything, the job goes on.
    with serve(env, tmp_path / "serve2.log") as second:
        assert second.port != first.port
        resumed = finished(conn, job_id, "ready" if phase == "parse" else "completed")
        assert resumed["run"] == killed["run"]  # by the stored messages, not by a retry
        if phase == "parse":
            assert second.call("POST", f"/api/jobs/{job_id}/commit", ROUND_ROBIN)[0] == 202
            finished(conn, job_id, "completed")
        same_as_baseline(outcome(conn, job_id), baseline)


def _stored_messages(data_dir: Path) -> int:
    import sqlite3

    with sqlite3.connect(data_dir / "qstash.sqlite3") as db:
        return int(db.execute("select count(*) from messages where state = 'pending'").fetchone()[0])


# -- first start, many at once --------------------------------------------------------------------


def _at_once(env: dict[str, str], commands: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lib", *c],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in commands
    ]
    results = []
    for c, p in zip(commands, procs, strict=True):
        out, err = p.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(c, p.returncode, out, err))
    return results


def _commands(tmp_path: Path) -> list[list[str]]:
    csv = tmp_path / "leads.csv"
    sample(csv, rows=200)
    return [
        ["import", str(csv), "--yes", "--json"],
        ["jobs", "--json"],
        ["jobs", "--json"],
        ["token", LOCAL_MEMBERS[1][1]],
        ["token", LOCAL_MEMBERS[2][1]],
        ["jobs"],
    ]


def _check_first_start(results: list[subprocess.CompletedProcess[str]], data_dir: Path, url: str) -> None:
    for r in results:
        assert r.returncode == 0, (r.args, r.stderr)
    assert json.loads(results[0].stdout)["status"] == "completed"
    secret = local_secrets(data_dir)["SUPABASE_JWT_SECRET"]
    for r in results[3:5]:
        claims = jwt.decode(r.stdout.strip(), secret, algorithms=["HS256"], audience="authenticated")
        assert claims["email"] in {LOCAL_MEMBERS[1][1], LOCAL_MEMBERS[2][1]}
    with psycopg.connect(url) as c:
        assert c.execute("select count(*) from organizations").fetchone() == (1,)
        assert c.execute("select count(*) from organization_members").fetchone() == (3,)


def test_commands_started_together_on_a_fresh_database_all_succeed(database_url: str, tmp_path: Path) -> None:
    env = base_env(database_url, tmp_path / "local", IMPORT_PARSE_SLICE_ROWS="100")
    results = _at_once(env, _commands(tmp_path))
    _check_first_start(results, tmp_path / "local", database_url)
    # An embedded Postgres is not theirs to mention: the database is DATABASE_URL.
    assert not any("embedded Postgres" in r.stderr for r in results)


def test_commands_started_together_on_a_fresh_data_folder_share_one_embedded_postgres(tmp_path: Path) -> None:
    """No DATABASE_URL: the first start of the embedded server, raced. One of them says it
    keeps running (once), and `python -m lib stop` stops it."""
    data_dir = tmp_path / "local"
    env = base_env(None, data_dir, IMPORT_PARSE_SLICE_ROWS="100")
    try:
        results = _at_once(env, _commands(tmp_path))
        assert embedded_running(data_dir)  # left running for the next command
        notes = [r for r in results if "keeps running" in r.stderr]
        assert len(notes) == 1, [r.stderr for r in results]
        assert "python -m lib stop" in notes[0].stderr
        from lib.local.stack import embedded_server

        _check_first_start(results, data_dir, embedded_server(data_dir).get_uri())
    finally:
        stopped = subprocess.run(
            [sys.executable, "-m", "lib", "stop"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
    assert stopped.returncode == 0 and "stopped the embedded Postgres" in stopped.stdout, stopped
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    again = subprocess.run([sys.executable, "-m", "lib", "stop"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and "nothing" in again.stdout
    # For scripts (make demo): a command stops the server it started as it exits.
    tidy = subprocess.run(
        [sys.executable, "-m", "lib", "jobs"], env={**env, "LOCAL_STOP_POSTGRES": "1"}, cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert tidy.returncode == 0 and "stopped the embedded Postgres this command started" in tidy.stderr, tidy
    assert not (data_dir / "pg" / "postmaster.pid").exists()


def test_secrets_made_by_racing_processes_are_one_set(tmp_path: Path) -> None:
    code = "import sys, json; from lib.local.stack import local_secrets; print(json.dumps(local_secrets(__import__('pathlib').Path(sys.argv[1]))))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "d")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    seen = {p.communicate(timeout=60)[0] for p in procs}
    assert len(seen) == 1
    assert json.loads(seen.pop()) == json.loads((tmp_path / "d" / "secrets.json").read_text())
    assert not [p for p in (tmp_path / "d").iterdir() if p.name != "secrets.json"]


# -- the browser's way in ------------------------------------------------------------------------------


def test_upload_over_http_then_import_and_bad_upload_urls_are_refused(
    database_url: str, tmp_path: Path, conn: psycopg.Connection, file
) -> None:
    data, stats = file
    env = base_env(database_url, tmp_path / "local", IMPORT_MAX_FILE_MB="1")
    with serve(env, tmp_path / "serve.log") as s:
        token = subprocess.run(
            [sys.executable, "-m", "lib", "token", LOCAL_MEMBERS[0][1]],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert token.returncode == 0, token.stderr
        headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
        assert httpx.get(s.url + "/api/jobs", headers=headers).status_code == 200
        unknown = subprocess.run(
            [sys.executable, "-m", "lib", "token", "nobody@local.test"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert unknown.returncode == 2 and "camille@local.test" in unknown.stderr

        status, reply = s.call("POST", "/api/jobs", {"file_name": "leads.csv"})
        assert status == 201
        job_id, url = reply["job"]["id"], reply["upload_url"]
        path = job(conn, job_id)["storage_path"]
        stored = tmp_path / "local" / "storage" / path
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))

        def with_query(**change: str) -> str:
            return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode({**query, **change})))

        refused = {
            "tampered signature": with_query(signature="0" * 64),
            "larger bound": with_query(max_bytes=str(int(query["max_bytes"]) * 2)),
            "later expiry": with_query(expires=str(int(query["expires"]) + 3600)),
            "another key": url.replace(urllib.parse.quote(path), urllib.parse.quote(path + "x")),
            "expired": _signed_url(env, s.url, path, expires=-1),
        }
        for what, bad in refused.items():
            resp = httpx.put(bad, content=data)
            assert resp.status_code == 403, (what, resp.text)
            assert resp.json()["error"] == "UploadRefused", what
            assert not stored.exists(), what
        too_big = httpx.put(url, content=b"x" * (1024 * 1024 + 1))
        assert too_big.status_code == 413 and not stored.exists()
        assert httpx.get(url).status_code == 405

        put = httpx.put(url, content=data)
        assert put.status_code == 200 and put.headers["ETag"]
        assert stored.read_bytes() == data
        assert s.call("POST", f"/api/jobs/{job_id}/start")[0] == 202
        ready = finished(conn, job_id, "ready")
        assert (ready["total_rows"], ready["valid_rows"]) == (stats.rows, stats.valid)
        assert s.call("POST", f"/api/jobs/{job_id}/commit", {})[0] == 202
        assert finished(conn, job_id, "completed")["inserted_rows"] > 0


def _signed_url(env: dict[str, str], app_url: str, key: str, *, expires: int) -> str:
    from lib.storage import storage_from_env

    storage = storage_from_env(
        {
            **env,
            "APP_URL": app_url,
            "LOCAL_STORAGE_SIGNING_KEY": local_secrets(Path(env["LOCAL_DATA_DIR"]))["LOCAL_STORAGE_SIGNING_KEY"],
        },
        Path(env["LOCAL_DATA_DIR"]),
    )
    url = storage.upload_url(key, expires=expires)
    assert url
    return url


def test_serve_serves_the_public_folder_at_the_root(database_url: str, tmp_path: Path) -> None:
    from lib.local.site import Site

    public = tmp_path / "public"
    (public / "css").mkdir(parents=True)
    (public / "index.html").write_text("<h1>Import</h1>")
    (public / "css" / "app.css").write_text("h1{}")
    with make_stack(database_url, tmp_path) as stack:
        site = stack._server.app  # type: ignore[union-attr]
        site.app = Site(site.app.api, site.app.storage, public)
        assert httpx.get(stack.app_url + "/").text == "<h1>Import</h1>"
        assert httpx.get(stack.app_url + "/css/app.css").text == "h1{}"
        assert httpx.get(stack.app_url + "/../secrets.json").status_code == 404
        assert httpx.get(stack.app_url + "/api/health").json() == {"ok": True}
        (public / "index.html").unlink()
        assert httpx.get(stack.app_url + "/").status_code == 404


# -- the cron ---------------------------------------------------------------------------------------------


def test_the_cron_sweeps_a_job_whose_messages_were_lost(
    database_url: str, tmp_path: Path, conn: psycopg.Connection, file, baseline
) -> None:
    env = {**SLOW, "IMPORT_LEASE_SECONDS": "2", "LOCAL_CRON_SECONDS": "0.5"}
    stack = make_stack(database_url, tmp_path, **env)
    stack.run_crons = True
    with stack:
        api = Api(stack)
        job_id = api.parse(conn, file[0])["id"]
        api.start_commit(job_id, **ROUND_ROBIN)
        wait_until(lambda: job(conn, job_id)["commit_cursor"] > 0, 60, "the commit to be under way")
        lose_queued_messages(stack)
        stranded = job(conn, job_id)
        wait_stale(conn, job_id)
        done = wait_for_status(conn, job_id, FINISHED, 120)
        assert done["status"] == "completed", done["error_message"]
        assert done["run"] > stranded["run"] and stack.crons.calls >= 1  # resumed by the sweep
        stack.wait_idle()
        same_as_baseline(outcome(conn, job_id), baseline)


@pytest.mark.parametrize(
    ("schedule", "at", "expected"),
    [
        ("*/5 * * * *", "2026-12-02T10:05", True),
        ("*/5 * * * *", "2026-12-02T10:06", False),
        ("0 3 * * *", "2026-12-02T03:00", True),
        ("0 3 * * *", "2026-12-02T04:00", False),
        ("30 8-18/2 * * 1-5", "2026-12-02T10:30", True),  # a Wednesday
        ("30 8-18/2 * * 1-5", "2026-12-06T10:30", False),  # a Sunday
        ("0 0 1 * 0", "2026-12-06T00:00", True),  # both day fields restricted: either one
        ("0 0 * * 7", "2026-12-06T00:00", True),  # 7 is Sunday too
        ("15,45 * * * *", "2026-12-02T10:45", True),
    ],
)
def test_cron_schedules(schedule: str, at: str, expected: bool) -> None:
    from datetime import datetime

    assert Cron("/x", schedule).matches(datetime.fromisoformat(at)) is expected


@pytest.mark.parametrize("schedule", ["* * * *", "61 * * * *", "*/0 * * * *", "a * * * *"])
def test_bad_cron_schedules_are_refused(schedule: str) -> None:
    from datetime import datetime

    with pytest.raises(ValueError):
        Cron("/x", schedule).matches(datetime(2026, 12, 2))

"""Nothing stuck, nothing lost: retry, cancel, the failure callback and the sweep, on the
whole local stack (real Postgres, real HTTP, real QStash signatures).

The helpers at the top drive the stack like a frontend and QStash do; test_faults.py,
test_hostile_files.py and test_security.py use them too.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from lib import db
from lib.auth import mint_token
from lib.local.qstash_server import LocalQStash, sign
from lib.local.stack import LOCAL_MEMBERS, LocalStack
from lib.parse.sample import SampleStats, write_sample_csv
from lib.storage import storage_from_env
from tests.conftest import fresh_database, make_stack
from tests.helpers import wait_for_status

ROWS = 500
SMALL_SLICES = {"IMPORT_PARSE_SLICE_ROWS": "50", "IMPORT_COMMIT_SLICE_ROWS": "50"}
ROUND_ROBIN = {"assign": "round-robin:" + ",".join(m[1] for m in LOCAL_MEMBERS)}
ACTIVE = {"validating", "parsing", "committing", "reverting"}
USER = object()  # Api.call's default: the member's own token
CRON = object()  # sweep()'s default: the stack's cron secret
COUNTS = (
    "status", "phase", "total_rows", "valid_rows", "invalid_rows", "duplicate_rows", "inserted_rows",
    "updated_rows", "skipped_rows", "reverted_rows", "error_counts", "warning_counts",
)  # fmt: skip


# -- driving the stack like a frontend and like QStash ----------------------------------------


def app_url(stack: LocalStack) -> str:
    """Where the stack's app really listens (APP_URL may name another process)."""
    assert stack._server is not None
    return f"http://127.0.0.1:{stack._server.server_port}"


class Api:
    """The frontend: real HTTP with a member's access token."""

    def __init__(self, stack: LocalStack, user: tuple[Any, str, str] = LOCAL_MEMBERS[0], base: str | None = None):
        self.stack = stack
        self.base = base or app_url(stack)
        self.token = mint_token(stack.env["SUPABASE_JWT_SECRET"], str(user[0]), user[1])

    def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None, token: Any = USER
    ) -> tuple[int, Any]:
        h = {"Content-Type": "application/json", **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {self.token if token is USER else token}"
        resp = httpx.request(
            method, self.base + path, content=None if body is None else json.dumps(body), headers=h, timeout=60
        )
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, resp.text

    def create(self, conn: psycopg.Connection, data: bytes, name: str = "leads.csv", **body: Any) -> str:
        """A new job with its file uploaded: the id of the pending job."""
        status, reply = self.call("POST", "/api/jobs", {"file_name": name, **body})
        assert status == 201, reply
        job_id = reply["job"]["id"]
        storage(self.stack).put(job(conn, job_id)["storage_path"], data)
        return job_id

    def queue(self, path: str, body: Any = None) -> tuple[int, Any]:
        """A call that queues work: a 503 (QStash unavailable, nothing changed) is retried,
        as a frontend would."""
        for _ in range(5):
            status, reply = self.call("POST", path, body)
            if status != 503:
                break
        return status, reply

    def start(self, job_id: str) -> dict[str, Any]:
        status, reply = self.queue(f"/api/jobs/{job_id}/start")
        assert status == 202, reply
        return reply["job"]

    def retry(self, job_id: str, **body: Any) -> tuple[int, Any]:
        return self.call("POST", f"/api/jobs/{job_id}/retry", body)

    def cancel(self, job_id: str) -> tuple[int, Any]:
        return self.call("POST", f"/api/jobs/{job_id}/cancel")

    def commit(self, job_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, reply = self.queue(f"/api/jobs/{job_id}/commit", ROUND_ROBIN if body is None else body)
        assert status == 202, reply
        return reply["job"]

    def parse(self, conn: psycopg.Connection, data: bytes, name: str = "leads.csv") -> str:
        job_id = self.create(conn, data, name)
        self.start(job_id)
        finished(conn, job_id, "ready")
        return job_id

    def import_file(self, conn: psycopg.Connection, data: bytes, name: str = "leads.csv") -> str:
        job_id = self.parse(conn, data, name)
        self.commit(job_id)
        finished(conn, job_id, "completed")
        return job_id


def storage(stack: LocalStack) -> Any:
    return storage_from_env(stack.settings.env, stack.settings.local_data_dir)


def job(conn: psycopg.Connection, job_id: str) -> dict[str, Any]:
    return conn.execute("select * from import_jobs where id = %s", (job_id,)).fetchone()


def finished(conn: psycopg.Connection, job_id: str, expected: str, timeout: float = 90) -> dict[str, Any]:
    """Wait until the job leaves the active statuses; it must be in `expected`."""
    row = wait_for_status(conn, job_id, {"ready", "completed", "failed", "cancelled", "reverted"}, timeout)
    assert row["status"] == expected, f"{row['status']}: {row['error_message']}"
    return row


def wait_until(predicate: Any, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def post_signed(stack: LocalStack, path: str, body: bytes, *, key: str | None = None, url: str | None = None) -> Any:
    """A request signed like QStash's (sign() is what the local QStash itself uses)."""
    s = stack.settings
    signature = sign(key or s.current_signing_key, url or s.endpoint_url(path), body)
    return httpx.post(
        app_url(stack) + path,
        content=body,
        headers={"Upstash-Signature": signature, "Content-Type": "application/json"},
        timeout=30,
    )


def slice_message(job_id: str, phase: str, run: int, slice_no: int) -> bytes:
    return json.dumps({"job": job_id, "phase": phase, "run": run, "slice": slice_no}).encode()


def lose_queued_messages(stack: LocalStack) -> None:
    """QStash loses every message it holds (the chain of the running jobs breaks): the local
    QStash is replaced by an empty one on the same port, without faults."""
    old = stack.qstash
    old.stop()
    port = int(old.base_url.rsplit(":", 1)[1])
    env = stack.env
    stack.qstash = LocalQStash(
        env["QSTASH_TOKEN"], env["QSTASH_CURRENT_SIGNING_KEY"], env["QSTASH_NEXT_SIGNING_KEY"], port=port
    )
    assert stack.qstash.start() == old.base_url


def wait_stale(conn: psycopg.Connection, job_id: str) -> None:
    """Real time passes until the job's heartbeat is older than its lease (a stuck job)."""
    wait_until(
        lambda: conn.execute(
            "select now() - heartbeat_at > make_interval(secs => lease_seconds) as stale from import_jobs where id = %s",
            (job_id,),
        ).fetchone()["stale"],
        what="the lease to expire",
    )


def outcome(conn: psycopg.Connection, job_id: str, *, slices: bool = False) -> dict[str, Any]:
    """What an import did, free of ids and times: the job's counts, the organization's leads
    (a multiset of their fields and owners), and each staged row's outcome and lead."""
    row = job(conn, job_id)
    counts = {k: row[k] for k in COUNTS + (("slices_done",) if slices else ())}
    leads = conn.execute(
        """select (to_jsonb(l) - array['id', 'created_at', 'updated_at', 'import_job_id',
                  'updated_by_import_job_id'])::text as lead
           from leads l where organization_id = %s""",
        (row["organization_id"],),
    ).fetchall()
    staged = conn.execute(
        """select s.row_no, s.valid, so.outcome, s.errors, s.warnings, s.duplicate_of, s.match_key,
                  s.fields::text, l.email_normalized, l.phone_e164, l.owner_id
           from staged_rows s left join staged_outcomes so on so.job_id = s.job_id and so.row_no = s.row_no
           left join leads l on l.id = so.lead_id
           where s.job_id = %s order by s.row_no""",
        (job_id,),
    ).fetchall()
    return {"counts": counts, "leads": sorted(r["lead"] for r in leads), "staged": [tuple(r.values()) for r in staged]}


def other_state(conn: psycopg.Connection, job_id: str | None = None) -> dict[str, Any]:
    """Everything outside one job: other jobs, all leads, organizations and members."""
    return {
        "jobs": conn.execute(
            "select * from import_jobs where id is distinct from %s order by id", (job_id,)
        ).fetchall(),
        "leads": conn.execute("select * from leads order by id").fetchall(),
        "staged": conn.execute(
            "select job_id, count(*) from staged_rows where job_id is distinct from %s group by 1 order by 1", (job_id,)
        ).fetchall(),
        "orgs": conn.execute("select * from organizations order by id").fetchall(),
        "members": conn.execute("select * from organization_members order by organization_id, user_id").fetchall(),
    }


def sample(path: Path, rows: int = ROWS, seed: int = 5) -> tuple[bytes, SampleStats]:
    stats = write_sample_csv(path, rows, seed=seed)
    return path.read_bytes(), stats


def undisturbed(server_url: str, tmp: Path, data: bytes, **env: str) -> dict[str, Any]:
    """The outcome of an import nothing disturbed: what every disturbed run must end in."""
    with (
        fresh_database(server_url) as url,
        make_stack(url, tmp, **SMALL_SLICES, **env) as stack,
        db.connect(url) as c,
    ):
        job_id = Api(stack).import_file(c, data)
        stack.wait_idle()
        return outcome(c, job_id, slices=True)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def file(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, SampleStats]:
    return sample(tmp_path_factory.mktemp("sample") / "leads.csv")


@pytest.fixture(scope="module")
def baseline(server_url: str, template_url: str, file, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = undisturbed(server_url, tmp_path_factory.mktemp("baseline"), file[0])
    stats = file[1]
    counts = result["counts"]
    assert (counts["total_rows"], counts["valid_rows"], counts["invalid_rows"], counts["duplicate_rows"]) == (
        stats.rows, stats.valid, stats.invalid, stats.duplicates,
    )  # fmt: skip
    assert counts["inserted_rows"] + counts["skipped_rows"] == stats.valid
    return result


@contextmanager
def slow_stack(database_url: str, tmp_path: Path, **env: str) -> Iterator[LocalStack]:
    """Small slices, and QStash waiting a little before each delivery: time to act mid-phase."""
    with make_stack(database_url, tmp_path, **{**SMALL_SLICES, "LOCAL_QSTASH_FAULTS": "delay_ms=80-120", **env}) as s:
        yield s


def stranded_job(api: Any, stack: LocalStack, conn: psycopg.Connection, data: bytes) -> tuple[str, dict]:
    """A job started, a few slices in, whose message chain QStash then loses: its id, and its
    row at that moment."""
    job_id = api.create(conn, data)
    api.start(job_id)
    wait_until(lambda: job(conn, job_id)["slices_done"] >= 4, what="a few slices")
    lose_queued_messages(stack)
    return job_id, job(conn, job_id)


def commit_like_baseline(api: Any, stack: Any, conn: psycopg.Connection, job_id: str, baseline: dict) -> None:
    """From ready to completed, then exactly the undisturbed run's final state."""
    finished(conn, job_id, "ready")
    api.commit(job_id)
    finished(conn, job_id, "completed")
    stack.wait_idle()
    same_as_baseline(outcome(conn, job_id, slices=True), baseline)


def same_as_baseline(actual: dict[str, Any], baseline: dict[str, Any]) -> None:
    expected = {**baseline, "counts": {k: v for k, v in baseline["counts"].items() if k in actual["counts"]}}
    assert actual["counts"] == expected["counts"]
    assert actual["leads"] == expected["leads"]
    assert actual["staged"] == expected["staged"]


# -- retry ------------------------------------------------------------------------------------


def test_retry_from_pending_starts_the_job(stack, conn, file) -> None:
    api = Api(stack)
    job_id = api.create(conn, file[0])
    status, reply = api.retry(job_id)
    assert status == 202, reply
    assert reply["job"]["status"] == "validating" and reply["job"]["run"] == 1
    row = finished(conn, job_id, "ready")
    assert row["total_rows"] == file[1].rows


def test_retry_refusals_say_why_and_change_nothing(database_url, tmp_path, conn, file) -> None:
    with slow_stack(database_url, tmp_path) as stack:
        api = Api(stack)
        ready = api.parse(conn, file[0])
        live = api.create(conn, file[0], "other.csv")
        api.start(live)
        before = job(conn, ready)
        status, reply = api.retry(ready)
        assert (status, reply["error"]) == (409, "IllegalTransition")
        assert "a ready job cannot be retried" in reply["message"]
        assert job(conn, ready) == before

        # The live job: stopped at a slice boundary for the check (a running slice holds the lock).
        with conn.transaction():
            locked = conn.execute("select * from import_jobs where id = %s for update", (live,)).fetchone()
            assert locked["status"] in ACTIVE
        status, reply = api.retry(live)
        assert status == 409
        assert "alive" in reply["message"] and "force" in reply["message"]
        finished(conn, live, "ready")

        # Completed, then restart of a committed import: refused with the reason.
        api.commit(ready)
        done = finished(conn, ready, "completed")
        for body, words in (({}, "completed job cannot be retried"), ({"restart": True}, "cannot be retried")):
            status, reply = api.retry(ready, **body)
            assert status == 409 and words in reply["message"], reply
        assert job(conn, ready) == done
        stack.wait_idle()


def test_retry_of_a_job_stuck_in_validating(database_url, tmp_path, conn, file) -> None:
    """Its first message can never arrive (APP_URL names a dead port): refused while the
    lease runs, accepted once it expired, as a new run of the validating step."""
    with make_stack(database_url, tmp_path, APP_URL="http://127.0.0.1:9") as stack:
        api = Api(stack)
        job_id = api.create(conn, file[0])
        api.start(job_id)
        status, reply = api.retry(job_id)
        assert status == 409 and "validating and alive" in reply["message"], reply
        age_heartbeat(conn, job_id)
        status, reply = api.retry(job_id)
        assert status == 202, reply
        assert (reply["job"]["status"], reply["job"]["run"]) == ("validating", 2)


def test_force_retry_takes_over_a_live_job_and_old_run_messages_do_nothing(
    database_url, tmp_path, conn, file, baseline
) -> None:
    with slow_stack(database_url, tmp_path) as stack:
        api = Api(stack)
        job_id = api.create(conn, file[0])
        api.start(job_id)
        wait_until(lambda: job(conn, job_id)["slices_done"] >= 3, what="3 slices")
        status, reply = api.retry(job_id, force=True)
        assert status == 202, reply
        assert reply["job"]["run"] == 2 and reply["job"]["status"] == "parsing"
        finished(conn, job_id, "ready")
        api.commit(job_id)
        finished(conn, job_id, "completed")
        stack.wait_idle()
        result = outcome(conn, job_id, slices=True)
        same_as_baseline(result, baseline)
        # Every slice was counted once, whichever run ran it.
        assert result["counts"]["slices_done"] == baseline["counts"]["slices_done"]

        # A stray message of the abandoned parse run, and of the parse phase, change nothing.
        before = outcome(conn, job_id, slices=True)
        for body in (slice_message(job_id, "parse", 1, 4), slice_message(job_id, "parse", 2, 5)):
            resp = post_signed(stack, "/api/import/parse", body)
            assert (resp.status_code, resp.json()["outcome"]) == (200, "stale")
        row = job(conn, job_id)
        resp = post_signed(stack, "/api/import/commit", slice_message(job_id, "commit", row["run"] - 1, 0))
        assert (resp.status_code, resp.json()["outcome"]) == (200, "stale")
        assert outcome(conn, job_id, slices=True) == before


def test_retry_of_a_stuck_job_resumes_each_phase_at_its_cursor(database_url, tmp_path, conn, file, baseline) -> None:
    """The chain breaks (QStash lost the message) mid-parse and again mid-commit: a retry is
    refused while the lease runs, then resumes at the cursor under a new run."""
    with slow_stack(database_url, tmp_path, IMPORT_LEASE_SECONDS="1") as stack:
        api = Api(stack)
        job_id = api.create(conn, file[0])
        api.start(job_id)
        for phase, slices in (("parse", 4), ("commit", 16)):
            wait_until(lambda n=slices: job(conn, job_id)["slices_done"] >= n, what="a few slices")
            lose_queued_messages(stack)
            stuck = job(conn, job_id)
            assert stuck["status"] in ACTIVE and stuck["phase"] == phase
            cursor = stuck["parse_cursor"] if phase == "parse" else stuck["commit_cursor"]
            assert cursor > 0

            wait_stale(conn, job_id)
            status, reply = api.retry(job_id)
            assert status == 202, reply
            resumed = job(conn, job_id)
            assert resumed["run"] == stuck["run"] + 1
            assert (resumed["slice_no"], resumed["parse_cursor"], resumed["commit_cursor"]) == (
                stuck["slice_no"], stuck["parse_cursor"], stuck["commit_cursor"],
            )  # fmt: skip
            if phase == "parse":
                finished(conn, job_id, "ready")
                stack.qstash.faults.delay_ms = (80, 120)  # slow again, to break the commit too
                api.commit(job_id)
        finished(conn, job_id, "completed")
        stack.wait_idle()
        result = outcome(conn, job_id, slices=True)
        same_as_baseline(result, baseline)
        assert result["counts"]["slices_done"] == baseline["counts"]["slices_done"]


def test_restart_parses_again_from_zero(database_url, tmp_path, conn, file, baseline) -> None:
    with slow_stack(database_url, tmp_path) as stack:
        api = Api(stack)
        job_id = api.create(conn, file[0])
        api.start(job_id)
        wait_until(lambda: job(conn, job_id)["total_rows"] >= 100, what="100 staged rows")
        status, reply = api.retry(job_id, restart=True, force=True)
        assert status == 202, reply
        assert reply["job"]["status"] == "validating" and reply["job"]["slices_done"] == 0
        assert reply["job"]["total_rows"] == 0
        commit_like_baseline(api, stack, conn, job_id, baseline)


@pytest.mark.parametrize("phase", ["parse", "commit"])
def test_cancel_stops_at_a_slice_boundary_and_retry_completes(
    database_url, tmp_path, conn, file, baseline, phase: str
) -> None:
    with slow_stack(database_url, tmp_path) as stack:
        api = Api(stack)
        job_id = api.create(conn, file[0])
        api.start(job_id)
        if phase == "commit":
            finished(conn, job_id, "ready")
            api.commit(job_id)
        mid = 5 if phase == "parse" else 16  # the parse phase has 12 slices
        wait_until(lambda: (r := job(conn, job_id))["phase"] == phase and r["slices_done"] >= mid, what="mid-phase")
        status, reply = api.cancel(job_id)
        assert status == 200, reply
        assert reply["job"]["status"] == "cancelled"
        stack.wait_idle()  # the messages in flight arrive, and find the job cancelled
        stopped = job(conn, job_id)
        assert stopped["slices_done"] == reply["job"]["slices_done"]
        assert stopped["status"] == "cancelled"
        if phase == "commit":
            assert 0 < stopped["commit_cursor"] < stopped["total_rows"]

        status, reply = api.retry(job_id)
        assert status == 202, reply
        assert reply["job"]["status"] == ("parsing" if phase == "parse" else "committing")
        if phase == "parse":
            finished(conn, job_id, "ready")
            api.commit(job_id)
        finished(conn, job_id, "completed")
        stack.wait_idle()
        same_as_baseline(outcome(conn, job_id, slices=True), baseline)


def test_a_job_cancelled_while_ready_comes_back_ready_with_the_same_counts(stack, conn, file, baseline) -> None:
    api = Api(stack)
    job_id = api.parse(conn, file[0])
    ready = outcome(conn, job_id)
    status, reply = api.cancel(job_id)
    assert (status, reply["job"]["status"]) == (200, "cancelled")
    status, reply = api.retry(job_id)
    assert status == 202, reply
    finished(conn, job_id, "ready")
    again = outcome(conn, job_id)
    assert again["counts"] == ready["counts"]
    assert again == ready
    api.commit(job_id)
    finished(conn, job_id, "completed")
    stack.wait_idle()
    same_as_baseline(outcome(conn, job_id), baseline)


# -- the failure callback ------------------------------------------------------------------------


def test_when_qstash_gives_up_the_job_fails_with_what_happened_and_what_to_do(
    database_url, tmp_path, conn, file, baseline
) -> None:
    """A broken slice (its state names an unknown encoding) fails on every delivery: QStash
    retries it, gives up and calls the failure callback, which fails the job."""
    with make_stack(database_url, tmp_path, **SMALL_SLICES) as stack:
        api = Api(stack)
        job_id = api.create(conn, file[0])
        api.start(job_id)
        wait_until(lambda: job(conn, job_id)["status"] == "parsing", what="parsing")
        conn.execute("update import_jobs set encoding = 'no-such-codec' where id = %s", (job_id,))
        failed = finished(conn, job_id, "failed", timeout=60)
        message = failed["error_message"]
        assert "parse step stopped at slice" in message
        assert "HTTP 500" in message and "unknown encoding: no-such-codec" in message
        assert "retry" in message.lower()
        assert stack.qstash.stats.callbacks >= 1 and stack.qstash.stats.dead >= 1
        stack.wait_idle()

        # Once repaired, a retry resumes where it stopped.
        conn.execute("update import_jobs set encoding = 'cp1252' where id = %s", (job_id,))
        status, reply = api.retry(job_id)
        assert status == 202, reply
        commit_like_baseline(api, stack, conn, job_id, baseline)


def test_failure_callback_of_an_old_run_or_a_passed_slice_changes_nothing(database_url, tmp_path, conn, file) -> None:
    with slow_stack(database_url, tmp_path) as stack:
        _old_callbacks_change_nothing(stack, conn, file[0])


def _old_callbacks_change_nothing(stack: LocalStack, conn: psycopg.Connection, data: bytes) -> None:
    api = Api(stack)
    job_id = api.parse(conn, data)
    api.commit(job_id)
    wait_until(lambda: job(conn, job_id)["slices_done"] >= 15, what="a few commit slices")
    row = job(conn, job_id)

    def callback(phase: str, run: int, slice_no: int) -> Any:
        body = {
            "status": 500, "body": base64.b64encode(b"boom").decode(), "retried": 5, "maxRetries": 5,
            "sourceBody": base64.b64encode(slice_message(job_id, phase, run, slice_no)).decode(),
        }  # fmt: skip
        return post_signed(stack, "/api/import/failed", json.dumps(body).encode())

    for phase, run, slice_no in (("parse", row["run"] - 1, 3), ("commit", row["run"], 0)):
        resp = callback(phase, run, slice_no)
        assert (resp.status_code, resp.json()["outcome"]) == (200, "stale")
    finished(conn, job_id, "completed")
    assert job(conn, job_id)["error_message"] is None
    stack.wait_idle()


# -- the sweep ----------------------------------------------------------------------------------


def sweep(stack: LocalStack, secret: Any = CRON) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stack.env['CRON_SECRET'] if secret is CRON else secret}"} if secret else {}
    return httpx.get(app_url(stack) + "/api/cron/sweep", headers=headers, timeout=30)


def age_heartbeat(conn: psycopg.Connection, job_id: str) -> None:
    conn.execute("update import_jobs set heartbeat_at = now() - interval '1 hour' where id = %s", (job_id,))


def test_sweep_resumes_a_stuck_job_which_then_completes(database_url, tmp_path, conn, file, baseline) -> None:
    with slow_stack(database_url, tmp_path) as stack:
        api = Api(stack)
        job_id, stuck = stranded_job(api, stack, conn, file[0])

        resp = sweep(stack)
        assert resp.status_code == 200 and job_id not in resp.json()["resumed"]  # its lease runs
        age_heartbeat(conn, job_id)
        resp = sweep(stack)
        assert resp.status_code == 200
        assert resp.json()["resumed"] == [job_id]
        resumed = job(conn, job_id)
        assert (resumed["run"], resumed["sweep_attempts"]) == (stuck["run"] + 1, 1)
        finished(conn, job_id, "ready")
        assert job(conn, job_id)["sweep_attempts"] == 0  # progress: the next stall starts a new count
        api.commit(job_id)
        finished(conn, job_id, "completed")
        stack.wait_idle()
        same_as_baseline(outcome(conn, job_id, slices=True), baseline)


def test_sweep_gives_up_after_max_sweeps_with_a_clear_message(database_url, tmp_path, conn, file) -> None:
    """The endpoint is unreachable (APP_URL names a dead port): every resume is lost, and
    after IMPORT_MAX_SWEEPS of them the sweep fails the job."""
    with make_stack(database_url, tmp_path, APP_URL="http://127.0.0.1:9", IMPORT_MAX_SWEEPS="2") as stack:
        api = Api(stack)
        job_id = api.create(conn, file[0])
        api.start(job_id)
        for attempt in (1, 2):
            age_heartbeat(conn, job_id)
            resp = sweep(stack)
            assert resp.json()["resumed"] == [job_id]
            assert job(conn, job_id)["sweep_attempts"] == attempt
        age_heartbeat(conn, job_id)
        resp = sweep(stack)
        assert resp.json() == {**resp.json(), "resumed": [], "failed": [job_id]}
        row = job(conn, job_id)
        assert row["status"] == "failed"
        assert "made no progress" in row["error_message"] and "2 times" in row["error_message"]
        assert "Retry" in row["error_message"]
        assert sweep(stack).json()["failed"] == []  # failed jobs are not swept again


def test_two_concurrent_sweeps_resume_a_stuck_job_once(database_url, tmp_path, conn, file, baseline) -> None:
    with slow_stack(database_url, tmp_path) as stack:
        api = Api(stack)
        job_id, stuck = stranded_job(api, stack, conn, file[0])
        age_heartbeat(conn, job_id)
        barrier = threading.Barrier(4)
        replies: list[dict[str, Any]] = []

        def run() -> None:
            barrier.wait()
            replies.append(sweep(stack).json())

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(r["resumed"].count(job_id) for r in replies) == 1
        assert job(conn, job_id)["run"] == stuck["run"] + 1
        commit_like_baseline(api, stack, conn, job_id, baseline)


def test_sweep_leaves_a_job_whose_slice_is_running(database_url, tmp_path, conn, file) -> None:
    """A running slice holds its job's row lock, however old the heartbeat looks."""
    with slow_stack(database_url, tmp_path) as stack:
        api = Api(stack)
        job_id = api.create(conn, file[0])
        api.start(job_id)
        wait_until(lambda: job(conn, job_id)["slices_done"] >= 3, what="a few slices")
        with db.connect(stack.env["DATABASE_URL"]) as slice_conn, slice_conn.transaction():
            slice_conn.execute("select * from import_jobs where id = %s for update", (job_id,))
            slice_conn.execute(
                "update import_jobs set heartbeat_at = now() - interval '1 hour' where id = %s", (job_id,)
            )
            before = job(conn, job_id)
            resp = sweep(stack)
            assert resp.status_code == 200 and resp.json()["resumed"] == [] and resp.json()["failed"] == []
            assert job(conn, job_id) == before
            slice_conn.execute("update import_jobs set heartbeat_at = now() where id = %s", (job_id,))
        finished(conn, job_id, "ready")
        assert job(conn, job_id)["run"] == before["run"]


@pytest.mark.slow
def test_sweep_storm_during_a_slow_import_ends_like_an_undisturbed_run(
    database_url, tmp_path, conn, file, baseline
) -> None:
    """Sweeps every 50 ms from three threads while an import runs with a 1 s lease and
    deliveries taking 0.5 to 1.5 s: jobs look stuck half of the time, resumes and old-run
    messages interleave; each resume is reported once, and the end state is the same."""
    with slow_stack(
        database_url, tmp_path, IMPORT_LEASE_SECONDS="1", IMPORT_MAX_SWEEPS="1000",
        IMPORT_PARSE_SLICE_ROWS="125", IMPORT_COMMIT_SLICE_ROWS="125", LOCAL_QSTASH_FAULTS="delay_ms=500-1500",
    ) as stack:  # fmt: skip
        api = Api(stack)
        job_id = api.create(conn, file[0])
        stop = threading.Event()
        resumes: list[str] = []

        def storm() -> None:
            while not stop.is_set():
                reply = sweep(stack).json()
                resumes.extend(reply["resumed"])
                assert reply["failed"] == []
                time.sleep(0.05)

        threads = [threading.Thread(target=storm) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            api.start(job_id)
            finished(conn, job_id, "ready", timeout=120)
            api.commit(job_id)
            finished(conn, job_id, "completed", timeout=120)
        finally:
            stop.set()
            for t in threads:
                t.join()
        stack.wait_idle()
        row = job(conn, job_id)
        # Runs: 1 for the start, 1 for the commit, 1 per resume, each reported by one sweep only.
        assert row["run"] == 2 + resumes.count(job_id)
        result = outcome(conn, job_id)
        assert result["counts"] == {k: v for k, v in baseline["counts"].items() if k != "slices_done"}
        assert result["leads"] == baseline["leads"]
        assert result["staged"] == baseline["staged"]


def test_sweep_deletes_staged_rows_of_long_finished_jobs_only(stack, conn, file) -> None:
    api = Api(stack)
    old_done = api.import_file(conn, file[0], "old.csv")
    recent_done = api.import_file(conn, file[0], "recent.csv")
    old_ready = api.parse(conn, file[0], "ready.csv")
    old_cancelled = api.parse(conn, file[0], "cancelled.csv")
    assert api.cancel(old_cancelled)[0] == 200
    stack.wait_idle()
    for job_id in (old_done, old_ready, old_cancelled):
        conn.execute("update import_jobs set updated_at = now() - interval '31 days' where id = %s", (job_id,))
    leads = conn.execute("select * from leads order by id").fetchall()

    def staged(job_id: str) -> int:
        return conn.execute("select count(*) from staged_rows where job_id = %s", (job_id,)).fetchone()["count"]

    resp = sweep(stack)
    assert resp.status_code == 200
    assert resp.json()["purged_staged_rows"] == 2 * file[1].rows
    assert (staged(old_done), staged(old_cancelled)) == (0, 0)
    assert staged(recent_done) == staged(old_ready) == file[1].rows
    assert conn.execute("select * from leads order by id").fetchall() == leads
    assert job(conn, old_done)["inserted_rows"] > 0  # counts stay

    # A cancelled job whose staged rows are gone cannot resume: 409 says what to do instead.
    before = job(conn, old_cancelled)
    status, reply = api.retry(old_cancelled)
    assert status == 409 and "restart" in reply["message"], reply
    assert job(conn, old_cancelled) == before
    status, reply = api.retry(old_cancelled, restart=True)
    assert status == 202, reply
    assert finished(conn, old_cancelled, "ready")["total_rows"] == file[1].rows

"""Nothing stuck, nothing lost: retry, cancel, the failure callback and the sweep, on the
whole local stack (real Postgres, real HTTP, real QStash signatures).

Each disturbed import must end exactly like an undisturbed run of the same file
(`baseline`: its counts, leads and owners, and every staged row's outcome).
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

import psycopg
import pytest

from lib import db
from lib.local.stack import LocalStack
from lib.parse.sample import SampleStats
from tests.helpers import (
    ACTIVE,
    FAST_GIVE_UP,
    ROUND_ROBIN,
    SMALL_SLICES,
    Api,
    age_heartbeat,
    finished,
    job,
    lose_queued_messages,
    make_stack,
    outcome,
    post_signed,
    same_as_baseline,
    sample,
    slice_message,
    sweep,
    undisturbed,
    wait_stale,
    wait_until,
)

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
    api.commit(conn, job_id, **ROUND_ROBIN)
    stack.wait_idle()
    same_as_baseline(outcome(conn, job_id, slices=True), baseline)


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
        ready = api.parse(conn, file[0])["id"]
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
        done = api.commit(conn, ready, **ROUND_ROBIN)
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
        api.commit(conn, job_id, **ROUND_ROBIN)
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
                api.start_commit(job_id, **ROUND_ROBIN)
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
            api.start_commit(job_id, **ROUND_ROBIN)
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
            api.start_commit(job_id, **ROUND_ROBIN)
        finished(conn, job_id, "completed")
        stack.wait_idle()
        same_as_baseline(outcome(conn, job_id, slices=True), baseline)


def test_a_job_cancelled_while_ready_comes_back_ready_with_the_same_counts(stack, conn, file, baseline) -> None:
    api = Api(stack)
    job_id = api.parse(conn, file[0])["id"]
    ready = outcome(conn, job_id)
    status, reply = api.cancel(job_id)
    assert (status, reply["job"]["status"]) == (200, "cancelled")
    status, reply = api.retry(job_id)
    assert status == 202, reply
    finished(conn, job_id, "ready")
    again = outcome(conn, job_id)
    assert again["counts"] == ready["counts"]
    assert again == ready
    api.commit(conn, job_id, **ROUND_ROBIN)
    stack.wait_idle()
    same_as_baseline(outcome(conn, job_id), baseline)


# -- the failure callback ------------------------------------------------------------------------


def test_when_qstash_gives_up_the_job_fails_with_what_happened_and_what_to_do(
    database_url, tmp_path, conn, file, baseline
) -> None:
    """A broken slice (its state names an unknown encoding) fails on every delivery: QStash
    retries it, gives up and calls the failure callback, which fails the job.

    The job is broken after validating and before any parse slice: QStash holds its
    deliveries while the test delivers the validating message itself (signed, as QStash
    would) and breaks the job; then every parse slice finds it broken."""
    with make_stack(database_url, tmp_path, **SMALL_SLICES, **FAST_GIVE_UP) as stack:
        api = Api(stack)
        job_id = api.create(conn, file[0])
        stack.qstash.pause()
        run = api.start(job_id)["run"]
        resp = post_signed(stack, "/api/import/parse", slice_message(job_id, "parse", run, 0))
        assert (resp.status_code, resp.json()["outcome"]) == (200, "done"), resp.text
        validated = job(conn, job_id)
        assert (validated["status"], validated["slices_done"], validated["total_rows"]) == ("parsing", 1, 0)
        conn.execute("update import_jobs set encoding = 'no-such-codec' where id = %s", (job_id,))
        stack.qstash.resume()
        failed = finished(conn, job_id, "failed", timeout=60)
        message = failed["error_message"]
        assert "parse step stopped at slice 1" in message
        assert "HTTP 500" in message and "unknown encoding: no-such-codec" in message
        assert "retry" in message.lower()
        assert failed["error_code"] == "delivery_failed"  # the page words it in French
        assert api.call("GET", f"/api/jobs/{job_id}")[1]["job"]["error_code"] == "delivery_failed"
        assert stack.qstash.stats.callbacks >= 1 and stack.qstash.stats.dead >= 1
        stack.wait_idle()

        # Once repaired, a retry resumes where it stopped.
        conn.execute("update import_jobs set encoding = 'cp1252' where id = %s", (job_id,))
        status, reply = api.retry(job_id)
        assert status == 202, reply
        assert (reply["job"]["error_message"], reply["job"]["error_code"]) == (None, None)
        commit_like_baseline(api, stack, conn, job_id, baseline)


def test_failure_callback_of_an_old_run_or_a_passed_slice_changes_nothing(database_url, tmp_path, conn, file) -> None:
    with slow_stack(database_url, tmp_path) as stack:
        _old_callbacks_change_nothing(stack, conn, file[0])


def _old_callbacks_change_nothing(stack: LocalStack, conn: psycopg.Connection, data: bytes) -> None:
    api = Api(stack)
    job_id = api.parse(conn, data)["id"]
    api.start_commit(job_id, **ROUND_ROBIN)
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
        api.commit(conn, job_id, **ROUND_ROBIN)
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
        assert "Retry" in row["error_message"] and row["error_code"] == "stalled"
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
            api.commit(conn, job_id, **ROUND_ROBIN)
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
    old_done = api.import_file(conn, file[0], "old.csv", **ROUND_ROBIN)["id"]
    recent_done = api.import_file(conn, file[0], "recent.csv", **ROUND_ROBIN)["id"]
    old_ready = api.parse(conn, file[0], "ready.csv")["id"]
    old_cancelled = api.parse(conn, file[0], "cancelled.csv")["id"]
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

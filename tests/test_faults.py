"""Fault injection: whatever QStash, the network, the endpoint process or the database do,
an import ends in exactly the state of an undisturbed run.

Each test runs a whole import (parse and commit, 50-row slices, a 500-row generated file
with duplicates and invalid rows, round-robin owners) under one kind of fault, and compares
the job's counts, the organization's leads (fields and owners), every staged row's outcome
and the number of slices with those of an undisturbed run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from lib.parse.sample import SampleStats
from tests.helpers import (
    ACTIVE,
    FAST_GIVE_UP,
    ROUND_ROBIN,
    SMALL_SLICES,
    Api,
    age_heartbeat,
    finished,
    free_port,
    job,
    make_stack,
    outcome,
    sample,
    sweep,
    undisturbed,
    wait_until,
)

ROOT_DIR = str(Path(__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def file(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, SampleStats]:
    return sample(tmp_path_factory.mktemp("sample") / "leads.csv", seed=8)


@pytest.fixture(scope="module")
def baseline(server_url: str, template_url: str, file, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = undisturbed(server_url, tmp_path_factory.mktemp("baseline"), file[0])
    assert result["counts"]["total_rows"] == file[1].rows
    assert result["counts"]["duplicate_rows"] == file[1].duplicates > 0
    assert result["counts"]["invalid_rows"] == file[1].invalid > 0
    return result


def assert_like_baseline(conn: psycopg.Connection, job_id: str, baseline: dict[str, Any]) -> None:
    result = outcome(conn, job_id, slices=True)
    assert result["counts"] == baseline["counts"]  # slices_done included: no slice counted twice
    assert result["leads"] == baseline["leads"]
    assert result["staged"] == baseline["staged"]
    active = conn.execute("select count(*) from import_jobs where status = any(%s)", (list(ACTIVE),)).fetchone()
    assert active["count"] == 0


# -- QStash faults ------------------------------------------------------------------------------

FAULTS = {
    "duplicate": "duplicate=1.0",  # every delivery twice, concurrently
    "lose_response": "lose_response=0.5",  # the endpoint ran, QStash saw no answer
    "error": "error=0.5",  # a 5xx before the endpoint is reached
    "delay": "delay_ms=0-200",  # deliveries late and out of order
    "publish_error": "publish_error=0.3",  # publishing the continuation fails after the commit
    "combined": "duplicate=0.3,lose_response=0.3,error=0.3,delay_ms=0-200,publish_error=0.2,seed=11",
}


def fault_evidence(name: str, stats: Any) -> bool:
    """The fault really happened (so the test could have failed)."""
    return {
        "duplicate": stats.deliveries >= 2 * stats.delivered,
        "lose_response": stats.injected > 0,
        "error": stats.injected > 0,
        "delay": True,  # nothing to count; the runs of the other faults show reordering too
        "publish_error": stats.publish_errors > 0 and stats.failures > 0,
        "combined": stats.injected > 0 and stats.publish_errors > 0,
    }[name]


@pytest.mark.parametrize("name", list(FAULTS))
def test_import_under_qstash_faults_ends_like_an_undisturbed_run(
    database_url, tmp_path, conn, file, baseline, name: str
) -> None:
    with make_stack(database_url, tmp_path, **SMALL_SLICES, LOCAL_QSTASH_FAULTS=FAULTS[name]) as stack:
        job_id = Api(stack).import_file(conn, file[0], **ROUND_ROBIN)["id"]
        stack.wait_idle()
        assert_like_baseline(conn, job_id, baseline)
        stats = stack.qstash.stats
        assert stats.dead == 0 and stats.callbacks == 0
        assert fault_evidence(name, stats), stats


def test_a_failed_publish_when_starting_is_a_503_that_changes_nothing(database_url, tmp_path, conn, file) -> None:
    with make_stack(database_url, tmp_path, LOCAL_QSTASH_FAULTS="publish_error=1.0") as stack:
        api = Api(stack)
        job_id = api.create(conn, file[0])
        before = job(conn, job_id)
        for path in ("start", "retry"):
            status, reply = api.call("POST", f"/api/jobs/{job_id}/{path}")
            assert status == 503, reply
            assert reply["error"] == "QueueUnavailable" and "try again" in reply["message"].lower()
        assert job(conn, job_id) == before


# -- the endpoint process killed with SIGKILL ------------------------------------------------------


def named(url: str, application_name: str) -> str:
    """The database URL, with connections that pg_stat_activity shows under this name."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    return psycopg.conninfo.make_conninfo(**{**info, "application_name": application_name})


class Endpoint:
    """The app alone (`python -m lib serve` on a fixed port, the test's QStash and database)."""

    def __init__(self, env: dict[str, str], port: int, log: Path):
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lib", "serve", "--port", str(self.port)],
                env=self.env, cwd=ROOT_DIR, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._up, timeout=30, what=f"the endpoint on port {self.port}; log: {self.log}")

    def _up(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@contextmanager
def endpoint_process(stack_env: dict[str, str], database_url: str, port: int, log: Path) -> Iterator[Endpoint]:
    env = {
        **stack_env,
        "DATABASE_URL": named(database_url, "li-endpoint"),
        "PYTHONPATH": ROOT_DIR,
        "LOG_LEVEL": "INFO",
    }
    endpoint = Endpoint(env, port, log)
    endpoint.start()
    try:
        yield endpoint
    finally:
        if endpoint.proc is not None and endpoint.proc.poll() is None:
            endpoint.kill()


def in_slice_transaction(conn: psycopg.Connection) -> bool:
    return conn.execute(
        "select exists (select 1 from pg_stat_activity where application_name = 'li-endpoint'"
        " and xact_start is not null) as busy"
    ).fetchone()["busy"]


def kill_mid_slice(conn: psycopg.Connection, endpoint: Endpoint) -> None:
    """SIGKILL the endpoint while one of its slices is inside its transaction."""
    deadline = time.monotonic() + 30
    while not in_slice_transaction(conn):
        assert time.monotonic() < deadline, "no slice seen running"
    endpoint.kill()


def test_endpoint_killed_mid_slice_and_restarted(database_url, tmp_path, conn, file, baseline) -> None:
    """kill -9 of the process running a slice, once in each phase: its transaction is rolled
    back, QStash redelivers to the restarted process, and the import ends as if nothing happened."""
    port = free_port()
    with (
        make_stack(database_url, tmp_path, **SMALL_SLICES, APP_URL=f"http://127.0.0.1:{port}") as stack,
        endpoint_process(stack.env, database_url, port, tmp_path / "endpoint.log") as endpoint,
    ):
        api = Api(stack)  # the frontend's calls go to the in-process app; QStash's to the endpoint
        job_id = api.create(conn, file[0])
        api.start(job_id)
        kill_mid_slice(conn, endpoint)
        endpoint.start()
        finished(conn, job_id, "ready")
        api.start_commit(job_id, **ROUND_ROBIN)
        kill_mid_slice(conn, endpoint)
        endpoint.start()
        finished(conn, job_id, "completed")
        stack.wait_idle()
        assert_like_baseline(conn, job_id, baseline)
        assert stack.qstash.stats.failures >= 2  # deliveries refused while the endpoint was down
        assert stack.qstash.stats.dead == 0


def test_endpoint_down_longer_than_qstash_retries_is_resumed_by_the_sweep(
    database_url, tmp_path, conn, file, baseline
) -> None:
    """The endpoint stays down until QStash gives up on the message and on its failure
    callback (QStash retrying fast here): the job is stuck in parsing. The sweep resumes it
    once it is back."""
    port = free_port()
    with (
        make_stack(database_url, tmp_path, **SMALL_SLICES, **FAST_GIVE_UP, APP_URL=f"http://127.0.0.1:{port}") as stack,
        endpoint_process(stack.env, database_url, port, tmp_path / "endpoint.log") as endpoint,
    ):
        api = Api(stack)
        job_id = api.create(conn, file[0])
        api.start(job_id)
        kill_mid_slice(conn, endpoint)
        stack.wait_idle(timeout=60)  # retries, dead letter, failure callback retries, dead letter
        assert stack.qstash.stats.dead == 2 and stack.qstash.stats.callbacks == 1
        stuck = job(conn, job_id)
        assert stuck["status"] in ACTIVE and stuck["error_message"] is None
        endpoint.start()
        age_heartbeat(conn, job_id)
        assert sweep(stack).json()["resumed"] == [job_id]
        finished(conn, job_id, "ready")
        api.commit(conn, job_id, **ROUND_ROBIN)
        stack.wait_idle()
        assert_like_baseline(conn, job_id, baseline)


# -- the database connection dropped ---------------------------------------------------------------


class ConnectionKiller(threading.Thread):
    """Terminates the backend of a slice inside its transaction, once per slice, `limit`
    times at most (each drop costs the message one of its QStash retries)."""

    def __init__(self, url: str, job_id: str, limit: int):
        super().__init__(daemon=True)
        self.url, self.job_id, self.limit = url, job_id, limit
        self.killed: list[tuple[str, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as c:
            while not self.stop.is_set() and len(self.killed) < self.limit:
                row = c.execute(
                    """select a.pid, j.phase, j.slice_no
                       from pg_stat_activity a, import_jobs j
                       where a.application_name = 'li-slices' and a.xact_start is not null and j.id = %s""",
                    (self.job_id,),
                ).fetchone()
                if row is None or (row[1], row[2]) in self.killed:
                    continue
                if c.execute("select pg_terminate_backend(%s)", (row[0],)).fetchone()[0]:
                    self.killed.append((row[1], row[2]))


def test_database_connection_dropped_mid_slice(database_url, tmp_path, conn, file, baseline) -> None:
    with make_stack(named(database_url, "li-slices"), tmp_path, **SMALL_SLICES) as stack:
        api = Api(stack)
        job_id = api.create(conn, file[0])
        kills = []
        # The killer runs only while slices do: the frontend's own calls are left alone.
        for start, end in ((api.start, "ready"), (lambda j: api.start_commit(j, **ROUND_ROBIN), "completed")):
            start(job_id)
            killer = ConnectionKiller(database_url, job_id, limit=4)
            killer.start()
            finished(conn, job_id, end)
            killer.stop.set()
            killer.join()
            kills += killer.killed
        stack.wait_idle()
        assert_like_baseline(conn, job_id, baseline)
        assert {p for p, _ in kills} == {"parse", "commit"}, kills
        # A drop inside the transaction is a 503 that QStash retries; one just after the commit
        # (the request does not use its connection again) is harmless.
        assert 1 <= stack.qstash.stats.failures <= len(kills)
        assert stack.qstash.stats.dead == 0

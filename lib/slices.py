"""The slice protocol, shared by every phase (lib/phases.py).

A message names (job, phase, run, slice). Handling it:

1. lock the job row, waiting at most `job_lock_wait`: a delivery that finds it locked (a
   concurrent copy of the message runs the slice) answers "busy" at once and re-publishes
   itself a little later, so it neither queues behind the slice nor spends QStash's retries;
2. a message of another run or phase, or for a job no longer active, changes nothing;
3. a message for a slice already done changes nothing and re-publishes the
   continuation (same deduplication id), so a lost publish cannot strand a job;
4. otherwise the phase runs one slice under a time budget (counted from the moment the
   lock is held) and a row cap, and its rows, counters, cursor and heartbeat are written in
   the same transaction, whose every statement runs under `statement_timeout`;
5. after the commit, the next message is published.

A phase differs from another only in its entry of the registry (lib/phases.py): what one
slice does, the status it runs in, the cursor it advances.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from lib import db, jobs
from lib.config import Settings
from lib.db import Connection, Row, queries
from lib.errors import JobFailed
from lib.phases import Phase
from lib.queue import Message
from lib.slice_types import SliceContext, SliceResult, SliceServices
from lib.status import Status

log = logging.getLogger(__name__)

COUNTERS = (
    "total_rows", "valid_rows", "invalid_rows", "duplicate_rows",
    "inserted_rows", "updated_rows", "skipped_rows", "reverted_rows", "restored_rows",
)  # fmt: skip


@dataclass(frozen=True)
class Reply:
    status: int
    outcome: str
    detail: str = ""
    work_seconds: float = 0.0  # time spent in the phase's own work (rows), for overhead figures


def handle(
    conn: Connection,
    msg: Message,
    settings: Settings,
    services: SliceServices,
    phases: Mapping[str, Phase],
    publish: Callable[[Message], None],
) -> Reply:
    """Run the slice `msg` names, at most once, and publish its continuation."""
    work = 0.0
    limits = {"statement_seconds": settings.statement_timeout}
    try:
        with conn.transaction():
            db.limit_waits(conn, **limits, lock_seconds=settings.job_lock_wait)
            job = conn.execute(queries()["lock_job"], {"id": msg.job}).fetchone()
            db.limit_waits(conn, **limits, lock_seconds=settings.org_lock_wait)
            verdict = _check(job, msg)
            if verdict == "run":
                assert job is not None
                started = time.monotonic()
                phase = phases[msg.phase]
                ctx = SliceContext(conn, job, settings, services, started + settings.slice_seconds)
                result = phase.run_slice(ctx)
                work = time.monotonic() - started
                job = _finish(conn, msg, phase, result)
    except psycopg.errors.LockNotAvailable:
        # The job (or, in a commit or revert, the organization's leads) is busy with another
        # delivery. Come back later rather than wait: a 2xx, so QStash's retries are kept
        # for real failures, and a re-publish, so the slice is not lost if the holder fails.
        publish(msg.later(settings.busy_delay))
        log.info("slice.busy job=%s phase=%s run=%s slice=%s", msg.job, msg.phase, msg.run, msg.slice)
        return Reply(202, "busy")
    except JobFailed as exc:
        fail_job(conn, msg.job, exc.message, code=exc.code, run=msg.run, slice_no=msg.slice)
        log.warning("slice.failed job=%s phase=%s slice=%s reason=%s", msg.job, msg.phase, msg.slice, exc.message)
        return Reply(200, "failed", exc.message)

    if verdict == "stale":
        return Reply(200, "stale")
    assert job is not None
    if verdict == "done":
        # Already done by an earlier delivery: make sure its continuation exists.
        if job["slice_no"] == msg.slice + 1 and job["status"] in jobs.ACTIVE:
            publish(msg.next())
        return Reply(200, "duplicate")
    if job["status"] in jobs.ACTIVE:
        publish(msg.next())
    return Reply(200, "done", work_seconds=work)


def _check(job: Row | None, msg: Message) -> str:
    if job is None or job["run"] != msg.run or job["phase"] != msg.phase:
        return "stale"
    if Status(job["status"]) not in jobs.ACTIVE:
        return "stale"
    if msg.slice < job["slice_no"]:
        return "done"
    if msg.slice > job["slice_no"]:
        return "stale"
    return "run"


def _finish(conn: Connection, msg: Message, phase: Phase, r: SliceResult) -> Row:
    params: dict[str, object] = {c: r.counts.get(c, 0) for c in COUNTERS}
    params.update(
        cursor=r.cursor,
        error_counts=Jsonb(r.error_counts),
        warning_counts=Jsonb(r.warning_counts),
        kept_counts=Jsonb(r.kept_counts),
        estimated_total_rows=r.estimated_total_rows,
        id=msg.job,
        run=msg.run,
        slice_no=msg.slice,
    )
    statement = sql.SQL(queries()["finish_slice"]).format(cursor=sql.Identifier(phase.cursor))
    job = conn.execute(statement, params).fetchone()
    assert job is not None, "the locked job must match its run and slice"
    if job["sweep_attempts"]:
        # Progress: the sweep's bound counts resumes in a row that brought none.
        job = conn.execute(queries()["reset_sweep_attempts"], {"id": msg.job}).fetchone()
        assert job is not None, "the job is locked"
    action = phase.done_action if r.done else r.action
    if action:
        job = jobs.transition(conn, msg.job, action, **r.changes)
    return job


def fail_job(
    conn: Connection,
    job_id: str,
    message: str,
    *,
    code: str,
    run: int | None = None,
    slice_no: int | None = None,
) -> bool:
    """Mark an active job failed with a message a person can act on, in English, and its
    code, which a page words in its own language.

    With `run`, only that run's failure counts: a newer run (a retry) is left alone. With
    `slice_no`, only while that slice is not done: a job that got past it is alive, whatever
    happened to an old copy of that message (its continuation was published with the slice).
    """
    with conn.transaction():
        job = conn.execute(queries()["lock_job"], {"id": job_id}).fetchone()
        if job is None or (run is not None and job["run"] != run):
            return False
        if slice_no is not None and job["slice_no"] > slice_no:
            return False
        if Status(job["status"]) not in jobs.TRANSITIONS["fail"][0]:
            return False
        jobs.transition(conn, job_id, "fail", error_message=message, error_code=code, finished_at=datetime.now(UTC))
        return True

"""Job operations that start or resume work: the verbs the frontend, the CLI and the sweep use.

A (re)start publishes its first message inside the transaction that bumps the run, while
the job row is locked: the message cannot be handled before the commit, and if the
commit fails the message belongs to a run that never existed, so it is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from lib import jobs, remembered, row_fixes
from lib.commit_settings import parse_commit_settings
from lib.config import Settings
from lib.db import Connection, Row, queries
from lib.errors import BadRequest, IllegalTransition, JobNotFound, LeadImportError, QueueUnavailable
from lib.queue import Message
from lib.revert_slice import purged_refusal, refusal
from lib.slices import fail_job
from lib.status import Status

log = logging.getLogger(__name__)

Publish = Callable[[Message], None]


def create_job(
    conn: Connection,
    *,
    org: str,
    user: str,
    file_name: str,
    storage_path: str,
    settings: dict[str, Any],
    lease_seconds: int,
) -> Row:
    job = conn.execute(
        queries()["insert_job"],
        {
            "org": org,
            "user": user,
            "file_name": file_name,
            "storage_path": storage_path,
            "settings": Jsonb(settings),
            "lease_seconds": lease_seconds,
        },
    ).fetchone()
    assert job is not None, "insert ... returning gives the row"
    return job


def start_job(conn: Connection, job_id: str, publish: Publish) -> Row:
    """pending → validating, and the first message of the parse phase."""
    with conn.transaction():
        job = _lock(conn, job_id)
        if job["status"] != Status.PENDING:
            raise IllegalTransition(f"only a pending job can be started; this one is {job['status']}")
        job = jobs.transition(conn, job_id, "start", **_new_run(job))
        _publish(publish, Message(str(job["id"]), job["phase"], job["run"], job["slice_no"]))
    log.info("job.run_started job=%s run=%s status=%s slice=%s", job_id, job["run"], job["status"], job["slice_no"])
    return job


def retry_job(
    conn: Connection,
    job_id: str,
    publish: Publish,
    *,
    force: bool = False,
    restart: bool = False,
    by_sweep: bool = False,
    allowed: frozenset[Status] = jobs.RETRYABLE,
) -> Row:
    """Resume the job's interrupted phase at its cursor under a new run.

    From an active status only once its heartbeat is older than its lease (a stuck job),
    unless forced. `restart` starts over from the validating step instead.
    """
    with conn.transaction():
        job = _lock(conn, job_id)
        status = Status(job["status"])
        if status not in allowed:
            raise IllegalTransition(f"a {status} job cannot be retried")
        if status in jobs.ACTIVE and not force and not _lease_expired(job):
            raise IllegalTransition(
                f"the job is {status} and alive (last progress {job['idle_seconds']:.0f} s ago); "
                "retry it once it is stuck, or force the retry"
            )
        if restart:
            if job["phase"] == "revert" or job["commit_cursor"]:
                raise IllegalTransition(
                    f"leads were already written; retry without restart to resume the {job['phase']} instead"
                )
            conn.execute(queries()["delete_staged_rows"], {"id": job_id})
            conn.execute(queries()["reset_parse"], {"id": job_id})
            job = _lock(conn, job_id)
        elif reason := _cannot_resume(conn, job):
            raise IllegalTransition(reason)
        job = jobs.resume(
            conn, job, within=allowed, **_new_run(job),
            finished_at=None, sweep_attempts=job["sweep_attempts"] + 1 if by_sweep else 0,
        )  # fmt: skip
        _publish(publish, Message(str(job["id"]), job["phase"], job["run"], job["slice_no"]))
    log.info("job.run_started job=%s run=%s status=%s slice=%s", job_id, job["run"], job["status"], job["slice_no"])
    return job


def cancel_job(conn: Connection, job_id: str) -> Row:
    """The job stops at the next slice boundary: a running slice holds the row lock, so the
    cancel waits for its commit, and later messages find the job inactive."""
    with conn.transaction():
        return jobs.transition(conn, job_id, "cancel", finished_at=datetime.now(UTC))


def sweep(conn: Connection, publish: Publish, *, max_sweeps: int, retention_days: int) -> dict[str, Any]:
    """Resume jobs whose heartbeat is older than their lease; fail them after `max_sweeps`.

    Safe when two sweeps and live slices overlap. The select of stalled jobs skips the jobs
    a slice holds at that moment (SKIP LOCKED), but its row locks end with its transaction,
    before any job is touched: what protects a job is that retry_job, and the failing
    branch below, re-check its lease under the job's row lock, which a running slice holds
    for its whole transaction. A job that moved on in the meantime is left alone.
    """
    resumed, failed = [], []
    with conn.transaction():
        stalled = conn.execute(queries()["stalled_jobs"], {"active": [str(s) for s in jobs.ACTIVE]}).fetchall()
    for job in stalled:
        job_id = str(job["id"])
        try:
            if job["sweep_attempts"] < max_sweeps:
                retry_job(conn, job_id, publish, by_sweep=True, allowed=jobs.ACTIVE)
                resumed.append(job_id)
            else:
                message = (
                    f"The import made no progress for {job['lease_seconds']} s, "
                    f"{job['sweep_attempts']} times in a row, and was stopped. "
                    "Retry it to resume where it stopped; if it stops again, contact support with this job id."
                )
                with conn.transaction():
                    # Re-checked under the lock: a slice may have run since the select.
                    locked = conn.execute(queries()["lock_job"], {"id": job_id}).fetchone()
                    stale = locked is not None and _lease_expired(locked)
                    if stale and fail_job(conn, job_id, message, code="stalled", run=job["run"]):
                        failed.append(job_id)
        except IllegalTransition:
            continue  # it moved on in the meantime: a live slice beat us to it
        except LeadImportError as exc:  # gone, or QStash unavailable: the next sweep tries again
            log.warning("sweep.skipped job=%s error=%s", job_id, exc.message)
    purged = conn.execute(queries()["purge_staged_rows"], {"days": retention_days}).rowcount
    log.info("sweep.done resumed=%s failed=%s purged=%s", len(resumed), len(failed), purged)
    return {"resumed": resumed, "failed": failed, "purged_staged_rows": purged}


def _cannot_resume(conn: Connection, job: Row) -> str | None:
    """Why the job cannot resume at its cursor: its staged rows were purged (see sweep)."""
    if job["status"] not in (Status.FAILED, Status.CANCELLED) or job["phase"] == "revert" or not job["total_rows"]:
        return None
    staged = conn.execute(queries()["staged_rows_exist"], {"id": job["id"]}).fetchone()
    if staged and staged["present"]:
        return None
    if job["commit_cursor"]:
        return (
            "this import stopped long ago and the rows it had not imported yet were deleted; "
            "import the file again as a new job (the leads already imported will be found as duplicates)"
        )
    return "this import stopped long ago and the rows it had read were deleted; retry with restart to read it again"


def _publish(publish: Publish, msg: Message) -> None:
    """Inside the transaction that starts the run: if QStash refuses, nothing changes."""
    try:
        publish(msg)
    except LeadImportError:
        raise
    except Exception as exc:  # the SDK's errors, HTTP errors, timeouts
        log.warning("job.publish_failed job=%s error=%r", msg.job, exc)
        raise QueueUnavailable() from exc


def _lease_expired(job: Row) -> bool:
    return bool(job["idle_seconds"] > job["lease_seconds"])


def _lock(conn: Connection, job_id: str) -> Row:
    """The job row, locked until the end of the transaction (with its idle_seconds)."""
    job = conn.execute(queries()["lock_job"], {"id": job_id}).fetchone()
    if job is None:
        raise JobNotFound()
    return job


def _new_run(job: Row) -> dict[str, Any]:
    """The changes that start a new run of the job (with its status change): messages of
    older runs become stale, and the lease counts from now, by the database's clock."""
    return {"run": job["run"] + 1, "heartbeat_at": jobs.NOW, "error_message": None, "error_code": None}


def begin_phase(conn: Connection, job_id: str, action: str, phase: str, publish: Publish, **changes: Any) -> Row:
    """Enter a phase (commit, revert, a re-parse) at slice `changes.get('slice_no', 0)` under a new run."""
    with conn.transaction():
        job = _lock(conn, job_id)
        changes = {"slice_no": 0, **changes}
        job = jobs.transition(conn, job_id, action, phase=phase, sweep_attempts=0, **_new_run(job), **changes)
        _publish(publish, Message(str(job["id"]), phase, job["run"], job["slice_no"]))
    log.info("job.phase_started job=%s phase=%s run=%s", job_id, phase, job["run"])
    return job


def commit_job(conn: Connection, job_id: str, body: dict[str, Any], publish: Publish) -> Row:
    """ready → committing with checked settings (see lib.commit_settings). In the same
    transaction, the job's mapping and settings are remembered for its organization
    (lib.remembered): a commit that does not start remembers nothing."""
    job = conn.execute(queries()["get_job"], {"id": job_id}).fetchone()
    if job is None:
        raise JobNotFound()
    if job["status"] != Status.READY:
        raise IllegalTransition(f"only a ready job can be committed; this one is {job['status']}")
    chosen = parse_commit_settings(conn, job, body)
    settings = {**job["settings"], "commit": chosen.to_json()}
    with conn.transaction():
        job = begin_phase(
            conn, job_id, "commit", "commit", publish,
            settings=settings, commit_cursor=0, commit_started_at=datetime.now(UTC),
        )  # fmt: skip
        remembered.remember(conn, job, chosen)
    return job


def revert_job(
    conn: Connection, job_id: str, publish: Publish, *, retention_days: int = Settings.staged_retention_days
) -> Row:
    """completed → reverting: in slices, the leads it inserted go and the leads it updated get
    their values back, unless changed since or matched later (lib/revert_slice.py). Refused
    once the sweep deleted the job's staged rows and outcomes (after `retention_days`)."""
    job = conn.execute(queries()["get_job"], {"id": job_id}).fetchone()
    if job is None:
        raise JobNotFound()
    if reason := refusal(job):
        raise IllegalTransition(f"cannot revert: {reason}")
    staged = conn.execute(queries()["staged_outcomes_exist"], {"id": job_id}).fetchone()
    if job["inserted_rows"] + job["updated_rows"] and not (staged and staged["present"]):
        raise IllegalTransition(f"cannot revert: {purged_refusal(retention_days)}")
    return begin_phase(
        conn, job_id, "revert", "revert", publish,
        revert_cursor=0, reverted_rows=0, restored_rows=0, kept_counts={},
    )  # fmt: skip


def remap_job(
    conn: Connection, job_id: str, mapping: list[str | None], publish: Publish, *, source: str = "edited"
) -> Row:
    """ready → parsing with a new mapping (already checked): the staged rows and parse counts
    are dropped, and the parse phase re-enters at slice 1 (the file was validated) under a new run.
    `source`: the job's new mapping_source, "edited" (the user's) or "automatic" (back to it)."""
    with conn.transaction():
        job = _lock(conn, job_id)
        if job["status"] != Status.READY:
            raise IllegalTransition(f"the mapping can be changed only while the job is ready; it is {job['status']}")
        conn.execute(queries()["delete_staged_rows"], {"id": job_id})
        conn.execute(queries()["reset_parse"], {"id": job_id})
        # The row count does not depend on the mapping: the last parse's total is the estimate.
        return begin_phase(
            conn, job_id, "remap", "parse", publish,
            slice_no=1, parse_cursor=job["data_offset"], mapping=mapping, estimated_total_rows=job["total_rows"],
            mapping_source=source,
        )  # fmt: skip


def change_sheet(conn: Connection, job_id: str, sheet: str, publish: Publish) -> Row:
    """ready → validating with another sheet of the job's workbook: the staged rows (and the
    row fixes made in review with them) are dropped, and the sheet is converted and the
    parse runs again, from the validating step's converting slice, under a new run."""
    with conn.transaction():
        job = _lock(conn, job_id)
        workbook = job["workbook"]
        if workbook is None:
            raise IllegalTransition("this import is a CSV file, which has no sheets")
        if job["status"] != Status.READY:
            raise IllegalTransition(f"the sheet can be changed only while the job is ready; it is {job['status']}")
        names = [s["name"] for s in workbook.get("sheets", [])]
        if sheet not in names:
            raise BadRequest(f"the workbook has no sheet named {sheet!r}; its sheets: {', '.join(names)}")
        conn.execute(queries()["delete_staged_rows"], {"id": job_id})
        row_fixes.drop_fixes(conn, job_id)  # their rows are gone
        conn.execute(queries()["reset_parse"], {"id": job_id})
        rows = next(s["rows"] for s in workbook["sheets"] if s["name"] == sheet)
        return begin_phase(
            conn, job_id, "change_sheet", "parse", publish,
            slice_no=1, data_offset=None, estimated_total_rows=rows,
            settings={**job["settings"], "sheet": sheet}, workbook={**workbook, "state": "reading"},
        )  # fmt: skip

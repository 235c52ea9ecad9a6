"""The import job's state machine, and the only code that changes a job's status.

Each status change is one guarded UPDATE (`... WHERE status = ANY(allowed)`, the `transition`
statement, the only one that writes the status); zero rows means an illegal or repeated
transition, raised as IllegalTransition and changing nothing. Where each phase's slices run
comes from the phase registry (lib/phases.py).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from lib.db import Connection, Row, queries
from lib.errors import IllegalTransition, JobNotFound
from lib.phases import PHASES
from lib.status import Status

S = Status
# Statuses in which slices run: a job here must have a fresh heartbeat.
ACTIVE = frozenset(s for phase in PHASES.values() for s in phase.statuses)
# Retry may pick up from these; from ACTIVE only once the lease expired, or forced.
RETRYABLE = frozenset({S.PENDING, S.FAILED, S.CANCELLED}) | ACTIVE

# action -> (statuses it is allowed from, status it leads to). Besides these, "resume"
# (`resume`) leads back to the status the job's phase runs in at its slice: the one target
# the machine computes from the job.
TRANSITIONS: dict[str, tuple[frozenset[Status], Status]] = {
    "start": (frozenset({S.PENDING}), S.VALIDATING),
    "validated": (frozenset({S.VALIDATING}), S.PARSING),
    "remap": (frozenset({S.READY}), S.PARSING),
    # A workbook: its validating step records the original and goes on to convert it (a
    # slice of its own, so the job shows it is reading the workbook); another sheet chosen
    # while ready is converted and validated again.
    "read_workbook": (frozenset({S.VALIDATING}), S.VALIDATING),
    "change_sheet": (frozenset({S.READY}), S.VALIDATING),
    "commit": (frozenset({S.READY}), S.COMMITTING),
    "revert": (frozenset({S.COMPLETED}), S.REVERTING),
    "fail": (frozenset({S.PENDING}) | ACTIVE, S.FAILED),
    "cancel": (frozenset({S.PENDING, S.READY}) | ACTIVE, S.CANCELLED),
    # Each phase's last slice: from the status its slices run in to the one it ends in.
    **{p.done_action: (frozenset({p.status}), p.finished) for p in PHASES.values()},
}

# A change's value that is the database's clock, not this machine's: heartbeats are compared
# with now() by the database (lock_job's idle_seconds, stalled_jobs).
NOW = sql.SQL("now()")


def resume_status(job: Row) -> Status:
    """The status a retry resumes in: the job's phase, at its slice (parse's slice 0 = validating)."""
    phase = PHASES[job["phase"]]
    return phase.status_at(job["slice_no"], opened=phase.opened_by is None or job[phase.opened_by] is not None)


def transition(conn: Connection, job_id: Any, action: str, **changes: Any) -> Row:
    """Apply `action` to the job, with optional column changes in the same statement.

    Raises IllegalTransition when the job is not in a status the action allows.
    """
    allowed, to = TRANSITIONS[action]
    return _set_status(conn, job_id, allowed, to, **changes)


def resume(conn: Connection, job: Row, *, within: frozenset[Status] = RETRYABLE, **changes: Any) -> Row:
    """Apply "resume" to the job (a row read under its lock): back to resume_status(job),
    from RETRYABLE or the part of it given as `within` (a start resumes only pending jobs,
    the sweep only active ones), with optional column changes in the same statement."""
    if not within <= RETRYABLE:
        raise ValueError(f"resume is allowed only from {', '.join(sorted(RETRYABLE))}")
    return _set_status(conn, job["id"], within, resume_status(job), **changes)


def _set_status(conn: Connection, job_id: Any, allowed: frozenset[Status], to: Status, **changes: Any) -> Row:
    sets = {**changes, "status": to}
    # Column names come from code, never from input; values are parameters (or NOW).
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(col), v if v is NOW else sql.Placeholder(col))
        for col, v in sets.items()
    )
    statement = sql.SQL(queries()["transition"]).format(assignments=assignments)
    params = {col: Jsonb(v) if isinstance(v, (dict, list)) else v for col, v in sets.items() if v is not NOW}
    row = conn.execute(statement, {**params, "id": job_id, "allowed": [str(s) for s in allowed]}).fetchone()
    if row is None:
        current = conn.execute(queries()["get_job"], {"id": job_id}).fetchone()
        if current is None:
            raise JobNotFound()
        raise IllegalTransition(
            f"cannot go from {current['status']} to {to} (allowed from: {', '.join(sorted(allowed))})"
        )
    return row

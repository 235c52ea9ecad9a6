"""The import job's state machine, and the only code that changes a job's status.

Each status change is one guarded UPDATE (`... WHERE status = ANY(allowed)`); zero rows
means an illegal or repeated transition, raised as IllegalTransition and changing nothing.
"""

from __future__ import annotations

import enum
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from lib.db import queries
from lib.errors import IllegalTransition, JobNotFound


class Status(enum.StrEnum):
    PENDING = "pending"
    VALIDATING = "validating"
    PARSING = "parsing"
    READY = "ready"
    COMMITTING = "committing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REVERTING = "reverting"
    REVERTED = "reverted"


S = Status
# Statuses in which slices run: a job here must have a fresh heartbeat.
ACTIVE = frozenset({S.VALIDATING, S.PARSING, S.COMMITTING, S.REVERTING})
# Retry may pick up from these; from ACTIVE only once the lease expired, or forced.
RETRYABLE = frozenset({S.PENDING, S.FAILED, S.CANCELLED}) | ACTIVE

# action -> (statuses it is allowed from, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[Status], Status]] = {
    "start": (frozenset({S.PENDING}), S.VALIDATING),
    "validated": (frozenset({S.VALIDATING}), S.PARSING),
    "parsed": (frozenset({S.PARSING}), S.READY),
    "remap": (frozenset({S.READY}), S.PARSING),
    "commit": (frozenset({S.READY}), S.COMMITTING),
    "committed": (frozenset({S.COMMITTING}), S.COMPLETED),
    "revert": (frozenset({S.COMPLETED}), S.REVERTING),
    "reverted": (frozenset({S.REVERTING}), S.REVERTED),
    "fail": (frozenset({S.PENDING}) | ACTIVE, S.FAILED),
    "cancel": (frozenset({S.PENDING, S.READY}) | ACTIVE, S.CANCELLED),
}

# Each phase's slices run in one status (parse also has its first slice, the validating step).
PHASE_STATUS = {"parse": S.PARSING, "commit": S.COMMITTING, "revert": S.REVERTING}


def resume_status(job: dict[str, Any]) -> Status:
    """The status a retry resumes in: the job's phase, at its slice (slice 0 = validating)."""
    if job["phase"] == "parse" and job["slice_no"] == 0:
        return S.VALIDATING
    return PHASE_STATUS[job["phase"]]


def transition(conn: psycopg.Connection, job_id: Any, action: str, **changes: Any) -> dict[str, Any]:
    """Apply `action` to the job, with optional column changes in the same statement.

    Raises IllegalTransition when the job is not in a status the action allows.
    """
    allowed, to = TRANSITIONS[action]
    return set_status(conn, job_id, allowed, to, **changes)


def set_status(
    conn: psycopg.Connection, job_id: Any, allowed: frozenset[Status], to: Status, **changes: Any
) -> dict[str, Any]:
    sets = {**changes, "status": to}
    # Column names come from code, never from input; values are parameters.
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(col), sql.Placeholder(col)) for col in sets
    )
    statement = sql.SQL(queries()["transition"]).format(assignments=assignments)
    params = {col: Jsonb(v) if isinstance(v, (dict, list)) else v for col, v in sets.items()}
    row = conn.execute(statement, {**params, "id": job_id, "allowed": [str(s) for s in allowed]}).fetchone()
    if row is None:
        current = conn.execute(queries()["get_job"], {"id": job_id}).fetchone()
        if current is None:
            raise JobNotFound()
        raise IllegalTransition(
            f"cannot go from {current['status']} to {to} (allowed from: {', '.join(sorted(allowed))})"
        )
    return row

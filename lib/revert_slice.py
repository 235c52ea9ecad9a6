"""Undo of a completed import, in slices: the leads it inserted that nobody changed since go
(see revert_leads); leads it updated, and inserted leads changed since, stay.

A slice holds the organization's lead lock, like commit slices: a concurrent import cannot
match (and so skip or update) a lead while it is being deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lib.db import queries
from lib.slice_types import SliceContext, SliceResult


def run_slice(ctx: SliceContext) -> SliceResult:
    job, limit = ctx.job, ctx.settings.commit_slice_rows
    ctx.conn.execute(queries()["lock_org_leads"], {"org": job["organization_id"]})
    deleted = ctx.conn.execute(queries()["revert_leads"], {"job": job["id"], "limit": limit}).rowcount
    done = deleted < limit
    return SliceResult(
        counts={"reverted_rows": deleted},
        cursor=job["revert_cursor"] + deleted,
        done=done,
        changes={"finished_at": datetime.now(UTC)} if done else {},
    )


def refusal(job: dict[str, Any]) -> str | None:
    """Why this job cannot be reverted now, in words a person can act on; None if it can."""
    status = job["status"]
    if status == "completed":
        return None
    if status == "reverted":
        return "this import was already reverted"
    if status == "reverting":
        return "this import is being reverted already"
    if status == "committing":
        return "this import is still committing; revert it once it has completed"
    if job["phase"] == "commit":
        return (
            f"the commit of this import stopped before the end ({status}); "
            "retry it so that it completes, then revert it"
        )
    return f"this import has not written any leads ({status}): there is nothing to revert"

"""Undo of a completed import, in slices: its inserted leads that nobody changed since go;
leads it updated, and inserted leads changed since, stay."""

from __future__ import annotations

from datetime import UTC, datetime

from lib.db import queries
from lib.slices import SliceContext, SliceResult


def run_slice(ctx: SliceContext) -> SliceResult:
    job, limit = ctx.job, ctx.settings.commit_slice_rows
    deleted = ctx.conn.execute(queries()["revert_leads"], {"job": job["id"], "limit": limit}).rowcount
    done = deleted < limit
    return SliceResult(
        counts={"reverted_rows": deleted},
        cursors={"revert": job["revert_cursor"] + deleted},
        done=done,
        action="reverted" if done else None,
        changes={"finished_at": datetime.now(UTC)} if done else {},
    )

"""Undo of a completed import, in slices over its rows (docs/ARCHITECTURE.md "Undo").

Each row that inserted or updated a lead is judged once, in row order:
- kept, `matched_later`: another import that is not reverted matched the lead after this
  one wrote it (skipped or updated it), so that import's rows still point at it;
- kept, `changed_since`: the lead's content is no longer what this import left (its digest
  differs; a lead deleted since counts here too): someone else's change wins;
- otherwise a lead the row inserted is deleted (`reverted_rows`), and a lead it updated
  gets back the values the update overwrote (`restored_rows`).

"Changed since" is judged by content, not by a timestamp: a lead that holds exactly what
this import wrote, or what a revert of a later import wrote back, is unchanged.

A slice holds the organization's lead lock, like commit slices: no import matches a lead
while it is judged. It reads its rows by a primary key range of staged_outcomes, the leads
by primary key, and the other imports' matches by the matched-lead index: nothing it reads
grows with other jobs' or organizations' rows. Its writes (deletes and restores) and its
cursor commit together, so a slice interrupted anywhere is redone whole by the retry.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from lib.db import Connection, array_literal, queries
from lib.slice_types import SliceContext, SliceResult

# Rows per round within a slice, like the commit's chunks.
CHUNK_ROWS = 5_000

KEPT = ("changed_since", "matched_later")


def run_slice(ctx: SliceContext) -> SliceResult:
    conn, job = ctx.conn, ctx.job
    conn.execute(queries()["lock_org_leads"], {"org": job["organization_id"]})
    deadline = time.monotonic() + ctx.settings.slice_seconds  # counted once the lock is held
    cursor = job["revert_cursor"]
    end = min(cursor + ctx.settings.commit_slice_rows, job["total_rows"])
    counts: Counter[str] = Counter()
    while cursor < end:
        started = time.monotonic()
        until = min(cursor + CHUNK_ROWS, end)
        counts.update(revert_chunk(conn, job, cursor, until))
        cursor = until
        if time.monotonic() + (time.monotonic() - started) > deadline:
            break
    done = cursor >= job["total_rows"]
    return SliceResult(
        counts={"reverted_rows": counts["reverted"], "restored_rows": counts["restored"]},
        kept_counts={k: counts[k] for k in KEPT if counts[k]},
        cursor=cursor,
        done=done,
        changes={"finished_at": datetime.now(UTC)} if done else {},
    )


def revert_chunk(conn: Connection, job: dict[str, Any], after: int, until: int) -> Counter[str]:
    """Judge and undo rows after..until of the job; the count of each verdict."""
    q, org = queries(), job["organization_id"]
    rows = conn.execute(q["revert_rows"], {"job": job["id"], "after": after, "until": until}).fetchall()
    verdicts: Counter[str] = Counter()
    if not rows:
        return verdicts
    ids = array_literal(r["lead_id"] for r in rows)
    now = {r["id"]: r["digest"] for r in conn.execute(q["revert_leads_now"], {"ids": ids, "org": org})}
    later = _matched_later(conn, job, rows, ids)
    gone, restore = [], ["-"] * (until - after)  # restore: a "char" per row of the chunk
    for r in rows:
        lead = r["lead_id"]
        if lead in later:
            verdicts["matched_later"] += 1
        elif r["digest"] is None or now.get(lead) != r["digest"]:
            verdicts["changed_since"] += 1
        elif r["outcome"] == "inserted":
            gone.append(lead)
            verdicts["reverted"] += 1
        else:
            restore[r["row_no"] - after - 1] = "r"
            verdicts["restored"] += 1
    if gone:
        conn.execute(q["delete_reverted_leads"], {"ids": array_literal(gone), "org": org})
    if verdicts["restored"]:
        params = {"job": job["id"], "after": after, "until": until, "restore": array_literal(restore), "org": org}
        conn.execute(q["restore_leads"], params)
    return verdicts


def _matched_later(conn: Connection, job: dict[str, Any], rows: list[dict[str, Any]], ids: str) -> set[Any]:
    """The leads of these rows (`ids`: their lead ids, an array literal) that another import,
    not reverted, matched after this one
    wrote them. A lead this import inserted did not exist before it: any other import's
    match came later. A lead it updated may have been matched before too: only imports whose
    commit started after this one's count."""
    q = queries()
    matches = conn.execute(q["later_matches"], {"ids": ids, "job": job["id"]}).fetchall()
    if not matches:
        return set()
    others = {j["id"]: j for j in conn.execute(q["jobs_of"], {"ids": list({m["job_id"] for m in matches})})}
    inserted = {r["lead_id"] for r in rows if r["outcome"] == "inserted"}
    mine = job["commit_started_at"]
    later = set()
    for m in matches:
        other = others.get(m["job_id"])
        if other is None or other["status"] == "reverted":
            continue
        started = other["commit_started_at"]
        if m["lead_id"] in inserted or (started is not None and mine is not None and started > mine):
            later.add(m["lead_id"])
    return later


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


def purged_refusal(retention_days: int) -> str:
    """The refusal once the staged rows, and the record of what the import wrote, are gone."""
    return (
        f"this import finished more than {retention_days} days ago, and the record of the leads it wrote "
        "and the values it overwrote was deleted then: it can no longer be reverted"
    )

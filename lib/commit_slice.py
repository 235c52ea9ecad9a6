"""The commit phase: staged rows become leads, one slice of rows at a time.

Per slice: the organization's lead lock; the staged keys of the next rows; the existing
leads they match (one query per key kind, through the indexes); then, in row order and in
memory, each valid row's outcome (first valid occurrence of a key wins); then set-based
writes: COPY of the decisions, one INSERT ... SELECT, UPDATE rounds, the outcomes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from lib.commit_settings import CommitSettings
from lib.db import queries
from lib.slices import SliceContext, SliceResult


class Matcher:
    """The organization's leads by match key, as known so far in this slice."""

    def __init__(self, match: str, by_email: dict[str, Any], by_phone: dict[str, Any]):
        self.match, self.by_email, self.by_phone = match, by_email, by_phone

    def find(self, email: str | None, phone: str | None) -> Any:
        m = self.match
        if m == "email":
            return self.by_email.get(email) if email else None
        if m == "phone":
            return self.by_phone.get(phone) if phone else None
        if m == "email_or_phone":
            return (email and self.by_email.get(email)) or (phone and self.by_phone.get(phone)) or None
        # email_then_phone: the email when there is one, else the phone.
        return self.by_email.get(email) if email else (self.by_phone.get(phone) if phone else None)

    def add(self, lead: Any, email: str | None, phone: str | None) -> None:
        if email:
            self.by_email.setdefault(email, lead)
        if phone:
            self.by_phone.setdefault(phone, lead)


def run_slice(ctx: SliceContext) -> SliceResult:
    conn, job = ctx.conn, ctx.job
    cfg = CommitSettings.from_job(job)
    org, job_id = job["organization_id"], job["id"]
    conn.execute(queries()["lock_org_leads"], {"org": org})
    rows = conn.execute(
        queries()["staged_keys"],
        {"job": job_id, "after": job["commit_cursor"], "limit": ctx.settings.commit_slice_rows, "owner_col": cfg.owner_column_index(job)},
    ).fetchall()
    valid = [r for r in rows if r["valid"]]
    matcher = Matcher(
        cfg.match,
        _existing(conn, "leads_by_email", org, {r["email_normalized"] for r in valid if r["email_normalized"]}),
        _existing(conn, "leads_by_phone", org, {r["phone_e164"] for r in valid if r["phone_e164"]}),
    )
    owners = cfg.owner_picker(conn, org, first_index=job["inserted_rows"])
    decisions, counts, rounds = [], {"inserted_rows": 0, "updated_rows": 0, "skipped_rows": 0}, {}
    for r in valid:
        email, phone = r["email_normalized"], r["phone_e164"]
        lead = None if cfg.duplicates == "create" else matcher.find(email, phone)
        if lead is None:
            lead = uuid.uuid4()
            matcher.add(lead, email, phone)
            decisions.append((r["row_no"], lead, "inserted", owners.next(r["owner_cell"]), 0))
            counts["inserted_rows"] += 1
        elif cfg.duplicates == "update":
            rounds[lead] = rounds.get(lead, 0) + 1
            matcher.add(lead, email, phone)
            decisions.append((r["row_no"], lead, "updated", None, rounds[lead]))
            counts["updated_rows"] += 1
        else:
            decisions.append((r["row_no"], lead, "skipped", None, 0))
            counts["skipped_rows"] += 1

    if decisions:
        conn.execute(queries()["create_decisions"])
        with conn.cursor().copy("copy commit_decisions (row_no, lead_id, outcome, owner_id, round) from stdin") as copy:
            for d in decisions:
                copy.write_row(d)
        params = {"job": job_id, "org": org}
        if counts["inserted_rows"]:
            conn.execute(queries()["insert_leads"], params)
        for round_no in range(1, max(rounds.values(), default=0) + 1):
            conn.execute(queries()["update_leads"], {**params, "round": round_no})
        conn.execute(queries()["record_outcomes"], params)

    cursor = rows[-1]["row_no"] if rows else job["commit_cursor"]
    done = cursor >= job["total_rows"]
    return SliceResult(
        counts=counts,
        cursors={"commit": cursor},
        warning_counts=owners.warnings(),
        done=done,
        action="committed" if done else None,
        changes={"finished_at": datetime.now(UTC)} if done else {},
    )


def _existing(conn: Any, query: str, org: Any, keys: set[str]) -> dict[str, Any]:
    if not keys:
        return {}
    rows = conn.execute(queries()[query], {"org": org, "keys": list(keys)}).fetchall()
    return {r["key"]: r["id"] for r in rows}

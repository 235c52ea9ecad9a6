"""The commit phase: staged rows become leads, one slice of rows at a time.

A slice holds the organization's lead lock for its whole transaction (commit and revert
slices of one organization run one at a time, so two imports never both insert a lead for
the same match key), then commits chunks of rows until its row cap, or until the next chunk
would overrun its time budget. Per chunk: one query for the valid rows with the existing
leads their keys match (index probes); then, in row order and in memory, each row's outcome;
then set-based writes: COPY of the decisions, one INSERT ... SELECT, one UPDATE, the outcomes.

Outcomes (DESIGN.md "Commit settings"): a row matching no lead inserts one. A row matching
a lead is `skipped`, or in `update` mode `updated`, unless an earlier row of the same file
already inserted or updated that lead: the first valid occurrence wins, later ones are
skipped. In `create` mode every valid row inserts a lead.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import tuple_row

from lib.commit_settings import CommitSettings, OwnerPicker
from lib.db import queries
from lib.slices import SliceContext, SliceResult

log = logging.getLogger(__name__)

# Rows per set-based round within a slice: big enough that statement overheads vanish,
# small enough that a slice stops close to its time budget.
CHUNK_ROWS = 5_000


class Matcher:
    """The organization's leads by match key as this chunk knows them (from chunk_rows, then
    the chunk's own new leads), and which of them this import already inserted or updated
    ("claimed": a later row matching them is an in-file duplicate)."""

    def __init__(self, match: str, rows: list[tuple]):
        self.match = match
        self.by_email: dict[str, Any] = {}
        self.by_phone: dict[str, Any] = {}
        self.claimed: set[Any] = set()
        for _, email, phone, _, email_lead, email_mine, phone_lead, phone_mine in rows:
            if email_lead:
                self.by_email[email] = email_lead
            if phone_lead:
                self.by_phone[phone] = phone_lead
            if email_mine:
                self.claimed.add(email_lead)
            if phone_mine:
                self.claimed.add(phone_lead)

    def find(self, email: str | None, phone: str | None) -> Any:
        m = self.match
        if m == "email":
            return self.by_email.get(email) if email else None
        if m == "phone":
            return self.by_phone.get(phone) if phone else None
        if m == "email_or_phone":
            return (email and self.by_email.get(email)) or (phone and self.by_phone.get(phone)) or None
        # email_then_phone: the email when the row has one, else the phone.
        return self.by_email.get(email) if email else self.by_phone.get(phone) if phone else None

    def claim(self, lead: Any, email: str | None, phone: str | None) -> None:
        """The lead now holds the row's keys (an older lead with the same key still wins)."""
        self.claimed.add(lead)
        if email:
            self.by_email.setdefault(email, lead)
        if phone:
            self.by_phone.setdefault(phone, lead)


def run_slice(ctx: SliceContext) -> SliceResult:
    """Chunks of rows until the row cap, or until the next chunk would overrun the time budget."""
    conn, job = ctx.conn, ctx.job
    cfg = CommitSettings.from_job(job)
    cursor = job["commit_cursor"]
    end = min(cursor + ctx.settings.commit_slice_rows, job["total_rows"])
    conn.execute(queries()["lock_org_leads"], {"org": job["organization_id"]})
    conn.execute(queries()["create_decisions"])
    owners = cfg.owner_picker(conn, job["organization_id"], first_index=job["inserted_rows"])
    counts = {"inserted_rows": 0, "updated_rows": 0, "skipped_rows": 0}
    while cursor < end:
        started = time.monotonic()
        until = min(cursor + CHUNK_ROWS, end)
        _commit_rows(conn, cfg, job, cursor, until, owners, counts)
        cursor = until
        if time.monotonic() + (time.monotonic() - started) > ctx.deadline:
            break
    done = cursor >= job["total_rows"]
    return SliceResult(
        counts=counts,
        cursors={"commit": cursor},
        warning_counts=owners.warnings(),
        done=done,
        action="committed" if done else None,
        changes={"finished_at": datetime.now(UTC)} if done else {},
    )


def _commit_rows(
    conn: Any,
    cfg: CommitSettings,
    job: dict[str, Any],
    after: int,
    until: int,
    owners: OwnerPicker,
    counts: dict[str, int],
) -> None:
    """Rows after..until: their outcomes in row order, then the set-based writes."""
    lap = _Laps()
    params = {"job": job["id"], "org": job["organization_id"], "after": after, "until": until}
    rows = _tuples(conn, "chunk_rows", {**params, **_lookups(cfg), "owner_col": cfg.owner_column_index(job)})
    lap("rows")
    matcher = Matcher(cfg.match, rows)
    new_ids = _random_uuids(len(rows))
    decisions = []
    for row_no, email, phone, owner_cell, *_ in rows:
        lead = None if cfg.duplicates == "create" else matcher.find(email, phone)
        if lead is None:
            lead = next(new_ids)
            matcher.claim(lead, email, phone)
            decisions.append((row_no, lead, "inserted", owners.next(owner_cell)))
        elif cfg.duplicates == "update" and lead not in matcher.claimed:
            matcher.claim(lead, email, phone)
            decisions.append((row_no, lead, "updated", None))
        else:
            decisions.append((row_no, lead, "skipped", None))
    chunk = Counter(d[2] for d in decisions)
    lap("decide")
    if decisions:
        conn.execute(queries()["truncate_decisions"])
        with conn.cursor().copy(queries()["copy_decisions"]) as copy:
            for d in decisions:
                copy.write_row(d)
        lap("copy")
        if chunk["inserted"]:
            conn.execute(queries()["insert_leads"], params)
        lap("insert")
        if chunk["updated"]:
            conn.execute(queries()["update_leads"], params)
        lap("update")
        conn.execute(queries()["record_outcomes"], params)
        lap("outcomes")
    for outcome, n in chunk.items():
        counts[f"{outcome}_rows"] += n
    log.debug("commit.chunk job=%s rows=%s %s", job["id"], len(rows), lap, extra={"steps_ms": lap.ms})


def _lookups(cfg: CommitSettings) -> dict[str, bool]:
    """Which existing leads a row can match under the job's match mode (see chunk_rows)."""
    if cfg.duplicates == "create":
        return {"by_email": False, "by_phone": False, "by_phone_without_email": False}
    return {
        "by_email": cfg.match != "phone",
        "by_phone": cfg.match in ("phone", "email_or_phone"),
        "by_phone_without_email": cfg.match == "email_then_phone",
    }


def _random_uuids(n: int) -> Iterator[str]:
    """n random (version 4) UUIDs as text: what uuid.uuid4() makes, at a fraction of its cost
    (it shows in a 200,000-row commit)."""
    b = bytearray(os.urandom(16 * n))
    b[6::16] = bytes(x & 0x0F | 0x40 for x in b[6::16])  # version 4
    b[8::16] = bytes(x & 0x3F | 0x80 for x in b[8::16])  # RFC 4122 variant
    h = b.hex()
    return (h[i : i + 32] for i in range(0, 32 * n, 32))


def _tuples(conn: Any, query: str, params: dict[str, Any]) -> list[tuple]:
    return conn.cursor(row_factory=tuple_row).execute(queries()[query], params).fetchall()


class _Laps:
    """Milliseconds per step of a chunk, for the debug log (bench/commit.py reads them)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.last = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.ms[step] = 1000 * (now - self.last)
        self.last = now

    def __str__(self) -> str:
        return " ".join(f"{k}_ms={v:.1f}" for k, v in self.ms.items())

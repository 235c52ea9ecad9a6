"""The commit phase: staged rows become leads, one slice of rows at a time.

A slice holds the organization's lead lock for its whole transaction (commit and revert
slices of one organization run one at a time, so two imports never both insert a lead for
the same match key), then commits chunks of rows until its row cap, or until the next chunk
would overrun its time budget. Per chunk: one query for the rows with the existing leads
their keys match (index probes); then, in row order and in memory, each row's outcome; then
set-based writes: COPY of the skipped and invalid rows' outcomes into staged_outcomes, then
one INSERT ... SELECT and one UPDATE of leads that read the chunk's staged rows by primary key
(with lead ids and owners passed as arrays: no statement joins two tables whose row counts the
planner guesses) and record their rows' outcomes themselves, with what a revert needs: the
digest of each lead's content as the import left it, and the values an update overwrote.

Two connections work at once: while the slice's connection writes a chunk (from a helper
thread), a second one reads the next chunk's rows and Python decides their outcomes. The
probes see only committed leads; the leads this slice inserts are in its Matcher.

Outcomes (docs/ARCHITECTURE.md "Commit settings"): a row matching no lead inserts one. A row matching
a lead is `skipped`, or in `update` mode `updated`, unless an earlier row of the same file
already inserted or updated that lead: the first valid occurrence wins, later ones are
skipped. In `create` mode every valid row inserts a lead.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import TupleRow, tuple_row

from lib import db
from lib.commit_settings import CommitSettings, OwnerPicker
from lib.db import Connection, array_literal, queries
from lib.slice_types import Laps, SliceContext, SliceResult

log = logging.getLogger(__name__)

NULL = "\\N"  # COPY's text format

# Rows per set-based round within a slice: big enough that statement overheads vanish,
# small enough that a slice stops close to its time budget.
CHUNK_ROWS = 5_000


class Matcher:
    """The organization's leads by match key as this slice knows them (from chunk_rows, then
    the slice's own new leads), and which of them this import already inserted or updated
    ("claimed": a later row matching them is an in-file duplicate)."""

    def __init__(self, match: str):
        self.match = match
        self.by_email: dict[str, Any] = {}
        self.by_phone: dict[str, Any] = {}
        self.claimed: set[Any] = set()

    def learn(self, rows: list[TupleRow]) -> None:
        """The probes' answers for a chunk's rows. What the slice itself wrote comes first:
        the probes ran before the previous chunk's leads were inserted."""
        for _, _, email, phone, _, email_lead, email_mine, phone_lead, phone_mine in rows:
            if email_lead:
                self.by_email.setdefault(email, email_lead)
            if phone_lead:
                self.by_phone.setdefault(phone, phone_lead)
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
    deadline = time.monotonic() + ctx.settings.slice_seconds  # the budget starts once the lock is held
    owners = cfg.owner_picker(conn, job["organization_id"], first_index=job["inserted_rows"])
    matcher = Matcher(cfg.match)
    counts: Counter[str] = Counter()
    pending: Writes | None = None  # decided, not yet written
    # The rows are read through a second connection while the slice's own connection writes
    # the previous chunk (from a helper thread): committed data is all the probes need, since
    # the organization lock keeps other imports out and the Matcher knows this slice's leads.
    lookups = {**_lookups(cfg), **cfg.owner_cell_source(job)}
    with db.connect(ctx.settings.database_url) as reader, ThreadPoolExecutor(1, "commit-writes") as writer:
        while cursor < end:
            started, lap = time.monotonic(), Laps()
            until = min(cursor + CHUNK_ROWS, end)
            writing = writer.submit(pending.run, conn) if pending else None
            with reader.transaction():
                db.limit_waits(
                    reader, statement_seconds=ctx.settings.statement_timeout, lock_seconds=ctx.settings.org_lock_wait
                )
                rows = _tuples(reader, "chunk_rows", {**_params(job, cursor, until), **lookups})
            lap("rows")
            pending = _decide(cfg, job, cursor, until, rows, matcher, owners)
            counts.update(pending.counts)
            lap("decide")
            if writing:
                writing.result()
            lap("wait")
            log.debug("commit.chunk job=%s rows=%s %s", job["id"], len(rows), lap, extra={"steps_ms": lap.ms})
            cursor = until
            if time.monotonic() + (time.monotonic() - started) > deadline:
                break
    if pending:
        pending.run(conn)
    done = cursor >= job["total_rows"]
    return SliceResult(
        counts={f"{o}_rows": counts[o] for o in ("inserted", "updated", "skipped")},
        cursor=cursor,
        warning_counts=owners.warnings(),
        done=done,
        changes={"finished_at": datetime.now(UTC)} if done else {},
    )


class LeadsChangedMeanwhile(RuntimeError):
    """A transient error: a lead the chunk updates changed since the chunk read it."""


ZERO_UUID = "00000000-0000-0000-0000-000000000000"  # "none" in the arrays of a chunk's rows


@dataclass
class Writes:
    """A chunk's outcomes as COPY text, and the leads statements that write them."""

    params: dict[str, Any]
    copy: str
    counts: Counter[str]

    def run(self, conn: Any) -> None:
        lap = Laps()
        if self.copy:
            with conn.cursor().copy(queries()["copy_outcomes"]) as copy:
                copy.write(self.copy)
        lap("copy")
        if self.counts["inserted"]:
            conn.execute(queries()["insert_leads"], self.params)
        lap("insert")
        if self.counts["updated"]:
            updated = conn.execute(queries()["update_leads"], self.params).rowcount
            if updated != self.counts["updated"]:
                # A lead changed or went between the chunk's read and its update: what this
                # chunk decided is stale. The slice rolls back and QStash retries it (5xx).
                raise LeadsChangedMeanwhile(
                    f"job {self.params['job']}: {self.counts['updated'] - updated} lead(s) changed during the commit"
                )
        lap("update")
        log.debug("commit.writes job=%s %s", self.params["job"], lap, extra={"steps_ms": lap.ms})


def _decide(
    cfg: CommitSettings,
    job: dict[str, Any],
    after: int,
    until: int,
    rows: list[TupleRow],
    matcher: Matcher,
    owners: OwnerPicker,
) -> Writes:
    """The outcomes of rows after..until, in row order."""
    matcher.learn(rows)
    prefix = _lead_id_prefix()
    job_id = str(job["id"])
    lines = []
    counts: Counter[str] = Counter()
    # Per row of the chunk (index row_no - after - 1): outcome, owner given, lead updated.
    size = until - after
    codes, owner_of, lead_of = ["-"] * size, [ZERO_UUID] * size, [ZERO_UUID] * size
    for row_no, valid, email, phone, owner_cell, *_ in rows:
        owner = None
        if not valid:
            outcome, lead = "invalid", None
        elif (lead := None if cfg.duplicates == "create" else matcher.find(email, phone)) is None:
            outcome, lead, owner = "inserted", _lead_id(prefix, row_no), owners.next(owner_cell)
            matcher.claim(lead, email, phone)
            codes[row_no - after - 1] = "i"
            if owner:
                owner_of[row_no - after - 1] = str(owner)
        elif cfg.duplicates == "update" and lead not in matcher.claimed:
            outcome = "updated"
            matcher.claim(lead, email, phone)
            codes[row_no - after - 1] = "u"
            lead_of[row_no - after - 1] = str(lead)
        else:
            outcome = "skipped"
        counts[outcome] += 1
        if outcome in ("skipped", "invalid"):  # insert_leads and update_leads record the others
            # COPY's text format: every value is a number, a code or a UUID (nothing to escape).
            lines.append(f"{job_id}\t{row_no}\t{outcome}\t{lead or NULL}\n")
    # Arrays are 1-based: the row after `after` is at index 1.
    params = {
        **_params(job, after, until), "id_prefix": prefix, "outcomes": array_literal(codes),
        "owners": array_literal(owner_of), "leads": array_literal(lead_of),
    }  # fmt: skip
    return Writes(params, "".join(lines), counts)


def _params(job: dict[str, Any], after: int, until: int) -> dict[str, Any]:
    return {"job": job["id"], "org": job["organization_id"], "after": after, "until": until}


def _lookups(cfg: CommitSettings) -> dict[str, bool]:
    """Which existing leads a row can match under the job's match mode (see chunk_rows)."""
    if cfg.duplicates == "create":
        return {"by_email": False, "by_phone": False, "by_phone_without_email": False}
    return {
        "by_email": cfg.match != "phone",
        "by_phone": cfg.match in ("phone", "email_or_phone"),
        "by_phone_without_email": cfg.match == "email_then_phone",
    }


def _lead_id_prefix() -> str:
    """The first 96 bits of a chunk's new lead ids, as hex, in the layout of UUID version 7
    (RFC 9562): the time in milliseconds, version 7, 12 random bits, the variant, 30 random
    bits. The last 32 bits are the row number (`_lead_id`, and insert_leads in SQL). The ids
    sort in insertion order, so the leads' primary-key index grows at its right edge instead
    of at a random page per lead (measured: 0.8 s less per 200,000 inserted leads than
    random version 4 UUIDs)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(6), "big")
    high = (ms & (1 << 48) - 1) << 16 | 0x7000 | rand >> 36  # 48-bit time, version 7, 12 random bits
    mid = 0b10 << 30 | (rand & (1 << 30) - 1)  # RFC 9562 variant, 30 random bits
    return f"{high:016x}{mid:08x}"


def _lead_id(prefix: str, row_no: int) -> str:
    return f"{prefix}{row_no:08x}"


def _tuples(conn: Connection, query: str, params: dict[str, Any]) -> list[TupleRow]:
    return conn.cursor(row_factory=tuple_row).execute(queries()[query], params).fetchall()

"""Fixing rows in place during review: a user corrects a row's cells, or excludes it, while
the job is `ready` (PATCH /api/jobs/<id>/rows/<row_no>, lib/routes/rows.py).

A fix is kept apart from the staged row it changes (`staged_row_fixes`): the corrected
cells (by header name, only those that change), the replaced extra cells, whether the row
is excluded, the original cells, who fixed it and when. `fixed_row` is the one function
that turns a row's original cells and its fix into a staged row: the same RowChecker as the
parse, on the fixed cells. The PATCH calls it, and so does a re-parse (lib/parse_slice.py),
which applies the job's fixes again to the rows they belong to.

An excluded row is invalid with the single code `excluded`, so valid + invalid = total holds;
including it again checks its cells as they stand.

A fix runs in one transaction under the job's row lock (the lock every slice and every
status change takes): the row, its codes, the job's counts and the in-file duplicate
marking of the row's old and new match keys move together. A duplicate group is found
through two partial indexes led by the job (its first rows, then the rows repeating them),
so a fix reads the row and its group, never the job's other rows or other jobs' rows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from lib import db
from lib.db import Connection, Row, queries
from lib.errors import BadRequest, IllegalTransition, JobNotFound, LeadImportError
from lib.parse.reader import iter_records
from lib.parse.rows import RowChecker, StagedRow
from lib.status import Status
from lib.storage import Storage
from lib.workbook_step import parsed_path

log = logging.getLogger(__name__)

EXCLUDED = "excluded"  # the code of an excluded row


class RowNotFound(LeadImportError):
    """No such row in this import."""

    status = 404


class JobBusy(LeadImportError):
    """The import is busy with another change; try again in a moment."""

    status = 503


@dataclass
class Fix:
    """What a user changed in a row."""

    cells: dict[str, str] = field(default_factory=dict)  # header name -> corrected value
    extra_cells: list[str] | None = None  # the cells past the header's width; None: as read
    excluded: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None) -> Fix:
        if row is None:
            return cls()
        return cls(dict(row["cells"]), row["extra_cells"], row["excluded"])

    @property
    def edits_cells(self) -> bool:
        return bool(self.cells) or self.extra_cells is not None

    @property
    def empty(self) -> bool:
        return not self.edits_cells and not self.excluded


def fixed_cells(original: Sequence[str], header: Sequence[str], fix: Fix) -> list[str]:
    """The row's cells with the fix applied: a corrected cell replaces the original one (a
    short row grows to reach it), extra cells replace those past the header's width."""
    cells = list(original)
    for name, value in fix.cells.items():
        i = column(header, name)
        if i >= len(cells):
            cells += [""] * (i + 1 - len(cells))
        cells[i] = value
    if fix.extra_cells is not None:
        cells = cells[: len(header)] + [""] * (len(header) - len(cells)) + list(fix.extra_cells)
    return cells


def fixed_row(checker: RowChecker, row_no: int, original: Sequence[str], header: Sequence[str], fix: Fix) -> StagedRow:
    """The staged row of a fixed row: the parse's own check of the fixed cells, or, when
    excluded, an invalid row with the code `excluded`."""
    r = checker.check(row_no, fixed_cells(original, header, fix))
    if fix.excluded:
        r.errors, r.warnings, r.valid, r.key = [EXCLUDED], [], False, None
    return r


def column(header: Sequence[str], name: str) -> int:
    """The index of a header name; 400 for a name the file does not have, or has twice."""
    found = [i for i, h in enumerate(header) if h == name]
    if not found:
        raise BadRequest(f"the file has no column {name!r}; its columns: {', '.join(header)}", code="unknown_column")
    if len(found) > 1:
        raise BadRequest(
            f"the file has several columns named {name!r}: fix this row in the file", code="ambiguous_column"
        )
    return found[0]


def read_original(storage: Storage, job: Row, offset: int, row_no: int) -> list[str]:
    """The row's cells as the file holds them, read back from its record's offset."""
    with storage.open(parsed_path(job), offset) as stream:
        for cells, _end in iter_records(
            stream, start=offset, encoding=job["encoding"], delimiter=job["delimiter"], first_row=row_no
        ):
            return cells
    raise RowNotFound(f"row {row_no} is no longer in the file")


@dataclass
class Change:
    """A PATCH body: cells to correct (header name -> value), extra cells, exclusion."""

    cells: dict[str, str] = field(default_factory=dict)
    extra_cells: list[str] | None = None
    set_extra: bool = False  # extra_cells was given (null: back to the cells as read)
    excluded: bool | None = None


def fix_row(
    conn: Connection,
    job_id: str,
    row_no: int,
    change: Change,
    *,
    user: str,
    storage: Storage,
    statement_seconds: float,
    lock_seconds: float,
) -> tuple[Row, Row, Row | None]:
    """Apply `change` to the row, in one transaction under the job's lock. Returns the
    staged row as it now stands, the job with its new counts, and the fix (None when the
    row is back to its original cells and included)."""
    try:
        with conn.transaction():
            db.limit_waits(conn, statement_seconds=statement_seconds, lock_seconds=lock_seconds)
            job = conn.execute(queries()["lock_job"], {"id": job_id}).fetchone()
            if job is None:
                raise JobNotFound()
            if job["status"] != Status.READY:
                raise IllegalTransition(f"rows can be fixed only while the job is ready; it is {job['status']}")
            return _fix(conn, job, row_no, change, user, storage)
    except psycopg.errors.LockNotAvailable:
        raise JobBusy() from None


def _fix(
    conn: Connection, job: Row, row_no: int, change: Change, user: str, storage: Storage
) -> tuple[Row, Row, Row | None]:
    key = {"job": job["id"], "row": row_no}
    before = conn.execute(queries()["staged_row"], key).fetchone()
    if before is None:
        raise RowNotFound(f"the import has no row {row_no}; its rows are 1 to {job['total_rows']}")
    saved = conn.execute(queries()["row_fix"], key).fetchone()
    header: list[str] = job["header"]
    if saved is not None:
        original = list(saved["original"])
    elif before["raw"] is not None:
        original = list(before["raw"])
    elif before["record_offset"] is not None:
        original = read_original(storage, job, before["record_offset"], row_no)
    else:
        raise IllegalTransition(
            "this import was read before rows could be fixed: change its mapping (or set it again) to read it anew"
        )
    old = Fix.from_row(saved)
    fix = Fix(dict(old.cells), old.extra_cells, old.excluded)
    for name, value in change.cells.items():
        i = column(header, name)
        if value == (original[i] if i < len(original) else ""):
            fix.cells.pop(name, None)  # back to the cell as read
        else:
            fix.cells[name] = value
    if change.set_extra:
        width = len(header)
        fix.extra_cells = None if change.extra_cells == original[width:] else change.extra_cells
    if change.excluded is not None:
        fix.excluded = change.excluded

    checker = RowChecker(header, job["mapping"], region=job["settings"].get("region", "FR"))
    r = fixed_row(checker, row_no, original, header, fix)
    conn.execute(
        queries()["update_staged_row"],
        {
            **key, "raw": Jsonb(r.raw) if r.errors or r.warnings or not fix.empty else None,
            "fields": Jsonb(r.fields), "custom": Jsonb(r.custom), "email": r.email, "phone": r.phone,
            "key": r.key, "errors": r.errors, "warnings": r.warnings, "valid": r.valid,
        },
    )  # fmt: skip
    # Duplicate marking: the row left its old key's group and joined its new key's.
    duplicates = -1 if before["duplicate_of"] is not None else 0
    was_first = before["match_key"] is not None and before["duplicate_of"] is None
    for k in dict.fromkeys(k for k in (before["match_key"], r.key) if k):
        duplicates += _regroup(conn, job["id"], k, row_no if was_first and k == before["match_key"] else None)

    if fix.empty:
        conn.execute(queries()["delete_fix"], key)
        stored = None
    else:
        stored = conn.execute(
            queries()["save_fix"],
            {
                **key, "cells": Jsonb(fix.cells), "excluded": fix.excluded, "user": user,
                "extra_cells": None if fix.extra_cells is None else Jsonb(fix.extra_cells), "original": Jsonb(original),
            },
        ).fetchone()  # fmt: skip
    valid = int(r.valid) - int(before["valid"])
    counts = {
        "id": job["id"],
        "valid_rows": job["valid_rows"] + valid,
        "invalid_rows": job["invalid_rows"] - valid,
        "duplicate_rows": job["duplicate_rows"] + duplicates,
        "error_counts": Jsonb(_moved(job["error_counts"], before["errors"], r.errors)),
        "warning_counts": Jsonb(_moved(job["warning_counts"], before["warnings"], r.warnings)),
        "fixed_rows": job["fixed_rows"] + fix.edits_cells - old.edits_cells,
        "excluded_rows": job["excluded_rows"] + fix.excluded - old.excluded,
    }
    updated = conn.execute(queries()["set_fix_counts"], counts).fetchone()
    row = conn.execute(queries()["staged_row"], key).fetchone()
    assert updated is not None and row is not None, "the job is locked and the row exists"
    log.info(
        "row.fixed job=%s row=%s valid=%s excluded=%s cells=%s",
        job["id"],
        row_no,
        r.valid,
        fix.excluded,
        len(fix.cells),
    )
    return row, updated, stored


def _regroup(conn: Connection, job_id: Any, key: str, old_first: int | None) -> int:
    """Mark the rows holding `key` again: the lowest row number is the first occurrence, the
    others repeat it. `old_first`: a row that was this key's first and now holds another key
    (its followers still point at it). Returns the change in the job's duplicate rows."""
    params = {"job": job_id, "key": key}
    firsts = [r["row_no"] for r in conn.execute(queries()["key_firsts"], params)]
    heads = firsts + ([old_first] if old_first is not None else [])
    if not heads:
        return 0
    followers: dict[int, int] = {}
    for head in dict.fromkeys(heads):
        for r in conn.execute(queries()["key_followers"], {**params, "first": head}):
            followers[r["row_no"]] = r["duplicate_of"]
    group = set(firsts) | set(followers)
    if not group:
        return 0
    first = min(group)
    moved = [n for n in firsts if n != first] + [n for n, d in followers.items() if d != first and n != first]
    if first in followers:
        moved.append(first)
    if moved:
        with conn.cursor() as cur:
            cur.executemany(queries()["point_row_to"], [{"job": job_id, "first": first, "row": n} for n in moved])
    return (len(group) - 1) - len(followers)


def _moved(counts: Mapping[str, int], old: Sequence[str], new: Sequence[str]) -> dict[str, int]:
    """Per-code counts with one row's codes replaced; codes no row holds any more go."""
    out = dict(counts)
    for code in old:
        out[code] = out.get(code, 0) - 1
    for code in new:
        out[code] = out.get(code, 0) + 1
    return {c: n for c, n in out.items() if n}


def fixes_after(conn: Connection, job_id: Any, after: int) -> dict[int, Fix]:
    """The job's fixes of rows after `after`, for a parse slice to apply again."""
    rows = conn.execute(queries()["fixes_after"], {"job": job_id, "after": after})
    return {r["row_no"]: Fix.from_row(r) for r in rows}


def drop_fixes(conn: Connection, job_id: Any) -> int:
    """Drop the job's fixes (a change of sheet or file: their rows are gone), within the
    caller's transaction; the job's `dropped_fixes` says how many went. Returns that number."""
    row = conn.execute(queries()["drop_fixes"], {"id": job_id}).fetchone()
    return int(row["dropped_fixes"]) if row else 0

"""The parse phase: slice 0 is the validating step, every later slice stages rows.

Validating reads the file once (size, SHA-256, encoding evidence), inspects its head
(encoding, delimiter, header, automatic mapping) and looks for an earlier job of the
organization with the same file. Parse slices read from the byte cursor, check each row
and COPY it into staged_rows within the slice's transaction.

In-file duplicates are marked as the rows are staged, with work bounded by the slice: a
repeat of an earlier row of the same slice is known in memory (and staged with its
duplicate_of); the slice's other keys are looked up among the first occurrences earlier
slices staged (an index of staged_rows holds exactly those), and the rows repeating them
are pointed at their first row.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg.copy import QueuedLibpqWriter

from lib import remembered, workbook_step
from lib.db import array_literal, queries
from lib.errors import JobFailed
from lib.parse.detect import FileFacts, FileScan, inspect_stream
from lib.parse.errors import ParseError, too_large
from lib.parse.reader import iter_records
from lib.parse.rows import RowChecker, StagedRow
from lib.parse.workbook import DELIMITER as WORKBOOK_DELIMITER
from lib.parse.workbook import is_workbook
from lib.row_fixes import fixed_row, fixes_after
from lib.slice_types import Laps, SliceContext, SliceResult
from lib.status import Status
from lib.storage import ObjectMissing

log = logging.getLogger(__name__)


def run_slice(ctx: SliceContext) -> SliceResult:
    try:
        return validate(ctx) if ctx.job["status"] == Status.VALIDATING else stage_rows(ctx)
    except ParseError as exc:
        raise JobFailed(exc.message, code=exc.code) from exc
    except ObjectMissing as exc:
        raise JobFailed(
            "The uploaded file is no longer in storage. Upload it again and start a new import.",
            code="file_missing",
        ) from exc


def validate(ctx: SliceContext) -> SliceResult:
    """Slice 0; for a workbook, slice 0 reads it (lib/workbook_step.py) and the next slice
    converts it and validates the CSV it became."""
    job = ctx.job
    storage = ctx.services.storage
    # Checked again whatever the browser said at job creation, before reading a byte.
    if refusal := too_large(storage.size(job["storage_path"]), ctx.settings.max_file_mb):
        raise refusal
    if job["slice_no"] == 0 and is_workbook(storage.read_head(job["storage_path"], 8)):
        return workbook_step.read(ctx)
    chosen: list[remembered.Choice] = []

    def mapper(header: list[str]) -> list[str | None]:
        # The organization's remembered mapping for this header, else the automatic one.
        chosen.append(remembered.choose(ctx.conn, job["organization_id"], header))
        return chosen[-1].mapping

    if job["workbook"] is None:
        with storage.open(job["storage_path"]) as stream:
            facts, scan = inspect_stream(stream, mapper=mapper)
        return _validated(ctx, facts, scan, chosen[-1], {})
    with workbook_step.converted(ctx) as (stream, workbook):
        facts, scan = inspect_stream(stream, delimiter=WORKBOOK_DELIMITER, mapper=mapper)
    return _validated(ctx, facts, scan, chosen[-1], {"workbook": workbook})


def _validated(
    ctx: SliceContext, facts: FileFacts, scan: FileScan, choice: remembered.Choice, changes: dict[str, Any]
) -> SliceResult:
    job = ctx.job
    settings = {k: v for k, v in job["settings"].items() if k != "remembered_commit"}
    if choice.commit_defaults is not None:
        settings["remembered_commit"] = choice.commit_defaults
    earlier = ctx.conn.execute(
        queries()["earlier_job_same_file"], {"org": job["organization_id"], "sha": scan.sha256, "id": job["id"]}
    ).fetchone()
    return SliceResult(
        cursor=facts.data_offset,
        estimated_total_rows=facts.estimated_rows,
        action="validated",
        changes={
            "file_size": scan.size,
            "file_sha256": scan.sha256,
            "encoding": facts.encoding,
            "delimiter": facts.delimiter,
            "header": facts.header,
            "mapping": facts.mapping,
            "mapping_source": choice.source,
            "remembered_mapping_id": choice.remembered_id,
            "settings": settings,
            "data_offset": facts.data_offset,
            "duplicate_of_job_id": earlier["id"] if earlier else None,
            **changes,
        },
    )


def stage_rows(ctx: SliceContext) -> SliceResult:
    conn, job = ctx.conn, ctx.job
    header = job["header"]
    checker = RowChecker(header, job["mapping"], region=job["settings"].get("region", "FR"))
    cap = ctx.settings.parse_slice_rows
    start, row_no = job["parse_cursor"], job["total_rows"]
    cursor, valid = start, 0
    errors: dict[str, int] = {}
    warnings: dict[str, int] = {}
    firsts: dict[str, int] = {}  # match key -> its first row in this slice
    repeats: list[tuple[int, str]] = []  # later rows of this slice with one of those keys
    done = True
    lines: list[bytes] = []
    job_id = str(job["id"]).encode()
    clock, deadline = time.monotonic, ctx.deadline  # read for every row: kept to a local call
    # The fixes made in review of the rows this slice stages (a re-parse after a mapping
    # change): applied again, by the same code as the fix itself.
    fixes = fixes_after(conn, job["id"], row_no)
    lap = Laps()
    with (
        ctx.services.storage.open(workbook_step.parsed_path(job), start) as stream,
        conn.cursor().copy(queries()["copy_staged_rows"], writer=QueuedLibpqWriter(conn.cursor())) as copy,
    ):
        records = iter_records(
            stream, start=start, encoding=job["encoding"], delimiter=job["delimiter"], first_row=row_no + 1
        )
        for cells, end in records:
            row_no += 1
            if fixes and row_no in fixes:
                r = fixed_row(checker, row_no, cells, header, fixes[row_no])
                keep = True
            else:
                r = checker.check(row_no, cells)
                keep = False
            if key := r.key:
                first = firsts.setdefault(key, row_no)
                if first != row_no:
                    repeats.append((row_no, key))
            else:
                first = row_no
            lines.append(copy_line(job_id, r, first, cursor, keep))
            if len(lines) == COPY_BATCH:
                copy.write(b"".join(lines))
                lines.clear()
            valid += r.valid
            for code in r.errors:
                errors[code] = errors.get(code, 0) + 1
            for code in r.warnings:
                warnings[code] = warnings.get(code, 0) + 1
            cursor = end
            if row_no - job["total_rows"] >= cap or clock() >= deadline:
                done = False
                break
        copy.write(b"".join(lines))
        lap("rows")
    lap("copy_end")  # the server's catching up with the rows sent
    rows = row_no - job["total_rows"]
    result = SliceResult(
        counts={"total_rows": rows, "valid_rows": valid, "invalid_rows": rows - valid},
        cursor=cursor,
        error_counts=errors,
        warning_counts=warnings,
        estimated_total_rows=_estimate(job, row_no, cursor),
    )
    result.counts["duplicate_rows"] = _mark_earlier_keys(conn, job, firsts, repeats)
    lap("mark")
    log.debug("parse.rows job=%s rows=%s %s", job["id"], rows, lap, extra={"steps_ms": lap.ms})
    if done:
        result.done = True
        result.estimated_total_rows = row_no
        result.changes = {"parse_finished_at": datetime.now(UTC)}
    return result


# COPY's text format, written by hand as bytes: psycopg's write_row adapts each value on its
# own and was the largest cost per row, and building str lines cost twice these bytes (every
# orjson result decoded, every line encoded again). Rows are sent in batches while the next
# ones are checked.
COPY_BATCH = 2000
NULL = b"\\N"


def _json(value: Any) -> bytes:
    # orjson escapes control characters inside strings, so only backslashes need doubling.
    return orjson.dumps(value).replace(b"\\", b"\\\\")


def _array(codes: list[str]) -> bytes:
    return ("{" + ",".join(codes) + "}").encode() if codes else b"{}"


def copy_line(job_id: bytes, r: StagedRow, first: int, offset: int, keep_raw: bool = False) -> bytes:
    """One staged row as a line of COPY's text format; `first` is the row's own number, or
    that of the earlier row of the slice it repeats; `offset` where its record starts in the
    file (bench/parse_micro.py times it)."""
    # Email, phone and key are normalized values (no backslash, tab or line break): no escaping.
    # The cells are kept only where the review shows them: rows with a code, and fixed rows
    # (`keep_raw`). A fix of another row reads its cells back from the file at `offset`.
    return b"\t".join(
        (
            job_id, b"%d" % r.row_no, _json(r.raw) if r.errors or r.warnings or keep_raw else NULL, _json(r.fields),
            _json(r.custom) if r.custom else b"{}", r.email.encode() if r.email else NULL,
            r.phone.encode() if r.phone else NULL, r.key.encode() if r.key else NULL, _array(r.errors),
            _array(r.warnings), b"t" if r.valid else b"f", b"%d" % first if first != r.row_no else NULL,
            b"%d" % offset,
        )
    ) + b"\n"  # fmt: skip


def _mark_earlier_keys(conn: Any, job: dict[str, Any], firsts: dict[str, int], repeats: list[tuple[int, str]]) -> int:
    """Point this slice's rows whose key an earlier slice staged at that key's first row.
    Returns the slice's duplicate rows.

    One probe of the first-key index per key of the slice, then an update of the slice's own
    rows by primary key range: work in proportion to the slice, whatever the job's size.
    """
    before = job["total_rows"]
    if not firsts or not before:
        return len(repeats)
    # Keys are normalized emails and phones (no line break): one text, split in SQL.
    params = {"job": job["id"], "before": before, "keys": "\n".join(firsts)}
    found = {row["match_key"]: row["row_no"] for row in conn.execute(queries()["earlier_keys"], params)}
    if found:
        until = max(firsts.values())
        if repeats:
            until = max(until, repeats[-1][0])
        pointers = [0] * (until - before)  # per row of the slice, in order: its first row, or 0
        for key, first in found.items():
            pointers[firsts[key] - before - 1] = first
        for row_no, key in repeats:
            if key in found:
                pointers[row_no - before - 1] = found[key]
        params = {"job": job["id"], "after": before, "until": until, "firsts": array_literal(pointers)}
        conn.execute(queries()["point_to_earlier_keys"], params)
    return len(repeats) + len(found)


def _estimate(job: dict[str, Any], rows: int, cursor: int) -> int | None:
    """Rows expected in the whole file, extrapolated from the bytes read so far."""
    read = cursor - job["data_offset"]
    if read <= 0 or not rows:
        return None
    return max(rows, round(rows * (job["file_size"] - job["data_offset"]) / read))

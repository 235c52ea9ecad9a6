"""The validating step of a workbook: two slices of the parse phase, both in `validating`.

1. `read` (slice 0): the upload is a workbook (by its bytes). Its size, SHA-256 and type
   are recorded, and a workbook that is too large, encrypted, corrupt or a zip bomb is
   refused from its central directory, without decompressing a cell. The job's `workbook`
   says `"state": "reading"` from this slice's commit on, so the frontend shows that the
   workbook is being read, and its lease is raised to cover the conversion.
2. `converted` (the next slice): the chosen sheet (settings.sheet, else the first with
   data) becomes a UTF-8 CSV stored beside the original (`<original>.sheet.csv`), and every
   sheet's data rows are counted. The parse then validates and reads that CSV like any
   other. This is the one step longer than a slice, bounded by the limits of lib/config.py
   (Settings.workbook_*), measured to fit well within one function call, and enforced: the
   reader runs in a child process with capped memory and time (convert_bounded). It holds
   the job's row lock, so a second delivery answers busy and the sweep leaves it alone.

calamine reads cached values and never runs a formula or a macro: a macro-enabled
workbook's macros are only bytes in a part nobody opens.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from lib.config import Settings
from lib.parse.errors import FileRejected
from lib.parse.workbook import Bounds, Limits, check_workbook, convert_bounded
from lib.slice_types import SliceContext, SliceResult

CSV_SUFFIX = ".sheet.csv"


def limits(settings: Settings) -> Limits:
    return Limits(settings.workbook_max_mb << 20, settings.workbook_max_expanded_mb << 20)


def bounds(settings: Settings) -> Bounds:
    return Bounds(settings.workbook_memory_mb << 20, settings.workbook_seconds)


def read(ctx: SliceContext) -> SliceResult:
    """Slice 0 of a workbook: record and check the original; the conversion comes next."""
    job, storage = ctx.job, ctx.services.storage
    with tempfile.TemporaryDirectory(prefix="workbook-") as tmp:
        path, size, sha = _download(storage.open(job["storage_path"]), Path(tmp))
        with path.open("rb") as f:
            kind = check_workbook(f, size, limits(ctx.settings))
    workbook = {"name": job["file_name"], "type": kind, "size": size, "sha256": sha, "state": "reading"}
    return SliceResult(
        cursor=0,
        action="read_workbook",
        changes={
            "workbook": workbook,
            "lease_seconds": max(job["lease_seconds"], ctx.settings.workbook_lease_seconds),
            # Not validated yet (after a restart, an earlier validation's offset is stale): a
            # retry of a failed conversion resumes in validating (lib/phases.py opened_by).
            "data_offset": None,
        },
    )


@contextmanager
def converted(ctx: SliceContext) -> Iterator[tuple[BinaryIO, dict[str, Any]]]:
    """Convert the chosen sheet, store the CSV beside the original, and yield it (open for
    reading, at its start) with the job's new `workbook` facts."""
    job, storage = ctx.job, ctx.services.storage
    workbook = dict(job["workbook"])
    sheet = job["settings"].get("sheet")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="workbook-") as tmp:
        path, size, _ = _download(storage.open(job["storage_path"]), Path(tmp))
        with path.open("rb") as f:
            check_workbook(f, size, limits(ctx.settings))  # the same file as slice 0 read, unless replaced
        csv_path = Path(tmp) / "sheet.csv"
        result = convert_bounded(str(path), str(csv_path), sheet, bounds(ctx.settings))
        path.unlink()  # the original is no longer needed here: /tmp is small on Vercel
        with csv_path.open("rb") as out:
            key = job["storage_path"] + CSV_SUFFIX
            storage.put(key, out)
            out.seek(0)
            workbook.update(
                state="converted",
                sheet=result.sheet,
                sheets=[s.to_json() for s in result.sheets],
                csv_path=key,
                convert_seconds=round(time.monotonic() - started, 3),
                convert_peak_rss_mb=result.peak_rss_mb,
            )
            try:
                yield out, workbook
            except FileRejected as exc:
                others = [f"{s.name} ({s.rows:,} rows)" for s in result.sheets if s.name != result.sheet and s.rows]
                hint = f" Other sheets of the workbook: {', '.join(others)}." if others else ""
                raise FileRejected(exc.code, f"In the sheet {result.sheet!r}: {exc.message}{hint}") from exc


def _download(stream: BinaryIO, folder: Path) -> tuple[Path, int, str]:
    """The stored file copied to `folder`, with its size and SHA-256 (calamine reads a path)."""
    path = folder / "original"
    sha = hashlib.sha256()
    size = 0
    with stream, path.open("wb") as out:
        while chunk := stream.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return path, size, sha.hexdigest()


def parsed_path(job: dict[str, Any]) -> str:
    """The stored file the parse reads (and a row fix reads back): the upload, or the CSV its
    workbook became."""
    return str(job["workbook"]["csv_path"]) if job.get("workbook") else str(job["storage_path"])

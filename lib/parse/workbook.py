"""Workbooks (.xlsx, .xlsm, .ods, .xls) turned into the CSV the parse slices read.

One conversion step reads the chosen sheet with python-calamine (Rust's calamine: no
formula is evaluated and no macro is run, it reads the cells' stored values) and writes a
UTF-8 CSV (``;``-separated, header first) that the parse reads like any uploaded CSV.

Before converting, ``check_workbook`` looks at the file without reading its cells: what it
is (by its bytes, never its name), whether it is encrypted, truncated or corrupt, and
whether it is within the limits the conversion was measured to fit in one function call
(docs/ARCHITECTURE.md "Workbooks"). A zip whose parts would expand past those limits, or
expand a thousand times (a zip bomb), is refused from its central directory, before any
part is decompressed.

Cells (``cell_text``): a whole number without ``.0`` or exponent (a phone saved as the
number 612345678 stays those digits, which the phone rules read in the job's region); other
numbers in plain decimal notation; dates as ISO 8601 (``YYYY-MM-DD``, with ``THH:MM:SS``
when the cell has a time of day); booleans as Excel shows them (``TRUE``/``FALSE``);
formulas as the value Excel cached when it last saved the file. Rows whose cells are all
empty are left out (as blank lines are not rows), and every row loses its trailing empty
cells, so a sheet whose declared dimension is far larger than its data costs nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import resource
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from lib.parse.errors import FileRejected

DELIMITER = ";"
ROOT = Path(__file__).resolve().parents[2]  # where `python -m lib...` finds the package
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
TYPES = ("xlsx", "xlsm", "ods", "xls")

SAVE_AS_CSV = (
    'Open it in Excel (or LibreOffice) and save the sheet of leads as "CSV UTF-8 (comma delimited)", '
    "then import that CSV file."
)


@dataclass(frozen=True)
class Limits:
    """The largest workbook the conversion accepts: measured (bench/workbook.py), with
    margin, to fit in one function call (vercel.json's maxDuration and memory)."""

    max_bytes: int  # the file as uploaded
    max_expanded_bytes: int  # its parts decompressed (zip), or the file (xls)
    max_ratio: int = 250  # decompressed / compressed size of a part: more is a zip bomb


@dataclass(frozen=True)
class Sheet:
    name: str
    rows: int  # data rows: rows with a non-empty cell, less the header

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows}


@dataclass(frozen=True)
class Conversion:
    sheet: str
    sheets: list[Sheet]
    rows: int  # data rows written
    peak_rss_mb: float | None = None  # the converting process's peak RSS, when measured


def is_workbook(head: bytes) -> bool:
    """The file's first bytes are a zip (.xlsx, .xlsm, .ods) or an OLE2 compound file (.xls,
    or an encrypted Office file)."""
    return head.startswith(ZIP_MAGIC) or head.startswith(OLE_MAGIC)


def check_workbook(data: BinaryIO, size: int, limits: Limits) -> str:
    """The workbook's type (TYPES), or FileRejected saying what is wrong and what to do.

    Reads the zip's central directory (or the OLE2 header), never the cells."""
    if size > limits.max_bytes:
        raise _too_large(f"The workbook is {_mb(size)}", limits)
    head = data.read(8)
    data.seek(0)
    if head.startswith(OLE_MAGIC):
        blob = data.read()
        data.seek(0)
        # An encrypted .xlsx is an OLE2 file holding the encrypted package.
        if "EncryptedPackage".encode("utf-16-le") in blob or "EncryptionInfo".encode("utf-16-le") in blob:
            raise _encrypted()
        if "Workbook".encode("utf-16-le") not in blob and "Book".encode("utf-16-le") not in blob:
            raise FileRejected(
                "not_a_workbook",
                "This is an Office document but not an Excel workbook (a Word or PowerPoint file?). "
                "Upload the CSV file, or the Excel workbook, that holds your leads.",
            )
        if size > limits.max_expanded_bytes:
            raise _too_large(f"The workbook is {_mb(size)}", limits)
        return "xls"
    try:
        archive = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _corrupt() from exc
    with archive:
        infos = archive.infolist()
        names = {i.filename for i in infos}
        expanded = sum(i.file_size for i in infos)
        for info in infos:
            if info.file_size > (1 << 20) and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                raise FileRejected(
                    "workbook_bomb",
                    f"The part {info.filename!r} of this file would expand {info.file_size // max(info.compress_size, 1):,} "
                    "times when opened: it is not a workbook a spreadsheet saved, and it is not read. "
                    "If it holds your leads, open it in Excel and save the sheet as CSV UTF-8, then import the CSV.",
                )
        if expanded > limits.max_expanded_bytes:
            raise _too_large(f"Its sheets hold {_mb(expanded)} of data once decompressed", limits)
        if "xl/workbook.xml" in names or "xl/workbook.bin" in names:
            if "xl/workbook.bin" in names:
                raise FileRejected(
                    "unsupported_workbook",
                    "This is an Excel binary workbook (.xlsb), which is not read here. "
                    'Save it in Excel as "Excel Workbook (.xlsx)" or as CSV UTF-8, and import that file.',
                )
            return "xlsm" if "xl/vbaProject.bin" in names or _macro_enabled(archive) else "xlsx"
        if "content.xml" in names and _ods(archive):
            return "ods"
    raise FileRejected(
        "not_a_workbook",
        "This is a ZIP archive (or a Word, PowerPoint or other document), not a workbook or a CSV file. "
        "If it holds your leads, open them in your spreadsheet and save it as CSV UTF-8, then upload that file.",
    )


def convert(path: str, out: BinaryIO, sheet: str | None = None) -> Conversion:
    """Write the sheet named `sheet` (by default the first with data) as CSV to `out`, and
    count the data rows of every sheet. FileRejected for a workbook that cannot be read."""
    from python_calamine import CalamineError, CalamineWorkbook, PasswordError, SheetTypeEnum

    try:
        wb = CalamineWorkbook.from_path(path)
    except PasswordError as exc:
        raise _encrypted() from exc
    except (CalamineError, OSError, ValueError) as exc:
        raise _corrupt(exc) from exc
    sheets: list[Sheet] = []
    chosen: str | None = None
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    try:
        names = [m.name for m in wb.sheets_metadata if m.typ == SheetTypeEnum.WorkSheet]
        if sheet is not None and sheet not in names:
            raise FileRejected(
                "unknown_sheet",
                f"The workbook has no sheet named {sheet!r}. Its sheets: {', '.join(names) or 'none'}.",
            )
        for name in names:
            try:
                rows = wb.get_sheet_by_name(name).iter_rows()
                wanted = chosen is None and (name == sheet if sheet is not None else True)
                count = write_csv(rows, text) if wanted else _count(rows)
            except PasswordError as exc:
                raise _encrypted() from exc
            except (CalamineError, ValueError) as exc:
                raise _corrupt(exc) from exc
            sheets.append(Sheet(name, max(count - 1, 0)))
            if wanted and (count > 1 or (count and sheet is not None)):
                chosen = name
            elif wanted:
                # By default the first sheet with a data row: a sheet holding only a title or
                # a header is skipped, and what it wrote goes.
                text.flush()
                out.seek(0)
                out.truncate()
            if wanted and sheet is not None and not count:
                raise FileRejected(
                    "empty_sheet",
                    f"The sheet {sheet!r} is empty. Choose the sheet that holds your leads; the others: "
                    + ", ".join(n for n in names if n != sheet)
                    + ".",
                )
        text.flush()
    finally:
        text.detach()
        wb.close()
    if chosen is None:
        raise FileRejected(
            "empty_workbook",
            "No sheet of this workbook holds any data"
            + (f" (sheets: {', '.join(names)})" if names else "")
            + ". Check that you uploaded the right file, or fill in the leads with a header row first.",
        )
    written = next(s.rows for s in sheets if s.name == chosen)
    return Conversion(chosen, sheets, written)


def write_csv(rows: Iterable[list[Any]], text: io.TextIOWrapper) -> int:
    """The rows as CSV, header first; returns the rows written (header included), 0 when
    the sheet has no data (nothing is written then)."""
    cells = _cells(rows)
    header = next(cells, None)
    if header is None:
        return 0
    writer = csv.writer(text, delimiter=DELIMITER, lineterminator="\r\n")
    writer.writerow(header)
    width, written = len(header), 1
    padding = [""] * width

    def padded() -> Iterator[list[str]]:
        # Padded to the header's width, so every record has as many fields.
        nonlocal written
        for row in cells:
            if len(row) < width:
                row.extend(padding[len(row) :])
            written += 1
            yield row

    writer.writerows(padded())
    return written


def _count(rows: Iterable[list[Any]]) -> int:
    return sum(1 for _ in _cells(rows))


def _cells(rows: Iterable[list[Any]]) -> Iterator[list[str]]:
    """Each row with a non-empty cell, as text, without its trailing empty cells."""
    for row in rows:
        # Text cells (most of them) skip the call.
        cells = [v if type(v) is str else cell_text(v) for v in row]
        while cells and not cells[-1].strip():
            cells.pop()
        if cells:
            yield cells


def cell_text(value: Any) -> str:
    """A cell's value as the text the parse reads (see the module docstring)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float:
        if value.is_integer():
            return str(int(value))
        r = repr(value)
        return format(Decimal(r), "f") if "e" in r else r
    if kind is bool:
        return "TRUE" if value else "FALSE"
    if kind is int:
        return str(value)
    if kind is dt.datetime:
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if kind is dt.date:
        return value.isoformat()
    if kind is dt.time:
        return value.isoformat(timespec="seconds")
    if kind is dt.timedelta:
        seconds = int(value.total_seconds())
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return "" if value is None else str(value)


def _macro_enabled(archive: zipfile.ZipFile) -> bool:
    try:
        return b"macroEnabled" in archive.read("[Content_Types].xml")[:65536]
    except KeyError:
        return False


def _ods(archive: zipfile.ZipFile) -> bool:
    try:
        return archive.read("mimetype")[:100].startswith(b"application/vnd.oasis.opendocument.spreadsheet")
    except KeyError:
        return False


def _mb(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MB" if n >= 1 << 20 else f"{n / 1024:,.0f} KB"


def _too_large(what: str, limits: Limits) -> FileRejected:
    return FileRejected(
        "workbook_too_large",
        f"{what}, more than a workbook import reads at once (up to {_mb(limits.max_bytes)} as a file, "
        f"{_mb(limits.max_expanded_bytes)} of sheet data). {SAVE_AS_CSV} CSV files have no such limit.",
    )


def _encrypted() -> FileRejected:
    return FileRejected(
        "workbook_encrypted",
        "This workbook is protected by a password, so it cannot be read. Open it in Excel, remove the "
        "password (File > Info > Protect Workbook > Encrypt with Password, then clear it) and upload it "
        "again, or save the sheet as CSV UTF-8 and import that file.",
    )


def _corrupt(exc: BaseException | None = None) -> FileRejected:
    detail = f" (the reader said: {str(exc)[:200]})" if exc is not None and str(exc) else ""
    return FileRejected(
        "workbook_unreadable",
        "This workbook is damaged or incomplete (was the upload or the download cut short?), so it cannot "
        f"be read{detail}. Open it in Excel: if it opens, save it again (or as CSV UTF-8) and upload that "
        "file; if not, upload the original file again.",
    )


@dataclass(frozen=True)
class Bounds:
    """What the conversion may use: its process's address space and its time."""

    memory_bytes: int
    seconds: float


def convert_bounded(path: str, out_path: str, sheet: str | None, bounds: Bounds) -> Conversion:
    """`convert` in a child process whose memory and time are capped.

    calamine lays a sheet out as a dense grid from its first to its last non-empty cell: a
    single value far from the data (a space in cell XFD1048576) asks for hundreds of GB and
    aborts the process. In a child, that abort (or a conversion past its time) is a message
    for the user, and the function serving the request lives on.
    """
    args = [sys.executable, "-m", "lib.parse.workbook", path, out_path, sheet or "", str(bounds.memory_bytes)]
    try:
        # An argument list, no shell: the sheet name is one argument, whatever it holds.
        proc = subprocess.run(args, capture_output=True, timeout=bounds.seconds, check=False, cwd=ROOT)  # noqa: S603
    except subprocess.TimeoutExpired as exc:
        raise FileRejected(
            "workbook_too_slow",
            f"Reading this workbook took longer than {bounds.seconds:.0f} s, the most an import gives it. "
            + SAVE_AS_CSV,
        ) from exc
    try:
        reply = json.loads(proc.stdout.decode())
    except ValueError:
        reply = None
    if proc.returncode == 0 and isinstance(reply, dict) and "sheet" in reply:
        sheets = [Sheet(s["name"], s["rows"]) for s in reply["sheets"]]
        return Conversion(reply["sheet"], sheets, reply["rows"], reply.get("peak_rss_mb"))
    if isinstance(reply, dict) and "code" in reply:
        raise FileRejected(reply["code"], reply["message"])
    raise FileRejected(
        "workbook_too_large",
        f"Opening this workbook needs more than the {bounds.memory_bytes >> 20} MB an import gives it: its "
        "sheet is very large, or it holds a value far below or to the right of the data (a space in a "
        "distant cell makes the sheet that large). Delete the rows and columns after your data, or "
        + SAVE_AS_CSV[0].lower()
        + SAVE_AS_CSV[1:],
    )


def _child(argv: list[str]) -> int:
    """The child of convert_bounded: caps its own memory, converts, prints JSON."""
    path, out_path, sheet, memory = argv
    resource.setrlimit(resource.RLIMIT_AS, (int(memory), int(memory)))
    try:
        with open(out_path, "w+b") as out:
            result = convert(path, out, sheet or None)
    except FileRejected as exc:
        print(json.dumps({"code": exc.code, "message": exc.message}))
        return 1
    except MemoryError:
        return 3
    except BaseException as exc:
        print(json.dumps({"code": "workbook_unreadable", "message": _corrupt(exc).message}))
        return 1
    sheets = [s.to_json() for s in result.sheets]
    print(json.dumps({"sheet": result.sheet, "sheets": sheets, "rows": result.rows, "peak_rss_mb": _peak_rss_mb()}))
    return 0


def _peak_rss_mb() -> float | None:
    """This process's peak RSS (VmHWM: it counts the reader's native memory), where Linux says."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1:]))

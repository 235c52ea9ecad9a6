"""The review of a parsed job: its codes with example rows, why a row is invalid, in words,
and the error report CSV. The frontend's review (lib/routes/review.py) and the CLI's
(lib/cli_output.py) show the same.

The report is made for Excel, French Excel first: UTF-8 with a byte order mark (without
it Excel reads the file as cp1252), `;` between cells, CRLF line ends. A cell that a
spreadsheet could take for a formula gets a leading `'` (OWASP "CSV injection"): one that
starts with a tab or a CR, or whose first character after any blanks (spaces, NBSP, the
other Unicode spaces and zero-width characters, line breaks) is `=`, `+`, `-`, `@` or their
full-width forms, since spreadsheets skip such blanks before deciding (` =1+1` is a
formula to them). The report repeats what the uploaded file held, and whoever opens it may
not be whoever wrote it. A phone such as `+33 6 12 34 56 78` gets the
`'` too; Excel shows it as text, which is what it is.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from lib.db import Connection, Row, queries
from lib.parse.reader import BLANK

EXAMPLES = 5  # example rows shown per code
ERROR_TEXT = {
    "no_contact": "No valid email and no valid phone number: the row cannot be imported.",
    "malformed_row": "The row has more cells than the header has columns (a stray delimiter or quote?).",
    "invalid_email": "The email address is not valid.",
    "invalid_phone": "The phone number is not valid.",
    "excluded": "Excluded from the import during review.",
}
WARNING_TEXT = {
    "invalid_email": "The email address is not valid: the lead is imported with it as written, "
    "and matched by its phone only.",
    "invalid_phone": "The phone number is not valid: the lead is imported with it as written, "
    "and matched by its email only.",
    "undecodable_bytes": "Some characters could not be read in the file's encoding (shown as �).",
}
FORMULA_START = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
CONTROL_START = ("\t", "\r", "\n")
SHOWN_CHARS = 80  # of a bad value quoted in a reason


def describe(code: str, *, warning: bool = False) -> str:
    """The human text of an error (or warning) code."""
    text = (WARNING_TEXT if warning else ERROR_TEXT).get(code)
    return text or code.replace("_", " ").capitalize() + "."


def codes(conn: Connection, job: Row, *, warnings: bool) -> list[dict[str, Any]]:
    """The job's error (or warning) codes, most frequent first, each with its count, its text
    and the numbers of its first few rows."""
    counts: dict[str, int] = job["warning_counts" if warnings else "error_counts"]
    ordered = sorted(counts, key=lambda c: (-counts[c], c))
    if not ordered:
        return []
    params = {"job": job["id"], "codes": ordered, "warnings": warnings, "limit": EXAMPLES}
    examples = {r["code"]: r["rows"] for r in conn.execute(queries()["review_examples"], params)}
    return [
        {
            "code": code,
            "count": counts[code],
            "message": describe(code, warning=warnings),
            "example_rows": examples.get(code, []),
        }
        for code in ordered
    ]


def row_values(raw: Sequence[str], header: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """The row's cells by header name (missing cells of a short row are empty), and the
    cells past the header's width."""
    values = {name: raw[i] if i < len(raw) else "" for i, name in enumerate(header)}
    return values, list(raw[len(header) :])


def reasons(
    codes: Sequence[str], raw: Sequence[str], header: Sequence[str], mapping: Sequence[str | None]
) -> list[dict[str, Any]]:
    """Code and text of each error of a row; the text names the bad value when there is one.

    The facts the text is made of come with it, for a client that words it in another
    language: `value` (the bad email or phone, shortened like in the text) when there is one,
    `cells` and `columns` for a malformed row."""
    out: list[dict[str, Any]] = []
    for code in codes:
        reason: dict[str, Any] = {"code": code, "message": describe(code)}
        if code in ("invalid_email", "invalid_phone"):
            value = _cell(raw, mapping, code.removeprefix("invalid_"))
            what = "email address" if code == "invalid_email" else "phone number"
            if value:
                reason.update(message=f"The {what} “{value}” is not valid.", value=value)
        elif code == "malformed_row":
            reason.update(
                message=f"The row has {len(raw)} cells but the header has {len(header)} columns "
                "(a stray delimiter or quote?).",
                cells=len(raw),
                columns=len(header),
            )
        out.append(reason)
    return out


def _cell(raw: Sequence[str], mapping: Sequence[str | None], field: str) -> str:
    try:
        i = list(mapping).index(field)
    except ValueError:
        return ""
    value = raw[i].strip() if i < len(raw) else ""
    return value if len(value) <= SHOWN_CHARS else value[: SHOWN_CHARS - 1] + "…"


def neutralize(cell: str) -> str:
    """A cell a spreadsheet shows as text, never evaluates."""
    if cell.startswith(CONTROL_START) or cell.lstrip(BLANK).startswith(FORMULA_START):
        return "'" + cell
    return cell


def report_chunks(
    header: Sequence[str],
    mapping: Sequence[str | None],
    pages: Iterable[Iterable[dict[str, Any]]],
    *,
    extra_column: bool,
) -> Iterator[bytes]:
    """The error report, one encoded chunk per page of staged rows (dicts with row_no, raw,
    errors): the header line first, with the byte order mark."""
    columns = ["Row", *header, *(["Extra cells"] if extra_column else []), "Reasons"]
    yield codecs.BOM_UTF8 + _lines([columns])
    for page in pages:
        lines = []
        for row in page:
            values, extra = row_values(row["raw"], header)
            why = reasons(row["errors"], row["raw"], header, mapping)
            line = [str(row["row_no"]), *values.values()]
            if extra_column:
                line.append(";".join(extra))
            line.append(" / ".join(r["message"] for r in why))
            lines.append(line)
        if lines:
            yield _lines(lines)


def _lines(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    writer.writerows([neutralize(cell) for cell in row] for row in rows)
    return buf.getvalue().encode("utf-8")

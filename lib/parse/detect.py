"""The validating step's look at a file: encoding, delimiter, header, mapping.

inspect_stream() scans the whole file once (lib.parse.scan) and inspects its head: the
encoding (lib.parse.encoding), the delimiter that splits the first records most consistently
(quotes respected), the header row and the automatic mapping. Everything a person must fix
raises FileRejected with a message saying what to do.

The mapping is auto_map's unless the caller passes `mapper` (header -> mapping): the
validating step passes one that can apply an organization's remembered mapping
(lib/remembered.py), so a file whose contact column only a remembered mapping knows is not
refused.
"""

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from lib.parse.encoding import choose_encoding
from lib.parse.errors import FileRejected
from lib.parse.mapping import CONTACT_FIELDS, auto_map
from lib.parse.reader import BLANK, iter_records
from lib.parse.scan import SAMPLE_SIZE, FileScan, FileScanner

__all__ = ["FileFacts", "FileScan", "FileScanner", "inspect", "inspect_stream"]

SAMPLE_RECORDS = 200
DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True, slots=True)
class FileFacts:
    encoding: str  # Python codec name
    bom_length: int  # bytes of byte order mark to skip
    delimiter: str
    header: list[str]  # cleaned column names: trimmed, unique, never empty
    data_offset: int  # absolute byte offset of the first record after the header
    mapping: list[str | None]  # lead field per column (auto_map, or the caller's mapper)
    estimated_rows: int  # data rows, estimated from the head's average row length (exact for small files)


Mapper = Callable[[list[str]], list[str | None]]


def inspect_stream(
    stream: BinaryIO, *, chunk_size: int = 1 << 20, mapper: Mapper = auto_map, delimiter: str | None = None
) -> tuple[FileFacts, FileScan]:
    """Scan a whole file, then inspect it."""
    scanner = FileScanner()
    while chunk := stream.read(chunk_size):
        scanner.feed(chunk)
    scan = scanner.finish()
    return inspect(scan.head, scan=scan, mapper=mapper, delimiter=delimiter), scan


def inspect(
    head: bytes, *, scan: FileScan | None = None, mapper: Mapper = auto_map, delimiter: str | None = None
) -> FileFacts:
    """Encoding, delimiter, header and mapping from the file's first bytes.

    Without ``scan``, ``head`` is taken to be the whole file. ``delimiter``: known already
    (the CSV a workbook became), not guessed."""
    size = scan.size if scan is not None else len(head)
    whole = size <= len(head)
    if not size:
        raise FileRejected("empty_file", "The file is empty. Upload the CSV file that holds your leads.")
    encoding, bom = choose_encoding(head, scan, whole)

    start = bom
    if m := _SEP_LINE.match(head, bom):  # Excel's delimiter hint line, "sep=;"
        start, delimiter = m.end(), m[1].decode(encoding)
    parsed = {d: _records(head, start, encoding, d, whole) for d in ([delimiter] if delimiter else DELIMITERS)}
    if whole and not all(parsed.values()):  # a reading that leaves only blank lines: no content
        raise FileRejected("empty_file", "The file holds only blank lines. Upload the CSV file that holds your leads.")
    delimiter = delimiter or _choose_delimiter(parsed)
    records = parsed[delimiter]
    if not records:
        raise FileRejected(
            "unreadable_start",
            f"The first row of the file does not end within its first {len(head) >> 10} KB. "
            'A quote (") is probably opened in a cell and never closed; fix that cell, '
            "or save the file again from your spreadsheet as CSV.",
        )

    header = _clean_header(records[0][0])
    data_offset = records[0][1]
    data = records[1:]
    if not data and whole:
        raise FileRejected(
            "no_data",
            f"The file has a header ({', '.join(header)}) but no data rows: "
            "add the leads below the header row, one per line.",
        )
    mapping = mapper(header)
    if not any(field in CONTACT_FIELDS for field in mapping):
        raise FileRejected(
            "no_contact_column",
            f"No column is recognized as an email or a phone number. Columns found: {', '.join(header)}. "
            'Name the email column "E-mail" or the phone column "Téléphone" (or "Email", "Phone") '
            "and upload the file again.",
        )
    if whole and len(records) <= SAMPLE_RECORDS:
        estimated = len(data)
    else:
        estimated = round((size - data_offset) / ((data[-1][1] - data_offset) / len(data))) if data else 0
    return FileFacts(encoding, bom, delimiter, header, data_offset, mapping, estimated)


_SEP_LINE = re.compile(rb"sep=([,;\t|])[ \t]*(?:\r\n|\n|\r)", re.IGNORECASE)


def _records(head: bytes, start: int, encoding: str, delimiter: str, whole: bool) -> list[tuple[list[str], int]]:
    """The first complete records of the head (the last one may be cut unless whole)."""
    records = []
    stream = io.BytesIO(head[start:])
    for cells, end in iter_records(stream, start=start, encoding=encoding, delimiter=delimiter, chunk_size=SAMPLE_SIZE):
        if end >= len(head) and not whole:
            break
        records.append((cells, end))
        if len(records) > SAMPLE_RECORDS:
            break
    return records


def _choose_delimiter(parsed: dict[str, list[tuple[list[str], int]]]) -> str:
    """The delimiter whose records agree best with the header's field count, then the one
    giving the most columns; "," when no delimiter splits the header."""
    best, best_score = ",", (0.0, 1)
    for delimiter, records in parsed.items():
        if not records or (width := len(records[0][0])) < 2:
            continue
        data = records[1:]
        agree = sum(1 for cells, _ in data if len(cells) == width) / len(data) if data else 1.0
        if (agree, width) > best_score:
            best, best_score = delimiter, (agree, width)
    return best


def _clean_header(cells: list[str]) -> list[str]:
    header: list[str] = []
    for i, cell in enumerate(cells):
        name = " ".join(cell.strip(BLANK).split()) or f"column_{i + 1}"
        if _looks_like_data(name):
            raise FileRejected(
                "no_header",
                f"The first row looks like data, not column names (it holds {name!r}). "
                "Add a first row naming the columns, for example: E-mail;Téléphone;Nom;Prénom.",
            )
        unique, n = name, 1
        while unique in header:
            n += 1
            unique = f"{name} ({n})"
        header.append(unique)
    return header


def _looks_like_data(name: str) -> bool:
    if "@" in name and "." in name.split("@")[-1] and " " not in name:
        return True
    digits = sum(c.isdigit() for c in name)
    return digits >= 8 and re.fullmatch(r"[+\d][\d .\-/()]*", name) is not None

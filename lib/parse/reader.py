"""CSV records from a binary stream, each with the absolute byte offset right after it.

A parse slice opens the file at its cursor, reads records until its budget runs out and saves
the offset after the last record it consumed; the next slice starts there. So every record
must come with its end offset, and no record may be cut by a chunk boundary.

How: each chunk is split into lines on the bytes ``\\r``, ``\\n`` and ``\\r\\n`` (exactly the
line ends the csv module sees), the lines are decoded one by one and handed to the C csv
reader, whose ``line_num`` maps each record back to a line and so to a byte offset. The last
record of a chunk may be incomplete (a chunk can end inside a quoted multi-line field, or
between ``\\r`` and ``\\n``), so it is held back and parsed again with the next chunk.
"""

import codecs
import csv
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import BinaryIO

from lib.parse.errors import FileRejected

CHUNK_SIZE = 1 << 20
MAX_RECORD_BYTES = 8 << 20
# How far past a too-long record the reader looks to tell a big cell from an unclosed quote.
LOOKAHEAD_BYTES = 64 << 20

# Characters that make a cell blank; str.strip() alone keeps the zero-width ones.
BLANK = (
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def iter_records(
    stream: BinaryIO,
    *,
    start: int = 0,
    encoding: str = "utf-8",
    delimiter: str = ",",
    chunk_size: int = CHUNK_SIZE,
    max_record_bytes: int = MAX_RECORD_BYTES,
    first_row: int = 1,
) -> Iterator[tuple[list[str], int]]:
    """Yield ``(cells, end)`` for each non-blank record; ``end`` is the absolute byte offset
    after the record's line end. ``stream`` starts at absolute offset ``start``.

    Blank records (no cell with more than whitespace) are skipped, their bytes consumed.
    Undecodable bytes become U+FFFD. ``first_row`` only numbers the row in the error raised
    for a record over ``max_record_bytes`` (usually an unclosed quote).
    """
    if csv.field_size_limit() < max_record_bytes:
        # A record within max_record_bytes never holds a longer field (1 char >= 1 byte).
        csv.field_size_limit(max_record_bytes)
    decode = _line_decoder(encoding)
    row = first_row
    base = start  # absolute offset of pending[0]
    pending = b""
    want = chunk_size
    eof = False
    while not eof:
        chunk = stream.read(want)
        eof = not chunk
        buf = pending + chunk if pending else chunk
        if not buf:
            return
        lines = buf.splitlines(keepends=True)
        ends = list(accumulate(map(len, lines)))
        reader = csv.reader(decode(lines), delimiter=delimiter, quotechar='"', doublequote=True)
        done = 0  # bytes of buf consumed by the records already handled
        held: list[str] | None = None
        reader_line = 0
        try:
            for cells in reader:
                if held is not None:
                    if (end := ends[reader_line - 1]) - done > max_record_bytes:
                        raise _too_large(row, base + done, max_record_bytes, closed=True)
                    done = end
                    if held and (held[0].strip(BLANK) or "".join(held).strip(BLANK)):
                        yield held, base + end
                        row += 1
                held = cells
                reader_line = reader.line_num
        except csv.Error as exc:
            # csv's own field limit (set to max_record_bytes above): the same too-long record.
            closed = _record_closes(buf[ends[reader_line - 1] if held is not None else done :], stream)
            raise _too_large(row + (held is not None), base + done, max_record_bytes, closed=closed) from exc
        if held is not None and eof:
            if (end := ends[reader_line - 1]) - done > max_record_bytes:
                raise _too_large(row, base + done, max_record_bytes, closed=True)
            if held and (held[0].strip(BLANK) or "".join(held).strip(BLANK)):
                yield held, base + end
            return
        pending = buf[done:]
        base += done
        if len(pending) > max_record_bytes:
            raise _too_large(row, base, max_record_bytes, closed=_record_closes(pending, stream))
        # Read at least as much again as is pending, so a huge record costs linear time.
        want = max(chunk_size, len(pending))


def _line_decoder(encoding: str) -> Callable[[list[bytes]], list[str]]:
    """Decodes lines one by one, undecodable bytes as U+FFFD."""
    info = codecs.lookup(encoding)
    if info.name == "utf-8":  # str.decode has a fast path for it
        return lambda lines: [line.decode("utf-8", "replace") for line in lines]
    decode = info.decode  # skips the codec lookup that bytes.decode does on every call
    return lambda lines: [decode(line, "replace")[0] for line in lines]


def _record_closes(head: bytes, stream: BinaryIO, lookahead: int = LOOKAHEAD_BYTES) -> bool | None:
    """Whether the record starting `head` (the rest of the file after it is in `stream`)
    ends: its quotes balance at a line end, or at the end of the file. None when that is
    not known within `lookahead` more bytes. Only read to word the error of a too-long
    record: a cell that is just big, or a quote never closed."""
    quotes = 0
    data, read = head, 0
    while True:
        # Between an even number of quotes is outside any quoted cell: a line end there ends it.
        for i, part in enumerate(data.split(b'"')):
            if (quotes + i) % 2 == 0 and (b"\n" in part or b"\r" in part):
                return True
        quotes += data.count(b'"')
        if read >= lookahead:
            return None
        data = stream.read(min(CHUNK_SIZE * 8, lookahead - read))
        if not data:
            return quotes % 2 == 0
        read += len(data)


def _too_large(row: int, offset: int, limit: int, *, closed: bool | None) -> FileRejected:
    if closed:
        why = (
            f"A cell of this row is over the {_size(limit)} limit for one row; "
            "shorten it, or remove that column, and import the file again."
        )
    elif closed is None:
        why = 'A cell is over the limit, or a quote (") is opened in a cell and never closed; fix that cell.'
    else:
        why = (
            'A quote (") is opened in a cell and never closed; fix that cell, '
            "or save the file again from your spreadsheet as CSV."
        )
    return FileRejected("record_too_large", f"Row {row} (from byte {offset}) is longer than {_size(limit)}. {why}")


def _size(n: int) -> str:
    return f"{n / (1 << 20):g} MB" if n >= 1 << 20 else f"{n} bytes"

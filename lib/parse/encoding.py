"""Which text encoding a file is in, or why it is not a text file at all.

UTF-8 when it has a UTF-8 byte order mark or is valid UTF-8 throughout; otherwise a legacy
encoding a French spreadsheet may be saved in, cp1252 (Windows Excel) first, guessed by
charset-normalizer. Never mojibake: UTF-8 is never read as cp1252. UTF-16 is refused (the
reader works on bytes split at ASCII line ends) with the way to save the file as UTF-8.
"""

import codecs

import charset_normalizer

from lib.parse.errors import FileRejected
from lib.parse.scan import SAMPLE_SIZE, FileScan

# Tried in this order of preference on a tie: Windows Excel, Latin-9, Mac Excel, MS-DOS.
LEGACY_ENCODINGS = ("cp1252", "iso8859_15", "mac_roman", "cp850")
SAVE_AS_CSV = 'In Excel: File > Save As > "CSV UTF-8 (comma delimited)", then upload that file.'


def choose_encoding(head: bytes, scan: FileScan | None, whole: bool) -> tuple[str, int]:
    """(Python codec name, byte order mark length). Raises FileRejected for binary files.

    ``whole``: the head is the whole file; without ``scan``, the head alone is judged."""
    reject_binary(head, None if scan is None else scan.nul_offset)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", len(codecs.BOM_UTF8)
    if scan is not None:
        utf8_ok = scan.utf8_ok
    else:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=whole)
            utf8_ok = True
        except UnicodeDecodeError:
            utf8_ok = False
    if utf8_ok:
        return "utf-8", 0
    return _legacy_encoding(scan.sample if scan is not None and scan.sample else head), 0


_SIGNATURES = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 .xls workbook (or another Office document)"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"{\\rtf", "an RTF document"),
)


def reject_binary(head: bytes, nul_offset: int | None = None) -> None:
    """Raise FileRejected unless the head looks like text (``nul_offset``: a NUL seen further on)."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            if kind == "zip":
                kind = (
                    "an Excel .xlsx workbook"
                    if b"xl/" in head
                    else "an OpenDocument spreadsheet (.ods)"
                    if b"opendocument.spreadsheet" in head
                    else "a ZIP archive (or an Office document)"
                )
            raise FileRejected(
                "binary_file",
                f"This looks like {kind}, not a CSV file. Open it in your spreadsheet and save it as CSV: "
                + SAVE_AS_CSV,
            )
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")) or _looks_utf16(head):
        raise FileRejected(
            "utf16_file",
            'This file is saved as UTF-16 ("Unicode text"), which is not supported. Save it again as CSV UTF-8: '
            + SAVE_AS_CSV,
        )
    lowered = head[:512].lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        raise FileRejected(
            "binary_file", "This is a web page (HTML), not a CSV file. Save your spreadsheet as CSV: " + SAVE_AS_CSV
        )
    nul = head.find(b"\0")
    if nul < 0 and nul_offset is not None:
        nul = nul_offset
    if nul >= 0:
        raise FileRejected(
            "binary_file",
            f"The file contains NUL bytes (the first at byte {nul}): it is not a text CSV file, or it is damaged. "
            "Save your spreadsheet as CSV again: " + SAVE_AS_CSV,
        )
    window = head[:SAMPLE_SIZE]
    controls = len(window) - len(window.translate(None, _CONTROL_BYTES))
    if controls > max(8, len(window) // 100):
        raise FileRejected(
            "binary_file",
            "This is not a text file (it holds binary data). Save your spreadsheet as CSV: " + SAVE_AS_CSV,
        )


_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0c")


def _looks_utf16(head: bytes) -> bool:
    """UTF-16 without a byte order mark: text whose every other byte is NUL."""
    window = head[:4096]
    if len(window) < 4:
        return False
    even, odd = window[0::2], window[1::2]
    return max(even.count(0) / len(even), odd.count(0) / len(odd)) > 0.3


def _legacy_encoding(sample: bytes) -> str:
    """The encoding of a file that is not valid UTF-8."""
    text = sample.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = sum(1 for c in text if c > "\x7f") - bad
    if good and good >= 4 * bad:
        # Mostly UTF-8 with a few stray bytes (files pasted together): decoding as cp1252
        # would turn every accent into mojibake; the stray bytes become U+FFFD warnings.
        return "utf-8"
    results = _guess(sample)
    if (
        LEGACY_ENCODINGS[0] not in [r.encoding for r in results]
        and (cleaned := sample.translate(None, _CP1252_UNDEFINED)) != sample
    ):
        # charset-normalizer drops an encoding on the first byte it cannot decode: give cp1252
        # its chance when only the few bytes it leaves undefined (stray bytes) stand in its way.
        results = _guess(cleaned)
    if not results:
        return LEGACY_ENCODINGS[0]
    least = min(r.chaos for r in results)
    tied = [r.encoding for r in results if r.chaos <= least + 0.001]
    return LEGACY_ENCODINGS[0] if LEGACY_ENCODINGS[0] in tied else tied[0]


_CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"


def _guess(sample: bytes) -> list[charset_normalizer.CharsetMatch]:
    return list(charset_normalizer.from_bytes(sample, cp_isolation=list(LEGACY_ENCODINGS)))

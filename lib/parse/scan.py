"""One pass over a whole file: fingerprint, size, UTF-8 validity, NUL bytes, encoding sample.

The validating step feeds the file through a FileScanner once, so that an ASCII-only head
cannot pass a cp1252 file off as UTF-8, and so that NUL bytes deep in the file are seen.
"""

import codecs
import hashlib
import re
from dataclasses import dataclass

HEAD_SIZE = 1 << 20
SAMPLE_SIZE = 64 << 10


@dataclass(frozen=True, slots=True)
class FileScan:
    size: int
    sha256: str  # hex digest of the whole file
    utf8_ok: bool  # the whole file is valid UTF-8
    nul_offset: int | None  # first NUL byte
    head: bytes  # the first bytes, for inspect()
    sample: bytes  # lines holding non-ASCII bytes (up to SAMPLE_SIZE), to guess a legacy encoding


class FileScanner:
    """Feed it the whole file in chunks, in order, then call finish()."""

    def __init__(self, head_size: int = HEAD_SIZE) -> None:
        self._sha = hashlib.sha256()
        self._size = 0
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._utf8_ok = True
        self._nul: int | None = None
        self._head_size = head_size
        self._head = bytearray()
        self._sample = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        if len(self._head) < self._head_size:
            self._head += chunk[: self._head_size - len(self._head)]
        if self._nul is None and (i := chunk.find(b"\0")) >= 0:
            self._nul = self._size + i
        if self._utf8_ok:
            try:
                self._utf8.decode(chunk)
            except UnicodeDecodeError:
                self._utf8_ok = False
        if len(self._sample) < SAMPLE_SIZE and not chunk.isascii():
            self._add_sample(chunk)
        self._size += len(chunk)

    def _add_sample(self, chunk: bytes) -> None:
        pos = 0
        while len(self._sample) < SAMPLE_SIZE and (m := _NON_ASCII.search(chunk, pos)):
            start = chunk.rfind(b"\n", 0, m.start()) + 1
            end = chunk.find(b"\n", m.end())
            end = len(chunk) if end < 0 else end + 1
            self._sample += chunk[start:end]
            pos = end

    def finish(self) -> FileScan:
        if self._utf8_ok:
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                self._utf8_ok = False
        return FileScan(
            self._size,
            self._sha.hexdigest(),
            self._utf8_ok,
            self._nul,
            bytes(self._head),
            bytes(self._sample),
        )


_NON_ASCII = re.compile(rb"[\x80-\xff]")

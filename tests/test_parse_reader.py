"""lib.parse.reader: records and their end offsets, whatever the chunking or the restarts."""

import csv
import io
import random
from pathlib import Path

import pytest

from lib.parse.errors import FileRejected
from lib.parse.reader import iter_records

FILES = Path(__file__).parent / "files"


def records(data: bytes, start: int = 0, **kw) -> list[tuple[list[str], int]]:
    kw.setdefault("delimiter", ";")
    return list(iter_records(io.BytesIO(data[start:]), start=start, **kw))


def cells(data: bytes, **kw) -> list[list[str]]:
    return [c for c, _ in records(data, **kw)]


class ShortReads(io.RawIOBase):
    """A stream that returns fewer bytes than asked, like a network body, and logs the asks."""

    def __init__(self, data: bytes, seed: int = 0) -> None:
        self.data, self.pos, self.asks = data, 0, []
        self.rnd = random.Random(seed)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.asks.append(n)
        n = self.rnd.randint(1, max(1, n))
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def tricky_file() -> bytes:
    """Every shape the reader must get right, in one UTF-8 file."""
    return (
        b"Nom;E-mail;Commentaire\r\n"
        b'Lef\xc3\xa8vre;a@b.fr;"deux\r\nlignes"\r\n'
        b"\r\n"
        b'"Martin; Associ\xc3\xa9s";c@d.fr;"il a dit ""oui"""\n'
        b"   \n"
        b";;\r"
        b'Z\xc3\xb6e;e@f.fr;"trois\nlignes\rici"\r'
        b"court\n"
        b'"a""b";"";\xe2\x82\xac\r\n'
        b"\xc3\xa9t\xc3\xa9;nul\x00byte;fin"
    )


TRICKY = [
    ["Nom", "E-mail", "Commentaire"],
    ["Lefèvre", "a@b.fr", "deux\r\nlignes"],
    ["Martin; Associés", "c@d.fr", 'il a dit "oui"'],
    ["Zöe", "e@f.fr", "trois\nlignes\rici"],
    ["court"],
    ['a"b', "", "€"],
    ["été", "nul\x00byte", "fin"],
]


def test_tricky_file_records_and_offsets():
    data = tricky_file()
    got = records(data)
    assert [c for c, _ in got] == TRICKY
    ends = [end for _, end in got]
    assert ends[-1] == len(data)
    assert ends[0] == data.index(b"\r\n") + 2
    # Every offset is a record boundary: parsing from it with csv gives the remaining records.
    for (_, end), rest in zip(got, range(1, len(got) + 1), strict=True):
        tail = data[end:].decode("utf-8")
        expected = [r for r in csv.reader(io.StringIO(tail, newline=""), delimiter=";") if "".join(r).strip()]
        assert expected == TRICKY[rest:]


@pytest.mark.parametrize("name", ["excel_fr_cp1252.csv", "excel_fr_utf8_bom.csv", "english_comma.csv"])
def test_chunk_sizes_and_restarts_give_identical_records(name):
    data = (FILES / name).read_bytes()
    encoding = "cp1252" if "cp1252" in name else "utf-8"
    delimiter = "," if "comma" in name else ";"
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    kw = {"encoding": encoding, "delimiter": delimiter}
    reference = records(data, start, chunk_size=1 << 20, **kw)
    assert reference
    for size in range(1, 65):
        assert records(data, start, chunk_size=size, **kw) == reference, size
    # A slice may stop after any record; the next one restarts at the saved offset.
    for i, (_, end) in enumerate(reference):
        for size in (1, 7, 1 << 20):
            assert records(data, end, chunk_size=size, **kw) == reference[i + 1 :]


def test_tricky_file_every_chunk_size_and_restart():
    data = tricky_file()
    reference = records(data)
    for size in [*range(1, 65), 1 << 20]:
        assert records(data, chunk_size=size) == reference
    for i, (_, end) in enumerate(reference):
        for size in range(1, 20):
            assert records(data, end, chunk_size=size) == reference[i + 1 :]


def test_sliced_run_over_a_generated_file(tmp_path):
    """Slices of at most 37 rows, each restarting at the previous slice's cursor."""
    from lib.parse.sample import write_sample_csv

    path = tmp_path / "leads.csv"
    write_sample_csv(path, 3000, seed=5)
    data = path.read_bytes()
    kw = {"encoding": "cp1252", "delimiter": ";"}
    whole = records(data, **kw)
    sliced, cursor = [], 0
    while True:
        with path.open("rb") as f:
            f.seek(cursor)
            batch = []
            for record in iter_records(f, start=cursor, chunk_size=4096, **kw):
                batch.append(record)
                if len(batch) == 37:
                    break
        if not batch:
            break
        sliced += batch
        cursor = batch[-1][1]
    assert sliced == whole
    assert len(whole) == 3001
    assert cursor == len(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a;b\r\nc;d\r\n", [["a", "b"], ["c", "d"]]),
        (b"a;b\nc;d\n", [["a", "b"], ["c", "d"]]),
        (b"a;b\rc;d\r", [["a", "b"], ["c", "d"]]),
        (b"a;b\r\nc;d\ne;f\rg;h", [["a", "b"], ["c", "d"], ["e", "f"], ["g", "h"]]),
        (b"a;b", [["a", "b"]]),
        (b"\n\n\r\n  \n;;\n\xc2\xa0;\n", []),
        (b"", []),
    ],
)
def test_line_ends_no_final_newline_and_blank_lines(data, expected):
    got = records(data)
    assert [c for c, _ in got] == expected
    if got:
        assert got[-1][1] == len(data)


def test_blank_lines_are_consumed_but_not_records():
    data = b"a;b\n\n\n;;\nc;d\n\n"
    got = records(data)
    assert got == [(["a", "b"], 4), (["c", "d"], 13)]
    assert records(data, 13) == []


def test_field_larger_than_csv_default_limit():
    big = "é" * 200_000
    data = f'x;"{big}"\ny;z\n'.encode()
    for size in (1024, 1 << 20):
        got = records(data, chunk_size=size)
        assert [c for c, _ in got] == [["x", big], ["y", "z"]]


def test_multibyte_characters_split_across_chunks():
    text = "Prénom;Société\nÉlodie;Bœuf & Cie — 1 200 €\n"
    data = text.encode()
    for size in range(1, 8):
        assert cells(data, chunk_size=size) == [["Prénom", "Société"], ["Élodie", "Bœuf & Cie — 1 200 €"]]


def test_undecodable_bytes_become_replacement_characters():
    assert cells(b"caf\xe9;ok\n") == [["caf\ufffd", "ok"]]
    assert cells(b"a\x81b;ok\n", encoding="cp1252") == [["a\ufffdb", "ok"]]


def test_unterminated_quote_at_eof_yields_the_rest_as_one_record():
    data = b'a;b\nc;"open\nd;e\n'
    got = records(data)
    assert got == [(["a", "b"], 4), (["c", "open\nd;e\n"], len(data))]
    assert records(data, chunk_size=2) == got


def test_record_above_limit_names_the_row():
    data = b"a;b\n" + b'c;"never closed\n' + b"x;y\n" * 5000
    for size in (64, 1 << 20):
        with pytest.raises(FileRejected) as err:
            records(data, chunk_size=size, max_record_bytes=1000, first_row=41)
        assert err.value.code == "record_too_large"
        assert "Row 42 (from byte 4)" in err.value.message
        assert "quote" in err.value.message


def test_short_reads_and_bounded_reads():
    data = (b"Nom;Email\n" + b"Dupont;dupont@orange.fr\n" * 20000) + b'x;"' + b"y" * 5000 + b'"\n'
    stream = ShortReads(data)
    got = list(iter_records(stream, delimiter=";", chunk_size=1024))
    assert len(got) == 20002
    assert got[-1] == (["x", "y" * 5000], len(data))
    # Never the whole file: the asks stay near the chunk size (doubling only for the big record).
    assert max(stream.asks) <= 16 * 1024


def test_a_run_of_mixed_chunk_sizes_matches_on_random_files():
    rnd = random.Random(3)
    alphabet = ["a", "é", ";", '"', "\n", "\r", "\r\n", " ", "x", '""', "€"]
    for _ in range(150):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 80)))
        data = text.encode()
        reference = records(data)
        for size in (1, 2, 3, 5, 11):
            assert records(data, chunk_size=size) == reference, (text, size)
        for i, (_, end) in enumerate(reference):
            assert records(data, end, chunk_size=3) == reference[i + 1 :], (text, end)

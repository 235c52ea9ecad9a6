"""lib.parse.sample, end to end through detect, reader and rows: the counts it promises."""

from collections import Counter

from lib.parse.detect import inspect_stream
from lib.parse.reader import iter_records
from lib.parse.rows import RowChecker
from lib.parse.sample import HEADER, write_sample_csv


def test_sample_file_counts(tmp_path):
    path = tmp_path / "LEADCLIENT.csv"
    stats = write_sample_csv(path, 6000, seed=3)
    with path.open("rb") as f:
        facts, scan = inspect_stream(f)
    assert (facts.encoding, facts.delimiter, facts.bom_length) == ("cp1252", ";", 0)
    assert facts.header == list(HEADER)
    assert None not in facts.mapping
    assert 5000 < facts.estimated_rows < 7000
    assert not scan.utf8_ok

    # Parse in slices of 500 rows, each reopening the file at the previous cursor.
    checker = RowChecker(facts.header, facts.mapping)
    counts: Counter = Counter()
    seen: set[str] = set()
    cursor, row_no = facts.data_offset, 0
    while True:
        done = 0
        with path.open("rb") as f:
            f.seek(cursor)
            for cells, end in iter_records(f, start=cursor, encoding=facts.encoding, delimiter=facts.delimiter):
                row_no += 1
                row = checker.check(row_no, cells)
                counts["valid" if row.valid else "invalid"] += 1
                counts.update(f"warning:{w}" for w in row.warnings)
                if row.key is not None:
                    counts["duplicate"] += row.key in seen
                    seen.add(row.key)
                counts["multiline"] += "\n" in row.fields.get("notes", "")
                cursor, done = end, done + 1
                if done == 500:
                    break
        if done == 0:
            break
    assert cursor == scan.size
    assert row_no == stats.rows == 6000
    assert counts["valid"] == stats.valid
    assert counts["invalid"] == stats.invalid
    assert counts["duplicate"] == stats.duplicates
    assert counts["warning:invalid_email"] == stats.invalid_email_warnings
    assert counts["warning:invalid_phone"] == stats.invalid_phone_warnings
    assert counts["multiline"] == stats.multiline
    assert stats.invalid > 0 and stats.duplicates > 0 and stats.multiline > 0


def test_same_seed_same_file(tmp_path):
    write_sample_csv(tmp_path / "a.csv", 300, seed=9)
    write_sample_csv(tmp_path / "b.csv", 300, seed=9)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()

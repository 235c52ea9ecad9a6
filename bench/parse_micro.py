"""Micro-benchmark of the parse core: CSV reading and row validation, no database.

    python bench/parse_micro.py [--rows 210202] [--file PATH] [--repeat 3]

Generates an Excel-style cp1252 file (lib.parse.sample) unless --file is given, then prints
rows/s for the reader alone and for reader + validation, and a µs/row breakdown. Each figure
is the best of --repeat runs in CPU time of this process (time.process_time: on a shared
machine, wall time also counts the other processes); wall-clock rows/s are shown beside.
"""

import argparse
import functools
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.parse.contact import normalize_email, normalize_phone, parse_phone, validate_email
from lib.parse.detect import inspect_stream
from lib.parse.reader import iter_records
from lib.parse.rows import RowChecker
from lib.parse.sample import write_sample_csv
from lib.parse_slice import copy_line

T = TypeVar("T")


WALL: dict[int, float] = {}
JOB_ID = b"6b6dbba2-d0b4-4b91-b3a9-6ab69724a423"


def best(repeat: int, run: Callable[[], T]) -> tuple[float, T]:
    """The shortest CPU time of ``repeat`` runs (caches emptied before each), and the result;
    the shortest wall time goes to WALL[id(run)]."""
    cpu, wall = [], []
    for _ in range(max(1, repeat)):
        validate_email.cache_clear()
        parse_phone.cache_clear()
        start, start_wall = time.process_time(), time.perf_counter()
        result = run()
        cpu.append(time.process_time() - start)
        wall.append(time.perf_counter() - start_wall)
    WALL[id(run)] = min(wall)
    return min(cpu), result


def map_all(function: Callable[[str], str | None], values: list[str]) -> list[str | None]:
    return [function(v) for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=210_202)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / "leads.csv"
            start = time.perf_counter()
            stats = write_sample_csv(path, args.rows)
            print(f"generated {stats} in {time.perf_counter() - start:.1f}s")
        size = path.stat().st_size

        start = time.perf_counter()
        with path.open("rb") as f:
            facts, _scan = inspect_stream(f)
        detect_s = time.perf_counter() - start
        print(f"file: {size / 1e6:.1f} MB, {facts.encoding}, {facts.delimiter!r}, header {facts.header}")
        print(f"detect (scan + sha256 + inspect): {detect_s * 1000:.0f} ms")

        def read() -> int:
            n = 0
            with path.open("rb") as f:
                f.seek(facts.data_offset)
                for _ in iter_records(f, start=facts.data_offset, encoding=facts.encoding, delimiter=facts.delimiter):
                    n += 1
            return n

        def read_check() -> Counter:
            checker = RowChecker(facts.header, facts.mapping)
            counts: Counter = Counter()
            with path.open("rb") as f:
                f.seek(facts.data_offset)
                records = iter_records(f, start=facts.data_offset, encoding=facts.encoding, delimiter=facts.delimiter)
                for row_no, (cells, _end) in enumerate(records, 1):
                    row = checker.check(row_no, cells)
                    counts["valid" if row.valid else "invalid"] += 1
            return counts

        def read_check_format() -> int:
            checker = RowChecker(facts.header, facts.mapping)
            size = 0
            firsts: dict[str, int] = {}  # match key -> its first row, as a parse slice keeps them
            with path.open("rb") as f:
                f.seek(facts.data_offset)
                records = iter_records(f, start=facts.data_offset, encoding=facts.encoding, delimiter=facts.delimiter)
                offset = facts.data_offset
                for row_no, (cells, end) in enumerate(records, 1):
                    row = checker.check(row_no, cells)
                    first = firsts.setdefault(row.key, row_no) if row.key else row_no
                    size += len(copy_line(JOB_ID, row, first, offset))
                    offset = end
            return size

        read_s, rows = best(args.repeat, read)
        check_s, counts = best(args.repeat, read_check)
        format_s, _ = best(args.repeat, read_check_format)
        print(f"rows: {rows} {dict(counts)}")
        for name, run, seconds in (
            ("reader only", read, read_s),
            ("reader+validation", read_check, check_s),
            ("+COPY text", read_check_format, format_s),
        ):
            print(
                f"{name + ':':19s} {rows / seconds:>9,.0f} rows/s  {seconds / rows * 1e6:5.2f} µs/row CPU"
                f"   (wall: {rows / WALL[id(run)]:,.0f} rows/s)"
            )

        # Breakdown: the contact normalizations over the file's own values.
        columns: dict[str, int] = {n: facts.mapping.index(n) for n in ("email", "phone") if n in facts.mapping}
        values: dict[str, list[str]] = {name: [] for name in columns}
        with path.open("rb") as f:
            f.seek(facts.data_offset)
            for cells, _end in iter_records(
                f, start=facts.data_offset, encoding=facts.encoding, delimiter=facts.delimiter
            ):
                for name, col in columns.items():
                    if col < len(cells) and (value := cells[col].strip()):
                        values[name].append(value)
        normalize: dict[str, Callable[[str], str | None]] = {"email": normalize_email, "phone": normalize_phone}
        library = {"email": validate_email, "phone": parse_phone}
        print("µs/row breakdown:")
        print(f"  read (decode + csv + offsets)    {read_s / rows * 1e6:5.2f}")
        rest = (check_s - read_s) * 1e6 / rows
        for field, vals in values.items():
            seconds, _ = best(args.repeat, functools.partial(map_all, normalize[field], vals))
            calls = library[field].cache_info()
            rest -= seconds * 1e6 / rows
            print(
                f"  {field} normalization              {seconds * 1e6 / rows:5.2f}  "
                f"({seconds / len(vals) * 1e6:.2f} per value; library called for "
                f"{(calls.hits + calls.misses) / len(vals):.1%} of values, {calls.misses} distinct)"
            )
        print(f"  rest of validation (trim, dicts) {rest:5.2f}")
        print(f"  COPY text of the staged row      {(format_s - check_s) / rows * 1e6:5.2f}")


if __name__ == "__main__":
    main()

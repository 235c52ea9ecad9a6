"""Workbook readers side by side: python-calamine (the one lib/parse/workbook.py uses) and
openpyxl in read-only mode, each converting the same sheet to CSV in a process of its own.

Prints, per reader: seconds, the process's peak RSS (VmHWM: it sees the reader's native
memory, which tracemalloc does not) and what it gives for a whole number, a phone saved as
a number, a decimal, a date, a date with a time, a formula and a boolean.

    python -m bench.workbook [--rows 210202] [--file PATH.xlsx]
    python -m bench.workbook --limits 210202 290000 400000

--limits: sample workbooks of these sizes through the service's own checks and bounded
conversion (lib/config.py's Settings.workbook_*): accepted or refused, with the
conversion's seconds and peak RSS, to find the largest workbook that fits with margin.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE_HEADER = ["E-mail", "Entier", "Téléphone", "Décimal", "Date", "Date et heure", "Formule", "Booléen"]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def write_probe(path: Path) -> None:
    import datetime as dt

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(PROBE_HEADER)
    ws.append(["a@example.fr", 1000, 612345678, 1.5, dt.date(2024, 3, 5), dt.datetime(2024, 3, 5, 14, 30), None, True])
    ws["G2"] = "=B2*2"
    wb.save(str(path))
    # openpyxl writes no cached value for a formula: add the one Excel would have saved.
    import zipfile

    src = zipfile.ZipFile(path)
    parts = {n: src.read(n) for n in src.namelist()}
    src.close()
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    parts["xl/worksheets/sheet1.xml"] = sheet.replace("<f>B2*2</f><v /></c>", "<f>B2*2</f><v>2000</v></c>").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            out.writestr(name, data)


def run_reader(reader: str, path: str, out: str) -> dict[str, object]:
    """In this process: convert the first sheet of `path` to CSV at `out`."""
    from lib.parse.workbook import cell_text, write_csv

    started = time.perf_counter()
    with open(out, "wb") as f:
        import io

        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        if reader == "calamine":
            from python_calamine import CalamineWorkbook

            wb = CalamineWorkbook.from_path(path)
            rows = write_csv(wb.get_sheet_by_index(0).iter_rows(), text)
        else:
            from openpyxl import load_workbook

            owb = load_workbook(path, read_only=True, data_only=True)
            rows = write_csv((list(r) for r in owb.worksheets[0].iter_rows(values_only=True)), text)
        text.flush()
        text.detach()
    seconds = time.perf_counter() - started
    raw: list[str] = []
    if reader == "calamine":
        from python_calamine import CalamineWorkbook

        first = CalamineWorkbook.from_path(path).get_sheet_by_index(0).iter_rows()
        next(first)
        raw = [repr(v) for v in next(first)]
    else:
        from openpyxl import load_workbook

        owb = load_workbook(path, read_only=True, data_only=True)
        it = owb.worksheets[0].iter_rows(values_only=True)
        next(it)
        raw = [repr(v) for v in next(it)]
    return {"reader": reader, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_rss_mb()), "rows": rows,
            "second_row_raw": raw, "second_row_csv": [cell_text(eval_value(v)) for v in raw]}  # fmt: skip


def eval_value(text: str) -> object:
    import datetime  # noqa: F401  (repr of dates)

    return eval(text)  # noqa: S307  (reprs this script made)


def measure(path: Path) -> list[dict[str, object]]:
    results = []
    for reader in ("calamine", "openpyxl"):
        with tempfile.NamedTemporaryFile(suffix=".csv") as out:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.workbook", "--child", reader, str(path), out.name],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results.append(json.loads(proc.stdout))
    return results


def limits(sizes: list[int]) -> int:
    """The service's checks and bounded conversion on sample workbooks of these sizes."""
    import zipfile

    from lib.config import Settings
    from lib.parse.errors import FileRejected
    from lib.parse.sample_workbook import write_sample_workbook
    from lib.parse.workbook import check_workbook, convert_bounded
    from lib.workbook_step import bounds, limits

    settings = Settings.from_env()  # IMPORT_WORKBOOK_* apply
    print(f"limits: {settings.workbook_max_mb} MB file, {settings.workbook_max_expanded_mb} MB of parts, "
          f"reader capped at {settings.workbook_memory_mb} MB and {settings.workbook_seconds:.0f} s")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"leads-{n}.xlsx"
            write_sample_workbook(path, n)
            size = path.stat().st_size
            with zipfile.ZipFile(path) as z:
                expanded = sum(i.file_size for i in z.infolist())
            line = f"  {n:>9,} rows: {size / 1e6:6.1f} MB file, {expanded / 1e6:6.1f} MB of parts: "
            started = time.perf_counter()
            try:
                with path.open("rb") as f:
                    check_workbook(f, size, limits(settings))
                result = convert_bounded(str(path), str(Path(tmp) / "out.csv"), None, bounds(settings))
                took = time.perf_counter() - started
                print(line + f"accepted, converted in {took:.1f} s, peak RSS {result.peak_rss_mb} MB")
            except FileRejected as exc:
                print(line + f"refused ({exc.code}) after {time.perf_counter() - started:.1f} s")
            path.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=210_202)
    p.add_argument("--file", type=Path)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--limits", type=int, nargs="+", metavar="ROWS")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(run_reader(*args.child)))
        return 0
    if args.limits:
        return limits(args.limits)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.xlsx"
        write_probe(probe)
        print("cell values, first data row of", PROBE_HEADER)
        for r in measure(probe):
            print(f"  {r['reader']:9} raw {r['second_row_raw']}\n            csv {r['second_row_csv']}")
        path = args.file
        if path is None:
            from lib.parse.sample_workbook import write_sample_workbook

            path = Path(tmp) / "leads.xlsx"
            write_sample_workbook(path, args.rows)
        print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB")
        for r in measure(path):
            print(f"  {r['reader']:9} {r['rows']:,} rows in {r['seconds']} s, peak RSS {r['peak_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

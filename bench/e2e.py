"""End-to-end benchmark: an Excel-style file of N rows through the local stack, as production runs.

    python -m bench.e2e [--rows 210202 ...] [--runs 3] [--json] [--database-url URL] [--workbook]

--workbook: the same rows also as an .xlsx (lib/parse/sample_workbook.py), imported in the
same run right after the CSV: its end-to-end time beside the CSV's, and its conversion's
seconds and peak RSS (the converting process's VmHWM, which sees calamine's native memory).

Per run: a fresh data folder (embedded Postgres unless --database-url, where a fresh
database is created, and dropped at the end), `python -m lib serve` in its own process (real HTTP between the local
QStash and the endpoints, real signatures, the production default slice budget), then
`python -m lib import FILE --yes --json`. Figures come from the job row and from the
service's slice log lines; peak memory is the service process's VmHWM. The raw baseline,
measured in the same run on the same database: Python's csv reading of the file, COPY into
a temporary table, INSERT ... SELECT ... ON CONFLICT into a copy of the indexed leads table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from lib.local.databases import run_database
from lib.local.stack import running_stack_env
from lib.parse.sample import write_sample_csv
from lib.parse.sample_workbook import write_sample_workbook

ROOT = Path(__file__).resolve().parent.parent
SLICE_LINE = re.compile(
    r"slice\.done job=\S+ phase=(\w+) run=\d+ slice=(\d+) start=([\d.]+) end=([\d.]+) work_ms=([\d.]+)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(env: dict[str, str], log_path: Path) -> Iterator[tuple[dict[str, str], int]]:
    """`python -m lib serve` on env's data folder until the block ends; yields its
    environment (as `python -m lib import` finds it) and its process id."""
    with log_path.open("w") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "lib", "serve", "--port", str(free_port())],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (stack_env := running_stack_env(env)) is None:
            if serve.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield stack_env, serve.pid
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(20)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()


def run_once(csv_path: Path, database_url: str | None, baseline_csv: Path | None = None) -> dict[str, Any]:
    """One import of `csv_path` (a CSV or a workbook); the raw baseline reads `baseline_csv`
    (default: the file itself)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, run_database(database_url, Path(tmp), "bench") as url:
        env = {**os.environ, "LOCAL_DATA_DIR": tmp, "LOG_LEVEL": "INFO", "PYTHONPATH": str(ROOT), "DATABASE_URL": url}
        env.pop("QSTASH_TOKEN", None)
        log_path = Path(tmp) / "serve.log"
        with serving(env, log_path) as (stack_env, pid):
            out = subprocess.run(
                [sys.executable, "-m", "lib", "import", str(csv_path), "--yes", "--json"],
                env={**env, "LOG_LEVEL": "WARNING"}, capture_output=True, text=True, cwd=ROOT, check=False,
            )  # fmt: skip
            if out.returncode != 0:
                raise RuntimeError(f"import failed:\n{out.stdout}\n{out.stderr}")
            result = json.loads(out.stdout)
            peak_kb = _vm_hwm(pid)
            baseline = raw_baseline(baseline_csv or csv_path, stack_env["DATABASE_URL"])
        slices = _slices(log_path.read_text())
    figures = _figures(result, slices, peak_kb, baseline)
    if workbook := result.get("workbook"):
        figures["convert_s"] = workbook["convert_seconds"]
        figures["convert_peak_rss_mb"] = workbook["convert_peak_rss_mb"]
    return figures


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _slices(log: str) -> dict[str, list[tuple[int, float, float, float]]]:
    by_phase: dict[str, list[tuple[int, float, float, float]]] = {}
    for m in SLICE_LINE.finditer(log):
        phase, n, start, end, work = (
            m.group(1),
            int(m.group(2)),
            float(m.group(3)),
            float(m.group(4)),
            float(m.group(5)),
        )
        by_phase.setdefault(phase, []).append((n, start, end, work / 1000))
    return {p: sorted(v) for p, v in by_phase.items()}


def _overheads(slices: list[tuple[int, float, float, float]]) -> list[float]:
    """Per slice: its time outside row work, plus the hop (publish, queue, HTTP) to the next."""
    out = []
    for i, (_n, start, end, work) in enumerate(slices):
        hop = slices[i + 1][1] - end if i + 1 < len(slices) else 0.0
        out.append((end - start - work) + max(hop, 0.0))
    return out


def _figures(r: dict[str, Any], slices: dict[str, Any], peak_kb: int, baseline: dict[str, float]) -> dict[str, Any]:
    el = r["elapsed_seconds"]
    overhead = _overheads(slices.get("parse", [])) + _overheads(slices.get("commit", []))
    return {
        "rows": r["total_rows"],
        "status": r["status"],
        "parse_rows_per_s": round(r["total_rows"] / el["parse"]),
        "commit_rows_per_s": round(r["valid_rows"] / el["commit"]) if el["commit"] else None,
        "end_to_end_s": el["total"],
        "parse_s": el["parse"],
        "commit_s": el["commit"],
        "slices": {p: len(v) for p, v in slices.items()},
        "median_slice_overhead_ms": round(1000 * statistics.median(overhead), 1) if overhead else None,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "baseline_s": baseline["total_s"],
        "baseline_commit_rows_per_s": baseline["insert_rows_per_s"],
        "ratio_to_baseline": round(el["total"] / baseline["total_s"], 2),
        "commit_vs_baseline": round((r["valid_rows"] / el["commit"]) / baseline["insert_rows_per_s"], 2)
        if el["commit"]
        else None,
    }


def raw_baseline(csv_path: Path, database_url: str) -> dict[str, float]:
    """csv reading + COPY into a temporary table + INSERT ... SELECT ... ON CONFLICT."""
    started = time.perf_counter()
    with csv_path.open(encoding="cp1252", newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))[1:]
    read_s = time.perf_counter() - started
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("drop table if exists bench_leads")
        conn.execute("create table bench_leads (like leads including all)")
        conn.execute("create unique index on bench_leads (organization_id, email_normalized)")
        org = conn.execute("select id from organizations limit 1").fetchone()[0]
        t0 = time.perf_counter()
        with conn.transaction():
            conn.execute(
                "create temp table raw_rows (civility text, first_name text, last_name text, company text,"
                " email text, phone text, address text, postal_code text, city text, country text, source text,"
                " notes text) on commit drop"
            )
            with conn.cursor().copy("copy raw_rows from stdin") as copy:
                for row in rows:
                    copy.write_row((row + [None] * 12)[:12])
            copied = time.perf_counter()
            conn.execute(
                "insert into bench_leads (organization_id, civility, first_name, last_name, company, email,"
                " email_normalized, phone, phone_e164, address, postal_code, city, country, source, notes)"
                " select %s, civility, first_name, last_name, company, email, lower(email), phone, phone,"
                " address, postal_code, city, country, source, notes from raw_rows"
                " on conflict do nothing",
                (org,),
            )
        done = time.perf_counter()
        conn.execute("drop table bench_leads")
    return {
        "read_s": round(read_s, 3),
        "copy_s": round(copied - t0, 3),
        "insert_s": round(done - copied, 3),
        "total_s": round(done - started, 3),
        "insert_rows_per_s": round(len(rows) / (done - t0)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[210_202])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--database-url", help="a Postgres server to use instead of the embedded one")
    p.add_argument("--workbook", action="store_true", help="also the same rows as .xlsx, in the same run")
    args = p.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-files-") as files:
        for n in args.rows:
            path = Path(files) / f"leads-{n}.csv"
            write_sample_csv(path, n, seed=1)
            book = Path(files) / f"leads-{n}.xlsx"
            if args.workbook:
                write_sample_workbook(book, n, seed=1)
            runs, book_runs = [], []
            for _ in range(args.runs):
                runs.append(run_once(path, args.database_url))
                if args.workbook:
                    book_runs.append(run_once(book, args.database_url, baseline_csv=path))
            med = {k: _median(runs, k) for k in runs[0] if k not in ("status", "slices", "rows")}
            results.append({"rows": n, "median": med, "slices": runs[0]["slices"], "runs": runs})
            if not args.json:
                _print_row(n, med, runs[0]["slices"], len(runs))
            if args.workbook:
                wb = {k: _median(book_runs, k) for k in book_runs[0] if k not in ("status", "slices", "rows")}
                wb["workbook_size_mb"] = round(book.stat().st_size / 1e6, 1)
                wb["vs_csv"] = round(wb["end_to_end_s"] / med["end_to_end_s"], 2)
                results[-1]["workbook"] = {"median": wb, "slices": book_runs[0]["slices"], "runs": book_runs}
                if not args.json:
                    _print_workbook(n, wb, len(book_runs))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _median(runs: list[dict[str, Any]], key: str) -> Any:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None


def _print_row(n: int, m: dict[str, Any], slices: dict[str, int], runs: int) -> None:
    print(f"\n{n:,} rows (median of {runs} run(s))")
    for label, key, unit in (
        ("end to end", "end_to_end_s", "s"),
        ("parse", "parse_rows_per_s", "rows/s"),
        ("commit", "commit_rows_per_s", "rows/s"),
        ("median slice overhead", "median_slice_overhead_ms", "ms"),
        ("peak memory (service)", "peak_rss_mb", "MB"),
        ("raw baseline", "baseline_s", "s"),
        ("baseline commit", "baseline_commit_rows_per_s", "rows/s"),
        ("end to end / baseline", "ratio_to_baseline", "x"),
        ("commit / baseline commit", "commit_vs_baseline", "x"),
    ):
        print(f"  {label:<26} {m[key]!s:>10} {unit}")
    print(f"  {'slices':<26} {', '.join(f'{p} {c}' for p, c in slices.items()):>10}")


def _print_workbook(n: int, m: dict[str, Any], runs: int) -> None:
    print(f"\n{n:,} rows as .xlsx (median of {runs} run(s), each right after the CSV's)")
    for label, key, unit in (
        ("workbook size", "workbook_size_mb", "MB"),
        ("end to end", "end_to_end_s", "s"),
        ("end to end / CSV's", "vs_csv", "x"),
        ("conversion", "convert_s", "s"),
        ("conversion peak RSS", "convert_peak_rss_mb", "MB"),
        ("parse (with conversion)", "parse_rows_per_s", "rows/s"),
        ("commit", "commit_rows_per_s", "rows/s"),
        ("peak memory (service)", "peak_rss_mb", "MB"),
    ):
        print(f"  {label:<26} {m[key]!s:>10} {unit}")


if __name__ == "__main__":
    raise SystemExit(main())

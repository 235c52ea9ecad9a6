"""Parse benchmark on the local stack: sample files through validating and parsing to ready.

    python -m bench.parse --rows 10000 210202 1000000 [--json] [--database-url URL]

For each size, a sample file (lib.parse.sample: cp1252, `;`, French headers, quoted
multi-line comments) is written to a temporary folder by a child process (so its memory is
not counted), then imported the way the frontend does it: POST /api/jobs, the file into
storage, POST /api/jobs/<id>/start, then GET /api/jobs/<id> until the job is ready. Every
slice is a signed QStash delivery (local QStash, real signatures) over real HTTP, with the
production slice budget: IMPORT_SLICE_SECONDS and IMPORT_PARSE_SLICE_ROWS are left unset
unless the environment sets them.

Figures per file:
- seconds: job created → ready, by the database's clock (created_at → parse_finished_at);
- rows/s: rows / seconds;
- slices: slices run, the validating step included;
- rss MB: peak resident memory of this process during the run (sampled every 20 ms with
  psutil when it is installed), and the process's high-water mark so far (getrusage, which
  only grows). This one process runs the whole stack in threads: the Flask app serving the
  slices and the local QStash. Postgres runs in its own process and is not counted.
- counts ok: total, valid, invalid, duplicate rows and warnings equal the generator's.

The database is an embedded Postgres in a temporary folder, or, with --database-url, a
scratch database created on that server and dropped afterwards.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from lib import db
from lib.auth import mint_token
from lib.local.databases import run_database
from lib.local.stack import LOCAL_MEMBERS, LocalStack
from lib.parse.sample import SampleStats, write_sample_csv
from lib.storage import storage_from_env

try:
    import psutil
except ImportError:  # optional: without it only the high-water mark is shown
    psutil = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parse", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 210_202], help="file sizes, in data rows")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON array instead of the table")
    parser.add_argument("--database-url", help="a Postgres server to use instead of an embedded one")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for one job")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"))

    results = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp,
        run_database(args.database_url, Path(tmp), "lead_import_bench") as url,
    ):
        files = _generate(Path(tmp), args.rows, args.seed)
        env = {**os.environ, "DATABASE_URL": url, "LOCAL_DATA_DIR": str(Path(tmp) / "local")}
        for name in ("QSTASH_TOKEN", "SUPABASE_URL", "NEXT_PUBLIC_SUPABASE_URL", "S3_ENDPOINT_URL", "APP_URL"):
            env.pop(name, None)  # always the local stack
        with LocalStack(env, faults="") as stack:
            for rows in sorted(args.rows):
                path, stats = files[rows]
                result = run(stack, path, stats, args.timeout)
                results.append(result)
                if not args.json:
                    print(_line(result) if len(results) > 1 else _header() + "\n" + _line(result), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        s = results[0]["settings"]
        print(
            f"slice budget {s['slice_seconds']} s, cap {s['parse_slice_rows']} rows; "
            f"{os.cpu_count()} CPUs; rss = this process (app + local QStash threads), not Postgres"
        )
    return 0 if all(r["status"] == "ready" and r["counts_ok"] for r in results) else 1


def run(stack: LocalStack, path: Path, stats: SampleStats, timeout: float) -> dict[str, Any]:
    """One file through validating and parsing, over HTTP as the frontend does it."""
    user, email, _role = LOCAL_MEMBERS[0]
    token = mint_token(stack.env["SUPABASE_JWT_SECRET"], str(user), email)
    settings = stack.settings
    storage = storage_from_env(settings.env, settings.local_data_dir)
    with (
        httpx.Client(base_url=stack.env["APP_URL"], headers={"Authorization": f"Bearer {token}"}, timeout=60) as api,
        db.connect(settings.database_url) as conn,
        RssSampler() as rss,
    ):
        r = api.post("/api/jobs", json={"file_name": path.name})
        r.raise_for_status()
        job_id = r.json()["job"]["id"]
        key = conn.execute("select storage_path from import_jobs where id = %s", (job_id,)).fetchone()
        with path.open("rb") as f:  # the browser's upload; before the job starts, so not timed
            storage.put(key["storage_path"], f)
        api.post(f"/api/jobs/{job_id}/start").raise_for_status()
        deadline = time.monotonic() + timeout
        while True:
            job = api.get(f"/api/jobs/{job_id}").json()["job"]
            if job["status"] not in ("pending", "validating", "parsing") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        row = conn.execute("select created_at, parse_finished_at from import_jobs where id = %s", (job_id,)).fetchone()
    seconds = (row["parse_finished_at"] - row["created_at"]).total_seconds() if row["parse_finished_at"] else None
    counts_ok = (
        job["total_rows"] == stats.rows
        and job["valid_rows"] == stats.valid
        and job["invalid_rows"] == stats.invalid
        and job["duplicate_rows"] == stats.duplicates
        and job["warning_counts"].get("invalid_email", 0) == stats.invalid_email_warnings
        and job["warning_counts"].get("invalid_phone", 0) == stats.invalid_phone_warnings
    )
    return {
        "rows": stats.rows,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "status": job["status"],
        "error_message": job["error_message"],
        "seconds": round(seconds, 2) if seconds else None,
        "rows_per_second": round(stats.rows / seconds) if seconds else None,
        "slices": job["slices_done"],
        "rss_before_mb": rss.before_mb,
        "rss_peak_mb": rss.peak_mb,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1),  # KiB on Linux
        "counts_ok": counts_ok,
        "job_id": job_id,
        "settings": {"slice_seconds": settings.slice_seconds, "parse_slice_rows": settings.parse_slice_rows},
    }


class RssSampler:
    """Peak resident memory of this process while the block runs (psutil, every 20 ms)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.before_mb: float | None = None
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        if psutil is not None:
            proc = psutil.Process()
            self.before_mb = self.peak_mb = round(proc.memory_info().rss / 1e6, 1)

            def sample() -> None:
                while not self._stop.wait(self.interval):
                    self.peak_mb = max(self.peak_mb or 0.0, round(proc.memory_info().rss / 1e6, 1))

            self._thread = threading.Thread(target=sample, name="rss-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _generate(folder: Path, sizes: list[int], seed: int) -> dict[int, tuple[Path, SampleStats]]:
    """The sample files, written by a child process so the generator's memory stays out of
    this process's figures."""
    paths = {rows: folder / f"LEADCLIENT-{rows}.csv" for rows in sizes}
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        futures = {rows: pool.submit(write_sample_csv, paths[rows], rows, seed) for rows in sizes}
        return {rows: (paths[rows], f.result()) for rows, f in futures.items()}


def _header() -> str:
    return (
        f"{'rows':>9} {'file MB':>8} {'status':>7} {'seconds':>8} {'rows/s':>8} {'slices':>6} "
        f"{'rss before':>10} {'rss peak':>9} {'max rss':>8} {'counts ok':>9}"
    )


def _line(r: dict[str, Any]) -> str:
    def num(v: Any, fmt: str) -> str:
        return format(v, fmt) if v is not None else "-"

    return (
        f"{r['rows']:>9} {r['file_mb']:>8} {r['status']:>7} {num(r['seconds'], '>8.2f')} "
        f"{num(r['rows_per_second'], '>8')} {r['slices']:>6} {num(r['rss_before_mb'], '>10')} "
        f"{num(r['rss_peak_mb'], '>9')} {r['max_rss_mb']:>8} {'yes' if r['counts_ok'] else 'NO':>9}"
    )


if __name__ == "__main__":
    sys.exit(main())

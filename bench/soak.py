"""Soak benchmark: N different files imported one after another into one organization on one database.

    python -m bench.soak [--rows 210202] [--files 5] [--runs 1] [--other-leads 1000000] [--json] [--database-url URL]

Per run: a fresh data folder and database (embedded Postgres unless --database-url, where a
fresh database is created, and dropped at the end), migrated and filled with history
(bench.history: other organizations' leads, an earlier import, other jobs' staged rows),
then `python -m lib serve` in its own process and, for seeds 1..N, a generated file of R
rows through `python -m lib import FILE --yes --json`, with autovacuum at its defaults and
an explicit ANALYZE and CHECKPOINT of the whole database before each import (see _settle).
Per import: parse and commit rows/s and end-to-end seconds from the job row, the end-to-end
time per row relative to the first import's, and what the server did meanwhile
(server_counters). The question: does an import slow down as leads and staged rows pile up?
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.e2e import ROOT, serving
from bench.history import add_history
from lib import db
from lib.local.databases import run_database
from lib.local.stack import LOCAL_MEMBERS, LOCAL_ORG
from lib.parse.sample import write_sample_csv

TIMEOUT_S = 600
WITHIN = 1.3


def soak_run(files: list[Path], database_url: str | None, other_leads: int, quiet: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, run_database(database_url, Path(tmp), "soak") as url:
        env = {**os.environ, "LOCAL_DATA_DIR": tmp, "LOG_LEVEL": "INFO", "PYTHONPATH": str(ROOT)}
        env.pop("QSTASH_TOKEN", None)
        env.pop("DATABASE_URL", None)  # embedded: serve finds (and reuses) the server started here
        if database_url:
            env["DATABASE_URL"] = url
        started = time.perf_counter()
        db.migrate(url)
        add_history(url, other_leads=other_leads)  # before serve, so it seeds the local organization
        _check_local_org(url)
        if not quiet:
            print(f"history: {other_leads:,} other leads in {time.perf_counter() - started:.1f} s", flush=True)
        results = []
        with serving(env, Path(tmp) / "serve.log") as (stack_env, _pid):
            assert stack_env["DATABASE_URL"] == url, (stack_env["DATABASE_URL"], url)
            for i, path in enumerate(files, 1):
                settle_s = _settle(url)
                before = server_counters(url)
                results.append(_import(path, env, i, settle_s, results[0] if results else None))
                results[-1]["server"] = counter_deltas(before, server_counters(url))
                if not quiet:
                    _print_import(results[-1])
    return results


def _check_local_org(url: str) -> None:
    with db.connect(url) as conn:
        members = conn.execute(
            "select count(*) from organization_members where organization_id = %s", (LOCAL_ORG,)
        ).fetchone()["count"]
    if members != len(LOCAL_MEMBERS):
        raise RuntimeError(f"local organization {LOCAL_ORG} has {members} member(s), not {len(LOCAL_MEMBERS)}")


# What the server did during one import, from its cumulative statistics: checkpoints (and
# the full-page images that follow one into the WAL), pages the backends had to write out
# themselves to make room in shared buffers, and pages read from outside them. A slow import
# with a checkpoint in it, or with backend writes the others lack, is the server's housekeeping
# or a working set outgrowing shared_buffers, not a plan.
_COUNTERS = """
select (select checkpoints_timed + checkpoints_req from pg_stat_bgwriter) as checkpoints,
       (select buffers_backend from pg_stat_bgwriter) as backend_writes,
       (select wal_fpi from pg_stat_wal) as wal_fpi,
       (select wal_bytes from pg_stat_wal)::bigint as wal_bytes,
       (select blks_read from pg_stat_database where datname = current_database()) as blks_read,
       (select coalesce(sum(autovacuum_count + autoanalyze_count), 0) from pg_stat_all_tables)::bigint as autovacuums
"""


def server_counters(url: str) -> dict[str, int]:
    with db.connect(url) as conn:
        conn.execute("select pg_stat_clear_snapshot()")
        return {k: int(v) for k, v in conn.execute(_COUNTERS).fetchone().items()}


def counter_deltas(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in before}


def _settle(url: str) -> float:
    """Before every import, the first included: ANALYZE (what autovacuum does on its own, and
    the statistics that once flipped a plan) and a CHECKPOINT. Without the checkpoint, the one
    that max_wal_size forces falls inside whichever import crosses the WAL volume (the fifth,
    on this benchmark: about 300 MB of WAL per import after the history's load), and that
    import writes a full-page image of every page it touches first: 13,270 of them and 1.6x
    the first import's time in one run. That cost belongs to the checkpoint's timing, not to
    the history; the counters printed per import show any that still happen."""
    started = time.perf_counter()
    with db.connect(url) as conn:
        conn.execute("analyze")
        conn.execute("checkpoint")
    return round(time.perf_counter() - started, 2)


def _import(path: Path, env: dict[str, str], position: int, settle_s: float | None, first: Any) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "lib", "import", str(path), "--yes", "--json", "--org", str(LOCAL_ORG)],
        env={**env, "LOG_LEVEL": "WARNING"}, capture_output=True, text=True, cwd=ROOT, check=False, timeout=TIMEOUT_S,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"import {position} ({path.name}) failed:\n{out.stdout}\n{out.stderr}")
    r = json.loads(out.stdout)
    el = r["elapsed_seconds"]
    per_row = el["total"] / r["total_rows"]
    return {
        "position": position,
        "rows": r["total_rows"],
        "inserted": r["inserted_rows"],
        "settle_before_s": settle_s,
        "parse_rows_per_s": round(r["total_rows"] / el["parse"]),
        "commit_rows_per_s": round(r["valid_rows"] / el["commit"]) if el["commit"] else None,
        "end_to_end_s": el["total"],
        "per_row_s": per_row,
        "ratio": round(per_row / first["per_row_s"], 3) if first else 1.0,
    }


def _print_import(r: dict[str, Any]) -> None:
    analyze = f"  (analyze and checkpoint {r['settle_before_s']} s before)"
    print(
        f"import {r['position']}: {r['rows']:,} rows, {r['inserted']:,} inserted  parse {r['parse_rows_per_s']:,} rows/s"
        f"  commit {r['commit_rows_per_s'] or 0:,} rows/s  end to end {r['end_to_end_s']} s  ratio {r['ratio']}{analyze}",
        flush=True,
    )
    c = r["server"]
    print(
        f"    server: {c['checkpoints']} checkpoint(s), {c['wal_bytes'] / 2**20:,.0f} MB of WAL"
        f" ({c['wal_fpi']:,} full-page images), {c['backend_writes']:,} backend writes,"
        f" {c['blks_read']:,} blocks read, {c['autovacuums']} autovacuum/autoanalyze run(s)",
        flush=True,
    )


def medians(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    def median(i: int, key: str) -> Any:
        values = [run[i][key] for run in runs if run[i][key] is not None]
        return statistics.median(values) if values else None

    keys = ("end_to_end_s", "ratio", "parse_rows_per_s", "commit_rows_per_s")
    return [{"position": i + 1, **{k: median(i, k) for k in keys}} for i in range(len(runs[0]))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=210_202)
    p.add_argument("--files", type=int, default=5)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--other-leads", type=int, default=1_000_000)
    p.add_argument("--database-url", help="a Postgres server to use instead of the embedded one")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-files-") as tmp:
        files = [Path(tmp) / f"leads-{args.rows}-seed{k}.csv" for k in range(1, args.files + 1)]
        for k, path in enumerate(files, 1):
            write_sample_csv(path, rows=args.rows, seed=k)
        runs = []
        for k in range(args.runs):
            if not args.json:
                print(f"\nrun {k + 1}/{args.runs}: {args.files} files of {args.rows:,} rows", flush=True)
            runs.append(soak_run(files, args.database_url, args.other_leads, args.json))
    med = medians(runs)
    ok = all(m["ratio"] <= WITHIN for m in med)
    if args.json:
        print(json.dumps({"rows": args.rows, "median": med, "within": ok, "runs": runs}, indent=2))
        return 0
    print(f"\nmedian of {args.runs} run(s), {args.rows:,} rows per file, {args.other_leads:,} other leads")
    print(f"  {'position':>8} {'end to end s':>13} {'ratio':>7} {'parse rows/s':>13} {'commit rows/s':>14}")
    for m in med:
        print(
            f"  {m['position']:>8} {m['end_to_end_s']:>13.3f} {m['ratio']:>7.3f}"
            f" {m['parse_rows_per_s']:>13,.0f} {m['commit_rows_per_s'] or 0:>14,.0f}"
        )
    print(f"every position's median ratio within {WITHIN}: {'yes' if ok else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

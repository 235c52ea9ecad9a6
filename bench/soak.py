"""Soak benchmark: N different files imported one after another into one organization on one database.

    python -m bench.soak [--rows 210202] [--files 5] [--runs 1] [--other-leads 1000000] [--json] [--database-url URL]

Per run: a fresh data folder and database (embedded Postgres unless --database-url, where a
fresh database is created, and dropped at the end), migrated and filled with history
(bench.history: other organizations' leads, an earlier import, other jobs' staged rows),
then `python -m lib serve` in its own process and, for seeds 1..N, a generated file of R
rows through `python -m lib import FILE --yes --json`, with autovacuum at its defaults and
an explicit ANALYZE of the whole database between imports. Per import: parse and commit
rows/s and end-to-end seconds from the job row, and the end-to-end time per row relative to
the first import's. The question: does an import slow down as leads and staged rows pile up?
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
                analyze_s = _analyze(url) if i > 1 else None
                results.append(_import(path, env, i, analyze_s, results[0] if results else None))
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


def _analyze(url: str) -> float:
    started = time.perf_counter()
    with db.connect(url) as conn:
        conn.execute("analyze")
    return round(time.perf_counter() - started, 2)


def _import(path: Path, env: dict[str, str], position: int, analyze_s: float | None, first: Any) -> dict[str, Any]:
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
        "analyze_before_s": analyze_s,
        "parse_rows_per_s": round(r["total_rows"] / el["parse"]),
        "commit_rows_per_s": round(r["valid_rows"] / el["commit"]) if el["commit"] else None,
        "end_to_end_s": el["total"],
        "per_row_s": per_row,
        "ratio": round(per_row / first["per_row_s"], 3) if first else 1.0,
    }


def _print_import(r: dict[str, Any]) -> None:
    analyze = f"  (analyze {r['analyze_before_s']} s before)" if r["analyze_before_s"] is not None else ""
    print(
        f"import {r['position']}: {r['rows']:,} rows, {r['inserted']:,} inserted  parse {r['parse_rows_per_s']:,} rows/s"
        f"  commit {r['commit_rows_per_s'] or 0:,} rows/s  end to end {r['end_to_end_s']} s  ratio {r['ratio']}{analyze}",
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

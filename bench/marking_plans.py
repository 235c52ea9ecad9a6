"""The plans of in-file duplicate marking on a database with history, before and now.

    python -m bench.marking_plans [--database-url URL] [--rows 20000]

On a migrated database with history (bench.history.add_history, then ANALYZE), a job's rows
are staged after the statistics were gathered, as every new job's are: every 30th row of
its second half repeats a key of its first half. Then:

- before: the end-of-parse UPDATE over a window of the job's rows that marking used to be
  (until 7fc04d1): its plan, then a run cancelled after 60 s;
- now: the two statements a parse slice runs for the keys earlier slices staged
  (lib/parse_slice.py: earlier_keys, point_to_earlier_keys), for the second half as one
  slice, with EXPLAIN ANALYZE.

The database is an embedded Postgres in a temporary folder, or, with --database-url, a
scratch database created on that server and dropped afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench.history import add_history
from lib import db
from lib.db import array_literal, queries
from lib.local.databases import run_database

BEFORE = """update staged_rows s set duplicate_of = d.first_row
from (
  select row_no, min(row_no) over (partition by match_key) as first_row
  from staged_rows
  where job_id = %(job)s and valid and match_key is not null
) d
where s.job_id = %(job)s and s.row_no = d.row_no and d.first_row <> d.row_no"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.marking_plans", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a server to create a scratch database on (default: embedded)")
    parser.add_argument("--rows", type=int, default=20_000, help="the job's rows (even)")
    args = parser.parse_args(argv)
    half = args.rows // 2
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        run_database(args.database_url, Path(tmp), "plans") as url,
    ):
        db.migrate(url)
        add_history(url)
        with psycopg.connect(url, autocommit=True) as conn:
            job = uuid.uuid4()
            conn.execute(
                "insert into staged_rows (job_id, row_no, raw, valid, match_key)"
                " select %(job)s, g, '{}', true,"
                " 'k' || case when g > %(half)s and g %% 30 = 0 then g - %(half)s else g end || '@x.fr'"
                " from generate_series(1, 2 * %(half)s) g",
                {"job": job, "half": half},
            )
            show(conn, "before: the end-of-parse UPDATE, its plan", BEFORE, {"job": job}, analyze=False)
            show(conn, "before: the end-of-parse UPDATE, run", BEFORE, {"job": job}, analyze=True)
            second = range(half + 1, 2 * half + 1)
            keys = [f"k{g - half if g % 30 == 0 else g}@x.fr" for g in second]
            pointers = [g - half if g % 30 == 0 else 0 for g in second]
            show(conn, "now: earlier_keys, a slice's keys among the rows earlier slices staged", queries()["earlier_keys"],
                 {"job": job, "before": half, "keys": "\n".join(keys)}, analyze=True)  # fmt: skip
            show(conn, "now: point_to_earlier_keys", queries()["point_to_earlier_keys"],
                 {"job": job, "after": half, "until": 2 * half, "firsts": array_literal(pointers)}, analyze=True)  # fmt: skip
    return 0


def show(conn: psycopg.Connection[Any], title: str, sql: str, params: dict[str, Any], *, analyze: bool) -> None:
    print(f"--- {title}")
    options = "analyze, costs off, timing off, summary on" if analyze else "costs on"
    with conn.transaction(force_rollback=True):
        conn.execute("set local statement_timeout = '60s'")
        try:
            for (line,) in conn.execute(f"explain ({options}) {sql}", params):  # type: ignore[arg-type]
                print(line if len(line) <= 150 else line[:150] + "…")  # arrays of a slice's values, cut
        except psycopg.errors.QueryCanceled:
            print("(cancelled after 60 s)")


if __name__ == "__main__":
    raise SystemExit(main())

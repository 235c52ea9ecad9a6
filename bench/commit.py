"""Commit-phase benchmark: staged rows to leads on the local stack, beside a raw baseline.

    python -m bench.commit [--rows 210202] [--slice-rows N] [--duplicates update] [--database-url URL] [--json]

A generated Excel-style file (lib.parse.sample) is uploaded and parsed by the local stack
(in-process: real HTTP between the local QStash and the endpoints, real signatures), then
committed through the frontend's endpoint; the commit phase is timed from that request to
the job's `completed` status. The raw baseline, measured in the same run on the same
database with the same rows (the valid staged rows' lead fields): COPY into a temporary
table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING into a copy of the indexed leads
table with a unique index on (organization_id, email_normalized); best of two. Rates are
valid rows per second. The commit slices' step timings (debug log of lib.commit_slice)
show where the time goes.

With `--duplicates update`, the file is imported once first (untimed), every lead's company
is then changed by hand, and the timed commit is a second import of the same file in
`update` mode: every valid row updates a lead and keeps the values it overwrote (the
company). There is no raw baseline in that mode.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg

from lib import db, manager
from lib.auth import mint_token
from lib.local.databases import run_database
from lib.local.stack import LOCAL_MEMBERS, LOCAL_ORG, LocalStack
from lib.parse.sample import write_sample_csv
from lib.storage import storage_from_env

FIELDS = (
    "civility", "first_name", "last_name", "email", "phone", "company", "job_title", "address",
    "postal_code", "city", "country", "source", "notes",
)  # fmt: skip


class StepLog(logging.Handler):
    """Sums the commit slices' step timings."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.ms: dict[str, float] = {}
        self.slices = 0

    def emit(self, record: logging.LogRecord) -> None:
        steps = getattr(record, "steps_ms", None)
        if steps:
            self.slices += record.msg.startswith("commit.chunk")
            for k, v in steps.items():
                self.ms[k] = self.ms.get(k, 0.0) + v


def _wait(conn: Any, job_id: str, statuses: set[str], poll: float = 0.01) -> dict[str, Any]:
    while (job := conn.execute("select * from import_jobs where id = %s", (job_id,)).fetchone())[
        "status"
    ] not in statuses:
        time.sleep(poll)
    return job


def run(rows: int, slice_rows: int | None, server_url: str | None, duplicates: str = "skip") -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-commit-") as tmp,
        run_database(server_url, Path(tmp) / "local", "bench_commit") as url,
    ):
        env = {"PATH": os.environ.get("PATH", ""), "LOCAL_DATA_DIR": str(Path(tmp) / "local"), "DATABASE_URL": url}
        if slice_rows:
            env["IMPORT_COMMIT_SLICE_ROWS"] = str(slice_rows)
        csv_path = Path(tmp) / "leads.csv"
        write_sample_csv(csv_path, rows, seed=1)
        steps = StepLog()
        logger = logging.getLogger("lib.commit_slice")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(steps)
        try:
            with LocalStack(env) as stack, db.connect(stack.env["DATABASE_URL"]) as conn:
                job_id = _stage(stack, conn, csv_path)
                baseline = None
                if duplicates == "update":
                    _commit(stack, conn, job_id)
                    conn.execute("update leads set company = coalesce(company, '') || ' (avant)'")
                    job_id = _stage(stack, conn, csv_path)
                    conn.execute("checkpoint")
                commit = _commit(stack, conn, job_id, duplicates)
                if duplicates != "update":
                    baseline = max((raw_baseline(conn, job_id) for _ in range(2)), key=lambda b: b["rows_per_s"])
        finally:
            logger.removeHandler(steps)
    return {
        "rows": rows,
        **commit,
        "commit_chunks": steps.slices,
        "commit_steps_ms": {k: round(v) for k, v in steps.ms.items()},
        "baseline": baseline,
        "commit_vs_baseline": round(commit["commit_rows_per_s"] / baseline["rows_per_s"], 2) if baseline else None,
    }


def _stage(stack: LocalStack, conn: Any, csv_path: Path) -> str:
    settings = stack.settings
    key = f"{LOCAL_ORG}/{uuid.uuid4()}/{csv_path.name}"
    storage_from_env(settings.env, settings.local_data_dir).put(key, csv_path.read_bytes())
    job = manager.create_job(
        conn, org=str(LOCAL_ORG), user=str(LOCAL_MEMBERS[0][0]), file_name=csv_path.name,
        storage_path=key, settings={"region": "FR"}, lease_seconds=settings.lease_seconds,
    )  # fmt: skip
    job_id = str(job["id"])
    status, body = _post(stack, f"/api/jobs/{job_id}/start", {})
    assert status == 202, body
    job = _wait(conn, job_id, {"ready", "failed"}, poll=0.1)
    assert job["status"] == "ready", job["error_message"]
    return job_id


def _commit(stack: LocalStack, conn: Any, job_id: str, duplicates: str = "skip") -> dict[str, Any]:
    emails = [m[1] for m in LOCAL_MEMBERS]
    started = time.perf_counter()
    settings = {"assignment": "round_robin", "owners": emails, "duplicates": duplicates}
    status, body = _post(stack, f"/api/jobs/{job_id}/commit", settings)
    assert status == 202, body
    job = _wait(conn, job_id, {"completed", "failed"})
    elapsed = time.perf_counter() - started
    assert job["status"] == "completed", job["error_message"]
    assert job["inserted_rows"] + job["updated_rows"] + job["skipped_rows"] == job["valid_rows"]
    return {
        "valid_rows": job["valid_rows"],
        "inserted_rows": job["inserted_rows"],
        "updated_rows": job["updated_rows"],
        "commit_s": round(elapsed, 3),
        "commit_slices": job["slice_no"],
        "commit_rows_per_s": round(job["valid_rows"] / elapsed),
    }


def _post(stack: LocalStack, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    member = LOCAL_MEMBERS[0]
    token = mint_token(stack.env["SUPABASE_JWT_SECRET"], str(member[0]), member[1])
    req = urllib.request.Request(  # noqa: S310 (the local stack's URL)
        stack.settings.app_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
        return resp.status, json.loads(resp.read())


def raw_baseline(conn: Any, job_id: str) -> dict[str, Any]:
    """COPY of the job's valid rows into a temporary table + INSERT ... SELECT ... ON CONFLICT
    DO NOTHING into an indexed copy of leads. The rows are read from staged_rows untimed."""
    cols = ", ".join(f"fields ->> '{f}'" for f in FIELDS)
    rows = (
        conn.cursor(row_factory=psycopg.rows.tuple_row)
        .execute(
            f"select {cols}, email_normalized, phone_e164, custom::text from staged_rows"  # noqa: S608 (constant names)
            " where job_id = %s and valid order by row_no",
            (job_id,),
        )
        .fetchall()
    )
    org = conn.execute("select organization_id from import_jobs where id = %s", (job_id,)).fetchone()["organization_id"]
    conn.execute("drop table if exists bench_leads")
    conn.execute("create table bench_leads (like leads including all)")
    conn.execute("create unique index on bench_leads (organization_id, email_normalized)")
    conn.execute("checkpoint")
    started = time.perf_counter()
    with conn.transaction():
        names = ", ".join((*FIELDS, "email_normalized", "phone_e164"))
        conn.execute(
            f"create temporary table raw_rows ({', '.join(f'{n} text' for n in names.split(', '))}, custom jsonb)"
            " on commit drop"
        )
        with conn.cursor().copy(f"copy raw_rows ({names}, custom) from stdin") as copy:
            for r in rows:
                copy.write_row(r)
        copied = time.perf_counter()
        conn.execute(
            f"insert into bench_leads (organization_id, {names}, custom, owner_id, import_job_id)"  # noqa: S608
            f" select %s, {names}, custom, null, %s from raw_rows on conflict do nothing",
            (org, job_id),
        )
    done = time.perf_counter()
    conn.execute("drop table bench_leads")
    return {
        "rows": len(rows),
        "copy_s": round(copied - started, 3),
        "insert_s": round(done - copied, 3),
        "total_s": round(done - started, 3),
        "rows_per_s": round(len(rows) / (done - started)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.commit", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=210_202)
    p.add_argument("--slice-rows", type=int, help="IMPORT_COMMIT_SLICE_ROWS (default: the service's)")
    p.add_argument("--duplicates", choices=("skip", "update"), default="skip", help="update: time a re-import")
    p.add_argument("--database-url", help="a Postgres server to use (a fresh database) instead of the embedded one")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = run(args.rows, args.slice_rows, args.database_url, args.duplicates)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    b = r["baseline"]
    print(
        f"{r['rows']:,} rows, {r['valid_rows']:,} valid, {r['inserted_rows']:,} inserted, {r['updated_rows']:,} updated"
    )
    print(
        f"  commit phase      {r['commit_s']:>8.2f} s  {r['commit_rows_per_s']:>9,} rows/s  ({r['commit_slices']} slices, {r['commit_chunks']} chunks)"
    )
    if b:
        print(
            f"  raw baseline      {b['total_s']:>8.2f} s  {b['rows_per_s']:>9,} rows/s  (copy {b['copy_s']} s, insert {b['insert_s']} s)"
        )
        print(f"  commit / baseline {r['commit_vs_baseline']:>8.2f}")
    total = sum(r["commit_steps_ms"].values()) or 1
    print(
        "  commit slice steps: "
        + ", ".join(f"{k} {v} ms ({100 * v / total:.0f}%)" for k, v in r["commit_steps_ms"].items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

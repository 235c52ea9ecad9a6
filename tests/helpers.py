"""Small helpers shared by the test modules."""

from __future__ import annotations

import time
from typing import Any

import psycopg


def wait_for_status(conn: psycopg.Connection, job_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    """Poll the job row until its status is one of `statuses` (the way a frontend watches it)."""
    deadline = time.monotonic() + timeout
    while True:
        job = conn.execute("select * from import_jobs where id = %s", (job_id,)).fetchone()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job['error_message']}")
        time.sleep(0.05)

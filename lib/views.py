"""What the frontend and the CLI see of a job."""

from __future__ import annotations

from typing import Any

from lib.jobs import Status

PUBLIC_FIELDS = (
    "id", "organization_id", "created_by", "status", "phase", "run", "file_name", "file_size",
    "file_sha256", "encoding", "delimiter", "header", "mapping", "duplicate_of_job_id", "settings",
    "total_rows", "estimated_total_rows", "valid_rows", "invalid_rows", "duplicate_rows",
    "inserted_rows", "updated_rows", "skipped_rows", "reverted_rows", "error_counts",
    "warning_counts", "slices_done", "error_message", "heartbeat_at", "created_at",
    "updated_at", "parse_finished_at", "commit_started_at", "finished_at",
)  # fmt: skip


def rows_done(job: dict[str, Any]) -> int:
    """Progress of the current phase, in rows."""
    if job["phase"] == "commit":
        return job["commit_cursor"]
    if job["phase"] == "revert":
        return job["revert_cursor"]
    return job["total_rows"]


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    view = {k: job.get(k) for k in PUBLIC_FIELDS}
    for k, v in view.items():
        if hasattr(v, "isoformat"):
            view[k] = v.isoformat()
        elif k in ("id", "organization_id", "created_by", "duplicate_of_job_id") and v is not None:
            view[k] = str(v)
    view["rows_done"] = rows_done(job)
    # While the file is being read, the total is an estimate from the bytes read so far.
    reading = job["phase"] == "parse" and job["status"] in (Status.PENDING, Status.VALIDATING, Status.PARSING)
    view["rows_expected"] = job["estimated_total_rows"] if reading else job["total_rows"]
    return view

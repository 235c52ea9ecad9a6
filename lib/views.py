"""What the frontend and the CLI see of a job: one view, which the CLI's JSON also prints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lib.phases import progress
from lib.remembered import commit_defaults

PUBLIC_FIELDS = (
    "id", "organization_id", "created_by", "status", "phase", "run", "file_name", "file_size",
    "file_sha256", "encoding", "delimiter", "header", "mapping", "duplicate_of_job_id", "settings",
    "total_rows", "estimated_total_rows", "valid_rows", "invalid_rows", "duplicate_rows",
    "inserted_rows", "updated_rows", "skipped_rows", "reverted_rows", "restored_rows", "kept_counts",
    "error_counts", "warning_counts", "fixed_rows", "excluded_rows", "dropped_fixes", "slices_done",
    "error_message", "error_code", "heartbeat_at", "created_at", "updated_at", "parse_finished_at",
    "commit_started_at", "finished_at", "mapping_source", "remembered_mapping_id", "workbook",
)  # fmt: skip


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    view = {k: job.get(k) for k in PUBLIC_FIELDS}
    for k, v in view.items():
        if isinstance(v, datetime):
            view[k] = v.isoformat()
        elif (
            k in ("id", "organization_id", "created_by", "duplicate_of_job_id", "remembered_mapping_id")
            and v is not None
        ):
            view[k] = str(v)
    # The current phase's progress in rows (lib/phases.py): while the file is being read,
    # the rows expected are an estimate from the bytes read so far.
    view["rows_done"], view["rows_expected"] = progress(job)
    # What the review offers as commit settings (lib/remembered.py).
    view["commit_defaults"] = commit_defaults(job)
    # A workbook's conversion is one step without row progress: say what it is doing.
    workbook = job.get("workbook")
    view["activity"] = "reading the workbook" if workbook and workbook.get("state") == "reading" else None
    if workbook:  # where the CSV is stored is the service's business, like storage_path
        view["workbook"] = {k: v for k, v in workbook.items() if k != "csv_path"}
    return view


# `python -m lib import --json` names these fields its own way (scripts read them).
CLI_NAMES = {"id": "job_id", "error_counts": "errors", "warning_counts": "warnings", "kept_counts": "kept"}


def summary(job: dict[str, Any]) -> dict[str, Any]:
    """The JSON object of `import --json` and `jobs --json` (README "Command line"): the job's
    view under the CLI's names, with the seconds each step took."""

    def seconds(a: Any, b: Any) -> float | None:
        return round((b - a).total_seconds(), 3) if a and b else None

    out = {CLI_NAMES.get(k, k): v for k, v in job_view(job).items()}
    out["elapsed_seconds"] = {
        "parse": seconds(job["created_at"], job["parse_finished_at"]),
        "commit": seconds(job["commit_started_at"], job["finished_at"]),
        "total": seconds(job["created_at"], job["finished_at"] or job["parse_finished_at"]),
    }
    return out

"""The frontend's commit and undo of a parsed import: POST /api/jobs/<id>/commit and /revert.

Same user-token auth and organization scoping as every frontend view (lib/routes/guard.py:
another organization's job is a 404). Both answer 202: the work runs in slices through QStash,
and the job row shows its progress.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from lib import manager
from lib.commit_settings import KEYS, CommitSettings, parse_commit_settings
from lib.db import Row, queries
from lib.errors import IllegalTransition
from lib.routes.guard import authenticate, json_body, load_job, query
from lib.services import connection, services
from lib.status import Status
from lib.views import job_view

bp = Blueprint("commit", __name__, url_prefix="/api/jobs")
bp.before_request(authenticate)


@bp.post("/<job_id>/commit")
def commit(job_id: str) -> Any:
    """Start the commit of a ready job with its settings (lib.commit_settings): 400 for
    unknown values, members or columns, 409 unless the job is ready.

    A repeat (double click, retried request) with the same settings while that commit runs
    or after it completed returns the job as it is (202); other settings then are a 409 that
    says which commit runs."""
    query()
    body = json_body(KEYS)
    job = load_job(job_id)
    if job["status"] not in (Status.READY, Status.COMMITTING, Status.COMPLETED):
        raise IllegalTransition(f"only a ready job can be committed; this one is {job['status']}")
    wanted = parse_commit_settings(connection(), job, body)  # checked before anything is written
    if job["status"] == Status.READY:
        try:
            job = manager.commit_job(connection(), job_id, body, services().publish)
            return jsonify(job=job_view(job)), 202
        except IllegalTransition:
            job = load_job(job_id)  # a concurrent request started it in the meantime
    if job["status"] in (Status.COMMITTING, Status.COMPLETED) and job["settings"].get("commit"):
        running = CommitSettings.from_job(job)
        if running == wanted:
            return jsonify(job=job_view(job)), 202
        verb = "is running" if job["status"] == Status.COMMITTING else "completed"
        raise IllegalTransition(
            f"a commit with other settings {verb} for this job ({_describe(job, running)}); "
            "wait for it to end, or import the file again as a new job to use other settings",
            code="commit_in_progress" if job["status"] == Status.COMMITTING else "already_committed",
        )
    raise IllegalTransition(f"only a ready job can be committed; this one is {job['status']}")


def _describe(job: Row, s: CommitSettings) -> str:
    """The settings as the user chose them (owners by email, not by id)."""
    parts = [f"duplicates={s.duplicates}", f"match={s.match}", f"assignment={s.assignment}"]
    if s.owners:
        emails = {str(r["user_id"]): r["email"] for r in _members(job)}
        parts.append("owners=" + ",".join(emails.get(o, o) for o in s.owners))
    if s.owner_column:
        parts.append(f"owner_column={s.owner_column}")
    return ", ".join(parts)


def _members(job: Row) -> list[Row]:
    return connection().execute(queries()["org_members"], {"org": job["organization_id"]}).fetchall()


@bp.post("/<job_id>/revert")
def revert(job_id: str) -> Any:
    """Undo a completed import: 409 with the reason when it cannot apply."""
    query()
    json_body()
    load_job(job_id)
    svc = services()
    job = manager.revert_job(connection(), job_id, svc.publish, retention_days=svc.settings.staged_retention_days)
    return jsonify(job=job_view(job)), 202

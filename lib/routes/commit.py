"""The frontend's commit and undo of a parsed import: POST /api/jobs/<id>/commit and /revert.

Same user-token auth and organization scoping as every frontend view (lib/routes/guard.py:
another organization's job is a 404). Both answer 202: the work runs in slices through QStash,
and the job row shows its progress.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from lib import manager
from lib.routes.guard import authenticate, json_body, load_job
from lib.services import connection, services
from lib.views import job_view

bp = Blueprint("commit", __name__, url_prefix="/api/jobs")
bp.before_request(authenticate)


@bp.post("/<job_id>/commit")
def commit(job_id: str) -> Any:
    """Start the commit of a ready job with its settings (lib.commit_settings): 400 for
    unknown values, members or columns, 409 unless the job is ready."""
    body = json_body()
    load_job(job_id)
    job = manager.commit_job(connection(), job_id, body, services().publish)
    return jsonify(job=job_view(job)), 202


@bp.post("/<job_id>/revert")
def revert(job_id: str) -> Any:
    """Undo a completed import: 409 with the reason when it cannot apply."""
    load_job(job_id)
    svc = services()
    job = manager.revert_job(connection(), job_id, svc.publish, retention_days=svc.settings.staged_retention_days)
    return jsonify(job=job_view(job)), 202

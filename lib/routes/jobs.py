"""The frontend's API: create, start, watch, retry and cancel import jobs.

Every view needs the user's Supabase access token, and sees only the jobs of the
organizations the user is a member of (another organization's job is a 404): see
lib/routes/guard.py.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, g, jsonify, request

from lib import manager
from lib.db import queries
from lib.errors import BadRequest
from lib.parse.errors import too_large
from lib.routes.guard import authenticate, flag, int_arg, json_body, load_job, org_from
from lib.services import connection, services
from lib.views import job_view

bp = Blueprint("jobs", __name__, url_prefix="/api/jobs")
bp.before_request(authenticate)

HISTORY_PAGE, MAX_HISTORY_PAGE = 50, 200


@bp.post("")
def create() -> Any:
    """A new job for a file the browser is about to upload (signed upload URL included).
    `file_size` (bytes, optional): a file over IMPORT_MAX_FILE_MB is refused here (400
    `file_too_large`), before its upload."""
    body = json_body()
    file_name = str(body.get("file_name") or "").strip()
    if not file_name or "/" in file_name or "\\" in file_name or len(file_name) > 255:
        raise BadRequest("file_name is required: the name of the CSV file, without folders")
    svc = services()
    size = body.get("file_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise BadRequest("file_size must be the file's size in bytes, a whole number")
    if size is not None and (refusal := too_large(size, svc.settings.max_file_mb)):
        raise BadRequest(refusal.message, code=refusal.code)
    org = org_from(body.get("organization_id"))
    settings = {"region": str(body.get("region") or svc.settings.default_region).upper(), **sheet_setting(body)}
    storage_path = f"{org}/{uuid.uuid4()}/{file_name}"
    job = manager.create_job(
        connection(),
        org=org,
        user=g.user.id,
        file_name=file_name,
        storage_path=storage_path,
        settings=settings,
        lease_seconds=svc.settings.lease_seconds,
    )
    return jsonify(job=job_view(job), upload_url=svc.storage.upload_url(storage_path)), 201


@bp.get("")
def history() -> Any:
    """The organization's jobs, newest first; `limit` (default 50, at most 200) is a whole
    number of at least 1, like every count parameter (400 otherwise)."""
    org = org_from(request.args.get("organization_id"))
    limit = min(int_arg("limit", HISTORY_PAGE, minimum=1), MAX_HISTORY_PAGE)
    rows = connection().execute(queries()["list_org_jobs"], {"org": org, "limit": limit}).fetchall()
    return jsonify(jobs=[job_view(r) for r in rows])


@bp.get("/<job_id>")
def show(job_id: str) -> Any:
    return jsonify(job=job_view(load_job(job_id)))


@bp.post("/<job_id>/start")
def start(job_id: str) -> Any:
    load_job(job_id)
    job = manager.start_job(connection(), job_id, services().publish)
    return jsonify(job=job_view(job)), 202


@bp.post("/<job_id>/retry")
def retry(job_id: str) -> Any:
    body = json_body()
    load_job(job_id)
    job = manager.retry_job(
        connection(),
        job_id,
        services().publish,
        force=flag(body, "force"),
        restart=flag(body, "restart"),
    )
    return jsonify(job=job_view(job)), 202


@bp.put("/<job_id>/sheet")
def change_sheet(job_id: str) -> Any:
    """Another sheet of a ready job's workbook: converted, then parsed again (row fixes dropped)."""
    body = json_body()
    load_job(job_id)
    sheet = sheet_setting(body).get("sheet")
    if sheet is None:
        raise BadRequest('the body must be {"sheet": NAME}, a sheet of the workbook')
    job = manager.change_sheet(connection(), job_id, sheet, services().publish)
    notice = f"The sheet {sheet!r} is read now: the rows are read again, and the row fixes made in review were dropped."
    return jsonify(job=job_view(job), notice=notice), 202


def sheet_setting(body: dict[str, Any]) -> dict[str, str]:
    """`sheet` of a request body: a workbook's sheet name (absent: the first with data)."""
    sheet = body.get("sheet")
    if sheet is None:
        return {}
    if not isinstance(sheet, str) or not sheet.strip() or len(sheet) > 255:
        raise BadRequest("sheet must be the name of a sheet of the workbook (text, at most 255 characters)")
    return {"sheet": sheet}


@bp.post("/<job_id>/cancel")
def cancel(job_id: str) -> Any:
    load_job(job_id)
    return jsonify(job=job_view(manager.cancel_job(connection(), job_id)))

"""The frontend's API: create, start, watch, retry and cancel import jobs.

Every view needs the user's Supabase access token, and sees only the jobs of the
organizations the user is a member of (another organization's job is a 404): see
lib/routes/guard.py.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import phonenumbers
from flask import Blueprint, g, jsonify, request

from lib import manager
from lib.db import queries
from lib.errors import BadRequest, IllegalTransition
from lib.parse.errors import too_large
from lib.routes.guard import authenticate, flag, int_arg, json_body, load_job, org_from, query, text
from lib.services import connection, services
from lib.status import Status
from lib.storage import ObjectMissing
from lib.views import job_view

bp = Blueprint("jobs", __name__, url_prefix="/api/jobs")
bp.before_request(authenticate)

HISTORY_PAGE, MAX_HISTORY_PAGE = 50, 200
CREATE_KEYS = ("file_name", "organization_id", "region", "sheet", "file_size")
MAX_FILE_NAME = 255  # characters, as most file systems allow


@bp.post("")
def create() -> Any:
    """A new job for a file the browser is about to upload (signed upload URL included).
    `file_size` (bytes, optional): a file over IMPORT_MAX_FILE_MB is refused here (400
    `file_too_large`), before its upload. `sheet` (optional): a workbook's sheet to read.

    Everything is checked before the job is written: a refused request creates nothing.
    The file name is kept for display as sent (trimmed); the storage key is made of ids
    alone, so no name can reach outside the job's folder."""
    query()
    body = json_body(CREATE_KEYS)
    if "file_name" not in body:
        raise BadRequest("file_name is required: the name of the file the user chose")
    file_name = text(body["file_name"], "file_name", max_length=MAX_FILE_NAME)
    svc = services()
    region = _region(body.get("region", svc.settings.default_region))
    sheet = sheet_setting(body)
    size = body.get("file_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise BadRequest("file_size must be the file's size in bytes, a whole number")
    if size is not None and (refusal := too_large(size, svc.settings.max_file_mb)):
        raise BadRequest(refusal.message, code=refusal.code)
    org = org_from(body.get("organization_id"))
    storage_path = f"{org}/{uuid.uuid4()}/upload{_extension(file_name)}"
    upload_url = svc.storage.upload_url(storage_path)  # before the insert: it may fail (503)
    job = manager.create_job(
        connection(),
        org=org,
        user=g.user.id,
        file_name=file_name,
        storage_path=storage_path,
        settings={"region": region, **sheet},
        lease_seconds=svc.settings.lease_seconds,
    )
    return jsonify(job=job_view(job), upload_url=upload_url), 201


def _region(value: Any) -> str:
    if not isinstance(value, str) or value.strip().upper() not in phonenumbers.SUPPORTED_REGIONS:
        shown = repr(value)[:20]
        raise BadRequest(f"region must be a two-letter country code such as FR (the phones' default), not {shown}")
    return value.strip().upper()


def _extension(file_name: str) -> str:
    """The name's extension when it is a plain one (`.csv`, `.xlsx`): the key's only part
    that comes from the name, and only from this safe alphabet."""
    match = re.search(r"\.[A-Za-z0-9]{1,8}$", file_name)
    return match.group(0).lower() if match else ""


@bp.get("")
def history() -> Any:
    """The organization's jobs, newest first; `limit` is a whole number from 1 to 200
    (default 50), like every count parameter (400 otherwise)."""
    query(("organization_id", "limit"))
    limit = int_arg("limit", HISTORY_PAGE, minimum=1, maximum=MAX_HISTORY_PAGE)
    org = org_from(request.args.get("organization_id") or None)
    rows = connection().execute(queries()["list_org_jobs"], {"org": org, "limit": limit}).fetchall()
    return jsonify(jobs=[job_view(r) for r in rows])


@bp.get("/<job_id>")
def show(job_id: str) -> Any:
    query()
    return jsonify(job=job_view(load_job(job_id)))


@bp.post("/<job_id>/start")
def start(job_id: str) -> Any:
    """After the upload: validating, then parsing. A start of a job already past pending (a
    double click, a retried request) returns the job as it is, changing nothing."""
    query()
    json_body()
    job = load_job(job_id)
    if job["status"] == Status.PENDING:
        try:
            services().storage.size(job["storage_path"])
        except ObjectMissing:
            raise IllegalTransition(
                f"the file {job['file_name']!r} has not been uploaded yet: upload it to the job's upload_url "
                "(POST /api/jobs gave it), then start the job",
                code="file_not_uploaded",
            ) from None
        try:
            job = manager.start_job(connection(), job_id, services().publish)
        except IllegalTransition:
            job = load_job(job_id)  # started by a concurrent request in the meantime
            if job["status"] == Status.PENDING:
                raise
    return jsonify(job=job_view(job)), 202


@bp.post("/<job_id>/retry")
def retry(job_id: str) -> Any:
    query()
    body = json_body(("force", "restart"))
    force, restart = flag(body, "force"), flag(body, "restart")
    load_job(job_id)
    job = manager.retry_job(connection(), job_id, services().publish, force=force, restart=restart)
    return jsonify(job=job_view(job)), 202


@bp.put("/<job_id>/sheet")
def change_sheet(job_id: str) -> Any:
    """Another sheet of a ready job's workbook: converted, then parsed again (row fixes dropped)."""
    query()
    body = json_body(("sheet",))
    load_job(job_id)
    sheet = sheet_setting(body).get("sheet")
    if sheet is None:
        raise BadRequest('the body must be {"sheet": NAME}, a sheet of the workbook')
    job = manager.change_sheet(connection(), job_id, sheet, services().publish)
    notice = f"The sheet {sheet!r} is read now: the rows are read again, and the row fixes made in review were dropped."
    return jsonify(job=job_view(job), notice=notice), 202


def sheet_setting(body: dict[str, Any]) -> dict[str, str]:
    """`sheet` of a request body: a workbook's sheet name (absent: the first with data)."""
    if body.get("sheet") is None:
        return {}
    return {"sheet": text(body["sheet"], "sheet", max_length=255)}


@bp.post("/<job_id>/cancel")
def cancel(job_id: str) -> Any:
    query()
    json_body()
    load_job(job_id)
    return jsonify(job=job_view(manager.cancel_job(connection(), job_id)))

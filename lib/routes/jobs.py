"""The frontend's API: create, start, watch, retry and cancel import jobs.

Every view needs the user's Supabase access token, and sees only the jobs of the
organizations the user is a member of (another organization's job is a 404).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, g, jsonify, request

from lib import manager
from lib.app import connection, services
from lib.auth import bearer_token
from lib.db import queries
from lib.errors import BadRequest, Forbidden, JobNotFound
from lib.views import job_view

bp = Blueprint("jobs", __name__, url_prefix="/api/jobs")


@bp.before_request
def _authenticate() -> None:
    g.user = services().verifier.verify(bearer_token(request))


def _orgs() -> dict[str, dict[str, Any]]:
    rows = connection().execute(queries()["user_orgs"], {"user": g.user.id}).fetchall()
    return {str(r["organization_id"]): r for r in rows}


def _org_from(value: str | None) -> str:
    orgs = _orgs()
    if value:
        if value not in orgs:
            raise Forbidden("you are not a member of this organization")
        return value
    if len(orgs) == 1:
        return next(iter(orgs))
    if not orgs:
        raise Forbidden("you are not a member of any organization")
    raise BadRequest("you belong to several organizations: say which with organization_id")


def load_job(job_id: str) -> dict[str, Any]:
    """The job, if it belongs to one of the user's organizations; 404 otherwise."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise JobNotFound() from None
    job = connection().execute(queries()["get_job"], {"id": job_id}).fetchone()
    if job is None or str(job["organization_id"]) not in _orgs():
        raise JobNotFound()
    return job


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def _flag(body: dict[str, Any], name: str) -> bool:
    """A JSON boolean option: "false" is not false, so anything but true/false is refused."""
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


@bp.post("")
def create() -> Any:
    """A new job for a file the browser is about to upload (signed upload URL included)."""
    body = _body()
    file_name = str(body.get("file_name") or "").strip()
    if not file_name or "/" in file_name or "\\" in file_name or len(file_name) > 255:
        raise BadRequest("file_name is required: the name of the CSV file, without folders")
    org = _org_from(body.get("organization_id"))
    settings = {"region": str(body.get("region") or "FR").upper()}
    storage_path = f"{org}/{uuid.uuid4()}/{file_name}"
    svc = services()
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
    org = _org_from(request.args.get("organization_id"))
    limit = min(max(request.args.get("limit", 50, type=int), 1), 200)
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
    body = _body()
    load_job(job_id)
    job = manager.retry_job(
        connection(),
        job_id,
        services().publish,
        force=_flag(body, "force"),
        restart=_flag(body, "restart"),
    )
    return jsonify(job=job_view(job)), 202


@bp.post("/<job_id>/cancel")
def cancel(job_id: str) -> Any:
    load_job(job_id)
    return jsonify(job=job_view(manager.cancel_job(connection(), job_id)))

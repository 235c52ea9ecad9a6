"""The frontend's remembered mappings (lib/remembered.py): list and delete an organization's,
and take a ready job back to the automatic mapping.

Same authentication and scope as every frontend view (lib/routes/guard.py): another
organization's mapping or job is a 404.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, jsonify, request

from lib import manager, remembered
from lib.db import queries
from lib.errors import BadRequest, IllegalTransition
from lib.parse.errors import MappingInvalid
from lib.parse.mapping import auto_map, check_mapping
from lib.routes.guard import authenticate, int_arg, json_body, load_job, org_from, query, user_orgs
from lib.services import connection, services
from lib.status import Status
from lib.views import job_view

bp = Blueprint("mappings", __name__, url_prefix="/api")
bp.before_request(authenticate)

PAGE, MAX_PAGE = 50, 200


@bp.get("/mappings")
def list_mappings() -> Any:
    """The organization's remembered mappings, most recently saved first."""
    query(("organization_id", "limit"))
    limit = int_arg("limit", PAGE, minimum=1, maximum=MAX_PAGE)
    org = org_from(request.args.get("organization_id") or None)
    conn = connection()
    rows = conn.execute(queries()["list_remembered_mappings"], {"org": org, "limit": limit}).fetchall()
    return jsonify(mappings=[remembered.view(conn, r) for r in rows])


@bp.delete("/mappings/<mapping_id>")
def delete_mapping(mapping_id: str) -> Any:
    """Forget a remembered mapping: later files of its header get the automatic mapping."""
    query()
    json_body()
    row = _load_mapping(mapping_id)
    connection().execute(queries()["delete_remembered_mapping"], {"id": row["id"], "org": row["organization_id"]})
    return jsonify(deleted=str(row["id"]))


@bp.post("/jobs/<job_id>/mapping/automatic")
def back_to_automatic(job_id: str) -> Any:
    """A ready job goes back to the automatic mapping of its header (the file is parsed again)."""
    query()
    json_body()
    job = load_job(job_id)
    if job["status"] != Status.READY:
        raise IllegalTransition(f"the mapping can be changed only while the job is ready; it is {job['status']}")
    header = job["header"] or []
    try:
        fields = check_mapping(header, auto_map(header))
    except MappingInvalid as exc:
        raise BadRequest(exc.message, code=exc.code) from exc
    updated = manager.remap_job(connection(), job_id, fields, services().publish, source=remembered.AUTOMATIC)
    return jsonify(job=job_view(updated)), 202


def _load_mapping(mapping_id: str) -> Any:
    """The remembered mapping, if it belongs to one of the user's organizations; 404 otherwise."""
    try:
        uuid.UUID(mapping_id)
    except ValueError:
        raise remembered.MappingNotFound() from None
    row = connection().execute(queries()["get_remembered_mapping"], {"id": mapping_id}).fetchone()
    if row is None or str(row["organization_id"]) not in user_orgs():
        raise remembered.MappingNotFound()
    return row

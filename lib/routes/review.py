"""The frontend's review of a parsed job: counts by code, invalid rows, the error report,
and a new column mapping (which re-parses the file).

Same authentication and scope as every frontend view (lib/routes/guard.py): the user's
Supabase access token, and only the jobs of the user's organizations (another
organization's job is a 404).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, jsonify

from lib import db, manager, review
from lib.db import queries
from lib.errors import BadRequest, IllegalTransition
from lib.parse.errors import MappingInvalid
from lib.parse.mapping import check_mapping
from lib.routes.guard import authenticate, int_arg, json_body, load_job, query
from lib.services import connection, services
from lib.status import Status
from lib.views import job_view

bp = Blueprint("review", __name__, url_prefix="/api/jobs")
bp.before_request(authenticate)

PAGE, MAX_PAGE = 50, 500
MAX_ROW_NO = 2**31 - 1  # staged_rows.row_no is an integer
REPORT_PAGE = 1000  # rows per query while streaming the report


@bp.get("/<job_id>/errors")
def errors(job_id: str) -> Any:
    """Counts by error and warning code, each with its text and its first few row numbers."""
    query()
    job = load_job(job_id)
    return jsonify(
        job_id=str(job["id"]),
        status=job["status"],
        total_rows=job["total_rows"],
        valid_rows=job["valid_rows"],
        invalid_rows=job["invalid_rows"],
        duplicate_rows=job["duplicate_rows"],
        duplicate_of_job_id=str(job["duplicate_of_job_id"]) if job["duplicate_of_job_id"] else None,
        errors=review.codes(connection(), job, warnings=False),
        warnings=review.codes(connection(), job, warnings=True),
    )


@bp.get("/<job_id>/invalid-rows")
def invalid_rows(job_id: str) -> Any:
    """A page of invalid rows after row number `after`, in row order (keyset pagination)."""
    query(("after", "limit"))
    after = int_arg("after", 0, minimum=0, maximum=MAX_ROW_NO)
    limit = int_arg("limit", PAGE, minimum=1, maximum=MAX_PAGE)
    job = load_job(job_id)
    header, mapping = job["header"] or [], job["mapping"] or []
    rows = (
        connection()
        .execute(queries()["invalid_rows_page"], {"job": job["id"], "after": after, "limit": limit})
        .fetchall()
    )
    page = []
    for r in rows:
        values, extra = review.row_values(r["raw"], header)
        page.append(
            {
                "row_no": r["row_no"],
                "values": values,
                "extra_cells": extra,
                "reasons": review.reasons(r["errors"], r["raw"], header, mapping),
                "warnings": [{"code": c, "message": review.describe(c, warning=True)} for c in r["warnings"]],
            }
        )
    return jsonify(
        header=header,
        rows=page,
        # The `after` of the next page; null on the last one.
        next_after=rows[-1]["row_no"] if len(rows) == limit else None,
    )


@bp.get("/<job_id>/error-report.csv")
def error_report(job_id: str) -> Any:
    """The invalid rows as a CSV file for Excel, streamed page by page from the database."""
    query()
    job = load_job(job_id)
    header, mapping = job["header"] or [], job["mapping"] or []
    database_url = services().settings.database_url

    def pages() -> Iterator[list[dict[str, Any]]]:
        # Its own connection: the request's is closed once the view returns, before the
        # body streams. Short keyset queries, no long transaction behind a pooler.
        with db.connect(database_url) as conn:
            after = 0
            while True:
                params = {"job": job["id"], "after": after, "limit": REPORT_PAGE}
                rows = conn.execute(queries()["invalid_rows_page"], params).fetchall()
                if rows:
                    yield rows
                if len(rows) < REPORT_PAGE:
                    return
                after = rows[-1]["row_no"]

    chunks = review.report_chunks(header, mapping, pages(), extra_column=bool(job["error_counts"].get("malformed_row")))
    response = Response(chunks, mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = _attachment(_report_name(job["file_name"]))
    response.headers["Cache-Control"] = "private, no-store"  # personal data
    return response


def _report_name(file_name: str) -> str:
    stem = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
    return f"{stem or 'import'}-errors.csv"


def _attachment(name: str) -> str:
    """Content-Disposition with an ASCII fallback and the exact UTF-8 name (RFC 6266)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"[^\w.\- ()]", "_", ascii_name).strip() or "errors.csv"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


@bp.put("/<job_id>/mapping")
def change_mapping(job_id: str) -> Any:
    """A new column mapping for a ready job: checked, then the file is parsed again."""
    query()
    mapping = _mapping_from_body()
    job = load_job(job_id)
    if job["status"] != Status.READY:  # checked first: a job that is not ready takes no mapping
        raise IllegalTransition(f"the mapping can be changed only while the job is ready; it is {job['status']}")
    try:
        fields = check_mapping(job["header"] or [], mapping)
    except MappingInvalid as exc:
        raise BadRequest(exc.message, code=exc.code) from exc
    updated = manager.remap_job(connection(), job_id, fields, services().publish)
    return jsonify(job=job_view(updated)), 202


def _mapping_from_body() -> dict[str, str | None] | list[str | None]:
    """{"mapping": {header: field or null}} or {"mapping": [field or null, per column]};
    an empty string means null."""
    mapping = json_body(("mapping",)).get("mapping")
    if not isinstance(mapping, dict | list):
        raise BadRequest(
            'the body must be {"mapping": {header: field or null}} or {"mapping": [field or null per column]}'
        )
    entries = mapping.values() if isinstance(mapping, dict) else mapping
    if not all(v is None or isinstance(v, str) for v in entries):
        raise BadRequest("each column maps to a lead field name, or to null to keep it as a custom field")
    if isinstance(mapping, dict):
        return {str(k): v or None for k, v in mapping.items()}
    return [v or None for v in mapping]

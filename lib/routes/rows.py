"""One row of a parsed job, and its fix in review (lib/row_fixes.py).

- `GET /api/jobs/<id>/rows/<row_no>`: the row as it stands (see `row_view`).
- `PATCH /api/jobs/<id>/rows/<row_no>`, only while the job is `ready`. Body (a JSON object,
  at least one key, no other):
  - `cells`: {header name: corrected value (string, or null for an empty cell)}, only the
    cells that change; a value equal to the file's own cell drops that correction;
  - `extra_cells`: [string, ...] replacing the cells past the header's width (a malformed
    row), or null for the cells as read;
  - `excluded`: true to leave the row out of the import (it then counts as invalid with the
    code `excluded`), false to include it again.
  Answers 200 `{"row": row_view, "job": job view with its new counts}`; 400 for a body of
  another shape or an unknown column (`unknown_column`), 404 for another organization's job
  or a row the job does not have, 409 unless the job is `ready`, 503 when the job stays
  busy with another change (try again).

Same authentication and scope as every frontend view (lib/routes/guard.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from lib import review, row_fixes
from lib.db import Row, queries
from lib.errors import BadRequest
from lib.routes.guard import authenticate, cell, json_body, load_job, query
from lib.services import connection, services
from lib.views import job_view

bp = Blueprint("rows", __name__, url_prefix="/api/jobs")
bp.before_request(authenticate)

FIELDS = ("cells", "extra_cells", "excluded")
LOCK_WAIT = 5.0  # seconds a fix waits for the job's lock held by another change


@bp.get("/<job_id>/rows/<row_no>")
def show(job_id: str, row_no: str) -> Any:
    query()
    job = load_job(job_id)
    number = _row_no(row_no)
    key = {"job": job["id"], "row": number}
    row = connection().execute(queries()["staged_row"], key).fetchone()
    if row is None:
        raise row_fixes.RowNotFound()
    fix = connection().execute(queries()["row_fix"], key).fetchone()
    return jsonify(row=row_view(job, row, fix))


@bp.patch("/<job_id>/rows/<row_no>")
def fix(job_id: str, row_no: str) -> Any:
    query()
    change = _change()
    load_job(job_id)
    settings = services().settings
    row, job, fixed = row_fixes.fix_row(
        connection(),
        job_id,
        _row_no(row_no),
        change,
        user=g.user.id,
        storage=services().storage,
        statement_seconds=settings.statement_timeout,
        lock_seconds=LOCK_WAIT,
    )
    return jsonify(row=row_view(job, row, fixed), job=job_view(job))


def row_view(job: Row, row: Row, fix: Row | None) -> dict[str, Any]:
    """A row as the review shows it: its cells by header name as they stand, why it is
    invalid, its warnings, the earlier row it repeats, and its fix (the corrected cells,
    the original ones, who and when), or null."""
    header, mapping = job["header"] or [], job["mapping"] or []
    cells = row["raw"]
    if cells is None and row["record_offset"] is not None:  # a valid row without codes or fix: read from the file
        cells = row_fixes.read_original(services().storage, job, row["record_offset"], row["row_no"])
    cells = cells or []  # staged before rows could be fixed: its cells were not kept
    values, extra = review.row_values(cells, header)
    view: dict[str, Any] = {
        "row_no": row["row_no"],
        "values": values,
        "extra_cells": extra,
        "valid": row["valid"],
        "excluded": row_fixes.EXCLUDED in row["errors"],
        "duplicate_of": row["duplicate_of"],
        "reasons": review.reasons(row["errors"], cells, header, mapping),
        "warnings": [{"code": c, "message": review.describe(c, warning=True)} for c in row["warnings"]],
        "fix": None,
    }
    if fix is not None:
        original, original_extra = review.row_values(fix["original"], header)
        view["fix"] = {
            "cells": fix["cells"],
            "extra_cells": fix["extra_cells"],
            "excluded": fix["excluded"],
            "original": {"values": original, "extra_cells": original_extra},
            "fixed_by": str(fix["fixed_by"]),
            "fixed_at": fix["fixed_at"].isoformat(),
        }
    return view


def _row_no(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 2**31:
        raise row_fixes.RowNotFound()
    return int(value)


def _change() -> row_fixes.Change:
    """The fix a body asks for, checked whole before the job is read (guard.json_body)."""
    body = json_body(FIELDS)
    if not body:
        raise BadRequest('the body must be a JSON object with "cells", "extra_cells" or "excluded"')
    change = row_fixes.Change()
    cells = body.get("cells", {})
    if not isinstance(cells, dict):
        raise BadRequest("cells must be an object of header name -> corrected value (a string, or null for empty)")
    change.cells = {
        cell(name, "a column name of cells"): "" if value is None else cell(value, f"cells[{name!r}]")
        for name, value in cells.items()
    }
    if "extra_cells" in body:
        extra = body["extra_cells"]
        if extra is not None and not isinstance(extra, list):
            raise BadRequest("extra_cells must be a list of strings, or null for the cells as read")
        if extra is not None:
            extra = [cell(v, f"extra_cells[{n}]") for n, v in enumerate(extra)]
        change.extra_cells, change.set_extra = extra, True
    if "excluded" in body:
        if not isinstance(body["excluded"], bool):
            raise BadRequest("excluded must be true or false")
        change.excluded = body["excluded"]
    return change

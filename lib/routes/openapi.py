"""The OpenAPI 3.1 document of the frontend's API, served at GET /api/openapi.json.

Written by hand beside the routes it describes, and held to them by tests: every frontend
route is a path of the document and every path a route (tests/test_openapi.py), the
document is valid OpenAPI 3.1, and the fuzzing (tests/test_fuzz_api.py) sends requests
drawn from its schemas and checks that every answer's status is one it lists.
The QStash and cron endpoints are not the frontend's: they are left out.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, jsonify

from lib.commit_settings import ASSIGNMENTS, DUPLICATES, MATCHES
from lib.status import Status

bp = Blueprint("openapi", __name__, url_prefix="/api")

REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


ERROR_TEXT = {
    400: "Bad input: the message names the field (nothing was changed)",
    401: "No valid user token (TokenMissing, TokenExpired, TokenInvalid)",
    403: "Not a member of that organization",
    404: "No such job in the user's organizations",
    405: "The path does not take this method",
    409: "Not allowed in the job's status; the message says why",
    413: "The request body is over 1 MB",
    415: "The body is not sent as application/json",
    500: "A bug: logged with the request id, which the body and X-Request-Id carry",
    503: "Try again: the database, QStash, storage or the signing keys are unreachable",
}


def _errors(*codes: int) -> dict[str, Any]:
    common = (401, 405, 500, 503)
    return {
        str(c): {"description": ERROR_TEXT[c], "content": {"application/json": {"schema": _ref("Error")}}}
        for c in sorted({*codes, *common})
    }


def _ok(status: int, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {str(status): {"description": text, "content": {"application/json": {"schema": schema}}}}


def _body(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "description": "The job's id; a job of another organization is a 404, as is anything but a UUID.",
    "schema": {"type": "string"},
}
ORG_QUERY = {
    "name": "organization_id",
    "in": "query",
    "required": False,
    "description": "Required only when the user belongs to several organizations.",
    "schema": {"type": "string", "format": "uuid"},
}
NO_BODY = _body({"type": "object", "maxProperties": 0}, required=False)


def _object(**properties: Any) -> dict[str, Any]:
    """An object with all these properties."""
    return {"type": "object", "properties": properties, "required": list(properties)}


JOB_REPLY = _object(job=_ref("Job"))
# What a row of the file shows in review: in the invalid rows' pages and in a row of its own.
ROW_SHOWN: dict[str, Any] = {
    "row_no": {"type": "integer"},
    "values": {"type": "object", "additionalProperties": {"type": "string"}},
    "extra_cells": {"type": "array", "items": {"type": "string"}},
    "reasons": {"type": "array", "items": _ref("Reason")},
    "warnings": {"type": "array", "items": {"type": "object"}},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {"type": "string", "description": "A stable code, e.g. BadRequest, file_not_uploaded"},
            "message": {"type": "string", "description": "What went wrong and what to do, for a person"},
            "request_id": {"type": "string", "description": "On a 500: quote it to support"},
        },
        "required": ["error", "message"],
    },
    "Job": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "organization_id": {"type": "string", "format": "uuid"},
            "created_by": _nullable("string"),
            "status": {"type": "string", "enum": [s.value for s in Status]},
            "phase": _nullable("string"),
            "run": {"type": "integer"},
            "file_name": {"type": "string", "description": "As the user sent it, trimmed"},
            "file_size": _nullable("integer"),
            "file_sha256": _nullable("string"),
            "encoding": _nullable("string"),
            "delimiter": _nullable("string"),
            "header": _nullable("array", items={"type": "string"}),
            "mapping": _nullable("array", items=_nullable("string")),
            "duplicate_of_job_id": _nullable("string"),
            "settings": {"type": "object"},
            **{
                name: _nullable("integer")
                for name in (
                    "total_rows",
                    "estimated_total_rows",
                    "valid_rows",
                    "invalid_rows",
                    "duplicate_rows",
                    "inserted_rows",
                    "updated_rows",
                    "skipped_rows",
                    "reverted_rows",
                    "slices_done",
                    "rows_done",
                    "rows_expected",
                    "fixed_rows",
                    "excluded_rows",
                    "dropped_fixes",
                    "restored_rows",
                )
            },
            "kept_counts": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "A revert's leads kept, by reason (changed_since, matched_later)",
            },
            "mapping_source": {
                "type": "string",
                "enum": ["automatic", "remembered", "edited"],
                "description": "Where the mapping came from",
            },
            "remembered_mapping_id": _nullable("string", description="The remembered mapping it came from"),
            "commit_defaults": {"type": "object", "description": "The commit settings the review offers"},
            "workbook": _nullable("object", description="A workbook's facts: name, type, size, sha256, sheets, state"),
            "activity": _nullable("string", description="A step without row progress, e.g. reading the workbook"),
            "error_counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "warning_counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "error_message": _nullable("string", description="A failed job's message, in English"),
            "error_code": _nullable(
                "string",
                description="A failed job's code: the file's rejection (e.g. empty_file, utf16_file), "
                "file_missing, stalled (no progress, the sweep gave up) or delivery_failed (QStash gave up)",
            ),
            **{
                name: _nullable("string", format="date-time")
                for name in (
                    "heartbeat_at",
                    "created_at",
                    "updated_at",
                    "parse_finished_at",
                    "commit_started_at",
                    "finished_at",
                )
            },
        },
        "required": ["id", "organization_id", "status", "file_name", "settings"],
    },
    "CreateJob": {
        "type": "object",
        "properties": {
            "file_name": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": r"^[^\u0000-\u001f\u007f-\u009f]*\S[^\u0000-\u001f\u007f-\u009f]*$",
                "description": "The name the user chose, kept for display (trimmed; no control characters)",
            },
            "organization_id": {"type": "string", "format": "uuid"},
            "region": {"type": "string", "pattern": "^[A-Za-z]{2}$", "description": "Phones' default country (FR)"},
            "sheet": _nullable("string", minLength=1, maxLength=255, description="A workbook's sheet to read"),
            "file_size": {
                "type": "integer",
                "minimum": 0,
                "description": "The file's size in bytes: a file over the limit is refused before its upload",
            },
        },
        "required": ["file_name"],
        "additionalProperties": False,
    },
    "Retry": {
        "type": "object",
        "properties": {"force": {"type": "boolean"}, "restart": {"type": "boolean"}},
        "additionalProperties": False,
    },
    "CommitSettings": {
        "type": "object",
        "properties": {
            "duplicates": {"type": "string", "enum": list(DUPLICATES)},
            "match": {"type": "string", "enum": list(MATCHES)},
            "assignment": {"type": "string", "enum": list(ASSIGNMENTS)},
            "owner": {"type": "string", "description": "A member's email (assignment user)"},
            "owners": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "round_robin"},
            "owner_column": {"type": "string", "description": "A header of the file (assignment column)"},
            "assign": {"type": "string", "description": "The CLI's form: none, EMAIL, round-robin:A,B, column:H"},
        },
        "additionalProperties": False,
    },
    "Mapping": {
        "type": "object",
        "properties": {
            "mapping": {
                "oneOf": [
                    {"type": "object", "additionalProperties": _nullable("string")},
                    {"type": "array", "items": _nullable("string")},
                ],
                "description": "{header: lead field or null} or [lead field or null, per column]",
            }
        },
        "required": ["mapping"],
        "additionalProperties": False,
    },
    "Sheet": {
        "type": "object",
        "properties": {"sheet": {"type": "string", "minLength": 1, "maxLength": 255}},
        "required": ["sheet"],
        "additionalProperties": False,
    },
    "RowFix": {
        "type": "object",
        "properties": {
            "cells": {
                "type": "object",
                "additionalProperties": _nullable("string", maxLength=32767),
                "description": "{header name: corrected value, or null for an empty cell}, only the cells that change",
            },
            "extra_cells": _nullable(
                "array", items={"type": "string", "maxLength": 32767}, description="The cells past the header's width"
            ),
            "excluded": {"type": "boolean", "description": "true: leave the row out of the import"},
        },
        "minProperties": 1,
        "additionalProperties": False,
    },
    "Row": _object(
        **ROW_SHOWN,
        valid={"type": "boolean"},
        excluded={"type": "boolean"},
        duplicate_of=_nullable("integer"),
        fix=_nullable("object"),
    ),
    "Reason": {
        "type": "object",
        "description": "Why a row is invalid: its code, the text in English, and the facts the text names",
        "properties": {
            "code": {
                "type": "string",
                "description": "no_contact, malformed_row, invalid_email, invalid_phone, excluded",
            },
            "message": {"type": "string", "description": "In English, naming the bad value or the counts"},
            "value": {
                "type": "string",
                "description": "invalid_email, invalid_phone: the bad value (80 characters at most), when the cell has one",
            },
            "cells": {"type": "integer", "description": "malformed_row: the row's cells"},
            "columns": {"type": "integer", "description": "malformed_row: the header's columns"},
        },
        "required": ["code", "message"],
    },
    "Member": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "email": {"type": "string"},
            "display_name": {"type": "string"},
            "role": {"type": "string"},
        },
        "required": ["id", "email", "display_name", "role"],
    },
    "RememberedMapping": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "organization_id": {"type": "string", "format": "uuid"},
            "columns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"header": {"type": "string"}, "field": _nullable("string")},
                    "required": ["header", "field"],
                },
            },
            "settings": {"type": "object"},
            "job_id": _nullable("string"),
            "saved_by": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
        "required": ["id", "organization_id", "columns", "settings", "job_id", "saved_by", "created_at", "updated_at"],
    },
    "Config": {
        "type": "object",
        "properties": {
            "supabase_url": _nullable("string"),
            "supabase_anon_key": _nullable("string"),
            "max_file_mb": {"type": "number"},
            "default_region": {"type": "string"},
        },
        "required": ["supabase_url", "supabase_anon_key", "max_file_mb", "default_region"],
    },
    "CodeCount": {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "count": {"type": "integer"},
            "message": {"type": "string"},
            "example_rows": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["code", "count", "message", "example_rows"],
    },
    "Review": {
        "type": "object",
        "properties": {
            "job_id": {"type": "string"},
            "status": {"type": "string"},
            **{n: _nullable("integer") for n in ("total_rows", "valid_rows", "invalid_rows", "duplicate_rows")},
            "duplicate_of_job_id": _nullable("string"),
            "errors": {"type": "array", "items": _ref("CodeCount")},
            "warnings": {"type": "array", "items": _ref("CodeCount")},
        },
        "required": ["job_id", "status", "errors", "warnings"],
    },
    "InvalidRows": {
        "type": "object",
        "properties": {
            "header": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": _object(**ROW_SHOWN)},
            "next_after": _nullable("integer"),
        },
        "required": ["header", "rows", "next_after"],
    },
}


def _operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


def _job_change(
    summary: str, ok: tuple[int, str], body: dict[str, Any] = NO_BODY, reply: dict[str, Any] = JOB_REPLY
) -> dict[str, Any]:
    """An operation that changes a job: `ok` is (status, text) of its answer; every refusal
    is a JSON error that changed nothing."""
    status, text = ok
    return _operation(summary, {**_ok(status, reply, text), **_errors(400, 404, 409, 413, 415)}, requestBody=body)


PATHS: dict[str, Any] = {
    "/api/health": {
        "get": _operation("Liveness", _ok(200, {"type": "object"}, "Up"), security=[]),
    },
    "/api/openapi.json": {
        "get": _operation("This document", _ok(200, {"type": "object"}, "OpenAPI 3.1"), security=[]),
    },
    "/api/jobs": {
        "post": _operation(
            "A new job, and a signed URL to upload its file to",
            {
                **_ok(
                    201,
                    {
                        "type": "object",
                        "properties": {"job": _ref("Job"), "upload_url": _nullable("string")},
                        "required": ["job", "upload_url"],
                    },
                    (
                        "Created (pending). upload_url: a signed PUT URL for the file's bytes (S3's presigned one, or "
                        "the local stack's for its folder storage); null when the storage has none"
                    ),
                ),
                **_errors(400, 403, 413, 415),
            },
            requestBody=_body(_ref("CreateJob"), required=True),
        ),
        "get": _operation(
            "The organization's jobs, newest first",
            {
                **_ok(200, {"type": "object", "properties": {"jobs": {"type": "array", "items": _ref("Job")}}}, "Jobs"),
                **_errors(400, 403),
            },
            parameters=[
                ORG_QUERY,
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                },
            ],
        ),
    },
    "/api/jobs/{job_id}": {
        "get": _operation(
            "One job, with its counts and progress", {**_ok(200, JOB_REPLY, "The job"), **_errors(400, 404)}
        ),
    },
    "/api/jobs/{job_id}/start": {
        "post": _job_change(
            "Start a pending job once its file is uploaded; a job past pending is returned as it is",
            (202, "Validating, or already past pending"),
        ),
    },
    "/api/jobs/{job_id}/retry": {
        "post": _job_change(
            "Resume a failed, cancelled or stuck job at its cursor (restart: from scratch)",
            (202, "Resumed"),
            _body(_ref("Retry"), required=False),
        ),
    },
    "/api/jobs/{job_id}/cancel": {
        "post": _job_change("Stop the job at its next slice boundary", (200, "Cancelled")),
    },
    "/api/jobs/{job_id}/commit": {
        "post": _job_change(
            "Commit a ready job with these settings; the same settings again return the job (202)",
            (202, "Committing, or already committing/completed with these settings"),
            _body(_ref("CommitSettings"), required=False),
        ),
    },
    "/api/jobs/{job_id}/revert": {
        "post": _job_change("Undo a completed import", (202, "Reverting")),
    },
    "/api/jobs/{job_id}/errors": {
        "get": _operation(
            "Counts by error and warning code, with example rows",
            {**_ok(200, _ref("Review"), "Counts"), **_errors(400, 404)},
        ),
    },
    "/api/jobs/{job_id}/invalid-rows": {
        "get": _operation(
            "A page of invalid rows after row `after`",
            {**_ok(200, _ref("InvalidRows"), "A page"), **_errors(400, 404)},
            parameters=[
                {
                    "name": "after",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 0},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                },
            ],
        ),
    },
    "/api/jobs/{job_id}/error-report.csv": {
        "get": _operation(
            "The invalid rows for Excel (UTF-8 with BOM, `;`, formulas neutralized)",
            {
                "200": {"description": "The report", "content": {"text/csv": {"schema": {"type": "string"}}}},
                **_errors(400, 404),
            },
        ),
    },
    "/api/jobs/{job_id}/mapping": {
        "put": _job_change(
            "A new column mapping for a ready job, which re-parses it",
            (202, "Parsing again"),
            _body(_ref("Mapping"), required=True),
        ),
    },
    "/api/jobs/{job_id}/mapping/automatic": {
        "post": _job_change(
            "Take a ready job back to the automatic mapping of its header, which re-parses it", (202, "Parsing again")
        ),
    },
    "/api/jobs/{job_id}/sheet": {
        "put": _job_change(
            "Read another sheet of a ready job's workbook (the rows are read again, row fixes dropped)",
            (202, "Reading the sheet"),
            _body(_ref("Sheet"), required=True),
            _object(job=_ref("Job"), notice={"type": "string"}),
        ),
    },
    "/api/jobs/{job_id}/rows/{row_no}": {
        "get": _operation(
            "One row of a parsed job as it stands: its cells, why it is invalid, its fix",
            {
                **_ok(200, {"type": "object", "properties": {"row": _ref("Row")}, "required": ["row"]}, "The row"),
                **_errors(400, 404),
            },
        ),
        "patch": _job_change(
            "Fix a row of a ready job in review: corrected cells, extra cells, or excluded",
            (200, "The row as fixed, and the job with its new counts"),
            _body(_ref("RowFix"), required=True),
            _object(row=_ref("Row"), job=_ref("Job")),
        ),
    },
    "/api/organizations/{org_id}/members": {
        "get": _operation(
            "The members of one of the user's organizations, in the order they joined",
            {
                **_ok(
                    200,
                    {
                        "type": "object",
                        "properties": {"members": {"type": "array", "items": _ref("Member")}},
                        "required": ["members"],
                    },
                    "Members",
                ),
                **_errors(400, 404),
            },
        ),
    },
    "/api/mappings": {
        "get": _operation(
            "The organization's remembered mappings, most recently saved first",
            {
                **_ok(
                    200,
                    {
                        "type": "object",
                        "properties": {"mappings": {"type": "array", "items": _ref("RememberedMapping")}},
                        "required": ["mappings"],
                    },
                    "Remembered mappings",
                ),
                **_errors(400, 403),
            },
            parameters=[
                ORG_QUERY,
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                },
            ],
        ),
    },
    "/api/mappings/{mapping_id}": {
        "delete": _operation(
            "Forget a remembered mapping: later files of its header get the automatic mapping",
            {
                **_ok(
                    200,
                    {"type": "object", "properties": {"deleted": {"type": "string"}}, "required": ["deleted"]},
                    "Forgotten",
                ),
                **_errors(400, 404, 413, 415),
            },
            requestBody=NO_BODY,
        ),
    },
    "/api/config": {
        "get": _operation(
            "What the import page needs before sign-in: public values only",
            {**_ok(200, _ref("Config"), "The page's configuration"), **_errors(400)},
            security=[],
        ),
    },
}
PATH_PARAMETERS = {
    "job_id": JOB_ID,
    "row_no": {
        "name": "row_no",
        "in": "path",
        "required": True,
        "description": "The row's number, as the invalid rows and errors views give it; no such row is a 404.",
        "schema": {"type": "string"},
    },
    "org_id": {
        "name": "org_id",
        "in": "path",
        "required": True,
        "description": "One of the user's organizations; another one is a 404, as is anything but a UUID.",
        "schema": {"type": "string"},
    },
    "mapping_id": {
        "name": "mapping_id",
        "in": "path",
        "required": True,
        "description": "A remembered mapping of the user's organizations; another one is a 404.",
        "schema": {"type": "string"},
    },
}
for _path, _item in PATHS.items():
    _names = re.findall(r"{(\w+)}", _path)
    if _names:
        _item["parameters"] = [PATH_PARAMETERS[n] for n in _names]

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Lead import",
        "version": "1",
        "description": (
            "The frontend's API. Every error is JSON {error, message}; a refused request changes nothing. "
            "Query parameters and body fields other than those listed are refused (400)."
        ),
    },
    "servers": [{"url": "/"}],
    "security": [{"bearerAuth": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "The user's Supabase access token",
            }
        },
    },
}


@bp.get("/openapi.json")
def document() -> Any:
    return jsonify(DOCUMENT)

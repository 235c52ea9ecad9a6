"""What every frontend view goes through first: who the user is, which of the user's
organizations and jobs it may touch, and what its request says.

A frontend blueprint runs `authenticate` before each request (the user's Supabase access
token, as g.user). A view then reaches a job only through `load_job`, which answers 404 for
another organization's job exactly as for a job that does not exist, and reads its input
only through this module, which is strict: a view names the body keys and query parameters
it takes, and anything else is a 400 (or 415) naming the field, before anything is read
from or written to the database.

- `json_body(keys)`: no body at all is `{}`; a body must be `application/json` (415
  otherwise), parse as JSON (400, a nesting too deep included) and be an object whose keys
  are all in `keys` (400 naming the others).
- `query(names)`: 400 for a query parameter the view does not take, or one given twice.
- `flag`, `text`, `cell`, `int_arg`, `org_from`: one value each, 400 naming it when its type or
  range is wrong.
"""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from collections.abc import Collection
from typing import Any

from flask import g, request

from lib.auth import bearer_token
from lib.db import Row, queries
from lib.errors import BadRequest, Forbidden, JobNotFound, UnsupportedMediaType
from lib.services import connection, services

# The JSON media types a body may be sent as (RFC 6839's +json suffix included).
JSON_TYPES = ("application/json",)


def authenticate() -> None:
    """A blueprint's before_request: the request's user, or 401."""
    g.user = services().verifier.verify(bearer_token(request))


def user_orgs() -> dict[str, Row]:
    """The user's memberships, by organization id."""
    rows = connection().execute(queries()["user_orgs"], {"user": g.user.id}).fetchall()
    return {str(r["organization_id"]): r for r in rows}


def org_from(value: Any, name: str = "organization_id") -> str:
    """The organization a request acts for: the one it names (an id of one of the user's
    organizations), or the user's only one when it names none."""
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be an organization id (a UUID string), not {_json_type(value)}")
    if value:
        try:
            value = str(uuid.UUID(value))
        except ValueError:
            raise BadRequest(f"{name} must be an organization id (a UUID), not {_shown(value)}") from None
    orgs = user_orgs()
    if value:
        if value not in orgs:
            raise Forbidden("you are not a member of this organization")
        return value
    if len(orgs) == 1:
        return next(iter(orgs))
    if not orgs:
        raise Forbidden("you are not a member of any organization")
    raise BadRequest(f"you belong to several organizations: say which with {name}")


def load_job(job_id: str) -> Row:
    """The job, if it belongs to one of the user's organizations; 404 otherwise."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise JobNotFound() from None
    job = connection().execute(queries()["get_job"], {"id": job_id}).fetchone()
    if job is None or str(job["organization_id"]) not in user_orgs():
        raise JobNotFound()
    return job


def json_body(keys: Collection[str] = ()) -> dict[str, Any]:
    """The request's JSON object, whose keys must all be in `keys`; {} without a body."""
    data = request.get_data(cache=True)
    if not data:
        return {}
    if request.mimetype not in JSON_TYPES and not request.mimetype.endswith("+json"):
        shown = request.mimetype or "no Content-Type"
        raise UnsupportedMediaType(f"the request body must be JSON sent as application/json, not {shown}")
    try:
        body = json.loads(data)
    except RecursionError:
        raise BadRequest("the request body is not valid JSON: it is nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, not {_json_type(body)}")
    unknown = sorted(set(body) - set(keys))
    if unknown:
        expected = ", ".join(keys) if keys else "none"
        raise BadRequest(
            f"unknown field(s) in the request body: {', '.join(map(_shown, unknown))}; expected: {expected}"
        )
    return body


def query(names: Collection[str] = ()) -> None:
    """400 for a query parameter the view does not take, or one given more than once."""
    unknown = sorted(set(request.args) - set(names))
    if unknown:
        expected = ", ".join(names) if names else "none"
        raise BadRequest(f"unknown query parameter(s): {', '.join(map(_shown, unknown))}; expected: {expected}")
    for name in names:
        if len(request.args.getlist(name)) > 1:
            raise BadRequest(f"{name} is given more than once")


def flag(body: dict[str, Any], name: str) -> bool:
    """A JSON boolean option: "false" is not false, so anything but true/false is refused."""
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def text(value: Any, name: str, *, max_length: int) -> str:
    """A string as a person would see it: trimmed, not empty, at most `max_length`
    characters, no control characters (nor lone surrogates, which no database can store)."""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string, not {_json_type(value)}")
    value = value.strip()
    if not value:
        raise BadRequest(f"{name} must not be empty")
    if len(value) > max_length:
        raise BadRequest(f"{name} is {len(value)} characters long; at most {max_length} are allowed")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise BadRequest(f"{name} must not hold control characters")
    return value


def cell(value: Any, name: str, *, max_length: int = 32_767) -> str:
    """A spreadsheet cell's value as typed: kept as sent (blanks and line breaks included),
    but a string, at most `max_length` characters (Excel's own cell limit), and without NUL
    or lone surrogates, which no database can store."""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string, not {_json_type(value)}")
    if len(value) > max_length:
        raise BadRequest(f"{name} is {len(value)} characters long; at most {max_length} are allowed")
    if "\x00" in value or any(unicodedata.category(c) == "Cs" for c in value):
        raise BadRequest(f"{name} must not hold a NUL character or a lone surrogate")
    return value


def int_arg(name: str, default: int, *, minimum: int, maximum: int) -> int:
    """A whole-number query parameter: `default` when absent or empty, 400 when it is not a
    whole number (ASCII digits) or is out of [minimum, maximum]."""
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if not re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        raise BadRequest(f"{name} must be a whole number, not {_shown(value)}")
    digits = value.strip().lstrip("+-").lstrip("0")
    number = int(value) if len(digits) <= 18 else (maximum + 1 if not value.strip().startswith("-") else minimum - 1)
    if number < minimum:
        raise BadRequest(f"{name} must be at least {minimum}")
    if number > maximum:
        raise BadRequest(f"{name} must be at most {maximum}")
    return number


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _shown(value: str, limit: int = 40) -> str:
    """A value the user sent, quoted for a message, cut to a readable length."""
    return repr(value if len(value) <= limit else value[: limit - 1] + "…")

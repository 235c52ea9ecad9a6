"""What every frontend view goes through first: who the user is, which of the user's
organizations and jobs it may touch, and what its request says.

A frontend blueprint runs `authenticate` before each request (the user's Supabase access
token, as g.user). A view then reaches a job only through `load_job`, which answers 404 for
another organization's job exactly as for a job that does not exist, and reads its input
through `json_body`, `flag` and `int_arg`, which answer 400 for a value of the wrong shape.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import g, request

from lib.auth import bearer_token
from lib.db import Row, queries
from lib.errors import BadRequest, Forbidden, JobNotFound
from lib.services import connection, services


def authenticate() -> None:
    """A blueprint's before_request: the request's user, or 401."""
    g.user = services().verifier.verify(bearer_token(request))


def user_orgs() -> dict[str, Row]:
    """The user's memberships, by organization id."""
    rows = connection().execute(queries()["user_orgs"], {"user": g.user.id}).fetchall()
    return {str(r["organization_id"]): r for r in rows}


def org_from(value: str | None) -> str:
    """The organization a request acts for: the one it names, which must be one of the
    user's, or the user's only one."""
    orgs = user_orgs()
    if value:
        if value not in orgs:
            raise Forbidden("you are not a member of this organization")
        return value
    if len(orgs) == 1:
        return next(iter(orgs))
    if not orgs:
        raise Forbidden("you are not a member of any organization")
    raise BadRequest("you belong to several organizations: say which with organization_id")


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


def json_body() -> dict[str, Any]:
    """The request's JSON object; {} without a body."""
    data = request.get_json(silent=True)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def flag(body: dict[str, Any], name: str) -> bool:
    """A JSON boolean option: "false" is not false, so anything but true/false is refused."""
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def int_arg(name: str, default: int, *, minimum: int) -> int:
    """A whole-number query parameter: `default` when absent or empty, 400 when it is not a
    whole number or is below `minimum`."""
    value = request.args.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None
    if number < minimum:
        raise BadRequest(f"{name} must be at least {minimum}")
    return number

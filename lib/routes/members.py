"""The members of one of the user's organizations, for the review's assignment choices.

`GET /api/organizations/<id>/members`: `{"members": [{id, email, display_name, role}]}`, in
the order they joined (`display_name`: the one stored, else the email's local part). 404 for
an organization the user is not a member of, exactly as for one that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, jsonify

from lib.db import queries
from lib.errors import OrganizationNotFound
from lib.routes.guard import authenticate, query, user_orgs
from lib.services import connection

bp = Blueprint("members", __name__, url_prefix="/api/organizations")
bp.before_request(authenticate)


@bp.get("/<org_id>/members")
def members(org_id: str) -> Any:
    query()
    try:
        org_id = str(uuid.UUID(org_id))  # the canonical form, as user_orgs() names them
    except ValueError:
        raise OrganizationNotFound() from None
    if org_id not in user_orgs():  # ids the user's memberships hold: no other value reaches SQL
        raise OrganizationNotFound()
    rows = connection().execute(queries()["list_members"], {"org": org_id}).fetchall()
    return jsonify(
        members=[
            {
                "id": str(r["user_id"]),
                "email": r["email"],
                "display_name": r["display_name"] or r["email"].split("@", 1)[0],
                "role": r["role"],
            }
            for r in rows
        ]
    )

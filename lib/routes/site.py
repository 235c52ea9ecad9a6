"""What the import page needs before anyone signs in: `GET /api/config`, no authentication.

Only public values: the Supabase URL and anon (public) key the page signs in with (null
when not deployed on Supabase), the largest file an import takes (`max_file_mb`, from
IMPORT_MAX_FILE_MB), and the default phone region of a new import. Never a secret.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from lib.routes.guard import query
from lib.services import services

bp = Blueprint("site", __name__, url_prefix="/api")


@bp.get("/config")
def config() -> Any:
    query()
    s = services().settings
    return jsonify(
        supabase_url=s.supabase_url,
        supabase_anon_key=s.supabase_anon_key,
        max_file_mb=s.max_file_mb,
        default_region=s.default_region,
    )

"""The sweep, started by Vercel cron (Authorization: Bearer CRON_SECRET) or a QStash schedule."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, jsonify, request

from lib import manager
from lib.errors import Unauthorized
from lib.queue import verify_signature
from lib.services import connection, services

bp = Blueprint("cron", __name__, url_prefix="/api/cron")


@bp.route("/sweep", methods=["GET", "POST"])
def sweep() -> Any:
    settings = services().settings
    auth = request.headers.get("Authorization", "")
    if request.headers.get("Upstash-Signature"):
        verify_signature(settings, request.headers["Upstash-Signature"], request.get_data(cache=True), request.path)
    elif not settings.cron_secret or not hmac.compare_digest(auth, f"Bearer {settings.cron_secret}"):
        raise Unauthorized("the sweep needs the cron secret or a QStash signature")
    result = manager.sweep(
        connection(),
        services().publish,
        max_sweeps=settings.max_sweeps,
        retention_days=settings.staged_retention_days,
    )
    return jsonify(result)

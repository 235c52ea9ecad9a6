"""QStash endpoints: one per phase, and the failure callback. All signed."""

from __future__ import annotations

import base64
import json
import logging
import time
from functools import wraps
from typing import Any

from flask import Blueprint, jsonify, request

from lib import slices
from lib.app import connection, services
from lib.errors import BadRequest
from lib.phases import PHASES
from lib.queue import Message, verify_signature

log = logging.getLogger(__name__)
bp = Blueprint("slices", __name__, url_prefix="/api/import")


def qstash_signed(view: Any) -> Any:
    """401 and nothing read or written unless QStash signed this raw body for this URL."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        body = request.get_data(cache=True)
        verify_signature(services().settings, request.headers.get("Upstash-Signature"), body, request.path)
        return view(*args, **kwargs)

    return wrapper


@bp.post("/<any(parse, commit, revert):phase>")
@qstash_signed
def run_slice(phase: str) -> Any:
    started = time.time()
    msg = Message.from_body(request.get_data(cache=True))
    if msg.phase != phase:
        raise BadRequest(f"a {msg.phase} message sent to the {phase} endpoint")
    svc = services()
    reply = slices.handle(connection(), msg, svc.settings, svc, PHASES, svc.publish)
    # One line per slice; bench/e2e.py reads these to split work from overhead.
    log.info(
        "slice.%s job=%s phase=%s run=%s slice=%s start=%.4f end=%.4f work_ms=%.1f",
        reply.outcome, msg.job, msg.phase, msg.run, msg.slice, started, time.time(), 1000 * reply.work_seconds,
    )  # fmt: skip
    return jsonify(outcome=reply.outcome, detail=reply.detail), reply.status


@bp.post("/failed")
@qstash_signed
def failure_callback() -> Any:
    """QStash gave up on a slice message: the job fails with what happened and what to do."""
    try:
        callback = json.loads(request.get_data(cache=True))
        msg = Message.from_body(base64.b64decode(callback.get("sourceBody") or ""))
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"not a QStash failure callback: {exc}") from exc
    status = callback.get("status")
    try:
        reason = base64.b64decode(callback.get("body") or "").decode("utf-8", "replace")[:300]
    except ValueError:
        reason = ""
    message = (
        f"The {msg.phase} step stopped: slice {msg.slice} could not be delivered after "
        f"{callback.get('retried', '?')} retries (last answer: HTTP {status} {reason}). "
        "Retry the import to resume where it stopped."
    )
    failed = slices.fail_job(connection(), msg.job, message, run=msg.run)
    log.warning("slice.gave_up job=%s phase=%s slice=%s failed=%s", msg.job, msg.phase, msg.slice, failed)
    return jsonify(outcome="failed" if failed else "stale")

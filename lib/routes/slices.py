"""QStash endpoints: one per phase, and the failure callback. All signed."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from functools import wraps
from typing import Any

import psycopg
from flask import Blueprint, jsonify, request

from lib import slices
from lib.errors import BadRequest, LeadImportError
from lib.phases import PHASES
from lib.queue import Message, verify_signature
from lib.services import connection, services

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


@bp.post(f"/<any({', '.join(PHASES)}):phase>")
@qstash_signed
def run_slice(phase: str) -> Any:
    started = time.time()
    try:
        msg = Message.from_body(request.get_data(cache=True))
        if msg.phase != phase:
            raise BadRequest(f"a {msg.phase} message sent to the {phase} endpoint")
    except BadRequest as exc:
        # Signed but unusable: no retry can fix it, so tell QStash to stop (to its DLQ).
        answer = jsonify(error="bad_message", message=exc.message)
        return answer, 489, {"Upstash-NonRetryable-Error": "true"}
    svc = services()
    try:
        reply = slices.handle(connection(), msg, svc.settings, svc, PHASES, svc.publish)
    except (LeadImportError, psycopg.OperationalError):
        raise  # the app's error handlers answer these
    except Exception as exc:
        # A bug, a job its phase cannot handle, a failed publish: QStash retries, and when it
        # gives up, the failure callback quotes this answer in the job's error message.
        log.exception("slice.crashed job=%s phase=%s run=%s slice=%s", msg.job, msg.phase, msg.run, msg.slice)
        return jsonify(error="slice_crashed", message=f"{type(exc).__name__}: {exc}"[:300]), 500
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
        msg = Message.from_body(base64.b64decode(callback["sourceBody"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise BadRequest(f"not a QStash failure callback: {exc!r}") from exc
    message = (
        f"The {msg.phase} step stopped at slice {msg.slice}: QStash gave up after "
        f"{callback.get('retried', '?')} retries (last answer: {_last_answer(callback)}). "
        "Retry the import to resume where it stopped; if it stops again at the same place, "
        "contact support with this job id."
    )
    failed = slices.fail_job(connection(), msg.job, message, code="delivery_failed", run=msg.run, slice_no=msg.slice)
    log.warning("slice.gave_up job=%s phase=%s slice=%s failed=%s", msg.job, msg.phase, msg.slice, failed)
    return jsonify(outcome="failed" if failed else "stale")


def _last_answer(callback: dict[str, Any]) -> str:
    """The last answer QStash got, in a few words: `HTTP 500: LookupError: ...`."""
    status = callback.get("status")
    try:
        body = base64.b64decode(callback.get("body") or "").decode("utf-8", "replace").strip()
    except (ValueError, TypeError):
        body = ""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("message"):  # our own error replies
            body = str(data["message"])
    except ValueError:
        body = re.sub(r"<[^>]*>", " ", body)  # an HTML error page: its text
    body = " ".join(body.split())[:300]
    if not status:
        return f"no answer from the endpoint ({body or 'connection failed'})"
    return f"HTTP {status}: {body}" if body else f"HTTP {status}"

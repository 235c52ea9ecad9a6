"""The Flask application: one blueprint per concern, one connection per request (lib/services.py).

Every answer is JSON, whatever went wrong (docs/ARCHITECTURE.md "One request contract"): the
service's own errors with their status, Werkzeug's (unknown route, wrong method, body too
large) with theirs, and anything unexpected as a 500 whose log line and body carry the
request's id, so a user's report can be matched to the traceback.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import psycopg
from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from lib.config import Settings
from lib.errors import LeadImportError
from lib.routes import commit, cron, jobs, mappings, members, openapi, review, rows, site, slices
from lib.services import Services, init_app

log = logging.getLogger(__name__)

# No route takes a body anywhere near this (a commit's settings are the largest).
MAX_BODY_BYTES = 1 << 20


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)  # no static route: the page is served by Vercel
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    # Werkzeug would answer `/api/jobs//start` with an HTML 308 to `/api/jobs/start`: no
    # redirects, a path either is a route or is a JSON 404.
    app.url_map.merge_slashes = False
    init_app(app, services or Services.from_settings(settings))

    app.register_blueprint(slices.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(cron.bp)
    app.register_blueprint(commit.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(mappings.bp)
    app.register_blueprint(rows.bp)
    app.register_blueprint(members.bp)
    app.register_blueprint(site.bp)
    app.register_blueprint(openapi.bp)

    @app.before_request
    def _request_id() -> None:
        # Vercel's own id when there is one, so our log lines match its request log.
        given = request.headers.get("X-Vercel-Id") or request.headers.get("X-Request-Id") or ""
        g.request_id = re.sub(r"[^\w.:-]", "", given)[:100] or uuid.uuid4().hex  # safe to log

    @app.after_request
    def _echo_request_id(response: Any) -> Any:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response

    @app.errorhandler(LeadImportError)
    def _domain_error(exc: LeadImportError) -> Any:
        return jsonify(error=exc.code, message=exc.message), exc.status

    @app.errorhandler(psycopg.OperationalError)
    def _database_down(exc: psycopg.OperationalError) -> Any:
        # Transient: QStash retries a 5xx, and so can a frontend.
        log.warning("db.unavailable request=%s error=%s", g.get("request_id"), exc)
        return jsonify(error="database_unavailable", message="The database is unavailable; try again."), 503

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        code = (exc.name or "error").replace(" ", "")
        response = jsonify(error=code, message=exc.description or exc.name)
        if allowed := getattr(exc, "valid_methods", None):  # a 405 says which methods the URL takes
            response.headers["Allow"] = ", ".join(allowed)
        return response, exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        # A bug: logged with its traceback and the request's id, answered in the one error shape.
        request_id = g.get("request_id") or uuid.uuid4().hex
        log.exception("request.crashed request=%s method=%s path=%s", request_id, request.method, request.path)
        message = f"Something went wrong on our side. Quote {request_id} to support."
        return jsonify(error="internal_error", message=message, request_id=request_id), 500

    @app.get("/api/health")
    def health() -> Any:
        return jsonify(ok=True)

    return app

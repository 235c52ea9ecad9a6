"""The Flask application: one blueprint per concern, one connection per request (lib/services.py)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Flask, jsonify

from lib.config import Settings
from lib.errors import LeadImportError
from lib.routes import commit, cron, jobs, mappings, members, review, rows, site, slices
from lib.services import Services, init_app

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
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

    @app.errorhandler(LeadImportError)
    def _domain_error(exc: LeadImportError) -> Any:
        return jsonify(error=exc.code, message=exc.message), exc.status

    @app.errorhandler(psycopg.OperationalError)
    def _database_down(exc: psycopg.OperationalError) -> Any:
        # Transient: QStash retries a 5xx, and so can a frontend.
        log.warning("db.unavailable error=%s", exc)
        return jsonify(error="database_unavailable", message="The database is unavailable; try again."), 503

    @app.get("/api/health")
    def health() -> Any:
        return jsonify(ok=True)

    return app

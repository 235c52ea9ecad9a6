"""The Flask application: one blueprint per concern, one connection per request."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from flask import Flask, g, jsonify

from lib import db
from lib.auth import TokenVerifier, verifier_from_env
from lib.config import Settings
from lib.errors import LeadImportError
from lib.queue import Message, Publisher
from lib.storage import Storage, storage_from_env

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a request may need besides its connection, built once per process."""

    settings: Settings
    storage: Storage
    publisher: Publisher
    verifier: TokenVerifier

    def publish(self, msg: Message) -> None:
        self.publisher.publish(msg)


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.extensions["lead_import"] = services or Services(
        settings=settings,
        storage=storage_from_env(settings.env, settings.local_data_dir),
        publisher=Publisher(settings),
        verifier=verifier_from_env(settings.env),
    )

    from lib.routes import commit, cron, jobs, review, slices

    app.register_blueprint(slices.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(cron.bp)
    app.register_blueprint(commit.bp)
    app.register_blueprint(review.bp)

    @app.errorhandler(LeadImportError)
    def _domain_error(exc: LeadImportError) -> Any:
        return jsonify(error=exc.code, message=exc.message), exc.status

    @app.errorhandler(psycopg.OperationalError)
    def _database_down(exc: psycopg.OperationalError) -> Any:
        # Transient: QStash retries a 5xx, and so can a frontend.
        log.warning("db.unavailable error=%s", exc)
        return jsonify(error="database_unavailable", message="The database is unavailable; try again."), 503

    @app.teardown_appcontext
    def _close_connection(_exc: BaseException | None) -> None:
        conn = g.pop("conn", None)
        if conn is not None:
            conn.close()

    @app.get("/api/health")
    def health() -> Any:
        return jsonify(ok=True)

    return app


def services() -> Services:
    from flask import current_app

    return current_app.extensions["lead_import"]


def connection() -> psycopg.Connection:
    """The request's connection, opened on first use and closed on teardown."""
    if "conn" not in g:
        g.conn = db.connect(services().settings.database_url)
    return g.conn

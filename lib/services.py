"""What a request works with: the app's services, built once per process, and the request's
own database connection (in flask.g, opened on first use and closed on teardown).

The route modules import these two accessors, never lib.app: the app imports the routes,
so the routes must not import it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g

from lib import db
from lib.auth import TokenVerifier, verifier_from_env
from lib.config import Settings
from lib.queue import Message, Publisher
from lib.storage import Storage, storage_from_env

EXTENSION = "lead_import"


@dataclass
class Services:
    """Everything a request may need besides its connection, built once per process."""

    settings: Settings
    storage: Storage
    publisher: Publisher
    verifier: TokenVerifier

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return cls(
            settings=settings,
            storage=storage_from_env(settings.env, settings.local_data_dir),
            publisher=Publisher(settings),
            verifier=verifier_from_env(settings.env),
        )

    def publish(self, msg: Message) -> None:
        self.publisher.publish(msg)


def init_app(app: Flask, svc: Services) -> None:
    """Give the app its services, and close each request's connection on teardown."""
    app.extensions[EXTENSION] = svc
    app.teardown_appcontext(_close_connection)


def services() -> Services:
    """The current app's services."""
    svc: Services = current_app.extensions[EXTENSION]
    return svc


def connection() -> db.Connection:
    """The request's connection, opened on first use and closed on teardown."""
    if "conn" not in g:
        g.conn = db.connect(services().settings.database_url)
    conn: db.Connection = g.conn
    return conn


def _close_connection(_exc: BaseException | None) -> None:
    conn = g.pop("conn", None)
    if conn is not None:
        conn.close()

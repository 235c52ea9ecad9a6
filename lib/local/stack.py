"""The local stack: everything the service needs, on one machine, with no account anywhere.

It fills in only what the environment leaves out (docs/ARCHITECTURE.md "The local stack"):
- Postgres: DATABASE_URL when set, else an embedded server (pgserver) in LOCAL_DATA_DIR;
- QStash: QSTASH_TOKEN when set, else lib.local.qstash_server, reached by the real SDK;
- storage: S3 when configured (lib.storage decides), else a folder in LOCAL_DATA_DIR;
- auth: a local JWT secret, and a local organization with three members when none exists;
- the endpoints: the Flask app served over real HTTP on 127.0.0.1, inside the site of
  lib/local/site.py (signed uploads to folder storage, the static files of public/);
- Vercel's cron: the crons of vercel.json (lib/local/crons.py), when asked (`serve` does).
The product code sees only the resulting environment variables.

First starts are safe to race (several commands at once on a fresh data folder): the secrets
file is written once (atomically, the first writer wins), the embedded server is started and
tuned under a lock of the data folder, and the organization is seeded under an advisory lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import sql
from werkzeug.serving import BaseWSGIServer, make_server

from lib import db
from lib.config import Settings
from lib.storage import storage_from_env

log = logging.getLogger(__name__)

LOCAL_ORG = uuid.UUID("00000000-0000-4000-8000-00000000000a")
LOCAL_MEMBERS = (
    (uuid.UUID("00000000-0000-4000-8000-000000000001"), "camille@local.test", "owner"),
    (uuid.UUID("00000000-0000-4000-8000-000000000002"), "lucas@local.test", "member"),
    (uuid.UUID("00000000-0000-4000-8000-000000000003"), "manon@local.test", "member"),
)


SECRET_NAMES = (
    "QSTASH_TOKEN",
    "QSTASH_CURRENT_SIGNING_KEY",
    "QSTASH_NEXT_SIGNING_KEY",
    "SUPABASE_JWT_SECRET",
    "CRON_SECRET",
    "LOCAL_STORAGE_SIGNING_KEY",
)


def local_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets of the local stack, made once and kept in the data folder.

    The file appears whole or not at all: it is written under another name, then linked to
    its own, which fails when another process linked first; then that one's secrets win. A
    file from before a secret was added gets the missing ones the same way (replaced whole).
    """
    path = data_dir / "secrets.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            values: dict[str, str] = json.loads(path.read_text())
        except FileNotFoundError:
            values = {}
        missing = [name for name in SECRET_NAMES if name not in values]
        if not missing:
            return values
        values.update({name: secrets.token_urlsafe(32) for name in missing})
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".secrets-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(values, indent=2))
                f.flush()
                os.fsync(f.fileno())
            if len(missing) == len(SECRET_NAMES):
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)  # first writer wins; the loop reads the winner's
            else:
                os.replace(tmp, path)  # an older file: completed (racers write the same names)
        finally:
            Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def data_dir_lock(data_dir: Path, name: str) -> Iterator[None]:
    """An exclusive lock between the processes that use this data folder (flock)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / f".{name}.lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def embedded_running(data_dir: Path) -> bool:
    """Whether the embedded server of this data folder runs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir / "pg")
    return bool(info is not None and info.is_running())


def embedded_server(data_dir: Path) -> Any:
    """Start (or reuse) the embedded Postgres server of this data folder.

    The local stack leaves it running (the next command reuses it); tests and benchmarks stop
    theirs with stop_embedded_server. (pgserver's own stop at exit would miss a server that
    _tune restarted: it tracks the first postmaster's process.)"""
    return start_embedded_server(data_dir)[0]


def start_embedded_server(data_dir: Path) -> tuple[Any, bool]:
    """embedded_server, and whether this call started it (False: it was running)."""
    with data_dir_lock(data_dir, "pg"), warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir, which warns where XDG_RUNTIME_DIR is unset.
        warnings.simplefilter("ignore")
        started = not embedded_running(data_dir)
        server = _pgserver().get_server(str(data_dir / "pg"), cleanup_mode=None)
        _tune(server)
    return server, started


def _pgserver() -> Any:
    """The pgserver module: a local-stack dependency, not in the Vercel bundle."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    return pgserver


# initdb's defaults size Postgres for a small shared host: 128 MB of shared buffers. An import
# of 210,000 rows works on about 400 MB (staged rows, leads and their indexes); with 128 MB
# the server spends its time writing evicted pages back. Measured with bench.e2e at 210,202
# rows: 15.5 s end to end with the defaults, 13.9 s with these. Supabase sizes its own
# servers to their compute (shared_buffers is a quarter of the memory there).
EMBEDDED_SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "4GB"}


def stop_embedded_server(data_dir: Path) -> None:
    """Stop the embedded server of this data folder, if it runs (the local stack leaves it
    running for the next command)."""
    with data_dir_lock(data_dir, "pg"):
        if (data_dir / "pg" / "postmaster.pid").exists() and embedded_running(data_dir):
            _pg_ctl(data_dir / "pg", "-w", "-m", "fast", "stop")


def _pg_ctl(pgdata: Path, *args: str) -> None:
    """pg_ctl on the embedded server, as the user owning its data (pgserver runs it as a
    user of its own under root). pgserver has no restart or stop of its own, but exposes
    each of its Postgres programs as a function (built when it is imported)."""
    pg_ctl = cast("Callable[..., str]", _pgserver().pg_ctl)
    pg_ctl(list(args), pgdata=pgdata, user=pgdata.owner() if os.geteuid() == 0 else None)


def _tune(server: Any) -> None:
    """Apply EMBEDDED_SETTINGS once, restarting the embedded server when they change."""
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        stale = [
            name
            for name, value in EMBEDDED_SETTINGS.items()
            if conn.execute("select current_setting(%s) <> %s", (name, value)).fetchone() == (True,)
        ]
        for name in stale:
            # ALTER SYSTEM takes no parameters; the names and values are the constants above.
            conn.execute(sql.SQL("alter system set {} = {}").format(sql.Identifier(name), EMBEDDED_SETTINGS[name]))
    if stale:
        # pg_ctl restart keeps the server's options (socket, no TCP); -l keeps its output
        # out of this process's pipes.
        _pg_ctl(Path(server.pgdata), "-w", "-m", "fast", "-l", str(server.log), "restart")


def seed_local_organization(url: str) -> None:
    """A local organization with three members, when the database has no organization.

    Safe to run from several processes at once: they take turns (an advisory lock), and
    the rows go in with ON CONFLICT DO NOTHING besides."""
    with db.connect(url) as conn, conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('lead-import-local-seed'))")
        found = conn.execute("select exists (select 1 from organizations) as found").fetchone()
        if found is not None and found["found"]:
            return
        conn.execute(
            "insert into organizations (id, name) values (%s, %s) on conflict do nothing",
            (LOCAL_ORG, "Organisation locale"),
        )
        for user_id, email, role in LOCAL_MEMBERS:
            conn.execute(
                "insert into organization_members (organization_id, user_id, email, role)"
                " values (%s, %s, %s, %s) on conflict do nothing",
                (LOCAL_ORG, user_id, email, role),
            )


class _Dispatch:
    """The WSGI app behind the server, set once the server's port (and so APP_URL) is known."""

    app: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


class LocalStack:
    """The local stack, started by `start()` (or `with`), stopped by `stop()`.

    `env` is the environment to complete (os.environ by default). The local QStash's fault
    injection and retries come from the arguments, else from the environment, else from
    lib.local.qstash_server's defaults: LOCAL_QSTASH_FAULTS; LOCAL_QSTASH_RETRY_BASE and
    LOCAL_QSTASH_RETRY_CAP, the backoff's base and cap in seconds (0.05 and 2); and
    LOCAL_QSTASH_RETRIES, the retries of a message that does not set Upstash-Retries (3; the
    service sets 5 on its slices, not on their failure callbacks). `port` is the app's (0: any
    free port); `poll_interval` how often the app's server checks for a stop. `crons`: call
    the crons of vercel.json on their schedule, or every LOCAL_CRON_SECONDS when set.

    The local QStash keeps its queue in LOCAL_DATA_DIR/qstash.sqlite3: what a stack accepted
    and did not deliver before it stopped (or died) is delivered by the next one on that data
    folder, to its own APP_URL. `started_postgres` tells whether this stack started the
    embedded server (which it leaves running: `python -m lib stop` stops it).
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        faults: str | None = None,
        port: int = 0,
        retry_base: float | None = None,
        retry_cap: float | None = None,
        retries: int | None = None,
        poll_interval: float = 0.05,
        crons: bool = False,
    ):
        self.base_env = dict(os.environ if env is None else env)
        self.data_dir = Path(self.base_env.get("LOCAL_DATA_DIR", ".local")).resolve()
        self.faults = faults if faults is not None else self.base_env.get("LOCAL_QSTASH_FAULTS")
        self.port = port
        self.poll_interval = poll_interval
        self.qstash_options: dict[str, Any] = {}
        for name, value, variable, kind in (
            ("retry_base", retry_base, "LOCAL_QSTASH_RETRY_BASE", float),
            ("retry_cap", retry_cap, "LOCAL_QSTASH_RETRY_CAP", float),
            ("default_retries", retries, "LOCAL_QSTASH_RETRIES", int),
        ):
            if value is None and self.base_env.get(variable):
                value = kind(self.base_env[variable])
            if value is not None:
                self.qstash_options[name] = value
        self.env: dict[str, str] = {}
        self.qstash: Any = None
        self.crons: Any = None
        self.run_crons = crons
        self.started_postgres = False
        self._server: BaseWSGIServer | None = None

    @property
    def app_url(self) -> str:
        """Where this process's app listens (APP_URL may name another process, or none)."""
        if self._server is None:
            raise RuntimeError("the local stack is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> dict[str, str]:
        env = dict(self.base_env)
        env["LOCAL_DATA_DIR"] = str(self.data_dir)
        local = local_secrets(self.data_dir)
        if not env.get("DATABASE_URL"):
            server, self.started_postgres = start_embedded_server(self.data_dir)
            env["DATABASE_URL"] = server.get_uri()
        db.migrate(env["DATABASE_URL"])
        # Request lines of the local endpoints are noise in a terminal; slices log their own.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        dispatch = _Dispatch()
        self._server = make_server("127.0.0.1", self.port, dispatch, threaded=True)
        env.setdefault("APP_URL", self.app_url)
        if not env.get("QSTASH_TOKEN"):
            from lib.local.qstash_server import LocalQStash

            for name in ("QSTASH_TOKEN", "QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY"):
                env[name] = local[name]
            self.qstash = LocalQStash(
                env["QSTASH_TOKEN"],
                env["QSTASH_CURRENT_SIGNING_KEY"],
                env["QSTASH_NEXT_SIGNING_KEY"],
                faults=self.faults,
                store=self.data_dir / "qstash.sqlite3",
                app_url=env["APP_URL"],
                **self.qstash_options,
            )
            env["QSTASH_URL"] = self.qstash.start()
        if not (env.get("SUPABASE_JWT_SECRET") or env.get("SUPABASE_URL")):
            env["SUPABASE_JWT_SECRET"] = local["SUPABASE_JWT_SECRET"]
            seed_local_organization(env["DATABASE_URL"])
        env.setdefault("CRON_SECRET", local["CRON_SECRET"])
        env.setdefault("LOCAL_STORAGE_SIGNING_KEY", local["LOCAL_STORAGE_SIGNING_KEY"])
        self.env = env

        from lib.app import create_app
        from lib.local.site import Site

        settings = Settings.from_env(env)
        dispatch.app = Site(create_app(settings), storage_from_env(env, settings.local_data_dir))
        threading.Thread(
            target=self._server.serve_forever, args=(self.poll_interval,), name="local-app", daemon=True
        ).start()
        if self.run_crons:
            from lib.local.crons import Crons, vercel_crons

            every = float(env["LOCAL_CRON_SECONDS"]) if env.get("LOCAL_CRON_SECONDS") else None
            self.crons = Crons(self.app_url, env.get("CRON_SECRET"), vercel_crons(), every)
            self.crons.start()
        log.info("local.started app=%s qstash=%s", env["APP_URL"], env.get("QSTASH_URL"))
        return env

    def write_state(self) -> None:
        """Let other commands (`python -m lib import`) find and reuse this running stack."""
        names = ("DATABASE_URL", "APP_URL", "QSTASH_URL", "QSTASH_TOKEN", "QSTASH_CURRENT_SIGNING_KEY",
                 "QSTASH_NEXT_SIGNING_KEY", "SUPABASE_JWT_SECRET", "CRON_SECRET", "LOCAL_DATA_DIR")  # fmt: skip
        state: dict[str, Any] = {k: self.env[k] for k in names if k in self.env}
        state["pid"] = os.getpid()
        fd, tmp = tempfile.mkstemp(dir=self.data_dir, prefix=".stack-")  # made 0600
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(state, indent=2))
        os.replace(tmp, _state_path(self.data_dir))  # readers see the old file or the new one

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def wait_idle(self, timeout: float = 60) -> bool:
        return self.qstash.wait_idle(timeout) if self.qstash else True

    def stop(self) -> None:
        state = _state_path(self.data_dir)
        if state.exists() and json.loads(state.read_text()).get("APP_URL") == self.env.get("APP_URL"):
            state.unlink()
        if self.crons is not None:
            self.crons.stop()
        if self.qstash is not None:
            self.qstash.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _state_path(data_dir: Path) -> Path:
    return data_dir / "stack.json"


def running_stack_env(env: Mapping[str, str]) -> dict[str, str] | None:
    """The environment of a `python -m lib serve` running on this data folder, if it answers."""
    import urllib.request

    path = _state_path(Path(env.get("LOCAL_DATA_DIR", ".local")).resolve())
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):  # gone, or being written
        return None
    state.pop("pid", None)
    try:
        with urllib.request.urlopen(state["APP_URL"] + "/api/health", timeout=2) as resp:  # noqa: S310 (our own URL)
            if resp.status != 200:
                return None
    except OSError:
        return None
    return {**env, **state}


def serve_pid(data_dir: Path) -> int | None:
    """The process id of the `python -m lib serve` that runs on this data folder, if any."""
    try:
        pid = json.loads(_state_path(data_dir).read_text()).get("pid")
    except (OSError, ValueError):
        return None
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid

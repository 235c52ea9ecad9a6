"""`python -m lib`: import a file, list, retry, revert and cancel jobs, serve the local stack, migrate.

The CLI acts as the service itself (database and storage access, like the endpoints),
while every slice runs over HTTP through QStash exactly as in production.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from lib import db, manager
from lib.config import Settings, environment
from lib.db import queries
from lib.errors import JobNotFound, LeadImportError
from lib.jobs import ACTIVE
from lib.phases import progress
from lib.queue import Publisher
from lib.status import Status
from lib.storage import storage_from_env
from lib.views import summary

# Where following a job stops: it waits for a person (ready), or it is over.
FINAL = frozenset(Status) - ACTIVE - {Status.PENDING}


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one command; `env` stands for the process environment (lib.config.environment())."""
    env = environment() if env is None else dict(env)
    args = _parser(env).parse_args(argv)
    args.env = env
    logging.basicConfig(level=env.get("LOG_LEVEL", "WARNING"), format="%(asctime)s %(name)s %(message)s")
    try:
        return args.func(args)
    except LeadImportError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    imp = sub.add_parser("import", help="import a CSV file of leads, start to finish")
    imp.add_argument("file", type=Path)
    _commit_options(imp)
    imp.add_argument("--region", default="FR", help="default phone region (default FR)")
    imp.add_argument("--org", help="organization id (default: the only one / the local one)")
    imp.add_argument("--sheet", metavar="NAME", help="a workbook's sheet to import (default: the first with data)")
    imp.set_defaults(func=cmd_import)

    jobs = sub.add_parser("jobs", help="list the import jobs, newest first")
    jobs.add_argument("--json", action="store_true")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(func=cmd_jobs)

    retry = sub.add_parser("retry", help="retry a failed, cancelled or stuck job and follow it")
    retry.add_argument("job_id")
    retry.add_argument("--force", action="store_true", help="take over an active job even if it looks alive")
    retry.add_argument("--restart", action="store_true", help="start over from the validating step")
    _commit_options(retry)
    retry.set_defaults(func=cmd_retry)

    _undo_commands(sub)

    serve = sub.add_parser("serve", help="run the local stack (database, QStash, storage, endpoints)")
    serve.add_argument("--port", type=int, default=int(env.get("PORT", "8000")))
    serve.set_defaults(func=cmd_serve)

    _local_commands(sub)

    mig = sub.add_parser("migrate", help="apply the migrations to DATABASE_URL")
    mig.set_defaults(func=cmd_migrate)

    sample = sub.add_parser("sample", help="write an Excel-style sample file of leads (CSV, or PATH.xlsx)")
    sample.add_argument("path", type=Path)
    sample.add_argument("--rows", type=int, default=210_202)
    sample.add_argument("--seed", type=int, default=1)
    sample.set_defaults(func=cmd_sample)
    return p


def _commit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="commit without asking")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    # Unset options take the review's defaults (the remembered settings, else skip,
    # email_then_phone and the owner column the mapping found, else none): lib.cli_output.
    p.add_argument("--duplicates", choices=("skip", "update", "create"))
    p.add_argument("--match", choices=("email_then_phone", "email", "phone", "email_or_phone"))
    p.add_argument("--assign", help="none | EMAIL | round-robin:EMAIL,EMAIL,... | column:HEADER")


# -- the stack ---------------------------------------------------------------------------


class Stack:
    """The configured stack, or the local one: reused when `serve` runs, else started here."""

    def __init__(self, env: Mapping[str, str]) -> None:
        env = dict(env)
        self.local: Any = None
        if not (env.get("QSTASH_TOKEN") and env.get("DATABASE_URL") and env.get("APP_URL")):
            from lib.local.stack import LocalStack, running_stack_env

            running = running_stack_env(env)
            if running is not None:
                env = running
            else:
                self.local = LocalStack(env)
                env = self.local.start()
        self.settings = Settings.from_env(env)
        self.conn = db.connect(self.settings.database_url)
        self.storage = storage_from_env(self.settings.env, self.settings.local_data_dir)
        self.publish = Publisher(self.settings).publish

    def close(self) -> None:
        self.conn.close()
        if self.local is not None:
            self.local.stop()
            _after_embedded_postgres(self.local)


def cmd_migrate(args: argparse.Namespace) -> int:
    url = args.env.get("DATABASE_URL")
    if not url:
        print("error: set DATABASE_URL to the database to migrate", file=sys.stderr)
        return 2
    applied = db.migrate(url)
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from lib.local.stack import LocalStack

    stack = LocalStack(args.env, port=args.port, crons=True)
    env = stack.start()
    # `python -m lib stop` (or any kill) ends serve as Ctrl-C does: the stack stops cleanly.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.write_state()
        crons = ", ".join(f"{c.path} ({c.schedule})" for c in stack.crons.crons) if stack.crons else "none"
        every = f"every {stack.crons.every:g} s" if stack.crons and stack.crons.every else "on schedule"
        print(f"app        {env['APP_URL']}  (POST /api/import/parse, /api/import/commit, /api/jobs ...)")
        print(f"database   {env['DATABASE_URL']}")
        print(f"qstash     {env.get('QSTASH_URL', 'https://qstash.upstash.io')}  faults={stack.faults or 'none'}")
        print(f"storage    {Path(env['LOCAL_DATA_DIR']) / 'storage'}")
        print(f"crons      {crons}  {every}")
        _print_sign_in_links(Settings.from_env(env))
        _note_embedded_postgres(stack)
        print("Ctrl-C to stop.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


# -- the local stack's own commands: token, stop ------------------------------------------

TOKEN_SECONDS = 24 * 3600  # the life of a local access token (Supabase's default is 1 h)


def _local_commands(sub: Any) -> None:
    token = sub.add_parser("token", help="print an access token for a member (local stack, or a JWT secret)")
    token.add_argument("email")
    token.add_argument("--expires-in", type=int, default=TOKEN_SECONDS, help="seconds (default 24 h)")
    token.set_defaults(func=cmd_token)

    stop = sub.add_parser("stop", help="stop the local stack: a running serve, then the embedded Postgres")
    stop.set_defaults(func=cmd_stop)


def member_token(conn: Any, settings: Settings, email: str, expires_in: int = TOKEN_SECONDS) -> str:
    """An access token for the member with this email, signed like Supabase Auth's."""
    from lib.auth import mint_token

    if not settings.jwt_secret:
        raise LeadImportError(
            "no JWT secret to sign with: tokens are made on the local stack or with SUPABASE_JWT_SECRET"
        )
    row = conn.execute(queries()["member_by_email"], {"email": email}).fetchone()
    if row is None:
        known = ", ".join(r["email"] for r in conn.execute(queries()["members_to_sign_in"]))
        raise LeadImportError(f"no member with the email {email!r}; members: {known or 'none'}")
    issuer = f"{settings.supabase_url}/auth/v1" if settings.supabase_url else None
    return mint_token(settings.jwt_secret, str(row["user_id"]), row["email"], expires_in=expires_in, issuer=issuer)


def sign_in_link(app_url: str, token: str, expires_in: int) -> str:
    """The site's root with the session in the URL fragment, as Supabase Auth redirects."""
    fragment = urlencode({"access_token": token, "expires_in": expires_in, "token_type": "bearer"})
    return f"{app_url.rstrip('/')}/#{fragment}"


def _print_sign_in_links(settings: Settings) -> None:
    if not settings.jwt_secret:
        return
    with db.connect(settings.database_url) as conn:
        members = conn.execute(queries()["members_to_sign_in"]).fetchall()
        print("sign in    (one link per member; `python -m lib token EMAIL` prints a token)")
        for m in members:
            token = member_token(conn, settings, m["email"])
            print(f"  {m['email']:<24} {sign_in_link(settings.app_url, token, TOKEN_SECONDS)}")


def _after_embedded_postgres(local: Any) -> None:
    """A command that started the embedded Postgres stops it when LOCAL_STOP_POSTGRES=1 (for
    scripts: `make demo`), else says once that it keeps it running, and how to stop it."""
    if local.started_postgres and local.base_env.get("LOCAL_STOP_POSTGRES") == "1":
        from lib.local.stack import stop_embedded_server

        stop_embedded_server(local.data_dir)
        print(f"stopped the embedded Postgres this command started ({local.data_dir / 'pg'}).", file=sys.stderr)
        return
    _note_embedded_postgres(local)


def _note_embedded_postgres(local: Any) -> None:
    """Say it, once (by the command that started it), when an embedded Postgres stays running."""
    if local is not None and local.started_postgres:
        print(
            f"note: the embedded Postgres this command started keeps running in {local.data_dir / 'pg'} "
            "for the next command; `python -m lib stop` stops it.",
            file=sys.stderr,
        )


def cmd_token(args: argparse.Namespace) -> int:
    stack = Stack(args.env)
    try:
        print(member_token(stack.conn, stack.settings, args.email, args.expires_in))
    finally:
        stack.close()
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from lib.local.stack import embedded_running, serve_pid, stop_embedded_server

    data_dir = Path(args.env.get("LOCAL_DATA_DIR", ".local")).resolve()
    stopped = []
    pid = serve_pid(data_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while serve_pid(data_dir) == pid and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped.append(f"serve (pid {pid})")
    if (data_dir / "pg").exists() and embedded_running(data_dir):
        stop_embedded_server(data_dir)
        stopped.append(f"the embedded Postgres in {data_dir / 'pg'}")
    print(f"stopped {' and '.join(stopped)}" if stopped else f"nothing of the local stack runs on {data_dir}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from lib.parse.sample import write_sample_csv
    from lib.parse.sample_workbook import write_sample_workbook

    args.path.parent.mkdir(parents=True, exist_ok=True)
    # PATH.xlsx (or .xlsm): the same rows as a workbook, some cells numbers, and a second sheet.
    workbook = args.path.suffix.lower() in (".xlsx", ".xlsm")
    (write_sample_workbook if workbook else write_sample_csv)(args.path, args.rows, seed=args.seed)
    print(f"wrote {args.rows} rows to {args.path}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    stack = Stack(args.env)
    try:
        rows = stack.conn.execute(queries()["list_jobs"], {"limit": args.limit}).fetchall()
        if args.json:
            print(json.dumps([summary(r) for r in rows], indent=2))
        else:
            for r in rows:
                print(
                    f"{r['id']}  {r['created_at']:%Y-%m-%d %H:%M}  {r['status']:<10}  {r['total_rows']:>9} rows  "
                    f"{r['inserted_rows']:>9} inserted  {r['file_name']}"
                )
    finally:
        stack.close()
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"error: no such file: {args.file}", file=sys.stderr)
        return 2
    stack = Stack(args.env)
    try:
        org, user = _org_and_user(stack, args.org)
        key = f"{org}/{uuid.uuid4()}/{args.file.name}"
        with args.file.open("rb") as f:
            stack.storage.put(key, f)
        job = manager.create_job(
            stack.conn, org=org, user=user, file_name=args.file.name, storage_path=key,
            settings={"region": args.region.upper(), **sheet_setting(args)}, lease_seconds=stack.settings.lease_seconds,
        )  # fmt: skip
        manager.start_job(stack.conn, str(job["id"]), stack.publish)
        return _follow_and_commit(stack, str(job["id"]), args)
    finally:
        stack.close()


def sheet_setting(args: argparse.Namespace) -> dict[str, str]:
    """The job setting `--sheet NAME` asks for (a workbook's sheet)."""
    return {"sheet": args.sheet} if args.sheet else {}


def cmd_retry(args: argparse.Namespace) -> int:
    stack = Stack(args.env)
    try:
        manager.retry_job(stack.conn, args.job_id, stack.publish, force=args.force, restart=args.restart)
        return _follow_and_commit(stack, args.job_id, args)
    finally:
        stack.close()


def _org_and_user(stack: Stack, org: str | None) -> tuple[str, str]:
    rows = stack.conn.execute(queries()["first_member"], {"org": org}).fetchall()
    orgs = {r["organization_id"] for r in rows}
    if not rows:
        raise LeadImportError("no organization with members in this database; pass --org")
    if len(orgs) > 1 and org is None:
        raise LeadImportError("several organizations: say which with --org")
    return str(rows[0]["organization_id"]), str(rows[0]["user_id"])


# -- revert and cancel ----------------------------------------------------------------------


def _undo_commands(sub: Any) -> None:
    """`revert` and `cancel`: each changes one job, then follows it to its end like `retry`."""
    for name, func, text in (
        ("revert", cmd_revert, "undo a completed import (asks first, saying what it will and will not do)"),
        ("cancel", cmd_cancel, "stop an import at its next slice boundary (retry resumes it)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("job_id")
        p.add_argument("--yes", action="store_true", help="do it without asking")
        p.add_argument("--json", action="store_true", help="print one JSON object at the end")
        p.add_argument("--org", help="the organization the job belongs to (where there are several)")
        p.set_defaults(func=func)


UNDO_WILL = """\
Revert of job {id} ({file_name}): {inserted_rows} leads inserted, {updated_rows} leads updated.
  It will:
    - delete the leads this import inserted;
    - give the leads it updated back the values it overwrote.
  It will not (those leads are kept, and counted):
    - touch a lead someone changed since the import, in the app or by hand ("changed since");
    - touch a lead a later import matched, unless that import is reverted first ("matched later");
    - bring back a lead someone deleted, or undo what other imports did.
  A revert cannot itself be undone."""


def cmd_revert(args: argparse.Namespace) -> int:
    from lib.revert_slice import refusal

    stack = Stack(args.env)
    try:
        job = _job_of(stack, args.job_id, args.org)
        if reason := refusal(job):
            raise LeadImportError(f"cannot revert: {reason}")
        if not args.yes:
            print(UNDO_WILL.format(**job))
            if not _ask("Revert this import? [y/N] ", "revert"):
                print("Not reverted.")
                return 1
        manager.revert_job(stack.conn, args.job_id, stack.publish, retention_days=stack.settings.staged_retention_days)
        return _follow_to(stack, args, Status.REVERTED)
    finally:
        stack.close()


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel never asks (`--yes` is accepted): nothing is lost, `retry` resumes the job."""
    stack = Stack(args.env)
    try:
        _job_of(stack, args.job_id, args.org)
        manager.cancel_job(stack.conn, args.job_id)
        return _follow_to(stack, args, Status.CANCELLED)
    finally:
        stack.close()


def _follow_to(stack: Stack, args: argparse.Namespace, expected: Status) -> int:
    """Follow the job to its end, print its summary; exit status 0 if it ended as `expected`."""
    from lib.cli_output import print_final

    job = follow(stack.conn, args.job_id, quiet=args.json)
    if args.json:
        print(json.dumps(summary(job), indent=2))
    else:
        print_final(job)
    return 0 if job["status"] == expected else 1


def _job_of(stack: Stack, job_id: str, org: str | None) -> dict[str, Any]:
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise JobNotFound(f"no import job has the id {job_id!r}") from None
    job = stack.conn.execute(queries()["get_job"], {"id": job_id}).fetchone()
    if job is None or (org is not None and str(job["organization_id"]) != org):
        raise JobNotFound()
    return dict(job)


def _ask(question: str, verb: str) -> bool:
    if not sys.stdin.isatty():
        print(f"Not a terminal: pass --yes to {verb}.", file=sys.stderr)
        return False
    return input(question).strip().lower() in ("y", "yes", "o", "oui")


# -- following a job ------------------------------------------------------------------------


def _follow_and_commit(stack: Stack, job_id: str, args: argparse.Namespace) -> int:
    from lib.cli_output import commit_body, print_final, print_review

    quiet = args.json
    job = follow(stack.conn, job_id, quiet=quiet)
    if job["status"] == Status.READY:
        if not quiet:
            print_review(stack.conn, job)
        if not args.yes and not _confirm(job):
            print("Not committed. The job stays ready; commit it from the app or run retry later.")
            return 1
        manager.commit_job(stack.conn, job_id, commit_body(args, job), stack.publish)
        job = follow(stack.conn, job_id, quiet=quiet)
    if quiet:
        print(json.dumps(summary(job), indent=2))
    else:
        print_final(job)
    return 0 if job["status"] == Status.COMPLETED else 1


def _confirm(job: dict[str, Any]) -> bool:
    if not sys.stdin.isatty():
        print("Not a terminal: pass --yes to commit.", file=sys.stderr)
        return False
    answer = input(f"Import {job['valid_rows']} valid rows? [y/N] ")
    return answer.strip().lower() in ("y", "yes", "o", "oui")


def follow(conn: Any, job_id: str, *, quiet: bool = False, poll: float = 0.05) -> dict[str, Any]:
    """Watch the job row until it leaves the active statuses, with a progress bar per phase."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}
    try:
        while True:
            job = conn.execute(queries()["get_job"], {"id": job_id}).fetchone()
            status = Status(job["status"])
            if not quiet and status in ACTIVE:
                phase = job["phase"]
                bar = bars.get(phase)
                if bar is None:
                    bar = bars[phase] = tqdm(desc=f"{phase:<7}", unit=" rows", unit_scale=True, dynamic_ncols=True)
                bar.n, bar.total = progress(job)
                bar.refresh()
            if status in FINAL:
                for phase, bar in bars.items():
                    if phase == job["phase"]:
                        bar.n, bar.total = progress(job)
                    bar.close()
                return job
            time.sleep(poll)
    finally:
        for bar in bars.values():
            bar.close()

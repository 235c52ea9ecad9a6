"""Settings, read once from the environment (the names of the README's "Environment").

`environment()` is the one place product code reads os.environ: Settings.from_env() reads
its mapping, and so does the CLI for its own few names (LOG_LEVEL, PORT, DATABASE_URL of
`migrate`). The local stack (lib/local/) fills the same names, so product code never asks
"am I local?".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Clocks of Vercel functions, Supabase Auth and QStash drift a little: a user token's and a
# QStash signature's time claims (exp, nbf) are checked with this much leeway.
CLOCK_TOLERANCE_SECONDS = 10


def environment() -> dict[str, str]:
    """A copy of the process environment."""
    return dict(os.environ)


def supabase_url(env: Mapping[str, str]) -> str | None:
    """The Supabase project's URL without a trailing slash: SUPABASE_URL, else the frontend's
    NEXT_PUBLIC_SUPABASE_URL (one Vercel project often holds both apps' variables)."""
    url = env.get("SUPABASE_URL") or env.get("NEXT_PUBLIC_SUPABASE_URL")
    return url.rstrip("/") if url else None


MAX_FILE_MB = 256


def max_file_mb(env: Mapping[str, str]) -> int:
    """The largest file an import takes, in MB (IMPORT_MAX_FILE_MB): for Settings and for
    folder storage's upload URLs alike."""
    return int(env.get("IMPORT_MAX_FILE_MB") or MAX_FILE_MB)


def supabase_anon_key(env: Mapping[str, str]) -> str | None:
    """The Supabase project's public (anon) key, which the import page signs in with:
    SUPABASE_ANON_KEY, else the frontend's NEXT_PUBLIC_SUPABASE_ANON_KEY."""
    return env.get("SUPABASE_ANON_KEY") or env.get("NEXT_PUBLIC_SUPABASE_ANON_KEY") or None


def app_url(env: Mapping[str, str]) -> str:
    """Public base URL of the endpoints; QStash signs it as `sub`, so never the Host header."""
    if env.get("APP_URL"):
        return env["APP_URL"].rstrip("/")
    for name in ("VERCEL_PROJECT_PRODUCTION_URL", "VERCEL_URL"):
        if env.get(name):
            return "https://" + env[name].rstrip("/")
    return "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Settings:
    database_url: str
    app_url: str
    qstash_token: str
    qstash_url: str | None
    current_signing_key: str
    next_signing_key: str
    cron_secret: str | None = None
    supabase_url: str | None = None
    jwt_secret: str | None = None
    supabase_anon_key: str | None = None
    # The largest file an import takes (IMPORT_MAX_FILE_MB): refused at job creation when the
    # browser states the size, and at validating whatever it said.
    max_file_mb: int = MAX_FILE_MB
    default_region: str = "FR"
    local_data_dir: Path = Path(".local")
    # The slice budget: well under Vercel's maxDuration (vercel.json) and short
    # enough that a watched job moves at least every 2 seconds.
    slice_seconds: float = 1.5
    parse_slice_rows: int = 250_000
    commit_slice_rows: int = 40_000
    lease_seconds: int = 90
    max_sweeps: int = 3
    staged_retention_days: int = 30
    qstash_retries: int = 5
    # No slice runs unbounded (docs: README "Time limits"). QStash waits `delivery_timeout`
    # for an answer (Upstash-Timeout; below vercel.json's maxDuration of 60 s); every slice
    # statement is cancelled after `statement_timeout`, well below it, and rolls the slice
    # back as a transient failure. A delivery waits `job_lock_wait` for the job's row lock,
    # then answers "busy" and re-publishes itself `busy_delay` later; the organization's lead
    # lock (concurrent commits take turns) is waited for at most `org_lock_wait`.
    delivery_timeout: int = 30
    statement_timeout: float = 10.0
    job_lock_wait: float = 0.2
    org_lock_wait: float = 5.0
    busy_delay: int = 2
    # Workbooks are converted to CSV in one function call (lib/workbook_step.py): larger ones
    # are refused before converting. Measured by bench/workbook.py and bench.e2e --workbook
    # (docs/ARCHITECTURE.md "Workbooks"). The reader runs in a child process capped at
    # `workbook_memory_mb` and `workbook_seconds`. The job's lease covers the conversion: at
    # least twice maxDuration, past which the function is stopped anyway.
    workbook_max_mb: int = 40
    workbook_max_expanded_mb: int = 200
    workbook_lease_seconds: int = 120
    workbook_memory_mb: int = 512  # the reader's process: half of vercel.json's memory
    workbook_seconds: float = 20.0  # the reader's time: with the copies, below Upstash-Timeout
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = environment() if env is None else dict(env)
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            app_url=app_url(env),
            qstash_token=env.get("QSTASH_TOKEN", ""),
            qstash_url=env.get("QSTASH_URL") or None,
            current_signing_key=env.get("QSTASH_CURRENT_SIGNING_KEY", ""),
            next_signing_key=env.get("QSTASH_NEXT_SIGNING_KEY", ""),
            cron_secret=env.get("CRON_SECRET") or None,
            supabase_url=supabase_url(env),
            jwt_secret=env.get("SUPABASE_JWT_SECRET") or None,
            supabase_anon_key=supabase_anon_key(env),
            max_file_mb=max_file_mb(env),
            local_data_dir=Path(env.get("LOCAL_DATA_DIR", ".local")),
            slice_seconds=float(env.get("IMPORT_SLICE_SECONDS", cls.slice_seconds)),
            parse_slice_rows=int(env.get("IMPORT_PARSE_SLICE_ROWS", cls.parse_slice_rows)),
            commit_slice_rows=int(env.get("IMPORT_COMMIT_SLICE_ROWS", cls.commit_slice_rows)),
            lease_seconds=int(env.get("IMPORT_LEASE_SECONDS", cls.lease_seconds)),
            max_sweeps=int(env.get("IMPORT_MAX_SWEEPS", cls.max_sweeps)),
            workbook_max_mb=int(env.get("IMPORT_WORKBOOK_MAX_MB", cls.workbook_max_mb)),
            workbook_max_expanded_mb=int(env.get("IMPORT_WORKBOOK_MAX_EXPANDED_MB", cls.workbook_max_expanded_mb)),
            workbook_seconds=float(env.get("IMPORT_WORKBOOK_SECONDS", cls.workbook_seconds)),
            statement_timeout=float(env.get("IMPORT_STATEMENT_TIMEOUT_SECONDS", cls.statement_timeout)),
            env=env,
        )

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024

    def endpoint_url(self, path: str) -> str:
        return f"{self.app_url}/{path.lstrip('/')}"

"""Remembered mappings: what an organization chose for a header, offered for its next file
with that header (docs/ARCHITECTURE.md "Remembered mappings").

- Saved when a commit starts (lib.manager.commit_job, in the commit's transaction): the job's
  mapping and commit settings, under the organization and the file's normalized header (the
  column names through lib.parse.mapping.normalize_name, in order). A later commit of the
  same header replaces it.
- Chosen at validating (lib.parse_slice.validate, through `choose`): among the organization's
  remembered headers sharing at least half of the new header's distinct column names, the same
  header first, then the one sharing the most, then the most recent. Its field goes to every
  shared column, also where the automatic mapping finds nothing ("Structure", "Num. direct");
  the other columns keep the automatic mapping, less any field a shared column already has.
  A result without an email or phone column falls back to the automatic mapping.
- Its commit settings become the job's defaults (`commit_defaults`), in the shape the commit
  route takes: members by email (those who left are dropped), the owner column by the new
  file's header name.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from lib.commit_settings import CommitSettings
from lib.db import Connection, Row, queries
from lib.errors import LeadImportError
from lib.parse.errors import MappingInvalid
from lib.parse.mapping import auto_map, check_mapping, normalize_name, owner_column

AUTOMATIC, REMEMBERED, EDITED = "automatic", "remembered", "edited"
CANDIDATES = 500  # remembered headers looked at per file, most recent first
DEFAULTS = {"duplicates": "skip", "match": "email_then_phone"}


class MappingNotFound(LeadImportError):
    """No such remembered mapping in your organizations."""

    status = 404


def header_columns(header: Sequence[str]) -> list[str]:
    return [normalize_name(name) for name in header]


def header_key(columns: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(columns).encode()).hexdigest()


@dataclass(frozen=True)
class Choice:
    """The mapping a new file gets at validating, and where it came from."""

    mapping: list[str | None]
    source: str  # AUTOMATIC or REMEMBERED
    remembered_id: str | None = None
    commit_defaults: dict[str, Any] | None = None  # the remembered settings, as the commit route takes them


def merge(
    header: Sequence[str], automatic: Sequence[str | None], columns: Sequence[str], mapping: Sequence[str | None]
) -> list[str | None]:
    """The remembered fields (`mapping`, per remembered column name `columns`) on the shared
    columns, the automatic ones elsewhere. A name the file repeats is matched in order of
    occurrence; an automatic field that a shared column already has is dropped, and so is an
    automatic full name beside a first or last name."""
    remembered: dict[str, list[str | None]] = {}
    for name, field in zip(columns, mapping, strict=True):
        remembered.setdefault(name, []).append(field)
    out = list(automatic)
    shared = [False] * len(header)
    seen: Counter[str] = Counter()
    for i, name in enumerate(header_columns(header)):
        fields, k = remembered.get(name, []), seen[name]
        seen[name] += 1
        if k < len(fields):
            out[i], shared[i] = fields[k], True
    taken = {f for f, s in zip(out, shared, strict=True) if s and f}
    for i, field in enumerate(out):
        if not shared[i] and field in taken:
            out[i] = None
    if "full_name" in out and ("first_name" in out or "last_name" in out):
        i = out.index("full_name")
        if not shared[i]:
            out[i] = None
    return out


def choose(conn: Connection, org: Any, header: Sequence[str]) -> Choice:
    """The mapping of a new file of the organization (module docstring)."""
    automatic = auto_map(header)
    best = _best(conn, org, header_columns(header))
    if best is None:
        return Choice(automatic, AUTOMATIC)
    merged = merge(header, automatic, best["columns"], best["mapping"])
    try:
        check_mapping(header, merged)
    except MappingInvalid:
        return Choice(automatic, AUTOMATIC)
    defaults = _defaults(conn, org, header, merged, best)
    return Choice(merged, REMEMBERED, str(best["id"]), defaults)


def _best(conn: Connection, org: Any, columns: list[str]) -> Row | None:
    wanted = set(columns)
    key = header_key(columns)
    rows = conn.execute(
        queries()["remembered_candidates"], {"org": org, "columns": sorted(wanted), "limit": CANDIDATES}
    ).fetchall()
    best, best_rank = None, (False, 0)
    for row in rows:  # most recent first: a later row must do strictly better
        shared = len(wanted.intersection(row["columns"]))
        rank = (row["header_key"] == key, shared)
        if 2 * shared >= len(wanted) and rank > best_rank:
            best, best_rank = row, rank
    if best is None:
        return None
    return conn.execute(queries()["get_remembered_mapping"], {"id": best["id"]}).fetchone()


def _defaults(
    conn: Connection, org: Any, header: Sequence[str], mapping: Sequence[str | None], row: Row
) -> dict[str, Any]:
    """The remembered commit settings for this file: members by email, the owner column by
    this file's name for it (or the column the mapping calls the owner)."""
    saved = row["settings"] or {}
    emails = {str(r["user_id"]): r["email"] for r in conn.execute(queries()["org_members"], {"org": org})}
    owners = [emails[u] for u in saved.get("owners", []) if u in emails]
    assignment = saved.get("assignment", "none")
    column = None
    if assignment == "column":
        names = dict(zip(header_columns(header), header, strict=True))
        column = names.get(normalize_name(saved.get("owner_column") or "")) or owner_column(header, mapping)
    if (assignment in ("user", "round_robin") and not owners) or (assignment == "column" and not column):
        assignment = "none"
    return {
        "duplicates": saved.get("duplicates", DEFAULTS["duplicates"]),
        "match": saved.get("match", DEFAULTS["match"]),
        "assignment": assignment,
        "owner": owners[0] if assignment == "user" else None,
        "owners": owners if assignment == "round_robin" else [],
        "owner_column": column,
    }


def commit_defaults(job: dict[str, Any]) -> dict[str, Any]:
    """The commit settings the review offers: the remembered ones when the job's mapping was
    remembered, else the defaults with the owner column the mapping found (if any) as a
    column assignment. `owner_column_found` names that column either way."""
    header, mapping = job.get("header") or [], job.get("mapping") or []
    found = owner_column(header, mapping) if header and len(header) == len(mapping) else None
    saved = (job.get("settings") or {}).get("remembered_commit")
    if saved:
        out = {**saved, "remembered": True}
        if out["assignment"] == "column" and out.get("owner_column") not in header:
            out |= (
                {"assignment": "column", "owner_column": found}
                if found
                else {"assignment": "none", "owner_column": None}
            )
    else:
        assignment = "column" if found else "none"
        out = {**DEFAULTS, "assignment": assignment, "owner": None, "owners": [], "owner_column": found}
        out["remembered"] = False
    out["owner_column_found"] = found
    return out


def remember(conn: Connection, job: Row, settings: CommitSettings) -> Row:
    """Save the job's mapping and commit settings for its organization (module docstring)."""
    columns = header_columns(job["header"])
    row = conn.execute(
        queries()["remember_mapping"],
        {
            "org": job["organization_id"],
            "key": header_key(columns),
            "columns": columns,
            "header": Jsonb(job["header"]),
            "mapping": Jsonb(job["mapping"]),
            "settings": Jsonb(settings.to_json()),
            "job": job["id"],
            "user": job["created_by"],
        },
    ).fetchone()
    assert row is not None, "insert ... returning gives the row"
    return row


def view(conn: Connection, row: Row) -> dict[str, Any]:
    """A remembered mapping as the API lists it: columns with their fields, settings with
    member emails."""
    saved = row["settings"] or {}
    emails = {
        str(r["user_id"]): r["email"] for r in conn.execute(queries()["org_members"], {"org": row["organization_id"]})
    }
    return {
        "id": str(row["id"]),
        "organization_id": str(row["organization_id"]),
        "columns": [{"header": h, "field": f} for h, f in zip(row["header"], row["mapping"], strict=True)],
        "settings": {
            "duplicates": saved.get("duplicates"),
            "match": saved.get("match"),
            "assignment": saved.get("assignment"),
            "owners": [emails.get(u, u) for u in saved.get("owners", [])],
            "owner_column": saved.get("owner_column"),
        },
        "job_id": str(row["job_id"]) if row["job_id"] else None,
        "saved_by": str(row["saved_by"]),
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }

"""What `python -m lib import` prints for a person: the review, then the final summary."""

from __future__ import annotations

import argparse
from typing import Any

from lib import review
from lib.db import Connection, Row
from lib.remembered import commit_defaults

SOURCES = {
    "automatic": "automatic",
    "remembered": "remembered (what was chosen for this header at an earlier import)",
    "edited": "edited",
}


def _examples(conn: Connection, job: Row, *, warnings: bool) -> list[str]:
    lines = []
    for c in review.codes(conn, job, warnings=warnings):
        n, rows = c["count"], c["example_rows"]
        more = f" and {n - len(rows)} more" if n > len(rows) else ""
        lines.append(f"    {c['code']:<16} {n:>8}   rows {', '.join(map(str, rows))}{more}")
    return lines


def print_review(conn: Connection, job: Row) -> None:
    print()
    print(f"Review of {job['file_name']} ({job['encoding']}, delimiter {job['delimiter']!r})")
    mapped = [f"{h} → {f}" for h, f in zip(job["header"], job["mapping"], strict=True) if f]
    kept = [h for h, f in zip(job["header"], job["mapping"], strict=True) if not f]
    print(f"  columns      {', '.join(mapped)}")
    if kept:
        print(f"  kept as custom fields: {', '.join(kept)}")
    print(f"  mapping      {SOURCES.get(job['mapping_source'], job['mapping_source'])}")
    print(f"  rows         {job['total_rows']:>9}")
    print(f"  valid        {job['valid_rows']:>9}")
    print(f"  invalid      {job['invalid_rows']:>9}")
    print(f"  duplicates   {job['duplicate_rows']:>9}   (repeat an earlier row of the file)")
    if job["invalid_rows"]:
        print("  errors (these rows will not be imported):")
        print("\n".join(_examples(conn, job, warnings=False)))
    if job["warning_counts"]:
        print("  warnings (rows imported, the bad value kept but not used to match):")
        print("\n".join(_examples(conn, job, warnings=True)))
    if job["duplicate_of_job_id"]:
        print(f"  ! this same file was already imported by job {job['duplicate_of_job_id']}")
    defaults = commit_defaults(job)
    origin = "remembered" if defaults["remembered"] else "defaults"
    print(
        f"  commit ({origin}, unless given): --duplicates {defaults['duplicates']} --match {defaults['match']} "
        f"--assign {assign_option(defaults)}"
    )
    print()


def assign_option(settings: dict[str, Any]) -> str:
    """The CLI's --assign for commit settings in the commit route's shape."""
    mode = settings["assignment"]
    if mode == "user":
        return str(settings["owner"])
    if mode == "round_robin":
        return "round-robin:" + ",".join(settings["owners"])
    if mode == "column":
        return f"column:{settings['owner_column']}"
    return "none"


def commit_body(args: argparse.Namespace, job: Row) -> dict[str, Any]:
    """The commit settings of `import`/`retry`: the options given, the review's defaults for the rest."""
    defaults = commit_defaults(job)
    return {
        "duplicates": args.duplicates or defaults["duplicates"],
        "match": args.match or defaults["match"],
        "assign": args.assign or assign_option(defaults),
    }


def print_final(job: Row) -> None:
    print()
    print(f"Job {job['id']}: {job['status']}")
    if job["error_message"]:
        print(f"  {job['error_message']}")
        print(f"  Once the cause is fixed, resume with: python -m lib retry {job['id']}")
    if job["status"] in ("completed", "committing", "reverted"):
        print(f"  inserted     {job['inserted_rows']:>9}")
        print(f"  updated      {job['updated_rows']:>9}")
        print(f"  skipped      {job['skipped_rows']:>9}   (matched an existing lead)")
        print(f"  invalid      {job['invalid_rows']:>9}   (not imported)")
        if job["warning_counts"]:
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(job["warning_counts"].items()))
            print(f"  warnings     {codes}")
    if job["phase"] == "revert":
        kept = job["kept_counts"]
        print("  undo:")
        print(f"  deleted      {job['reverted_rows']:>9}   (leads this import inserted)")
        print(f"  restored     {job['restored_rows']:>9}   (leads given back the values this import overwrote)")
        print(f"  kept         {kept.get('changed_since', 0):>9}   (changed since the import)")
        print(f"  kept         {kept.get('matched_later', 0):>9}   (matched by a later import, not reverted)")

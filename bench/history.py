"""A database with history: what every deployment has after its first day.

Other organizations' leads, leads of the local organization from an earlier import, other
jobs' staged rows and outcomes, then ANALYZE, so the planner's statistics describe
a database where the job about to run does not exist yet. Tests build it once as a template
(tests/conftest.py); bench.soak loads it before its imports.

None of its keys can match a generated sample file's (those use other domains and phone
ranges), so an import's outcomes on it equal its outcomes on a fresh database.
"""

from __future__ import annotations

import uuid

from lib import db
from lib.local.stack import LOCAL_ORG, seed_local_organization

EARLIER_JOB = uuid.UUID("00000000-0000-4000-8000-0000000000e1")
OTHER_JOB = uuid.UUID("00000000-0000-4000-8000-0000000000e2")
OTHER_ORG = uuid.UUID("00000000-0000-4000-8000-0000000000b0")


def add_history(url: str, *, other_leads: int = 200_000, own_leads: int = 20_000, staged_rows: int = 200_000) -> None:
    """Fill the migrated database at `url` with history, then ANALYZE it."""
    seed_local_organization(url)  # the local organization comes first, as on a real stack
    with db.connect(url) as conn, conn.transaction():
        params = {
            "other_org": OTHER_ORG, "own_org": LOCAL_ORG, "earlier_job": EARLIER_JOB, "other_job": OTHER_JOB,
            "other_leads": other_leads, "own_leads": own_leads, "staged_rows": staged_rows,
        }  # fmt: skip
        # Twenty other organizations share the other leads.
        conn.execute(
            """insert into organizations (id, name)
            select case when n = 0 then %(other_org)s::uuid else gen_random_uuid() end, 'Autre ' || n
            from generate_series(0, 19) n""",
            params,
        )
        conn.execute(
            """insert into import_jobs (id, organization_id, created_by, status, file_name, storage_path,
                 phase, total_rows, valid_rows, inserted_rows, finished_at)
            values (%(earlier_job)s, %(own_org)s, gen_random_uuid(), 'completed', 'earlier.csv', 'x/earlier.csv',
                    'commit', %(own_leads)s, %(own_leads)s, %(own_leads)s, now()),
                   (%(other_job)s, %(other_org)s, gen_random_uuid(), 'ready', 'other.csv', 'x/other.csv',
                    'parse', %(staged_rows)s, %(staged_rows)s, 0, null)""",
            params,
        )
        conn.execute(
            """insert into leads (organization_id, first_name, last_name, email, email_normalized, phone,
                 phone_e164, city, import_job_id, created_at, updated_at)
            select o.id, 'Prénom' || n, 'Nom' || n, 'h' || n || '@historique.example', 'h' || n || '@historique.example',
                   '+3399' || lpad(n::text, 8, '0'), '+3399' || lpad(n::text, 8, '0'), 'Paris', null,
                   now() - interval '30 days', now() - interval '30 days'
            from generate_series(1, %(other_leads)s) n
            join (select id, row_number() over (order by id) - 1 as k from organizations
                  where id <> %(own_org)s) o on o.k = n %% 20""",
            params,
        )
        conn.execute(
            """insert into leads (organization_id, first_name, email, email_normalized, phone, phone_e164,
                 import_job_id, created_at, updated_at)
            select %(own_org)s, 'Ancien' || n, 'a' || n || '@ancien.example', 'a' || n || '@ancien.example',
                   '+3398' || lpad(n::text, 8, '0'), '+3398' || lpad(n::text, 8, '0'), %(earlier_job)s,
                   now() - interval '7 days', now() - interval '7 days'
            from generate_series(1, %(own_leads)s) n""",
            params,
        )
        conn.execute(
            """insert into staged_rows (job_id, row_no, raw, fields, email_normalized, phone_e164, match_key,
                 errors, warnings, valid, duplicate_of)
            select j.id, n, null, jsonb_build_object('email', 's' || n || '@staged.example'),
                   's' || (n %% 150000) || '@staged.example', null, 's' || (n %% 150000) || '@staged.example',
                   '{}', '{}', true, case when n > 150000 then n - 150000 end
            from (values (%(earlier_job)s::uuid), (%(other_job)s::uuid)) j(id),
                 generate_series(1, %(staged_rows)s / 2) n""",
            params,
        )
        conn.execute(
            """insert into staged_outcomes (job_id, row_no, outcome, lead_id)
            select job_id, row_no, 'skipped', null from staged_rows""",
        )
    with db.connect(url) as conn:
        conn.execute("analyze")

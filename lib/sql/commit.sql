-- The commit phase (lib/commit_slice.py), its settings (lib/commit_settings.py) and the
-- undo of an import (lib/revert_slice.py).

-- name: lock_org_leads
-- Commit and revert slices of one organization run one at a time, so two imports in skip
-- or update mode never both insert a lead for the same match key.
select pg_advisory_xact_lock(hashtextextended('leads:' || %(org)s::text, 0))

-- name: chunk_rows
-- The rows of a chunk (row numbers run 1..total_rows), each valid one with the existing
-- lead its email and its phone match: the oldest lead holding that key, through one index
-- probe per row whatever the planner's statistics say about a leads table that just grew.
-- `mine`: this import already inserted or updated that lead (an earlier row of the file
-- matched it). The flags say which keys the job's match mode looks up. The owner cell is
-- the assignment column's value: a mapped field, or an unmapped column kept in custom.
select s.row_no, s.valid, s.email_normalized, s.phone_e164,
  coalesce(s.fields ->> %(owner_field)s::text, s.custom ->> %(owner_header)s::text) as owner_cell,
  e.id, e.mine, p.id, p.mine
from staged_rows s
left join lateral (
  select id, coalesce(import_job_id = %(job)s or updated_by_import_job_id = %(job)s, false) as mine
  from leads
  where %(by_email)s and s.valid and organization_id = %(org)s and email_normalized = s.email_normalized
  order by created_at, id
  limit 1
) e on true
left join lateral (
  select id, coalesce(import_job_id = %(job)s or updated_by_import_job_id = %(job)s, false) as mine
  from leads
  where (%(by_phone)s or (%(by_phone_without_email)s and s.email_normalized is null))
    and s.valid and organization_id = %(org)s and phone_e164 = s.phone_e164
  order by created_at, id
  limit 1
) p on true
where s.job_id = %(job)s and s.row_no > %(after)s and s.row_no <= %(until)s
order by s.row_no

-- name: copy_outcomes
copy staged_outcomes (job_id, row_no, outcome, lead_id, owner_id) from stdin

-- name: insert_leads
-- The chunk's rows whose outcome is `inserted`. Reads staged_rows alone, by a primary key
-- range: which rows insert and their owners are arrays of the chunk's rows (index 1 is the
-- row after `after`; the zero UUID for no owner), and the lead id is the chunk's id prefix
-- and the row number (as lib/commit_slice.py made it).
-- Joining staged_outcomes instead let a stale estimate of the job's size (one row) pick a
-- plan that scanned the job's rows once per outcome: quadratic on a database with history.
insert into leads (
  id, organization_id, civility, first_name, last_name, email, phone, email_normalized,
  phone_e164, company, job_title, address, postal_code, city, country, source, notes, custom,
  owner_id, import_job_id
)
select
  (%(id_prefix)s || lpad(to_hex(s.row_no), 8, '0'))::uuid, %(org)s, s.fields ->> 'civility',
  s.fields ->> 'first_name', s.fields ->> 'last_name', s.fields ->> 'email', s.fields ->> 'phone',
  s.email_normalized, s.phone_e164, s.fields ->> 'company', s.fields ->> 'job_title',
  s.fields ->> 'address', s.fields ->> 'postal_code', s.fields ->> 'city', s.fields ->> 'country',
  s.fields ->> 'source', s.fields ->> 'notes', s.custom,
  nullif((%(owners)s::uuid[])[s.row_no - %(after)s], '00000000-0000-0000-0000-000000000000'), %(job)s
from staged_rows s
where s.job_id = %(job)s and s.row_no > %(after)s and s.row_no <= %(until)s
  and (%(outcomes)s::"char"[])[s.row_no - %(after)s] = 'i'

-- name: update_leads
-- Non-empty values of the row overwrite the lead. A valid email or phone replaces the
-- lead's; an invalid one (kept raw in fields) only fills an empty one. A lead is updated by
-- at most one row of an import (the first that matches it), so one statement suffices.
-- The rows come from staged_rows alone, by a primary key range, each with its lead's id from
-- an array of the chunk's rows; each lead is then found by its primary key.
update leads l set
  civility = coalesce(s.fields ->> 'civility', l.civility),
  first_name = coalesce(s.fields ->> 'first_name', l.first_name),
  last_name = coalesce(s.fields ->> 'last_name', l.last_name),
  email = coalesce(s.email_normalized, l.email, s.fields ->> 'email'),
  phone = coalesce(s.phone_e164, l.phone, s.fields ->> 'phone'),
  email_normalized = coalesce(s.email_normalized, l.email_normalized),
  phone_e164 = coalesce(s.phone_e164, l.phone_e164),
  company = coalesce(s.fields ->> 'company', l.company),
  job_title = coalesce(s.fields ->> 'job_title', l.job_title),
  address = coalesce(s.fields ->> 'address', l.address),
  postal_code = coalesce(s.fields ->> 'postal_code', l.postal_code),
  city = coalesce(s.fields ->> 'city', l.city),
  country = coalesce(s.fields ->> 'country', l.country),
  source = coalesce(s.fields ->> 'source', l.source),
  notes = coalesce(s.fields ->> 'notes', l.notes),
  custom = l.custom || s.custom,
  updated_by_import_job_id = %(job)s,
  updated_at = now()
from (
  select r.*, (%(leads)s::uuid[])[r.row_no - %(after)s] as lead_id
  from staged_rows r
  where r.job_id = %(job)s and r.row_no > %(after)s and r.row_no <= %(until)s
    and (%(outcomes)s::"char"[])[r.row_no - %(after)s] = 'u'
) s
where l.id = s.lead_id and l.organization_id = %(org)s

-- name: revert_leads
-- Leads this import inserted that nobody changed since: no other import updated them and
-- their updated_at never moved (an import never updates a lead it inserted itself).
-- Leads it updated are left alone.
-- The ids are gathered first, then deleted by primary key: no join to plan.
delete from leads
where id = any(array(
  select id from leads
  where import_job_id = %(job)s and updated_by_import_job_id is null and updated_at = created_at
  limit %(limit)s
))

-- name: org_members
select user_id, email from organization_members where organization_id = %(org)s order by created_at, email

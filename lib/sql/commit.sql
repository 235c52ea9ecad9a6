-- The commit phase (lib/commit_slice.py), its settings (lib/commit_settings.py) and the
-- undo of an import (lib/revert_slice.py).

-- name: lock_org_leads
-- Commit and revert slices of one organization run one at a time, so two imports in skip
-- or update mode never both insert a lead for the same match key, and a revert never
-- judges a lead while an import is matching it.
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
-- Skipped and invalid rows (insert_leads and update_leads record the rows they write).
copy staged_outcomes (job_id, row_no, outcome, lead_id) from stdin

-- name: insert_leads
-- The chunk's rows whose outcome is `inserted`, with their outcomes: each new lead's id,
-- owner and content digest (what a revert compares, see lead_digest) go to staged_outcomes.
-- Reads staged_rows alone, by a primary key range: which rows insert and their owners are
-- arrays of the chunk's rows (index 1 is the row after `after`; the zero UUID for no owner),
-- and the lead id is the chunk's id prefix and the row number (as lib/commit_slice.py made
-- it), which is how the outcome finds its row number again.
-- Joining staged_outcomes instead let a stale estimate of the job's size (one row) pick a
-- plan that scanned the job's rows once per outcome: quadratic on a database with history.
with inserted as (
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
  returning id, owner_id, public.lead_digest(leads) as digest
)
insert into staged_outcomes (job_id, row_no, outcome, lead_id, owner_id, digest)
select %(job)s, ('x' || right(id::text, 8))::bit(32)::integer, 'inserted', id, owner_id, digest
from inserted

-- name: update_leads
-- Non-empty values of the row overwrite the lead. A valid email or phone replaces the
-- lead's; an invalid one (kept raw in fields) only fills an empty one. A lead is updated by
-- at most one row of an import (the first that matches it), so one statement suffices.
-- The rows come from staged_rows alone, by a primary key range, each with its lead's id from
-- an array of the chunk's rows; each lead is then found by its primary key and read as it is
-- before the update: the outcome keeps the values the update overwrote (the changed fields
-- only) and the digest of the lead as it left it, for a revert. A lead changed by someone
-- else between that read and its update (its row version, xmin, moved) is not updated, so
-- that the values kept are never stale: the slice sees fewer outcomes than updates and is
-- retried (lib/commit_slice.py). Locking the leads in the read instead (FOR UPDATE) wrote
-- every row twice. The lead as read is `o`, a second reference to leads, not a column of a
-- subquery: once the functions are inlined, their fields of `o` and `l` are plain columns,
-- where a composite value from a subquery would be taken apart for every field.
-- updated_at is set here, which spares the statement the trigger leads_updated_at.
with staged as (
  select r.row_no, r.fields, r.custom, r.email_normalized, r.phone_e164,
    (%(leads)s::uuid[])[r.row_no - %(after)s] as lead_id
  from staged_rows r
  where r.job_id = %(job)s and r.row_no > %(after)s and r.row_no <= %(until)s
    and (%(outcomes)s::"char"[])[r.row_no - %(after)s] = 'u'
), updated as (
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
  from staged s join leads o on o.id = s.lead_id and o.organization_id = %(org)s
  where l.id = o.id and l.xmin = o.xmin
  returning s.row_no, l.id, public.lead_digest(l) as digest,
    public.lead_overwritten_fields(o, l) as fields, public.lead_overwritten(o, l) as overwritten
)
insert into staged_outcomes (job_id, row_no, outcome, lead_id, digest, overwritten_fields, overwritten)
select %(job)s, row_no, 'updated', id, digest, fields, overwritten from updated

-- name: revert_rows
-- The rows of a revert chunk that wrote a lead, by a primary key range of staged_outcomes.
select row_no, outcome, lead_id, digest from staged_outcomes
where job_id = %(job)s and row_no > %(after)s and row_no <= %(until)s and outcome in ('inserted', 'updated')
order by row_no

-- name: revert_leads_now
-- Those leads as they are now (a lead deleted since is missing), locked: by primary key.
-- The ids come through `array(select unnest(...))`, whose length the planner cannot see, so
-- it plans a few primary key probes: given the array itself, it counts 5,000 ids and prefers
-- to scan every lead of every organization (measured on the history database). The same
-- holds for the revert's delete and restore below.
select id, public.lead_digest(l) as digest from leads l
where id = any(array(select unnest(%(ids)s::uuid[]))) and organization_id = %(org)s
for update

-- name: later_matches
-- Other imports' rows that matched those leads (skipped or updated them): one probe of
-- staged_outcomes_matched_lead_idx per lead. Which of those imports count (later, not
-- reverted) is decided with their jobs (jobs_of).
select distinct lead_id, job_id from staged_outcomes
where lead_id = any(%(ids)s::uuid[]) and outcome in ('skipped', 'updated') and lead_id is not null
  and job_id <> %(job)s

-- name: jobs_of
select id, status, commit_started_at from import_jobs where id = any(%(ids)s::uuid[])

-- name: delete_reverted_leads
delete from leads where id = any(array(select unnest(%(ids)s::uuid[]))) and organization_id = %(org)s

-- name: restore_leads
-- The leads of the chunk's rows marked 'r' (an array of the chunk's rows, like update_leads')
-- get back the values their update overwrote: each field whose bit is set takes its place of
-- the array (lead_overwritten in the migrations says which is which); the others stay as
-- they are. Like update_leads, the rows come from staged_outcomes alone by a primary key
-- range, and each lead is found by its primary key. (Given the leads' ids as well, the
-- planner drove the join from the leads and scanned the chunk's outcomes once per lead.)
update leads l set
  civility = case when o.overwritten_fields & 1 <> 0 then o.overwritten[1] else l.civility end,
  first_name = case when o.overwritten_fields & 2 <> 0 then o.overwritten[2] else l.first_name end,
  last_name = case when o.overwritten_fields & 4 <> 0 then o.overwritten[3] else l.last_name end,
  email = case when o.overwritten_fields & 8 <> 0 then o.overwritten[4] else l.email end,
  phone = case when o.overwritten_fields & 16 <> 0 then o.overwritten[5] else l.phone end,
  email_normalized = case when o.overwritten_fields & 32 <> 0 then o.overwritten[6] else l.email_normalized end,
  phone_e164 = case when o.overwritten_fields & 64 <> 0 then o.overwritten[7] else l.phone_e164 end,
  company = case when o.overwritten_fields & 128 <> 0 then o.overwritten[8] else l.company end,
  job_title = case when o.overwritten_fields & 256 <> 0 then o.overwritten[9] else l.job_title end,
  address = case when o.overwritten_fields & 512 <> 0 then o.overwritten[10] else l.address end,
  postal_code = case when o.overwritten_fields & 1024 <> 0 then o.overwritten[11] else l.postal_code end,
  city = case when o.overwritten_fields & 2048 <> 0 then o.overwritten[12] else l.city end,
  country = case when o.overwritten_fields & 4096 <> 0 then o.overwritten[13] else l.country end,
  source = case when o.overwritten_fields & 8192 <> 0 then o.overwritten[14] else l.source end,
  notes = case when o.overwritten_fields & 16384 <> 0 then o.overwritten[15] else l.notes end,
  custom = case when o.overwritten_fields & 32768 <> 0 then o.overwritten[16]::jsonb else l.custom end,
  updated_by_import_job_id = case
    when o.overwritten_fields & 65536 <> 0 then o.overwritten[17]::uuid else l.updated_by_import_job_id end,
  updated_at = now()
from (
  select lead_id, overwritten_fields, overwritten from staged_outcomes
  where job_id = %(job)s and row_no > %(after)s and row_no <= %(until)s
    and (%(restore)s::"char"[])[row_no - %(after)s] = 'r'
) o
where l.id = o.lead_id and l.organization_id = %(org)s

-- name: staged_outcomes_exist
select exists (select 1 from staged_outcomes where job_id = %(id)s) as present

-- name: org_members
select user_id, email from organization_members where organization_id = %(org)s order by created_at, email

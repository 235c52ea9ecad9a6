-- An undo that gives back what it took, and never deletes what someone else changed
-- (docs/ARCHITECTURE.md "Undo").
--
-- - leads.updated_at is kept by a trigger on every update of a lead, whoever makes it
--   (the service's own updates set it in their statement).
-- - Each lead an import inserted or updated gets, beside the row's outcome, the digest of
--   its content as the import left it; for an update, also the values it overwrote (the
--   changed fields only). A revert deletes or restores a lead only while its content still
--   has that digest, and while no later import that is not itself reverted matched it.
-- - The revert counts leads restored, and leads kept by reason.

create or replace function public.leads_touch_updated_at() returns trigger
language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- On every update that does not move updated_at itself: an edit in the app, by hand, by
-- another tool. The service's own updates of leads (commit, revert) set it to now() in the
-- statement, which spares them a function call per row (a fifth of an update-mode commit's
-- UPDATE, measured).
create trigger leads_updated_at before update on public.leads
  for each row when (new.updated_at is not distinct from old.updated_at)
  execute function public.leads_touch_updated_at();

-- What "changed since" compares: a 64-bit hash of the lead's content (every field a person
-- or an import can set, owner included), not its import metadata or timestamps. Equal
-- contents have equal hashes (the extended hash functions are the ones hash partitioning
-- relies on, stable across versions); a change that keeps the hash has odds of 2^-64.
-- md5 of the row's text form took ten times as long per lead (measured).
create or replace function public.lead_digest(l public.leads) returns bigint
language sql immutable parallel safe as $$
  select hash_record_extended(row(
    l.civility, l.first_name, l.last_name, l.email, l.phone, l.email_normalized, l.phone_e164,
    l.company, l.job_title, l.address, l.postal_code, l.city, l.country, l.source, l.notes,
    l.custom, l.owner_id
  ), 0)
$$;

-- What an update of a lead overwrote, the changed fields only: a bit per field that
-- changed (lead_overwritten_fields), and the earlier values in an array with one place per
-- field, null where unchanged (lead_overwritten). Fields, bits and places, in order:
-- civility 1, first_name 2, last_name 3, email 4, phone 5, email_normalized 6,
-- phone_e164 7, company 8, job_title 9, address 10, postal_code 11, city 12, country 13,
-- source 14, notes 15 (bit 2^(place-1)); custom (bit 2^15, place 16, as text) and
-- updated_by_import_job_id (bit 2^16, place 17, as text). restore_leads (lib/sql/commit.sql)
-- reads them back. A jsonb object of the same took 40 µs per lead, these 2 (measured).
create or replace function public.lead_overwritten_fields(old public.leads, new public.leads) returns integer
language sql immutable parallel safe as $$
  select
    case when old.civility is distinct from new.civility then 1 else 0 end +
    case when old.first_name is distinct from new.first_name then 2 else 0 end +
    case when old.last_name is distinct from new.last_name then 4 else 0 end +
    case when old.email is distinct from new.email then 8 else 0 end +
    case when old.phone is distinct from new.phone then 16 else 0 end +
    case when old.email_normalized is distinct from new.email_normalized then 32 else 0 end +
    case when old.phone_e164 is distinct from new.phone_e164 then 64 else 0 end +
    case when old.company is distinct from new.company then 128 else 0 end +
    case when old.job_title is distinct from new.job_title then 256 else 0 end +
    case when old.address is distinct from new.address then 512 else 0 end +
    case when old.postal_code is distinct from new.postal_code then 1024 else 0 end +
    case when old.city is distinct from new.city then 2048 else 0 end +
    case when old.country is distinct from new.country then 4096 else 0 end +
    case when old.source is distinct from new.source then 8192 else 0 end +
    case when old.notes is distinct from new.notes then 16384 else 0 end +
    case when old.custom is distinct from new.custom then 32768 else 0 end +
    case when old.updated_by_import_job_id is distinct from new.updated_by_import_job_id then 65536 else 0 end
$$;

create or replace function public.lead_overwritten(old public.leads, new public.leads) returns text[]
language sql immutable parallel safe as $$
  select array[
    case when old.civility is distinct from new.civility then old.civility end,
    case when old.first_name is distinct from new.first_name then old.first_name end,
    case when old.last_name is distinct from new.last_name then old.last_name end,
    case when old.email is distinct from new.email then old.email end,
    case when old.phone is distinct from new.phone then old.phone end,
    case when old.email_normalized is distinct from new.email_normalized then old.email_normalized end,
    case when old.phone_e164 is distinct from new.phone_e164 then old.phone_e164 end,
    case when old.company is distinct from new.company then old.company end,
    case when old.job_title is distinct from new.job_title then old.job_title end,
    case when old.address is distinct from new.address then old.address end,
    case when old.postal_code is distinct from new.postal_code then old.postal_code end,
    case when old.city is distinct from new.city then old.city end,
    case when old.country is distinct from new.country then old.country end,
    case when old.source is distinct from new.source then old.source end,
    case when old.notes is distinct from new.notes then old.notes end,
    case when old.custom is distinct from new.custom then old.custom::text end,
    case when old.updated_by_import_job_id is distinct from new.updated_by_import_job_id
      then old.updated_by_import_job_id::text end
  ]
$$;

alter table public.staged_outcomes
  add column digest bigint,             -- lead_digest() of the lead as this row left it
  add column overwritten_fields integer, -- updated rows: lead_overwritten_fields()
  add column overwritten text[];         -- updated rows: lead_overwritten()
comment on column public.staged_outcomes.digest is 'the lead''s content digest as this row left it';
comment on column public.staged_outcomes.overwritten is
  'the values this update overwrote, one place per field (see lead_overwritten)';

-- "Matched by a later import": the outcomes that matched an existing lead, by lead. Rows that
-- inserted a lead, and invalid rows, are not in it.
create index staged_outcomes_matched_lead_idx on public.staged_outcomes (lead_id)
  where outcome in ('skipped', 'updated') and lead_id is not null;

alter table public.import_jobs
  add column restored_rows integer not null default 0,
  add column kept_counts jsonb not null default '{}';
comment on column public.import_jobs.kept_counts is
  'revert: leads kept, by reason (changed_since, matched_later)';

-- Jobs committed before this migration: a lead they inserted that nobody changed since (the
-- rule revert used until now) gets its digest, so their revert deletes it as before. Their
-- updated rows kept no overwritten values: a revert keeps those leads (changed_since).
update public.staged_outcomes o set digest = public.lead_digest(l)
from public.leads l
where o.outcome = 'inserted' and o.digest is null and l.id = o.lead_id and l.import_job_id = o.job_id
  and l.updated_by_import_job_id is null and l.updated_at = l.created_at;

-- An undo that gives back what it took, and never deletes what someone else changed
-- (docs/ARCHITECTURE.md "Undo").
--
-- - leads.updated_at is kept by a trigger on every update that changes a lead, whoever
--   makes it (the service's own updates included).
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

create trigger leads_updated_at before update on public.leads
  for each row when (old.* is distinct from new.*)
  execute function public.leads_touch_updated_at();

-- What "changed since" compares: the lead's content (every field a person or an import
-- can set, owner included), not its import metadata or timestamps. Equal jsonb values have
-- one text form, so equal contents have one digest.
create or replace function public.lead_digest(l public.leads) returns uuid
language sql immutable parallel safe as $$
  select md5(row(
    l.civility, l.first_name, l.last_name, l.email, l.phone, l.email_normalized, l.phone_e164,
    l.company, l.job_title, l.address, l.postal_code, l.city, l.country, l.source, l.notes,
    l.custom, l.owner_id
  )::text)::uuid
$$;

-- The fields of `old` that `new` changed, with their values in `old` (json null for null):
-- what a revert writes back. updated_by_import_job_id is among them, so that a restored
-- lead again names the import that updated it before.
create or replace function public.lead_overwritten(old public.leads, new public.leads) returns jsonb
language sql immutable parallel safe as $$
  select coalesce(jsonb_object_agg(f.k, f.v), '{}'::jsonb)
  from (values
    ('civility', to_jsonb(old.civility), old.civility is distinct from new.civility),
    ('first_name', to_jsonb(old.first_name), old.first_name is distinct from new.first_name),
    ('last_name', to_jsonb(old.last_name), old.last_name is distinct from new.last_name),
    ('email', to_jsonb(old.email), old.email is distinct from new.email),
    ('phone', to_jsonb(old.phone), old.phone is distinct from new.phone),
    ('email_normalized', to_jsonb(old.email_normalized), old.email_normalized is distinct from new.email_normalized),
    ('phone_e164', to_jsonb(old.phone_e164), old.phone_e164 is distinct from new.phone_e164),
    ('company', to_jsonb(old.company), old.company is distinct from new.company),
    ('job_title', to_jsonb(old.job_title), old.job_title is distinct from new.job_title),
    ('address', to_jsonb(old.address), old.address is distinct from new.address),
    ('postal_code', to_jsonb(old.postal_code), old.postal_code is distinct from new.postal_code),
    ('city', to_jsonb(old.city), old.city is distinct from new.city),
    ('country', to_jsonb(old.country), old.country is distinct from new.country),
    ('source', to_jsonb(old.source), old.source is distinct from new.source),
    ('notes', to_jsonb(old.notes), old.notes is distinct from new.notes),
    ('custom', old.custom, old.custom is distinct from new.custom),
    ('updated_by_import_job_id', to_jsonb(old.updated_by_import_job_id),
     old.updated_by_import_job_id is distinct from new.updated_by_import_job_id)
  ) f(k, v, changed)
  where f.changed
$$;

alter table public.staged_outcomes
  add column digest uuid,      -- lead_digest() of the lead as this row left it (inserted, updated)
  add column overwritten jsonb; -- updated rows: lead_overwritten(), the values a revert restores
comment on column public.staged_outcomes.digest is 'the lead''s content digest as this row left it';
comment on column public.staged_outcomes.overwritten is 'the values this update overwrote (changed fields only)';

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

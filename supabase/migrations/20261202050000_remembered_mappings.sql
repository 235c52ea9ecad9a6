-- Remembered mappings: what an organization chose for a header, offered again for the next
-- file with that header (lib/remembered.py, docs/ARCHITECTURE.md "Remembered mappings").
--
-- Starting a commit saves the job's mapping and commit settings under the file's normalized
-- header; the validating step of a later job of the organization looks for the remembered
-- mapping sharing the most of its columns (at least half), then the most recent.

create table public.remembered_mappings (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  -- SHA-256 of the normalized column names (lib.parse.mapping.normalize_name), in order: a
  -- header of thousands of columns would not fit in a btree entry, its digest does.
  header_key text not null,
  columns text[] not null,        -- the normalized column names, in the file's order
  header jsonb not null,          -- the column names as the file wrote them
  mapping jsonb not null,         -- per column: its field, or null (kept in custom)
  settings jsonb not null default '{}', -- the commit settings (lib.commit_settings.CommitSettings)
  job_id uuid,                    -- the import that saved it last (no foreign key: jobs go, mappings stay)
  saved_by uuid not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, header_key)
);

-- Where a job's mapping came from: the automatic mapping, a remembered one, or the user's edit.
alter table public.import_jobs
  add column mapping_source text not null default 'automatic'
    check (mapping_source in ('automatic', 'remembered', 'edited')),
  add column remembered_mapping_id uuid references public.remembered_mappings (id) on delete set null;
-- Deleting a remembered mapping finds the jobs that point at it by this index, not by a scan
-- of every job.
create index import_jobs_remembered_mapping_idx on public.import_jobs (remembered_mapping_id)
  where remembered_mapping_id is not null;

-- Like the jobs: members read their organization's; every write goes through the service.
alter table public.remembered_mappings enable row level security;
create policy "members read their organization's remembered mappings" on public.remembered_mappings
  for select to authenticated using (public.is_org_member(organization_id));
grant select on public.remembered_mappings to authenticated;
grant all on public.remembered_mappings to service_role;

-- Lead import: organizations, leads, import jobs and their staged rows.
-- Applied by the Supabase CLI (`supabase db push`) or by `python -m lib migrate`.
-- Outside Supabase, supabase/local/shim.sql first provides auth.uid(), the API roles
-- and the realtime publication that this file relies on.

create type public.import_status as enum (
  'pending', 'validating', 'parsing', 'ready', 'committing', 'completed',
  'failed', 'cancelled', 'reverting', 'reverted'
);

create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  created_at timestamptz not null default now()
);

create table public.organization_members (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null,
  email text not null,
  role text not null default 'member' check (role in ('owner', 'admin', 'member')),
  created_at timestamptz not null default now(),
  primary key (organization_id, user_id)
);
create index organization_members_user_idx on public.organization_members (user_id);

create table public.import_jobs (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  created_by uuid not null,
  status public.import_status not null default 'pending',
  -- The file, as uploaded and as found by the validating step.
  file_name text not null,
  storage_path text not null,
  file_size bigint,
  file_sha256 text,
  encoding text,
  delimiter text,
  header jsonb,
  mapping jsonb,
  data_offset bigint,
  duplicate_of_job_id uuid references public.import_jobs (id) on delete set null,
  -- Parse and commit settings: region, duplicates, match, assignment.
  settings jsonb not null default '{}',
  -- The slice protocol: phase in progress, run (bumped by every retry), next slice number.
  phase text not null default 'parse' check (phase in ('parse', 'commit', 'revert')),
  run integer not null default 0,
  slice_no integer not null default 0,
  parse_cursor bigint not null default 0,   -- byte offset after the last staged record
  commit_cursor integer not null default 0, -- last staged row number committed
  revert_cursor integer not null default 0, -- last staged row number reverted
  slices_done integer not null default 0,
  -- Counts (see docs/ARCHITECTURE.md "Counts").
  total_rows integer not null default 0,
  estimated_total_rows integer,
  valid_rows integer not null default 0,
  invalid_rows integer not null default 0,
  duplicate_rows integer not null default 0,
  inserted_rows integer not null default 0,
  updated_rows integer not null default 0,
  skipped_rows integer not null default 0,
  reverted_rows integer not null default 0,
  error_counts jsonb not null default '{}',
  warning_counts jsonb not null default '{}',
  -- Liveness: a job whose heartbeat is older than its lease is stuck.
  heartbeat_at timestamptz,
  lease_seconds integer not null default 90,
  sweep_attempts integer not null default 0,
  error_message text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  parse_finished_at timestamptz,
  commit_started_at timestamptz,
  finished_at timestamptz
);
create index import_jobs_org_created_idx on public.import_jobs (organization_id, created_at desc);
create index import_jobs_org_sha_idx on public.import_jobs (organization_id, file_sha256);
create index import_jobs_active_heartbeat_idx on public.import_jobs (heartbeat_at)
  where status in ('validating', 'parsing', 'committing', 'reverting');

create table public.leads (
  id uuid primary key default gen_random_uuid(),
  -- No foreign key: its per-row check cost a quarter of each commit insert (measured). The
  -- trigger below deletes the leads of deleted organizations.
  organization_id uuid not null,
  civility text,
  first_name text,
  last_name text,
  email text,            -- as imported: normalized when valid, raw otherwise
  phone text,            -- as imported: E.164 when valid, raw otherwise
  -- Match keys, null when missing or invalid. Collation "C": they are only compared for
  -- equality, and byte comparison makes their index inserts a fifth cheaper than C.UTF-8.
  email_normalized text collate "C",
  phone_e164 text collate "C",
  company text,
  job_title text,
  address text,
  postal_code text,
  city text,
  country text,
  source text,
  notes text,
  custom jsonb not null default '{}',
  owner_id uuid,
  -- The import that created it. No foreign key: its per-row check, queued to the end of
  -- each INSERT, cost a third of a commit slice's insert; jobs are not deleted on their own.
  import_job_id uuid,
  updated_by_import_job_id uuid, -- the last import that updated it
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index leads_org_email_idx on public.leads (organization_id, email_normalized)
  where email_normalized is not null;
create index leads_org_phone_idx on public.leads (organization_id, phone_e164)
  where phone_e164 is not null;
create index leads_import_job_idx on public.leads (import_job_id);

create table public.staged_rows (
  -- No foreign key: its per-row check ran after each COPY, serially, 1.4 s per 210,000
  -- rows. The trigger below deletes the staged rows of deleted jobs instead.
  job_id uuid not null,
  row_no integer not null,           -- 1-based data row number, header excluded
  raw jsonb not null,                -- the cells as read
  fields jsonb not null default '{}', -- normalized lead fields
  custom jsonb not null default '{}', -- unmapped columns, by header name
  email_normalized text collate "C",
  phone_e164 text collate "C",
  match_key text collate "C",        -- email, else phone (docs/ARCHITECTURE.md "Rows")
  errors text[] not null default '{}',
  warnings text[] not null default '{}',
  valid boolean not null,
  duplicate_of integer,              -- row number of the earlier valid row with the same key
  outcome text check (outcome in ('inserted', 'updated', 'skipped', 'invalid')),
  lead_id uuid,
  primary key (job_id, row_no)
);

create function public.delete_leads_of_deleted_organizations() returns trigger
language plpgsql as $$
begin
  delete from public.leads l using gone where l.organization_id = gone.id;
  return null;
end
$$;

create trigger organizations_deleted after delete on public.organizations
  referencing old table as gone
  for each statement execute function public.delete_leads_of_deleted_organizations();

create function public.delete_staged_rows_of_deleted_jobs() returns trigger
language plpgsql as $$
begin
  delete from public.staged_rows s using gone where s.job_id = gone.id;
  return null;
end
$$;

create trigger import_jobs_deleted after delete on public.import_jobs
  referencing old table as gone
  for each statement execute function public.delete_staged_rows_of_deleted_jobs();

-- Adds per-code counts: {"a": 1} + {"a": 2, "b": 1} = {"a": 3, "b": 1}.
create function public.import_add_counts(a jsonb, b jsonb) returns jsonb
language sql immutable as $$
  select coalesce(jsonb_object_agg(key, total), '{}'::jsonb)
  from (
    select key, sum(value::bigint) as total
    from (select * from jsonb_each_text(a) union all select * from jsonb_each_text(b)) t
    group by key
  ) s
$$;

-- Row-level security: members read their organization's data; every write goes
-- through the service (service_role / the table owner bypasses RLS).
create function public.is_org_member(org uuid) returns boolean
language sql stable security definer set search_path = public as $$
  select exists (
    select 1 from public.organization_members
    where organization_id = org and user_id = auth.uid()
  )
$$;

alter table public.organizations enable row level security;
alter table public.organization_members enable row level security;
alter table public.import_jobs enable row level security;
alter table public.leads enable row level security;
alter table public.staged_rows enable row level security;

create policy "members read their organization" on public.organizations
  for select to authenticated using (public.is_org_member(id));
create policy "members read their organization's members" on public.organization_members
  for select to authenticated using (public.is_org_member(organization_id));
create policy "members read their organization's jobs" on public.import_jobs
  for select to authenticated using (public.is_org_member(organization_id));
create policy "members read their organization's leads" on public.leads
  for select to authenticated using (public.is_org_member(organization_id));
create policy "members read their organization's staged rows" on public.staged_rows
  for select to authenticated using (
    exists (select 1 from public.import_jobs j
            where j.id = job_id and public.is_org_member(j.organization_id))
  );

grant usage on schema public to anon, authenticated, service_role;
grant select on all tables in schema public to authenticated;
grant all on all tables in schema public to service_role;

-- A frontend watches progress through Supabase Realtime.
alter publication supabase_realtime add table public.import_jobs;

-- Fixing rows in place during review (PATCH /api/jobs/<id>/rows/<row_no>, lib/row_fixes.py).
--
-- A fix is kept apart from the staged row it changes: the staged rows are dropped and
-- staged again by a re-parse (a mapping change), and the fixes are applied again to the rows
-- they belong to. The staged row holds the cells as they now stand; the fix holds the
-- cells the user corrected, the original cells, who fixed the row and when.

create table public.staged_row_fixes (
  -- No foreign key, like staged_rows: the import_jobs delete trigger removes them.
  job_id uuid not null,
  row_no integer not null,
  cells jsonb not null default '{}',  -- header name -> corrected value (only the cells that change)
  extra_cells jsonb,                  -- the cells past the header's width, replaced; null: as read
  excluded boolean not null default false,
  original jsonb not null,            -- the cells as read from the file
  fixed_by uuid not null,
  fixed_at timestamptz not null default now(),
  primary key (job_id, row_no)
);

-- The byte offset each staged row's record starts at (blank lines before it included):
-- a fix of a row whose cells were not kept (raw is kept only for rows with a code) reads
-- its original cells back from the file. Eight bytes per row instead of every row's cells.
alter table public.staged_rows add column if not exists record_offset bigint;

-- The rows repeating a first occurrence, by that first row: a fix of a first row re-points
-- its group. Partial: only duplicates (a few percent of rows) carry an entry.
create index if not exists staged_rows_duplicates_idx on public.staged_rows (job_id, duplicate_of)
  where duplicate_of is not null;

alter table public.import_jobs
  add column if not exists fixed_rows integer not null default 0,    -- rows with corrected cells
  add column if not exists excluded_rows integer not null default 0, -- rows excluded in review
  add column if not exists dropped_fixes integer not null default 0; -- fixes dropped by the last change of sheet or file

-- A display name for the members list (GET /api/organizations/<id>/members).
alter table public.organization_members add column if not exists display_name text;

create or replace function public.delete_staged_rows_of_deleted_jobs() returns trigger
language plpgsql as $$
begin
  delete from public.staged_rows s using gone where s.job_id = gone.id;
  delete from public.staged_outcomes o using gone where o.job_id = gone.id;
  delete from public.staged_row_fixes f using gone where f.job_id = gone.id;
  return null;
end
$$;

alter table public.staged_row_fixes enable row level security;
create policy "members read their organization's row fixes" on public.staged_row_fixes
  for select to authenticated using (
    exists (select 1 from public.import_jobs j
            where j.id = job_id and public.is_org_member(j.organization_id))
  );
grant select on public.staged_row_fixes to authenticated;
grant all on public.staged_row_fixes to service_role;

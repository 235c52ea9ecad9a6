-- In-file duplicates are marked slice by slice, with work bounded by the slice.
--
-- They used to be marked once, at the end of the parse, by one UPDATE over a window of the
-- job's staged rows. With statistics gathered while staged_rows held only earlier jobs'
-- rows, the planner took the new job for one row and re-ran the window for every staged
-- row: 5,000 rows 9.9 s, 20,000 rows over 90 s, and jobs stuck in `parsing`.
--
-- staged_keys holds, per job, the first row of each match key staged so far. A parse slice
-- looks up its own keys here (one probe of the primary key per key: the table has no other
-- index, so no plan can scan the job's rows instead) and adds the keys it saw first.
create table public.staged_keys (
  -- No foreign key, like staged_rows: the import_jobs delete trigger removes them.
  job_id uuid not null,
  match_key text collate "C" not null,
  first_row integer not null,       -- the first valid row of the file with this key
  primary key (job_id, match_key)
);

create or replace function public.delete_staged_rows_of_deleted_jobs() returns trigger
language plpgsql as $$
begin
  delete from public.staged_rows s using gone where s.job_id = gone.id;
  delete from public.staged_outcomes o using gone where o.job_id = gone.id;
  delete from public.staged_keys k using gone where k.job_id = gone.id;
  return null;
end
$$;

-- Keys of jobs that already finished their parse: the same marking as the new slices make.
insert into public.staged_keys (job_id, match_key, first_row)
select job_id, match_key, min(row_no) from public.staged_rows
where valid and match_key is not null
group by job_id, match_key;

alter table public.staged_keys enable row level security;
grant all on public.staged_keys to service_role;

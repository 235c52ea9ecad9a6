-- Commit outcomes move from staged_rows to a narrow table of their own.
--
-- Recording an outcome used to UPDATE the staged row: the whole wide row (cells, fields,
-- custom values) was rewritten, a third of a commit's time (3.5 s of 12.9 s for 210,202
-- rows). The commit now COPYs each chunk's outcomes straight into staged_outcomes, and its
-- INSERT into leads reads them from there.
--
-- staged_rows.raw is now kept only for rows with an error or a warning: the review and the
-- error report are its only readers, and the other rows were a quarter of the staged bytes.

create table public.staged_outcomes (
  -- No foreign key, like staged_rows: the import_jobs delete trigger removes them.
  job_id uuid not null,
  row_no integer not null,
  outcome text not null check (outcome in ('inserted', 'updated', 'skipped', 'invalid')),
  lead_id uuid,                 -- the lead inserted, updated or matched; null for invalid rows
  owner_id uuid,                -- the owner this import gave the lead it inserted
  primary key (job_id, row_no)
);

insert into public.staged_outcomes (job_id, row_no, outcome, lead_id, owner_id)
select s.job_id, s.row_no, s.outcome, s.lead_id, l.owner_id
from public.staged_rows s
left join public.leads l on s.outcome = 'inserted' and l.id = s.lead_id
where s.outcome is not null;

alter table public.staged_rows drop column outcome, drop column lead_id;
alter table public.staged_rows alter column raw drop not null;
comment on column public.staged_rows.raw is 'the cells as read, for rows with an error or a warning';

create or replace function public.delete_staged_rows_of_deleted_jobs() returns trigger
language plpgsql as $$
begin
  delete from public.staged_rows s using gone where s.job_id = gone.id;
  delete from public.staged_outcomes o using gone where o.job_id = gone.id;
  return null;
end
$$;

alter table public.staged_outcomes enable row level security;
create policy "members read their organization's staged outcomes" on public.staged_outcomes
  for select to authenticated using (
    exists (select 1 from public.import_jobs j
            where j.id = job_id and public.is_org_member(j.organization_id))
  );
grant select on public.staged_outcomes to authenticated;
grant all on public.staged_outcomes to service_role;

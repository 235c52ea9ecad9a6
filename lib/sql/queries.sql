-- Every statement of the service, by name (loaded by lib/db.py).
-- Parameters are always passed separately.

-- name: get_job
select * from import_jobs where id = %(id)s

-- name: lock_job
-- idle_seconds is measured by the database clock, the one that wrote the heartbeat.
select *, extract(epoch from now() - coalesce(heartbeat_at, updated_at))::float8 as idle_seconds
from import_jobs where id = %(id)s for update

-- name: transition
update import_jobs set {assignments}, updated_at = now()
where id = %(id)s and status = any(%(allowed)s::import_status[])
returning *

-- name: insert_job
insert into import_jobs (organization_id, created_by, file_name, storage_path, settings, lease_seconds)
values (%(org)s, %(user)s, %(file_name)s, %(storage_path)s, %(settings)s, %(lease_seconds)s)
returning *

-- name: finish_slice
-- One statement per slice: cursor, counters and heartbeat move together, guarded by the
-- run and slice number so a slice can never be counted twice. {cursor}: the column of the
-- slice's phase (lib/phases.py).
update import_jobs set
  slice_no = slice_no + 1,
  slices_done = slices_done + 1,
  {cursor} = coalesce(%(cursor)s, {cursor}),
  total_rows = total_rows + %(total_rows)s,
  valid_rows = valid_rows + %(valid_rows)s,
  invalid_rows = invalid_rows + %(invalid_rows)s,
  duplicate_rows = duplicate_rows + %(duplicate_rows)s,
  inserted_rows = inserted_rows + %(inserted_rows)s,
  updated_rows = updated_rows + %(updated_rows)s,
  skipped_rows = skipped_rows + %(skipped_rows)s,
  reverted_rows = reverted_rows + %(reverted_rows)s,
  restored_rows = restored_rows + %(restored_rows)s,
  error_counts = import_add_counts(error_counts, %(error_counts)s),
  warning_counts = import_add_counts(warning_counts, %(warning_counts)s),
  kept_counts = import_add_counts(kept_counts, %(kept_counts)s),
  estimated_total_rows = coalesce(%(estimated_total_rows)s, estimated_total_rows),
  heartbeat_at = now(),
  updated_at = now()
where id = %(id)s and run = %(run)s and slice_no = %(slice_no)s
returning *

-- name: stalled_jobs
-- Found by heartbeat, not by time since start: a long healthy job keeps beating. %(active)s:
-- the statuses in which slices run (lib/jobs.py ACTIVE). SKIP LOCKED leaves out the jobs a
-- slice holds right now; the locks end with this statement's transaction (lib/manager.py sweep).
select * from import_jobs
where status = any(%(active)s::import_status[])
  and heartbeat_at < now() - make_interval(secs => lease_seconds)
order by heartbeat_at
for update skip locked

-- name: reset_parse
-- Restart from scratch: the parse phase from byte 0, with nothing staged or counted.
update import_jobs set
  phase = 'parse', slice_no = 0, slices_done = 0, parse_cursor = 0, commit_cursor = 0,
  revert_cursor = 0, total_rows = 0, estimated_total_rows = null, valid_rows = 0,
  invalid_rows = 0, duplicate_rows = 0, inserted_rows = 0, updated_rows = 0,
  skipped_rows = 0, reverted_rows = 0, restored_rows = 0, error_counts = '{}', warning_counts = '{}',
  kept_counts = '{}',
  parse_finished_at = null
where id = %(id)s

-- name: delete_staged_rows
with outcomes as (delete from staged_outcomes where job_id = %(id)s)
delete from staged_rows where job_id = %(id)s

-- name: list_org_jobs
select * from import_jobs where organization_id = %(org)s
order by created_at desc, id desc
limit %(limit)s

-- name: user_orgs
select organization_id, role, email from organization_members where user_id = %(user)s
order by created_at

-- name: purge_staged_rows
-- Staged rows of jobs finished long ago: their counts and leads stay, the rows, their
-- outcomes and their fixes go.
with old as (
  select id from import_jobs
  where status in ('completed', 'failed', 'cancelled', 'reverted')
    and updated_at < now() - make_interval(days => %(days)s)
), outcomes as (
  delete from staged_outcomes o using old where o.job_id = old.id
), fixes as (
  delete from staged_row_fixes f using old where f.job_id = old.id
)
delete from staged_rows s using old where s.job_id = old.id

-- name: copy_staged_rows
copy staged_rows (
  job_id, row_no, raw, fields, custom, email_normalized, phone_e164, match_key, errors,
  warnings, valid, duplicate_of, record_offset
) from stdin

-- name: earlier_job_same_file
select id from import_jobs
where organization_id = %(org)s and file_sha256 = %(sha)s and id <> %(id)s
  and status not in ('pending', 'failed', 'cancelled')
order by created_at desc
limit 1

-- name: earlier_keys
-- The first rows, among those earlier slices of the job staged, of a parse slice's match keys
-- (lib/parse_slice.py): one probe of staged_rows_first_key_probe_idx per key, so the work
-- follows the slice's keys, never the job's or other jobs' rows. The probe names the job and
-- the key as one value, which only that index can serve (the migration that made it says
-- why), and the LIMIT keeps the lateral subquery a probe per key (it cannot be flattened
-- into a join); an earlier slice marked its repeats, so a probe finds at most one row.
-- `keys` is one text, the keys separated by line breaks (cheaper to send than an array).
-- The form this replaces, `match_key = any(keys)` over the job's rows, read every first row
-- the job had staged, once per slice: 1.7 s in a late slice of a 1,000,000-row file.
select k.key as match_key, f.row_no
from unnest(string_to_array(%(keys)s, E'\n')) as k (key)
cross join lateral (
  select s.row_no from staged_rows s
  where (s.job_id::text || s.match_key) collate "C" = (%(job)s::uuid::text || k.key) collate "C"
    and s.match_key is not null and s.duplicate_of is null and s.row_no <= %(before)s
  limit 1
) f

-- name: point_to_earlier_keys
-- The slice's rows (after..until) repeating a key an earlier slice staged get its first row:
-- `firsts` holds, for each row of the slice in order, that row number, or 0.
update staged_rows set duplicate_of = (%(firsts)s::int[])[row_no - %(after)s]
where job_id = %(job)s and row_no > %(after)s and row_no <= %(until)s
  and (%(firsts)s::int[])[row_no - %(after)s] > 0

-- name: list_jobs
select * from import_jobs order by created_at desc, id desc limit %(limit)s

-- name: first_member
-- The member the CLI acts as: an owner of the given (or only) organization.
select organization_id, user_id from organization_members
where %(org)s::uuid is null or organization_id = %(org)s::uuid
order by (role = 'owner') desc, created_at
limit 2

-- name: invalid_rows_page
select row_no, raw, errors, warnings from staged_rows
where job_id = %(job)s and not valid and row_no > %(after)s
order by row_no
limit %(limit)s

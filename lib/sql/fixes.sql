-- Fixes of rows in review (lib/row_fixes.py) and their re-application by a re-parse
-- (lib/parse_slice.py). Every statement reads one table by its primary key or by an index
-- led by the job: its cost follows the row and its duplicate group, never other jobs.

-- name: staged_row
select row_no, raw, fields, custom, email_normalized, phone_e164, match_key, errors, warnings,
  valid, duplicate_of, record_offset
from staged_rows where job_id = %(job)s and row_no = %(row)s

-- name: row_fix
select row_no, cells, extra_cells, excluded, original, fixed_by, fixed_at
from staged_row_fixes where job_id = %(job)s and row_no = %(row)s

-- name: fixes_after
-- The fixes a parse slice applies again: those of the rows it is about to stage.
select row_no, cells, extra_cells, excluded from staged_row_fixes
where job_id = %(job)s and row_no > %(after)s
order by row_no

-- name: save_fix
insert into staged_row_fixes (job_id, row_no, cells, extra_cells, excluded, original, fixed_by, fixed_at)
values (%(job)s, %(row)s, %(cells)s, %(extra_cells)s, %(excluded)s, %(original)s, %(user)s, now())
on conflict (job_id, row_no) do update set
  cells = excluded.cells, extra_cells = excluded.extra_cells, excluded = excluded.excluded,
  fixed_by = excluded.fixed_by, fixed_at = excluded.fixed_at
returning row_no, cells, extra_cells, excluded, original, fixed_by, fixed_at

-- name: delete_fix
delete from staged_row_fixes where job_id = %(job)s and row_no = %(row)s

-- name: update_staged_row
-- The row as it now stands; its duplicate marking is redone by the statements below.
update staged_rows set
  raw = %(raw)s, fields = %(fields)s, custom = %(custom)s, email_normalized = %(email)s,
  phone_e164 = %(phone)s, match_key = %(key)s, errors = %(errors)s, warnings = %(warnings)s,
  valid = %(valid)s, duplicate_of = null
where job_id = %(job)s and row_no = %(row)s

-- name: key_firsts
-- The first occurrences of a key: a probe of staged_rows_first_key_probe_idx, by the job and
-- the key as one value (as earlier_keys in queries.sql, for the same reason).
select row_no from staged_rows
where (job_id::text || match_key) collate "C" = (%(job)s::uuid::text || %(key)s::text) collate "C"
  and match_key is not null and duplicate_of is null

-- name: key_followers
-- The rows repeating one first row: a probe of staged_rows_duplicates_idx. One statement per
-- first row, by equality: with `duplicate_of = any(array)` a planner that takes the job for
-- one row (statistics from before it existed) filters the job's rows instead of probing.
select row_no, duplicate_of from staged_rows
where job_id = %(job)s and duplicate_of = %(first)s and duplicate_of is not null and match_key = %(key)s

-- name: point_row_to
-- One row of a duplicate group (run once per row, pipelined): the group's first row points
-- nowhere, the others at it. By primary key, for the reason above.
update staged_rows set duplicate_of = nullif(%(first)s::int, row_no)
where job_id = %(job)s and row_no = %(row)s

-- name: set_fix_counts
update import_jobs set
  valid_rows = %(valid_rows)s, invalid_rows = %(invalid_rows)s, duplicate_rows = %(duplicate_rows)s,
  error_counts = %(error_counts)s, warning_counts = %(warning_counts)s,
  fixed_rows = %(fixed_rows)s, excluded_rows = %(excluded_rows)s, updated_at = now()
where id = %(id)s
returning *

-- name: drop_fixes
-- A change of sheet or file: the fixes belong to rows that are no longer there.
with gone as (delete from staged_row_fixes where job_id = %(id)s returning 1)
update import_jobs set
  dropped_fixes = (select count(*) from gone), fixed_rows = 0, excluded_rows = 0, updated_at = now()
where id = %(id)s
returning dropped_fixes

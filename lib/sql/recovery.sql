-- Recovery: retry, the failure callback and the sweep (lib/manager.py, lib/slices.py).

-- name: reset_sweep_attempts
-- A slice made progress: the sweep's bound starts again from zero.
update import_jobs set sweep_attempts = 0 where id = %(id)s
returning *

-- name: staged_rows_exist
select exists (select 1 from staged_rows where job_id = %(id)s) as present

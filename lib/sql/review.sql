-- The review of a parsed job (lib/routes/review.py); its pages of invalid rows use
-- invalid_rows_page (queries.sql).

-- name: review_examples
-- The first few rows holding each code. One short index-ordered scan per code (the job's
-- codes come from its counters), instead of aggregating every staged row of the job.
select c.code, array(
  select s.row_no from staged_rows s
  where s.job_id = %(job)s
    and c.code = any(case when %(warnings)s then s.warnings else s.errors end)
  order by s.row_no
  limit %(limit)s
) as rows
from unnest(%(codes)s::text[]) as c (code)


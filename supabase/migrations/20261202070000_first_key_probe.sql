-- The first occurrences of a job's match keys, indexed by one value: the job and the key
-- together (`job_id::text || match_key`).
--
-- A parse slice looks up each of its keys among the first occurrences earlier slices of the
-- job staged, one probe per key (lib/sql/queries.sql, earlier_keys); a fix in review looks up
-- one key the same way (lib/sql/fixes.sql, key_firsts). With the index on (job_id,
-- match_key), those lookups had to say `job_id = …`, which the primary key (job_id, row_no)
-- can serve as well: with statistics that took the job for one row (gathered before it
-- existed, or while the table held one row), the planner chose the primary key and read
-- every row of the job once per key. A 1,000,000-row job ran for more than ten minutes.
--
-- The probe now says only `(job_id::text || match_key) = …`, which no other index can
-- serve: the only other plans scan the whole table or the whole primary key per key, and
-- the planner prices those by the table's real size, never by stale statistics. The job id's
-- text has a fixed length, so the value is exact (no job's key can pass for another's).
create index staged_rows_first_key_probe_idx on public.staged_rows
  (((job_id::text || match_key) collate "C"))
  where match_key is not null and duplicate_of is null;

drop index if exists public.staged_rows_first_key_idx;

-- In-file duplicates are marked slice by slice, with work bounded by the slice.
--
-- They used to be marked once, at the end of the parse, by one UPDATE over a window of the
-- job's staged rows. With statistics gathered while staged_rows held only earlier jobs'
-- rows, the planner took the new job for one row and re-ran the window for every staged
-- row: 10,000 rows took 40 s, and jobs stayed in `parsing`.
--
-- A parse slice now looks up its own keys among the first occurrences that earlier slices
-- of the job staged (lib/parse_slice.py). This index serves that lookup: one probe per key.
-- It is maintained within the slice's COPY, which runs while the slice checks its rows.
create index staged_rows_first_key_idx on public.staged_rows (job_id, match_key)
  where match_key is not null and duplicate_of is null;

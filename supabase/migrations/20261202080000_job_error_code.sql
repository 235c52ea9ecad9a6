-- A failed job's error code beside its message: `error_message` is English, for API clients
-- and the CLI; `error_code` is a stable code a page words in its own language (public/i18n.js).
--
-- Set wherever a job fails (lib/slices.py fail_job): the code of the file's rejection
-- (lib/parse: empty_file, utf16_file, not_a_workbook, ...), file_missing, stalled (the sweep
-- gave up, lib/manager.py) or delivery_failed (QStash gave up, lib/routes/slices.py); null
-- otherwise, and cleared with the message when a new run starts. Jobs that failed before
-- this column have a message and no code.
alter table public.import_jobs add column if not exists error_code text;

-- Workbooks (.xlsx, .xlsm, .ods, .xls): one conversion step turns the chosen sheet into a
-- CSV stored beside the original, which the parse reads like any CSV (lib/workbook_step.py).
--
-- `workbook` is null for a CSV upload. For a workbook it records the original file (name,
-- type, size, sha256), its sheets with their data rows, the sheet read, where the CSV is
-- stored (csv_path), and `state`: "reading" while the conversion runs, "converted" after.
-- The job's own file facts (file_size, file_sha256, encoding, delimiter, data_offset) are
-- those of that CSV, which is what the parse slices read.
alter table public.import_jobs add column if not exists workbook jsonb;

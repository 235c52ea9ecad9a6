-- Remembered mappings (lib/remembered.py).

-- name: remember_mapping
-- One per organization and normalized header: a later commit of the same header replaces it.
insert into remembered_mappings
  (organization_id, header_key, columns, header, mapping, settings, job_id, saved_by)
values (%(org)s, %(key)s, %(columns)s, %(header)s, %(mapping)s, %(settings)s, %(job)s, %(user)s)
on conflict (organization_id, header_key) do update set
  columns = excluded.columns, header = excluded.header, mapping = excluded.mapping,
  settings = excluded.settings, job_id = excluded.job_id, saved_by = excluded.saved_by,
  updated_at = now()
returning *

-- name: remembered_candidates
-- The organization's remembered headers sharing a column with this one (the caller counts
-- how many). Bounded by the organization's remembered mappings, most recent first.
select id, header_key, columns, updated_at from remembered_mappings
where organization_id = %(org)s and columns && %(columns)s::text[]
order by updated_at desc, id
limit %(limit)s

-- name: get_remembered_mapping
select * from remembered_mappings where id = %(id)s

-- name: list_remembered_mappings
select * from remembered_mappings where organization_id = %(org)s
order by updated_at desc, id
limit %(limit)s

-- name: delete_remembered_mapping
delete from remembered_mappings where id = %(id)s and organization_id = %(org)s
returning id

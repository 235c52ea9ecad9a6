-- The members of an organization (lib/routes/members.py).

-- name: list_members
select user_id, email, display_name, role from organization_members
where organization_id = %(org)s
order by created_at, email

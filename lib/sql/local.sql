-- The local stack's way in (python -m lib token, the sign-in links of serve).

-- name: members_to_sign_in
-- Every member with an email, once per user, for the sign-in links.
select distinct on (lower(email)) user_id, email from organization_members
where email is not null
order by lower(email), created_at
limit 50

-- name: member_by_email
select user_id, email from organization_members
where lower(email) = lower(%(email)s)
order by created_at
limit 1

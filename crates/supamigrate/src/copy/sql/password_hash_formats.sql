-- auth.users counted by the format of their password hash: what the
-- application's new authentication must verify.
select case
           when coalesce(encrypted_password, '') = '' then 'none (OAuth, magic link, SSO)'
           when encrypted_password ~ '^\$2[aby]\$' then 'bcrypt ($' || substr(encrypted_password, 2, 2) || '$)'
           when encrypted_password like '$argon2%' then 'argon2'
           when encrypted_password like '$fbscrypt$%' then 'firebase scrypt'
           when encrypted_password like '{%' then 'encrypted JSON (needs the GoTrue key)'
           else 'other'
       end,
       count(*)
from auth.users
group by 1
order by 2 desc, 1

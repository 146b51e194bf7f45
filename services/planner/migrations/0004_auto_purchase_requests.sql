-- When approvers must differ, turning auto_purchase on takes two admins: the first
-- write records the request, a write of another identity enables it (DOMAIN.md
-- "Separation of duties").
ALTER TABLE plans
    ADD COLUMN auto_purchase_requested_by text,
    ADD COLUMN auto_purchase_requested_by_key_id text;

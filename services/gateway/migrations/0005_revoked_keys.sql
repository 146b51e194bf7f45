-- A deleted key is revoked, not removed: its name stays taken, so the audit trail's
-- "key:<name>" always means one key (API.md "Auth").
ALTER TABLE api_keys ADD COLUMN revoked_at timestamptz;

-- Keys may expire: past expires_at a key is refused like an unknown one (API.md "Quotes,
-- guardrails, identities").
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;

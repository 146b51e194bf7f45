-- API keys of the REST gateway. Only the SHA-256 of a key is stored: keys are 32 random
-- bytes, so a fast hash is enough and a lookup by hash is a plain index probe.
CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY,
    name         text        NOT NULL,
    role         text        NOT NULL,
    key_hash     bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    CONSTRAINT api_keys_role_check CHECK (role IN ('admin', 'viewer')),
    CONSTRAINT api_keys_key_hash_length CHECK (octet_length(key_hash) = 32),
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_name_key UNIQUE (name)
);

-- Bootstrap admin keys an admin disabled once another admin key existed (API.md
-- "Auth"). Kept by hash: disabling applies to that key value, so an operator locked out
-- can configure a new CUDLY_BOOTSTRAP_ADMIN_KEY to get back in.
CREATE TABLE disabled_bootstrap_keys (
    key_hash bytea PRIMARY KEY,
    disabled_at timestamptz NOT NULL DEFAULT now(),
    disabled_by text NOT NULL
);

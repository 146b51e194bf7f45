-- A plan's own spend limit per run, and who last created or changed it: scheduled runs
-- are created in the last editor's name (DOMAIN.md "Separation of duties").
ALTER TABLE plans
    ADD COLUMN max_commitment_per_run double precision
        CONSTRAINT plans_max_commitment_per_run_nonnegative CHECK (max_commitment_per_run >= 0),
    ADD COLUMN updated_by text,
    ADD COLUMN updated_by_key_id text;

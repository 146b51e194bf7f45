-- Cost Explorer recommendations and plans sized from them (docs/design/DOMAIN.md
-- "Recommendations and sizing").

-- What a plan's runs buy when no list is given.
ALTER TABLE plans
    ADD COLUMN source text NOT NULL DEFAULT 'list'
        CONSTRAINT plans_source_known CHECK (source IN ('list', 'recommendations'));

-- The latest set per account, replaced atomically by a refresh that collected it.
CREATE TABLE recommendations (
    id uuid PRIMARY KEY,
    cloud_account_id uuid NOT NULL,
    account_external_id text NOT NULL,
    provider text NOT NULL,
    service text NOT NULL,
    region text NOT NULL,
    resource_type text NOT NULL,
    engine text,
    platform text,
    term integer NOT NULL CONSTRAINT recommendations_term_known CHECK (term IN (1, 3)),
    payment text NOT NULL,
    -- Cost Explorer's recommended number of instances (a decimal); savingsplans: 1, the
    -- amount being details.hourly_commitment.
    recommended_count double precision NOT NULL
        CONSTRAINT recommendations_count_nonnegative CHECK (recommended_count >= 0),
    upfront_cost double precision NOT NULL,
    monthly_savings double precision NOT NULL,
    details jsonb NOT NULL,
    collected_at timestamptz NOT NULL
);

CREATE INDEX recommendations_account_idx ON recommendations (cloud_account_id);

-- One row per account ever collected: when its set was last replaced (stale data
-- refuses a sized run), and the last failure, kept with the previous set.
CREATE TABLE recommendation_collections (
    cloud_account_id uuid PRIMARY KEY,
    collected_at timestamptz,
    last_error text,
    last_error_at timestamptz
);

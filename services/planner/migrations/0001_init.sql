-- Schema planner, owned by the planner service (DOMAIN.md "Plans"). The service sets
-- search_path to it on every connection.

-- One purchase plan. The services map is a typed JSON document
-- ({"aws/ec2": {provider, service, enabled, term, payment, coverage, include_regions,
-- exclude_regions, include_types, exclude_types}}) validated by the service before it is
-- written; the ramp schedule lives in columns so that the step advance is a
-- compare-and-set on ramp_current_step.
CREATE TABLE plans (
    id uuid PRIMARY KEY,
    name text NOT NULL CONSTRAINT plans_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    enabled boolean NOT NULL DEFAULT true,
    auto_purchase boolean NOT NULL DEFAULT false,
    notification_days_before integer NOT NULL DEFAULT 7
        CONSTRAINT plans_notification_days_range CHECK (notification_days_before BETWEEN 0 AND 30),
    services jsonb NOT NULL
        CONSTRAINT plans_services_object CHECK (jsonb_typeof(services) = 'object' AND services <> '{}'::jsonb),
    ramp_type text NOT NULL
        CONSTRAINT plans_ramp_type_known CHECK (ramp_type IN ('immediate', 'weekly-25pct', 'monthly-10pct', 'custom')),
    ramp_percent_per_step double precision NOT NULL
        CONSTRAINT plans_ramp_percent_range CHECK (ramp_percent_per_step > 0 AND ramp_percent_per_step <= 100),
    ramp_step_interval_days integer NOT NULL
        CONSTRAINT plans_ramp_interval_range CHECK (ramp_step_interval_days BETWEEN 0 AND 365),
    ramp_total_steps integer NOT NULL
        CONSTRAINT plans_ramp_total_steps_range CHECK (ramp_total_steps BETWEEN 1 AND 100),
    -- Steps completed so far; advanced only from n - 1 to n by the executor's report.
    ramp_current_step integer NOT NULL DEFAULT 0
        CONSTRAINT plans_ramp_current_step_range CHECK (ramp_current_step BETWEEN 0 AND ramp_total_steps),
    ramp_start_date timestamptz NOT NULL,
    -- The standing purchase list (JSON array of recommendations), validated on write.
    recommendations jsonb NOT NULL DEFAULT '[]'::jsonb
        CONSTRAINT plans_recommendations_array CHECK (jsonb_typeof(recommendations) = 'array'),
    -- true: the plan targets every enabled account of its providers, resolved at run
    -- time (plan_accounts is then empty); false: exactly the accounts in plan_accounts.
    all_enabled_accounts boolean NOT NULL DEFAULT true,
    -- Null: nothing more to run.
    next_execution_date timestamptz,
    last_execution_date timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Due-plan look-ups (fire_due_plans).
CREATE INDEX plans_due_idx ON plans (next_execution_date)
    WHERE enabled AND next_execution_date IS NOT NULL;

-- The explicit account list of a plan (all_enabled_accounts = false). Accounts live in
-- the accounts service: account_id is not a foreign key, it is checked through the
-- accounts service when the list is set.
CREATE TABLE plan_accounts (
    plan_id uuid NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    account_id uuid NOT NULL,
    -- Order in which the accounts were given.
    position integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT plan_accounts_pkey PRIMARY KEY (plan_id, account_id)
);

CREATE INDEX plan_accounts_account_idx ON plan_accounts (account_id);

-- The highest sweeper fencing token seen per task (DOMAIN.md "Sweeper"): a lower token
-- is refused, an equal one accepted, a higher one recorded, in the same transaction as
-- the action it guards.
CREATE TABLE fencing (
    task text PRIMARY KEY,
    token bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

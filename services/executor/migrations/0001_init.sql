-- Schema executor, owned by the executor service (DOMAIN.md "Executions" and
-- "Idempotency"). The service sets search_path to it on every connection.
--
-- Money safety lives in this file as much as in the code: every status change is a
-- compare-and-set on these rows, at most one non-terminal root exists per lineage, and a
-- purchase is claimed in purchase_attempts (keyed by its idempotency token) before any
-- purchase call is sent.

-- Roots (parent_id null: one run of a plan step, a direct purchase list or a retry) and
-- children (one per target account, parent_id set).
CREATE TABLE executions (
    id uuid PRIMARY KEY,
    parent_id uuid REFERENCES executions (id) ON DELETE CASCADE,
    plan_id uuid,
    -- Children only: the account that buys.
    cloud_account_id uuid,
    status text NOT NULL
        CONSTRAINT executions_status_known CHECK (status IN ('pending', 'approved', 'running',
            'completed', 'partially_completed', 'failed', 'canceled', 'expired')),
    -- The lineage key: roots of one lineage share it (a retry copies it); a child's is
    -- "<root key>:<account uuid>". Item tokens derive from it.
    idempotency_key text NOT NULL,
    -- Roots that opened a lineage: "plan:<id>:step:<n>" or a caller's key. Null on roots
    -- that joined a lineage (retries, re-fired steps) and on children. Unique within its
    -- (route, plan) scope, which the lineage key is derived from (index below).
    creation_key text,
    step_number integer CONSTRAINT executions_step_number_positive CHECK (step_number > 0),
    scheduled_date timestamptz,
    -- Roots: the recommendation list as given (item index = position) and the targets.
    recommendations jsonb NOT NULL DEFAULT '[]'::jsonb
        CONSTRAINT executions_recommendations_array CHECK (jsonb_typeof(recommendations) = 'array'),
    target_account_ids uuid[] NOT NULL DEFAULT '{}',
    -- SHA-256 of the one-time approval token (roots created pending).
    approval_token_hash bytea,
    approval_expires_at timestamptz,
    approved_by text,
    created_by text NOT NULL,
    source text NOT NULL CONSTRAINT executions_source_known CHECK (source IN ('api', 'schedule', 'retry')),
    -- Re-drives so far.
    attempt integer NOT NULL DEFAULT 0,
    -- The run that drives this row ("<process id>:<run id>") and its last heartbeat.
    lease_owner text,
    heartbeat_at timestamptz,
    started_at timestamptz,
    completed_at timestamptz,
    -- Sanitised error text.
    error text,
    -- Plan step roots: whether the planner acknowledged CompletePlanStep.
    step_reported boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT executions_child_account_key UNIQUE (parent_id, cloud_account_id),
    CONSTRAINT executions_child_has_account CHECK ((parent_id IS NULL) = (cloud_account_id IS NULL))
);

-- At most one non-terminal root per lineage: concurrent retries or re-fired plan steps
-- cannot both run.
CREATE UNIQUE INDEX executions_live_root_per_lineage ON executions (idempotency_key)
    WHERE parent_id IS NULL AND status IN ('pending', 'approved', 'running');
-- A creation key opens its lineage once: (route, plan, creation key) → lineage key.
CREATE UNIQUE INDEX executions_creation_key_key ON executions (idempotency_key)
    WHERE parent_id IS NULL AND creation_key IS NOT NULL;
CREATE INDEX executions_roots_created_idx ON executions (created_at DESC) WHERE parent_id IS NULL;
CREATE INDEX executions_lineage_idx ON executions (idempotency_key, created_at) WHERE parent_id IS NULL;
CREATE INDEX executions_plan_idx ON executions (plan_id) WHERE parent_id IS NULL;
CREATE INDEX executions_parent_idx ON executions (parent_id);
CREATE INDEX executions_account_idx ON executions (cloud_account_id) WHERE parent_id IS NOT NULL;
CREATE INDEX executions_work_idx ON executions (status, updated_at)
    WHERE parent_id IS NULL AND status IN ('pending', 'approved', 'running');
CREATE INDEX executions_unreported_idx ON executions (completed_at)
    WHERE parent_id IS NULL AND status = 'completed' AND step_number IS NOT NULL AND NOT step_reported;

-- One recommendation bought by one child.
CREATE TABLE execution_items (
    execution_id uuid NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    -- Index in the root's recommendation list (children keep the root index).
    item_index integer NOT NULL CONSTRAINT execution_items_index_nonnegative CHECK (item_index >= 0),
    recommendation jsonb NOT NULL,
    -- sha256("<child lineage key>:<item_index>"), 64 hex chars.
    idempotency_token text NOT NULL,
    status text NOT NULL
        CONSTRAINT execution_items_status_known CHECK (status IN ('pending', 'in_flight', 'bought', 'failed', 'skipped')),
    commitment_id text,
    error text,
    purchased_at timestamptz,
    lease_owner text,
    claimed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT execution_items_pkey PRIMARY KEY (execution_id, item_index)
);

CREATE INDEX execution_items_token_idx ON execution_items (idempotency_token);

-- One row per idempotency token, across every execution of its lineage: claimed by
-- insert-if-absent before any purchase call, so a second run finds it and reconciles
-- instead of buying.
CREATE TABLE purchase_attempts (
    idempotency_token text PRIMARY KEY,
    state text NOT NULL
        CONSTRAINT purchase_attempts_state_known CHECK (state IN ('in_flight', 'bought', 'failed', 'in_doubt')),
    -- The child execution (and its root) that last owned the attempt.
    execution_id uuid NOT NULL,
    root_id uuid NOT NULL,
    item_index integer NOT NULL,
    cloud_account_id uuid NOT NULL,
    service text NOT NULL,
    lease_owner text,
    started_at timestamptz NOT NULL,
    -- Set just before the purchase call is sent; null: it never was.
    sent_at timestamptz,
    commitment_id text,
    offering_id text,
    error text,
    resolved_by text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX purchase_attempts_account_idx ON purchase_attempts (cloud_account_id, service);

-- Every status change: who, why, when.
CREATE TABLE status_transitions (
    id bigserial PRIMARY KEY,
    execution_id uuid NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    from_status text,
    to_status text NOT NULL,
    actor text NOT NULL,
    reason text,
    at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX status_transitions_execution_idx ON status_transitions (execution_id, id);

-- One row per commitment bought, unique by idempotency token.
CREATE TABLE purchase_history (
    id uuid PRIMARY KEY,
    idempotency_token text NOT NULL CONSTRAINT purchase_history_token_key UNIQUE,
    -- The child execution that recorded it first.
    execution_id uuid NOT NULL,
    root_id uuid NOT NULL,
    cloud_account_id uuid NOT NULL,
    account_external_id text NOT NULL,
    plan_id uuid,
    provider text NOT NULL,
    service text NOT NULL,
    region text NOT NULL,
    resource_type text NOT NULL,
    count integer NOT NULL,
    term integer NOT NULL,
    payment text NOT NULL,
    commitment_id text NOT NULL,
    upfront_cost double precision,
    purchased_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX purchase_history_purchased_idx ON purchase_history (purchased_at DESC);
CREATE INDEX purchase_history_account_idx ON purchase_history (cloud_account_id);

-- The highest sweeper fencing token seen per task: a lower one is refused, an equal one
-- accepted, a higher one recorded, in the same transaction as the action it guards.
CREATE TABLE fencing (
    task text PRIMARY KEY,
    token bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- REST Idempotency-Key replays: the same key and request hash return the original root;
-- the same key with another hash is a conflict.
CREATE TABLE idempotency_keys (
    key text PRIMARY KEY,
    request_hash text NOT NULL,
    execution_id uuid NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);

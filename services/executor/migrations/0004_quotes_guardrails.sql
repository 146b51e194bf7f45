-- Quotes, spend limits and identities (DOMAIN.md "Quotes, dry run and spend limits",
-- "Separation of duties").

-- An item's price, from the offering API at creation: the run buys that offering and
-- refuses when its price rose beyond the tolerance. Null on items created before quotes.
ALTER TABLE execution_items
    ADD COLUMN offering_id text,
    ADD COLUMN quote jsonb
        CONSTRAINT execution_items_quote_object CHECK (quote IS NULL OR jsonb_typeof(quote) = 'object');

-- Roots and children carry the sums of their items' quotes ({currency, upfront, monthly,
-- total_commitment}); roots also the total on its own, which the window limit adds up.
-- Who created and approved a root, by API key id ("bootstrap" for the bootstrap key,
-- null for a token holder or a service), next to the names in created_by/approved_by.
ALTER TABLE executions
    ADD COLUMN quote jsonb
        CONSTRAINT executions_quote_object CHECK (quote IS NULL OR jsonb_typeof(quote) = 'object'),
    ADD COLUMN total_commitment double precision NOT NULL DEFAULT 0
        CONSTRAINT executions_total_commitment_nonnegative CHECK (total_commitment >= 0),
    ADD COLUMN created_by_key_id text,
    ADD COLUMN approved_by_key_id text,
    ADD COLUMN approved_at timestamptz;

-- Roots approved in a window, for the rolling spend limit.
CREATE INDEX executions_approved_at_idx ON executions (approved_at)
    WHERE parent_id IS NULL AND approved_at IS NOT NULL;

-- The spend limits and approval rules an admin set: one row. Nulls are "no limit" (or,
-- for the flag and the tolerance, the service's default). Approvals lock this row, so
-- the window check and the approval are one serial step across every replica.
CREATE TABLE guardrails (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT guardrails_one_row CHECK (singleton),
    max_execution_commitment double precision
        CONSTRAINT guardrails_execution_limit_nonnegative CHECK (max_execution_commitment >= 0),
    max_window_commitment double precision
        CONSTRAINT guardrails_window_limit_nonnegative CHECK (max_window_commitment >= 0),
    window_days integer NOT NULL DEFAULT 30
        CONSTRAINT guardrails_window_days_range CHECK (window_days BETWEEN 1 AND 366),
    require_different_approver boolean,
    price_tolerance_percent double precision
        CONSTRAINT guardrails_tolerance_range CHECK (price_tolerance_percent BETWEEN 0 AND 100),
    updated_by text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO guardrails (singleton) VALUES (true);

-- Every change of the guardrails: who, when, before and after.
CREATE TABLE guardrail_changes (
    id bigserial PRIMARY KEY,
    changed_by text NOT NULL,
    changed_by_key_id text,
    before jsonb NOT NULL,
    after jsonb NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);

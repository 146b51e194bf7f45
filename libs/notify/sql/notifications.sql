-- Notifications (docs/design/API.md "Notifications and the approval page"), in the
-- schema of the service that sends them: its migrations link this one file, as they
-- link audit_events.sql. Written by libs/notify (cudly-notify) only.
--
-- An event is written in the same transaction as the change that causes it, with one
-- delivery row per channel that wants it (the outbox); a dispatcher delivers them
-- afterwards, at least once. Nothing here holds a secret in clear: channel targets
-- (webhook URLs carry their token), signing secrets and approval links are AES-256-GCM
-- blobs bound to their row and column (libs/notify/src/crypto.rs).

CREATE TABLE notification_channels (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL
        CONSTRAINT notification_channels_kind_known
        CHECK (kind IN ('webhook', 'slack', 'teams', 'email')),
    -- private: may carry approval links with their token; broadcast: never does.
    audience text NOT NULL
        CONSTRAINT notification_channels_audience_known
        CHECK (audience IN ('private', 'broadcast')),
    events text[] NOT NULL,
    -- Empty: every plan (every account).
    plan_ids uuid[] NOT NULL DEFAULT '{}',
    account_ids uuid[] NOT NULL DEFAULT '{}',
    -- Encrypted; cleared when the channel is deleted.
    target_ciphertext bytea,
    -- Encrypted; webhooks only.
    signing_secret_ciphertext bytea,
    -- Failed deliveries in a row; at the dispatcher's threshold failing_since is set.
    consecutive_failures integer NOT NULL DEFAULT 0,
    failing_since timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    CONSTRAINT notification_channels_live_has_target
        CHECK (deleted_at IS NOT NULL OR target_ciphertext IS NOT NULL)
);
-- A name is taken while its channel lives; a deleted channel's name can be reused.
CREATE UNIQUE INDEX notification_channels_live_name ON notification_channels (name)
    WHERE deleted_at IS NULL;

CREATE TABLE notification_events (
    -- The event id: the same in every delivery and every retry of it.
    id uuid PRIMARY KEY,
    kind text NOT NULL,
    occurred_at timestamptz NOT NULL,
    execution_id uuid,
    plan_id uuid,
    account_ids uuid[] NOT NULL DEFAULT '{}',
    -- The event's data, without any secret (the approval link with its token is never
    -- part of it).
    payload jsonb NOT NULL,
    -- The approval link with its token, encrypted, kept only while a private channel
    -- still has a delivery to make.
    approval_url_ciphertext bytea,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_events_execution ON notification_events (execution_id)
    WHERE execution_id IS NOT NULL;

CREATE TABLE notification_deliveries (
    -- The notification id (REST `id`, header X-Cudly-Delivery): stable across retries.
    id uuid NOT NULL CONSTRAINT notification_deliveries_id_key UNIQUE,
    event_id uuid NOT NULL REFERENCES notification_events (id) ON DELETE CASCADE,
    channel_id uuid NOT NULL REFERENCES notification_channels (id),
    -- delivering: leased by a dispatcher until next_attempt_at; a lease that runs out
    -- (a crashed dispatcher) makes the row due again.
    state text NOT NULL DEFAULT 'pending'
        CONSTRAINT notification_deliveries_state_known
        CHECK (state IN ('pending', 'delivering', 'delivered', 'failed')),
    -- Attempts started; also the lease's fencing number (a stale holder's write misses).
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- Redacted: never a target URL, a token or a receiver's reply.
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    PRIMARY KEY (event_id, channel_id)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)
    WHERE state IN ('pending', 'delivering');
CREATE INDEX notification_deliveries_channel ON notification_deliveries (channel_id);

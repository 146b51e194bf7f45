-- The notification relay (libs/notify/src/relay.rs), in the schema of a service that
-- raises notifications but keeps no channels of its own (the planner): its migrations
-- link this one file. Written by libs/notify (cudly-notify) only.
--
-- An event is staged here in the same transaction as the change that causes it; a relay
-- loop forwards it to the service that owns the channels (the executor's
-- RaiseNotification, which writes its own outbox under the same id, so a repeat adds
-- nothing) and deletes the row once that succeeded. Nothing here is a secret: an event
-- that carries an approval link is never staged.

CREATE TABLE notification_relay (
    -- The event id: the same in every forward of it, and in the receiving outbox.
    id uuid PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    plan_id uuid,
    account_ids uuid[] NOT NULL DEFAULT '{}',
    -- The event's data: {"event": <kind>, "data": {...}}.
    payload jsonb NOT NULL,
    -- Failed forwards so far.
    attempts integer NOT NULL DEFAULT 0,
    -- Due from then on; a claimed row is leased until then (a relay that died leaves it
    -- to the next one once the lease ran out).
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- The last failure as a short code (e.g. a gRPC code name), never a message.
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_relay_due ON notification_relay (next_attempt_at);

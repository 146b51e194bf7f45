-- The audit trail of a service's changes (docs/design/DOMAIN.md "Audit log"), in each audited
-- service's own schema: each service's migrations link this one file. Written in the
-- same transaction as each change, never updated or deleted by the service.
CREATE TABLE audit_events (
    id            uuid        PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    service       text        NOT NULL,
    actor         text        NOT NULL,
    actor_key_id  text,
    action        text        NOT NULL,
    target_type   text        NOT NULL,
    target_id     text        NOT NULL,
    request_id    text,
    before_digest text,
    after_digest  text
);
CREATE INDEX audit_events_at_id ON audit_events (at, id);
-- Append-only: a rule turns any UPDATE or DELETE into nothing.
CREATE RULE audit_events_no_update AS ON UPDATE TO audit_events DO INSTEAD NOTHING;
CREATE RULE audit_events_no_delete AS ON DELETE TO audit_events DO INSTEAD NOTHING;

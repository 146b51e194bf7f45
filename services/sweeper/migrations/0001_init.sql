-- Schema sweeper, owned by the sweeper service.

-- Fencing tokens come from Postgres, never from Redis: Redis here keeps nothing on
-- disk, so a counter there could go backwards after a restart (DOMAIN.md, Sweeper).
CREATE SEQUENCE fencing_seq AS bigint START 1;

CREATE TABLE sweep_runs (
    id            uuid PRIMARY KEY,
    task          text        NOT NULL CHECK (task IN ('expire_pending', 'recover_stranded', 'fire_due_plans')),
    holder        text        NOT NULL,
    outcome       text        NOT NULL CHECK (outcome IN ('running', 'ran', 'lock_not_acquired', 'skipped_recent', 'lock_lost', 'error')),
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    found         integer     NOT NULL DEFAULT 0,
    acted         integer     NOT NULL DEFAULT 0,
    race_lost     integer     NOT NULL DEFAULT 0,
    errors        integer     NOT NULL DEFAULT 0,
    fencing_token bigint,
    error         text
);

CREATE INDEX sweep_runs_task_started ON sweep_runs (task, started_at DESC);
CREATE INDEX sweep_runs_started ON sweep_runs (started_at DESC);

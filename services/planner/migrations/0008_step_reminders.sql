-- The reminder a plan's channels get notification_days_before days before a step fires
-- (DOMAIN.md "Plans", event step_upcoming), sent once per step: the highest step
-- reminded so far, moved on by compare-and-set in the transaction that stages the
-- reminder (notification_relay).
ALTER TABLE plans
    ADD COLUMN reminded_step integer NOT NULL DEFAULT 0
        CONSTRAINT plans_reminded_step_nonnegative CHECK (reminded_step >= 0);

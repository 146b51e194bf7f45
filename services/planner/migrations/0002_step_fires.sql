-- A step that is fired again and again without completing (a target that can never
-- buy, an item that always fails) pauses its plan instead of re-firing forever
-- (DOMAIN.md "Standing recommendations and runs").

-- Fires of the step after ramp_current_step; back to 0 when a step completes and when
-- an operator enables a paused plan.
ALTER TABLE plans
    ADD COLUMN step_fires integer NOT NULL DEFAULT 0 CONSTRAINT plans_step_fires_nonnegative CHECK (step_fires >= 0),
    -- Why the planner paused (disabled) the plan; cleared when it is enabled again.
    ADD COLUMN paused_reason text;

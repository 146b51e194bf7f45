-- The refresh_recommendations task (docs/design/DOMAIN.md "Recommendations and sizing").
ALTER TABLE sweep_runs DROP CONSTRAINT sweep_runs_task_check;
ALTER TABLE sweep_runs ADD CONSTRAINT sweep_runs_task_check
    CHECK (task IN ('expire_pending', 'recover_stranded', 'fire_due_plans', 'refresh_recommendations'));

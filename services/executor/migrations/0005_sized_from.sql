-- A plan run sized from Cost Explorer recommendations records when the oldest
-- recommendation set it was sized from was collected (docs/design/DOMAIN.md
-- "Recommendations and sizing"); null for every other run.
ALTER TABLE executions ADD COLUMN sized_from timestamptz;

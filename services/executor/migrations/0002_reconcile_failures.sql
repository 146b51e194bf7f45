-- Reconciliations of an unknown purchase outcome that could not settle it. After a few,
-- the attempt is in doubt, which an operator can resolve; before, an attempt whose
-- look-ups always failed stayed in flight forever and blocked its lineage.
ALTER TABLE purchase_attempts
    ADD COLUMN reconcile_failures integer NOT NULL DEFAULT 0 CHECK (reconcile_failures >= 0);

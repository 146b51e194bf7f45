-- The sending process's own clock at the send, next to the database's: a reconciliation
-- looks for an untagged commitment created after the earlier of the two, since AWS
-- stamps commitments with its own clock, which SigV4 keeps close to the sender's, not
-- to the database's.
ALTER TABLE purchase_attempts ADD COLUMN sent_at_sender timestamptz;

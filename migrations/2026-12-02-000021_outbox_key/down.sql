-- The outbox of migration 000011 again: no primary key (dropping the column drops its sequence
-- and the key with it).
ALTER TABLE alert_outbox DROP COLUMN id;

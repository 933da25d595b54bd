-- The readings of migration 000021 again: without what the wearer was doing.
ALTER TABLE readings DROP COLUMN activity;

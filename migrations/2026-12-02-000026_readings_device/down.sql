-- The readings of migration 000025 again: without the device that measured them.
ALTER TABLE readings DROP COLUMN device_id;

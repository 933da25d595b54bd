-- Day partitions one statement at a time again (migration 000001's function stays), and TOAST
-- tables for the partitions made from now on.
DROP FUNCTION heartbeat_ensure_day_partitions(date[]);
DROP FUNCTION heartbeat_missing_day_partitions(date[]);
ALTER TABLE readings
    ALTER COLUMN customer_id SET STORAGE EXTENDED,
    ALTER COLUMN class SET STORAGE EXTENDED,
    ALTER COLUMN activity SET STORAGE EXTENDED,
    ALTER COLUMN device_id SET STORAGE EXTENDED;

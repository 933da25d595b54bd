DROP FUNCTION heartbeat_drop_expired_partitions(int);

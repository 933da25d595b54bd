ALTER TABLE alerts
    DROP COLUMN suppressed,
    DROP COLUMN activated_at;

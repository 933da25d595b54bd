-- Who owns each partition of the readings topic, and from where its detector state is rebuilt
-- (docs/ARCHITECTURE.md, "Detector state and alerts").
--
-- detector_epochs: every processor that takes a partition (an assignment, a restart) claims it by
-- raising its epoch. Every transaction of the writers ends by reading the epochs of the partitions
-- it wrote FOR SHARE and rolls back when one has moved on: a stale owner (an earlier incarnation
-- whose write completed late, a member the partition was taken from) can no longer commit after
-- the new owner has loaded its state. The claim waits for such a transaction to finish, so what
-- the new owner loads is everything its predecessors committed.
CREATE TABLE detector_epochs (
    kafka_partition int         PRIMARY KEY,
    epoch           bigint      NOT NULL,
    -- host:pid of the claimer, for operators
    owner           text        NOT NULL,
    claimed_at      timestamptz NOT NULL DEFAULT now()
);

-- detector_checkpoints: per partition, a point every saved detector state has reached. Written
-- once the batch that saved every changed state of the partition has committed, with every batch
-- before it: each customer's saved state then holds all of its readings of the partition at or
-- before checkpoint_offset, and every reading of the partition a saved state misses was stored
-- (readings.ingested_at) at or after replay_from. A new owner replays those readings from there.
-- Separate from detector_epochs so that writing a checkpoint never waits on the writers' shared
-- locks of the epochs.
CREATE TABLE detector_checkpoints (
    kafka_partition   int         PRIMARY KEY,
    -- the epoch of the owner that wrote it
    epoch             bigint      NOT NULL,
    checkpoint_offset bigint,
    replay_from       timestamptz NOT NULL,
    checkpointed_at   timestamptz NOT NULL DEFAULT now()
);

-- A database of an earlier version has saved states but no checkpoints: the earlier version
-- rebuilt a partition from the readings stored since a minute and the checkpoint interval before
-- its newest saved state, so that is where the first replay starts.
INSERT INTO detector_checkpoints (kafka_partition, epoch, checkpoint_offset, replay_from)
    SELECT kafka_partition, 0, NULL, max(updated_at) - interval '65 seconds'
    FROM detector_state GROUP BY kafka_partition;

GRANT SELECT, INSERT, UPDATE ON detector_epochs, detector_checkpoints TO heartbeat_writer;

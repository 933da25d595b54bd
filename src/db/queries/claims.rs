//! Claims: a new owner of a partition raises its epoch, which fences out every earlier owner's
//! writes; each batch checks its fence before it commits.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};

use crate::db::DbError;

/// What claiming a partition found: the epoch it is held with now, and its checkpoint.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = Integer)]
    pub kafka_partition: i32,
    #[diesel(sql_type = BigInt)]
    pub epoch: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub checkpoint_offset: Option<i64>,
    /// `None`: no checkpoint yet, every stored reading of the partition is replayed.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub replay_from: Option<DateTime<Utc>>,
}

/// How long a claim waits for a row lock (a stale owner's transaction between its fence check
/// and its commit) before it gives up and the caller tries again.
const CLAIM_LOCK_TIMEOUT: &str = "2s";

/// Claims `partitions` for `owner`: raises each one's epoch (`detector_epochs`), which fences out
/// every earlier owner's writes, and returns the new epochs with the checkpoints to rebuild from.
///
/// The raise waits for any transaction that has already passed its fence check with the old
/// epoch (its shared lock), so once this returns, everything an earlier owner will ever commit
/// for these partitions is committed, and the checkpoint and states read afterwards are final.
pub fn claim_partitions(
    conn: &mut PgConnection,
    partitions: &[i32],
    owner: &str,
) -> Result<Vec<Claimed>, DbError> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    conn.transaction(|c| {
        diesel::sql_query(format!("SET LOCAL lock_timeout = '{CLAIM_LOCK_TIMEOUT}'"))
            .execute(c)
            .map_err(DbError::query("limit the claim's lock wait"))?;
        diesel::sql_query(
            "INSERT INTO detector_epochs (kafka_partition, epoch, owner) \
             SELECT p, 0, $2 FROM unnest($1::int[]) AS p ON CONFLICT DO NOTHING",
        )
        .bind::<Array<Integer>, _>(partitions)
        .bind::<Text, _>(owner)
        .execute(c)
        .map_err(DbError::query("register partitions"))?;
        // Row locks in partition order, so two claimers never wait on each other in a circle.
        diesel::sql_query(
            "SELECT kafka_partition FROM detector_epochs WHERE kafka_partition = ANY($1) \
             ORDER BY kafka_partition FOR UPDATE",
        )
        .bind::<Array<Integer>, _>(partitions)
        .execute(c)
        .map_err(DbError::query("lock the partitions' epochs"))?;
        diesel::sql_query(
            "WITH raised AS (UPDATE detector_epochs SET epoch = epoch + 1, owner = $2, \
             claimed_at = now() WHERE kafka_partition = ANY($1) \
             RETURNING kafka_partition, epoch) \
             SELECT r.kafka_partition, r.epoch, c.checkpoint_offset, c.replay_from \
             FROM raised r LEFT JOIN detector_checkpoints c USING (kafka_partition) \
             ORDER BY r.kafka_partition",
        )
        .bind::<Array<Integer>, _>(partitions)
        .bind::<Text, _>(owner)
        .load(c)
        .map_err(DbError::query("claim partitions"))
    })
}

/// Rolls the batch's transaction back with [`DbError::Fenced`] unless every partition of `fence`
/// is still held with its epoch. The rows are read FOR SHARE: a claim waits for this transaction
/// to end, and this check waits for a claim in progress to end, so no write of an old epoch can
/// land after a new owner has loaded what was there.
pub(super) fn check_fence(conn: &mut PgConnection, fence: &[(i32, i64)]) -> Result<(), DbError> {
    if fence.is_empty() {
        return Ok(());
    }
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = Integer)]
        kafka_partition: i32,
        #[diesel(sql_type = BigInt)]
        epoch: i64,
    }
    let partitions: Vec<i32> = fence.iter().map(|(p, _)| *p).collect();
    let held: HashMap<i32, i64> = diesel::sql_query(
        "SELECT kafka_partition, epoch FROM detector_epochs WHERE kafka_partition = ANY($1) \
         ORDER BY kafka_partition FOR SHARE",
    )
    .bind::<Array<Integer>, _>(&partitions)
    .load::<Held>(conn)
    .map_err(DbError::query("check the partitions' epochs"))?
    .into_iter()
    .map(|h| (h.kafka_partition, h.epoch))
    .collect();
    let mut lost: Vec<i32> = fence
        .iter()
        .filter(|(p, e)| held.get(p) != Some(e))
        .map(|(p, _)| *p)
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    lost.sort_unstable();
    lost.dedup();
    Err(DbError::Fenced { partitions: lost })
}

//! The writer's transaction and the summaries of `inspect`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, SmallInt, Text, Timestamptz};
use uuid::Uuid;

use crate::db::models::{
    NewAnomaly, NewReading, NewRejected, SavedState, StagedReading, StoredAnomaly,
};
use crate::db::schema::{alert_outbox, anomalies, detector_state, readings, rejected_readings};
use crate::db::staging::{anomalies_stage, readings_stage, MOVE_STAGED, MOVE_STAGED_ANOMALIES};
use crate::db::DbError;
use crate::domain::classification::AnomalyKind;
use crate::domain::detector::AlertRow;
use crate::domain::record::{
    Anomaly, ClassifiedReading, CustomerSnapshot, PartitionCheckpoint, RejectedRecord,
};

/// Everything one batch writes, in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct BatchRows<'a> {
    pub readings: &'a [ClassifiedReading],
    pub rejects: &'a [RejectedRecord],
    pub anomalies: &'a [Anomaly],
    pub alerts: &'a [AlertRow],
    pub states: &'a [CustomerSnapshot],
    pub checkpoints: &'a [PartitionCheckpoint],
    /// (partition, epoch) the writes are fenced with: see [`check_fence`].
    pub fence: &'a [(i32, i64)],
}

/// Rows per statement where rows are bound as parameters (rejects, identity look-ups):
/// PostgreSQL binds at most 65,535 parameters per statement and a reject takes 6, so stay well
/// under 10,922 rows.
const ROWS_PER_STATEMENT: usize = 4_000;

/// A reading's identity as `INSERT ... RETURNING` reports it.
#[derive(Debug, QueryableByName)]
struct Identity {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    event_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    recorded_at: DateTime<Utc>,
}

/// What one batch did to the tables.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchOutcome {
    /// The anomalies inserted, as stored (for the alerts topic; also in `alert_outbox`).
    pub stored_anomalies: Vec<StoredAnomaly>,
    /// Readings inserted (new identities).
    pub stored: u64,
    /// Valid readings whose identity was already stored (or repeated within the batch).
    pub duplicates: u64,
    /// Reject rows inserted (a record read again adds none).
    pub rejected: u64,
    /// Anomalies inserted, by kind.
    pub anomalies: HashMap<AnomalyKind, u64>,
}

/// The UTC day of an instant (partitions are per UTC day).
pub fn utc_day(at: &DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

/// Makes sure a partition of `readings` exists for each day. DDL runs in its own short
/// transactions, serialized by an advisory lock inside the SQL function.
pub fn ensure_day_partitions(
    conn: &mut PgConnection,
    days: &BTreeSet<NaiveDate>,
) -> Result<(), DbError> {
    for day in days {
        let start = day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or_default();
        diesel::sql_query("SELECT heartbeat_ensure_day_partition($1)")
            .bind::<Timestamptz, _>(start)
            .execute(conn)
            .map_err(DbError::query("create a day partition of readings"))?;
    }
    Ok(())
}

/// Stores one batch in one transaction: its readings (first copy of an identity wins), the
/// anomalies of the readings that were new, its rejects, the alert episodes it changed, the
/// detector states saved with it and the checkpoints it records. Either all of it commits or
/// none: it commits only while every partition of `fence` is still held with its epoch
/// ([`DbError::Fenced`] otherwise).
pub fn persist_batch(
    conn: &mut PgConnection,
    batch: BatchRows<'_>,
) -> Result<BatchOutcome, DbError> {
    let BatchRows {
        readings: readings_in,
        rejects: rejects_in,
        anomalies: anomalies_in,
        alerts: alerts_in,
        states: states_in,
        checkpoints,
        fence,
    } = batch;
    // The first copy of an identity within the batch wins, as across batches; copies the
    // detector already knows are stored (or on their way) are left out.
    let mut seen = HashSet::with_capacity(readings_in.len());
    let rows: Vec<NewReading<'_>> = readings_in
        .iter()
        .filter(|r| !r.known_duplicate)
        .filter(|r| seen.insert((r.reading.event_id, r.reading.recorded_at)))
        .map(|r| NewReading {
            event_id: r.reading.event_id,
            customer_id: &r.reading.customer_id,
            recorded_at: r.reading.recorded_at,
            heart_rate: r.reading.heart_rate,
            class: r.class.as_str(),
            kafka_partition: r.partition,
            kafka_offset: r.offset,
        })
        .collect();
    let rejects: Vec<NewRejected<'_>> = rejects_in
        .iter()
        .map(|r| NewRejected {
            raw: r.raw(),
            reason: r.reason.as_str(),
            detail: &r.detail,
            kafka_topic: &r.topic,
            kafka_partition: r.partition,
            kafka_offset: r.offset,
        })
        .collect();

    let batch = Prepared {
        readings_in: readings_in.len(),
        rows: &rows,
        rejects: &rejects,
        anomalies_in,
        alerts_in,
        states_in,
        checkpoints,
        fence,
    };
    // Optimistic: the detector has left out every copy it knows is stored, so the readings
    // normally go straight in by COPY. Should one conflict after all (another processor stored
    // it during a rebalance), the transaction fails as a whole and is redone through staging,
    // which skips what is there.
    match conn.transaction(|c| write_batch(c, &batch, ReadingsPath::Direct)) {
        Err(DbError::Query {
            source:
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ),
            ..
        }) => conn.transaction(|c| write_batch(c, &batch, ReadingsPath::Staged)),
        other => other,
    }
}

/// How the readings of a batch, and with them their anomalies, go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadingsPath {
    /// Binary COPY into `readings` and `anomalies`: fastest, fails on any conflict.
    Direct,
    /// COPY into the staging tables, then `INSERT ... SELECT ... ON CONFLICT DO NOTHING`.
    Staged,
}

/// A batch ready to write, borrowed from the message.
struct Prepared<'a> {
    readings_in: usize,
    rows: &'a [NewReading<'a>],
    rejects: &'a [NewRejected<'a>],
    anomalies_in: &'a [Anomaly],
    alerts_in: &'a [AlertRow],
    states_in: &'a [CustomerSnapshot],
    checkpoints: &'a [PartitionCheckpoint],
    fence: &'a [(i32, i64)],
}

/// The body of the batch transaction.
fn write_batch(
    conn: &mut PgConnection,
    batch: &Prepared<'_>,
    path: ReadingsPath,
) -> Result<BatchOutcome, DbError> {
    let Prepared {
        readings_in,
        rows,
        rejects,
        anomalies_in,
        alerts_in,
        states_in,
        checkpoints,
        fence,
    } = *batch;
    {
        let mut inserted: HashSet<(Uuid, DateTime<Utc>)> = HashSet::with_capacity(rows.len());
        if !rows.is_empty() && path == ReadingsPath::Direct {
            diesel::copy_from(readings::table)
                .from_insertable(rows)
                .execute(conn)
                .map_err(DbError::query("copy readings"))?;
            inserted.extend(rows.iter().map(|r| (r.event_id, r.recorded_at)));
        } else if !rows.is_empty() {
            let staged: Vec<StagedReading<'_>> = rows.iter().map(StagedReading::from).collect();
            diesel::copy_from(readings_stage::table)
                .from_insertable(&staged)
                .execute(conn)
                .map_err(DbError::query("copy readings into the staging table"))?;
            let moved: Vec<Identity> = diesel::sql_query(MOVE_STAGED)
                .load(conn)
                .map_err(DbError::query("insert readings"))?;
            inserted.extend(moved.into_iter().map(|r| (r.event_id, r.recorded_at)));
        }

        // A duplicate changes no anomaly: only readings stored now may add one.
        let new_anomalies: Vec<NewAnomaly<'_>> = anomalies_in
            .iter()
            .filter(|a| match a.event_id {
                Some(id) => inserted.contains(&(id, a.recorded_at)),
                None => true,
            })
            .map(|a| NewAnomaly {
                event_id: a.event_id,
                customer_id: &a.customer_id,
                kind: a.kind.as_str(),
                heart_rate: a.heart_rate,
                recorded_at: a.recorded_at,
                details: &a.details,
            })
            .collect();
        let stored_anomalies = match path {
            ReadingsPath::Direct => copy_anomalies(conn, &new_anomalies)?,
            ReadingsPath::Staged => stage_anomalies(conn, &new_anomalies)?,
        };
        let mut anomalies_by_kind = HashMap::new();
        for row in &stored_anomalies {
            if let Some(k) = AnomalyKind::ALL.iter().find(|k| k.as_str() == row.kind) {
                *anomalies_by_kind.entry(*k).or_insert(0) += 1;
            }
        }

        let mut rejected = 0;
        for chunk in rejects.chunks(ROWS_PER_STATEMENT) {
            rejected += diesel::insert_into(rejected_readings::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(conn)
                .map_err(DbError::query("insert rejected readings"))?
                as u64;
        }

        upsert_alerts(conn, alerts_in)?;
        save_states(conn, states_in)?;
        record_checkpoints(conn, checkpoints)?;
        // Last, so the shared locks are held only from here to the commit.
        check_fence(conn, fence)?;

        Ok(BatchOutcome {
            stored_anomalies,
            stored: inserted.len() as u64,
            duplicates: readings_in.saturating_sub(inserted.len()) as u64,
            rejected,
            anomalies: anomalies_by_kind,
        })
    }
}

/// Ids from the anomalies' sequence and the transaction's time (`detected_at`'s default), in
/// one round trip.
#[derive(QueryableByName)]
struct AnomalyId {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Timestamptz)]
    detected_at: DateTime<Utc>,
}

/// The anomalies of readings stored by this batch's direct COPY: none can be stored already (a
/// new reading has no anomaly yet), so they go in by binary COPY too, with ids taken from the
/// sequence beforehand; the rows as stored are known without reading them back. Should one
/// conflict after all (a silence noted before a crash, an anomaly kept after retention dropped
/// its reading), the transaction fails and is redone through [`stage_anomalies`].
fn copy_anomalies(
    conn: &mut PgConnection,
    new: &[NewAnomaly<'_>],
) -> Result<Vec<StoredAnomaly>, DbError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<AnomalyId> = diesel::sql_query(
        "SELECT nextval('anomalies_id_seq') AS id, now() AS detected_at \
         FROM generate_series(1, $1)",
    )
    .bind::<BigInt, _>(new.len() as i64)
    .load(conn)
    .map_err(DbError::query("take anomaly ids"))?;
    let stored: Vec<StoredAnomaly> = new
        .iter()
        .zip(ids)
        .map(|(a, id)| StoredAnomaly {
            id: id.id,
            event_id: a.event_id,
            customer_id: a.customer_id.to_owned(),
            kind: a.kind.to_owned(),
            heart_rate: a.heart_rate,
            recorded_at: a.recorded_at,
            detected_at: id.detected_at,
            details: a.details.clone(),
        })
        .collect();
    diesel::copy_from(anomalies::table)
        .from_insertable(&stored)
        .execute(conn)
        .map_err(DbError::query("copy anomalies"))?;
    let noted: Vec<i64> = stored.iter().map(|a| a.id).collect();
    diesel::insert_into(alert_outbox::table)
        .values(alert_outbox::anomaly_ids.eq(&noted))
        .execute(conn)
        .map_err(DbError::query("note anomalies in the alert outbox"))?;
    Ok(stored)
}

/// Anomalies that may be stored already: through the staging table, inserting those that are
/// new and noting them in the alert outbox, read back as stored.
fn stage_anomalies(
    conn: &mut PgConnection,
    new: &[NewAnomaly<'_>],
) -> Result<Vec<StoredAnomaly>, DbError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    diesel::copy_from(anomalies_stage::table)
        .from_insertable(new)
        .execute(conn)
        .map_err(DbError::query("copy anomalies into the staging table"))?;
    diesel::sql_query(MOVE_STAGED_ANOMALIES)
        .load(conn)
        .map_err(DbError::query("insert anomalies"))
}

/// Writes the alert episodes' latest versions (one row per customer, kind and opening).
///
/// Alert changes and detector states go in as array parameters of one statement each (`unnest`),
/// not through a staging table: a transaction that touches any temporary table makes PostgreSQL
/// truncate every `ON COMMIT DELETE ROWS` table at commit, a file truncation each, which was
/// several percent of a writer's time.
fn upsert_alerts(conn: &mut PgConnection, rows: &[AlertRow]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    // One statement may not touch a row twice: keep the last version of each episode.
    let mut latest: HashMap<(&str, AnomalyKind, DateTime<Utc>), &AlertRow> = HashMap::new();
    for r in rows {
        latest.insert((r.customer_id.as_str(), r.kind, r.opened_at), r);
    }
    let rows: Vec<&AlertRow> = latest.into_values().collect();
    diesel::sql_query(UPSERT_ALERTS)
        .bind::<Array<Text>, _>(
            rows.iter()
                .map(|r| r.customer_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.opened_at).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.last_seen_at).collect::<Vec<_>>())
        .bind::<Array<Nullable<Timestamptz>>, _>(
            rows.iter().map(|r| r.resolved_at).collect::<Vec<_>>(),
        )
        .bind::<Array<Integer>, _>(rows.iter().map(|r| r.readings).collect::<Vec<_>>())
        .bind::<Array<Nullable<SmallInt>>, _>(
            rows.iter().map(|r| r.peak_heart_rate).collect::<Vec<_>>(),
        )
        .execute(conn)
        .map_err(DbError::query("upsert alerts"))?;
    Ok(())
}

/// Writes the alert episodes given as arrays over the stored ones, in key order.
const UPSERT_ALERTS: &str = "INSERT INTO alerts \
     (customer_id, kind, opened_at, last_seen_at, resolved_at, readings, peak_heart_rate) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], \
     $5::timestamptz[], $6::int[], $7::smallint[]) \
     AS t (customer_id, kind, opened_at, last_seen_at, resolved_at, readings, peak_heart_rate) \
     ORDER BY customer_id, kind, opened_at \
     ON CONFLICT (customer_id, kind, opened_at) DO UPDATE SET \
     last_seen_at = excluded.last_seen_at, resolved_at = excluded.resolved_at, \
     readings = excluded.readings, peak_heart_rate = excluded.peak_heart_rate";

/// Saves each customer's detector state (the last one given wins).
fn save_states(conn: &mut PgConnection, states: &[CustomerSnapshot]) -> Result<(), DbError> {
    if states.is_empty() {
        return Ok(());
    }
    let mut latest: HashMap<&str, &CustomerSnapshot> = HashMap::new();
    for s in states {
        latest.insert(s.customer_id.as_str(), s);
    }
    let rows: Vec<&CustomerSnapshot> = latest.into_values().collect();
    diesel::sql_query(UPSERT_STATES)
        .bind::<Array<Text>, _>(
            rows.iter()
                .map(|s| s.customer_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Integer>, _>(rows.iter().map(|s| s.partition).collect::<Vec<_>>())
        .bind::<Array<Jsonb>, _>(rows.iter().map(|s| &s.state).collect::<Vec<_>>())
        .execute(conn)
        .map_err(DbError::query("save detector state"))?;
    Ok(())
}

/// Writes the detector states given as arrays over the saved ones, in key order.
const UPSERT_STATES: &str = "INSERT INTO detector_state (customer_id, kafka_partition, state) \
     SELECT * FROM unnest($1::text[], $2::int[], $3::jsonb[]) \
     AS t (customer_id, kafka_partition, state) ORDER BY customer_id \
     ON CONFLICT (customer_id) DO UPDATE SET kafka_partition = excluded.kafka_partition, \
     state = excluded.state, updated_at = now()";

/// The saved detector states of `customers` (those that have one).
pub fn load_states(
    conn: &mut PgConnection,
    customers: &[String],
) -> Result<Vec<SavedState>, DbError> {
    detector_state::table
        .filter(detector_state::customer_id.eq_any(customers))
        .select(SavedState::as_select())
        .load(conn)
        .map_err(DbError::query("load detector state"))
}

/// `at` minus `span`, saturating at the earliest instant chrono can hold: a look-back longer than
/// the clock goes back means everything.
fn look_back(at: DateTime<Utc>, span: std::time::Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(span)
        .ok()
        .and_then(|span| at.checked_sub_signed(span))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The saved detector states of the customers of `partitions` that were active within the last
/// `active_within` (those quiet for longer are forgotten, SPEC section 5, and loaded again by
/// [`load_states`] when they send).
pub fn load_partition_states(
    conn: &mut PgConnection,
    partitions: &[i32],
    active_within: std::time::Duration,
) -> Result<Vec<SavedState>, DbError> {
    let since = look_back(Utc::now(), active_within);
    detector_state::table
        .filter(detector_state::kafka_partition.eq_any(partitions))
        .filter(detector_state::updated_at.gt(since))
        .select(SavedState::as_select())
        .load(conn)
        .map_err(DbError::query("load detector state of partitions"))
}

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
fn check_fence(conn: &mut PgConnection, fence: &[(i32, i64)]) -> Result<(), DbError> {
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

/// Records checkpoints that hold (see [`PartitionCheckpoint`]); a partition keeps its latest.
fn record_checkpoints(
    conn: &mut PgConnection,
    checkpoints: &[PartitionCheckpoint],
) -> Result<(), DbError> {
    if checkpoints.is_empty() {
        return Ok(());
    }
    let mut latest: BTreeMap<i32, &PartitionCheckpoint> = BTreeMap::new();
    for c in checkpoints {
        latest.insert(c.partition, c);
    }
    let rows: Vec<&PartitionCheckpoint> = latest.into_values().collect();
    diesel::sql_query(
        "INSERT INTO detector_checkpoints (kafka_partition, epoch, checkpoint_offset, replay_from) \
         SELECT * FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::timestamptz[]) \
         ON CONFLICT (kafka_partition) DO UPDATE SET epoch = excluded.epoch, \
         checkpoint_offset = excluded.checkpoint_offset, replay_from = excluded.replay_from, \
         checkpointed_at = now()",
    )
    .bind::<Array<Integer>, _>(rows.iter().map(|c| c.partition).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|c| c.epoch).collect::<Vec<_>>())
    .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|c| c.offset).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(rows.iter().map(|c| c.replay_from).collect::<Vec<_>>())
    .execute(conn)
    .map_err(DbError::query("record detector checkpoints"))?;
    Ok(())
}

/// PostgreSQL's clock now: every transaction that starts after this returns has a `now()` (and so
/// stores readings with an `ingested_at`) at or after it.
pub fn database_clock(conn: &mut PgConnection) -> Result<DateTime<Utc>, DbError> {
    #[derive(QueryableByName)]
    struct Clock {
        #[diesel(sql_type = Timestamptz)]
        now: DateTime<Utc>,
    }
    diesel::sql_query("SELECT clock_timestamp() AS now")
        .get_result::<Clock>(conn)
        .map(|c| c.now)
        .map_err(DbError::query("read the database clock"))
}

/// A stored reading that a saved detector state may not hold yet.
#[derive(Debug, Clone, QueryableByName)]
pub struct TailReading {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = Text)]
    pub customer_id: String,
    #[diesel(sql_type = Timestamptz)]
    pub recorded_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    pub heart_rate: i16,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub kafka_partition: i32,
    #[diesel(sql_type = BigInt)]
    pub kafka_offset: i64,
}

/// The readings of each partition stored at or after its bound (`None`: every one stored), in
/// the order they were observed: per partition, by offset. Which of them a saved state misses is
/// the caller's to decide (`CustomerState::misses`); the bound (a checkpoint's `replay_from`)
/// only limits the scan, through the BRIN index on `ingested_at`.
pub fn load_tails(
    conn: &mut PgConnection,
    bounds: &[(i32, Option<DateTime<Utc>>)],
) -> Result<Vec<TailReading>, DbError> {
    let since: HashMap<i32, DateTime<Utc>> = bounds
        .iter()
        .filter_map(|(p, b)| Some((*p, (*b)?)))
        .collect();
    let unbounded: Vec<i32> = bounds
        .iter()
        .filter(|(_, b)| b.is_none())
        .map(|(p, _)| *p)
        .collect();
    let mut out: Vec<TailReading> = Vec::new();
    if let Some(earliest) = since.values().min().copied() {
        let parts: Vec<i32> = since.keys().copied().collect();
        // One scan from the earliest bound, exact per partition.
        let rows: Vec<TailRow> = diesel::sql_query(
            "SELECT event_id, customer_id, recorded_at, heart_rate, kafka_partition, \
             kafka_offset, ingested_at FROM readings \
             WHERE ingested_at >= $1 AND kafka_partition = ANY($2)",
        )
        .bind::<Timestamptz, _>(earliest)
        .bind::<Array<Integer>, _>(&parts)
        .load(conn)
        .map_err(DbError::query(
            "load the readings stored since the detector checkpoint",
        ))?;
        out.extend(
            rows.into_iter()
                .filter(|r| {
                    since
                        .get(&r.reading.kafka_partition)
                        .is_some_and(|s| r.ingested_at >= *s)
                })
                .map(|r| r.reading),
        );
    }
    if !unbounded.is_empty() {
        let rows: Vec<TailReading> = diesel::sql_query(
            "SELECT event_id, customer_id, recorded_at, heart_rate, kafka_partition, \
             kafka_offset FROM readings WHERE kafka_partition = ANY($1)",
        )
        .bind::<Array<Integer>, _>(&unbounded)
        .load(conn)
        .map_err(DbError::query(
            "load the readings of partitions without a detector checkpoint",
        ))?;
        out.extend(rows);
    }
    out.sort_by_key(|r| (r.kafka_partition, r.kafka_offset));
    Ok(out)
}

#[derive(QueryableByName)]
struct TailRow {
    #[diesel(embed)]
    reading: TailReading,
    #[diesel(sql_type = Timestamptz)]
    ingested_at: DateTime<Utc>,
}

/// An anomaly noted in `alert_outbox`, with the first id of its outbox row (which names the row:
/// the row of a batch is found by it, see [`alerts_published`]).
#[derive(Debug, QueryableByName)]
pub struct PendingAlert {
    #[diesel(sql_type = BigInt)]
    pub batch: i64,
    #[diesel(embed)]
    pub anomaly: StoredAnomaly,
}

/// Anomalies stored but not yet acknowledged on the alerts topic, oldest first: those of the
/// outbox rows whose first id is not in `held` (the batches the caller is delivering) and whose
/// anomalies were all detected (their writer's transaction began) at least `min_age` ago.
pub fn pending_alerts(
    conn: &mut PgConnection,
    held: &[i64],
    min_age: std::time::Duration,
) -> Result<Vec<PendingAlert>, DbError> {
    diesel::sql_query(
        "SELECT batch, id, event_id, customer_id, kind, heart_rate, recorded_at, detected_at, \
         details FROM (\
           SELECT o.anomaly_ids[1] AS batch, a.*, \
                  max(a.detected_at) OVER (PARTITION BY o.anomaly_ids[1]) AS newest \
           FROM alert_outbox o JOIN anomalies a ON a.id = ANY (o.anomaly_ids) \
           WHERE NOT (o.anomaly_ids[1] = ANY ($1))) p \
         WHERE newest <= now() - make_interval(secs => $2) ORDER BY id",
    )
    .bind::<Array<BigInt>, _>(held)
    .bind::<diesel::sql_types::Double, _>(min_age.as_secs_f64())
    .load(conn)
    .map_err(DbError::query("read the alert outbox"))
}

/// Forgets the outbox rows of the batches whose alerts were acknowledged. `ids` must hold every
/// anomaly of each batch it touches (the publisher acknowledges a batch's alerts together), so a
/// batch's row is found by its first id, through the index on it.
pub fn alerts_published(conn: &mut PgConnection, ids: &[i64]) -> Result<(), DbError> {
    diesel::sql_query("DELETE FROM alert_outbox WHERE anomaly_ids[1] = ANY($1)")
        .bind::<diesel::sql_types::Array<BigInt>, _>(ids)
        .execute(conn)
        .map(|_| ())
        .map_err(DbError::query("clear the alert outbox"))
}

/// Which of `ids` (event_id, recorded_at) are already stored in `readings`.
pub fn stored_identities(
    conn: &mut PgConnection,
    ids: &[(Uuid, DateTime<Utc>)],
) -> Result<HashSet<(Uuid, DateTime<Utc>)>, DbError> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let event_ids: Vec<Uuid> = chunk.iter().map(|(e, _)| *e).collect();
        let times: Vec<DateTime<Utc>> = chunk.iter().map(|(_, t)| *t).collect();
        let min = times.iter().min().copied().unwrap_or_default();
        let max = times.iter().max().copied().unwrap_or_default();
        // The time range lets PostgreSQL prune day partitions; the pair check is exact.
        let rows: Vec<(Uuid, DateTime<Utc>)> = readings::table
            .filter(readings::event_id.eq_any(&event_ids))
            .filter(readings::recorded_at.between(min, max))
            .select((readings::event_id, readings::recorded_at))
            .load(conn)
            .map_err(DbError::query("look up stored readings"))?;
        let wanted: HashSet<(Uuid, DateTime<Utc>)> = chunk.iter().copied().collect();
        found.extend(rows.into_iter().filter(|id| wanted.contains(id)));
    }
    Ok(found)
}

#[derive(Debug, QueryableByName)]
pub struct LabelCount {
    #[diesel(sql_type = Text)]
    pub label: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

#[derive(Debug, QueryableByName)]
pub struct Totals {
    #[diesel(sql_type = BigInt)]
    pub readings: i64,
    #[diesel(sql_type = BigInt)]
    pub rejected: i64,
    #[diesel(sql_type = BigInt)]
    pub anomalies: i64,
    #[diesel(sql_type = BigInt)]
    pub open_alerts: i64,
    #[diesel(sql_type = BigInt)]
    pub customers: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub newest: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub newest_ingested: Option<DateTime<Utc>>,
}

/// The database summary `inspect` prints.
#[derive(Debug)]
pub struct Summary {
    pub totals: Totals,
    pub classes: Vec<LabelCount>,
    pub anomalies: Vec<LabelCount>,
    pub open_alerts: Vec<LabelCount>,
    pub rejects: Vec<LabelCount>,
    pub top_customers: Vec<LabelCount>,
}

fn label_counts(conn: &mut PgConnection, sql: &str) -> Result<Vec<LabelCount>, DbError> {
    diesel::sql_query(sql)
        .load(conn)
        .map_err(DbError::query("summarize the tables"))
}

pub fn summary(conn: &mut PgConnection) -> Result<Summary, DbError> {
    let totals: Totals = diesel::sql_query(
        "SELECT (SELECT count(*) FROM readings) AS readings, \
                (SELECT count(*) FROM rejected_readings) AS rejected, \
                (SELECT count(*) FROM anomalies) AS anomalies, \
                (SELECT count(*) FROM alerts WHERE resolved_at IS NULL) AS open_alerts, \
                (SELECT count(DISTINCT customer_id) FROM readings) AS customers, \
                (SELECT max(recorded_at) FROM readings) AS newest, \
                (SELECT max(ingested_at) FROM readings) AS newest_ingested",
    )
    .get_result(conn)
    .map_err(DbError::query("count the tables"))?;
    Ok(Summary {
        totals,
        classes: label_counts(
            conn,
            "SELECT class AS label, count(*) AS n FROM readings GROUP BY 1 ORDER BY 2 DESC",
        )?,
        anomalies: label_counts(
            conn,
            "SELECT kind AS label, count(*) AS n FROM anomalies GROUP BY 1 ORDER BY 2 DESC",
        )?,
        open_alerts: label_counts(
            conn,
            "SELECT kind AS label, count(*) AS n FROM alerts WHERE resolved_at IS NULL \
             GROUP BY 1 ORDER BY 2 DESC",
        )?,
        rejects: label_counts(
            conn,
            "SELECT reason AS label, count(*) AS n FROM rejected_readings GROUP BY 1 \
             ORDER BY 2 DESC",
        )?,
        top_customers: label_counts(
            conn,
            "SELECT customer_id AS label, count(*) AS n FROM anomalies GROUP BY 1 \
             ORDER BY 2 DESC, 1 LIMIT 10",
        )?,
    })
}

#[derive(Debug, QueryableByName)]
struct Dropped {
    #[diesel(sql_type = Text)]
    heartbeat_drop_expired_partitions: String,
}

/// Drops the day partitions of `readings` older than `keep_days` days (retention); returns their
/// names.
pub fn drop_expired_partitions(
    conn: &mut PgConnection,
    keep_days: i32,
) -> Result<Vec<String>, DbError> {
    let dropped: Vec<Dropped> = diesel::sql_query("SELECT heartbeat_drop_expired_partitions($1)")
        .bind::<diesel::sql_types::Integer, _>(keep_days)
        .load(conn)
        .map_err(DbError::query("drop expired partitions"))?;
    Ok(dropped
        .into_iter()
        .map(|d| d.heartbeat_drop_expired_partitions)
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, TimeDelta, Utc};

    #[test]
    fn a_look_back_saturates_instead_of_panicking() {
        let now = Utc::now();
        assert_eq!(
            super::look_back(now, Duration::from_secs(1)),
            now - TimeDelta::seconds(1)
        );
        for span in [Duration::from_millis(9_000_000_000_000_000), Duration::MAX] {
            assert_eq!(super::look_back(now, span), DateTime::<Utc>::MIN_UTC);
        }
    }
}

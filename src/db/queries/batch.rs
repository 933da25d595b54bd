//! The writer's transaction: one batch's readings, anomalies, rejects, alert episodes, detector
//! states and checkpoints, committed together or not at all.

use std::collections::{BTreeMap, HashMap};

// hashbrown's sets: foldhash is several times faster than std's SipHash on these identities,
// and there is one look-up per reading.
use hashbrown::HashSet;

use chrono::{DateTime, Utc};
use diesel::pg::{CopyFormat, PgConnection};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, SmallInt, Text, Timestamptz};
use uuid::Uuid;

use super::claims::check_fence;
use crate::db::copy::{send, BinaryRows};
use crate::db::models::{NewAnomaly, NewReading, NewRejected, StoredAnomaly};
use crate::db::schema::{alert_outbox, anomalies, readings, rejected_readings};
use crate::db::staging::{anomalies_stage, readings_stage, MOVE_STAGED, MOVE_STAGED_ANOMALIES};
use crate::db::DbError;
use crate::domain::classification::AnomalyKind;
use crate::domain::detector::{AlertRow, EpisodeEvent};
use crate::domain::reading::Activity;
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
    /// Activations and resolutions, for the delivery outbox (`alert_events`).
    pub events: &'a [EpisodeEvent],
    pub states: &'a [CustomerSnapshot],
    pub checkpoints: &'a [PartitionCheckpoint],
    /// (partition, epoch) the writes are fenced with: see [`check_fence`].
    pub fence: &'a [(i32, i64)],
}

/// Rows per statement where rows are bound as parameters (rejects, identity look-ups):
/// PostgreSQL binds at most 65,535 parameters per statement and a reject takes 6, so stay well
/// under 10,922 rows.
pub(super) const ROWS_PER_STATEMENT: usize = 4_000;

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
    /// The anomalies inserted, as stored (for the anomalies topic; also in `alert_outbox`).
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
        events,
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
            activity: r.reading.activity.map(Activity::as_str),
            device_id: r.reading.device_id.as_deref(),
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
        events,
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

/// COPYs `data`, rows in COPY's binary format (`db::copy`), into `columns` of `table`.
macro_rules! copy_binary {
    ($conn:expr, $table:expr, $columns:expr, $data:expr) => {
        diesel::copy_from($table)
            .from_raw_data($columns, |out| send(out, $data))
            .with_format(CopyFormat::Binary)
            .execute($conn)
    };
}

/// `const NAME: (table::a, table::b, ...) = (table::a, table::b, ...);`: the columns a COPY
/// writes, in the order its rows' `encode` writes them, named once.
macro_rules! copy_columns {
    ($name:ident: $table:ident($($column:ident),+ $(,)?)) => {
        const $name: ($($table::$column,)+) = ($($table::$column,)+);
    };
}

// [`NewReading::encode`], into `readings` and into its staging table.
copy_columns!(READINGS_COLUMNS: readings(
    event_id, customer_id, recorded_at, heart_rate, class, kafka_partition, kafka_offset,
    activity, device_id,
));
copy_columns!(STAGED_READINGS_COLUMNS: readings_stage(
    event_id, customer_id, recorded_at, heart_rate, class, kafka_partition, kafka_offset,
    activity, device_id,
));
// [`StoredAnomaly::encode`].
copy_columns!(ANOMALIES_COLUMNS: anomalies(
    id, event_id, customer_id, kind, heart_rate, recorded_at, detected_at, details,
));
// [`NewAnomaly::encode`].
copy_columns!(STAGED_ANOMALIES_COLUMNS: anomalies_stage(
    event_id, customer_id, kind, heart_rate, recorded_at, details,
));

/// About the bytes a row takes in COPY's binary format (ids and details vary), for the buffer.
const READING_BYTES: usize = 112;
const ANOMALY_BYTES: usize = 160;

/// `rows` in COPY's binary format, each written by `row`, in a buffer of about `bytes` per row.
fn encode<T>(
    rows: &[T],
    bytes: usize,
    row: impl Fn(&T, &mut BinaryRows) -> serde_json::Result<()>,
) -> Result<Vec<u8>, diesel::result::Error> {
    let mut data = BinaryRows::with_capacity(rows.len() * bytes);
    for r in rows {
        row(r, &mut data).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    }
    Ok(data.finish())
}

/// The readings in COPY's binary format (the same for `readings` and its staging table).
fn encode_readings(rows: &[NewReading<'_>]) -> Result<Vec<u8>, diesel::result::Error> {
    encode(rows, READING_BYTES, |r, data| {
        r.encode(data);
        Ok(())
    })
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
    events: &'a [EpisodeEvent],
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
        events,
        states_in,
        checkpoints,
        fence,
    } = *batch;
    {
        let mut inserted: HashSet<(Uuid, DateTime<Utc>)> = HashSet::with_capacity(rows.len());
        if !rows.is_empty() && path == ReadingsPath::Direct {
            let data = encode_readings(rows).map_err(DbError::query("encode readings"))?;
            copy_binary!(conn, readings::table, READINGS_COLUMNS, &data)
                .map_err(DbError::query("copy readings"))?;
            inserted.extend(rows.iter().map(|r| (r.event_id, r.recorded_at)));
        } else if !rows.is_empty() {
            let data = encode_readings(rows).map_err(DbError::query("encode readings"))?;
            copy_binary!(conn, readings_stage::table, STAGED_READINGS_COLUMNS, &data)
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
            if let Some(k) = AnomalyKind::from_name(&row.kind) {
                *anomalies_by_kind.entry(k).or_insert(0) += 1;
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
        note_events(conn, events)?;
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
    let data = encode(&stored, ANOMALY_BYTES, StoredAnomaly::encode)
        .map_err(DbError::query("encode anomalies"))?;
    copy_binary!(conn, anomalies::table, ANOMALIES_COLUMNS, &data)
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
    let data = encode(new, ANOMALY_BYTES, NewAnomaly::encode)
        .map_err(DbError::query("encode anomalies"))?;
    copy_binary!(
        conn,
        anomalies_stage::table,
        STAGED_ANOMALIES_COLUMNS,
        &data
    )
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
        .bind::<Array<Nullable<Timestamptz>>, _>(
            rows.iter().map(|r| r.activated_at).collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            rows.iter()
                .map(|r| r.suppressed.map(|s| s.as_str()))
                .collect::<Vec<_>>(),
        )
        .execute(conn)
        .map_err(DbError::query("upsert alerts"))?;
    Ok(())
}

/// Writes the alert episodes given as arrays over the stored ones, in key order.
const UPSERT_ALERTS: &str = "INSERT INTO alerts \
     (customer_id, kind, opened_at, last_seen_at, resolved_at, readings, peak_heart_rate, \
     activated_at, suppressed) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], \
     $5::timestamptz[], $6::int[], $7::smallint[], $8::timestamptz[], $9::text[]) \
     AS t (customer_id, kind, opened_at, last_seen_at, resolved_at, readings, peak_heart_rate, \
     activated_at, suppressed) \
     ORDER BY customer_id, kind, opened_at \
     ON CONFLICT (customer_id, kind, opened_at) DO UPDATE SET \
     last_seen_at = excluded.last_seen_at, resolved_at = excluded.resolved_at, \
     readings = excluded.readings, peak_heart_rate = excluded.peak_heart_rate, \
     activated_at = excluded.activated_at, suppressed = excluded.suppressed";

/// Notes the episodes' activations and resolutions in the delivery outbox, in the order given (a
/// customer's events are in observation order, so ids follow it). An event noted already (the
/// same episode and event) is left as it is: a replay delivers nothing new.
fn note_events(conn: &mut PgConnection, events: &[EpisodeEvent]) -> Result<(), DbError> {
    if events.is_empty() {
        return Ok(());
    }
    let rows = || events.iter().map(|e| &e.episode);
    diesel::sql_query(NOTE_EVENTS)
        .bind::<Array<Text>, _>(rows().map(|r| r.customer_id.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows().map(|r| r.kind.as_str()).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(rows().map(|r| r.opened_at).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Timestamptz>>, _>(rows().map(|r| r.activated_at).collect::<Vec<_>>())
        .bind::<Array<Nullable<Timestamptz>>, _>(rows().map(|r| r.resolved_at).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(rows().map(|r| r.last_seen_at).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(rows().map(|r| r.readings).collect::<Vec<_>>())
        .bind::<Array<Nullable<SmallInt>>, _>(rows().map(|r| r.peak_heart_rate).collect::<Vec<_>>())
        .execute(conn)
        .map_err(DbError::query("note alert events"))?;
    Ok(())
}

/// Inserts the events given as arrays, in the order given (`WITH ORDINALITY`), skipping those
/// noted before.
const NOTE_EVENTS: &str = "INSERT INTO alert_events \
     (customer_id, kind, opened_at, event, activated_at, resolved_at, last_seen_at, readings, \
     peak_heart_rate) \
     SELECT customer_id, kind, opened_at, event, activated_at, resolved_at, last_seen_at, \
     readings, peak_heart_rate \
     FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[], \
     $6::timestamptz[], $7::timestamptz[], $8::int[], $9::smallint[]) WITH ORDINALITY \
     AS t (customer_id, kind, opened_at, event, activated_at, resolved_at, last_seen_at, \
     readings, peak_heart_rate, n) \
     ORDER BY n \
     ON CONFLICT (customer_id, kind, opened_at, event) DO NOTHING";

/// States per statement: bounds the statement's buffers (a state's JSON is some 350 bytes, and a
/// checkpoint of a large fleet saves tens of thousands at once).
const STATES_PER_STATEMENT: usize = 4_000;

/// Saves each customer's detector state (the last one given wins).
fn save_states(conn: &mut PgConnection, states: &[CustomerSnapshot]) -> Result<(), DbError> {
    if states.is_empty() {
        return Ok(());
    }
    let mut latest: HashMap<&str, &CustomerSnapshot> = HashMap::new();
    for s in states {
        latest.insert(s.customer_id.as_str(), s);
    }
    let mut rows: Vec<&CustomerSnapshot> = latest.into_values().collect();
    // In key order across the statements too, as the writers' other upserts.
    rows.sort_unstable_by(|a, b| a.customer_id.cmp(&b.customer_id));
    for chunk in rows.chunks(STATES_PER_STATEMENT) {
        diesel::sql_query(UPSERT_STATES)
            .bind::<Array<Text>, _>(
                chunk
                    .iter()
                    .map(|s| s.customer_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Integer>, _>(chunk.iter().map(|s| s.partition).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(chunk.iter().map(|s| s.state.as_str()).collect::<Vec<_>>())
            .execute(conn)
            .map_err(DbError::query("save detector state"))?;
    }
    Ok(())
}

/// Writes the detector states given as arrays (the states as JSON text) over the saved ones, in
/// key order.
const UPSERT_STATES: &str = "INSERT INTO detector_state (customer_id, kafka_partition, state) \
     SELECT * FROM unnest($1::text[], $2::int[], $3::text[]::jsonb[]) \
     AS t (customer_id, kafka_partition, state) ORDER BY customer_id \
     ON CONFLICT (customer_id) DO UPDATE SET kafka_partition = excluded.kafka_partition, \
     state = excluded.state, updated_at = now()";

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

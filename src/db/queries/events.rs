//! The delivery outbox (SPEC section 8): alert episode events not yet acknowledged by every
//! receiver, what each receiver has acknowledged, the open activated episodes that are sent to
//! the Alertmanagers again, and the lock that makes one processor at a time the one that delivers.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{
    Array, BigInt, Bool, Double, Integer, Nullable, SmallInt, Text, Timestamptz,
};

use crate::db::DbError;

/// Key of the advisory lock held by the processor that delivers ("hbdeliv").
const DELIVERY_LOCK_KEY: i64 = 0x0068_6264_656c_6976;

/// An activated episode as delivery tells of it: the columns an outbox event copies from the
/// episode, and those of an open episode in `alerts` that is sent again.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct EpisodeColumns {
    #[diesel(sql_type = Text)]
    pub customer_id: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Timestamptz)]
    pub opened_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub activated_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub last_seen_at: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    pub readings: i32,
    #[diesel(sql_type = Nullable<SmallInt>)]
    pub peak_heart_rate: Option<i16>,
}

/// An episode event as the outbox holds it, with what the receivers have of it.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct PendingEvent {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub event: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub resolved_at: Option<DateTime<Utc>>,
    #[diesel(embed)]
    pub episode: EpisodeColumns,
    /// The receivers that acknowledged this event.
    #[diesel(sql_type = Array<Text>)]
    pub delivered: Vec<String>,
    /// For a resolved event: the receivers that acknowledged the episode's activation less than
    /// `min_firing` ago, where the resolution waits.
    #[diesel(sql_type = Array<Text>)]
    pub held_at: Vec<String>,
}

/// Takes the delivery lock on this session if no other session holds it; true when held (by
/// this session, now or before). A session-level lock: it goes with the connection, so a
/// processor that dies or loses its connection hands delivery to another.
pub fn try_lead_delivery(conn: &mut PgConnection) -> Result<bool, DbError> {
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = Bool)]
        taken: bool,
    }
    let taken: Taken = sql_query(format!(
        "SELECT pg_try_advisory_lock({DELIVERY_LOCK_KEY}) AS taken"
    ))
    .get_result(conn)
    .map_err(DbError::query("take the delivery lock"))?;
    Ok(taken.taken)
}

/// The oldest `limit` events not yet done, in id order (per episode, activated before resolved).
pub fn pending_events(
    conn: &mut PgConnection,
    limit: i64,
    min_firing: std::time::Duration,
) -> Result<Vec<PendingEvent>, DbError> {
    sql_query(
        "SELECT e.id, e.customer_id, e.kind, e.opened_at, e.event, e.activated_at, \
         e.resolved_at, e.last_seen_at, e.readings, e.peak_heart_rate, \
         ARRAY(SELECT d.receiver FROM alert_deliveries d WHERE d.event_id = e.id) AS delivered, \
         ARRAY(SELECT d.receiver FROM alert_events a \
               JOIN alert_deliveries d ON d.event_id = a.id \
               WHERE e.event = 'resolved' AND a.customer_id = e.customer_id \
                 AND a.kind = e.kind AND a.opened_at = e.opened_at AND a.event = 'activated' \
                 AND d.delivered_at > now() - make_interval(secs => $2)) AS held_at \
         FROM alert_events e \
         WHERE e.done_at IS NULL ORDER BY e.id LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .bind::<Double, _>(min_firing.as_secs_f64())
    .load(conn)
    .map_err(DbError::query("read the alert events to deliver"))
}

/// Notes that `receiver` acknowledged the events `ids`.
pub fn note_delivered(conn: &mut PgConnection, receiver: &str, ids: &[i64]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    sql_query(
        "INSERT INTO alert_deliveries (event_id, receiver) SELECT unnest($1::bigint[]), $2 \
         ON CONFLICT DO NOTHING",
    )
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Text, _>(receiver)
    .execute(conn)
    .map(|_| ())
    .map_err(DbError::query("note alert deliveries"))
}

/// Marks the events `ids` done: every receiver has them.
pub fn mark_done(conn: &mut PgConnection, ids: &[i64]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    sql_query("UPDATE alert_events SET done_at = now() WHERE id = ANY($1) AND done_at IS NULL")
        .bind::<Array<BigInt>, _>(ids)
        .execute(conn)
        .map(|_| ())
        .map_err(DbError::query("mark alert events delivered"))
}

/// How many events are not yet done.
pub fn count_pending_events(conn: &mut PgConnection) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    sql_query("SELECT count(*) AS n FROM alert_events WHERE done_at IS NULL")
        .get_result::<Count>(conn)
        .map(|c| c.n)
        .map_err(DbError::query("count the alert events to deliver"))
}

/// Every open activated episode (through the partial index `alerts_open_activated`).
pub fn open_activated_episodes(conn: &mut PgConnection) -> Result<Vec<EpisodeColumns>, DbError> {
    sql_query(
        "SELECT customer_id, kind, opened_at, activated_at, last_seen_at, readings, \
         peak_heart_rate FROM alerts WHERE activated_at IS NOT NULL AND resolved_at IS NULL \
         ORDER BY customer_id, kind, opened_at",
    )
    .load(conn)
    .map_err(DbError::query("read the open activated episodes"))
}

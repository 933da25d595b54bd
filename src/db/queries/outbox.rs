//! The alert outbox: anomalies stored but not yet acknowledged on the anomalies topic.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt};

use crate::db::models::StoredAnomaly;
use crate::db::DbError;

/// An anomaly noted in `alert_outbox`, with the first id of its outbox row (which names the row:
/// the row of a batch is found by it, see [`alerts_published`]).
#[derive(Debug, QueryableByName)]
pub struct PendingAlert {
    #[diesel(sql_type = BigInt)]
    pub batch: i64,
    #[diesel(embed)]
    pub anomaly: StoredAnomaly,
}

/// Anomalies stored but not yet acknowledged on the anomalies topic, oldest first: those of the
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

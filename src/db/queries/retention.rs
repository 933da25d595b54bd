//! Retention of the tables besides `readings` (SPEC section 5, "Retention"): their expired rows
//! deleted in bounded rounds by `heartbeat_expire_rows` (migration 000028, which says what
//! expires in each table and what stays for an open episode or a pending delivery).

use std::collections::BTreeMap;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use crate::db::DbError;

/// Rows deleted per table and round: each round is one short transaction under the partition
/// lock, so a writer that needs a new day partition waits at most one round.
pub const ROWS_PER_ROUND: i32 = 10_000;

/// At most this many rounds per upkeep run (100 million rows per table); the next run goes on.
const MAX_ROUNDS: usize = 10_000;

#[derive(Debug, QueryableByName)]
struct Expired {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = BigInt)]
    deleted: i64,
}

/// Deletes the rows of the other tables that `keep_days` expires, `rows_per_round` per table and
/// round, round after round until a round deletes nothing; returns the rows deleted per table
/// (only tables that lost some). `keep_days` of 0 or less deletes nothing.
pub fn expire_rows(
    conn: &mut PgConnection,
    keep_days: i32,
    rows_per_round: i32,
) -> Result<BTreeMap<String, i64>, DbError> {
    let mut total = BTreeMap::new();
    for _ in 0..MAX_ROUNDS {
        let round: Vec<Expired> =
            diesel::sql_query("SELECT table_name, deleted FROM heartbeat_expire_rows($1, $2)")
                .bind::<Integer, _>(keep_days)
                .bind::<Integer, _>(rows_per_round)
                .load(conn)
                .map_err(DbError::query("delete expired rows"))?;
        let mut any = false;
        for e in round.into_iter().filter(|e| e.deleted > 0) {
            any = true;
            *total.entry(e.table_name).or_insert(0) += e.deleted;
        }
        if !any {
            break;
        }
    }
    Ok(total)
}

//! The per-customer alert rules (`alert_rules`) as `heartbeat-pipeline rules` reads and writes
//! them: all of them, one, and the changes, each in one transaction.
//!
//! A change that depends on the stored row (`set`, `mute`) locks it first: a missing row is
//! inserted empty and the row is then read `FOR UPDATE`, so two changes of one customer at once
//! merge one after the other instead of one losing the other's values. When the caller's
//! decision refuses the change, the transaction rolls back and nothing stays written, the empty
//! row included. Every write sets `updated_at` to the database's `now()` and `updated_by` to the
//! caller's name.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;

use crate::db::models::AlertRule;
use crate::db::schema::alert_rules::dsl;
use crate::db::DbError;
use crate::domain::detector::CustomerRules;

/// The thresholds and note a `set` writes: all four thresholds (`None` = the fleet band) and
/// the note when one was given (`Some(None)` removes it).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleValues {
    pub critical_low_below: Option<i32>,
    pub low_below: Option<i32>,
    pub high_above: Option<i32>,
    pub critical_high_above: Option<i32>,
    pub note: Option<Option<String>>,
}

/// Every customer's rules, by customer id.
pub fn list_rules(conn: &mut PgConnection) -> Result<Vec<AlertRule>, DbError> {
    dsl::alert_rules
        .select(AlertRule::as_select())
        .order(dsl::customer_id)
        .load(conn)
        .map_err(DbError::query("read alert_rules"))
}

/// Every customer's rules as the detector applies them, by customer id: its thresholds and the
/// end of its mute.
pub fn effective_rules(conn: &mut PgConnection) -> Result<HashMap<String, CustomerRules>, DbError> {
    let rows = list_rules(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let rules = CustomerRules {
                thresholds: r.thresholds(),
                muted_until: r.muted_until,
            };
            (r.customer_id, rules)
        })
        .collect())
}

/// One customer's rules, if it has any.
pub fn find_rule(conn: &mut PgConnection, customer_id: &str) -> Result<Option<AlertRule>, DbError> {
    dsl::alert_rules
        .find(customer_id)
        .select(AlertRule::as_select())
        .first(conn)
        .optional()
        .map_err(DbError::query("read alert_rules"))
}

/// The login the database knows this session by (`session_user`), for `updated_by`.
pub fn session_user(conn: &mut PgConnection) -> Result<String, DbError> {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
        "session_user::text",
    ))
    .get_result(conn)
    .map_err(DbError::query("ask the database for the session user"))
}

/// Runs `change` on the customer's locked row (`None`: it had no rules), in one transaction that
/// `change` rolls back by failing. Returns what `change` returned.
pub fn change_rule<T, E>(
    conn: &mut PgConnection,
    customer_id: &str,
    change: impl FnOnce(&mut PgConnection, Option<AlertRule>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DbError> + From<diesel::result::Error>,
{
    conn.transaction(|conn| {
        let inserted = diesel::insert_into(dsl::alert_rules)
            .values(dsl::customer_id.eq(customer_id))
            .on_conflict_do_nothing()
            .execute(conn)
            .map_err(DbError::query("lock the customer's alert_rules row"))?;
        let row = dsl::alert_rules
            .find(customer_id)
            .select(AlertRule::as_select())
            .for_update()
            .first(conn)
            .map_err(DbError::query("lock the customer's alert_rules row"))?;
        change(conn, (inserted == 0).then_some(row))
    })
}

/// Writes a `set`'s thresholds (and note) on a row [`change_rule`] locked.
pub fn write_values(
    conn: &mut PgConnection,
    customer_id: &str,
    values: &RuleValues,
    updated_by: &str,
) -> Result<AlertRule, DbError> {
    let target = dsl::alert_rules.find(customer_id);
    let thresholds = (
        dsl::critical_low_below.eq(values.critical_low_below),
        dsl::low_below.eq(values.low_below),
        dsl::high_above.eq(values.high_above),
        dsl::critical_high_above.eq(values.critical_high_above),
        dsl::updated_at.eq(diesel::dsl::now),
        dsl::updated_by.eq(updated_by),
    );
    let query = match &values.note {
        Some(note) => diesel::update(target)
            .set((thresholds, dsl::note.eq(note.as_deref())))
            .returning(AlertRule::as_returning())
            .get_result(conn),
        None => diesel::update(target)
            .set(thresholds)
            .returning(AlertRule::as_returning())
            .get_result(conn),
    };
    query.map_err(DbError::query("write alert_rules"))
}

/// Sets the mute of a row [`change_rule`] locked.
pub fn write_mute(
    conn: &mut PgConnection,
    customer_id: &str,
    muted_until: DateTime<Utc>,
    updated_by: &str,
) -> Result<AlertRule, DbError> {
    diesel::update(dsl::alert_rules.find(customer_id))
        .set((
            dsl::muted_until.eq(Some(muted_until)),
            dsl::updated_at.eq(diesel::dsl::now),
            dsl::updated_by.eq(updated_by),
        ))
        .returning(AlertRule::as_returning())
        .get_result(conn)
        .map_err(DbError::query("write alert_rules"))
}

/// Ends a customer's mute; `None` when it had none (or no rules at all).
pub fn unmute(
    conn: &mut PgConnection,
    customer_id: &str,
    updated_by: &str,
) -> Result<Option<AlertRule>, DbError> {
    diesel::update(
        dsl::alert_rules
            .find(customer_id)
            .filter(dsl::muted_until.is_not_null()),
    )
    .set((
        dsl::muted_until.eq(None::<DateTime<Utc>>),
        dsl::updated_at.eq(diesel::dsl::now),
        dsl::updated_by.eq(updated_by),
    ))
    .returning(AlertRule::as_returning())
    .get_result(conn)
    .optional()
    .map_err(DbError::query("write alert_rules"))
}

/// Removes a customer's rules (thresholds, mute and note); the row removed, if there was one.
pub fn clear_rule(
    conn: &mut PgConnection,
    customer_id: &str,
) -> Result<Option<AlertRule>, DbError> {
    diesel::delete(dsl::alert_rules.find(customer_id))
        .returning(AlertRule::as_returning())
        .get_result(conn)
        .optional()
        .map_err(DbError::query("delete from alert_rules"))
}

//! The detector's memory budget (`detector.max_resident_customers`): a processor that holds more
//! customers than its budget saves and evicts the least recently seen, loads them again at their
//! next reading, and writes exactly what a processor without a budget writes.

use std::time::Duration;

use crate::alert_state::{assert_equals_clean, clean_run};
use crate::helpers::*;

/// 200 customers round robin through a budget of 16: every batch of 500 readings evicts most of
/// the customers it touched, and the next batch loads them again, some from the batch still in
/// flight that saves them and some from PostgreSQL. The anomalies, alert episodes and saved
/// states equal those of an unbounded run, the process never held more than the budget, and
/// `heartbeat_alerts_open` still counts the open alerts of the customers out of memory.
#[test]
fn a_detector_over_its_memory_budget_evicts_reloads_and_writes_what_an_unbounded_one_does() {
    let clean_db = TestDb::new();
    let base = Setup::new(&clean_db)
        .with("HEARTBEAT__WRITER__BATCH_SIZE", "500")
        // The readings of `generate --rate 0` span seconds: a tachycardia activates at once.
        .with("HEARTBEAT__ALERTS__SUSTAIN_MS__TACHYCARDIA", "0");
    let records = 20_000;
    assert!(base.generate(records as u64, 2026).success());
    let db = TestDb::new();
    for d in [&clean_db, &db] {
        with_open_alerts(&base, d);
    }
    let clean = clean_run(&base, &clean_db, records);
    assert!(
        !clean.anomalies.is_empty() && !clean.alerts.is_empty(),
        "the workload raises anomalies and alerts to compare"
    );

    let setup = Setup {
        db_url: db.url.clone(),
        group: unique("hb_budget"),
        ..base.clone()
    }
    .with("HEARTBEAT__DETECTOR__MAX_RESIDENT_CUSTOMERS", "16");
    let mut daemon = setup.spawn_run();
    assert_equals_clean(&db.url, records, &clean, "a budget of 16 customers");
    let evictions = daemon.metric_sum("heartbeat_detector_evictions_total");
    let resident = daemon.metric_sum("heartbeat_detector_customers");
    assert!(
        evictions >= 1_000.0,
        "customers were evicted and loaded again many times: {evictions}"
    );
    assert!(resident <= 16.0, "resident customers: {resident}");
    // Most customers are out of memory, yet their open alerts are counted (SPEC section 6).
    let open = db.count(
        "SELECT count(*) AS n FROM alerts WHERE resolved_at IS NULL AND activated_at IS NOT NULL",
    );
    assert!(
        open > 16,
        "the workload leaves more open alerts than the budget: {open}"
    );
    wait_for(
        "heartbeat_alerts_open to count every open alert",
        Duration::from_secs(30),
        || (daemon.metric_sum("heartbeat_alerts_open") == open as f64).then_some(()),
    );
    assert_eq!(daemon.stop(), 0);
}

/// Migrates `db` and gives 40 of the customers a high band below any heart rate, so each ends the
/// run with an activated tachycardia episode still open (most of them evicted by then).
fn with_open_alerts(setup: &Setup, db: &TestDb) {
    Setup {
        db_url: db.url.clone(),
        ..setup.clone()
    }
    .migrate();
    db.execute(
        "INSERT INTO alert_rules (customer_id, critical_low_below, low_below, high_above, \
         critical_high_above, updated_by) \
         SELECT 'CUST-' || lpad(i::text, 5, '0'), 10, 15, 20, 300, 'budget test' \
         FROM generate_series(0, 39) i",
    );
}

//! The detector's memory budget (`detector.max_resident_customers`): a processor that holds more
//! customers than its budget saves and evicts the least recently seen, loads them again at their
//! next reading, and writes exactly what a processor without a budget writes.

use crate::alert_state::{assert_equals_clean, clean_run};
use crate::helpers::*;

/// 200 customers round robin through a budget of 16: every batch of 500 readings evicts most of
/// the customers it touched, and the next batch loads them again, some from the batch still in
/// flight that saves them and some from PostgreSQL. The anomalies, alert episodes and saved
/// states equal those of an unbounded run, and the process never held more than the budget.
#[test]
fn a_detector_over_its_memory_budget_evicts_reloads_and_writes_what_an_unbounded_one_does() {
    let clean_db = TestDb::new();
    let base = Setup::new(&clean_db).with("HEARTBEAT__WRITER__BATCH_SIZE", "500");
    let records = 20_000;
    assert!(base.generate(records as u64, 2026).success());
    let clean = clean_run(&base, &clean_db, records);
    assert!(
        !clean.anomalies.is_empty() && !clean.alerts.is_empty(),
        "the workload raises anomalies and alerts to compare"
    );

    let db = TestDb::new();
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
    assert_eq!(daemon.stop(), 0);
}

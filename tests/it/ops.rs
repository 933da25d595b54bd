//! What an operator's tools see of a pipeline that has run: every Grafana query over the
//! database it filled, and the metric series SPEC section 6 names, over HTTP.

use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

#[test]
fn dashboards_and_metrics_over_a_database_the_pipeline_filled() {
    let db = TestDb::new();
    // Faults too, so the reject panels have rows.
    let setup = Setup::new(&db).with("HEARTBEAT__GENERATOR__FAULT_RATE", "0.05");
    let total = 3_000;
    assert!(setup.generate(total, 91).success());
    let mut daemon = setup.spawn_run();
    wait_for(
        "every record stored or rejected",
        Duration::from_secs(120),
        || {
            let n = db
                .try_count(
                    "SELECT (SELECT count(*) FROM readings) + \
                 (SELECT count(*) FROM rejected_readings) AS n",
                )
                .unwrap_or(0);
            (n == total as i64).then_some(())
        },
    );
    assert!(db.count("SELECT count(*) AS n FROM rejected_readings") > 0);
    assert!(db.count("SELECT count(*) AS n FROM anomalies") > 0);

    let series = [
        "heartbeat_records_consumed_total ",
        "heartbeat_readings_stored_total ",
        "heartbeat_rejects_total{reason=",
        "heartbeat_duplicates_total ",
        "heartbeat_anomalies_total{kind=",
        "heartbeat_alerts_activated_total{kind=",
        "heartbeat_alerts_suppressed_total{kind=",
        "heartbeat_alerts_open{kind=",
        "heartbeat_actor_restarts_total{actor=",
        "heartbeat_mailbox_depth{actor=",
        "heartbeat_db_batch_duration_seconds_bucket{",
        "heartbeat_db_batch_duration_seconds_count ",
        "heartbeat_consumer_lag{",
        "heartbeat_build_info{version=",
    ];
    let missing = |metrics: &str| -> Vec<&str> {
        series
            .iter()
            .copied()
            .filter(|s| !metrics.contains(s))
            .collect()
    };
    // The lag is measured every 2 s: give it a round.
    wait_for("every series SPEC names", Duration::from_secs(30), || {
        let (status, metrics) = daemon.get("/metrics");
        (status == 200 && missing(&metrics).is_empty()).then_some(())
    });
    assert_eq!(daemon.stop(), 0);

    let checker = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/check-dashboard-sql.py"
    );
    let out = Command::new("python3")
        .args([checker, "--dsn", &db.url])
        .output()
        .expect("run python3 deploy/grafana/check-dashboard-sql.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(" passed, 0 failed") && !last.starts_with("0 passed"),
        "{stdout}"
    );
}

/// SPEC section 6: `heartbeat_consumer_lag` has a series for every assigned partition from the
/// moment it is assigned, on an idle topic too (it used to wait for the next round of the
/// progress watch, up to two seconds later).
#[test]
fn the_consumer_lag_has_a_series_for_each_partition_as_soon_as_it_is_assigned() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    assert!(setup.generate(30, 5).success());
    let mut daemon = setup.spawn_run();
    wait_for(
        "the partitions to be assigned",
        Duration::from_secs(60),
        || daemon.holds_partitions().then_some(()),
    );
    let lag = |body: &str| {
        body.lines()
            .filter(|l| l.starts_with("heartbeat_consumer_lag{") && l.contains(&*setup.topic))
            .count()
    };
    wait_for(
        "a lag series for every partition",
        Duration::from_millis(500),
        || (lag(&daemon.get("/metrics").1) == PARTITIONS as usize).then_some(()),
    );
    assert_eq!(daemon.stop(), 0);
}

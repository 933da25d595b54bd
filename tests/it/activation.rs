//! Alert episodes that activate (SPEC section 5), through the real binary: readings with chosen
//! times and activities sent by an independent client, per-customer rules set with
//! `heartbeat-pipeline rules`, and the `alerts` rows read back. The readings are synthetic
//! minutes apart, so no test waits real minutes for a sustain.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::helpers::*;

const DEADLINE: Duration = Duration::from_secs(120);

/// One reading to send: customer, seconds after the base time, heart rate, activity.
type Sent = (&'static str, i64, i16, Option<&'static str>);

/// A whole hour a day ago: old enough that every reading is in the past, recent enough for any
/// age bound.
fn base() -> DateTime<Utc> {
    (Utc::now() - TimeDelta::days(1))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap()
}

/// `count` readings of `customer` every `step` seconds from `from`, heart rates cycling through
/// `hrs`.
fn series(
    customer: &'static str,
    (from, step, count): (i64, i64, i64),
    hrs: &[i16],
    activity: Option<&'static str>,
) -> Vec<Sent> {
    (0..count)
        .map(|i| {
            (
                customer,
                from + step * i,
                hrs[i as usize % hrs.len()],
                activity,
            )
        })
        .collect()
}

/// Sends `readings` in order, keyed by customer, and waits until every one is committed.
fn send(setup: &Setup, base: DateTime<Utc>, readings: &[Sent], committed_before: i64) {
    let p = producer();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (customer, secs, hr, activity) in readings {
        let at =
            (base + TimeDelta::seconds(*secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let member = activity
            .map(|a| format!(r#","activity":"{a}""#))
            .unwrap_or_default();
        let value = format!(
            r#"{{"customer_id":"{customer}","timestamp":"{at}","heart_rate":{hr}{member}}}"#
        );
        p.send_result(
            FutureRecord::to(&setup.topic)
                .key(*customer)
                .payload(&value)
                .timestamp(now_ms),
        )
        .map_err(|(e, _)| e)
        .expect("queue reading");
    }
    p.flush(Timeout::After(Duration::from_secs(30))).unwrap();
    let total = committed_before + readings.len() as i64;
    wait_for("every record committed", DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == total).then_some(())
    });
}

#[derive(Debug, QueryableByName)]
struct Alert {
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Timestamptz)]
    opened_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    resolved_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    activated_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    suppressed: Option<String>,
}

/// The episodes of `customer` and `kind`, oldest first.
fn alerts(db: &TestDb, customer: &str, kind: &str) -> Vec<Alert> {
    diesel::sql_query(
        "SELECT customer_id, kind, opened_at, resolved_at, activated_at, suppressed \
         FROM alerts WHERE customer_id = $1 AND kind = $2 ORDER BY opened_at",
    )
    .bind::<Text, _>(customer)
    .bind::<Text, _>(kind)
    .load(&mut db.conn())
    .expect("read alerts")
}

fn rules(setup: &Setup, args: &[&str]) {
    let mut all = vec!["rules"];
    all.extend_from_slice(args);
    let out = setup.command(&all).output().expect("run rules");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const TEN_MINUTES: TimeDelta = TimeDelta::minutes(10);

#[test]
fn episodes_activate_by_activity_sustain_rules_and_mute_and_a_replay_changes_no_column() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    setup.migrate();
    rules(&setup, &["set", "ATHLETE", "--low-below", "45"]);
    rules(&setup, &["mute", "MUTED", "--for", "2d"]);
    let base = base();
    // A mute that ends twelve minutes into an episode, written by SQL as SPEC allows.
    let mute_end = (base + TimeDelta::minutes(12)).to_rfc3339();
    db.execute(&format!(
        "INSERT INTO alert_rules (customer_id, muted_until) VALUES ('MUTEEND', '{mute_end}')"
    ));
    let mut daemon = setup.spawn_run_started();

    let sleep_hrs = [50, 53, 56, 58, 55, 52];
    let mut readings = Vec::new();
    // Three hours asleep at 50-58 a minute apart; the same without activity.
    readings.extend(series("SLEEPER", (0, 60, 180), &sleep_hrs, Some("sleep")));
    readings.extend(series("UNKNOWN", (0, 60, 180), &sleep_hrs, None));
    // An hour of exercise at 150.
    readings.extend(series("RUNNER", (0, 60, 60), &[150], Some("exercise")));
    // Fifteen minutes at rest at 125, then normal.
    readings.extend(series("RESTER", (0, 60, 16), &[125], Some("rest")));
    readings.extend(series("RESTER", (960, 60, 3), &[80], Some("rest")));
    // A three-minute burst at rest, then normal.
    readings.extend(series("BURST", (0, 10, 18), &[125], Some("rest")));
    readings.extend(series("BURST", (180, 10, 3), &[80], Some("rest")));
    // An athlete (low_below 45): twenty minutes at 48, then fifteen at 42.
    readings.extend(series("ATHLETE", (0, 60, 20), &[48], None));
    readings.extend(series("ATHLETE", (1200, 60, 16), &[42], None));
    // A muted customer: fifteen minutes at 125, then normal.
    readings.extend(series("MUTED", (0, 60, 16), &[125], None));
    readings.extend(series("MUTED", (960, 60, 3), &[80], None));
    // Twenty minutes at 125, muted for the first twelve.
    readings.extend(series("MUTEEND", (0, 60, 20), &[125], None));
    send(&setup, base, &readings, 0);
    assert_eq!(daemon.stop(), 0);

    assert!(
        alerts(&db, "SLEEPER", "bradycardia").is_empty(),
        "sleep counts not"
    );
    let unknown = alerts(&db, "UNKNOWN", "bradycardia");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    let activated = unknown[0].activated_at.expect("activated");
    assert!(
        activated >= unknown[0].opened_at + TEN_MINUTES,
        "{unknown:?}"
    );
    // Its findings are the fleet bands', whatever the activity.
    assert_eq!(
        db.count("SELECT count(*) AS n FROM anomalies WHERE customer_id = 'SLEEPER' AND kind = 'bradycardia'"),
        180
    );

    assert!(alerts(&db, "RUNNER", "tachycardia").is_empty());

    let rester = alerts(&db, "RESTER", "tachycardia");
    assert_eq!(rester.len(), 1, "{rester:?}");
    let a = &rester[0];
    assert_eq!(a.activated_at, Some(a.opened_at + TEN_MINUTES), "{a:?}");
    assert_eq!(
        (a.resolved_at.is_some(), a.suppressed.as_deref()),
        (true, None)
    );

    let burst = alerts(&db, "BURST", "tachycardia");
    assert_eq!(burst.len(), 1, "{burst:?}");
    assert_eq!(burst[0].activated_at, None);
    assert_eq!(burst[0].suppressed.as_deref(), Some("short"), "{burst:?}");

    let athlete = alerts(&db, "ATHLETE", "bradycardia");
    assert_eq!(athlete.len(), 1, "nothing at 48, one at 42: {athlete:?}");
    assert_eq!(athlete[0].opened_at, base + TimeDelta::minutes(20));
    assert_eq!(
        athlete[0].activated_at,
        Some(athlete[0].opened_at + TEN_MINUTES)
    );

    let muted = alerts(&db, "MUTED", "tachycardia");
    assert_eq!(muted.len(), 1, "{muted:?}");
    assert_eq!(
        (muted[0].activated_at, muted[0].suppressed.as_deref()),
        (None, Some("muted"))
    );
    assert!(muted
        .iter()
        .all(|a| a.customer_id == "MUTED" && a.kind == "tachycardia"));

    // A replay in a new group changes no column of alerts.
    let fingerprint = |db: &TestDb| {
        db.count(
            "SELECT coalesce(sum(hashtext(a::text)), 0)::bigint AS n FROM (SELECT * FROM alerts) a",
        )
    };
    let (before, rows) = (
        fingerprint(&db),
        db.count("SELECT count(*) AS n FROM alerts"),
    );
    replay_in_a_new_group(&setup, readings.len() as i64, DEADLINE);
    assert_eq!(db.count("SELECT count(*) AS n FROM alerts"), rows);
    assert_eq!(fingerprint(&db), before, "no column of alerts changed");
}

#[test]
fn a_rule_changed_on_a_running_processor_applies_within_the_refresh() {
    let db = TestDb::new();
    let setup = Setup::new(&db).with("HEARTBEAT__ALERTS__RULES_REFRESH_MS", "500");
    let mut daemon = setup.spawn_run_started();
    let base = base();
    // Fifteen minutes at 48: bradycardia by the fleet bands, activated.
    let first = series("CHANGER", (0, 60, 16), &[48], None);
    send(&setup, base, &first, 0);
    let open = alerts(&db, "CHANGER", "bradycardia");
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0].activated_at.is_some() && open[0].resolved_at.is_none());

    // The customer is an athlete: 48 is normal for it from now on, with no restart.
    rules(&setup, &["set", "CHANGER", "--low-below", "45"]);
    std::thread::sleep(Duration::from_millis(1500));
    let later = series("CHANGER", (960, 60, 3), &[48], None);
    send(&setup, base, &later, first.len() as i64);
    assert_eq!(daemon.stop(), 0);
    let episodes = alerts(&db, "CHANGER", "bradycardia");
    assert_eq!(episodes.len(), 1, "{episodes:?}");
    assert_eq!(
        episodes[0].resolved_at,
        Some(base + TimeDelta::seconds(960 + 120)),
        "three readings that no longer count resolve it"
    );
}

//! Every numeric key at random values within its range (its ends favoured), the others at their
//! defaults: the configuration loads, and everything the program builds from settings builds
//! without a panic, including the arithmetic other modules do with the values, written out here
//! as each call site does it (named beside it). A value just past a range is refused, the key
//! named.
//!
//! Here, above everything, because it builds from every part of the program; the configuration
//! itself imports nothing but the domain. No broker or database is contacted. Seeds of past
//! failures: `tests/proptest-regressions/config_properties.txt`.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Days, TimeDelta, Utc};
use proptest::prelude::*;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::BaseProducer;

use heartbeat_pipeline::actors::anomaly_detector::AnomalyDetector;
use heartbeat_pipeline::actors::kafka_subscriber::Batching;
use heartbeat_pipeline::actors::supervisor::{RestartHistory, RestartPolicy};
use heartbeat_pipeline::actors::{Downstream, ExitGuard, Stage};
use heartbeat_pipeline::config::{
    env_name, integer_keys, number_keys, ConfigError, NumberRange, Settings,
    LIBRDKAFKA_MAX_POLL_INTERVAL_MS,
};
use heartbeat_pipeline::domain::detector::{observe, silence, CustomerState, DetectorConfig};
use heartbeat_pipeline::domain::reading::Reading;
use heartbeat_pipeline::domain::simulator::Simulator;
use heartbeat_pipeline::domain::validation::{validate, ValidationRules};
use heartbeat_pipeline::{db, health, kafka, metrics, offsets, progress, telemetry};

/// A value of `range` from a random number: either end a quarter of the time each, else
/// anywhere in it.
fn pick(range: &RangeInclusive<i64>, raw: u64) -> i64 {
    let (lo, hi) = (i128::from(*range.start()), i128::from(*range.end()));
    let value = match raw % 4 {
        0 => lo,
        1 => hi,
        _ => lo + i128::from(raw / 4) % (hi - lo + 1),
    };
    i64::try_from(value).unwrap()
}

/// A value of `range` from a random number, ends favoured likewise.
fn pick_number(range: NumberRange, raw: u64) -> f64 {
    let unit = (raw >> 11) as f64 / (1u64 << 53) as f64;
    match (range, raw % 4) {
        (NumberRange::Fraction, 0) => 0.0,
        (NumberRange::Fraction, 1) => 1.0,
        (NumberRange::Fraction, _) => unit,
        (NumberRange::PositiveUpTo(max), 0) => max,
        (NumberRange::PositiveUpTo(_), 1) => f64::MIN_POSITIVE,
        (NumberRange::PositiveUpTo(max), _) => (unit * max).max(f64::MIN_POSITIVE),
    }
}

/// The environment (and a file, for the escape hatch) that sets every numeric key to a value
/// picked from `raws`, with the keys that the configuration compares put in order.
fn configuration(raws: &[u64], number_raws: &[u64]) -> (String, Vec<(String, String)>) {
    let mut ints: BTreeMap<String, i64> = integer_keys()
        .into_iter()
        .zip(raws.iter().cycle())
        .map(|((key, range), raw)| (key, pick(&range, *raw)))
        .collect();
    let mut in_order = |keys: &[&str]| {
        let mut values: Vec<i64> = keys.iter().map(|k| ints[*k]).collect();
        values.sort_unstable();
        for (k, v) in keys.iter().zip(values) {
            ints.insert((*k).to_owned(), v);
        }
    };
    in_order(&["validation.min_heart_rate", "validation.max_heart_rate"]);
    in_order(&["supervisor.backoff_min_ms", "supervisor.backoff_max_ms"]);
    in_order(&[
        "detector.bands.critical_low_below",
        "detector.bands.low_below",
        "detector.bands.high_above",
        "detector.bands.critical_high_above",
    ]);
    // A session longer than librdkafka's default poll interval needs the interval raised.
    let session = ints["kafka.session_timeout_ms"];
    let file = if session > LIBRDKAFKA_MAX_POLL_INTERVAL_MS {
        format!("[kafka.librdkafka]\n\"max.poll.interval.ms\" = \"{session}\"\n")
    } else {
        String::new()
    };
    let mut env: Vec<(String, String)> = ints
        .into_iter()
        .map(|(key, value)| (env_name(&key), value.to_string()))
        .collect();
    for ((key, range), raw) in number_keys().into_iter().zip(number_raws.iter().cycle()) {
        env.push((env_name(&key), format!("{:?}", pick_number(range, *raw))));
    }
    (file, env)
}

fn load(file: &str, env: Vec<(String, String)>) -> Result<Settings, ConfigError> {
    let path = std::env::temp_dir().join(format!("hb-props-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, file).unwrap();
    let result = Settings::load_from(Some(&path), env);
    let _ = std::fs::remove_file(&path);
    result
}

/// Everything the program builds from `s`, and the arithmetic it does with the values. With
/// `clients`, also the Kafka clients, pools and the detector actor (0.1 s and a few threads
/// each: for the fixed cases, not for every case of the property).
fn build_everything(s: &Settings, clients: bool) {
    let now = Utc::now();
    if clients {
        build_clients(s);
    }
    build_values(s, now);
}

fn build_clients(s: &Settings) {
    // What `main` checks, then the clients `run` and `generate` create (no broker is
    // contacted without bootstrap servers). Side by side: librdkafka takes 0.1 s to let go
    // of a consumer or an admin client.
    let problems = kafka::check_properties(&s.kafka);
    assert!(problems.is_empty(), "{problems:?}");
    let quiet = |mut c: rdkafka::ClientConfig| {
        c.set("bootstrap.servers", "");
        c
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            quiet(kafka::consumer_config(&s.kafka))
                .create::<BaseConsumer>()
                .expect("the processor's consumer")
        });
        scope.spawn(|| {
            quiet(kafka::admin_config(&s.kafka))
                .create::<AdminClient<DefaultClientContext>>()
                .expect("the admin client")
        });
        quiet(kafka::producer_config(&s.kafka))
            .create::<BaseProducer>()
            .expect("the publishers' producer");
    });

    // pipeline.rs: the writers' pool, at least a connection per writer.
    let writers = s.writer.parallelism.max(1);
    let _pool = db::pool(
        &s.database,
        s.database
            .pool_size
            .max(u32::try_from(writers).unwrap_or(u32::MAX)),
    );

    // The detector actor.
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let _detector = AnomalyDetector::new(
        s,
        s.writer.batch_size,
        db::pool(&s.database, 2),
        s.database.clone(),
        Arc::new(progress::PartitionProgress::default()),
        Arc::new(offsets::OffsetLedger::new(telemetry::discard())),
        Downstream::new(Stage::DbWriter, Vec::new()),
        Arc::new(metrics::Metrics::new()),
        Arc::new(health::Health::new()),
        &telemetry::discard(),
        ExitGuard::new(Stage::AnomalyDetector.as_str(), 0, tx),
    );
}

fn build_values(s: &Settings, now: DateTime<Utc>) {
    let cfg = DetectorConfig::from(s);
    let (lo, hi) = (
        i32::from(s.validation.min_heart_rate),
        i32::from(s.validation.max_heart_rate),
    );
    let rates: Vec<i16> = [lo, hi, (lo + hi) / 2, lo, hi]
        .iter()
        .map(|bpm| i16::try_from(*bpm).unwrap())
        .collect();
    let window = TimeDelta::from_std(s.detector.spike_window_ms).unwrap();
    let mut state = CustomerState::default();
    let readings = cfg.warmup_readings.min(40) + 10;
    let mut at = now;
    for i in 0..readings {
        // Now a second on, now exactly a spike window, now back in time.
        at = match i % 3 {
            0 => at + TimeDelta::seconds(1),
            1 => at + window,
            _ => at - TimeDelta::milliseconds(1),
        };
        let reading = Reading {
            event_id: uuid::Uuid::new_v4(),
            customer_id: "CUST-1".to_owned(),
            recorded_at: at,
            heart_rate: rates[i as usize % rates.len()],
            activity: None,
            device_id: None,
        };
        observe(&cfg, &mut state, &reading, None);
    }
    silence(&cfg, &mut state, "CUST-1", None);
    serde_json::to_value(&state).expect("a checkpoint of the state");
    // anomaly_detector.rs acquire -> queries.rs load_partition_states: since =
    // now - forget_after, which must stay a date.
    let forget = TimeDelta::from_std(s.detector.forget_after_ms).expect("a chrono span");
    assert!(Utc::now().checked_sub_signed(forget).is_some());
    // anomaly_detector.rs checkpoint_period, at its largest spread, and the next checkpoint.
    let every = s.detector.checkpoint_interval_ms;
    let period = every - every.mul_f64(1023.0 / 2048.0);
    let _ = Instant::now() + period;
    // periodic.rs checkpoints: the deadline, CHECKPOINT_STRETCH (6) periods on.
    let _ = Instant::now() + period * 6;
    // evict.rs evict: the low water of the budget.
    let _ = (s.detector.max_resident_customers * 15 / 16).max(1);

    // The validator.
    let rules = ValidationRules::from(&s.validation);
    for text in [
        r#"{"customer_id":"C","timestamp":"9999-12-31T23:59:59Z","heart_rate":72}"#,
        r#"{"customer_id":"C","timestamp":"1970-01-01T00:00:00Z","heart_rate":32767}"#,
    ] {
        let _ = validate(Some(text.as_bytes()), Some(now), &rules);
        let _ = validate(Some(text.as_bytes()), None, &rules);
    }

    // The generator: its plan, and the simulator with at most a thousand customers (a
    // larger fleet only allocates more), the time between a customer's readings kept.
    let mut plan = heartbeat_pipeline::commands::run::generator_plan(s, Some(20));
    let interval = plan.sim.reading_interval_s();
    let fleet = plan.sim.customers.min(1_000);
    plan.sim.rate *= fleet as f64 / plan.sim.customers as f64;
    plan.sim.customers = fleet;
    assert!((plan.sim.reading_interval_s() - interval).abs() <= interval * 1e-9 + 1e-9);
    let mut sim = Simulator::new(plan.sim.clone());
    for _ in 0..20 {
        sim.next_record(now);
    }
    // generator.rs produce: what is owed after an hour.
    let owed = (3_600.0 * plan.rate as f64) as u64;
    let _ = owed.min(plan.rate.max(1));

    // The intake's batches and their deadline (pipeline.rs, kafka_subscriber.rs intake).
    let batching = Batching {
        max_records: s.writer.batch_size,
        max_wait: s.writer.flush_interval_ms,
    };
    let _ = tokio::time::Instant::now() + batching.max_wait;
    // The drain: the supervisor's timeout and the ledger's deadline (offsets.rs).
    let _ = Instant::now() + s.shutdown.timeout_ms;
    // The supervisor: every restart the policy allows, and one more.
    let policy = RestartPolicy::from_settings(&s.supervisor);
    let mut history = RestartHistory::new(policy);
    let start = Instant::now();
    for i in 0..=policy.max_restarts.min(20) as u64 {
        if let Some(wait) = history.record(start + Duration::from_millis(i)) {
            let _ = wait.as_millis() as u64;
        }
    }
    let _ = policy.window.as_secs();

    // run.rs storage upkeep: PostgreSQL computes today - retention_days, which must stay in
    // its dates (4713 BC on).
    let keep = i32::try_from(s.storage.retention_days).expect("retention days fit an i32");
    let oldest = now
        .date_naive()
        .checked_sub_days(Days::new(u64::try_from(keep).unwrap()))
        .expect("a date");
    assert!(oldest.year() > -4713, "{oldest}");

    // telemetry.rs: the rotating log file.
    let _ = (s.log.max_size_bytes(), s.log.max_files);
}

#[test]
fn every_key_at_its_minimum_or_at_its_maximum_loads_and_builds() {
    for raw in [0, 1] {
        let (file, env) = configuration(&[raw], &[raw]);
        let s = load(&file, env).unwrap_or_else(|e| panic!("{e}"));
        build_everything(&s, true);
    }
}

proptest! {
    #[test]
    fn any_configuration_within_the_ranges_loads_and_builds(
        raws in prop::collection::vec(any::<u64>(), integer_keys().len()),
        number_raws in prop::collection::vec(any::<u64>(), number_keys().len()),
    ) {
        let (file, env) = configuration(&raws, &number_raws);
        let s = load(&file, env.clone());
        prop_assert!(s.is_ok(), "refused: {:?}\nfrom {env:?}\n{file}", s.err());
        let s = s.unwrap();
        // What `main` checks of librdkafka's properties (no client is created for these).
        let problems = kafka::check_properties(&s.kafka);
        prop_assert!(problems.is_empty(), "{problems:?}");
        build_everything(&s, false);
    }
}

proptest! {
    #[test]
    fn an_integer_just_past_its_range_is_refused_with_the_key_named(
        index in any::<prop::sample::Index>(),
        above in any::<bool>(),
        distance in prop_oneof![Just(1u64), 1u64..1_000, any::<u64>()],
    ) {
        let keys = integer_keys();
        let (key, range) = index.get(&keys);
        let past = if above {
            range.end().checked_add_unsigned(distance)
        } else {
            range.start().checked_sub_unsigned(distance)
        };
        // Nothing lies past the ends of i64 (generator.seed reaches one).
        let Some(value) = past else { return Ok(()) };
        let err = Settings::load_from(None, vec![(env_name(key), value.to_string())]);
        let problems = err.expect_err("refused").problems;
        let named = format!("{key}: {value} is out of range");
        prop_assert!(problems.iter().any(|p| p.starts_with(&named)), "{problems:?}");
    }
}

#[test]
fn a_number_just_past_its_range_is_refused_with_the_key_named() {
    for (key, range) in number_keys() {
        let past = match range {
            NumberRange::Fraction => vec![-f64::MIN_POSITIVE, -0.5, 1.0 + f64::EPSILON, 2.0],
            NumberRange::PositiveUpTo(max) => {
                vec![0.0, -1.0, max * (1.0 + f64::EPSILON), 1e300]
            }
        };
        for value in past {
            let env = vec![(env_name(&key), format!("{value:?}"))];
            let problems = Settings::load_from(None, env).expect_err(&key).problems;
            let named = format!("{key}: {value} must be");
            assert!(
                problems.iter().any(|p| p.starts_with(&named)),
                "{problems:?}"
            );
        }
    }
}

/// What librdkafka says when it builds a consumer from `s` (no broker is contacted).
fn consumer_builds(s: &Settings) -> Result<(), String> {
    kafka::consumer_config(&s.kafka)
        .set("bootstrap.servers", "")
        .create::<BaseConsumer>()
        .map(drop)
        .map_err(|e| e.to_string())
}

#[test]
fn librdkafka_agrees_with_the_bound_of_the_session_timeout() {
    // The configuration refuses a session above the poll interval (its unit tests); librdkafka
    // builds a consumer at the bound and none past it, and one whose interval the escape hatch
    // raised.
    let env = |ms: &str| vec![(env_name("kafka.session_timeout_ms"), ms.to_owned())];
    let at_the_bound = load("", env("300000")).unwrap();
    assert_eq!(consumer_builds(&at_the_bound), Ok(()));
    let mut past = at_the_bound.clone();
    past.kafka.session_timeout_ms = Duration::from_millis(300_001);
    assert!(consumer_builds(&past).is_err(), "librdkafka agrees");
    let raised = load(
        "[kafka.librdkafka]\n\"max.poll.interval.ms\" = \"900000\"\n",
        env("600000"),
    )
    .unwrap();
    assert_eq!(consumer_builds(&raised), Ok(()));
}

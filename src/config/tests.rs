//! The loading and the checks, one behaviour per test.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, File, FileFormat, Value, ValueKind};

use super::load::{join, Kind, FREE_FORM_TABLES, OPTIONAL_KEYS};
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn load_toml(text: &str) -> Result<Settings, ConfigError> {
    load_with(text, vec![])
}

fn load_with(text: &str, env: Vec<(&str, &str)>) -> Result<Settings, ConfigError> {
    let mut file = tempfile_in_target();
    file.1.write_all(text.as_bytes()).unwrap();
    let env = env.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned()));
    let result = Settings::load_from(Some(&file.0), env);
    let _ = std::fs::remove_file(&file.0);
    result
}

fn tempfile_in_target() -> (PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("hb-config-{}.toml", uuid::Uuid::new_v4()));
    let file = std::fs::File::create(&path).unwrap();
    (path, file)
}

#[test]
fn defaults_load_and_match_the_spec() {
    let s = Settings::load_from(None, Vec::<(String, String)>::new()).unwrap();
    assert_eq!(s.kafka.brokers, "127.0.0.1:9092");
    assert_eq!(s.kafka.group_id, "heartbeat-processor");
    assert_eq!(s.kafka.session_timeout_ms, ms(10000));
    assert_eq!(s.kafka.topics.readings, "heartbeats");
    assert_eq!(s.kafka.topics.dead_letter, "heartbeats-dlq");
    assert_eq!(s.kafka.topics.alerts, "heartbeat-alerts");
    assert_eq!(s.kafka.topics.anomalies, "heartbeat-anomalies");
    assert_eq!(s.kafka.topics.partitions, 6);
    assert_eq!(
        s.database.url.expose(),
        "postgres://postgres:postgres@127.0.0.1:5432/heartbeat"
    );
    assert_eq!(s.database.pool_size, 4);
    assert!(s.generator.enabled && s.processor.enabled);
    assert!(s.generator.activity);
    assert_eq!(
        (s.generator.customers, s.generator.rate, s.generator.seed),
        (1000, 100, None)
    );
    assert_eq!(s.http.bind, "127.0.0.1:9898");
    assert_eq!(s.validation.max_message_bytes, 65536);
    assert_eq!(s.validation.max_future_skew_ms, ms(300000));
    assert_eq!(s.validation.max_age_days, 30);
    assert_eq!(
        (s.validation.min_heart_rate, s.validation.max_heart_rate),
        (20, 250)
    );
    let b = s.detector.bands;
    assert_eq!(
        (
            b.critical_low_below,
            b.low_below,
            b.high_above,
            b.critical_high_above
        ),
        (40, 60, 100, 180)
    );
    assert_eq!(
        (s.detector.spike_bpm, s.detector.spike_window_ms),
        (30, ms(60000))
    );
    assert_eq!(s.detector.warmup_readings, 30);
    assert_eq!(
        (s.detector.z_threshold, s.detector.min_stddev_bpm),
        (4.0, 3.0)
    );
    assert_eq!(s.detector.silence_after_ms, ms(30000));
    assert_eq!(s.detector.forget_after_ms, ms(86400000));
    assert_eq!(s.detector.resolve_after_readings, 3);
    assert_eq!(s.detector.max_resident_customers, 200_000);
    assert_eq!(s.storage.retention_days, 30);
    assert_eq!(s.shutdown.timeout_ms, ms(10000));
    assert_eq!(s.alerts.rules_refresh_ms, ms(5000));
    let am = &s.alerts.alertmanager;
    assert_eq!(am.urls, "");
    assert!(am.targets().is_empty());
    assert_eq!(
        (am.resend_interval_ms, am.timeout_ms, am.min_firing_ms),
        (ms(60000), ms(5000), ms(30000))
    );
    assert_eq!(
        (s.log.level, s.log.format, s.log.file.as_str()),
        (LogLevel::Info, LogFormat::Term, "")
    );
}

#[test]
fn a_file_layers_over_the_defaults() {
    let s = load_toml("[kafka]\nbrokers = \"b1:9092,b2:9093\"\n[generator]\nseed = 7\n").unwrap();
    assert_eq!(s.kafka.brokers, "b1:9092,b2:9093");
    assert_eq!(s.kafka.group_id, "heartbeat-processor");
    assert_eq!(s.generator.seed, Some(7));
}

#[test]
fn environment_overrides_the_file_with_double_underscores() {
    let s = load_with(
        "[kafka.topics]\nreadings = \"from-file\"\n",
        vec![
            ("HEARTBEAT__KAFKA__TOPICS__READINGS", "from-env"),
            ("HEARTBEAT__KAFKA__SESSION_TIMEOUT_MS", "6000"),
            ("HEARTBEAT__GENERATOR__ENABLED", "false"),
            ("HEARTBEAT__DETECTOR__Z_THRESHOLD", "3.5"),
            ("HEARTBEAT__KAFKA__GROUP_ID", "1234"),
        ],
    )
    .unwrap();
    assert_eq!(s.kafka.topics.readings, "from-env");
    assert_eq!(s.kafka.session_timeout_ms, ms(6000));
    assert!(!s.generator.enabled);
    assert_eq!(s.detector.z_threshold, 3.5);
    assert_eq!(s.kafka.group_id, "1234");
}

#[test]
fn generator_activity_is_a_boolean_from_the_file_or_the_environment() {
    assert!(
        !load_toml("[generator]\nactivity = false\n")
            .unwrap()
            .generator
            .activity
    );
    let s = load_with("", vec![("HEARTBEAT__GENERATOR__ACTIVITY", "false")]).unwrap();
    assert!(!s.generator.activity);
    let err = load_with("", vec![("HEARTBEAT__GENERATOR__ACTIVITY", "sometimes")]).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{:?}", err.problems);
    assert!(
        err.problems[0].contains("generator.activity")
            && err.problems[0].contains("HEARTBEAT__GENERATOR__ACTIVITY"),
        "{:?}",
        err.problems
    );
    let err = load_toml("[generator]\nactivity = 1\n").unwrap_err();
    assert!(
        err.problems[0].starts_with("generator.activity: expected a boolean"),
        "{:?}",
        err.problems
    );
}

#[test]
fn a_typo_in_a_key_is_named() {
    let err = load_toml("[kafka]\nbrokrs = \"x:1\"\n").unwrap_err();
    assert_eq!(err.problems, vec!["kafka.brokrs: unknown key".to_owned()]);
}

#[test]
fn a_wrong_type_is_named_with_what_was_expected() {
    let err = load_toml("[kafka]\nsession_timeout_ms = \"soon\"\n").unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].starts_with("kafka.session_timeout_ms: expected an integer"));
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let err = load_with("", vec![("HEARTBEAT__DATABASE__POOL_SIZE", "many")]).unwrap_err();
    assert!(
        err.problems[0].contains("database.pool_size"),
        "{:?}",
        err.problems
    );
    assert!(err.problems[0].contains("HEARTBEAT__DATABASE__POOL_SIZE"));
    let err = load_with("", vec![("HEARTBEAT__NOPE__X", "1")]).unwrap_err();
    assert_eq!(err.problems, vec!["nope: unknown key".to_owned()]);
}

#[test]
fn every_problem_is_listed_at_once() {
    let err = load_toml(
        "unknown = 1\n[kafka]\nbrokers = 5\n[log]\nformat = \"xml\"\n[writer]\nbatch_size = 0\n",
    )
    .unwrap_err();
    // Structural problems are found first; the meaning is checked once the shape is right.
    assert_eq!(err.problems.len(), 2, "{:?}", err.problems);
    let err = load_toml("[log]\nformat = \"xml\"\n[writer]\nbatch_size = 0\n").unwrap_err();
    assert_eq!(err.problems.len(), 2, "{:?}", err.problems);
}

#[test]
fn a_missing_file_is_an_error() {
    let err = Settings::load_from(
        Some(Path::new("/nonexistent/heartbeat.toml")),
        Vec::<(String, String)>::new(),
    )
    .unwrap_err();
    assert!(err.problems[0].contains("/nonexistent/heartbeat.toml"));
}

#[test]
fn secrets_are_redacted_when_printed() {
    let s = load_toml("[database]\nurl = \"postgres://app:hunter2@db:5432/hb\"\n").unwrap();
    let printed = format!("{:?} {} {}", s, s.database.url, s.to_redacted_toml());
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("postgres://app:<redacted>@db:5432/hb"));
    assert_eq!(s.database.url.expose(), "postgres://app:hunter2@db:5432/hb");
}

#[test]
fn secret_librdkafka_properties_are_printed_redacted() {
    let s = load_toml(
        "[kafka.librdkafka]\n\"sasl.password\" = \"hunter2\"\n\"ssl.key.password\" = \"pw2\"\n\"linger.ms\" = \"5\"\n",
    )
    .unwrap();
    let printed = s.to_redacted_toml();
    assert!(
        !printed.contains("hunter2") && !printed.contains("pw2"),
        "{printed}"
    );
    assert!(
        printed.contains("\"sasl.password\" = \"<redacted>\""),
        "{printed}"
    );
    assert!(printed.contains("\"linger.ms\" = \"5\""), "{printed}");
    assert_eq!(
        s.kafka.librdkafka["sasl.password"], "hunter2",
        "still used as given"
    );
}

#[test]
fn librdkafka_escape_hatch_takes_free_form_keys() {
    let s = load_toml("[kafka.librdkafka]\n\"fetch.max.bytes\" = \"1048576\"\n\"linger.ms\" = 5\n")
        .unwrap();
    assert_eq!(s.kafka.librdkafka["fetch.max.bytes"], "1048576");
    assert_eq!(s.kafka.librdkafka["linger.ms"], "5");
}

fn secret_file(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content.as_bytes()).unwrap();
    f
}

#[test]
fn secrets_are_read_from_files_without_the_trailing_line_break() {
    let sasl = secret_file("sasl-Pw1\n");
    let key = secret_file("key-Pw2\r\n");
    let db = secret_file("db-Pw3");
    let url = secret_file("postgres://u:db-Pw4@db:5432/hb\n");
    let s = load_with(
        "",
        vec![
            ("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
            ("HEARTBEAT__KAFKA__SASL_USERNAME", "alice"),
            (
                "HEARTBEAT__KAFKA__SASL_PASSWORD_FILE",
                sasl.path().to_str().unwrap(),
            ),
            (
                "HEARTBEAT__KAFKA__SSL_CERTIFICATE_FILE",
                key.path().to_str().unwrap(),
            ),
            (
                "HEARTBEAT__KAFKA__SSL_KEY_FILE",
                key.path().to_str().unwrap(),
            ),
            (
                "HEARTBEAT__KAFKA__SSL_KEY_PASSWORD_FILE",
                key.path().to_str().unwrap(),
            ),
            (
                "HEARTBEAT__DATABASE__PASSWORD_FILE",
                db.path().to_str().unwrap(),
            ),
            (
                "HEARTBEAT__DATABASE__URL_FILE",
                url.path().to_str().unwrap(),
            ),
        ],
    )
    .unwrap();
    assert_eq!(s.kafka.sasl_password.expose(), "sasl-Pw1");
    assert_eq!(s.kafka.ssl_key_password.expose(), "key-Pw2");
    assert_eq!(s.database.password.expose(), "db-Pw3");
    assert_eq!(s.database.url.expose(), "postgres://u:db-Pw4@db:5432/hb");
    let printed = format!("{s:?} {}", s.to_redacted_toml());
    for secret in ["sasl-Pw1", "key-Pw2", "db-Pw3", "db-Pw4"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
}

#[test]
fn a_secret_and_its_file_together_or_an_unreadable_file_are_named_without_the_content() {
    let f = secret_file("from-file-Pw");
    let err = load_with(
        "[database]\nurl = \"postgres://u:url-Pw@db/hb\"\n",
        vec![
            ("HEARTBEAT__DATABASE__URL_FILE", f.path().to_str().unwrap()),
            ("HEARTBEAT__DATABASE__PASSWORD", "env-Pw"),
            (
                "HEARTBEAT__DATABASE__PASSWORD_FILE",
                f.path().to_str().unwrap(),
            ),
            (
                "HEARTBEAT__KAFKA__SASL_PASSWORD_FILE",
                "/nonexistent/kafka-pw",
            ),
        ],
    )
    .unwrap_err();
    let all = err.problems.join("\n");
    assert!(all.contains("database.url: set both"), "{all}");
    assert!(all.contains("database.password: set both"), "{all}");
    assert!(
        all.contains("kafka.sasl_password_file: cannot read /nonexistent/kafka-pw"),
        "{all}"
    );
    for secret in ["from-file-Pw", "url-Pw", "env-Pw"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
}

#[test]
fn security_settings_are_checked_together() {
    let err = load_with(
        "",
        vec![
            ("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
            ("HEARTBEAT__KAFKA__SASL_MECHANISM", "GSSAPI"),
            ("HEARTBEAT__KAFKA__SSL_CA_FILE", "/nonexistent/ca.pem"),
            ("HEARTBEAT__KAFKA__SSL_KEY_FILE", "/nonexistent/key.pem"),
            ("HEARTBEAT__DATABASE__SSLMODE", "verify"),
        ],
    )
    .unwrap_err();
    let all = err.problems.join("\n");
    for needle in [
        "kafka.sasl_mechanism: \"GSSAPI\"",
        "kafka.sasl_username: must be set",
        "kafka.sasl_password: must be set",
        "kafka.ssl_ca_file: cannot read /nonexistent/ca.pem",
        "kafka.ssl_certificate_file: the client certificate",
        "database.sslmode: \"verify\"",
    ] {
        assert!(all.contains(needle), "{needle} missing from {all}");
    }
    let err = load_with(
        "[database]\nurl = \"postgres://u@db/hb?sslmode=require\"\n",
        vec![
            ("HEARTBEAT__DATABASE__SSLMODE", "verify-full"),
            ("HEARTBEAT__KAFKA__SASL_USERNAME", "alice"),
        ],
    )
    .unwrap_err();
    let all = err.problems.join("\n");
    assert!(
        all.contains("database.sslmode: also given in database.url"),
        "{all}"
    );
    assert!(
        all.contains("kafka.sasl_username: SASL credentials are set"),
        "{all}"
    );
}

#[test]
fn the_defaults_keep_plaintext_and_loopback() {
    let s = Settings::load_from(None, Vec::<(String, String)>::new()).unwrap();
    assert_eq!(s.kafka.security_protocol, SecurityProtocol::Plaintext);
    assert!(!s.kafka.uses_tls() && !s.kafka.uses_sasl());
    assert_eq!(s.database.sslmode, SslMode::Unset);
    assert!(s.http.bind.starts_with("127.0.0.1:"));
}

#[test]
fn scrubbing_hides_secrets_as_given_and_percent_encoded() {
    let text = "failed: postgres://u:p%40ss@h/db and p@ss and hunter2";
    let out = scrub_secrets(text, &["p@ss", "hunter2", ""]);
    assert_eq!(
        out,
        "failed: postgres://u:<redacted>@h/db and <redacted> and <redacted>"
    );
}

/// The dotted paths of every leaf of `kind` in the schema: `config/default.toml`, plus the
/// optional keys.
fn schema_keys(kind: Kind) -> BTreeSet<String> {
    fn walk(value: &Value, path: &str, kind: Kind, out: &mut BTreeSet<String>) {
        match &value.kind {
            ValueKind::Table(table) if !FREE_FORM_TABLES.contains(&path) => {
                for (key, child) in table {
                    walk(child, &join(path, key), kind, out);
                }
            }
            other if Kind::of(other) == Some(kind) => {
                out.insert(path.to_owned());
            }
            _ => {}
        }
    }
    let schema = Config::builder()
        .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
        .build()
        .unwrap();
    let mut out = BTreeSet::new();
    walk(&schema.cache, "", kind, &mut out);
    for (key, k) in OPTIONAL_KEYS {
        if *k == kind {
            out.insert((*key).to_owned());
        }
    }
    out
}

#[test]
fn every_numeric_key_of_the_schema_has_a_range_and_its_default_is_in_it() {
    let integers: BTreeSet<String> = integer_keys().iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(integers, schema_keys(Kind::Integer));
    let numbers: BTreeSet<String> = number_keys().iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(numbers, schema_keys(Kind::Float));
    // The defaults load, so each is in its range.
    assert!(Settings::load_from(None, Vec::<(String, String)>::new()).is_ok());
}

#[test]
fn max_age_days_is_zero_for_no_bound_up_to_a_century_and_refused_beyond_or_below() {
    let s = load_with("[validation]\nmax_age_days = 0\n", vec![]).unwrap();
    assert_eq!(s.validation.max_age_days, 0);
    let s = load_with("", vec![("HEARTBEAT__VALIDATION__MAX_AGE_DAYS", "36600")]).unwrap();
    assert_eq!(s.validation.max_age_days, 36_600);
    for bad in ["-1", "36601"] {
        let err = load_with(&format!("[validation]\nmax_age_days = {bad}\n"), vec![]).unwrap_err();
        assert_eq!(
            err.problems,
            vec![format!(
                "validation.max_age_days: {bad} is out of range 0..=36600"
            )]
        );
    }
}

#[test]
fn the_memory_budget_is_at_least_one_customer_and_loads_from_the_environment() {
    let err = load_with("[detector]\nmax_resident_customers = 0\n", vec![]).unwrap_err();
    assert_eq!(
        err.problems,
        vec!["detector.max_resident_customers: 0 is out of range 1..=100000000"]
    );
    let s = load_with(
        "",
        vec![("HEARTBEAT__DETECTOR__MAX_RESIDENT_CUSTOMERS", "16")],
    )
    .unwrap();
    assert_eq!(s.detector.max_resident_customers, 16);
}

#[test]
fn a_forget_after_ms_beyond_a_year_is_refused_and_named() {
    let err = load_with("[detector]\nforget_after_ms = 9000000000000000\n", vec![]).unwrap_err();
    assert_eq!(
        err.problems,
        vec!["detector.forget_after_ms: 9000000000000000 is out of range 1..=31536000000"]
    );
    let s = load_with("[detector]\nforget_after_ms = 31536000000\n", vec![]).unwrap();
    assert_eq!(s.detector.forget_after_ms, ms(365 * 24 * 3_600_000));
}

#[test]
fn sustain_keys_have_the_spec_defaults_load_from_the_environment_and_are_bounded_by_a_day() {
    let s = load_with("", vec![("HEARTBEAT__ALERTS__SUSTAIN_MS__SPIKE", "5000")]).unwrap();
    let t = &s.alerts.sustain_ms;
    let got = [
        t.critical_low,
        t.critical_high,
        t.bradycardia,
        t.tachycardia,
        t.deviation,
    ];
    assert_eq!(got, [30_000, 30_000, 600_000, 600_000, 120_000].map(ms));
    assert_eq!((t.spike, t.silent), (ms(5000), ms(0)));
    let err = load_with(
        "[alerts.sustain_ms]
tachycardia = 86400001
",
        vec![],
    )
    .unwrap_err();
    assert_eq!(
        err.problems,
        vec!["alerts.sustain_ms.tachycardia: 86400001 is out of range 0..=86400000"]
    );
}

#[test]
fn alertmanager_urls_are_split_checked_and_printed_without_their_passwords() {
    let s = load_with(
        "",
        vec![(
            "HEARTBEAT__ALERTS__ALERTMANAGER__URLS",
            " http://am-0:9093/ , https://ops:s3cret@am.example.org/alertmanager,http://[::1]:9093",
        )],
    )
    .unwrap();
    let targets = s.alerts.alertmanager.targets();
    let urls: Vec<&str> = targets.iter().map(|t| t.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://am-0:9093",
            "https://am.example.org/alertmanager",
            "http://[::1]:9093"
        ]
    );
    assert_eq!(
        targets[1].basic_auth,
        Some(("ops".to_owned(), "s3cret".to_owned()))
    );
    let printed = toml::to_string(&s).unwrap();
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(printed.contains("https://ops:<redacted>@am.example.org/alertmanager"));

    for (urls, why) in [
        ("am:9093", "must start with http:// or https://"),
        ("ftp://am:9093", "must start with http:// or https://"),
        (
            "http://am:port",
            "has a port that is not a number from 0 to 65535",
        ),
        ("http://:9093", "has no host"),
        ("http://am:9093/?x=1", "must not have a query or fragment"),
    ] {
        let err = load_with("", vec![("HEARTBEAT__ALERTS__ALERTMANAGER__URLS", urls)]).unwrap_err();
        assert_eq!(
            err.problems,
            vec![format!("alerts.alertmanager.urls: {urls:?} {why}")],
            "{urls}"
        );
    }
    let err = load_with(
        "[alerts.alertmanager]\nurls = \"http://a:1,http://u:pw@a:1\"\nurls_typo = 1\n",
        vec![],
    )
    .unwrap_err();
    assert!(
        err.problems.iter().any(|p| p.contains("urls_typo")),
        "{:?}",
        err.problems
    );
    let err = load_with(
        "",
        vec![("HEARTBEAT__ALERTS__ALERTMANAGER__RESEND_INTERVAL_MS", "999")],
    )
    .unwrap_err();
    assert_eq!(
        err.problems,
        vec!["alerts.alertmanager.resend_interval_ms: 999 is out of range 1000..=3600000"]
    );
}

#[test]
fn an_output_topic_that_is_the_readings_topic_is_refused() {
    let err = load_with(
        "",
        vec![("HEARTBEAT__KAFKA__TOPICS__ANOMALIES", "heartbeats")],
    )
    .unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "kafka.topics.anomalies: \"heartbeats\" is also kafka.topics.readings; an output \
             topic must differ from the readings topic"
        ]
    );
}

#[test]
fn a_session_timeout_above_the_poll_interval_is_refused_and_named() {
    // librdkafka refuses to build such a consumer: `run` restarted the processor group
    // until it gave up (exit 3) on a configuration check-config had accepted. That librdkafka
    // agrees is tested above the configuration (tests/it/config_properties.rs).
    let env = |ms: &'static str| vec![("HEARTBEAT__KAFKA__SESSION_TIMEOUT_MS", ms)];
    let err = load_with("", env("300001")).unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "kafka.session_timeout_ms: 300001 is above librdkafka's max.poll.interval.ms \
             300000, and librdkafka builds no consumer then; lower it, or raise \
             kafka.librdkafka.\"max.poll.interval.ms\""
        ]
    );
    assert!(load_with("", env("300000")).is_ok());

    // The escape hatch can raise the interval, or set the session itself.
    let raised = load_with(
        "[kafka.librdkafka]\n\"max.poll.interval.ms\" = \"900000\"\n",
        env("600000"),
    );
    assert!(raised.is_ok(), "{raised:?}");
    let err = load_with(
        "[kafka.librdkafka]\n\"max.poll.interval.ms\" = \"6000\"\n",
        vec![],
    )
    .unwrap_err();
    assert!(
        err.problems[0].starts_with(
            "kafka.session_timeout_ms: 10000 is above librdkafka's max.poll.interval.ms 6000"
        ),
        "{:?}",
        err.problems
    );
    let err = load_with(
        "[kafka.librdkafka]\n\"session.timeout.ms\" = \"400000\"\n",
        vec![],
    )
    .unwrap_err();
    assert!(
        err.problems[0].starts_with("kafka.librdkafka.\"session.timeout.ms\": 400000 is above"),
        "{:?}",
        err.problems
    );
}

#[test]
fn bands_outside_the_range_of_heart_rates_are_refused_and_named() {
    let err = load_toml(
        "[detector.bands]\ncritical_low_below = -1\ncritical_high_above = 9223372036854775807\n",
    )
    .unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "detector.bands.critical_low_below: -1 is out of range 0..=32767",
            "detector.bands.critical_high_above: 9223372036854775807 is out of range 0..=32767",
        ]
    );
    let s = load_toml("[detector.bands]\ncritical_low_below = 0\ncritical_high_above = 32767\n");
    assert!(s.is_ok(), "{s:?}");
}

#[test]
fn an_unknown_choice_is_named_with_the_allowed_values() {
    let err = load_with(
        "[log]\nlevel = \"loud\"\nformat = \"xml\"\n",
        vec![("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", "tls")],
    )
    .unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "kafka.security_protocol: \"tls\" must be one of plaintext, ssl, sasl_plaintext, sasl_ssl",
            "log.level: \"loud\" must be one of trace, debug, info, warning, error, critical",
            "log.format: \"xml\" must be term or json",
        ]
    );
    let s = load_toml("[log]\nlevel = \"warn\"\n[database]\nsslmode = \"verify-full\"\n").unwrap();
    assert_eq!(s.log.level, LogLevel::Warning, "warn is warning");
    assert_eq!(s.database.sslmode, SslMode::VerifyFull);
}

#[test]
fn durations_are_read_and_printed_in_milliseconds() {
    let s = load_with("", vec![("HEARTBEAT__WRITER__FLUSH_INTERVAL_MS", "250")]).unwrap();
    assert_eq!(s.writer.flush_interval_ms, ms(250));
    let printed = s.to_redacted_toml();
    assert!(printed.contains("flush_interval_ms = 250\n"), "{printed}");
    assert!(printed.contains("level = \"info\"\n"), "{printed}");
    assert!(
        printed.contains("security_protocol = \"plaintext\"\n"),
        "{printed}"
    );
    assert!(printed.contains("sslmode = \"\"\n"), "{printed}");
    assert_eq!(s.log.max_size_bytes(), 100 * 1024 * 1024);
}

#[test]
fn a_refused_value_is_not_judged_against_the_keys_it_goes_with() {
    // The backoffs are out of order, but the minimum is refused for its own range first: one
    // problem, naming it, not a second one about a value that was not given.
    let err = load_with(
        "",
        vec![
            ("HEARTBEAT__SUPERVISOR__BACKOFF_MIN_MS", "-1"),
            ("HEARTBEAT__SUPERVISOR__BACKOFF_MAX_MS", "5"),
            ("HEARTBEAT__VALIDATION__MIN_HEART_RATE", "300"),
            ("HEARTBEAT__VALIDATION__MAX_HEART_RATE", "200"),
        ],
    )
    .unwrap_err();
    assert_eq!(
        err.problems,
        vec![
            "supervisor.backoff_min_ms: -1 is out of range 0..=3600000",
            "validation.min_heart_rate: 300 is above validation.max_heart_rate 200",
        ]
    );
}

#[test]
fn env_name_spells_the_variable() {
    assert_eq!(
        env_name("kafka.topics.readings"),
        "HEARTBEAT__KAFKA__TOPICS__READINGS"
    );
}

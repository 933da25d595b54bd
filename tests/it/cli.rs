//! The command line as a user meets it: exit codes and messages for bad configuration.

use std::io::Write;
use std::process::{Command, Output};

use crate::helpers::BIN;

fn check_config(file: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("check-config").env_remove("HEARTBEAT_CONFIG");
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTBEAT__") {
            cmd.env_remove(k);
        }
    }
    if let Some(f) = file {
        cmd.args(["--config", f]);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run check-config")
}

fn config_file(text: &str) -> tempfile::TempPath {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.into_temp_path()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_typo_in_a_key_exits_2_and_names_the_key() {
    let f = config_file("[kafka]\nbrokrs = \"localhost:9092\"\n");
    let out = check_config(f.to_str(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kafka.brokrs: unknown key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_librdkafka_property_librdkafka_does_not_know_exits_2_and_names_it() {
    let f = config_file("[kafka.librdkafka]\n\"fetch.wait.max.mss\" = \"50\"\n");
    let out = check_config(f.to_str(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kafka.librdkafka") && stderr(&out).contains("fetch.wait.max.mss"),
        "{}",
        stderr(&out)
    );
    // A mistyped secret property names the key, never the value.
    let f = config_file("[kafka.librdkafka]\n\"sasl.pasword\" = \"hunter2\"\n");
    let out = check_config(f.to_str(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("sasl.pasword"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
    // A property it knows is fine.
    let f = config_file("[kafka.librdkafka]\n\"fetch.wait.max.ms\" = \"50\"\n");
    let out = check_config(f.to_str(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_value_of_the_wrong_type_exits_2_and_names_the_key() {
    let f = config_file("[database]\npool_size = \"four\"\n");
    let out = check_config(f.to_str(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("database.pool_size: expected an integer"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_wrong_type_from_the_environment_exits_2_and_names_the_variable() {
    let out = check_config(None, &[("HEARTBEAT__GENERATOR__ENABLED", "maybe")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("generator.enabled") && err.contains("HEARTBEAT__GENERATOR__ENABLED"),
        "{err}"
    );
}

#[test]
fn a_missing_config_file_exits_2_and_names_the_file() {
    let out = check_config(Some("/nonexistent/heartbeat.toml"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/heartbeat.toml"),
        "{}",
        stderr(&out)
    );
    // The environment variable is the same as --config.
    let mut cmd = Command::new(BIN);
    let out = cmd
        .arg("check-config")
        .env("HEARTBEAT_CONFIG", "/nonexistent/from-env.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/from-env.toml"));
}

#[test]
fn every_problem_is_listed_at_once() {
    let f = config_file("[log]\nformat = \"xml\"\n[writer]\nbatch_size = 0\n");
    let out = check_config(f.to_str(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("log.format") && err.contains("writer.batch_size"),
        "{err}"
    );
}

#[test]
fn a_forget_after_ms_beyond_a_year_exits_2_and_names_the_key() {
    // 285,000 years: check-config used to accept it, and `run` then crashed on it
    // ("DateTime - TimeDelta overflowed" loading detector state), restarted, and exited 3.
    let out = check_config(
        None,
        &[("HEARTBEAT__DETECTOR__FORGET_AFTER_MS", "9000000000000000")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("detector.forget_after_ms: 9000000000000000 is out of range 1..=31536000000"),
        "{}",
        stderr(&out)
    );
    // A year is the most it takes.
    let out = check_config(
        None,
        &[("HEARTBEAT__DETECTOR__FORGET_AFTER_MS", "31536000000")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let f = config_file("[database]\nurl = \"postgres://app:s3cr3t-pw@db:5432/hb\"\n");
    let out = check_config(f.to_str(), &[("HEARTBEAT__KAFKA__GROUP_ID", "from-env")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("group_id = \"from-env\""), "{printed}");
    assert!(
        printed.contains("postgres://app:<redacted>@db:5432/hb"),
        "{printed}"
    );
    assert!(!printed.contains("s3cr3t-pw") && !stderr(&out).contains("s3cr3t-pw"));
}

#[test]
fn usage_errors_exit_2_and_version_exits_0() {
    let out = Command::new(BIN).arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("heartbeat-pipeline "));
}

/// SPEC section 2: `--version` on every command and subcommand, exit 0, before any configuration
/// or service is looked at (`run --version` used to exit 2).
#[test]
fn every_command_and_subcommand_takes_version() {
    for args in [
        &["run"][..],
        &["generate"],
        &["produce"],
        &["migrate"],
        &["inspect"],
        &["tail"],
        &["check-config"],
        &["rules"],
        &["rules", "set"],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .arg("--version")
            .env(
                "HEARTBEAT__DATABASE__URL",
                "postgres://nobody@127.0.0.1:1/none",
            )
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?} --version: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")),
            "{args:?} --version printed {out:?}"
        );
    }
}

/// `inspect` over a data set written by hand: every count it prints is the one expected.
#[test]
fn inspect_prints_the_counts_of_a_known_data_set() {
    use crate::helpers::{Setup, TestDb};
    let db = TestDb::new();
    let setup = Setup::new(&db);
    setup.migrate();
    db.execute("SELECT heartbeat_ensure_day_partition(now())");
    db.execute(
        "INSERT INTO readings (event_id, customer_id, recorded_at, heart_rate, class, \
         kafka_partition, kafka_offset) VALUES \
         (gen_random_uuid(), 'C-1', now(), 70, 'normal', 0, 0), \
         (gen_random_uuid(), 'C-1', now(), 72, 'normal', 0, 1), \
         (gen_random_uuid(), 'C-2', now(), 130, 'high', 1, 0)",
    );
    db.execute(
        "INSERT INTO rejected_readings (raw, reason, detail, kafka_topic, kafka_partition, \
         kafka_offset) VALUES ('x', 'malformed_json', 'd', 't', 0, 2), \
         ('y', 'too_large', 'd', 't', 0, 3)",
    );
    db.execute(
        "INSERT INTO anomalies (event_id, customer_id, kind, heart_rate, recorded_at) \
         VALUES (gen_random_uuid(), 'C-2', 'tachycardia', 130, now())",
    );
    db.execute(
        "INSERT INTO alerts (customer_id, kind, opened_at, last_seen_at, readings, \
         peak_heart_rate) VALUES ('C-2', 'tachycardia', now(), now(), 1, 130)",
    );

    let out = setup.command(&["inspect"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // Each expected line: a label and its count, whatever the padding between them.
    let has = |label: &str, n: i64| {
        text.lines().any(|l| {
            let l = l.trim();
            l.strip_prefix(label)
                .is_some_and(|rest| rest.trim() == n.to_string())
        })
    };
    for (label, n) in [
        ("readings", 3),
        ("rejected readings", 2),
        ("anomalies", 1),
        ("open alerts", 1),
        ("customers", 2),
        ("normal", 2),
        ("high", 1),
        ("tachycardia", 1),
        ("malformed_json", 1),
        ("too_large", 1),
        ("C-2", 1),
    ] {
        assert!(has(label, n), "no `{label} {n}` line in:\n{text}");
    }
}

/// `cmd` with standard output a pipe whose reader is already gone, as in `cmd | head -1` once
/// `head` has its line.
fn into_a_closed_pipe(mut cmd: Command) -> Output {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills the two descriptors; the reader is closed at once and the writer
    // is owned by the `Stdio` from then on.
    let writer = unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0, "a pipe");
        libc::close(fds[0]);
        std::process::Stdio::from_raw_fd(fds[1])
    };
    cmd.stdout(writer).output().expect("run the command")
}

/// Ends quietly: exit 0, or killed by SIGPIPE as `cat` or `ls` are, never a panic.
fn assert_quiet_end(out: &Output, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    let text = stderr(out);
    assert!(
        !text.contains("panicked") && !text.contains("Broken pipe"),
        "{what} into a closed pipe: {text}"
    );
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "{what} into a closed pipe: {:?}, {text}",
        out.status
    );
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    use crate::helpers::{Setup, TestDb};
    let mut cmd = Command::new(BIN);
    cmd.arg("check-config").env_remove("HEARTBEAT_CONFIG");
    assert_quiet_end(&into_a_closed_pipe(cmd), "check-config");

    let db = TestDb::new();
    let setup = Setup::new(&db);
    setup.migrate();
    assert_quiet_end(&into_a_closed_pipe(setup.command(&["inspect"])), "inspect");
    assert_quiet_end(
        &into_a_closed_pipe(setup.command(&["rules", "list"])),
        "rules list",
    );
}

/// SASL over plaintext with a mechanism this build of librdkafka does not have, set through the
/// escape hatch: every key is valid and check-config accepts it, but librdkafka builds no client
/// ("No provider for SASL mechanism GSSAPI").
const NO_CLIENT: &str =
    "[kafka]\nsecurity_protocol = \"sasl_plaintext\"\nsasl_mechanism = \"PLAIN\"\n\
    sasl_username = \"alice\"\nsasl_password = \"no-client-Pw\"\n\
    [kafka.librdkafka]\n\"sasl.mechanisms\" = \"GSSAPI\"\n";

/// Runs `args` with `setup`'s environment and the configuration `toml`, at most a minute.
fn run_with_config(
    setup: &crate::helpers::Setup,
    toml: &str,
    args: &[&str],
) -> (Option<i32>, String) {
    let f = config_file(toml);
    let mut cmd = setup.command(args);
    cmd.args(["--config", f.to_str().unwrap()]);
    let mut daemon = crate::helpers::Daemon::spawn(cmd);
    let code = daemon.wait_exit(std::time::Duration::from_secs(60));
    (Some(code), daemon.log_lines().join("\n"))
}

#[test]
fn run_exits_1_with_the_reason_when_no_kafka_client_can_be_built() {
    use crate::helpers::{Setup, TestDb};
    let out = check_config(Some(config_file(NO_CLIENT).to_str().unwrap()), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "check-config accepts it: {}",
        stderr(&out)
    );
    let db = TestDb::new();
    for (processor, generator) in [("true", "false"), ("false", "true")] {
        let setup = Setup::new(&db)
            .with("HEARTBEAT__PROCESSOR__ENABLED", processor)
            .with("HEARTBEAT__GENERATOR__ENABLED", generator);
        let (code, log) = run_with_config(&setup, NO_CLIENT, &["run"]);
        assert_eq!(
            code,
            Some(1),
            "processor {processor}, generator {generator}:\n{log}"
        );
        assert!(
            log.contains("cannot create the kafka")
                && log.contains("No provider for SASL mechanism GSSAPI"),
            "{log}"
        );
        assert!(!log.contains("no-client-Pw"), "{log}");
    }
}

#[test]
fn generate_exits_1_with_the_reason_when_no_kafka_client_can_be_built() {
    let setup = crate::helpers::Setup {
        // generate uses no database; the URL only has to be valid.
        db_url: "postgres://postgres@127.0.0.1:5432/unused".to_owned(),
        ..crate::helpers::Setup::new_without_db()
    };
    let (code, log) = run_with_config(&setup, NO_CLIENT, &["generate", "--count", "1"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("cannot create") && log.contains("No provider for SASL mechanism GSSAPI"),
        "{log}"
    );
}

#[test]
fn run_exits_1_not_3_when_librdkafka_builds_no_consumer_from_the_escape_hatch() {
    // The admin client and the producers build, but librdkafka refuses a consumer whose
    // fetch.max.bytes (set by this program) is below message.max.bytes: each start of the
    // processor failed until the supervisor gave up with exit 3.
    let toml = "[kafka.librdkafka]\n\"message.max.bytes\" = \"10000000\"\n";
    let out = check_config(Some(config_file(toml).to_str().unwrap()), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "check-config accepts it: {}",
        stderr(&out)
    );
    let db = crate::helpers::TestDb::new();
    let setup = crate::helpers::Setup::new(&db)
        .with("HEARTBEAT__SUPERVISOR__BACKOFF_MIN_MS", "10")
        .with("HEARTBEAT__SUPERVISOR__BACKOFF_MAX_MS", "20");
    let (code, log) = run_with_config(&setup, toml, &["run"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("cannot create the kafka consumer")
            && log.contains("`fetch.max.bytes` must be >= `message.max.bytes`"),
        "{log}"
    );
}

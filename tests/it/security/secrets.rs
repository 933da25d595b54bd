//! Secrets never reach stdout, stderr, the log file or an error chain.

use std::process::Output;

use crate::helpers::*;

use super::kafka::FrontedBroker;
use super::postgres::Login;
use super::{lines_with, Pki, STORE_DEADLINE};

/// Every output of one command: exit code, stdout, stderr.
fn all_output(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails naming where a secret showed up (the secret itself is not printed).
fn assert_clean(what: &str, text: &str, secrets: &[(&str, &str)]) {
    for (name, secret) in secrets {
        let encoded: String = secret
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        for form in [secret.to_string(), encoded] {
            if let Some(at) = text.find(&form) {
                let line = text[..at].lines().count();
                panic!("{name} appears in {what} (line {line})");
            }
        }
    }
}

#[test]
fn no_secret_reaches_stdout_stderr_the_log_file_or_an_error_chain() {
    let pki = Pki::new();
    let tls_broker = FrontedBroker::start(false, Some(&pki));
    let sasl_broker = FrontedBroker::start(true, Some(&pki));
    let db = TestDb::new();
    Setup::new(&db).migrate();
    let writer = Login::create("heartbeat_writer");
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str, content: &str| {
        let p = files.path().join(name);
        std::fs::write(&p, format!("{content}\n")).unwrap();
        p.to_str().unwrap().to_owned()
    };
    // Characters that need percent-encoding in a URL, so both forms are looked for.
    let wrong_db = format!("{}/w@:?#", unique("wrongdb"));
    let sasl = unique("saslpw");
    let secrets = [
        ("the database password", writer.password.as_str()),
        ("a wrong database password", wrong_db.as_str()),
        ("the SASL password", sasl.as_str()),
        ("the key passphrase", pki.key_password.as_str()),
    ];
    let db_pw_file = file("db", &writer.password);
    let sasl_file = file("sasl", &sasl);
    let key_pw_file = file("keypw", &pki.key_password);
    let host_db = db.url.split_once('@').unwrap().1.to_owned();
    let user_url = format!("postgres://{}@{host_db}", writer.name);
    let log_file = files.path().join("heartbeat.log");

    // check-config with every secret set, from the environment and from files.
    let base = Setup {
        db_url: user_url.clone(),
        ..Setup::new_without_db()
    }
    .with("HEARTBEAT__LOG__FILE", log_file.to_str().unwrap());
    let sasl_setup = pki
        .kafka_tls(base.clone(), &sasl_broker.brokers(), "ca.pem", "sasl_ssl")
        .with("HEARTBEAT__KAFKA__SASL_USERNAME", "heartbeat")
        .with("HEARTBEAT__KAFKA__SASL_PASSWORD_FILE", &sasl_file);
    let out = sasl_setup
        .clone()
        .with("HEARTBEAT__DATABASE__PASSWORD", &writer.password)
        .command(&["check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_clean("check-config", &all_output(&out), &secrets);

    // A wrong password in the URL, and one from the environment: migrate and inspect fail.
    let wrong_url = format!(
        "postgres://{}:{}@{host_db}",
        writer.name,
        wrong_db
            .replace('/', "%2F")
            .replace('@', "%40")
            .replace(':', "%3A")
            .replace('?', "%3F")
            .replace('#', "%23")
    );
    let out = Setup {
        db_url: wrong_url,
        ..base.clone()
    }
    .command(&["migrate"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        all_output(&out).contains("password authentication failed"),
        "{}",
        all_output(&out)
    );
    assert_clean("migrate with a wrong password", &all_output(&out), &secrets);
    let out = base
        .clone()
        .with("HEARTBEAT__DATABASE__PASSWORD", &wrong_db)
        .command(&["inspect"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_clean("inspect with a wrong password", &all_output(&out), &secrets);

    // run: a wrong database password and a refused SASL login inside mutual TLS.
    let mut daemon = sasl_setup
        .clone()
        .with("HEARTBEAT__DATABASE__PASSWORD", &wrong_db)
        .spawn_run();
    wait_for("both failures in the log", STORE_DEADLINE, || {
        (lines_with(&daemon, 0, "password authentication failed") > 0
            && lines_with(&daemon, 0, "SASL authentication error") > 0)
            .then_some(())
    });
    let (_, readyz) = daemon.get("/readyz");
    assert_eq!(daemon.stop(), 0);
    assert_clean(
        "run's log (failing)",
        &daemon.log_lines().join("\n"),
        &secrets,
    );
    assert_clean("/readyz", &readyz, &secrets);

    // run: everything right (database password and key passphrase from files), with an
    // injected panic in the writer on the way.
    let good = pki
        .kafka_tls(base.clone(), &tls_broker.brokers(), "ca.pem", "ssl")
        .with("HEARTBEAT__KAFKA__SSL_KEY_PASSWORD", "")
        .with("HEARTBEAT__KAFKA__SSL_KEY_PASSWORD_FILE", &key_pw_file)
        .with("HEARTBEAT__DATABASE__PASSWORD_FILE", &db_pw_file)
        .with("HEARTBEAT_TEST_PANIC", "db_writer:1");
    let mut daemon = good.spawn_run_started();
    let out = good
        .command(&["generate", "--count", "300", "--rate", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    assert_clean("generate", &all_output(&out), &secrets);
    wait_for("300 rows", STORE_DEADLINE, || {
        (accounted(&db.url) == 300).then_some(())
    });
    assert!(
        daemon.metric_sum("heartbeat_actor_restarts_total") >= 1.0,
        "the panic happened"
    );
    let (_, metrics) = daemon.get("/metrics");
    assert_eq!(daemon.stop(), 0);
    let log = daemon.log_lines().join("\n");
    assert!(log.contains("injected fault"), "the panic is in the log");
    assert_clean("run's log (working)", &log, &secrets);
    assert_clean("/metrics", &metrics, &secrets);
    let file_log = std::fs::read_to_string(&log_file).unwrap();
    assert!(file_log.lines().count() > 10);
    assert_clean("log.file", &file_log, &secrets);
}

//! Kafka over TLS with mutual TLS (stunnel in front of a private tansu), and a refused SASL
//! login.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crate::broker::{free_port, start_tansu, Proxy};
use crate::helpers::*;

use super::{lines_with, tool, Pki, STORE_DEADLINE, WATCH};

/// A private tansu (memory storage, optionally `--authentication`) reachable only through a
/// front on `port`: stunnel (TLS, client certificates required and checked against the test
/// CA) or a plain counting [`Proxy`]. The broker advertises the front's port.
pub(super) struct FrontedBroker {
    tansu: Child,
    stunnel: Option<Child>,
    proxy: Option<Proxy>,
    port: u16,
    dir: tempfile::TempDir,
}

impl FrontedBroker {
    pub(super) fn start(authentication: bool, tls: Option<&Pki>) -> FrontedBroker {
        let stunnel_bin = tls.map(|_| tool(&["stunnel4", "stunnel"]));
        let (broker_port, port) = (free_port(), free_port());
        let dir = tempfile::Builder::new()
            .prefix("hb_tansu")
            .tempdir()
            .unwrap();
        let extra: &[&str] = if authentication {
            &["--authentication"]
        } else {
            &[]
        };
        let (tansu, target) = start_tansu(dir.path(), broker_port, port, extra);
        let (stunnel, proxy) = match (tls, stunnel_bin) {
            (Some(pki), Some(bin)) => {
                let conf = dir.path().join("stunnel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "foreground = yes\npid =\ndebug = notice\noutput = {log}\n\
                         [kafka]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{broker_port}\n\
                         cert = {cert}\nkey = {key}\nCAfile = {ca}\n\
                         requireCert = yes\nverifyChain = yes\n",
                        log = dir.path().join("stunnel.log").display(),
                        cert = pki.path("server.pem"),
                        key = pki.path("server.key"),
                        ca = pki.path("ca.pem"),
                    ),
                )
                .unwrap();
                let child = Command::new(bin)
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start stunnel");
                wait_for("stunnel to listen", Duration::from_secs(30), || {
                    TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
                });
                (Some(child), None)
            }
            _ => (None, Some(Proxy::start(port, target))),
        };
        FrontedBroker {
            tansu,
            stunnel,
            proxy,
            port,
            dir,
        }
    }

    pub(super) fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn dump(&self) {
        for f in ["tansu.log", "stunnel.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(f)) {
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("--- {f} (tail) ---");
                for l in &lines[lines.len().saturating_sub(30)..] {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Drop for FrontedBroker {
    fn drop(&mut self) {
        if thread::panicking() {
            self.dump();
        }
        for child in [Some(&mut self.tansu), self.stunnel.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn readings_travel_over_mutual_tls_and_an_untrusted_ca_is_reported_without_a_crash_loop() {
    let pki = Pki::new();
    let broker = FrontedBroker::start(false, Some(&pki));
    let db = TestDb::new();

    // The right CA and a client certificate: end to end over TLS.
    let setup = pki.kafka_tls(Setup::new(&db), &broker.brokers(), "ca.pem", "ssl");
    let mut daemon = setup.spawn_run_started();
    assert!(setup.generate(2_000, 91).success(), "generate over TLS");
    wait_for("2,000 rows over TLS", STORE_DEADLINE, || {
        (accounted(&db.url) == 2_000).then_some(())
    });
    wait_for("readiness over TLS", STORE_DEADLINE, || {
        (daemon.get("/readyz").0 == 200).then_some(())
    });
    assert_eq!(daemon.stop(), 0);

    // The same client without its certificate: stunnel requires one.
    let plain = Setup::new(&db)
        .with("HEARTBEAT__KAFKA__BROKERS", &broker.brokers())
        .with("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", "ssl")
        .with("HEARTBEAT__KAFKA__SSL_CA_FILE", &pki.path("ca.pem"));
    let no_cert = plain.spawn_run();
    let body = wait_for(
        "a refused handshake without a client certificate",
        STORE_DEADLINE,
        || {
            let (status, body) = no_cert.get("/readyz");
            (status == 503 && body.contains("last error")).then_some(body)
        },
    );
    eprintln!("[no client certificate] /readyz: {body}");
    assert!(no_cert.records("group started").is_empty());
    drop(no_cert);

    // A CA that did not sign the broker's certificate: a clear error, not ready, no crash.
    let untrusted = pki.kafka_tls(Setup::new(&db), &broker.brokers(), "other-ca.pem", "ssl");
    let mut daemon = untrusted.spawn_run();
    let reason = wait_for("the TLS failure on /readyz", STORE_DEADLINE, || {
        let (status, body) = daemon.get("/readyz");
        (status == 503 && body.contains("certificate verify failed")).then_some(body)
    });
    eprintln!("[untrusted CA] /readyz: {reason}");
    let from = daemon.log_lines().len();
    let started = Instant::now();
    while started.elapsed() < WATCH {
        assert_eq!(daemon.get("/healthz").0, 200, "the process stays up");
        thread::sleep(Duration::from_millis(500));
    }
    let lines = daemon.log_lines().len() - from;
    let handshakes = lines_with(&daemon, 0, "certificate verify failed");
    eprintln!("[untrusted CA] {lines} log lines in {WATCH:?}, {handshakes} naming the failure");
    assert!(handshakes > 0);
    assert!(lines <= 30, "{lines} log lines in {WATCH:?}");
    assert_eq!(
        daemon.metric_sum("heartbeat_actor_restarts_total"),
        0.0,
        "no crash loop"
    );
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_refused_sasl_login_is_reported_and_retried_with_backoff() {
    let broker = FrontedBroker::start(true, None);
    let db = TestDb::new();
    let setup = Setup::new(&db)
        .with("HEARTBEAT__KAFKA__BROKERS", &broker.brokers())
        .with("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", "sasl_plaintext")
        .with("HEARTBEAT__KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
        .with("HEARTBEAT__KAFKA__SASL_USERNAME", "heartbeat")
        .with("HEARTBEAT__KAFKA__SASL_PASSWORD", &unique("saslpw"));
    let mut daemon = setup.spawn_run();
    let body = wait_for("the refused login on /readyz", STORE_DEADLINE, || {
        let (status, body) = daemon.get("/readyz");
        (status == 503 && body.contains("SASL authentication error")).then_some(body)
    });
    eprintln!("[refused SASL login] /readyz: {body}");
    assert!(lines_with(&daemon, 0, "SASL authentication error") > 0);

    let proxy = broker.proxy.as_ref().unwrap();
    let (connects_before, lines_before) = (
        proxy.accepted.load(Ordering::SeqCst),
        daemon.log_lines().len(),
    );
    let started = Instant::now();
    while started.elapsed() < WATCH {
        assert_eq!(daemon.get("/healthz").0, 200, "the process stays up");
        assert_eq!(daemon.get("/readyz").0, 503, "never ready without a login");
        thread::sleep(Duration::from_millis(500));
    }
    let connects = proxy.accepted.load(Ordering::SeqCst) - connects_before;
    let lines = daemon.log_lines().len() - lines_before;
    eprintln!("[refused SASL login] {connects} connections and {lines} log lines in {WATCH:?}");
    // librdkafka reconnects with backoff (reconnect.backoff.max.ms 2 s per client): a spin
    // would be hundreds.
    assert!(connects <= 60, "{connects} connections in {WATCH:?}");
    assert!(lines <= 30, "{lines} log lines in {WATCH:?}");
    assert_eq!(daemon.stop(), 0);
}
